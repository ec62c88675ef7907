//! `list` and `status` on every captured sysfs state (hmem, e820 and cxl, from a real 6.12
//! kernel): the observed state each must report, and snapshots of the full output.
//!
//! The fixture trees are only read: the CLI opens them read-only.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Every captured state and the observed state it really is in, decided from the
/// capture notes (which driver is bound, which blocks exist, what /proc/iomem holds).
const EXPECTED: &[(&str, &str, &str)] = &[
    ("hmem", "01-before-kmem", "unbound"),
    ("hmem", "02-kmem-auto-online", "online_kernel"),
    ("hmem", "03-kmem-bound-offline", "offline"),
    ("hmem", "04-online-movable", "online_movable"),
    ("hmem", "05-mixed-zones", "mixed"),
    ("hmem", "06-removed", "unbound"),
    ("hmem", "07-devdax", "devdax"),
    ("hmem", "08-race-one-online-before-unbind", "mixed"),
    ("hmem", "09-race-after-failed-unbind", "stuck"),
    ("hmem", "10-stuck-final", "stuck"),
    ("e820", "01-before-kmem", "devdax"),
    ("e820", "03-kmem-bound-offline", "offline"),
    ("e820", "04-online-movable", "online_movable"),
    ("e820", "05-mixed-zones", "mixed"),
    ("e820", "06-removed", "unbound"),
    ("e820", "07-devdax", "devdax"),
    ("e820", "08-race-one-online-before-unbind", "mixed"),
    ("e820", "09-race-after-failed-unbind", "stuck"),
    ("e820", "10-stuck-final", "stuck"),
    // A volatile CXL type-3 device in QEMU 10, RAM region made through the CXL sysfs ABI,
    // captured at the steps of the e2e cxl scenario (FIXTURES=1 tests/e2e/run.sh cxl).
    ("cxl", "01-before-kmem", "unbound"),
    ("cxl", "02-kmem-bound-offline", "offline"),
    ("cxl", "03-online-movable", "online_movable"),
    ("cxl", "04-one-block-offline", "mixed"),
    ("cxl", "05-unplugged", "unbound"),
    ("cxl", "06-devdax", "devdax"),
    ("cxl", "07-stuck", "stuck"),
];

fn daxplug(root: &Path, args: &[&str]) -> String {
    let out = Command::cargo_bin("daxplug")
        .expect("binary")
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "daxplug {args:?} on {} failed: {}",
        root.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn every_fixture_is_covered() {
    for kind in ["hmem", "e820", "cxl"] {
        for entry in std::fs::read_dir(fixtures().join(kind)).expect("fixture dir") {
            let name = entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("utf-8");
            assert!(
                EXPECTED.iter().any(|(k, s, _)| *k == kind && *s == name),
                "fixture {kind}/{name} has no expected state"
            );
        }
    }
}

#[test]
fn list_json_reports_the_observed_state() {
    for (kind, state, expected) in EXPECTED {
        let root = fixtures().join(kind).join(state);
        let text = daxplug(&root, &["list", "--json"]);
        let v: Value = serde_json::from_str(&text).expect("valid JSON");
        let devices = v["devices"].as_array().expect("devices array");
        assert_eq!(devices.len(), 1, "{kind}/{state}");
        let d = &devices[0];
        assert_eq!(d["name"], "dax0.0");
        assert_eq!(d["state"], *expected, "{kind}/{state}");
        assert!(d["kernel_state"].is_null(), "6.12 has no daxX.Y/state");
        // Counts are consistent with the block list of `--blocks`.
        let with_blocks: Value =
            serde_json::from_str(&daxplug(&root, &["list", "--json", "--blocks"])).expect("JSON");
        let list = with_blocks["devices"][0]["block_list"]
            .as_array()
            .expect("block_list");
        assert_eq!(d["blocks"]["total"].as_u64(), Some(list.len() as u64));
        let online = list.iter().filter(|b| b["state"] == "online").count() as u64;
        assert_eq!(d["blocks"]["online"].as_u64(), Some(online));
        assert!(
            d["block_list"].is_null(),
            "block_list is null without --blocks"
        );
        insta::assert_snapshot!(format!("list_json@{kind}-{state}"), text);
    }
}

#[test]
fn status_shows_every_block() {
    for (kind, state, _) in EXPECTED {
        let root = fixtures().join(kind).join(state);
        insta::assert_snapshot!(
            format!("status@{kind}-{state}"),
            daxplug(&root, &["status", "dax0.0"])
        );
    }
}

#[test]
fn list_tables() {
    for (kind, state) in [
        ("hmem", "04-online-movable"),
        ("hmem", "05-mixed-zones"),
        ("hmem", "10-stuck-final"),
        ("e820", "07-devdax"),
    ] {
        let root = fixtures().join(kind).join(state);
        insta::assert_snapshot!(format!("list@{kind}-{state}"), daxplug(&root, &["list"]));
    }
}

#[test]
fn block_ranges_follow_the_mappings() {
    // e820: the mapping starts 2 MiB into the region; kmem rounds up to memory41.
    let root = fixtures().join("e820/04-online-movable");
    let v: Value =
        serde_json::from_str(&daxplug(&root, &["status", "dax0.0", "--json"])).expect("JSON");
    let d = &v["devices"][0];
    assert_eq!(d["ranges"][0]["start"].as_u64(), Some(0x1_4020_0000));
    assert_eq!(d["ranges"][0]["end"].as_u64(), Some(0x1_7fff_ffff));
    assert_eq!(d["ranges"][0]["first_block"].as_u64(), Some(41));
    assert_eq!(d["ranges"][0]["last_block"].as_u64(), Some(47));
    assert_eq!(d["iomem"][0]["kmem_start"].as_u64(), Some(0x1_4800_0000));
    let names: Vec<&str> = d["block_list"]
        .as_array()
        .expect("block_list")
        .iter()
        .map(|b| b["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        (41..=47).map(|i| format!("memory{i}")).collect::<Vec<_>>()
    );
    assert_eq!(v["regions"][0]["kind"], "static");
}

#[test]
fn stuck_devices_name_their_blocks() {
    let root = fixtures().join("hmem/09-race-after-failed-unbind");
    let v: Value = serde_json::from_str(&daxplug(&root, &["list", "--json"])).expect("JSON");
    let problems = v["devices"][0]["problems"].as_array().expect("problems");
    let stuck = problems
        .iter()
        .find(|p| p["code"] == "stuck")
        .expect("a stuck problem");
    let msg = stuck["message"].as_str().expect("message");
    assert!(msg.contains("memory40-memory47"), "{msg}");
    assert!(msg.contains("memory40 is online"), "{msg}");
    assert!(msg.contains("reboot"), "{msg}");
}

/// Discovery reads `state` only when `valid_zones` names several zones: that rests on the
/// kernel naming exactly one zone (or `none`) for an online block and two for any other.
/// Checked here on every block the real kernel left in the captures (the e2e guest checks
/// it live), and `status` must report the state files' states.
#[test]
fn valid_zones_names_one_zone_exactly_when_a_block_is_online() {
    let mut checked = 0;
    for (kind, state, _) in EXPECTED {
        let root = fixtures().join(kind).join(state);
        let memory = root.join("sys/devices/system/memory");
        let mut states = std::collections::BTreeMap::new();
        for entry in std::fs::read_dir(&memory).expect("memory dir") {
            let dir = entry.expect("entry").path();
            let (Ok(s), Ok(z)) = (
                std::fs::read_to_string(dir.join("state")),
                std::fs::read_to_string(dir.join("valid_zones")),
            ) else {
                continue;
            };
            let single = z.split_whitespace().count() == 1;
            assert_eq!(
                single,
                s.trim() == "online",
                "{kind}/{state}: {} is {} with valid_zones {}",
                dir.display(),
                s.trim(),
                z.trim()
            );
            let name = dir
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            states.insert(name, s.trim().to_owned());
            checked += 1;
        }
        let v: Value =
            serde_json::from_str(&daxplug(&root, &["status", "dax0.0", "--json"])).expect("json");
        for b in v["devices"][0]["block_list"].as_array().expect("blocks") {
            let name = b["name"].as_str().expect("name");
            assert_eq!(
                Some(b["state"].as_str().expect("state")),
                states.get(name).map(String::as_str),
                "{kind}/{state}: {name}"
            );
        }
    }
    assert!(checked > 50, "only {checked} blocks checked");
}
