//! `daxplug-bench`: prints Markdown tables of what users feel, daxplug against daxctl.
//!
//! * discovery at scale: machines of 1k, 16k and 64k memory blocks with 1, 16 and 64
//!   devices, built by the model (`daxplug_model::scaled`) and written out as real trees on
//!   tmpfs (the same files the FUSE mount serves, `/dev/daxX.Y` included), then
//!   `daxplug list --json`, `daxplug status dax0.0 --json`, `daxctl list -D` and
//!   `daxctl list -D -M`, each run unmodified under `daxplug sim run TREE` (the tree is the
//!   system's /sys there): median wall time, system calls and files opened per device block
//!   (`strace -f -c`), and the same commands through the FUSE mount of the machine;
//! * transitions on the `large` preset through FUSE: daxplug's own report (time in kernel
//!   writes, settle, the rest) and sysfs path operations per block, against daxctl;
//! * model throughput: randomized three-actor schedules per second.
//!
//! `cargo build --release --bin daxplug --bin daxplug-bench &&
//!  target/release/daxplug-bench [--runs N] [--blocks 1024,16384,65536] [--no-discovery]`
//! (root, /dev/fuse; daxctl and strace when installed). `daxplug-bench generate DIR BLOCKS
//! DEVICES` keeps a tree to look at.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use daxplug_model::{
    Actor, Caller, DAX_MAJOR, Flavour, Kind, Machine, Rng, build_preset, rhel_rule, scaled,
};
use std::os::unix::fs::PermissionsExt as _;

mod daemon;

/// Writes the model's view of `m` under `root`: `sys/`, `proc/` and `dev/daxX.Y` (character
/// device nodes with the model's numbers), files with sysfs modes, links as links. The same
/// files the FUSE mount would serve, on a plain filesystem, so that any tool can read them.
fn materialize(m: &Machine, root: &Path) -> anyhow::Result<()> {
    fn walk(m: &Machine, root: &Path, dir: &str) -> anyhow::Result<()> {
        let Some(entries) = m.entries(dir) else {
            return Ok(());
        };
        for (name, kind) in entries {
            let path = if dir == "/" {
                format!("/{name}")
            } else {
                format!("{dir}/{name}")
            };
            let on_disk = root.join(path.trim_start_matches('/'));
            match kind {
                Kind::Dir => {
                    fs::create_dir_all(&on_disk)?;
                    walk(m, root, &path)?;
                }
                Kind::Link(target) => symlink(target, &on_disk)?,
                Kind::File { read, write } => {
                    let text = if read {
                        m.sysfs_read(&path).unwrap_or_default()
                    } else {
                        String::new()
                    };
                    fs::write(&on_disk, text)?;
                    let mode = if read { 0o444 } else { 0 } | if write { 0o200 } else { 0 };
                    fs::set_permissions(&on_disk, fs::Permissions::from_mode(mode))?;
                }
            }
        }
        Ok(())
    }
    fs::create_dir_all(root)?;
    walk(m, root, "/")?;
    let dev = root.join("dev");
    fs::create_dir_all(&dev)?;
    for d in &m.devices {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dev.join(&d.name),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o600),
            rustix::fs::makedev(DAX_MAJOR, d.minor),
        )
        .with_context(|| format!("mknod {}", d.name))?;
    }
    Ok(())
}

/// The benchmark machine: `blocks` blocks, half of them device memory in `devices` devices.
fn machine(blocks: u64, devices: u64) -> Machine {
    let mut m = scaled(blocks, devices, Flavour::Legacy, 1);
    m.kernel_alloc_per_mille = 0;
    m
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The programs the discovery benchmark runs.
struct Tools {
    daxplug: PathBuf,
    me: PathBuf,
    daxctl: bool,
    strace: bool,
}

fn found(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `cmd` where `machine` (a tree or a machine file) is the system's /sys and /proc.
fn in_machine(t: &Tools, machine: &Path, cmd: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(&t.daxplug)
        .arg("sim")
        .arg("run")
        .arg(machine)
        .arg("--")
        .args(cmd)
        .output()
        .context("run daxplug sim run")?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} on {}: {}",
        machine.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Median wall time of `cmd` run `runs` times inside the machine (ms).
fn timed(t: &Tools, machine: &Path, runs: usize, cmd: &[&str]) -> anyhow::Result<f64> {
    let me = t.me.to_str().context("utf-8 path")?;
    let runs = runs.to_string();
    let mut args = vec![me, "time", &runs, "--"];
    args.extend_from_slice(cmd);
    let out = in_machine(t, machine, &args)?;
    out.trim()
        .strip_prefix("median_ms ")
        .context("no median")?
        .parse()
        .context("median")
}

/// System calls of one run of `cmd` (all, and `openat`), from `strace -f -c`.
fn syscalls(t: &Tools, machine: &Path, cmd: &[&str]) -> anyhow::Result<(u64, u64)> {
    let out = tempfile::NamedTempFile::new()?;
    let path = out.path().to_str().context("utf-8 path")?.to_owned();
    let mut args = vec!["strace", "-f", "-c", "-o", &path];
    args.extend_from_slice(cmd);
    in_machine(t, machine, &args)?;
    let text = fs::read_to_string(&path)?;
    let (mut total, mut opens) = (0, 0);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(calls)) = (f.last(), f.get(3).and_then(|c| c.parse::<u64>().ok()))
        else {
            continue;
        };
        if *name == "total" {
            continue;
        }
        total += calls;
        if *name == "openat" || *name == "open" {
            opens += calls;
        }
    }
    Ok((total, opens))
}

fn discovery(t: &Tools, runs: usize, sizes: &[u64]) -> anyhow::Result<String> {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let mut out = String::from(
        "| blocks | devices | command | tree: median ms | syscalls | files opened per device block | FUSE: median ms |\n|---:|---:|---|---:|---:|---:|---:|\n",
    );
    let mut ratios = String::new();
    for &blocks in sizes {
        for devices in [1u64, 16, 64] {
            let dir = tempfile::tempdir_in(&base)?;
            let m = machine(blocks, devices);
            let device_blocks = m.devices.len() as u64 * (blocks / 2 / devices).max(1);
            let tree = dir.path().join("tree");
            materialize(&m, &tree)?;
            let file = dir.path().join("machine.json");
            daxplug_model::MachineFile::create(&file, &m, true)?;
            let mut commands: Vec<(&str, Vec<&str>)> = vec![
                ("daxplug list --json", vec!["daxplug", "list", "--json"]),
                (
                    "daxplug status dax0.0 --json",
                    vec!["daxplug", "status", "dax0.0", "--json"],
                ),
            ];
            if t.daxctl {
                commands.push(("daxctl list -D", vec!["daxctl", "list", "-D"]));
                commands.push(("daxctl list -D -M", vec!["daxctl", "list", "-D", "-M"]));
            }
            let daxplug = t.daxplug.to_str().context("utf-8 path")?;
            let mut list_ms = None;
            for (label, mut cmd) in commands {
                if cmd[0] == "daxplug" {
                    cmd[0] = daxplug;
                }
                // daxctl reads every block of the node once per device and per pass: on the
                // big machines one run takes minutes, under strace or FUSE far longer.
                let heavy = label.starts_with("daxctl") && blocks * devices > 16384 * 16;
                let tree_ms = timed(t, &tree, if heavy { 1 } else { runs }, &cmd)?;
                let (calls, opens) = if t.strace && !heavy {
                    syscalls(t, &tree, &cmd)?
                } else {
                    (0, 0)
                };
                let fuse_ok = if label.starts_with("daxctl") {
                    blocks <= 1024
                } else {
                    blocks <= 16384
                };
                let fuse_ms = if fuse_ok {
                    format!("{:.1}", timed(t, &file, 1, &cmd)?)
                } else {
                    "-".to_owned()
                };
                if label == "daxplug list --json" {
                    list_ms = Some(tree_ms);
                }
                if label == "daxctl list -D"
                    && let Some(l) = list_ms
                {
                    // A program that does nothing, started the same way: what process
                    // start alone costs here, so the most any listing command could show.
                    let floor = timed(t, &tree, runs, &["true"])?;
                    let _ = writeln!(
                        ratios,
                        "| {blocks} | {devices} | {l:.2} | {tree_ms:.2} | {:.1}x | {floor:.2} | {:.1}x |",
                        tree_ms / l,
                        tree_ms / floor
                    );
                }
                let counted = t.strace && calls > 0;
                let _ = writeln!(
                    out,
                    "| {blocks} | {devices} | `{label}` | {tree_ms:.1} | {} | {} | {fuse_ms} |",
                    if counted {
                        calls.to_string()
                    } else {
                        "-".into()
                    },
                    if counted {
                        format!("{:.2}", opens as f64 / device_blocks as f64)
                    } else {
                        "-".into()
                    },
                );
            }
        }
    }
    if !ratios.is_empty() {
        out.push_str("\n`daxctl list -D` time over `daxplug list --json` time (tmpfs trees), and over the time of `true`, a program that does nothing, started the same way (no listing command started as a process can beat that ratio):\n\n| blocks | devices | daxplug ms | daxctl ms | daxctl / daxplug | `true` ms | daxctl / `true` |\n|---:|---:|---:|---:|---:|---:|---:|\n");
        out.push_str(&ratios);
    }
    Ok(out)
}

/// Path system calls on /sys and /proc of one run of `cmd` (`strace -f`), per block.
fn sysfs_ops(t: &Tools, machine: &Path, cmd: &[&str]) -> anyhow::Result<u64> {
    let out = tempfile::NamedTempFile::new()?;
    let path = out.path().to_str().context("utf-8 path")?.to_owned();
    // -y: a call relative to a directory fd shows the directory's path.
    let mut args = vec![
        "strace",
        "-f",
        "-y",
        "-e",
        "trace=open,openat,readlink,readlinkat,stat,lstat,newfstatat,statx,access,faccessat,faccessat2",
        "-o",
        &path,
    ];
    args.extend_from_slice(cmd);
    in_machine(t, machine, &args)?;
    let text = fs::read_to_string(&path)?;
    Ok(text
        .lines()
        // `/sys/fs` is the cgroup limits std reads to count CPUs, not the kernel's memory.
        .filter(|l| {
            (l.contains("/sys/") && !l.contains("/sys/fs/"))
                || l.contains("/proc/iomem")
                || l.contains("/proc/meminfo")
        })
        .count() as u64)
}

fn fresh_large(t: &Tools, file: &Path) -> anyhow::Result<()> {
    let out = Command::new(&t.daxplug)
        .args([
            "sim",
            "init",
            "--preset",
            "large",
            "--kernel-allocs",
            "0",
            "--force",
        ])
        .arg(file)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "sim init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// daxplug's report of a `set --json` run inside the machine: (total, kernel writes,
/// settle) in ms.
fn daxplug_set(t: &Tools, machine: &Path, target: &str) -> anyhow::Result<(f64, f64, f64)> {
    let daxplug = t.daxplug.to_str().context("utf-8 path")?;
    let out = in_machine(t, machine, &[daxplug, "set", "dax0.0", target, "--json"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let r = &v["results"][0];
    let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
    anyhow::ensure!(
        r["outcome"] == "done",
        "daxplug set {target} on the large machine: {}",
        r["outcome"]
    );
    Ok((
        f("total_millis"),
        f("kernel_write_millis"),
        f("settle_millis"),
    ))
}

/// Transition cost on the `large` preset (64 blocks of 2 GiB per device), daxplug against
/// daxctl, both run through the FUSE mount.
fn transitions(t: &Tools) -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("large.json");
    let blocks = 64.0;
    let mut out = String::from(
        "| transition | tool | wall ms | in kernel writes ms | settle ms | own ms | own share | sysfs path operations per block |\n|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let daxplug = t.daxplug.to_str().context("utf-8 path")?;
    let steps = [
        (
            "unbound -> online_movable",
            "online_movable",
            "daxctl reconfigure-device -m system-ram dax0.0",
        ),
        (
            "online_movable -> memory released",
            "unplugged",
            "daxctl offline-memory dax0.0 && daxctl reconfigure-device -m devdax dax0.0",
        ),
    ];
    // daxplug: times from its own report, operations from strace on a second machine.
    fresh_large(t, &file)?;
    let mut reports = Vec::new();
    for (_, target, _) in steps {
        reports.push(daxplug_set(t, &file, target)?);
    }
    fresh_large(t, &file)?;
    for ((name, target, _), (total, kernel, settle)) in steps.iter().zip(reports) {
        let ops = if t.strace {
            format!(
                "{:.1}",
                sysfs_ops(t, &file, &[daxplug, "set", "dax0.0", target])? as f64 / blocks
            )
        } else {
            "-".into()
        };
        let own = total - kernel - settle;
        let _ = writeln!(
            out,
            "| {name} | `daxplug set dax0.0 {target}` | {total:.1} | {kernel:.1} | {settle:.1} | {own:.1} | {:.0}% | {ops} |",
            100.0 * own / total
        );
    }
    if t.daxctl {
        fresh_large(t, &file)?;
        let mut times = Vec::new();
        for (_, _, cmd) in steps {
            times.push(timed(t, &file, 1, &["sh", "-c", cmd])?);
        }
        fresh_large(t, &file)?;
        for ((name, _, cmd), ms) in steps.iter().zip(times) {
            let ops = if t.strace {
                format!(
                    "{:.1}",
                    sysfs_ops(t, &file, &["sh", "-c", cmd])? as f64 / blocks
                )
            } else {
                "-".into()
            };
            let _ = writeln!(
                out,
                "| {name} | `{cmd}` | {ms:.1} | - | - | - | - | {ops} |"
            );
        }
    }
    Ok(out)
}

/// Random three-actor schedules (RHEL rule, kata-agent, admin) with a random client, as in
/// the model's reliability runs; returns schedules per second.
fn model_throughput(seconds: f64) -> anyhow::Result<String> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        let mut m = build_preset(
            "hmem",
            if n.is_multiple_of(2) {
                Flavour::Legacy
            } else {
                Flavour::Atomic
            },
            n,
        )?;
        m.load_kmem();
        m.udev.rules.push(rhel_rule(false));
        m.actors.push(Actor::KataAgent { cursor: 0 });
        m.actors.push(Actor::Admin { per_mille: 100 });
        let mut r = Rng::new(n);
        for _ in 0..20 {
            let id = 40 + r.below(8);
            let value = *r
                .pick(&["offline", "online_movable", "online"])
                .unwrap_or(&"offline");
            m.interleave();
            let _ = m.sysfs_write(
                &format!("/sys/devices/system/memory/memory{id}/state"),
                value,
                Caller::Client,
            );
        }
        n += 1;
    }
    let per_sec = n as f64 / start.elapsed().as_secs_f64();
    Ok(format!(
        "| three-actor schedules (RHEL rule, kata-agent, admin; 20 client writes each) | {per_sec:.0} per second on one core |\n"
    ))
}

const USAGE: &str = "\
usage: daxplug-bench [--runs N] [--blocks 1024,16384,65536] [--no-discovery]
       daxplug-bench generate DIR BLOCKS DEVICES
       daxplug-bench time RUNS -- COMMAND...
       daxplug-bench daemon [BLOCKS [SECONDS]]

Prints Markdown tables: discovery at scale (daxplug list/status against daxctl list on
emulated trees of BLOCKS memory blocks with 1, 16 and 64 devices), transitions on the
`large` preset through FUSE against daxctl, the policy daemon's own cost (idle on a tree
of 65536 blocks for 60 s, drift and a uevent storm on the emulated machine, memory over a
simulated hour), and the model's schedules per second.
Needs root, /dev/fuse and the daxplug binary next to this one; daxctl and strace are used
when installed. Never touches the machine's own /sys.

  --runs N          runs per command, median reported (default 5)
  --blocks LIST     machine sizes in memory blocks (default 1024,16384,65536)
  --no-discovery    only the transitions and the model throughput
  daemon            only the daemon's table (default 65536 blocks, 60 s idle)
  generate          writes one emulated machine as a tree into DIR, to look at
  time              the median wall time of COMMAND over RUNS runs
";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") => {
            // daxplug-bench generate DIR BLOCKS DEVICES: keep a tree to look at.
            let (dir, blocks, devices) = (
                args.get(2).context("DIR")?,
                args.get(3).context("BLOCKS")?,
                args.get(4).context("DEVICES")?,
            );
            return materialize(&machine(blocks.parse()?, devices.parse()?), Path::new(dir));
        }
        Some("time") => {
            // daxplug-bench time RUNS -- COMMAND...: the median wall time of COMMAND.
            let runs: usize = args.get(2).context("RUNS")?.parse()?;
            let cmd = args.get(4..).context("COMMAND")?;
            let mut times = Vec::new();
            for _ in 0..runs.max(1) {
                let t = Instant::now();
                let out = Command::new(&cmd[0]).args(&cmd[1..]).output()?;
                anyhow::ensure!(
                    out.status.success(),
                    "{cmd:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                times.push(t.elapsed());
            }
            println!("median_ms {:.3}", median(times).as_secs_f64() * 1e3);
            return Ok(());
        }
        Some("daemon") => {
            // daxplug-bench daemon [BLOCKS [SECONDS]]: the daemon's table alone.
            let blocks = args.get(2).map_or(Ok(65536), |s| s.parse())?;
            let seconds = args.get(3).map_or(Ok(60), |s| s.parse())?;
            let daxplug = std::env::current_exe()?.with_file_name("daxplug");
            println!("## The policy daemon\n");
            println!("{}", daemon::daemon(&daxplug, blocks, seconds)?);
            return Ok(());
        }
        Some("-h" | "--help") => {
            print!("{USAGE}");
            return Ok(());
        }
        _ => {}
    }
    // Every flag is known and those with a value have one, before minutes of benchmarks.
    let mut rest = args.iter().skip(1);
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--runs" | "--blocks" => {
                rest.next()
                    .with_context(|| format!("{a} needs a value\n\n{USAGE}"))?;
            }
            "--no-discovery" => {}
            other => anyhow::bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let runs = flag("--runs").and_then(|s| s.parse().ok()).unwrap_or(5);
    let sizes: Vec<u64> = flag("--blocks")
        .map(|s| s.split(',').filter_map(|b| b.parse().ok()).collect())
        .unwrap_or_else(|| vec![1024, 16384, 65536]);
    let me = std::env::current_exe()?;
    let daxplug = me.with_file_name("daxplug");
    anyhow::ensure!(
        daxplug.exists(),
        "build the daxplug binary first: cargo build --release --bin daxplug"
    );
    let tools = Tools {
        daxplug,
        me,
        daxctl: found("daxctl"),
        strace: found("strace"),
    };
    println!(
        "## Discovery at scale ({runs} runs, median; daxctl {}; strace {})\n",
        if tools.daxctl {
            "found"
        } else {
            "not installed: its rows are missing"
        },
        if tools.strace {
            "found"
        } else {
            "not installed: no syscall counts"
        },
    );
    if !args.iter().any(|a| a == "--no-discovery") {
        println!("{}", discovery(&tools, runs, &sizes)?);
    }
    println!("## Transitions on the `large` preset, through FUSE\n");
    println!("{}", transitions(&tools)?);
    println!("## The policy daemon\n");
    println!("{}", daemon::daemon(&tools.daxplug, 65536, 60)?);
    println!("## Model throughput\n");
    println!("| scenario | rate |\n|---|---|\n{}", model_throughput(3.0)?);
    Ok(())
}
