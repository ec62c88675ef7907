//! contrib/kubernetes: the manifests validate against the Kubernetes API schemas and the
//! Prometheus Operator's (contrib/kubernetes/validate.sh, which installs pinned validators
//! from PyPI and npm), the validation catches a broken manifest, and the policy the ConfigMap
//! carries is one daxplug accepts, writing its labels where the DaemonSet mounts NFD's
//! directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::say;

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/kubernetes")
}

/// Runs validate.sh on `dir`: `Some(passed)`, or `None` after a SKIP line where the
/// validators cannot be installed (never in CI).
fn validate(dir: &Path) -> Option<(bool, String)> {
    let out = Command::new("bash")
        .arg(manifests().join("validate.sh"))
        .arg(dir)
        .output()
        .expect("bash runs");
    let text = common::output_text(&out);
    match out.status.code() {
        Some(77) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs the validators: {text}"
            );
            say(&format!("SKIP kubernetes manifests: {}", text.trim()));
            None
        }
        Some(0) => Some((true, text)),
        _ => Some((false, text)),
    }
}

#[test]
fn manifests_validate_and_a_broken_one_does_not() {
    let Some((ok, text)) = validate(&manifests()) else {
        return;
    };
    assert!(ok, "{text}");
    for kind in ["configmap", "daemonset", "namespace", "service"] {
        assert!(
            text.contains(&format!("passed for resource {kind}/")),
            "{kind}: {text}"
        );
    }
    assert!(
        text.contains("OK ") && text.contains("ServiceMonitor/daxplug"),
        "{text}"
    );

    // Teeth: a misspelt field in the DaemonSet, and a ServiceMonitor interval Prometheus
    // cannot parse, are each refused.
    let broken = |file: &str, from: &str, to: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        for e in std::fs::read_dir(manifests()).expect("dir").flatten() {
            if e.path().extension().is_some_and(|x| x == "yaml") {
                std::fs::copy(e.path(), dir.path().join(e.file_name())).expect("copy");
            }
        }
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
        validate(dir.path()).expect("validators installed above")
    };
    let (ok, text) = broken("daemonset.yaml", "hostNetwork: true", "hostNetwrk: true");
    assert!(!ok && text.contains("hostNetwrk"), "{text}");
    let (ok, text) = broken(
        "servicemonitor.yaml",
        "interval: 30s",
        "interval: half a minute",
    );
    assert!(!ok && text.contains("interval"), "{text}");
}

/// The text of the block scalar `key: |` in a YAML file (the ConfigMap's policy).
fn block_scalar(yaml: &str, key: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    let head = lines.next().expect("key present");
    let indent = head.len() - head.trim_start().len() + 2;
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or("").to_owned() + "\n")
        .collect()
}

#[test]
fn the_configmap_policy_is_valid_and_writes_where_the_daemonset_mounts() {
    let cm = std::fs::read_to_string(manifests().join("configmap.yaml")).expect("configmap");
    let ds = std::fs::read_to_string(manifests().join("daemonset.yaml")).expect("daemonset");
    let policy = block_scalar(&cm, "daxplug.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("daxplug.toml");
    std::fs::write(&file, &policy).expect("write");
    let sim = dir.path().join("m.json").display().to_string();
    assert!(
        common::daxplug(&["sim", "init", &sim, "--preset", "cxl"])
            .status
            .success()
    );
    let f = file.display().to_string();
    let o = common::daxplug(&["--sim", &sim, "daemon", "--check-config", "--config", &f]);
    assert!(o.status.success(), "{}", common::output_text(&o));
    // The labels file is in the directory the pod mounts from the host.
    let nfd = policy
        .lines()
        .find_map(|l| l.strip_prefix("file = "))
        .expect("nfd file")
        .trim_matches('"');
    let nfd_dir = Path::new(nfd).parent().expect("dir").display().to_string();
    assert!(
        ds.contains(&format!("mountPath: {nfd_dir}")),
        "{nfd_dir} not mounted"
    );
    assert!(ds.contains("mountPath: /run/daxplug"));
    // The DaemonSet's port is the policy's metrics port.
    let port = policy
        .lines()
        .find_map(|l| l.strip_prefix("listen = "))
        .and_then(|l| {
            l.trim_matches('"')
                .rsplit_once(':')
                .map(|(_, p)| p.to_owned())
        })
        .expect("metrics port");
    assert!(
        ds.contains(&format!("containerPort: {port}")),
        "port {port}"
    );
}
