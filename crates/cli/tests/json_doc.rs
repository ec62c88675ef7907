//! Keeps docs/JSON.md and the program in sync: every field path printed by
//! `list --json --blocks` / `status --json` must be documented, and every documented field
//! must be printed for at least one fixture.

use std::collections::BTreeSet;
use std::path::Path;

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

#[test]
fn documented_fields_match_printed_fields() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/JSON.md")).expect("docs/JSON.md");
    // Field rows are those of tables whose header starts with `| field |`.
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
