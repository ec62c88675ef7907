//! The real-kernel end-to-end tests: stock Debian kernels booted under QEMU (TCG), by default
//! bookworm's own 6.1, the newest 6.12 (legacy ABI) and the newest kernel from 7.3 on (atomic
//! ABI, `daxX.Y/state`), `E2E_KERNELS` choosing others. A second test boots a real Debian 12
//! system (systemd, udevd, the package installed with apt) on the hmem machine, on each
//! kernel from 6.12 on (tests/e2e/system/, assertions in e2e/system.rs). On each kernel every layout boots once
//! (tests/e2e/run.sh and tests/e2e/guest/): daxplug's scenarios on hmem, e820 and cxl, the
//! broken protocol that must tear, the model-versus-kernel agreement sequences
//! (tests/e2e/agreement*.txt) compared line by line with the model's answers on a model that
//! adopted the guest's own boot layout, and daxctl's transcript (tests/e2e/daxctl-hmem.txt),
//! which the model must also give under `daxplug sim run` (crates/cli/tests/simrun.rs).
//!
//! Every line names its layout and kernel (`E2E PASS hmem@7.3.4+deb13-amd64: ...`). Prints a
//! SKIP line and passes only when the machine cannot boot a guest at all (no QEMU, no Debian
//! packages; run.sh says which), which `.ci/run` counts as a failure; `DAXPLUG_E2E=0` skips
//! on purpose. `.ci/run` installs QEMU.
//! `E2E_LAYOUTS=agreement,hmem` runs only those layouts.

mod common;
#[path = "e2e/system.rs"]
mod system;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::say;
use daxplug_model::{Flavour, build_preset, script};

fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn logs() -> PathBuf {
    std::env::var_os("WORK")
        .map_or_else(|| top().join("target/e2e"), PathBuf::from)
        .join("logs")
}

/// A file's text, or an error naming it.
fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

enum Run {
    /// The guest ran: its E2E lines, and whether every scenario passed.
    Ran {
        lines: Vec<String>,
        ok: bool,
        output: String,
    },
    /// The machine cannot run this guest (run.sh exit 77), and why.
    Skipped(String),
}

/// The program the guests run: the one in the Debian package (common::package), so that
/// the package is what gets tested. Outside CI, a machine that cannot build the package
/// runs cargo's build instead, and says so.
fn daxplug_bin() -> PathBuf {
    static SAID: std::sync::Once = std::sync::Once::new();
    match common::package::package() {
        Ok(p) => {
            SAID.call_once(|| {
                say(&format!(
                    "e2e program: {} (from {})",
                    p.root.join("usr/bin/daxplug").display(),
                    p.deb.display()
                ))
            });
            p.root.join("usr/bin/daxplug")
        }
        Err(why) if std::env::var_os("CI").is_some() => panic!("no package in CI: {why}"),
        Err(why) => {
            SAID.call_once(|| {
                say(&format!(
                    "e2e program: cargo's build, not the package ({why})"
                ))
            });
            PathBuf::from(env!("CARGO_BIN_EXE_daxplug"))
        }
    }
}

fn run_sh(args: &[&str], kver: Option<&str>) -> (Option<i32>, String) {
    run_sh_with(args, kver, &[])
}

/// tests/e2e/run.sh with more environment.
fn run_sh_with(args: &[&str], kver: Option<&str>, env: &[(&str, &Path)]) -> (Option<i32>, String) {
    let mut cmd = Command::new("bash");
    cmd.arg(top().join("tests/e2e/run.sh"))
        .args(args)
        .env("DAXPLUG_BIN", daxplug_bin())
        .envs(env.iter().copied());
    if let Some(k) = kver {
        cmd.env("KVER", k);
    }
    let out = cmd.output().expect("bash runs");
    (out.status.code(), common::output_text(&out))
}

/// The kernels to test (`run.sh kernels`), or `None` after a SKIP line (`DAXPLUG_E2E=0`, or
/// a machine that cannot boot a guest at all).
fn kernels_to_test(what: &str) -> Option<Vec<String>> {
    if std::env::var_os("DAXPLUG_E2E").is_some_and(|v| v == "0") {
        say(&format!("SKIP {what}: DAXPLUG_E2E=0"));
        return None;
    }
    match run_sh(&["kernels"], None) {
        (Some(0), out) => Some(out.lines().map(str::to_owned).collect()),
        (Some(77), why) => {
            say(&format!(
                "SKIP {what} (real kernels in QEMU): {}",
                why.trim()
            ));
            None
        }
        (_, out) => panic!("tests/e2e/run.sh kernels failed:\n{out}"),
    }
}

fn guest(layout: &str, kver: &str) -> Run {
    let (code, output) = run_sh(&[layout], Some(kver));
    let lines = output
        .lines()
        .filter(|l| l.starts_with("E2E "))
        .map(str::to_owned)
        .collect();
    match code {
        Some(77) => Run::Skipped(output.trim().to_owned()),
        Some(0) => Run::Ran {
            lines,
            ok: true,
            output,
        },
        _ => Run::Ran {
            lines,
            ok: false,
            output,
        },
    }
}

/// A kernel's layouts, and those left out of its matrix with the reason. Bookworm's own
/// 6.1 predates what three of them test: it has no volatile CXL regions (6.3), and its dax
/// bus gives every device to device_dax as it appears (kmem binds by `new_id` only), which
/// the model (6.12's and 7.3's dax bus) and the daxctl transcript held to it do not have.
fn layouts_of(kver: &str) -> (Vec<&'static str>, Vec<(&'static str, &'static str)>) {
    let (major, minor) = version(kver);
    if (major, minor) < (6, 3) {
        return (
            vec!["hmem", "e820", "carve"],
            vec![
                (
                    "teeth",
                    "the broken protocol tore the device in 5 tries in one run and not in another here (a race the competitor must win); its proof is on 6.12",
                ),
                (
                    "agreement",
                    "the model's dax bus is 6.12's and 7.3's; on this kernel device_dax binds every device as it appears",
                ),
                (
                    "daxctl",
                    "the transcript is the model's (6.12, 7.3); on this kernel device_dax binds every device as it appears",
                ),
                ("cxl", "volatile CXL memory regions arrived in Linux 6.3"),
            ],
        );
    }
    let mut layouts = vec!["agreement"];
    if atomic_abi(kver) {
        layouts.push("atomic");
    }
    layouts.extend(["hmem", "e820", "cxl", "teeth", "daxctl", "carve"]);
    (layouts, Vec::new())
}

/// A Debian kernel version's major and minor numbers.
fn version(kver: &str) -> (u32, u32) {
    let mut parts = kver
        .split(['.', '+', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Whether a Debian kernel version has the atomic ABI (Linux 7.3 on).
fn atomic_abi(kver: &str) -> bool {
    version(kver) >= (7, 3)
}

/// The guest's boot layout (`@@BOOT` section): `/proc/iomem` and each node's MemTotal in kB.
fn boot_layout(tag: &str) -> Result<(String, Vec<(u32, u64)>), String> {
    let text = read(&logs().join(format!("{tag}-boot.txt")))?;
    let (mut iomem, mut nodes) = (String::new(), Vec::new());
    for line in text.lines() {
        match line.strip_prefix("node").and_then(|r| r.split_once(' ')) {
            Some((n, kb)) => nodes.push((
                n.parse().map_err(|_| format!("bad node line {line:?}"))?,
                kb.parse()
                    .map_err(|_| format!("bad MemTotal in {line:?}"))?,
            )),
            None => {
                iomem.push_str(line);
                iomem.push('\n');
            }
        }
    }
    Ok((iomem, nodes))
}

/// Runs the layout's sequences on the model (hmem preset, the kernel's flavour, the guest's
/// own boot layout) and compares every line with the kernel's answers.
fn agreement(layout: &str, kver: &str) -> Result<String, String> {
    let file = if layout == "atomic" {
        "agreement-atomic.txt"
    } else {
        "agreement.txt"
    };
    // The region carving runs first in both boots, the placement files last
    // (tests/e2e/guest/scenarios.sh).
    let sequences = read(&top().join("tests/e2e/agreement-sizing.txt"))?
        + &read(&top().join("tests/e2e").join(file))?
        + &read(&top().join("tests/e2e/agreement-placement.txt"))?;
    let flavour = if atomic_abi(kver) {
        Flavour::Atomic
    } else {
        Flavour::Legacy
    };
    let tag = format!("{layout}@{kver}");
    let mut m = build_preset("hmem", flavour, 1).map_err(|e| e.to_string())?;
    m.kernel_alloc_per_mille = 0;
    let (iomem, nodes) = boot_layout(&tag)?;
    m.adopt_boot(&iomem, &nodes)
        .map_err(|e| format!("{tag}: {e}"))?;
    let model = script::run(&mut m, &sequences);
    let kernel = read(&logs().join(format!("{tag}-agreement.txt")))?;
    let differences = common::line_diff(&kernel, &model, "kernel", " model");
    if differences.is_empty() {
        Ok(format!(
            "E2E PASS {tag}: {} sysfs operations of agreement-sizing.txt, {file} and agreement-placement.txt answered identically by the model ({flavour:?} flavour) and the kernel",
            kernel.lines().count()
        ))
    } else {
        Err(format!(
            "E2E FAIL {tag}: the model and the kernel disagree on {file}:\n{}",
            differences.join("\n")
        ))
    }
}

/// daxctl's transcript on this kernel against the one the model is held to.
fn daxctl_transcript(kver: &str) -> Result<String, String> {
    let want = read(&top().join("tests/e2e/daxctl-hmem.txt"))?;
    let got = read(&logs().join(format!("daxctl@{kver}-daxctl.txt")))?;
    let diff = common::line_diff(&want, &got, "golden", "kernel");
    if diff.is_empty() {
        Ok(format!(
            "E2E PASS daxctl@{kver}: the kernel gives the {}-line daxctl transcript the model is held to",
            want.lines().count()
        ))
    } else {
        Err(format!(
            "E2E FAIL daxctl@{kver}: daxctl on this kernel no longer gives tests/e2e/daxctl-hmem.txt ({} lines, {} here):\n{}",
            want.lines().count(),
            got.lines().count(),
            diff.join("\n")
        ))
    }
}

/// The real-system layout: a Debian 12 system with systemd and udevd, the package installed
/// with apt, booted five times on each kernel from 6.12 on (tests/e2e/system/). Its own test,
/// so that it runs beside the kernel matrix (each guest uses one host thread).
#[test]
fn real_debian_system_in_qemu() {
    if std::env::var("E2E_LAYOUTS").is_ok_and(|l| !l.split(',').any(|l| l == "system")) {
        return;
    }
    let Some(kernels) = kernels_to_test("e2e system") else {
        return;
    };
    let deb = match common::package::package() {
        Ok(p) => p.deb,
        Err(why) => panic!("the real-system layout installs the package, and there is none: {why}"),
    };
    let mut failures = Vec::new();
    // 6.1 (bookworm's own kernel) runs the busybox layouts; the system runs on 6.12 and 7.3.
    for kver in kernels.iter().filter(|k| version(k) >= (6, 12)) {
        // E2E_RECHECK=1 holds the logs of the last run to the checks again, without booting.
        let (code, text) = if std::env::var_os("E2E_RECHECK").is_some_and(|v| v == "1") {
            (Some(0), String::new())
        } else {
            run_sh_with(&["system"], Some(kver), &[("DAXPLUG_DEB", deb.as_path())])
        };
        match code {
            Some(0) => {}
            Some(77) => {
                failures.push(format!("system@{kver} could not run: {}", text.trim()));
                continue;
            }
            _ => {
                failures.push(format!("system@{kver}:\n{text}"));
                continue;
            }
        }
        for r in system::checks(&logs(), kver, atomic_abi(kver)) {
            match r {
                Ok(line) => say(&line),
                Err(line) => {
                    say(&line);
                    failures.push(line);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn real_kernels_in_qemu() {
    let Some(kernels) = kernels_to_test("e2e") else {
        return;
    };
    say(&format!("e2e kernels: {}", kernels.join(" ")));
    let mut failures = Vec::new();
    for kver in &kernels {
        let (mut layouts, left_out) = layouts_of(kver);
        for (layout, why) in left_out {
            say(&format!(
                "E2E NOTE {layout}@{kver}: not in this kernel's matrix: {why}"
            ));
        }
        // The real-system layout is its own test (real_debian_system_in_qemu).
        // E2E_LAYOUTS (comma-separated) narrows a run to some layouts, for work on one of them.
        if let Ok(only) = std::env::var("E2E_LAYOUTS") {
            layouts.retain(|l| only.split(',').any(|o| o == *l));
        }
        let mut passed = 0;
        for layout in layouts {
            match guest(layout, kver) {
                Run::Skipped(why) => {
                    // Only a machine that cannot boot any guest may skip; a layout that
                    // cannot run while others can is a failure.
                    if layout == "agreement" {
                        say(&format!("SKIP e2e (real kernel {kver} in QEMU): {why}"));
                        return;
                    }
                    failures.push(format!("{layout}@{kver} could not run: {why}"));
                    continue;
                }
                Run::Ran { lines, ok, output } => {
                    for l in &lines {
                        say(l);
                    }
                    passed += lines.iter().filter(|l| l.starts_with("E2E PASS")).count();
                    if !ok {
                        failures.push(format!("{layout}@{kver}:\n{output}"));
                        continue;
                    }
                }
            }
            let extra = match layout {
                "agreement" | "atomic" => Some(agreement(layout, kver)),
                "daxctl" => Some(daxctl_transcript(kver)),
                _ => None,
            };
            match extra {
                Some(Ok(line)) => {
                    say(&line);
                    passed += 1;
                }
                Some(Err(e)) => {
                    say(&e);
                    failures.push(e);
                }
                None => {}
            }
        }
        if passed < 30 && std::env::var_os("E2E_LAYOUTS").is_none() {
            failures.push(format!("only {passed} scenario steps passed on {kver}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
