//! Keeps docs/JSON.md and the program in sync: every field path printed by
//! `list --json --blocks` / `status --json` must be documented, and every documented field
//! must be printed for at least one fixture.

use std::collections::BTreeSet;
use std::path::Path;

mod common;

use assert_cmd::Command;
use serde_json::Value;

fn paths(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                paths(&p, child, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                // Arrays of scalars (valid_zones) have no sub-fields.
                if item.is_object() {
                    paths(&format!("{prefix}[]"), item, out);
                }
            }
        }
        _ => {}
    }
}

/// Field rows are those of tables whose header starts with `| field |`.
fn documented_fields(doc: &str) -> BTreeSet<String> {
    let mut documented = BTreeSet::new();
    let mut in_field_table = false;
    for line in doc.lines() {
        if !line.starts_with('|') {
            in_field_table = false;
        } else if line.starts_with("| field |") {
            in_field_table = true;
        } else if let Some(rest) = line.strip_prefix("| `").filter(|_| in_field_table) {
            let (field, _) = rest.split_once('`').expect("closing backtick");
            documented.insert(field.to_owned());
        }
    }
    documented
}

/// The section of docs/JSON.md under `heading`, up to the next `## `.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("{heading} in docs/JSON.md"));
    let rest = &doc[start + heading.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// `set --json` and `doctor --json` print exactly the fields their sections document.
#[test]
fn set_and_doctor_json_match_their_documentation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/JSON.md")).expect("docs/JSON.md");
    let tmp = tempfile::tempdir().expect("tmp");
    let m = tmp.path().join("m.json").display().to_string();
    let run = |args: &[&str]| -> Value {
        let out = Command::cargo_bin("daxplug")
            .expect("binary")
            .env("DAXPLUG_REFUSE_HOST", "1")
            .args(args)
            .output()
            .expect("runs");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    run(&["sim", "init", &m, "--preset", "hmem"]);
    for (heading, args) in [
        (
            "## `set --json`",
            vec!["--sim", &m, "set", "dax0.0", "online_movable", "--json"],
        ),
        ("## `doctor --json`", vec!["--sim", &m, "doctor", "--json"]),
    ] {
        let mut printed = BTreeSet::new();
        paths("", &run(&args), &mut printed);
        let documented = documented_fields(section(&doc, heading));
        assert_eq!(printed, documented, "{heading}: printed vs documented");
    }
}

#[test]
fn documented_fields_match_printed_fields() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/JSON.md")).expect("docs/JSON.md");
    // The `list --json` schema: every field table before the other commands' sections.
    let list_doc = &doc[..doc.find("## `set --json`").unwrap_or(doc.len())];
    let documented = documented_fields(list_doc);

    let mut printed = BTreeSet::new();
    for state in [
        "hmem/05-mixed-zones",
        "hmem/09-race-after-failed-unbind",
        "e820/07-devdax",
    ] {
        let out = Command::cargo_bin("daxplug")
            .expect("binary")
            .arg("--root")
            .arg(root.join("tests/fixtures").join(state))
            .args(["list", "--json", "--blocks"])
            .output()
            .expect("runs");
        assert!(out.status.success());
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        paths("", &v, &mut printed);
    }
    // A device removed with its memory online leaves orphans, which no captured tree has.
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("m.json");
    let daxplug = |args: &[&str]| {
        Command::cargo_bin("daxplug")
            .expect("binary")
            .env("DAXPLUG_REFUSE_HOST", "1")
            .args(args)
            .output()
            .expect("runs")
    };
    let f = sim.to_str().expect("utf-8");
    assert!(
        daxplug(&["sim", "init", f, "--preset", "cxl"])
            .status
            .success()
    );
    assert!(
        daxplug(&["--sim", f, "sim", "fault", "remove-device", "dax1.0"])
            .status
            .success()
    );
    // A held device shows its holds.
    assert!(
        daxplug(&[
            "--sim", f, "hold", "dax0.0", "--for", "1h", "--reason", "firmware"
        ])
        .status
        .success()
    );
    let out = daxplug(&["--sim", f, "list", "--json", "--blocks"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    paths("", &v, &mut printed);
    let undocumented: Vec<_> = printed.difference(&documented).collect();
    let unprinted: Vec<_> = documented.difference(&printed).collect();
    assert!(
        undocumented.is_empty(),
        "printed but not in docs/JSON.md: {undocumented:?}"
    );
    assert!(
        unprinted.is_empty(),
        "in docs/JSON.md but never printed: {unprinted:?}"
    );
}

/// The backticked values of the table under `heading` whose header starts `| value |`.
fn documented_values(doc: &str, heading: &str) -> BTreeSet<String> {
    let mut values = BTreeSet::new();
    let mut in_table = false;
    for line in section(doc, heading).lines() {
        if line.starts_with("| value |") {
            in_table = true;
        } else if !line.starts_with('|') {
            in_table = false;
        } else if let Some(rest) = line.strip_prefix("| `").filter(|_| in_table) {
            let (value, _) = rest.split_once('`').expect("closing backtick");
            values.insert(value.to_owned());
        }
    }
    values
}

/// Every value a state field takes is the one token the table, `--state` and JSON.md use:
/// serde's spelling, `as_str` and the documented table agree for every state.
#[test]
fn every_state_value_is_the_documented_token() {
    use daxplug_engine::discovery::topology::ObservedState;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/JSON.md")).expect("docs/JSON.md");
    let documented = documented_values(&doc, "## Observed states");
    let mut printed = BTreeSet::new();
    for &s in ObservedState::ALL {
        let json = serde_json::to_value(s).expect("serializes");
        assert_eq!(json, Value::String(s.as_str().to_owned()), "{s:?}");
        let back: ObservedState = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, s);
        printed.insert(s.as_str().to_owned());
    }
    assert_eq!(printed, documented, "states vs docs/JSON.md");
}

/// A device bound to a driver daxplug does not know reads `other_driver` in `list --json`,
/// `status --json`, the table and the `--state` filter alike.
#[test]
fn other_driver_is_one_token_everywhere() {
    let tmp = tempfile::tempdir().expect("tmp");
    let od = common::other_driver_tree(tmp.path());
    let run = |args: &[&str]| {
        Command::cargo_bin("daxplug")
            .expect("binary")
            .env("DAXPLUG_REFUSE_HOST", "1")
            .arg("--root")
            .arg(&od)
            .args(args)
            .output()
            .expect("runs")
    };
    for args in [&["list", "--json"][..], &["status", "dax0.0", "--json"]] {
        let v: Value = serde_json::from_slice(&run(args).stdout).expect("JSON");
        assert_eq!(v["devices"][0]["state"], "other_driver", "{args:?}");
    }
    let table = run(&["list", "--state", "other_driver"]);
    assert!(table.status.success());
    assert!(String::from_utf8_lossy(&table.stdout).contains("dax0.0"));
}

/// The row of JSON.md documenting `field`.
fn row<'a>(doc: &'a str, field: &str) -> &'a str {
    let start = format!("| `{field}` |");
    doc.lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("{field} in docs/JSON.md"))
}

/// Every token an enum field can print is named in its field's row of JSON.md: outcomes,
/// protocols, region kinds, targets.
#[test]
fn every_enum_token_is_documented_in_its_row() {
    use daxplug_engine::discovery::topology::RegionKind;
    use daxplug_engine::{Outcome, Protocol};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/JSON.md")).expect("docs/JSON.md");
    let check = |field: &str, tokens: Vec<&str>| {
        let line = row(&doc, field);
        for t in tokens {
            assert!(
                line.contains(&format!("`{t}`")),
                "{field}: `{t}` missing in {line}"
            );
        }
    };
    check(
        "results[].outcome",
        Outcome::ALL.iter().map(|o| o.as_str()).collect(),
    );
    check(
        "results[].protocol",
        Protocol::ALL.iter().map(|p| p.as_str()).collect(),
    );
    check(
        "regions[].kind",
        RegionKind::ALL.iter().map(|r| r.as_str()).collect(),
    );
    check(
        "results[].target",
        [
            "unplugged",
            "online",
            "online_kernel",
            "online_movable",
            "devdax",
            "famfs",
        ]
        .into_iter()
        .filter(|t| t.parse::<daxplug_engine::Target>().is_ok())
        .collect(),
    );
}
