//! Read without root, as the kernel shows it to an unprivileged user: `/proc/iomem`'s
//! addresses zeroed and the devices' ranges (`mappingN/start|end|page_offset`, `resource`)
//! 0400. Runs daxplug as `nobody` (setpriv) on copied trees of a torn and of a stuck
//! device: neither list nor doctor may give an all-clear, guess at an old kernel, or claim
//! what it could not read.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use common::{copy_tree, fixture, say};
use serde_json::Value;

fn zero_iomem(path: &Path) {
    let text = std::fs::read_to_string(path).expect("iomem");
    let zeroed: String = text
        .lines()
        .map(|l| {
            let indent = l.len() - l.trim_start().len();
            let name = l.split_once(" : ").map_or("", |(_, n)| n);
            format!("{}00000000-00000000 : {name}\n", &l[..indent])
        })
        .collect();
    std::fs::write(path, zeroed).expect("write iomem");
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        let kind = e.file_type().expect("type");
        if kind.is_dir() {
            walk(&p, f);
        } else if kind.is_file() {
            f(&p);
        }
    }
}

/// A copy of `state` as `nobody` reads it, every file readable by all but the root-only ones.
fn unprivileged_tree(tmp: &Path, state: &str) -> std::path::PathBuf {
    let root = tmp.join(state);
    copy_tree(&fixture("hmem", state), &root);
    zero_iomem(&root.join("proc/iomem"));
    walk(&root, &mut |p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let in_mapping = p
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("mapping"));
        let root_only =
            name == "resource" || (in_mapping && matches!(name, "start" | "end" | "page_offset"));
        let mode = if root_only { 0o400 } else { 0o644 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    });
    root
}

fn as_nobody(bin: &Path, root: &Path, args: &[&str]) -> (String, i32) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin)
        .env("DAXPLUG_REFUSE_HOST", "1")
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("setpriv runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn without_root_nothing_is_called_healthy() {
    if !rustix::process::getuid().is_root() {
        say("SKIP without_root_nothing_is_called_healthy: needs root to become nobody");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // nobody must be able to run the binary: a copy in the readable temp dir.
    let bin = tmp.path().join("daxplug");
    std::fs::copy(env!("CARGO_BIN_EXE_daxplug"), &bin).expect("copy binary");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for state in ["05-mixed-zones", "10-stuck-final"] {
        let root = unprivileged_tree(tmp.path(), state);
        let (text, code) = as_nobody(&bin, &root, &["doctor"]);
        assert_eq!(
            code, 9,
            "{state}: doctor without root is not an all-clear:\n{text}"
        );
        assert!(!text.contains("nothing competes"), "{state}:\n{text}");
        assert!(text.contains("read without root"), "{state}:\n{text}");

        let (json, code) = as_nobody(&bin, &root, &["list", "--json"]);
        assert_eq!(code, 0, "{state}: {json}");
        let v: Value = serde_json::from_str(&json).expect("JSON");
        let dev = &v["devices"][0];
        assert_eq!(dev["state"], "needs_root", "{state}: {dev}");
        assert!(
            dev["blocks"].is_null(),
            "{state}: blocks are unknown: {dev}"
        );
        assert!(
            !json.contains("no_mappings"),
            "{state}: hidden ranges are not a missing kernel feature: {json}"
        );
        let (table, _) = as_nobody(&bin, &root, &["list"]);
        assert!(!table.contains("kernel older than"), "{state}:\n{table}");
        assert!(
            !table.contains("binding the kmem driver adds it"),
            "{state}:\n{table}"
        );
        let (status, _) = as_nobody(&bin, &root, &["status", "dax0.0"]);
        assert!(status.contains("without root"), "{state}:\n{status}");
    }
    // A machine file the user may read but not write serves read commands (m29).
    let machine = tmp.path().join("nb.json");
    let init = Command::new(&bin)
        .args(["sim", "init"])
        .arg(&machine)
        .args(["--preset", "hmem"])
        .output()
        .expect("init");
    assert!(init.status.success());
    let lock = tmp.path().join("nb.json.lock");
    std::fs::write(&lock, "").expect("lock file");
    for f in [&machine, &lock] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .env("DAXPLUG_REFUSE_HOST", "1")
        .arg("--sim")
        .arg(&machine)
        .arg("list")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("dax0.0"));
}
