//! `daxplug-bench`: prints Markdown tables of what users feel.
//!
//! * discovery at scale: `daxplug list --json` and `status` on generated sysfs trees of 1k,
//!   16k and 64k memory blocks with 1, 16 and 64 devices (on tmpfs when /dev/shm exists),
//!   median wall time, and files opened per device block (counted through the kernel
//!   interface);
//! * model throughput: randomized three-actor schedules per second.
//!
//! `cargo run --release -p daxplug-bench -- [--runs N]`

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use daxplug_engine::{Scope, discover};
use daxplug_kernel::{Access, Kernel, KernelError, RootFs, ThreadToken};
use daxplug_model::{Actor, Caller, Flavour, Rng, build_preset, rhel_rule};

const BS: u64 = 128 << 20;

/// Writes a machine with `blocks` memory blocks, `devices` of which hold device memory
/// (split evenly, online movable), the rest boot RAM.
fn generate(root: &Path, blocks: u64, devices: u64) -> anyhow::Result<()> {
    let per_device = (blocks / 2 / devices).max(1);
    let boot = blocks - per_device * devices;
    let mem = root.join("sys/devices/system/memory");
    fs::create_dir_all(&mem)?;
    fs::write(mem.join("block_size_bytes"), format!("{BS:x}\n"))?;
    fs::write(mem.join("auto_online_blocks"), "offline\n")?;
    let node = root.join("sys/devices/system/node");
    for n in 0..2 {
        fs::create_dir_all(node.join(format!("node{n}")))?;
        fs::write(
            node.join(format!("node{n}/meminfo")),
            format!("Node {n} MemTotal:        1048576 kB\n"),
        )?;
    }
    fs::write(node.join("online"), "0-1\n")?;
    fs::write(node.join("possible"), "0-1\n")?;
    fs::write(node.join("has_memory"), "0-1\n")?;
    let mut iomem = format!("00000000-{:08x} : System RAM\n", boot * BS - 1);
    let block = |id: u64, n: u32, zone: &str| -> anyhow::Result<()> {
        let d = mem.join(format!("memory{id}"));
        fs::create_dir_all(&d)?;
        fs::write(d.join("state"), "online\n")?;
        fs::write(d.join("online"), "1\n")?;
        fs::write(d.join("valid_zones"), format!("{zone}\n"))?;
        fs::write(d.join("phys_index"), format!("{id:08x}\n"))?;
        symlink(format!("../../node/node{n}"), d.join(format!("node{n}")))?;
        symlink(
            format!("../../memory/memory{id}"),
            node.join(format!("node{n}/memory{id}")),
        )?;
        Ok(())
    };
    for id in 0..boot {
        block(id, 0, "Normal")?;
    }
    let bus = root.join("sys/bus/dax/devices");
    fs::create_dir_all(&bus)?;
    fs::create_dir_all(root.join("sys/bus/dax/drivers/kmem"))?;
    for dv in 0..devices {
        let first = boot + dv * per_device;
        let (start, end) = (first * BS, (first + per_device) * BS - 1);
        let name = format!("dax{dv}.0");
        let plat = root.join(format!("sys/devices/platform/hmem.{dv}"));
        let dir = plat.join(&name);
        fs::create_dir_all(dir.join("mapping0"))?;
        fs::create_dir_all(plat.join("dax_region"))?;
        fs::write(plat.join("dax_region/id"), format!("{dv}\n"))?;
        fs::write(dir.join("size"), format!("{}\n", end - start + 1))?;
        fs::write(dir.join("target_node"), "1\n")?;
        fs::write(dir.join("numa_node"), "0\n")?;
        fs::write(dir.join("align"), "2097152\n")?;
        fs::write(dir.join("resource"), format!("{start:#x}\n"))?;
        fs::write(dir.join("mapping0/start"), format!("{start:#x}\n"))?;
        fs::write(dir.join("mapping0/end"), format!("{end:#x}\n"))?;
        fs::write(dir.join("mapping0/page_offset"), "0x0\n")?;
        symlink("../../../../bus/dax/drivers/kmem", dir.join("driver"))?;
        symlink(
            format!("../../../devices/platform/hmem.{dv}/{name}"),
            bus.join(&name),
        )?;
        let _ = writeln!(
            iomem,
            "{start:x}-{end:x} : Soft Reserved\n  {start:x}-{end:x} : {name}\n    {start:x}-{end:x} : System RAM (kmem)"
        );
        for id in first..first + per_device {
            block(id, 1, "Movable")?;
        }
    }
    fs::create_dir_all(root.join("proc"))?;
    fs::write(root.join("proc/iomem"), iomem)?;
    fs::write(root.join("proc/meminfo"), "MemTotal:        1048576 kB\n")?;
    Ok(())
}

/// A kernel interface that counts the calls that open a file.
struct Counting<'a> {
    inner: &'a RootFs,
    opens: AtomicU64,
}

impl Kernel for Counting<'_> {
    fn read(&self, path: &str) -> Result<String, KernelError> {
        self.opens.fetch_add(1, Ordering::Relaxed);
        self.inner.read(path)
    }
    fn write(&self, path: &str, value: &str) -> Result<(), KernelError> {
        self.opens.fetch_add(1, Ordering::Relaxed);
        self.inner.write(path, value)
    }
    fn list_dir(&self, path: &str) -> Result<Vec<String>, KernelError> {
        self.opens.fetch_add(1, Ordering::Relaxed);
        self.inner.list_dir(path)
    }
    fn read_link(&self, path: &str) -> Result<String, KernelError> {
        self.inner.read_link(path)
    }
    fn exists(&self, path: &str) -> bool {
        self.inner.exists(path)
    }
    fn interrupt(&self, t: ThreadToken) {
        self.inner.interrupt(t);
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_cmd(bin: &Path, args: &[&str], runs: usize) -> anyhow::Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = Command::new(bin)
            .args(args)
            .output()
            .context("run daxplug")?;
        anyhow::ensure!(
            out.status.success(),
            "daxplug {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        times.push(t.elapsed());
    }
    Ok(median(times))
}

fn discovery(bin: &Path, runs: usize) -> anyhow::Result<String> {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let mut out = String::from(
        "| blocks | devices | list --json (ms) | status dax0.0 (ms) | opens per device block (list) | opens (status) |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    for blocks in [1024u64, 16384, 65536] {
        for devices in [1u64, 16, 64] {
            let dir = tempfile::tempdir_in(&base)?;
            generate(dir.path(), blocks, devices)?;
            let root = dir.path().to_str().context("utf-8 path")?;
            let list = time_cmd(bin, &["--root", root, "list", "--json"], runs)?;
            let status = time_cmd(bin, &["--root", root, "status", "dax0.0"], runs)?;
            let fs = RootFs::new(dir.path(), Access::ReadOnly)?;
            let k = Counting {
                inner: &fs,
                opens: AtomicU64::new(0),
            };
            discover(&k, &Scope::All)?;
            let device_blocks = (blocks / 2 / devices).max(1) * devices;
            let list_opens = k.opens.swap(0, Ordering::Relaxed);
            discover(&k, &Scope::Devices(vec!["dax0.0".into()]))?;
            let status_opens = k.opens.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "| {blocks} | {devices} | {:.1} | {:.1} | {:.2} | {status_opens} |",
                list.as_secs_f64() * 1e3,
                status.as_secs_f64() * 1e3,
                list_opens as f64 / device_blocks as f64
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

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("generate") {
        // daxplug-bench generate DIR BLOCKS DEVICES: keep a tree to look at.
        let (dir, blocks, devices) = (
            args.get(2).context("DIR")?,
            args.get(3).context("BLOCKS")?,
            args.get(4).context("DEVICES")?,
        );
        return generate(Path::new(dir), blocks.parse()?, devices.parse()?);
    }
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let bin = std::env::current_exe()?.with_file_name("daxplug");
    anyhow::ensure!(
        bin.exists(),
        "build the daxplug binary first: cargo build --release --bin daxplug"
    );
    println!("## Discovery at scale (generated trees, {runs} runs, median)\n");
    println!("{}", discovery(&bin, runs)?);
    println!("## Model throughput\n");
    println!("| scenario | rate |\n|---|---|\n{}", model_throughput(3.0)?);
    Ok(())
}
