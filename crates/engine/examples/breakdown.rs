//! Development aid: where the reliability harness's bad outcomes come from.
#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use common::harness::{COMPETITORS, FAULTS, run_daxplug, transitions};
use daxplug_model::Flavour;

fn main() {
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    let mut examples: BTreeMap<String, String> = BTreeMap::new();
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        for (start, target) in transitions() {
            for competitor in COMPETITORS {
                for fault in FAULTS {
                    let (class, detail) = run_daxplug(flavour, 1, start, target, competitor, fault);
                    if !class.acceptable() {
                        let key = format!("{class:?} {flavour:?} {competitor}");
                        *by.entry(key.clone()).or_default() += 1;
                        examples
                            .entry(key)
                            .or_insert(format!("{start}->{target} fault {fault}: {detail}"));
                    }
                }
            }
        }
    }
    for (k, n) in &by {
        println!("{n:5} {k}\n      e.g. {}", examples[k]);
    }
}
