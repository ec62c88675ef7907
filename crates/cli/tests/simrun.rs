//! The emulated machine as real files: `daxplug sim mount` and `daxplug sim run` (FUSE).
//!
//! Needs root and /dev/fuse (each test prints one SKIP line without them). Nothing here
//! can touch the host's own /sys: mounts go on temporary directories, `sim run` builds a
//! private mount namespace, and the one test that asks for a mount on /sys runs that
//! request inside `unshare --mount` so that even a broken refusal could not hide the host's.

mod common;

use common::{daxplug, say};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_daxplug");

fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Why FUSE cannot be used here, if it cannot.
fn no_fuse() -> Option<String> {
    if !rustix::process::getuid().is_root() {
        return Some("not root".to_owned());
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(_) => None,
        Err(e) => Some(format!("/dev/fuse: {e}")),
    }
}

macro_rules! need_fuse {
    ($name:expr) => {
        if let Some(why) = no_fuse() {
            say(&format!("SKIP {} (FUSE): {why}", $name));
            return;
        }
    };
}

fn ok(args: &[&str]) -> String {
    let out = daxplug(args);
    assert!(
        out.status.success(),
        "daxplug {args:?} failed ({:?}):\n{}",
        out.status.code(),
        common::output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a bash script (bash, not dash: dash reports every failed write as "I/O error").
fn sh(script: &str) -> (String, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh runs");
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A machine file made from a preset, with no random kernel allocations (every offline of
/// an idle block succeeds, so two runs of the same commands agree).
fn machine(dir: &Path, name: &str, preset: &str, kernel: &str) -> String {
    let file = dir.join(name).display().to_string();
    ok(&[
        "sim",
        "init",
        &file,
        "--preset",
        preset,
        "--kernel",
        kernel,
        "--kernel-allocs",
        "0",
    ]);
    file
}

fn mounted(dir: &Path) -> bool {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
        info.lines()
            .any(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap_or("")))
    })
}

/// `daxplug sim mount FILE DIR` running in the background.
struct Served {
    child: Option<Child>,
    dir: PathBuf,
}

impl Served {
    fn start(file: &str, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("mount point");
        let child = common::command()
            .args(["sim", "mount", file])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sim mount starts");
        let started = Instant::now();
        while !dir.join("sys/devices/system/memory").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the mount did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child: Some(child),
            dir: dir.to_owned(),
        }
    }

    /// SIGTERM, then the server's output.
    fn stop(mut self) -> Output {
        let child = self.child.take().expect("running");
        let pid =
            rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("pid")).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("kill");
        child.wait_with_output().expect("wait")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

#[test]
fn a_mount_answers_as_the_machine_file_does() {
    need_fuse!("a_mount_answers_as_the_machine_file_does");
    let tmp = tempfile::tempdir().expect("tmp");
    for (preset, kernel) in [("hmem", "legacy"), ("pmem", "legacy"), ("cxl", "atomic")] {
        let served = machine(tmp.path(), &format!("{preset}.json"), preset, kernel);
        let copy = tmp.path().join(format!("{preset}-copy.json"));
        std::fs::copy(&served, &copy).expect("copy");
        let copy = copy.display().to_string();
        let mnt = tmp.path().join(format!("mnt-{preset}"));
        let run = tmp
            .path()
            .join(format!("run-{preset}"))
            .display()
            .to_string();
        let root = mnt.display().to_string();
        let s = Served::start(&served, &mnt);
        let listed = ok(&["--sim", &copy, "list", "--json", "--blocks"]);
        assert_eq!(
            ok(&["--root", &root, "list", "--json", "--blocks"]),
            listed,
            "{preset}: list through the mount"
        );
        let report: serde_json::Value = serde_json::from_str(&listed).expect("json");
        let names: Vec<String> = report["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| d["name"].as_str().expect("name").to_owned())
            .collect();
        assert!(!names.is_empty());
        for dev in &names {
            assert_eq!(
                ok(&["--root", &root, "status", dev, "--json"]),
                ok(&["--sim", &copy, "status", dev, "--json"]),
                "{preset}: status {dev}"
            );
        }
        // The same transition through the mount and on the file gives the same machine.
        let dev = names[0].as_str();
        if preset == "hmem" {
            ok(&["--sim", &copy, "sim", "modprobe", "kmem"]);
            std::fs::write(mnt.join(".daxplug/modprobe"), "kmem\n").expect("modprobe");
        }
        for target in ["online_movable", "unplugged", "online_movable"] {
            let a = daxplug(&["--root", &root, "--run-dir", &run, "set", dev, target]);
            let b = daxplug(&["--sim", &copy, "set", dev, target]);
            assert_eq!(
                a.status.code(),
                b.status.code(),
                "{preset}: set {target}: {}\n{}",
                String::from_utf8_lossy(&a.stderr),
                String::from_utf8_lossy(&b.stderr)
            );
            assert_eq!(
                ok(&["--root", &root, "list", "--json", "--blocks"]),
                ok(&["--sim", &copy, "list", "--json", "--blocks"]),
                "{preset}: after set {target}"
            );
        }
        let out = s.stop();
        assert!(
            out.status.success(),
            "{preset}: sim mount exit {:?}",
            out.status
        );
    }
}

#[test]
fn errnos_links_and_vanishing_blocks_through_the_mount() {
    need_fuse!("errnos_links_and_vanishing_blocks_through_the_mount");
    let tmp = tempfile::tempdir().expect("tmp");
    let file = machine(tmp.path(), "m.json", "hmem", "legacy");
    ok(&["--sim", &file, "sim", "modprobe", "kmem"]);
    let mnt = tmp.path().join("mnt");
    let s = Served::start(&file, &mnt);
    let m = mnt.display().to_string();
    let mem = format!("{m}/sys/devices/system/memory");

    assert_eq!(sh(&format!("cat {mem}/memory40/state")).0, "online");
    assert_eq!(sh(&format!("cat {mem}/block_size_bytes")).0, "8000000");
    let (_, err) = sh(&format!("echo bogus > {mem}/memory40/state"));
    assert!(err.contains("Invalid argument"), "{err}");
    let (_, err) = sh(&format!("echo 1 > {mem}/block_size_bytes"));
    assert!(
        err.contains("Permission denied"),
        "read-only attribute: {err}"
    );
    let (_, err) = sh(&format!("cat {m}/sys/bus/dax/drivers/kmem/unbind"));
    assert!(
        err.contains("Permission denied"),
        "write-only attribute: {err}"
    );
    let (_, err) = sh(&format!(
        "touch {m}/sys/bus/dax/newfile; mkdir {m}/sys/newdir"
    ));
    assert!(
        err.contains("Permission denied") && err.contains("Operation not permitted"),
        "no new files or directories in sysfs: {err}"
    );
    assert_eq!(
        sh(&format!("readlink {m}/sys/bus/dax/devices/dax0.0")).0,
        "../../../devices/platform/hmem.0/dax0.0"
    );
    assert_eq!(
        sh(&format!(
            "readlink -f {m}/sys/bus/dax/devices/dax0.0/driver"
        ))
        .0,
        format!("{m}/sys/bus/dax/drivers/kmem")
    );
    assert_eq!(
        sh(&format!("ls -d {mem}/memory4[0-7] | wc -l")).0,
        "8",
        "the device's blocks are listed"
    );
    // Offline every block, keep memory40/state open, unbind kmem: the blocks vanish and
    // the open file answers ENODEV, as kernfs does for a removed attribute.
    let (out, err) = sh(&format!(
        "exec 3> {mem}/memory40/state
         for b in 40 41 42 43 44 45 46 47; do echo offline > {mem}/memory$b/state || exit 1; done
         echo dax0.0 > {m}/sys/bus/dax/drivers/kmem/unbind || exit 2
         ls -d {mem}/memory4[0-7] 2>/dev/null | wc -l
         echo online >&3"
    ));
    assert_eq!(out, "0", "blocks gone after the unbind ({err})");
    assert!(err.contains("No such device"), "{err}");
    assert!(
        !sh(&format!("cat {m}/proc/iomem"))
            .0
            .contains("System RAM (kmem)"),
        "/proc/iomem follows"
    );
    let out = s.stop();
    assert!(out.status.success());
    // Saved: the file says what the mount showed.
    assert!(!ok(&["--sim", &file, "sim", "ls", "/sys/bus/dax/drivers/kmem"]).contains("dax0.0"));
}

#[test]
fn a_blocking_write_blocks_and_a_timeout_interrupts_it() {
    need_fuse!("a_blocking_write_blocks_and_a_timeout_interrupts_it");
    let tmp = tempfile::tempdir().expect("tmp");
    let file = machine(tmp.path(), "m.json", "hmem", "legacy");
    ok(&["--sim", &file, "sim", "modprobe", "kmem"]);
    ok(&["--sim", &file, "set", "dax0.0", "online_movable"]);
    // Each offline takes 40 passes of 25 ms of real time: 1 s per block.
    ok(&["--sim", &file, "sim", "fault", "slow-offline", "40"]);
    ok(&["--sim", &file, "sim", "fault", "step-delay", "25000"]);
    let mnt = tmp.path().join("mnt");
    let s = Served::start(&file, &mnt);
    let root = mnt.display().to_string();
    let run = tmp.path().join("run").display().to_string();
    let t0 = Instant::now();
    let out = daxplug(&[
        "--root",
        &root,
        "--run-dir",
        &run,
        "set",
        "dax0.0",
        "unplugged",
        "--timeout",
        "1500ms",
    ]);
    let took = t0.elapsed();
    assert_eq!(
        out.status.code(),
        Some(6),
        "rolled back: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "the write blocked until the timeout interrupted it (took {took:?})"
    );
    let status = ok(&["--root", &root, "status", "dax0.0", "--json"]);
    assert!(status.contains("\"state\": \"online_movable\""), "{status}");
    drop(s);
}

#[test]
fn sigterm_unmounts_and_saves() {
    need_fuse!("sigterm_unmounts_and_saves");
    let tmp = tempfile::tempdir().expect("tmp");
    let file = machine(tmp.path(), "m.json", "hmem", "legacy");
    let mnt = tmp.path().join("mnt");
    let s = Served::start(&file, &mnt);
    assert!(mounted(&mnt));
    std::fs::write(
        mnt.join("sys/devices/system/memory/auto_online_blocks"),
        "offline",
    )
    .expect("write through the mount");
    let out = s.stop();
    assert!(out.status.success(), "exit {:?}", out.status);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("machine saved"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!mounted(&mnt), "unmounted on SIGTERM");
    assert_eq!(
        ok(&[
            "--sim",
            &file,
            "sim",
            "read",
            "/sys/devices/system/memory/auto_online_blocks"
        ]),
        "offline\n"
    );
}

#[test]
fn mounting_over_the_hosts_own_files_is_refused() {
    need_fuse!("mounting_over_the_hosts_own_files_is_refused");
    let tmp = tempfile::tempdir().expect("tmp");
    let file = machine(tmp.path(), "m.json", "hmem", "legacy");
    for dir in ["/sys", "/proc", "/sys/devices/system", "/"] {
        // In a namespace of its own, so that even a broken check hides nothing of the host.
        let out = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                BIN,
                "sim",
                "mount",
                &file,
                dir,
            ])
            .output()
            .expect("unshare runs");
        assert_eq!(out.status.code(), Some(2), "{dir}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("refusing to mount"), "{dir}: {err}");
    }
}

/// daxctl, installed from Debian when absent (as root with apt-get; `apt-get update` first
/// when the install fails, as on a machine whose package lists were never fetched), or why not.
/// Once per test process: two tests installing at the same time made one lose dpkg's lock
/// (and print a SKIP); apt also waits for a lock another process holds.
fn daxctl() -> Result<(), String> {
    static ONCE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    ONCE.get_or_init(install_daxctl).clone()
}

fn install_daxctl() -> Result<(), String> {
    let have = || {
        Command::new("daxctl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if have() {
        return Ok(());
    }
    if !rustix::process::geteuid().is_root() {
        return Err(
            "daxctl is not installed, and only root can install it (apt-get install daxctl)"
                .to_owned(),
        );
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=300"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let install = || apt(&["install", "-y", "-qq", "--no-install-recommends", "daxctl"]);
    if (install() || (apt(&["update", "-qq"]) && install())) && have() {
        Ok(())
    } else {
        Err("daxctl is not installed and `apt-get update; apt-get install daxctl` failed (no apt, or no network to the package registry)".to_owned())
    }
}

#[test]
fn daxctl_under_sim_run_gets_the_real_kernels_results() {
    need_fuse!("daxctl_under_sim_run_gets_the_real_kernels_results");
    if let Err(why) = daxctl() {
        say(&format!("SKIP daxctl under sim run: {why}"));
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    // The real kernel's transcript starts with kmem loaded under
    // auto_online_blocks=online_movable (tests/e2e/guest/kernel-zones.sh).
    let file = machine(tmp.path(), "m.json", "hmem", "legacy");
    ok(&[
        "--sim",
        &file,
        "sim",
        "write",
        "/sys/devices/system/memory/auto_online_blocks",
        "online_movable",
    ]);
    ok(&["--sim", &file, "sim", "modprobe", "kmem"]);
    let script = top()
        .join("tests/e2e/guest/daxctl.sh")
        .display()
        .to_string();
    let out = daxplug(&["sim", "run", &file, "--", "sh", &script]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::fs::read_to_string(top().join("tests/e2e/daxctl-hmem.txt")).expect("golden");
    let got = String::from_utf8_lossy(&out.stdout);
    let diff = common::line_diff(&want, &got, "kernel", " model");
    assert!(
        diff.is_empty(),
        "daxctl sees a different machine under sim run:\n{}",
        diff.join("\n")
    );

    // Without kmem loaded, daxctl's module load goes to the model, not the host.
    let file = machine(tmp.path(), "bare.json", "hmem", "legacy");
    let out = daxplug(&[
        "sim",
        "run",
        &file,
        "--",
        "daxctl",
        "reconfigure-device",
        "-m",
        "system-ram",
        "--force",
        "dax0.0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ok(&["--sim", &file, "sim", "show"]).contains("kmem loaded"));
    let listed = ok(&["--sim", &file, "list", "--json"]);
    assert!(listed.contains("\"mode\": \"system-ram\""), "{listed}");
}

#[test]
fn daxctl_on_a_captured_tree_reports_what_it_reported_on_the_real_kernel() {
    need_fuse!("daxctl_on_a_captured_tree_reports_what_it_reported_on_the_real_kernel");
    if let Err(why) = daxctl() {
        say(&format!("SKIP daxctl on a captured tree: {why}"));
        return;
    }
    // State 09: kmem unbound while a block was online (the leaked range). On the real
    // kernel daxctl printed "mode":"devdax","state":"disabled" (spec Part C).
    let tmp = tempfile::tempdir().expect("tmp");
    let tree = tmp.path().join("tree");
    common::copy_tree(
        &common::fixture("hmem", "09-race-after-failed-unbind"),
        &tree,
    );
    let before = sh(&format!("cd {} && find . | sort | md5sum", tree.display())).0;
    let out = daxplug(&[
        "sim",
        "run",
        tree.to_str().expect("utf-8"),
        "--",
        "daxctl",
        "list",
        "-D",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("daxctl json");
    assert_eq!(v[0]["mode"], "devdax", "{v}");
    assert_eq!(v[0]["state"], "disabled", "{v}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = sh(&format!("cd {} && find . | sort | md5sum", tree.display())).0;
    assert_eq!(before, after, "the tree is left as it was");
}

#[test]
fn sim_run_sees_the_machine_and_cannot_change_the_host() {
    need_fuse!("sim_run_sees_the_machine_and_cannot_change_the_host");
    let tmp = tempfile::tempdir().expect("tmp");
    let file = machine(tmp.path(), "m.json", "pmem", "legacy");
    // The command's exit status comes back.
    assert_eq!(
        daxplug(&["sim", "run", &file, "--", "sh", "-c", "exit 3"])
            .status
            .code(),
        Some(3)
    );
    // Every mount under /sys is read-only except the emulated machine's.
    let out = daxplug(&["sim", "run", &file, "--", "cat", "/proc/self/mountinfo"]);
    let info = String::from_utf8_lossy(&out.stdout);
    let mut emulated = Vec::new();
    let mut visible = std::collections::BTreeMap::new();
    for l in info.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let fstype = l
            .split(" - ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or("");
        if f.len() > 5 && f[4].starts_with("/sys/") {
            // The last mount on a path is the visible one.
            visible.insert(f[4].to_owned(), (f[5].to_owned(), fstype.to_owned()));
        }
    }
    for (point, (opts, fstype)) in &visible {
        if fstype == "fuse.daxplug" {
            emulated.push(point.clone());
        } else {
            assert!(
                opts.split(',').any(|o| o == "ro"),
                "{point} is writable: {opts}"
            );
        }
    }
    for p in [
        "/sys/bus/dax",
        "/sys/devices/system/memory",
        "/sys/devices/system/node",
        "/sys/module",
    ] {
        assert!(
            emulated.iter().any(|e| e == p),
            "{p} is not emulated: {emulated:?}"
        );
    }
    // daxplug itself, run there as on a real machine, acts on the model (the test guard
    // DAXPLUG_REFUSE_HOST lets it, because /sys/devices/system/memory is the model's).
    let out = daxplug(&[
        "sim",
        "run",
        &file,
        "--",
        BIN,
        "set",
        "dax0.0",
        "online_movable",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = ok(&["--sim", &file, "status", "dax0.0", "--json"]);
    assert!(status.contains("\"state\": \"online_movable\""), "{status}");
    // Its journal and lock went to the machine's run directory.
    assert!(Path::new(&format!("{file}.run")).is_dir());
}

/// The daemon and an operator on one machine (under `sim run`, so that both act on it at
/// once): `set` on a device the daemon manages is refused and says why; once held it goes
/// through and the daemon leaves the device alone; released, the daemon applies its rule.
#[test]
fn set_beside_a_running_daemon_needs_a_hold() {
    need_fuse!("set_beside_a_running_daemon_needs_a_hold");
    let tmp = tempfile::tempdir().expect("tmp");
    let file = machine(tmp.path(), "m.json", "hmem", "legacy");
    let policy = tmp.path().join("p.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nmatch = { backing = \"hmem:0x140000000-0x17fffffff\" }\nstate = \"online_movable\"\n",
    )
    .expect("policy");
    let bin = BIN;
    let script = format!(
        "{bin} daemon --config {p} --exit-after 6s > /dev/null 2>&1 &
         sleep 2
         {bin} set dax0.0 unplugged; echo rc=$?
         {bin} hold dax0.0 --reason firmware
         {bin} set dax0.0 unplugged > /dev/null; echo rc=$?
         sleep 1.5
         {bin} list | grep -c 'held by'
         {bin} status dax0.0 --json | grep -o '\"state\": \"[a-z_]*\"' | head -1
         {bin} release dax0.0
         sleep 1.5
         {bin} status dax0.0 --json | grep -o '\"state\": \"[a-z_]*\"' | head -1
         wait",
        p = policy.display()
    );
    let out = ok(&["sim", "run", &file, "--", "sh", "-c", &script]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(out.contains("is managed by the daxplug daemon"), "{out}");
    let rcs: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("rc="))
        .copied()
        .collect();
    assert_eq!(rcs, vec!["rc=5", "rc=0"], "{out}");
    let states: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains("\"state\""))
        .copied()
        .collect();
    assert_eq!(
        states,
        vec!["\"state\": \"unbound\"", "\"state\": \"online_movable\""],
        "held, the device stays where the operator put it; released, the rule applies: {out}"
    );
    assert!(lines.contains(&"1"), "list shows the hold: {out}");
}

/// The daemon killed outright (SIGKILL) in the middle of a transition, the machine served
/// by another process as a kernel would be: started again, its first act is recovering the
/// transition from the journal, and the device ends where the rule wants it.
#[test]
fn a_daemon_killed_mid_transition_recovers_first_when_started_again() {
    need_fuse!("a_daemon_killed_mid_transition_recovers_first_when_started_again");
    let tmp = tempfile::tempdir().expect("tmp");
    let file = machine(tmp.path(), "m.json", "hmem", "legacy");
    ok(&["--sim", &file, "set", "dax0.0", "online_movable", "--force"]);
    // Every block's offline takes 20 passes of 20 ms: the transition lasts seconds.
    ok(&["--sim", &file, "sim", "fault", "slow-offline", "20"]);
    ok(&["--sim", &file, "sim", "fault", "step-delay", "20000"]);
    let policy = tmp.path().join("p.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"devdax\"\n",
    )
    .expect("policy");
    let mnt = tmp.path().join("mnt");
    let run = tmp.path().join("run");
    let served = Served::start(&file, &mnt);
    let daemon = |extra: &[&str]| {
        let mut c = common::command();
        c.arg("--root")
            .arg(&mnt)
            .arg("--run-dir")
            .arg(&run)
            .args(["daemon", "--config"])
            .arg(&policy)
            .args(extra);
        c
    };
    let mut first = daemon(&["--exit-after", "60s"])
        .stdout(Stdio::null())
        .spawn()
        .expect("daemon");
    let journal = run.join("daxplug/journal-dax0.0.json");
    let started = Instant::now();
    while !journal.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the daemon never began its transition"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    first.kill().expect("SIGKILL");
    first.wait().expect("wait");
    assert!(journal.exists(), "the kill left the journal");
    let again = daemon(&["--once"]).output().expect("daemon again");
    let log = String::from_utf8_lossy(&again.stdout);
    let first_line = log.lines().next().unwrap_or_default();
    assert!(
        first_line.contains("recovered an interrupted transition of dax0.0"),
        "recovery is not the first thing: {log}"
    );
    assert!(
        again.status.success(),
        "{log}{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(!journal.exists());
    let status = ok(&[
        "--root",
        &mnt.display().to_string(),
        "status",
        "dax0.0",
        "--json",
    ]);
    assert!(status.contains("\"state\": \"devdax\""), "{status}");
    drop(served);
}
