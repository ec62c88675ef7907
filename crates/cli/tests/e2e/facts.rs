//! The hmem and cxl guests' raw facts (`@@FACTS`, printed by `placement_facts` in
//! tests/e2e/guest/hmem.sh): the kernel's own placement files for the device's target node
//! (memory tiers, demotion, weighted interleave) beside daxplug's `list --json`. Here daxplug's
//! answers are held to the kernel's, one result line each.

use serde_json::Value;

/// What the guest printed.
#[derive(Debug, Default)]
struct Facts {
    step: String,
    node: u64,
    /// `memory_tierN` and its node list, for each tier.
    tiers: Vec<(u64, String)>,
    /// `demotion_enabled`, where the kernel has it.
    demotion_enabled: Option<String>,
    /// `weighted_interleave/auto` (`absent` on kernels without the switch), where the
    /// kernel has weighted interleave at all.
    interleave_auto: Option<String>,
    /// `weighted_interleave/nodeN`, where the kernel has it.
    interleave_weight: Option<String>,
    json: Value,
}

fn parse(text: &str) -> Result<Facts, String> {
    let mut f = Facts::default();
    for line in text.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "step" => f.step = value.to_owned(),
            "node" => {
                f.node = value
                    .parse()
                    .map_err(|_| format!("bad node line {line:?}"))?
            }
            "tier" => {
                let (id, nodes) = value.split_once(' ').unwrap_or((value, ""));
                f.tiers.push((
                    id.parse().map_err(|_| format!("bad tier line {line:?}"))?,
                    nodes.to_owned(),
                ));
            }
            "demotion_enabled" => f.demotion_enabled = Some(value.to_owned()),
            "weighted_interleave_auto" => f.interleave_auto = Some(value.to_owned()),
            "interleave_weight" => f.interleave_weight = Some(value.to_owned()),
            "json" => {
                f.json = serde_json::from_str(value)
                    .map_err(|e| format!("daxplug list --json in the facts: {e}"))?;
            }
            _ => return Err(format!("unknown fact {line:?}")),
        }
    }
    if f.json.is_null() {
        return Err("no daxplug list --json among the facts".into());
    }
    Ok(f)
}

/// Whether node `n` is in a kernel node list (`0-1,3`).
fn in_nodelist(n: u64, list: &str) -> bool {
    list.trim()
        .split(',')
        .filter(|p| !p.is_empty())
        .any(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            matches!((a.parse::<u64>(), b.parse::<u64>()), (Ok(a), Ok(b)) if (a..=b).contains(&n))
        })
}

/// A JSON value as the kernel's file would print it (`null` where daxplug has none).
fn shown(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "null".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// Each comparison as an `E2E PASS`/`E2E FAIL` line named `tag` (`hmem@KVER`).
pub fn placement(tag: &str, text: &str) -> Vec<Result<String, String>> {
    let f = match parse(text) {
        Ok(f) => f,
        Err(e) => return vec![Err(format!("E2E FAIL {tag}: the guest's facts: {e}"))],
    };
    let (step, n) = (&f.step, f.node);
    let node = f.json["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|x| x["node"].as_u64() == Some(n)));
    let check = |what: String, want: String, got: String| {
        if want == got {
            Ok(format!(
                "E2E PASS {tag}: {step}: {what} is the kernel's ({got})"
            ))
        } else {
            Err(format!(
                "E2E FAIL {tag}: {step}: daxplug says {what} {got}, the kernel's files say {want}"
            ))
        }
    };
    let tier = f
        .tiers
        .iter()
        .find(|(_, list)| in_nodelist(n, list))
        .map_or_else(|| "null".to_owned(), |(id, _)| id.to_string());
    let mode = match f.interleave_auto.as_deref() {
        None => "null",
        Some("true") => "auto",
        Some(_) => "manual",
    };
    vec![
        check(
            format!("node {n}'s memory tier"),
            tier,
            shown(node.map(|x| &x["memory_tier"])),
        ),
        check(
            "demotion_enabled".into(),
            f.demotion_enabled.unwrap_or_else(|| "null".into()),
            shown(f.json.pointer("/placement/demotion_enabled")),
        ),
        check(
            format!("node {n}'s interleave weight"),
            f.interleave_weight.unwrap_or_else(|| "null".into()),
            shown(node.map(|x| &x["interleave_weight"])),
        ),
        check(
            "the weighted interleave mode".into(),
            mode.to_owned(),
            shown(f.json.pointer("/placement/weighted_interleave/mode")),
        ),
    ]
}

/// The kernel's `/proc/zoneinfo` at the same step, read by daxplug's parser: the device's
/// node holds exactly the pages of the device's online blocks, per zone, which is what lets
/// `list` count them from the totals.
pub fn zoneinfo(tag: &str, facts: &str, zoneinfo: &str) -> Result<String, String> {
    let f = parse(facts).map_err(|e| format!("E2E FAIL {tag}: the guest's facts: {e}"))?;
    let z = daxplug_abi::Zoneinfo::parse(zoneinfo).map_err(|e| {
        format!("E2E FAIL {tag}: daxplug cannot read this kernel's /proc/zoneinfo: {e}")
    })?;
    let block_size = f
        .json
        .pointer("/kernel/block_size")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let device = f.json["devices"]
        .as_array()
        .and_then(|ds| {
            ds.iter()
                .find(|d| d["target_node"].as_u64() == Some(f.node))
        })
        .ok_or_else(|| {
            format!(
                "E2E FAIL {tag}: no device targets node {} in the facts",
                f.node
            )
        })?;
    let pages = |key: &str| device["blocks"][key].as_u64().unwrap_or(0) * block_size / 4096;
    let (movable, normal) = (pages("movable"), pages("normal"));
    let node = u32::try_from(f.node).unwrap_or(u32::MAX);
    let got = (
        z.present(node, daxplug_abi::Zone::Movable),
        z.present(node, daxplug_abi::Zone::Normal),
        z.node_present(node),
    );
    if got == (movable, normal, movable + normal) && movable + normal > 0 {
        Ok(format!(
            "E2E PASS {tag}: {}: /proc/zoneinfo ({} zones) gives node {node} exactly its device's online pages ({movable} Movable, {normal} Normal)",
            f.step,
            z.zones().len()
        ))
    } else {
        Err(format!(
            "E2E FAIL {tag}: {}: /proc/zoneinfo gives node {node} {} Movable, {} Normal, {} in all; the device's online blocks are {movable} Movable and {normal} Normal pages",
            f.step, got.0, got.1, got.2
        ))
    }
}

/// This module's own tests: the harness of the e2e binary is libtest-mimic, which runs
/// these beside the guests (`#[test]` does not exist there).
pub fn self_tests() -> Vec<libtest_mimic::Trial> {
    use libtest_mimic::Trial;
    vec![
        Trial::test(
            "facts::agreeing_facts_pass_and_each_disagreement_fails_by_name",
            || {
                tests::agreeing_facts_pass_and_each_disagreement_fails_by_name();
                Ok(())
            },
        ),
        Trial::test("facts::node_lists_as_the_kernel_prints_them", || {
            tests::node_lists_as_the_kernel_prints_them();
            Ok(())
        }),
    ]
}

mod tests {
    use super::*;

    const GUEST: &str = r#"step online_movable
node 1
tier 4 0
tier 22 1
demotion_enabled false
weighted_interleave_auto true
interleave_weight 1
json {"placement":{"demotion_enabled":false,"weighted_interleave":{"mode":"auto"}},"nodes":[{"node":0,"memory_tier":4,"interleave_weight":1},{"node":1,"memory_tier":22,"interleave_weight":1}]}"#;

    pub fn agreeing_facts_pass_and_each_disagreement_fails_by_name() {
        let all = placement("hmem@k", GUEST);
        assert!(all.iter().all(Result::is_ok), "{all:?}");
        let wrong = GUEST.replace("\"memory_tier\":22", "\"memory_tier\":4");
        let r = placement("hmem@k", &wrong);
        assert!(
            r[0].as_ref().is_err_and(|e| e.contains("memory tier 4")),
            "{r:?}"
        );
        assert!(r[1..].iter().all(Result::is_ok));
        let no_wi = GUEST.replace("weighted_interleave_auto true\n", "");
        let r = placement("hmem@k", &no_wi);
        assert!(
            r[3].as_ref().is_err_and(|e| e.contains("say null")),
            "{r:?}"
        );
    }

    pub fn node_lists_as_the_kernel_prints_them() {
        assert!(in_nodelist(1, "0-1,3"));
        assert!(in_nodelist(3, "0-1,3\n"));
        assert!(!in_nodelist(2, "0-1,3"));
        assert!(!in_nodelist(0, ""));
    }
}
