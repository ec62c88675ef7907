//! The emulated machine from the command line: `sim init`, `--sim FILE` with the ordinary
//! commands, raw access, actors, faults, and `demo`.

use std::path::Path;

mod common;

use common::daxplug;
use serde_json::Value;

fn ok(args: &[&str]) -> String {
    let out = daxplug(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn fails(args: &[&str]) -> (i32, String) {
    let out = daxplug(args);
    assert!(!out.status.success(), "{args:?} should fail");
    (
        out.status.code().expect("code"),
        String::from_utf8(out.stderr).expect("utf-8"),
    )
}

fn init(dir: &Path, preset: &str, kernel: &str) -> String {
    let file = dir.join("m.json").display().to_string();
    ok(&["sim", "init", &file, "--preset", preset, "--kernel", kernel]);
    file
}

fn device_state(file: &str, dev: &str) -> String {
    let v: Value =
        serde_json::from_str(&ok(&["--sim", file, "status", dev, "--json"])).expect("JSON");
    v["devices"][0]["state"].as_str().expect("state").to_owned()
}

#[test]
fn commands_see_each_others_effects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = init(dir.path(), "hmem", "atomic");
    assert_eq!(device_state(&f, "dax0.0"), "unbound");
    ok(&[
        "--sim",
        &f,
        "sim",
        "write",
        "/sys/devices/system/memory/auto_online_blocks",
        "online_movable",
    ]);
    ok(&["--sim", &f, "sim", "modprobe", "kmem"]);
    assert_eq!(device_state(&f, "dax0.0"), "online_movable");
    assert_eq!(
        ok(&[
            "--sim",
            &f,
            "sim",
            "read",
            "/sys/bus/dax/devices/dax0.0/state"
        ]),
        "online_movable\n"
    );
    ok(&[
        "--sim",
        &f,
        "sim",
        "write",
        "/sys/bus/dax/devices/dax0.0/state",
        "unplugged",
    ]);
    assert_eq!(device_state(&f, "dax0.0"), "unplugged");
    let v: Value = serde_json::from_str(&ok(&["--sim", &f, "list", "--json"])).expect("JSON");
    assert_eq!(v["kernel"]["abi"], "atomic");
    assert_eq!(v["devices"][0]["kernel_state"], "unplugged");
}

#[test]
fn raw_access_reports_the_kernels_errno() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = init(dir.path(), "pmem", "legacy");
    let (code, err) = fails(&[
        "--sim",
        &f,
        "sim",
        "write",
        "/sys/bus/dax/drivers/kmem/bind",
        "dax0.0",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("write error: ENODEV"), "{err}");
    let (_, err) = fails(&["--sim", &f, "sim", "read", "/sys/bus/dax/drivers/kmem/bind"]);
    assert!(err.contains("EACCES"), "{err}");
    let (_, err) = fails(&["--sim", &f, "sim", "read", "/sys/nope"]);
    assert!(err.contains("ENOENT"), "{err}");
    let ls = ok(&["--sim", &f, "sim", "ls", "/sys/bus/dax/drivers"]);
    assert_eq!(ls, "device_dax\nkmem\n");
    assert_eq!(
        ok(&[
            "--sim",
            &f,
            "sim",
            "readlink",
            "/sys/bus/dax/devices/dax0.0"
        ]),
        "../../../devices/platform/e820_pmem/ndbus0/region0/dax0.0/dax0.0\n"
    );
}

#[test]
fn the_stuck_race_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = init(dir.path(), "hmem", "legacy");
    ok(&[
        "--sim",
        &f,
        "sim",
        "write",
        "/sys/devices/system/memory/auto_online_blocks",
        "offline",
    ]);
    ok(&["--sim", &f, "sim", "modprobe", "kmem"]);
    ok(&[
        "--sim",
        &f,
        "sim",
        "write",
        "/sys/devices/system/memory/memory40/state",
        "online_movable",
    ]);
    ok(&[
        "--sim",
        &f,
        "sim",
        "write",
        "/sys/bus/dax/drivers/kmem/unbind",
        "dax0.0",
    ]);
    assert_eq!(device_state(&f, "dax0.0"), "stuck");
    let events = ok(&["--sim", &f, "sim", "events"]);
    assert!(
        events.contains("cannot be hotremoved until the next reboot"),
        "{events}"
    );
}

#[test]
fn actors_and_faults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = init(dir.path(), "hmem", "atomic");
    ok(&[
        "--sim",
        &f,
        "sim",
        "write",
        "/sys/devices/system/memory/auto_online_blocks",
        "offline",
    ]);
    ok(&["--sim", &f, "sim", "actor", "add", "kata-agent"]);
    let list = ok(&["--sim", &f, "sim", "actor", "add", "rhel-rule"]);
    assert!(
        list.contains("kata-agent") && list.contains("rhel-memory-online"),
        "{list}"
    );
    ok(&["--sim", &f, "sim", "modprobe", "kmem"]);
    ok(&["--sim", &f, "sim", "step", "200"]);
    // Both competitors raced to online the added blocks: every block is online, each in the
    // zone whichever of them came first chose.
    let v: Value = serde_json::from_str(&ok(&["--sim", &f, "list", "--json"])).expect("JSON");
    assert_eq!(v["devices"][0]["blocks"]["online"], 8);
    ok(&["--sim", &f, "sim", "actor", "remove", "0"]);
    let (code, err) = fails(&["--sim", &f, "sim", "actor", "remove", "5"]);
    assert_eq!(code, 1);
    assert!(err.contains("there is no actor 5"), "{err}");
    let show = ok(&["--sim", &f, "sim", "fault", "busy-block", "43"]);
    assert!(show.contains("memory43"), "{show}");
    let (_, err) = fails(&[
        "--sim",
        &f,
        "sim",
        "write",
        "/sys/bus/dax/devices/dax0.0/state",
        "unplugged",
    ]);
    assert!(err.contains("EBUSY"), "{err}");
    ok(&["--sim", &f, "sim", "fault", "clear"]);
    ok(&[
        "--sim",
        &f,
        "sim",
        "write",
        "/sys/bus/dax/devices/dax0.0/state",
        "unplugged",
    ]);
    assert_eq!(device_state(&f, "dax0.0"), "unplugged");
    assert_eq!(
        ok(&["--sim", &f, "sim", "udev", "stop"])
            .lines()
            .next()
            .map(|l| l.contains("stopped")),
        Some(true)
    );
}

#[test]
fn bad_input_names_what_was_expected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("m.json").display().to_string();
    let (code, err) = fails(&["sim", "init", &file, "--preset", "nosuch"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("expected one of hmem, pmem, cxl, large"),
        "{err}"
    );
    assert!(!Path::new(&file).exists(), "nothing created");
    ok(&["sim", "init", &file]);
    let (code, err) = fails(&["sim", "init", &file]);
    assert_eq!(code, 2);
    assert!(err.contains("pass --force"), "{err}");
    let (code, _) = fails(&["sim", "show"]);
    assert_eq!(code, 2);
    let (code, err) = fails(&[
        "--sim",
        &dir.path().join("missing.json").display().to_string(),
        "list",
    ]);
    assert_eq!(code, 3);
    assert!(err.contains("missing.json"), "{err}");
    std::fs::write(dir.path().join("junk.json"), "{}").expect("write");
    let (code, err) = fails(&[
        "--sim",
        &dir.path().join("junk.json").display().to_string(),
        "list",
    ]);
    assert_eq!(code, 3);
    assert!(err.contains("not an emulated machine file"), "{err}");
    let (code, _) = fails(&["--sim", &file, "--root", "/", "list"]);
    assert_eq!(code, 2);
}

#[test]
fn demo_shows_the_tear_and_the_fix() {
    let text = ok(&["demo"]);
    assert!(text.contains("the device is stuck"), "{text}");
    assert!(text.contains("The device is unplugged"), "{text}");
    insta::assert_snapshot!("demo", text);
}

#[test]
fn every_preset_lists() {
    let dir = tempfile::tempdir().expect("tempdir");
    for preset in ["hmem", "pmem", "cxl", "large"] {
        let file = dir
            .path()
            .join(format!("{preset}.json"))
            .display()
            .to_string();
        ok(&["sim", "init", &file, "--preset", preset]);
        let v: Value =
            serde_json::from_str(&ok(&["--sim", &file, "list", "--json"])).expect("JSON");
        assert!(
            !v["devices"].as_array().expect("devices").is_empty(),
            "{preset}"
        );
    }
}

/// `list` keeps within 80 columns on every preset and kernel flavour, in every state the
/// machine passes through (kernel zones, movable, devdax, held), notes and holds included.
#[test]
fn list_fits_in_80_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    for preset in ["hmem", "pmem", "cxl", "large"] {
        for kernel in ["legacy", "atomic"] {
            let sub = dir.path().join(format!("{preset}-{kernel}"));
            std::fs::create_dir(&sub).expect("mkdir");
            let f = init(&sub, preset, kernel);
            let check = |when: &str| {
                let out = ok(&["--sim", &f, "list"]);
                for line in out.lines() {
                    assert!(
                        line.chars().count() <= 80,
                        "{preset}/{kernel} {when}: {} columns:\n{line}\n{out}",
                        line.chars().count()
                    );
                }
            };
            check("at boot");
            let _ = daxplug(&["--sim", &f, "set", "all", "online_movable"]);
            check("online_movable");
            let _ = daxplug(&["--sim", &f, "set", "dax0.0", "devdax"]);
            let _ = daxplug(&[
                "--sim",
                &f,
                "hold",
                "dax0.0",
                "--holder",
                "a-rather-long-holder-name",
                "--for",
                "2h",
                "--reason",
                "a firmware update that takes a while to finish",
            ]);
            check("devdax, held");
        }
    }
}
