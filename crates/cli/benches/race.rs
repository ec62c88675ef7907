//! The race bench: the same competing controller against `daxctl offline-memory` +
//! `daxctl reconfigure-device -m devdax` and against `daxplug set DEV unplugged`, both run
//! unmodified under `daxplug sim run` on the hmem machine (legacy kernel), over many seeds;
//! counts how each run ends. Prints a Markdown section for docs/RELIABILITY.md.
//!
//! usage: cargo bench -p daxplug --bench race -- [--seeds N] [--step-delay MICROS]
//! Needs root, /dev/fuse and daxctl; prints a SKIP line otherwise.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_daxplug");

/// A shell loop onlining every offline block of dax0.0 (`PAUSE` seconds between sweeps).
const LOOP: &str = r#"while :; do
  for f in /sys/devices/system/memory/memory4[0-7]/state; do
    s=; read -r s < "$f" 2>/dev/null
    [ "$s" = offline ] && echo online > "$f" 2>/dev/null
  done
  PAUSE
done"#;

#[derive(Clone, Copy)]
enum Competitor {
    ShellLoop,
    PeriodicLoop,
    KeepOnlineRule,
}

impl Competitor {
    fn describe(self) -> &'static str {
        match self {
            Competitor::ShellLoop => "shell loop onlining offline blocks, flat out",
            Competitor::PeriodicLoop => "the same loop, one sweep every 20 ms",
            Competitor::KeepOnlineRule => "udev rule onlining a block on its offline event",
        }
    }
}

#[derive(Clone, Copy)]
enum Tool {
    Daxctl,
    Daxplug,
    /// daxplug on a kernel with the atomic whole-device ABI (the series under review).
    DaxplugAtomic,
}

impl Tool {
    fn describe(self) -> &'static str {
        match self {
            Tool::Daxctl => "daxctl offline-memory + reconfigure-device -m devdax",
            Tool::Daxplug => "daxplug set dax0.0 unplugged",
            Tool::DaxplugAtomic => "daxplug set dax0.0 unplugged, kernel with daxX.Y/state",
        }
    }

    fn command(self) -> String {
        match self {
            Tool::Daxctl => "daxctl offline-memory dax0.0 >/dev/null 2>&1 && daxctl reconfigure-device -m devdax dax0.0 >/dev/null 2>&1".to_owned(),
            Tool::Daxplug | Tool::DaxplugAtomic => {
                format!("{BIN} set dax0.0 unplugged >/dev/null 2>&1")
            }
        }
    }
}

fn daxplug(args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN).args(args).output().expect("daxplug runs");
    assert!(
        out.status.success() || args.contains(&"run"),
        "daxplug {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One run: a fresh machine with dax0.0 online_movable, the competitor started, then the
/// tool; returns the observed end state and the tool's exit code.
fn run_once(dir: &Path, seed: u64, comp: Competitor, tool: Tool, step_delay: u64) -> (String, i32) {
    let file = dir.join(format!("m-{seed}.json")).display().to_string();
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir_all(format!("{file}.run"));
    let seed_text = seed.to_string();
    let kernel = match tool {
        Tool::DaxplugAtomic => "atomic",
        Tool::Daxctl | Tool::Daxplug => "legacy",
    };
    daxplug(&[
        "sim",
        "init",
        &file,
        "--preset",
        "hmem",
        "--kernel",
        kernel,
        "--seed",
        &seed_text,
        "--kernel-allocs",
        "0",
    ]);
    daxplug(&["--sim", &file, "sim", "modprobe", "kmem"]);
    daxplug(&["--sim", &file, "set", "dax0.0", "online_movable"]);
    // Offlining takes real time, as migrating 128 MiB does on a real machine.
    daxplug(&["--sim", &file, "sim", "fault", "slow-offline", "2"]);
    daxplug(&[
        "--sim",
        &file,
        "sim",
        "fault",
        "step-delay",
        &step_delay.to_string(),
    ]);
    let background = match comp {
        Competitor::ShellLoop => format!("( {} ) & C=$!", LOOP.replace("PAUSE", ":")),
        Competitor::PeriodicLoop => format!("( {} ) & C=$!", LOOP.replace("PAUSE", "sleep 0.02")),
        Competitor::KeepOnlineRule => {
            daxplug(&["--sim", &file, "sim", "actor", "add", "keep-online-rule"]);
            "C=".to_owned()
        }
    };
    let script = format!(
        "{background}\nsleep 0.01\n{}\nrc=$?\n[ -n \"$C\" ] && kill $C 2>/dev/null; wait\necho \"rc=$rc\"",
        tool.command()
    );
    let out = daxplug(&["sim", "run", &file, "--", "bash", "-c", &script]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rc = stdout
        .lines()
        .find_map(|l| l.strip_prefix("rc="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1);
    let status = daxplug(&["--sim", &file, "status", "dax0.0", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    let state = v["devices"][0]["state"].as_str().unwrap_or("?").to_owned();
    (state, rc)
}

fn usable() -> Result<(), String> {
    if !rustix::process::getuid().is_root() {
        return Err("not root".into());
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(|e| format!("/dev/fuse: {e}"))?;
    Command::new("daxctl")
        .arg("version")
        .output()
        .map_err(|_| "daxctl is not installed (apt-get install daxctl)".to_owned())
        .map(|_| ())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seeds = arg("--seeds", 20);
    let step_delay = arg("--step-delay", 1000);
    if let Err(why) = usable() {
        println!("SKIP race bench: {why}");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let started = Instant::now();
    let mut rows = Vec::new();
    for comp in [
        Competitor::ShellLoop,
        Competitor::PeriodicLoop,
        Competitor::KeepOnlineRule,
    ] {
        for tool in [Tool::Daxctl, Tool::Daxplug, Tool::DaxplugAtomic] {
            let mut ends: BTreeMap<String, u64> = BTreeMap::new();
            for seed in 1..=seeds {
                let (state, rc) = run_once(tmp.path(), seed, comp, tool, step_delay);
                let class = match state.as_str() {
                    "mixed" => "torn",
                    "stuck" => "stuck",
                    "devdax" | "unbound" | "unplugged" => "done",
                    "online_movable" if rc != 0 => "rolled back",
                    "online_kernel" => "kernel zone",
                    _ => "other",
                };
                *ends.entry(class.to_owned()).or_default() += 1;
                eprintln!(
                    "{} / {}: seed {seed}: {state}, exit {rc}",
                    comp.describe(),
                    tool.describe()
                );
            }
            rows.push((comp, tool, ends));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!("## Race bench: daxctl and daxplug, unmodified, against the same competitors\n");
    println!(
        "`cargo bench -p daxplug --bench race -- --seeds {seeds} --step-delay {step_delay}` \
         ({} runs in {secs:.0} s). Each run: a fresh `hmem` machine (legacy kernel unless the row says otherwise, seed 1..{seeds}) \
         with dax0.0 online_movable, every block offline taking ~{} ms of real time; the \
         competitor starts, 10 ms later the tool runs; both are real processes under \
         `daxplug sim run`, talking to the model through FUSE, or the competitor is a udev rule \
         inside the model. The end state is what `daxplug status` observes.\n",
        rows.len() as u64 * seeds,
        3 * step_delay / 1000,
    );
    println!(
        "Columns: **done** the memory was released; **rolled back** the tool gave up and left \
         the device online_movable, as it found it; **kernel zone** the device is online but \
         re-onlined in ZONE_NORMAL, from where it usually cannot be removed again; **torn** \
         blocks disagree; **stuck** kmem unbound with blocks still present: leaked until reboot.\n"
    );
    println!(
        "| competitor | tool | runs | done | rolled back | kernel zone | torn (mixed) | stuck | other |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (comp, tool, ends) in &rows {
        let n = |k: &str| ends.get(k).copied().unwrap_or(0);
        println!(
            "| {} | {} | {seeds} | {} | {} | {} | {} | {} | {} |",
            comp.describe(),
            tool.describe(),
            n("done"),
            n("rolled back"),
            n("kernel zone"),
            n("torn"),
            n("stuck"),
            n("other")
        );
    }
}
