//! Fuzzing what daxplug reads from disk that a crash or an editor can damage: the journal
//! of an interrupted transition and the policy file. Inputs are valid files cut short, with
//! bytes flipped, inserted or removed, fields dropped, and arbitrary bytes. Nothing may
//! panic; a damaged journal is explained and the kernel is not written on a guess.
//!
//! `PROPTEST_CASES=N` runs more cases than CI's default.

mod common;

use std::path::Path;

use common::TestHost;
use daxplug_engine::plan::policy::Policy;
use daxplug_engine::rundir;
use daxplug_engine::{Options, Target, TestHooks, recover, set};
use daxplug_model::{Flavour, Sim, build_preset};
use proptest::prelude::*;

/// Cases per property: `PROPTEST_CASES`, or CI's default.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Sets the `nth` number of a JSON document (counted in document order, wrapping) to one
/// of the values that break arithmetic.
fn extreme_number(v: &mut serde_json::Value, nth: usize, pick: u8) {
    fn numbers<'a>(v: &'a mut serde_json::Value, out: &mut Vec<&'a mut serde_json::Value>) {
        match v {
            serde_json::Value::Number(_) => out.push(v),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| numbers(x, out)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| numbers(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    numbers(v, &mut all);
    let n = all.len();
    if n == 0 {
        return;
    }
    let values = [
        0u64,
        1,
        u64::from(u32::MAX),
        u64::MAX,
        u64::MAX / 2,
        1 << 40,
    ];
    *all.swap_remove(nth % n) = serde_json::json!(values[usize::from(pick) % values.len()]);
}

/// Edits to apply to a valid text: (position, kind, byte).
fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec(any::<(usize, u8, u8)>(), 0..6)
}

fn damage(valid: &[u8], edits: &[(usize, u8, u8)], cut: Option<usize>) -> Vec<u8> {
    let mut v = valid.to_vec();
    for &(at, kind, byte) in edits {
        if v.is_empty() {
            v.push(byte);
            continue;
        }
        let at = at % v.len();
        match kind % 4 {
            0 => v[at] = byte,
            1 => v.insert(at, byte),
            2 => {
                v.remove(at);
            }
            _ => v[at] ^= 1 << (byte % 8),
        }
    }
    if let Some(cut) = cut {
        v.truncate(cut % (v.len() + 1));
    }
    v
}

/// A real journal: a transition of dax0.0 stopped dead after its third kernel write.
fn crashed_journal() -> (TestHost, Vec<u8>) {
    let host = TestHost::new(Sim::new(
        build_preset("hmem", Flavour::Legacy, 1).expect("preset"),
    ));
    let opts = Options {
        force: true,
        test_hooks: TestHooks {
            crash_at: Some(3),
            ..TestHooks::default()
        },
        ..common::quick()
    };
    set(
        &host,
        "dax0.0",
        Target::Online(daxplug_abi::OnlineType::OnlineMovable),
        &opts,
    )
    .expect("set");
    let file = rundir::journal(host.run.path(), "dax0.0".parse().expect("name"));
    let bytes = std::fs::read(&file).expect("the crash left its journal");
    (host, bytes)
}

fn machine_json(host: &TestHost) -> String {
    host.sim
        .with(|m| serde_json::to_string(&*m).expect("machine serializes"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(400)))]

    #[test]
    fn a_damaged_journal_is_explained_and_nothing_is_written(
        edits in edits(),
        cut in prop::option::of(any::<usize>()),
    ) {
        let (host, valid) = crashed_journal();
        let damaged = damage(&valid, &edits, cut);
        let file = rundir::journal(host.run.path(), "dax0.0".parse().expect("name"));
        std::fs::write(&file, &damaged).expect("write");
        let parsed = daxplug_engine::Journal::parse(&file, &damaged);
        let before = machine_json(&host);
        let result = recover(&host, &common::quick());
        match (&parsed, &result) {
            (Err(_), Ok(_)) => prop_assert!(false, "a journal that does not parse was recovered"),
            (Err(_), Err(e)) => {
                let text = e.to_string();
                prop_assert!(text.contains("journal-dax0.0.json") && text.contains("status"), "{text}");
                prop_assert_eq!(before, machine_json(&host), "the kernel was written on a guess");
            }
            // Still a valid journal (the edit hit a value): recovery acts on it as written.
            (Ok(_), _) => {}
        }
    }

    #[test]
    fn arbitrary_bytes_as_a_journal(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = daxplug_engine::Journal::parse(Path::new("j.json"), &bytes);
    }

    #[test]
    fn a_damaged_policy_is_an_error_not_a_panic(
        edits in edits(),
        cut in prop::option::of(any::<usize>()),
        which in 0usize..3,
    ) {
        let valid = [
            "[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"online_movable\"\n",
            "[[rule]]\nmatch = { backing = \"cxl:region0\", min_size = \"1G\", max_size = \"4G\" }\nstate = \"online_kernel\"\nforce = true\non_drift = \"report\"\n\n[metrics]\nlisten = \"127.0.0.1:9477\"\n",
            "[[rule]]\nmatch = { target_node = 1 }\nstate = \"devdax\"\n[[rule]]\nstate = \"unplugged\"\n",
        ][which];
        let damaged = damage(valid.as_bytes(), &edits, cut);
        let text = String::from_utf8_lossy(&damaged);
        let _ = Policy::parse(Path::new("daxplug.toml"), &text);
    }
}

/// A journal from another version is refused with both versions named.
#[test]
fn a_journal_of_another_version_is_refused() {
    let (host, valid) = crashed_journal();
    let mut v: serde_json::Value = serde_json::from_slice(&valid).expect("json");
    v["version"] = serde_json::json!(0);
    let file = rundir::journal(host.run.path(), "dax0.0".parse().expect("name"));
    std::fs::write(&file, serde_json::to_vec(&v).expect("json")).expect("write");
    let before = machine_json(&host);
    let e = recover(&host, &common::quick()).expect_err("refused");
    let text = e.to_string();
    assert!(
        text.contains("format version 0") && text.contains("reads version 1"),
        "{text}"
    );
    assert_eq!(before, machine_json(&host));
    // And a set refuses to start before that is settled.
    let e = set(&host, "dax0.0", Target::Devdax, &common::quick()).expect_err("set refuses");
    assert!(e.to_string().contains("journal"), "{e}");
}

/// Reads every file of the emulated tree, as `list`, `doctor` and the FUSE server do.
fn walk(m: &daxplug_model::Machine, dir: &str, budget: &mut usize) {
    let Some(entries) = m.entries(dir) else {
        return;
    };
    for (name, kind) in entries {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let path = if dir == "/" {
            format!("/{name}")
        } else {
            format!("{dir}/{name}")
        };
        match kind {
            daxplug_model::Kind::Dir => walk(m, &path, budget),
            daxplug_model::Kind::File { read: true, .. } => {
                let _ = m.sysfs_read(&path);
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(300)))]

    /// A `--sim` machine file damaged by an editor: refused with a reason, or a machine
    /// every command can read without panicking.
    #[test]
    fn a_damaged_machine_file_is_refused_or_readable(
        edits in edits(),
        cut in prop::option::of(any::<usize>()),
        which in 0usize..4,
        extreme in prop::option::of(any::<(usize, u8)>()),
    ) {
        let preset = ["hmem", "pmem", "cxl", "large"][which];
        let m = build_preset(preset, Flavour::Legacy, 1).expect("preset");
        let valid = serde_json::to_vec(&m).expect("json");
        let mut damaged = damage(&valid, &edits, cut);
        // Half the cases keep the JSON valid and put an extreme value in one number: the
        // damage a hand edit does that parsing alone does not catch.
        if let Some((nth, pick)) = extreme {
            let mut v: serde_json::Value = serde_json::from_slice(&valid).expect("json");
            extreme_number(&mut v, nth, pick);
            damaged = serde_json::to_vec(&v).expect("json");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.json");
        std::fs::write(&path, &damaged).expect("write");
        let file = daxplug_model::MachineFile::lock_existing(&path).expect("lock");
        let Ok(machine) = file.load() else {
            return Ok(());
        };
        if std::env::var_os("FUZZ_TRACE").is_some() {
            eprintln!("case: {preset} {extreme:?} {edits:?} {cut:?}");
        }
        let mut budget = 20_000;
        walk(&machine, "/", &mut budget);
        let sim = Sim::new(machine);
        let _ = daxplug_engine::discover(&sim, &daxplug_engine::Scope::All);
        sim.with(|m| {
            for _ in 0..50 {
                m.step();
            }
        });
    }
}
