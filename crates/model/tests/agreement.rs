//! The model side of the model-versus-kernel agreement sequences (tests/e2e/agreement-sizing.txt
//! and agreement.txt).
//! The e2e test compares these lines with what the real kernel printed in the QEMU guest;
//! this snapshot keeps the model's answers reviewable when no guest can run.

use daxplug_model::{Flavour, build_preset, script};

#[test]
fn agreement_sequences_on_the_model() {
    // As the guest runs them: the region carving first, then the legacy sequences.
    let read = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/../../tests/e2e/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("file")
    };
    let text = read("agreement-sizing.txt") + &read("agreement.txt");
    let mut m = build_preset("hmem", Flavour::Legacy, 1).expect("preset");
    m.kernel_alloc_per_mille = 0;
    let out = script::run(&mut m, &text);
    assert!(!out.contains("unknown operation"), "{out}");
    insta::assert_snapshot!("agreement_model", out);
}
