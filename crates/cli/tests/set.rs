//! `daxplug set` and `daxplug recover` from the command line: outcomes, exit codes, bad
//! input, dry runs, and the guard that keeps tests off the machine's own /sys.

mod common;

use common::daxplug;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn code(args: &[&str]) -> (i32, String, String) {
    let out = daxplug(args);
    (
        out.status.code().expect("code"),
        String::from_utf8(out.stdout).expect("utf-8"),
        String::from_utf8(out.stderr).expect("utf-8"),
    )
}

fn machine(dir: &Path, preset: &str, kernel: &str) -> String {
    let f = dir.join("m.json").display().to_string();
    let (c, _, e) = code(&["sim", "init", &f, "--preset", preset, "--kernel", kernel]);
    assert_eq!(c, 0, "{e}");
    f
}

fn json_set(f: &str, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--sim", f, "set"];
    all.extend_from_slice(args);
    all.push("--json");
    let (c, out, err) = code(&all);
    (
        c,
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}")),
    )
}

#[test]
fn round_trip_on_both_kernels() {
    for kernel in ["legacy", "atomic"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = machine(dir.path(), "pmem", kernel);
        let (c, v) = json_set(&f, &["dax0.0", "online_movable"]);
        assert_eq!(c, 0, "{v}");
        let r = &v["results"][0];
        assert_eq!(
            (
                r["start"].as_str(),
                r["end"].as_str(),
                r["outcome"].as_str()
            ),
            (Some("devdax"), Some("online_movable"), Some("done"))
        );
        assert_eq!(v["exit_code"], 0);
        let (c, v) = json_set(&f, &["dax0.0", "unplugged"]);
        assert_eq!(c, 0, "{v}");
        let end = v["results"][0]["end"].as_str().expect("end").to_owned();
        let protocol = v["results"][0]["protocol"]
            .as_str()
            .expect("protocol")
            .to_owned();
        match kernel {
            "atomic" => assert_eq!((end.as_str(), protocol.as_str()), ("unplugged", "native")),
            _ => assert_eq!((end.as_str(), protocol.as_str()), ("unbound", "fallback")),
        }
        let (c, v) = json_set(&f, &["dax0.0", "devdax"]);
        assert_eq!(c, 0, "{v}");
        let (c, v) = json_set(&f, &["dax0.0", "devdax"]);
        assert_eq!(
            (c, v["results"][0]["outcome"].as_str()),
            (0, Some("no_change"))
        );
    }
}

#[test]
fn rolled_back_stuck_and_refused_have_their_own_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = machine(dir.path(), "pmem", "legacy");
    assert_eq!(json_set(&f, &["dax0.0", "online_movable"]).0, 0);
    // An unmovable page: the unplug fails and is rolled back.
    code(&["--sim", &f, "sim", "fault", "busy-block", "44"]);
    let (c, v) = json_set(&f, &["dax0.0", "unplugged"]);
    assert_eq!(c, 6, "{v}");
    assert_eq!(v["results"][0]["end"], "online_movable");
    assert!(
        v["results"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("memory44")),
        "{v}"
    );
    code(&["--sim", &f, "sim", "fault", "clear"]);
    // online_kernel needs --force.
    let (c, stdout, _) = code(&["--sim", &f, "set", "dax0.0", "online_kernel"]);
    assert_eq!(c, 5);
    assert!(stdout.contains("--force"), "{stdout}");
    // Leak the range behind daxplug's back: stuck, and refused.
    code(&[
        "--sim",
        &f,
        "sim",
        "write",
        "/sys/bus/dax/drivers/kmem/unbind",
        "dax0.0",
    ]);
    let (c, stdout, _) = code(&["--sim", &f, "set", "dax0.0", "unplugged", "--force"]);
    assert_eq!(c, 7);
    assert!(
        stdout.contains("STUCK")
            && stdout.contains("memory41-memory47")
            && stdout.contains("reboot"),
        "{stdout}"
    );
}

#[test]
fn a_timeout_rolls_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = machine(dir.path(), "pmem", "atomic");
    assert_eq!(json_set(&f, &["dax0.0", "online_movable"]).0, 0);
    code(&["--sim", &f, "sim", "fault", "slow-offline", "1000000"]);
    code(&["--sim", &f, "sim", "fault", "step-delay", "20"]);
    let (c, v) = json_set(&f, &["dax0.0", "unplugged", "--timeout", "200ms"]);
    assert_eq!(c, 6, "{v}");
    assert_eq!(v["results"][0]["reason"], "the timeout expired");
    assert_eq!(v["results"][0]["end"], "online_movable");
}

#[test]
fn sigterm_interrupts_a_slow_offline_and_rolls_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = machine(dir.path(), "pmem", "legacy");
    assert_eq!(json_set(&f, &["dax0.0", "online_movable"]).0, 0);
    code(&["--sim", &f, "sim", "fault", "slow-offline", "1000000"]);
    code(&["--sim", &f, "sim", "fault", "step-delay", "20"]);
    let child = common::command()
        .args(["--sim", &f, "set", "dax0.0", "unplugged", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    // Well inside the first block's offline, which the fault makes last for minutes.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("ends");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(6), "{v}");
    assert_eq!(v["results"][0]["reason"], "cancelled by a signal");
    assert_eq!(v["results"][0]["end"], "online_movable");
    let actions = v["results"][0]["actions"].to_string();
    assert!(
        actions.contains("offline > /sys/devices/system/memory/memory"),
        "{actions}"
    );
    assert!(actions.contains(": interrupted"), "{actions}");
}

#[test]
fn bad_input_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = machine(dir.path(), "hmem", "legacy");
    let before = std::fs::read_to_string(&f).expect("machine");
    for (args, want, text) in [
        (vec!["set", "dax0.0", "offline"], 2, "use unplugged"),
        (vec!["set", "dax0.0", "up"], 2, "expected unplugged, online"),
        (
            vec!["set", "dax9.9", "online"],
            4,
            "no dax device named dax9.9",
        ),
        (
            vec!["set", "../dax0.0", "online"],
            2,
            "expected daxREGION.ID",
        ),
        (
            vec!["set", "dax0.0", "online", "--timeout", "soon"],
            2,
            "not a duration",
        ),
    ] {
        let mut all = vec!["--sim", f.as_str()];
        all.extend(args.iter().copied());
        let (c, out, err) = code(&all);
        assert_eq!(c, want, "{args:?}: {err}");
        assert!(err.contains(text), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
    }
    let after = std::fs::read_to_string(&f).expect("machine");
    // The clock may move (reads are scheduling points); the devices and blocks may not.
    let strip = |s: &str| -> Value {
        let mut v: Value = serde_json::from_str(s).expect("json");
        if let Some(o) = v.as_object_mut() {
            for k in [
                "clock",
                "rng",
                "client_steps",
                "uevents",
                "udev",
                "actor_log",
                "dmesg",
            ] {
                o.remove(k);
            }
        }
        v
    };
    assert_eq!(strip(&before), strip(&after));
}

fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            let p = e.path();
            let t = e.file_type().expect("type");
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() {
                out.push((p.clone(), std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn dry_run_on_a_real_tree_prints_the_plan_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    common::copy_tree(&common::fixture("hmem", "04-online-movable"), &root);
    let before = snapshot(&root);
    let (c, out, err) = code(&[
        "--root",
        root.to_str().expect("utf-8"),
        "set",
        "dax0.0",
        "unplugged",
        "--dry-run",
    ]);
    assert_eq!(c, 0, "{err}");
    assert_eq!(snapshot(&root), before, "nothing written");
    assert!(!root.join("run").exists(), "not even a lock file");
    insta::assert_snapshot!("dry_run_unplug_legacy", out);
}

#[test]
fn a_stuck_tree_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    common::copy_tree(&common::fixture("hmem", "10-stuck-final"), &root);
    let before = snapshot(&root);
    let (c, out, _) = code(&[
        "--root",
        root.to_str().expect("utf-8"),
        "set",
        "dax0.0",
        "online_movable",
    ]);
    assert_eq!(c, 7, "{out}");
    assert!(out.contains("memory40-memory47"), "{out}");
    let after: Vec<_> = snapshot(&root)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(root.join("run")))
        .collect();
    assert_eq!(after, before);
}

#[test]
fn the_host_is_never_touched_from_tests() {
    // No --root: this would be the machine's own /sys. The guard refuses before opening it.
    let (c, out, err) = code(&["set", "dax0.0", "unplugged"]);
    assert_eq!(c, 2, "{out}");
    assert!(err.contains("DAXPLUG_REFUSE_HOST"), "{err}");
    let (c, _, err) = code(&["recover"]);
    assert_eq!(c, 2, "{err}");
}

#[test]
fn set_all_and_recover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = machine(dir.path(), "large", "atomic");
    for state in ["online_movable", "unplugged"] {
        let (c, v) = json_set(&f, &["all", state]);
        assert_eq!(c, 0, "{v}");
        let results = v["results"].as_array().expect("results");
        assert_eq!(results.len(), 8);
        assert!(results.iter().all(|r| r["outcome"] == "done"), "{v}");
    }
    // cxl's devices were onlined into Normal at boot, where kernel allocations pin them:
    // the unplug fails and every device is put back, and `all` reports the worst outcome.
    let g = dir.path().join("cxl.json").display().to_string();
    code(&["sim", "init", &g, "--preset", "cxl", "--kernel", "atomic"]);
    code(&["--sim", &g, "sim", "step", "500"]);
    let (c, v) = json_set(&g, &["all", "unplugged"]);
    assert_eq!(c, 6, "{v}");
    assert!(
        v["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["end"] == "online_kernel"),
        "{v}"
    );
    let (c, out, _) = code(&["--sim", &f, "recover"]);
    assert_eq!(c, 0);
    assert!(out.contains("Nothing to recover"), "{out}");
}

#[test]
fn a_device_open_by_a_process_is_refused_on_a_real_tree() {
    // A captured devdax tree with a /proc in which process 4242 holds /dev/dax0.0 open
    // and 4243 has it mapped: the scan runs beside the observation on a real tree.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    common::copy_tree(&common::fixture("hmem", "07-devdax"), &root);
    let proc = root.join("proc");
    for pid in ["4242", "4243", "4244"] {
        std::fs::create_dir_all(proc.join(pid).join("fd")).expect("mkdir");
        std::os::unix::fs::symlink("/usr/bin/app", proc.join(pid).join("exe")).expect("exe");
        std::fs::write(proc.join(pid).join("maps"), "").expect("maps");
    }
    std::os::unix::fs::symlink("/dev/dax0.0", proc.join("4242/fd/7")).expect("fd");
    std::fs::write(
        proc.join("4243/maps"),
        "7f0000000000-7f0040000000 rw-s 00000000 00:06 9 /dev/dax0.0\n",
    )
    .expect("maps");
    std::os::unix::fs::symlink("/dev/null", proc.join("4244/fd/0")).expect("fd");
    let before = std::fs::read_link(root.join("sys/bus/dax/devices/dax0.0/driver")).expect("link");
    let root = root.display().to_string();
    let (c, out, err) = code(&["--root", &root, "set", "dax0.0", "online_movable", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    assert_eq!(c, 5, "{v}");
    assert_eq!(v["results"][0]["outcome"], "refused");
    assert_eq!(
        v["results"][0]["reason"],
        "/dev/dax0.0 is open or mapped by processes 4242, 4243: switching it would pull the memory from under them; pass --force to do it anyway"
    );
    assert_eq!(v["results"][0]["actions"], serde_json::json!([]));
    let after = std::fs::read_link(Path::new(&root).join("sys/bus/dax/devices/dax0.0/driver"))
        .expect("link");
    assert_eq!(before, after, "nothing changed");
}
