//! `daxplug daemon` on the emulated machine: policy validation, `--once`, and the event
//! loop converging managed devices while competitors act.

mod common;

use common::daxplug;

use std::path::Path;
use std::process::Output;

use serde_json::Value;

fn text(o: &Output) -> String {
    common::output_text(o)
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write");
    p.display().to_string()
}

const POLICY: &str = "[[rule]]\nmatch = { target_node = 1 }\nstate = \"online_movable\"\non_drift = \"restore\"\n\n[[rule]]\nmatch = { name = \"dax2.0\" }\nstate = \"devdax\"\non_drift = \"report\"\n";

fn states(sim: &str) -> Vec<(String, String)> {
    let o = daxplug(&["--sim", sim, "list", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    v["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| {
            (
                d["name"].as_str().expect("name").to_owned(),
                d["state"].as_str().expect("state").to_owned(),
            )
        })
        .collect()
}

/// A machine file of `preset` and the policy `rule` in `dir`, and the daemon started on
/// them for `seconds`, its log piped.
fn spawn_daemon(
    dir: &Path,
    init: &[&str],
    rule: &str,
    seconds: u32,
) -> (String, String, std::process::Child) {
    let sim = dir.join("m.json").display().to_string();
    let mut args = vec!["sim", "init", &sim];
    args.extend_from_slice(init);
    assert!(daxplug(&args).status.success());
    let policy = write(dir, "p.toml", rule);
    let child = common::command()
        .args(["--sim", &sim, "daemon", "--config", &policy, "--exit-after"])
        .arg(format!("{seconds}s"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    (sim, policy, child)
}

#[test]
fn check_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(dir.path(), "good.toml", POLICY);
    let o = daxplug(&["daemon", "--check-config", "--config", &good]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 rules, valid"));
    let bad = write(
        dir.path(),
        "bad.toml",
        "[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"online_movable\"\non_drift = \"fight\"\n",
    );
    let o = daxplug(&["daemon", "--check-config", "--config", &bad]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("bad.toml:4: on_drift: \"fight\" is not a drift action"),
        "{}",
        text(&o)
    );
    let o = daxplug(&[
        "daemon",
        "--check-config",
        "--config",
        &dir.path().join("missing.toml").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("missing.toml: cannot read it"),
        "{}",
        text(&o)
    );
}

#[test]
fn once_applies_the_policy_and_leaves_the_rest_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("m.json").display().to_string();
    assert!(
        daxplug(&["sim", "init", &sim, "--preset", "large"])
            .status
            .success()
    );
    daxplug(&["--sim", &sim, "sim", "actor", "add", "rhel-rule", "--vm"]);
    let policy = write(dir.path(), "p.toml", POLICY);
    let o = daxplug(&["--sim", &sim, "daemon", "--config", &policy, "--once"]);
    assert!(o.status.success(), "{}", text(&o));
    let log = text(&o);
    for line in [
        "device=dax0.0 rule=1 from=unbound to=online_movable result=done",
        "device=dax2.0 rule=2 from=unbound to=devdax result=done",
    ] {
        assert!(log.contains(line), "{log}");
    }
    let s = states(&sim);
    assert_eq!(s[0].1, "online_movable");
    assert_eq!(s[1].1, "online_movable");
    assert_eq!(s[2].1, "devdax");
    assert!(s[3..].iter().all(|(_, st)| st == "unbound"), "{s:?}");
    // Already in place: every managed device reports ok.
    let o = daxplug(&["--sim", &sim, "daemon", "--config", &policy, "--once"]);
    assert!(o.status.success());
    assert_eq!(text(&o).matches("result=ok").count(), 3, "{}", text(&o));
}

#[test]
fn the_loop_restores_drift_from_a_competitor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("m.json").display().to_string();
    assert!(
        daxplug(&[
            "sim", "init", &sim, "--preset", "hmem", "--kernel", "legacy"
        ])
        .status
        .success()
    );
    daxplug(&["--sim", &sim, "sim", "modprobe", "kmem"]);
    daxplug(&["--sim", &sim, "sim", "actor", "add", "rhel-rule", "--vm"]);
    let policy = write(
        dir.path(),
        "p.toml",
        "[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"online_movable\"\n",
    );
    // Offline the memory behind its back: the kernel auto-onlined it into Normal first.
    assert_eq!(states(&sim)[0].1, "online_kernel");
    let o = daxplug(&[
        "--sim",
        &sim,
        "daemon",
        "--config",
        &policy,
        "--exit-after",
        "3s",
    ]);
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    // The boot policy left it in Normal; kernel allocations may pin it there, in which case
    // the daemon reports the rollback and keeps trying with backoff. Either way, it said so.
    assert!(
        log.contains("device=dax0.0 rule=1 from=online_kernel to=online_movable"),
        "{log}"
    );
    assert!(
        log.contains("watching 1 rule;") && log.contains("stopping"),
        "{log}"
    );

    // A device the daemon brought to its state, then offlined by hand: restored.
    let sim2 = dir.path().join("m2.json").display().to_string();
    assert!(
        daxplug(&[
            "sim", "init", &sim2, "--preset", "pmem", "--kernel", "legacy"
        ])
        .status
        .success()
    );
    let o = daxplug(&["--sim", &sim2, "daemon", "--config", &policy, "--once"]);
    assert!(o.status.success(), "{}", text(&o));
    daxplug(&[
        "--sim",
        &sim2,
        "sim",
        "write",
        "/sys/devices/system/memory/memory44/state",
        "offline",
    ]);
    assert_eq!(states(&sim2)[0].1, "mixed");
    let o = daxplug(&[
        "--sim",
        &sim2,
        "daemon",
        "--config",
        &policy,
        "--exit-after",
        "2s",
    ]);
    let log = text(&o);
    assert!(
        log.contains("from=mixed to=online_movable result=done"),
        "{log}"
    );
    assert_eq!(states(&sim2)[0].1, "online_movable");
}

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    let o = daxplug(&["generate", "completions", "--shell", "bash"]);
    assert!(o.status.success());
    let script = String::from_utf8_lossy(&o.stdout);
    assert!(script.contains("daxplug") && script.contains("daemon") && script.contains("doctor"));
    let dir = tempfile::tempdir().expect("tempdir");
    let o = daxplug(&[
        "generate",
        "man",
        "--dir",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(dir.path().join("daxplug.1").exists());
    assert!(dir.path().join("daxplug-set.1").exists());
}

#[test]
fn sighup_reloads_and_a_bad_reload_keeps_the_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, policy, child) = spawn_daemon(
        dir.path(),
        &["--preset", "large"],
        "[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"online_movable\"\n",
        4,
    );
    let pid = child.id().to_string();
    // Long enough for the daemon to install its handlers even on a loaded machine.
    std::thread::sleep(std::time::Duration::from_millis(2000));
    std::fs::write(
        &policy,
        "[[rule]]\nmatch = { name = \"dax1.0\" }\nstate = \"devdax\"\n",
    )
    .expect("write");
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill")
            .success()
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    std::fs::write(&policy, "[[rule]]\nstate = 3\n").expect("write");
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let out = child.wait_with_output().expect("wait");
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        log.contains("reloaded") && log.contains(": 1 rule"),
        "{log}"
    );
    assert!(
        log.contains("device=dax1.0 rule=1 from=unbound to=devdax result=done"),
        "{log}"
    );
    assert!(
        log.contains("reload refused, keeping the policy in force"),
        "{log}"
    );
}

#[test]
fn a_pmem_device_is_matched_by_its_namespace_uuid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    common::copy_tree(&common::fixture("e820", "07-devdax"), &root);
    std::fs::write(
        root.join("sys/devices/platform/e820_pmem/ndbus0/region0/dax0.0/namespace"),
        "namespace0.0\n",
    )
    .expect("write");
    std::fs::create_dir_all(root.join("sys/bus/nd/devices/namespace0.0")).expect("mkdir");
    std::fs::write(
        root.join("sys/bus/nd/devices/namespace0.0/uuid"),
        "a8ce3b6f-2a3c-4bd4-b8d5-7d63aa4f0d4a\n",
    )
    .expect("write");
    let policy = write(
        dir.path(),
        "p.toml",
        "[[rule]]\nmatch = { backing = \"nd:a8ce3b6f-2a3c-4bd4-b8d5-7d63aa4f0d4a\" }\nstate = \"devdax\"\n",
    );
    // One pass of the daemon over the tree under a policy file.
    let once = |policy: &str| {
        daxplug(&[
            "--root",
            root.to_str().expect("utf-8"),
            "daemon",
            "--config",
            policy,
            "--once",
        ])
    };
    let o = once(&policy);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("device=dax0.0 rule=1 from=devdax to=devdax result=ok"),
        "{}",
        text(&o)
    );
    let other = write(
        dir.path(),
        "q.toml",
        "[[rule]]\nmatch = { backing = \"nd:00000000-0000-0000-0000-000000000000\" }\nstate = \"devdax\"\n",
    );
    let o = once(&other);
    assert!(o.status.success());
    assert!(
        !text(&o).contains("device=dax0.0"),
        "another uuid does not match: {}",
        text(&o)
    );
}

/// On a machine fresh from boot (kmem not loaded) the daemon brings a device matched by its
/// backing to its state: kmem is loaded without binding anything else, on both kernels.
#[test]
fn once_on_a_fresh_machine_loads_kmem() {
    for kernel in ["legacy", "atomic"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = dir.path().join("m.json").display().to_string();
        let o = daxplug(&["sim", "init", &sim, "--preset", "hmem", "--kernel", kernel]);
        assert!(o.status.success(), "{}", text(&o));
        let policy = write(
            dir.path(),
            "p.toml",
            "[[rule]]\nmatch = { backing = \"hmem:0x140000000-0x17fffffff\" }\nstate = \"online_movable\"\n",
        );
        let o = daxplug(&["--sim", &sim, "daemon", "--config", &policy, "--once"]);
        assert!(o.status.success(), "{kernel}: {}", text(&o));
        assert_eq!(
            states(&sim),
            vec![("dax0.0".to_owned(), "online_movable".to_owned())],
            "{kernel}: {}",
            text(&o)
        );
    }
}

/// Replacing the policy file the way editors and configuration managers do (write a new
/// file, rename it over the old) reloads it without a signal; the new rule applies at once.
#[test]
fn a_replaced_policy_file_is_reloaded_without_a_signal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, policy, child) = spawn_daemon(
        dir.path(),
        &["--preset", "hmem", "--kernel-allocs", "0"],
        "[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"online_movable\"\n",
        5,
    );
    std::thread::sleep(std::time::Duration::from_millis(2000));
    let new = dir.path().join("p.toml.new");
    std::fs::write(
        &new,
        "[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"devdax\"\n",
    )
    .expect("write");
    std::fs::rename(&new, &policy).expect("rename");
    let out = child.wait_with_output().expect("wait");
    let log = String::from_utf8_lossy(&out.stdout);
    let first = log.find("to=online_movable result=done").expect(&log);
    let reload = log.find("reloaded").expect(&log);
    let second = log.find("to=devdax result=done").expect(&log);
    assert!(first < reload && reload < second, "{log}");
    // Woken by the file, not by a sweep: none came in 5 s.
    assert!(log.contains("0 sweeps"), "{log}");
}

/// The Node Feature Discovery file follows the device memory the daemon brings online, and
/// a policy without the section writes none.
#[test]
fn the_feature_file_follows_the_device_memory_online() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("m.json").display().to_string();
    assert!(
        daxplug(&[
            "sim", "init", &sim, "--preset", "hmem", "--kernel", "atomic"
        ])
        .status
        .success()
    );
    let features = dir.path().join("features.d");
    std::fs::create_dir(&features).expect("mkdir");
    let file = features.join("daxplug");
    let rule = |state: &str| {
        format!(
            "[[rule]]\nmatch = {{ target_node = 1 }}\nstate = \"{state}\"\n\n[node_feature_discovery]\nfile = \"{}\"\n",
            file.display()
        )
    };
    let labels = || -> Vec<String> {
        std::fs::read_to_string(&file)
            .expect("feature file")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    let policy = write(dir.path(), "p.toml", &rule("online_movable"));
    let o = daxplug(&["--sim", &sim, "daemon", "--config", &policy, "--once"]);
    assert!(o.status.success(), "{}", text(&o));
    let gib = (1u64 << 30).to_string();
    assert_eq!(
        labels(),
        [
            "daxplug-atomic-abi=true".to_owned(),
            format!("daxplug-movable-bytes={gib}"),
            "daxplug-kernel-bytes=0".to_owned(),
            format!("daxplug-node1-movable-bytes={gib}"),
            "daxplug-node1-kernel-bytes=0".to_owned(),
            "daxplug-node1-memory-tier=22".to_owned(),
        ]
    );
    let policy = write(dir.path(), "p.toml", &rule("unplugged"));
    let o = daxplug(&["--sim", &sim, "daemon", "--config", &policy, "--once"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        labels().contains(&"daxplug-node1-movable-bytes=0".to_owned()),
        "{:?}",
        labels()
    );
    assert!(
        !labels()
            .iter()
            .any(|l| l.starts_with("daxplug-node1-memory-tier")),
        "{:?}",
        labels()
    );
    // Nothing but the file itself is left in the directory nfd-worker reads.
    let names: Vec<_> = std::fs::read_dir(&features)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // A relative path is refused by name.
    let bad = write(
        dir.path(),
        "bad.toml",
        "[[rule]]\nmatch = { target_node = 1 }\nstate = \"unplugged\"\n[node_feature_discovery]\nfile = \"features.d/daxplug\"\n",
    );
    let o = daxplug(&["--sim", &sim, "daemon", "--config", &bad, "--check-config"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("node_feature_discovery.file"),
        "{}",
        text(&o)
    );
}
