//! The real-kernel end-to-end tests, one test per layout and kernel
//! (`real_kernels_in_qemu::hmem@7.3.4+deb13-amd64`, `real_debian_system_in_qemu::system@...`),
//! so that a failure names itself. The kernels are stock Debian ones booted under QEMU (TCG):
//! by default bookworm's own 6.1, the newest 6.12 (legacy ABI) and the newest kernel from 7.3
//! on (atomic ABI, `daxX.Y/state`), `E2E_KERNELS` choosing others; the harness is libtest-mimic,
//! because the tests exist only once the kernels are known (`tests/e2e/run.sh kernels`).
//!
//! Each busybox layout boots once per kernel (tests/e2e/run.sh, and tests/e2e/guest/: the
//! library, and a script per layout): daxplug's scenarios on hmem, e820 and cxl, the broken
//! protocol that must tear, region carving, and daxctl's own commands. The guest checks what
//! only it can see (exit codes, sysfs, /proc/iomem) and prints raw facts the host compares
//! here: the model-versus-kernel agreement sequences (tests/e2e/agreement*.txt) answered by a
//! model that adopted the guest's own boot layout, daxctl's transcript
//! (tests/e2e/daxctl-hmem.txt, which the model must also give under `daxplug sim run`,
//! crates/cli/tests/simrun.rs), and the placement files beside daxplug's JSON (e2e/facts.rs).
//! The real-system layout boots a Debian 12 system (systemd, udevd, the package installed
//! with apt) on the hmem machine, on each kernel from 6.12 on (tests/e2e/system/, assertions
//! in e2e/system.rs).
//!
//! Every line names its layout and kernel (`E2E PASS hmem@7.3.4+deb13-amd64: ...`). A SKIP
//! line appears, and the tests pass, only when the machine cannot boot a guest at all (no
//! QEMU, no Debian packages; run.sh says which), which `.ci/run` counts as a failure;
//! `DAXPLUG_E2E=0` skips on purpose. `.ci/run` installs QEMU. `E2E_LAYOUTS=agreement,hmem`
//! runs only those layouts (`system` included).

mod common;
#[path = "e2e/facts.rs"]
mod facts;
#[path = "e2e/system.rs"]
mod system;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use libtest_mimic::{Arguments, Failed, Trial};

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
fn kernels_to_test(what: &str) -> Result<Option<Vec<String>>, String> {
    if std::env::var_os("DAXPLUG_E2E").is_some_and(|v| v == "0") {
        say(&format!("SKIP {what}: DAXPLUG_E2E=0"));
        return Ok(None);
    }
    match run_sh(&["kernels"], None) {
        (Some(0), out) => Ok(Some(out.lines().map(str::to_owned).collect())),
        (Some(77), why) => {
            say(&format!(
                "SKIP {what} (real kernels in QEMU): {}",
                why.trim()
            ));
            Ok(None)
        }
        (_, out) => Err(format!("tests/e2e/run.sh kernels failed:\n{out}")),
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
    // (tests/e2e/guest/sequences.sh).
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

/// The real-system layout on one kernel: a Debian 12 system with systemd and udevd, the
/// package installed with apt, booted five times (tests/e2e/system/).
fn system_on(kver: &str) -> Result<(), Failed> {
    let deb = common::package::package()
        .map_err(|why| {
            format!("the real-system layout installs the package, and there is none: {why}")
        })?
        .deb;
    // E2E_RECHECK=1 holds the logs of the last run to the checks again, without booting.
    let (code, text) = if std::env::var_os("E2E_RECHECK").is_some_and(|v| v == "1") {
        (Some(0), String::new())
    } else {
        run_sh_with(&["system"], Some(kver), &[("DAXPLUG_DEB", deb.as_path())])
    };
    match code {
        Some(0) => {}
        Some(77) => return Err(format!("system@{kver} could not run: {}", text.trim()).into()),
        _ => return Err(format!("system@{kver}:\n{text}").into()),
    }
    verdict(system::checks(&logs(), kver, atomic_abi(kver)))
}

/// One layout on one kernel: the guest's own checks, then what the host compares (the
/// agreement sequences on the model, daxctl's transcript, the placement facts).
fn layout_on(layout: &str, kver: &str) -> Result<(), Failed> {
    let tag = format!("{layout}@{kver}");
    let (lines, ok, output) = match guest(layout, kver) {
        // Only a machine that cannot boot a guest at all skips, and CI fails on the line.
        Run::Skipped(why) => {
            say(&format!("SKIP {tag} (real kernel in QEMU): {why}"));
            return Ok(());
        }
        Run::Ran { lines, ok, output } => (lines, ok, output),
    };
    for l in &lines {
        say(l);
    }
    if !ok {
        return Err(format!("{tag}:\n{output}").into());
    }
    let mut results = match layout {
        "agreement" | "atomic" => vec![agreement(layout, kver)],
        "daxctl" => vec![daxctl_transcript(kver)],
        "hmem" | "cxl" => match (
            read(&logs().join(format!("{tag}-facts.txt"))),
            read(&logs().join(format!("{tag}-zoneinfo.txt"))),
        ) {
            (Ok(text), Ok(zones)) => {
                let mut r = facts::placement(&tag, &text);
                r.push(facts::zoneinfo(&tag, &text, &zones));
                r
            }
            (Err(e), _) | (_, Err(e)) => {
                vec![Err(format!("E2E FAIL {tag}: no placement facts: {e}"))]
            }
        },
        _ => Vec::new(),
    };
    let passed = lines.iter().filter(|l| l.starts_with("E2E PASS")).count();
    if passed == 0 {
        results.push(Err(format!("E2E FAIL {tag}: no scenario step passed")));
    }
    verdict(results)
}

/// Says every check's line; fails with the failed ones.
fn verdict(results: impl IntoIterator<Item = Result<String, String>>) -> Result<(), Failed> {
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(line) => say(&line),
            Err(line) => {
                say(&line);
                failures.push(line);
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n").into())
    }
}

/// Whether any test of `group` can be selected by the command line's filters (the kernels
/// are not looked up for a run that skips them all).
fn selected(args: &Arguments, group: &str) -> bool {
    !args.skip.iter().any(|s| group.contains(s.as_str()))
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let mut trials = facts::self_tests();
    let (kernel_tests, system_tests) = (
        selected(&args, "real_kernels_in_qemu"),
        selected(&args, "real_debian_system_in_qemu"),
    );
    let only = std::env::var("E2E_LAYOUTS").ok();
    let wanted = |layout: &str| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|l| l == layout))
    };
    if (kernel_tests || system_tests) && !args.list {
        match kernels_to_test("e2e") {
            Err(e) => trials.push(Trial::test("real_kernels_in_qemu::kernels", move || {
                Err(e.into())
            })),
            Ok(None) => {}
            Ok(Some(kernels)) => {
                say(&format!("e2e kernels: {}", kernels.join(" ")));
                // The longest guests first: the real systems (five boots each) run beside
                // the busybox layouts rather than after them.
                for kver in kernels.iter().filter(|k| version(k) >= (6, 12)) {
                    if system_tests && wanted("system") {
                        let k = kver.clone();
                        trials.push(Trial::test(
                            format!("real_debian_system_in_qemu::system@{kver}"),
                            move || system_on(&k),
                        ));
                    }
                }
                for kver in &kernels {
                    let (layouts, left_out) = layouts_of(kver);
                    for (layout, why) in left_out {
                        say(&format!(
                            "E2E NOTE {layout}@{kver}: not in this kernel's matrix: {why}"
                        ));
                    }
                    for layout in layouts.into_iter().filter(|l| kernel_tests && wanted(l)) {
                        let k = kver.clone();
                        trials.push(Trial::test(
                            format!("real_kernels_in_qemu::{layout}@{kver}"),
                            move || layout_on(layout, &k),
                        ));
                    }
                }
            }
        }
    }
    libtest_mimic::run(&args, trials).exit_code()
}
