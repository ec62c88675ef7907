//! Bad input and unusable roots: one sentence on stderr, the documented exit code, and
//! nothing on stdout.

mod common;

use std::path::Path;

use assert_cmd::Command;

/// Runs daxplug and returns (exit code, stderr); stdout must be empty.
fn fails(root: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::cargo_bin("daxplug")
        .expect("binary")
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("runs");
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    (out.status.code().expect("exit code"), stderr)
}

#[test]
fn missing_root() {
    let (code, err) = fails(Path::new("/nonexistent/daxplug-root"), &["list"]);
    assert_eq!(code, 3);
    assert!(
        err.contains("/nonexistent/daxplug-root does not exist"),
        "{err}"
    );
}

#[test]
fn root_without_memory_hotplug() {
    let empty = tempfile::tempdir().expect("tempdir");
    let (code, err) = fails(empty.path(), &["list", "--json"]);
    assert_eq!(code, 3);
    assert!(
        err.contains("/sys/devices/system/memory does not exist"),
        "{err}"
    );
}

#[test]
fn unknown_device() {
    let (code, err) = fails(
        &common::fixture("hmem", "04-online-movable"),
        &["status", "dax9.9"],
    );
    assert_eq!(code, 4);
    assert_eq!(
        err.trim_end(),
        "daxplug: there is no dax device named dax9.9 (present: dax0.0)"
    );
}

#[test]
fn device_names_that_are_paths_are_refused() {
    for bad in [
        "../dax0.0",
        "dax0.0/..",
        "..",
        "dax0.0/mapping0",
        "memory40",
        "dax0",
    ] {
        let (code, err) = fails(
            &common::fixture("hmem", "04-online-movable"),
            &["status", bad],
        );
        assert_eq!(code, 2, "{bad}");
        assert!(err.contains("expected daxREGION.ID"), "{err}");
    }
}

#[test]
fn malformed_kernel_text_names_the_file_and_the_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A copy of a captured state with one attribute of memory42 replaced.
    let corrupt = |state: &str, attribute: &str| {
        let root = dir.path().join(state);
        common::copy_tree(&common::fixture("hmem", state), &root);
        std::fs::write(
            root.join("sys/devices/system/memory/memory42")
                .join(attribute),
            "sideways\n",
        )
        .expect("write");
        fails(&root, &["list"])
    };
    // An offline block's state is read (its valid_zones names two zones) ...
    let (code, err) = corrupt("03-kmem-bound-offline", "state");
    assert_eq!(code, 1);
    assert_eq!(
        err.trim_end(),
        "daxplug: /sys/devices/system/memory/memory42/state holds unexpected text: \"sideways\" is not a memory block state (online, offline or going-offline)"
    );
    // ... and every block's valid_zones.
    let (code, err) = corrupt("04-online-movable", "valid_zones");
    assert_eq!(code, 1);
    assert_eq!(
        err.trim_end(),
        "daxplug: /sys/devices/system/memory/memory42/valid_zones holds unexpected text: \"sideways\" is not a valid_zones value (none, or zone names separated by spaces)"
    );
}

#[test]
fn usage_errors_exit_2_with_clap_help() {
    let out = Command::cargo_bin("daxplug")
        .expect("binary")
        .args(["--root", "/nonexistent", "status"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("<DEV>"), "{stderr}");
}

/// A damaged tree whose range spans the whole address space is refused at once with the
/// file named: no per-block work, no unbounded memory (it used to run for minutes).
#[test]
fn a_range_no_machine_has_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::copy_tree(&common::fixture("hmem", "04-online-movable"), dir.path());
    let end = dir
        .path()
        .join("sys/devices/platform/hmem.0/dax0.0/mapping0/end");
    std::fs::write(&end, "0xffffffffffffffff\n").expect("write");
    for args in [&["list"][..], &["status", "dax0.0"], &["doctor"]] {
        let started = std::time::Instant::now();
        let (code, err) = fails(dir.path(), args);
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(err.contains("mapping0") && err.contains("damaged"), "{err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{args:?}"
        );
    }
}

/// Durations beyond a year are bad input (clap's usage error, exit 2), not a panic.
#[test]
fn huge_durations_are_bad_input() {
    let root = common::fixture("hmem", "04-online-movable");
    for args in [
        &[
            "set",
            "dax0.0",
            "unplugged",
            "--dry-run",
            "--timeout",
            "99999999999999999999h",
        ][..],
        &["daemon", "--once", "--exit-after", "99999999999999999999h"],
    ] {
        let out = Command::cargo_bin("daxplug")
            .expect("binary")
            .arg("--root")
            .arg(&root)
            .args(args)
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("longer than a year"), "{err}");
    }
}

/// The same for an emulated machine file edited by hand: refused as it is opened.
#[test]
fn a_machine_file_with_a_range_no_machine_has_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("m.json");
    let ok = Command::cargo_bin("daxplug")
        .expect("binary")
        .args(["sim", "init"])
        .arg(&f)
        .output()
        .expect("runs");
    assert!(ok.status.success());
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&f).expect("read")).expect("json");
    m["devices"][0]["ranges"][0]["range"]["start"] = 0.into();
    m["devices"][0]["ranges"][0]["range"]["end"] = u64::MAX.into();
    std::fs::write(&f, m.to_string()).expect("write");
    let out = Command::cargo_bin("daxplug")
        .expect("binary")
        .arg("--sim")
        .arg(&f)
        .arg("list")
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("more than any machine has"), "{err}");
}

/// The man pages carry what clap cannot generate: every exit code, examples, and the
/// policy file's page.
#[test]
fn man_pages_have_exit_status_examples_and_the_policy_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::cargo_bin("daxplug")
        .expect("binary")
        .args(["generate", "man", "--dir"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(out.status.success());
    let main = std::fs::read_to_string(dir.path().join("daxplug.1")).expect("daxplug.1");
    assert!(main.contains(".SH \"EXIT STATUS\"") && main.contains(".SH EXAMPLES"));
    for code in 0..=9 {
        assert!(
            main.contains(&format!(".TP\n{code}\n")),
            "exit code {code} missing"
        );
    }
    let policy = std::fs::read_to_string(dir.path().join("daxplug.toml.5")).expect("page");
    for key in ["match", "backing", "on_drift", "force", "state"] {
        assert!(policy.contains(key), "{key}");
    }
}

/// Without root the kernel shows /proc/iomem with zero addresses: list still works, says
/// what needs root, and marks the kmem-bound device; a transition, which must see the
/// blocks, is refused as before.
#[test]
fn list_without_root_shows_what_can_be_known() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::copy_tree(&common::fixture("hmem", "04-online-movable"), dir.path());
    let iomem = dir.path().join("proc/iomem");
    let zeroed: String = std::fs::read_to_string(&iomem)
        .expect("iomem")
        .lines()
        .map(|l| {
            let (range, name) = l.split_once(" : ").expect("line");
            let indent = &range[..range.len() - range.trim_start().len()];
            format!("{indent}00000000-00000000 : {name}\n")
        })
        .collect();
    std::fs::write(&iomem, zeroed).expect("write");
    let out = Command::cargo_bin("daxplug")
        .expect("binary")
        .arg("--root")
        .arg(dir.path())
        .arg("list")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("needs_root") && text.contains("read without root"),
        "{text}"
    );
    let (code, err) = fails(dir.path(), &["set", "dax0.0", "unplugged", "--dry-run"]);
    assert_eq!(code, 3, "{err}");
}
