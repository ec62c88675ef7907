//! What the policy daemon costs: idle on a generated machine of 64k blocks (file events on
//! the tree), reacting to drift and to a uevent storm on the emulated machine (its
//! uevents), and its memory over a simulated hour (the engine's daemon core on the model,
//! the clock advanced without waiting). The CPU figures are the daemon's own accounting
//! (`/proc/self/stat`), from the line it logs when it stops.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use daxplug_engine::Host;
use daxplug_engine::daemon::Daemon;
use daxplug_engine::plan::policy::Policy;
use daxplug_kernel::Kernel;
use daxplug_model::{Flavour, Sim, build_preset};

/// The daemon's stop line, in numbers.
#[derive(Debug, Default)]
struct Stop {
    seconds: f64,
    cpu: f64,
    events: u64,
    passes: u64,
    sweeps: u64,
    resident_kib: u64,
}

fn stop_line(log: &str) -> anyhow::Result<Stop> {
    let line = log
        .lines()
        .find(|l| l.contains("stopping after"))
        .with_context(|| format!("the daemon did not log its stop:\n{log}"))?;
    let num = |before: &str| -> f64 {
        line.split(before)
            .next()
            .and_then(|s| s.rsplit([' ', '(']).next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0)
    };
    Ok(Stop {
        seconds: num(" s:"),
        cpu: num(" s of CPU"),
        events: num(" events") as u64,
        passes: num(" passes") as u64,
        sweeps: num(" sweeps") as u64,
        resident_kib: num(" KiB resident") as u64,
    })
}

fn run_daemon(
    daxplug: &Path,
    machine: &[&str],
    policy: &Path,
    seconds: u64,
) -> anyhow::Result<String> {
    let out = Command::new(daxplug)
        .args(machine)
        .arg("daemon")
        .arg("--config")
        .arg(policy)
        .arg("--exit-after")
        .arg(format!("{seconds}s"))
        .output()
        .context("run daxplug daemon")?;
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "daxplug daemon: {log}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(log)
}

/// The `after_event_ms` of every transition the daemon logged.
fn reactions(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.split("after_event_ms=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect()
}

fn row(out: &mut String, what: &str, s: &Stop, extra: &str) {
    let _ = writeln!(
        out,
        "| {what} | {:.0} s | {:.3} s | {:.3} % | {} | {} | {} | {} KiB | {extra} |",
        s.seconds,
        s.cpu,
        s.cpu * 100.0 / s.seconds.max(1e-9),
        s.events,
        s.passes,
        s.sweeps,
        s.resident_kib
    );
}

/// The daemon's table.
pub fn daemon(daxplug: &Path, blocks: u64, seconds: u64) -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy)?;
    let policy = policy.join("daxplug.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"online_movable\"\n",
    )?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | run | CPU | of one core | events | passes | sweeps | resident | reaction to drift (after_event_ms) |\n|---|---:|---:|---:|---:|---:|---:|---:|---|"
    );

    // Idle: a rule that already holds, on a tree of `blocks` blocks.
    let tree = dir.path().join("tree");
    crate::materialize(&crate::machine(blocks, 1), &tree)?;
    let log = run_daemon(
        daxplug,
        &["--root", &tree.display().to_string()],
        &policy,
        seconds,
    )?;
    row(
        &mut out,
        &format!("idle, {blocks} blocks, copied tree (inotify)"),
        &stop_line(&log)?,
        "",
    );

    // Drift: an admin offlining and onlining single blocks of the managed device now and
    // then, on the emulated machine.
    let sim = dir.path().join("m.json").display().to_string();
    for (what, actor) in [
        (
            "drift: an admin toggling blocks (hmem, emulated)",
            vec!["admin", "--per-mille", "1"],
        ),
        (
            "uevent storm: 20 change events a step (hmem, emulated)",
            vec!["uevent-storm", "--per-step", "20"],
        ),
    ] {
        let init = Command::new(daxplug)
            .args(["sim", "init", &sim, "--preset", "hmem", "--force"])
            .output()?;
        anyhow::ensure!(
            init.status.success(),
            "sim init: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        // The rule's state first, then the competitor.
        run_daemon(daxplug, &["--sim", &sim], &policy, 1)?;
        let add = Command::new(daxplug)
            .args(["--sim", &sim, "sim", "actor", "add"])
            .args(&actor)
            .output()?;
        anyhow::ensure!(
            add.status.success(),
            "sim actor add: {}",
            String::from_utf8_lossy(&add.stderr)
        );
        let secs = seconds.min(20);
        let log = run_daemon(daxplug, &["--sim", &sim], &policy, secs)?;
        let mut r = reactions(&log);
        r.sort_unstable();
        let extra = if r.is_empty() {
            "no restore".to_owned()
        } else {
            format!(
                "{} restores: median {} ms, max {} ms",
                r.len(),
                r[r.len() / 2],
                r[r.len() - 1]
            )
        };
        row(&mut out, what, &stop_line(&log)?, &extra);
    }
    let _ = writeln!(out, "\n{}", memory_over_an_hour()?);
    Ok(out)
}

/// An hour of the daemon's life on the `large` preset, one pass a simulated second and a
/// block offlined by hand every ten: resident memory every ten simulated minutes.
fn memory_over_an_hour() -> anyhow::Result<String> {
    struct Quiet(Sim, tempfile::TempDir);
    impl Host for Quiet {
        fn kernel(&self) -> &dyn Kernel {
            &self.0
        }
        fn run_dir(&self) -> std::path::PathBuf {
            self.1.path().to_path_buf()
        }
        fn udev_running(&self) -> bool {
            true
        }
        fn set_udev_queue(&self, _: bool) -> Result<(), daxplug_engine::host::UdevError> {
            Ok(())
        }
        fn load_module(
            &self,
            _: daxplug_abi::DaxDriver,
        ) -> Result<(), daxplug_engine::host::ModuleError> {
            Ok(())
        }
        fn dax_users(&self, _: daxplug_abi::DaxName) -> Vec<u32> {
            Vec::new()
        }
    }
    let mut m = build_preset("large", Flavour::Legacy, 1)?;
    m.kernel_alloc_per_mille = 0;
    let host = Quiet(Sim::new(m), tempfile::tempdir()?);
    let policy = Policy::parse(
        Path::new("bench.toml"),
        "[[rule]]\nmatch = { target_node = 1 }\nstate = \"online_movable\"\n",
    )?;
    let opts = daxplug_engine::Options {
        settle: Duration::ZERO,
        ..daxplug_engine::Options::default()
    };
    let mut d = Daemon::new(&host, policy, opts);
    let mut out = String::from(
        "| simulated minute | passes | transitions | resident |\n|---:|---:|---:|---:|\n",
    );
    // The first pass brings the node's devices online; their blocks are the ones drifted.
    let mut transitions = d.apply(false)?.len();
    d.skew += Duration::from_secs(1);
    let blocks: Vec<u64> = host.0.with(|m| {
        m.blocks
            .iter()
            .filter(|(_, b)| b.owner.is_some() && b.node == 1)
            .map(|(id, _)| *id)
            .collect()
    });
    for second in 1..=3600u64 {
        if second % 10 == 5 && !blocks.is_empty() {
            let id = blocks[(second as usize / 10) % blocks.len()];
            let _ = host.0.write(
                &format!("/sys/devices/system/memory/memory{id}/state"),
                "offline",
            );
        }
        transitions += d
            .apply(false)?
            .iter()
            .filter(|x| {
                matches!(
                    x.result,
                    daxplug_engine::daemon::DecisionResult::Transition(_)
                )
            })
            .count();
        d.skew += Duration::from_secs(1);
        if second % 600 == 0 || second == 1 {
            let _ = writeln!(
                out,
                "| {} | {} | {transitions} | {} KiB |",
                second / 60,
                second + 1,
                daxplug_kernel::usage::resident_bytes() / 1024
            );
        }
    }
    Ok(out)
}
