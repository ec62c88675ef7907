//! The real-kernel end-to-end tests: Debian's stock 6.12 kernel booted under QEMU (TCG) with
//! 1 GiB of emulated device memory, daxplug's scenarios run inside the guest
//! (tests/e2e/run.sh and tests/e2e/guest/), and the model-versus-kernel agreement
//! sequences (tests/e2e/agreement.txt) compared line by line with the model's answers, and
//! daxctl's transcript (tests/e2e/daxctl-hmem.txt), which the model must also give under
//! `daxplug sim run` (crates/cli/tests/simrun.rs).
//!
//! Prints one SKIP line and passes when QEMU or the kernel package cannot be had
//! (`DAXPLUG_E2E=0` skips on purpose); CI installs QEMU, so there it runs.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use daxplug_model::{Flavour, build_preset, script};

fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Written past libtest's capture, so that a SKIP is seen in every run.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

enum Run {
    Passed(Vec<String>),
    Skipped(String),
}

fn guest(method: &str) -> Run {
    let out = Command::new("bash")
        .arg(top().join("tests/e2e/run.sh"))
        .arg(method)
        .env("DAXPLUG_BIN", env!("CARGO_BIN_EXE_daxplug"))
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    match out.status.code() {
        Some(77) => Run::Skipped(stdout.trim().to_owned()),
        Some(0) => Run::Passed(
            stdout
                .lines()
                .filter(|l| l.starts_with("E2E "))
                .map(str::to_owned)
                .collect(),
        ),
        _ => panic!(
            "the {method} guest failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn real_kernel_in_qemu() {
    if std::env::var_os("DAXPLUG_E2E").is_some_and(|v| v == "0") {
        say("SKIP e2e: DAXPLUG_E2E=0");
        return;
    }
    let mut passed = 0;
    for method in ["agreement", "hmem", "e820", "teeth", "daxctl"] {
        match guest(method) {
            Run::Skipped(why) => {
                say(&format!("SKIP e2e (real kernel in QEMU): {why}"));
                return;
            }
            Run::Passed(lines) => {
                passed += lines.iter().filter(|l| l.starts_with("E2E PASS")).count();
                for l in &lines {
                    say(l);
                }
            }
        }
        if method == "agreement" {
            let sequences = std::fs::read_to_string(top().join("tests/e2e/agreement.txt"))
                .expect("agreement.txt");
            let mut m = build_preset("hmem", Flavour::Legacy, 1).expect("preset");
            m.kernel_alloc_per_mille = 0;
            let model = script::run(&mut m, &sequences);
            let kernel =
                std::fs::read_to_string(top().join("target/e2e/logs/agreement-agreement.txt"))
                    .expect("guest output");
            let mut differences = Vec::new();
            let (k, mo): (Vec<&str>, Vec<&str>) =
                (kernel.lines().collect(), model.lines().collect());
            for i in 0..k.len().max(mo.len()) {
                let (a, b) = (
                    k.get(i).copied().unwrap_or("<missing>"),
                    mo.get(i).copied().unwrap_or("<missing>"),
                );
                if a != b {
                    differences.push(format!("kernel: {a}\n model: {b}"));
                }
            }
            assert!(
                differences.is_empty(),
                "the model and the kernel disagree:\n{}",
                differences.join("\n")
            );
            say(&format!(
                "E2E PASS agreement: {} sysfs operations answered identically by the model and the kernel",
                k.len()
            ));
            passed += 1;
        }
        if method == "daxctl" {
            // The transcript crates/cli/tests/simrun.rs compares the model against.
            let want = std::fs::read_to_string(top().join("tests/e2e/daxctl-hmem.txt"))
                .expect("daxctl-hmem.txt");
            let got = std::fs::read_to_string(top().join("target/e2e/logs/daxctl-daxctl.txt"))
                .expect("guest output");
            assert_eq!(
                got, want,
                "daxctl on the real kernel no longer gives tests/e2e/daxctl-hmem.txt"
            );
            say(&format!(
                "E2E PASS daxctl: the real kernel still gives the {}-line transcript the model is held to",
                want.lines().count()
            ));
            passed += 1;
        }
    }
    assert!(passed > 30, "only {passed} scenario steps passed");
}
