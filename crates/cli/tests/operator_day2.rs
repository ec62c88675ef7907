//! The second operator audit (carving, holds, placement, policy, packaging), each problem
//! reproduced on the emulated machine as the audit ran it, with what an operator expects.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{command, output_text};
use serde_json::Value;

/// A machine file in `dir`, and the way to run daxplug on it.
struct Machine {
    file: String,
}

impl Machine {
    fn new(dir: &Path, name: &str, preset: &str, kernel: &str) -> Self {
        let file = dir.join(name).display().to_string();
        let o = command()
            .args(["sim", "init", &file, "--preset", preset, "--kernel", kernel])
            .args(["--kernel-allocs", "0"])
            .output()
            .expect("runs");
        assert!(o.status.success(), "{}", output_text(&o));
        Machine { file }
    }

    /// Runs `daxplug --sim FILE ARGS`: the exit code and stdout + stderr.
    fn run(&self, args: &[&str]) -> (i32, String) {
        let o = command()
            .args(["--sim", &self.file])
            .args(args)
            .output()
            .expect("runs");
        (o.status.code().unwrap_or(-1), output_text(&o))
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, text) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {text}");
        text
    }

    fn json(&self, args: &[&str]) -> Value {
        let o = command()
            .args(["--sim", &self.file])
            .args(args)
            .output()
            .expect("runs");
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", output_text(&o)))
    }

    /// Makes the emulated `/dev/DEV` open by process `pid`.
    fn opened_by(&self, dev: &str, pid: u32) {
        let mut v: Value =
            serde_json::from_str(&std::fs::read_to_string(&self.file).expect("read"))
                .expect("JSON");
        v["dax_open"] = serde_json::json!({ dev: [pid] });
        std::fs::write(&self.file, v.to_string()).expect("write");
    }

    fn state(&self, dev: &str) -> String {
        let v = self.json(&["status", dev, "--json"]);
        v["devices"][0]["state"].as_str().expect("state").to_owned()
    }

    fn daemon(&self, policy: &Path, secs: u32) -> Child {
        command()
            .args(["--sim", &self.file, "daemon", "--config"])
            .arg(policy)
            .args(["--exit-after", &format!("{secs}s")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("daemon starts")
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn finish(child: Child) -> String {
    let o = child.wait_with_output().expect("daemon ends");
    output_text(&o)
}

/// M1: `create --state online|online_kernel` gets the same safety check as `set`.
#[test]
fn create_online_needs_force_like_set() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Machine::new(tmp.path(), "h.json", "hmem", "legacy");
    m.ok(&["resize", "dax0.0", "512M"]);
    for state in ["online", "online_kernel"] {
        for extra in [&[][..], &["--dry-run"]] {
            let mut args = vec!["create", "0", "--size", "128M", "--state", state];
            args.extend_from_slice(extra);
            let (code, text) = m.run(&args);
            assert_eq!(code, 5, "{args:?}: {text}");
            assert!(text.contains("--force"), "{text}");
        }
    }
    assert_eq!(
        m.json(&["list", "--json"])["devices"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let (code, text) = m.run(&[
        "create",
        "0",
        "--size",
        "128M",
        "--state",
        "online_kernel",
        "--force",
    ]);
    assert_eq!(code, 0, "{text}");
}

/// M3, m17: free space per region in list and JSON; create without a size takes it all; a
/// missing region is exit 4; refusals speak of the region, not a device not yet made.
#[test]
fn free_space_is_shown_and_create_takes_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Machine::new(tmp.path(), "c.json", "cxl", "atomic");
    let v = m.json(&["list", "--json"]);
    let region1 = &v["regions"][1];
    assert_eq!(region1["available_size"], 512u64 << 20, "{region1}");
    assert_eq!(region1["devices"], serde_json::json!(["dax1.0"]));
    assert!(m.ok(&["list"]).contains("FREE"));
    let (code, text) = m.run(&["create", "1", "--size", "1G"]);
    assert_eq!(code, 5, "{text}");
    assert!(text.contains("region 1 has 512 MiB free"), "{text}");
    assert!(
        !text.contains("dax1.1"),
        "no device is named before it exists: {text}"
    );
    let (code, text) = m.run(&["create", "1", "--size", "3M"]);
    assert_eq!(code, 5);
    assert!(text.contains("region 1's alignment (2 MiB)"), "{text}");
    m.ok(&["create", "1"]);
    assert_eq!(
        m.json(&["status", "dax1.1", "--json"])["devices"][0]["size"],
        512u64 << 20
    );
    assert_eq!(
        m.json(&["list", "--json"])["regions"][1]["available_size"],
        0
    );
    let (code, text) = m.run(&["create", "region1", "--size", "max"]);
    assert_eq!(code, 5, "{text}");
    assert!(text.contains("no free space"), "{text}");
    let (code, text) = m.run(&["create", "7", "--size", "2M"]);
    assert_eq!(code, 4, "{text}");
}

/// M4: a carved region's devices share their backing; doctor's fix for a name-only rule
/// takes that one device only, and the backing survives a resize.
#[test]
fn doctor_suggests_a_match_for_one_device() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Machine::new(tmp.path(), "c.json", "cxl", "atomic");
    m.ok(&["create", "1", "--size", "512M"]);
    let policy = tmp.path().join("p.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nmatch = { name = \"dax1.1\" }\nstate = \"devdax\"\n",
    )
    .expect("policy");
    let doctor = m.json(&[
        "doctor",
        "--json",
        "--config",
        policy.to_str().expect("utf-8"),
    ]);
    let fix = doctor["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["code"] == "name_only_rule")
        .and_then(|f| f["fix"].as_str())
        .expect("name_only_rule")
        .to_owned();
    let suggested = fix.split(" (").next().expect("the match");
    assert!(suggested.contains("within"), "{fix}");
    std::fs::write(
        &policy,
        format!("[[rule]]\n{suggested}\nstate = \"devdax\"\n"),
    )
    .expect("policy");
    let check = m.ok(&[
        "daemon",
        "--config",
        policy.to_str().expect("utf-8"),
        "--check-config",
    ]);
    assert!(
        check.contains("rule 1 (devdax): dax1.1\n"),
        "takes dax1.1 alone:\n{check}"
    );

    let h = Machine::new(tmp.path(), "h.json", "hmem", "legacy");
    let before = h.json(&["list", "--json"])["devices"][0]["backing"].clone();
    h.ok(&["resize", "dax0.0", "512M"]);
    let after = h.json(&["list", "--json"])["devices"][0]["backing"].clone();
    assert_eq!(
        before, after,
        "a resize does not change what backs the region"
    );
}

/// M5, m8, m9: holds are per holder, a short one never ends a long one, scripts see them,
/// and destroy ends them.
#[test]
fn holds_are_per_holder_and_visible() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Machine::new(tmp.path(), "c.json", "cxl", "legacy");
    m.ok(&[
        "hold", "dax0.0", "--for", "1h", "--reason", "long job", "--holder", "alice",
    ]);
    let second = m.ok(&[
        "hold",
        "dax0.0",
        "--for",
        "1s",
        "--reason",
        "quick look",
        "--holder",
        "bob",
    ]);
    assert!(second.contains("Also held by alice"), "{second}");
    std::thread::sleep(Duration::from_millis(2100));
    let v = m.json(&["list", "--json"]);
    let holds = &v["devices"][0]["holds"];
    assert_eq!(
        holds.as_array().map(Vec::len),
        Some(1),
        "bob's lapsed, alice's stays: {holds}"
    );
    assert_eq!(holds[0]["holder"], "alice");
    assert_eq!(holds[0]["reason"], "long job");
    assert!(m.ok(&["status", "dax0.0"]).contains("held by alice"));
    let (code, text) = m.run(&["release", "dax0.0", "--holder", "bob"]);
    assert_eq!(code, 5, "bob holds nothing, alice does: {text}");
    assert!(text.contains("held by alice"), "{text}");

    m.ok(&["create", "1", "--size", "256M"]);
    m.ok(&["hold", "dax1.1", "--reason", "decommission"]);
    let destroyed = m.ok(&["destroy", "dax1.1"]);
    assert!(destroyed.contains("hold on dax1.1"), "{destroyed}");
    m.ok(&["create", "1", "--size", "128M"]);
    let v = m.json(&["status", "dax1.1", "--json"]);
    assert_eq!(
        v["devices"][0]["holds"],
        serde_json::json!([]),
        "the new dax1.1 is not held"
    );
}

/// M2, M9, m11: a --sim daemon leaves the machine to other commands between passes; a
/// device created beside it is held for the operator, and the daemon logs when a hold ends.
#[test]
fn commands_beside_a_sim_daemon() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Machine::new(tmp.path(), "m.json", "cxl", "legacy");
    let policy = tmp.path().join("p.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nmatch = { target_node = 2 }\nstate = \"online_movable\"\n",
    )
    .expect("policy");
    let daemon = m.daemon(&policy, 12);
    wait_for("the daemon moves dax1.0", || {
        m.state("dax1.0") == "online_movable"
    });
    let started = Instant::now();
    m.ok(&["list"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "list does not wait for the daemon"
    );
    let created = m.ok(&["create", "1", "--size", "256M"]);
    assert!(created.contains("held dax1.1 for"), "{created}");
    assert!(
        created.contains("rule 1 would make it online_movable"),
        "{created}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        m.state("dax1.1"),
        "devdax",
        "the operator's device stays theirs"
    );
    m.ok(&["release", "dax1.1", "--all"]);
    wait_for("released, the rule applies", || {
        m.state("dax1.1") == "online_movable"
    });
    let log = finish(daemon);
    assert!(log.contains("device=dax1.1 hold ended"), "{log}");
}

/// M8, m13: a missing NFD directory is a warning, never a stop; an invalid policy is a
/// doctor finding.
#[test]
fn a_missing_nfd_directory_does_not_stop_policy() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Machine::new(tmp.path(), "n.json", "cxl", "legacy");
    let policy = tmp.path().join("nfd.toml");
    std::fs::write(
        &policy,
        format!(
            "[[rule]]\nmatch = {{ target_node = 1 }}\nstate = \"online_movable\"\n[node_feature_discovery]\nfile = \"{}\"\n",
            tmp.path().join("no-such-dir/daxplug").display()
        ),
    )
    .expect("policy");
    let p = policy.to_str().expect("utf-8");
    let check = m.ok(&["daemon", "--config", p, "--check-config"]);
    assert!(
        check.contains("warning") && check.contains("no-such-dir"),
        "{check}"
    );
    let once = m.ok(&["daemon", "--config", p, "--once"]);
    assert!(once.contains("cannot write"), "{once}");
    assert_eq!(m.state("dax0.0"), "online_movable", "{once}");

    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "bad").expect("policy");
    let (code, text) = m.run(&["doctor", "--config", bad.to_str().expect("utf-8")]);
    assert_eq!(code, 9, "{text}");
    assert!(
        text.contains("ERROR") && text.contains("kernel zone"),
        "the machine is checked too: {text}"
    );
}

/// m1, m2: size 0 is refused before any write; a dry run predicts the in-use refusal.
#[test]
fn size_zero_and_dry_runs_of_a_device_in_use() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Machine::new(tmp.path(), "c.json", "cxl", "atomic");
    let (code, text) = m.run(&["create", "1", "--size", "0"]);
    assert_eq!(code, 5, "{text}");
    m.ok(&["create", "1", "--size", "512M"]);
    let (code, text) = m.run(&["resize", "dax1.1", "0"]);
    assert_eq!(code, 5, "{text}");
    assert!(text.contains("destroy"), "{text}");
    m.opened_by("dax1.1", 4242);
    for args in [
        &["destroy", "dax1.1", "--dry-run"][..],
        &["set", "dax1.1", "online_movable", "--dry-run"],
    ] {
        let (code, text) = m.run(args);
        assert_eq!(code, 5, "{args:?}: {text}");
        assert!(text.contains("process 4242"), "{text}");
    }
}

/// m3, m7, m19: what resize, destroy and a failed create say matches what happened.
#[test]
fn layout_reports_say_what_happened() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Machine::new(tmp.path(), "h.json", "hmem", "legacy");
    let dry = m.ok(&["resize", "dax0.0", "512M", "--dry-run"]);
    assert!(dry.contains("-> unbound, 512 MiB"), "{dry}");
    let done = m.ok(&["resize", "dax0.0", "512M"]);
    assert!(done.contains("-> unbound, 512 MiB"), "{done}");
    let destroyed = m.ok(&["destroy", "dax0.0"]);
    assert!(destroyed.contains("dax0.0 stays, empty"), "{destroyed}");
    let list = m.ok(&["list"]);
    assert!(!list.contains("older than 5.10"), "{list}");
    assert!(list.contains("empty (size 0)"), "{list}");
    assert!(m.ok(&["destroy", "dax0.0"]).contains("already empty"));

    let c = Machine::new(tmp.path(), "c.json", "cxl", "legacy");
    c.ok(&["sim", "fault", "enomem-on-add", "1"]);
    let (code, text) = c.run(&["create", "1", "--size", "256M", "--state", "online_movable"]);
    assert_eq!(code, 6, "{text}");
    assert!(text.contains("the new device was deleted again"), "{text}");
}

/// m4, m5: sizes and durations in the units people write.
#[test]
fn sizes_and_durations_as_people_write_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Machine::new(tmp.path(), "c.json", "cxl", "atomic");
    let (_, text) = m.run(&["create", "1", "--size", "4T"]);
    assert!(text.contains("4 TiB"), "{text}");
    let (code, text) = m.run(&["create", "1", "--size", "2MB"]);
    assert_eq!(code, 2, "{text}");
    m.ok(&["create", "1", "--size", "0.5G"]);
    m.ok(&["hold", "dax1.1", "--for", "2d"]);
    let list = m.ok(&["list"]);
    assert!(
        list.contains(" UTC (in 2d)") || list.contains(" UTC (in 1d 23h"),
        "{list}"
    );
    assert!(!list.contains("unix time"), "{list}");
    let policy = tmp.path().join("p.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nmatch = { min_size = \"1G\" }\nstate = \"online_movable\"\n",
    )
    .expect("policy");
    m.ok(&[
        "daemon",
        "--config",
        policy.to_str().expect("utf-8"),
        "--check-config",
    ]);
}

/// m10, m12: a reused pid is not the daemon, and a daemon's refusal names the rule's knob.
#[test]
fn daemon_registration_and_wording() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Machine::new(tmp.path(), "c.json", "cxl", "atomic");
    let run = format!("{}.run/daxplug", m.file);
    std::fs::create_dir_all(&run).expect("run dir");
    let mut sleeper = Command::new("sleep").arg("30").spawn().expect("sleep");
    std::fs::write(
        format!("{run}/daemon.json"),
        serde_json::json!({"pid": sleeper.id(), "config": "p.toml", "managed": [["dax0.0", "online_movable"]]})
            .to_string(),
    )
    .expect("registration");
    let (code, text) = m.run(&["set", "dax0.0", "devdax", "--dry-run"]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(code, 0, "a sleep process is no daemon: {text}");

    m.ok(&["create", "1", "--size", "512M"]);
    m.opened_by("dax1.1", 4242);
    let policy = tmp.path().join("p.toml");
    std::fs::write(&policy, "[[rule]]\nmatch = { region = 1, min_size = \"512M\", max_size = \"512M\" }\nstate = \"online_movable\"\n").expect("policy");
    let (_, log) = m.run(&[
        "daemon",
        "--config",
        policy.to_str().expect("utf-8"),
        "--once",
    ]);
    assert!(log.contains("set force = true in the rule"), "{log}");
    assert!(!log.contains("pass --force"), "{log}");
}

/// m14, m15, m16, m21: the command line's surface.
#[test]
fn the_command_line_surface() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Machine::new(tmp.path(), "c.json", "cxl", "legacy");
    let dry = m.ok(&["set", "all", "devdax", "--dry-run"]);
    assert!(
        dry.contains("device_dax/new_id"),
        "every plan is printed: {dry}"
    );
    let r = m.ok(&["list", "--region", "region1", "-s", "online_kernel"]);
    assert!(r.contains("dax1.0") && !r.contains("dax0.0  "), "{r}");
    let none = m.ok(&["list", "--node", "9"]);
    assert!(none.contains("No dax device matches --node 9"), "{none}");
    let (code, text) = m.run(&["list", "--bogus"]);
    assert_eq!(code, 2);
    assert!(text.starts_with("daxplug: "), "{text}");
    let (code, text) = m.run(&["set", "dax0.0", "offline"]);
    assert_eq!(code, 2);
    assert!(
        text.starts_with("daxplug: offline is not a state"),
        "{text}"
    );
    let policy = tmp.path().join("p.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nmatch = { target_node = 1 }\nstate = \"devdax\"\n",
    )
    .expect("policy");
    let (_, log) = m.run(&["doctor", "--config", policy.to_str().expect("utf-8")]);
    assert!(
        !log.contains(" 1 notes") && !log.contains(" 1 warnings"),
        "{log}"
    );
}

/// m24, m25, m26: help, completions and man pages know every state.
#[test]
fn help_completions_and_man_pages_know_the_states() {
    let help = output_text(&command().arg("--help").output().expect("runs"));
    for state in ["famfs", "other_driver", "needs_root", "stuck"] {
        assert!(help.contains(state), "--help lists {state}");
    }
    assert!(!help.contains("docs/"), "no repository paths: {help}");
    let create = output_text(&command().args(["create", "--help"]).output().expect("runs"));
    assert!(!create.contains("--verbose"), "{create}");
    let bash = output_text(
        &command()
            .args(["generate", "completions", "--shell", "bash"])
            .output()
            .expect("runs"),
    );
    assert!(bash.contains("online_movable"), "bash completes states");
    let tmp = tempfile::tempdir().expect("tmp");
    let o = command()
        .args(["generate", "man", "--dir"])
        .arg(tmp.path())
        .output()
        .expect("runs");
    assert!(o.status.success());
    let page = std::fs::read_to_string(tmp.path().join("daxplug.1")).expect("page");
    assert!(
        page.contains("\\fB\\-\\-root\\fR \\fIDIR\\fR"),
        "synopsis with values"
    );
    let toml = std::fs::read_to_string(tmp.path().join("daxplug.toml.5")).expect("page");
    for key in ["allow_remote", "node_feature_discovery", "new_devices"] {
        assert!(toml.contains(key), "daxplug.toml(5) covers {key}");
    }
}

/// m27: the Debian synopsis fits `apt show`'s line.
#[test]
fn the_package_synopsis_fits_one_line() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.starts_with("description = "))
        .expect("description");
    let text = line.trim_start_matches("description = ").trim_matches('"');
    assert!(text.len() <= 60, "{} characters: {text}", text.len());
    assert!(!text.ends_with('.'), "a Debian synopsis has no full stop");
}

/// m30: a device bound to another driver says how to hand it back.
#[test]
fn other_driver_says_how_to_hand_it_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let od = common::other_driver_tree(tmp.path());
    let root = od.to_str().expect("utf-8");
    let list = output_text(
        &command()
            .args(["--root", root, "list"])
            .output()
            .expect("runs"),
    );
    assert!(list.contains("bound to vfio_dax"), "{list}");
    let o = command()
        .args(["--root", root, "--run-dir"])
        .arg(tmp.path().join("run"))
        .args(["set", "dax0.0", "devdax"])
        .output()
        .expect("runs");
    let text = output_text(&o);
    assert!(
        text.contains("/sys/bus/dax/drivers/vfio_dax/unbind"),
        "{text}"
    );
}

/// m18: create reports what it changed in placement, and its JSON phases start with the
/// look and the lock.
#[test]
fn create_reports_placement_and_phases() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Machine::new(tmp.path(), "h.json", "hmem", "atomic");
    m.ok(&["resize", "dax0.0", "512M"]);
    let v = m.json(&[
        "create",
        "0",
        "--size",
        "256M",
        "--state",
        "online_movable",
        "--json",
    ]);
    assert_eq!(v["results"][0]["outcome"], "done", "{v}");
    let changes = v["placement_changes"]
        .as_array()
        .expect("placement_changes");
    assert!(
        changes.iter().any(|c| c["what"] == "memory_tier"),
        "node 1 joined a tier: {v}"
    );
    let phases: Vec<&str> = v["results"][0]["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .filter_map(|p| p["phase"].as_str())
        .collect();
    assert_eq!(phases.first(), Some(&"observe and plan"), "{phases:?}");
    assert!(phases.contains(&"lock"), "{phases:?}");
}

/// m28: on a terminal, set all and destroy ask first; no, and nothing changes.
#[test]
fn set_all_and_destroy_ask_on_a_terminal() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Machine::new(tmp.path(), "c.json", "cxl", "legacy");
    let bin = env!("CARGO_BIN_EXE_daxplug");
    for cmd in [
        format!("{bin} --sim {} set all devdax", m.file),
        format!("{bin} --sim {} destroy dax1.0", m.file),
    ] {
        // `script` gives the command a terminal; its answer is "n".
        let mut child = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("DAXPLUG_REFUSE_HOST", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("script runs");
        std::thread::sleep(Duration::from_millis(500));
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(b"n\n").expect("answer");
        }
        let out = child.wait_with_output().expect("ends");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("[y/N]"), "{cmd}: asked: {text}");
        assert!(text.contains("not confirmed"), "{cmd}: {text}");
        assert_eq!(out.status.code(), Some(5), "{cmd}: {text}");
    }
    assert_eq!(m.state("dax0.0"), "online_kernel", "nothing changed");
    assert_eq!(m.state("dax1.0"), "online_kernel", "nothing changed");
}

/// m20: demotion, one switch for the machine, is one finding naming every node.
#[test]
fn demotion_off_is_one_finding() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = Machine::new(tmp.path(), "c.json", "cxl", "atomic");
    m.ok(&["set", "all", "online_movable"]);
    let v = m.json(&["doctor", "--json"]);
    let demotion: Vec<&Value> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["code"] == "demotion_off")
        .collect();
    assert_eq!(demotion.len(), 1, "{v}");
    let evidence = demotion[0]["evidence"].as_str().expect("evidence");
    assert!(
        evidence.contains("node 1") && evidence.contains("node 2"),
        "{evidence}"
    );
    let list = m.ok(&["list"]);
    assert!(list.contains("(DRAM's is 4)"), "{list}");
}
