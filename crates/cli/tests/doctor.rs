//! `daxplug doctor`: risks with evidence and fix, and an exit code that says whether
//! anything is wrong.

mod common;

use assert_cmd::Command;
use serde_json::Value;

fn doctor(args: &[&str]) -> (i32, Value) {
    let out = Command::cargo_bin("daxplug")
        .expect("binary")
        .env("DAXPLUG_REFUSE_HOST", "1")
        .args(args)
        .args(["doctor", "--json"])
        .output()
        .expect("runs");
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().expect("code"), v)
}

fn codes(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["code"].as_str().expect("code").to_owned())
        .collect()
}

#[test]
fn a_clean_machine_passes() {
    let root = common::fixture("hmem", "04-online-movable");
    let (code, v) = doctor(&["--root", root.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(codes(&v), vec!["legacy_abi"]);
}

#[test]
fn competing_controllers_are_found_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    common::copy_tree(&common::fixture("hmem", "05-mixed-zones"), &root);
    std::fs::create_dir_all(root.join("usr/lib/udev/rules.d")).expect("mkdir");
    std::fs::write(
        root.join("usr/lib/udev/rules.d/40-redhat.rules"),
        "# Memory hotadd request\nSUBSYSTEM!=\"memory\", GOTO=\"memory_hotplug_end\"\nACTION!=\"add\", GOTO=\"memory_hotplug_end\"\nSUBSYSTEM==\"memory\", ATTR{state}==\"offline\", ATTR{state}=\"online_movable\"\n",
    )
    .expect("write");
    std::fs::write(
        root.join("usr/lib/udev/rules.d/90-daxctl-device.rules"),
        "ACTION==\"add\", SUBSYSTEM==\"dax\", TAG+=\"systemd\", ENV{SYSTEMD_WANTS}=\"daxdev-reconfigure@$env{DEVNAME}.service\"\n",
    )
    .expect("write");
    std::fs::create_dir_all(root.join("etc/daxctl.conf.d")).expect("mkdir");
    std::fs::write(
        root.join("etc/daxctl.conf.d/dax.conf"),
        "[reconfigure-device unique_identifier_foo]\nnvdimm.uuid = ed93e918\nmode = system-ram\n",
    )
    .expect("write");
    std::fs::write(
        root.join("proc/cmdline"),
        "BOOT_IMAGE=/vmlinuz root=/dev/sda1 memhp_default_state=online movable_node\n",
    )
    .expect("write");
    std::fs::write(
        root.join("sys/devices/system/memory/auto_online_blocks"),
        "online\n",
    )
    .expect("write");

    let (code, v) = doctor(&["--root", root.to_str().expect("utf-8")]);
    assert_eq!(code, 9, "{v}");
    let c = codes(&v);
    for want in [
        "mixed",
        "udev_onlines_memory",
        // daxctl's rule starts a service this system lacks, and the section's uuid names
        // no device here: neither can act, and doctor says why.
        "daxctl_udev_rule_inert",
        "daxctl_conf_no_match",
        "memhp_default_state",
        "movable_node",
        "auto_online_blocks",
    ] {
        assert!(c.iter().any(|x| x == want), "missing {want}: {c:?}");
    }
    let udev = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["code"] == "udev_onlines_memory")
        .expect("finding");
    assert_eq!(udev["subject"], "/usr/lib/udev/rules.d/40-redhat.rules:4");
    assert!(
        udev["fix"]
            .as_str()
            .is_some_and(|s| s.contains("/etc/udev/rules.d/40-redhat.rules"))
    );
    // Errors first.
    assert_eq!(v["findings"][0]["severity"], "error");
}

#[test]
fn the_emulated_machine_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("m.json").display().to_string();
    Command::cargo_bin("daxplug")
        .expect("binary")
        .args(["sim", "init", &f, "--preset", "cxl"])
        .assert()
        .success();
    let (code, v) = doctor(&["--sim", &f]);
    assert_eq!(code, 9, "{v}");
    let c = codes(&v);
    assert_eq!(c.iter().filter(|x| *x == "kernel_zone").count(), 2, "{c:?}");
    assert!(c.iter().any(|x| x == "auto_online_blocks"), "{c:?}");
}

/// A daemon rule that matches by name only is a risk after a reboot; doctor names the
/// backing to match on instead, and says nothing of a rule that matches on it.
#[test]
fn rules_matching_by_name_only_are_flagged() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A copy: the gate is closed in it below.
    let root = dir.path().join("root");
    common::copy_tree(&common::fixture("hmem", "04-online-movable"), &root);
    let by_name = dir.path().join("name.toml");
    std::fs::write(
        &by_name,
        "[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"online_movable\"\n",
    )
    .expect("write");
    let run = |config: &std::path::Path| {
        let out = Command::cargo_bin("daxplug")
            .expect("binary")
            .env("DAXPLUG_REFUSE_HOST", "1")
            .args(["--root", root.to_str().expect("utf-8"), "doctor", "--json"])
            .arg("--config")
            .arg(config)
            .output()
            .expect("runs");
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        (out.status.code().expect("code"), v)
    };
    let (code, v) = run(&by_name);
    assert_eq!(code, 9, "{v}");
    let finding = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["code"] == "name_only_rule")
        .unwrap_or_else(|| panic!("no name_only_rule: {v}"));
    let fix = finding["fix"].as_str().expect("fix");
    assert!(
        fix.contains("backing = \"hmem:0x140000000-0x17fffffff\""),
        "{fix}"
    );
    let by_backing = dir.path().join("backing.toml");
    std::fs::write(
        &by_backing,
        "[[rule]]\nmatch = { backing = \"hmem:0x140000000-0x17fffffff\" }\nstate = \"online_movable\"\n",
    )
    .expect("write");
    // Without the boot gate, a policy's devices are not protected at boot.
    let (code, v) = run(&by_backing);
    assert_eq!(
        (code, codes(&v)),
        (
            9,
            vec!["boot_path_unprotected".to_owned(), "legacy_abi".to_owned()]
        ),
        "{v}"
    );
    // The gate closed and its unit enabled (as the package does): nothing wrong.
    let out = common::command()
        .args(["--root", root.to_str().expect("utf-8"), "gate", "close"])
        .output()
        .expect("gate close");
    assert!(out.status.success(), "{}", common::output_text(&out));
    let wants = root.join("etc/systemd/system/sysinit.target.wants");
    std::fs::create_dir_all(&wants).expect("mkdir");
    std::fs::write(wants.join("daxplug-gate.service"), "").expect("enable");
    let (code, v) = run(&by_backing);
    assert_eq!(
        (code, codes(&v)),
        (
            0,
            vec!["legacy_abi".to_owned(), "boot_gate_closed".to_owned()]
        ),
        "{v}"
    );
}

/// A device removed from the bus with its memory online leaves its range in /proc/iomem:
/// list (JSON and text) and doctor report it as stuck, with its blocks.
#[test]
fn a_leak_of_a_device_gone_from_the_bus_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("m.json").display().to_string();
    let run = |args: &[&str]| {
        Command::cargo_bin("daxplug")
            .expect("binary")
            .env("DAXPLUG_REFUSE_HOST", "1")
            .args(args)
            .output()
            .expect("runs")
    };
    assert!(
        run(&["sim", "init", &f, "--preset", "cxl"])
            .status
            .success()
    );
    assert!(
        run(&["--sim", &f, "sim", "fault", "remove-device", "dax1.0"])
            .status
            .success()
    );
    let list: Value =
        serde_json::from_slice(&run(&["--sim", &f, "list", "--json"]).stdout).expect("json");
    let orphans = list["orphans"].as_array().expect("orphans");
    assert_eq!(orphans.len(), 2, "{list}");
    assert!(
        orphans
            .iter()
            .all(|o| o["name"] == "dax1.0" && o["online_blocks"] == 4),
        "{list}"
    );
    let text = String::from_utf8(run(&["--sim", &f, "list"]).stdout).expect("utf-8");
    assert!(
        text.contains("STUCK: dax1.0 is gone from the dax bus"),
        "{text}"
    );
    let (code, v) = doctor(&["--sim", &f]);
    assert_eq!(code, 9, "{v}");
    assert!(
        v["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|x| x["code"] == "stuck" && x["subject"] == "dax1.0"),
        "{v}"
    );
}

/// Rules read as udev reads them: a RHEL-shaped memory section whose write names no memory
/// and daxctl's device rule are both found; an empty file of the same name in /etc masks.
#[test]
fn udev_rules_are_read_as_udev_reads_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::copy_tree(&common::fixture("hmem", "04-online-movable"), dir.path());
    let vendor = dir.path().join("usr/lib/udev/rules.d");
    std::fs::create_dir_all(&vendor).expect("mkdir");
    std::fs::write(
        vendor.join("40-redhat.rules"),
        "SUBSYSTEM!=\"memory\", GOTO=\"mem_end\"\nACTION!=\"add\", GOTO=\"mem_end\"\nENV{.state}=\"online\"\nATTR{state}==\"offline\", ATTR{state}=\"$env{.state}\"\nLABEL=\"mem_end\"\n",
    )
    .expect("write");
    std::fs::write(
        vendor.join("90-daxctl-device.rules"),
        "ACTION==\"add\", SUBSYSTEM==\"dax\", RUN+=\"/usr/bin/daxctl -C --reconfigure-device $kernel\"\n",
    )
    .expect("write");
    let root = dir.path().to_str().expect("utf-8").to_owned();
    let (code, v) = doctor(&["--root", &root]);
    assert_eq!(code, 9, "{v}");
    let found = codes(&v);
    assert!(found.contains(&"udev_onlines_memory".to_owned()), "{v}");
    // daxctl is not installed in this tree: the rule cannot act, and doctor says so.
    assert!(found.contains(&"daxctl_udev_rule_inert".to_owned()), "{v}");
    // Installed, Debian 12's form (`daxctl -C`) still cannot: daxctl has no such option.
    std::fs::create_dir_all(dir.path().join("usr/bin")).expect("mkdir");
    std::fs::write(dir.path().join("usr/bin/daxctl"), "").expect("daxctl");
    let (_, v2) = doctor(&["--root", &root]);
    let inert = v2["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["code"] == "daxctl_udev_rule_inert")
        .unwrap_or_else(|| panic!("{v2}"));
    assert!(
        inert["evidence"]
            .as_str()
            .is_some_and(|e| e.contains("exit code 129")),
        "{inert}"
    );
    // Masked by an empty file of the same name in /etc: no longer read.
    let local = dir.path().join("etc/udev/rules.d");
    std::fs::create_dir_all(&local).expect("mkdir");
    std::fs::write(local.join("40-redhat.rules"), "").expect("mask");
    let (_, v) = doctor(&["--root", &root]);
    assert!(
        !codes(&v).contains(&"udev_onlines_memory".to_owned()),
        "{v}"
    );
}
