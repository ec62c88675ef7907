//! `daxplug demo`: a short narrated run on fresh emulated machines that shows the problem
//! and the fix side by side.

use std::fmt::Write as _;

use daxplug_engine::{ObservedState, Scope, discover};
use daxplug_kernel::{Kernel, paths};
use daxplug_model::{Flavour, Machine, Rule, Sim, Subsystem, build_preset};

use crate::human;

/// What the demo found, for tests.
#[derive(Debug)]
pub struct Narration {
    pub text: String,
    /// Observed state after the per-block unplug on the legacy kernel.
    pub per_block: ObservedState,
    /// Observed state after the whole-device unplug on the atomic kernel.
    pub atomic: ObservedState,
    /// Observed state after `daxplug set dax0.0 unplugged` on the legacy kernel.
    pub daxplug: ObservedState,
}

/// A machine with dax0.0 online movable and a udev rule re-onlining offline blocks.
fn machine(flavour: Flavour, seed: u64) -> anyhow::Result<Machine> {
    let mut m = build_preset("hmem", flavour, seed)?;
    m.kernel_alloc_per_mille = 0;
    m.auto_online_blocks = daxplug_abi::OnlineType::OnlineMovable;
    m.load_kmem();
    m.auto_online_blocks = daxplug_abi::OnlineType::Online;
    m.settle(100);
    m.faults.slow_offline_passes = 2;
    // A udev rule that puts memory back online whenever a block goes offline.
    m.udev.rules.push(Rule {
        name: "keep-memory-online".into(),
        subsystem: Subsystem::Memory,
        action: "offline".into(),
        if_offline: true,
        attr: "state".into(),
        value: "online".into(),
    });
    Ok(m)
}

fn observe(sim: &Sim, out: &mut String) -> anyhow::Result<ObservedState> {
    let topo = discover(sim, &Scope::All)?;
    let state = topo
        .devices
        .first()
        .map_or(ObservedState::Unbound, |d| d.state);
    out.push_str("\n$ daxplug list\n");
    for line in human::list(&topo, false, false).lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "  {line}");
        }
    }
    Ok(state)
}

fn shell(sim: &Sim, out: &mut String, path: &str, value: &str) {
    let result = match sim.write(path, value) {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("write error: {}", e.errno.name().unwrap_or("?")),
    };
    let _ = writeln!(out, "  echo {value} > {path}   -> {result}");
}

/// A private directory for the demo machine's lock and journal.
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("daxplug-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs the demo with `seed`.
pub fn run(seed: u64) -> anyhow::Result<Narration> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "daxplug demo: device memory on an emulated machine (seed {seed})"
    );
    let _ = writeln!(
        out,
        "\nThe machine: 4 GiB of RAM on node 0 and a 1 GiB soft-reserved range on CPU-less node 1,\n\
         exposed as dax0.0 and bound to kmem: 8 memory blocks (memory40-memory47), online in Movable.\n\
         A competing controller runs too: a udev rule that onlines a memory block again whenever\n\
         it goes offline (ACTION==\"offline\", SUBSYSTEM==\"memory\", ATTR{{state}}=\"online\").\n"
    );

    let _ = writeln!(
        out,
        "1. A released kernel, the per-block way (daxctl offline-memory, then reconfigure-device -m devdax):"
    );
    let sim = Sim::new(machine(Flavour::Legacy, seed)?);
    for id in 40..48 {
        shell(&sim, &mut out, &paths::block_state(id), "offline");
    }
    shell(
        &sim,
        &mut out,
        &paths::dax_driver_file("kmem", "unbind"),
        "dax0.0",
    );
    let per_block = observe(&sim, &mut out)?;
    let _ = writeln!(
        out,
        "\n   Between the offline writes and the unbind the udev rule onlined blocks again; the unbind\n   still succeeded, and the kernel kept what was online: the device is {per_block}.\n"
    );

    let _ = writeln!(
        out,
        "2. The same machine and udev rule on a kernel with the atomic whole-device ABI:"
    );
    let sim = Sim::new(machine(Flavour::Atomic, seed)?);
    shell(
        &sim,
        &mut out,
        &paths::dax_attr("dax0.0", "state"),
        "unplugged",
    );
    let restarts = sim.with(|m| {
        m.settle(100);
        m.restarts
    });
    let atomic = observe(&sim, &mut out)?;
    let _ = writeln!(
        out,
        "\n   The kernel offlined and removed every block under one hotplug lock: the rule's {restarts}\n   attempts waited for the lock and then found no block left. The device is {atomic}.\n"
    );
    let _ = writeln!(
        out,
        "3. Back on the released kernel, with the same udev rule: daxplug set dax0.0 unplugged"
    );
    let sim = Sim::new(machine(Flavour::Legacy, seed)?);
    let dir = tempfile_dir()?;
    let host = daxplug_engine::host::sim::SimHost {
        sim: &sim,
        run_dir: dir.clone(),
    };
    let report = daxplug_engine::set(
        &host,
        "dax0.0",
        daxplug_engine::Target::Unplugged,
        &daxplug_engine::Options::default(),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    for line in crate::human::report(&report, false).lines() {
        let _ = writeln!(out, "  {line}");
    }
    let daxplug = observe(&sim, &mut out)?;
    let _ = writeln!(
        out,
        "\n   No daxX.Y/state here, so daxplug ran its own protocol: it set online_policy so that a\n   block the rule re-onlined would stay Movable, offlined every block, saw the rule put them\n   back, held udev's exec queue, offlined them again, checked every block offline and only\n   then unbound kmem. The device is {daxplug}: its memory is out of the system, nothing leaked.\n"
    );
    let _ = writeln!(
        out,
        "Try it yourself: daxplug sim init /tmp/m.json --preset hmem --kernel legacy, then\ndaxplug --sim /tmp/m.json list (and `daxplug sim --help` for competitors and faults)."
    );
    Ok(Narration {
        text: out,
        per_block,
        atomic,
        daxplug,
    })
}

/// What `demo` was asked for.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seed of every interleaving.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl Args {
    /// `daxplug demo`: needs no machine (it makes its own).
    pub fn run(self, _: &crate::machine::Machine) -> anyhow::Result<(String, crate::exit::Exit)> {
        checked(self.seed)
    }
}

/// `demo`, which checks its own claim rather than narrating it blindly.
fn checked(seed: u64) -> anyhow::Result<(String, crate::exit::Exit)> {
    let narration = run(seed)?;
    if narration.atomic != daxplug_engine::ObservedState::Unplugged {
        anyhow::bail!(
            "the demo's atomic unplug ended {}, not unplugged",
            narration.atomic
        );
    }
    if narration.daxplug != daxplug_engine::ObservedState::Unbound {
        anyhow::bail!(
            "the demo's daxplug unplug ended {}, not unbound",
            narration.daxplug
        );
    }
    let _ = narration.per_block;
    Ok((narration.text, crate::exit::Exit::Ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_block_tears_and_atomic_does_not() {
        for seed in 1..20 {
            let o = run(seed).expect("demo runs");
            assert_eq!(o.atomic, ObservedState::Unplugged, "seed {seed}");
            assert_eq!(o.daxplug, ObservedState::Unbound, "seed {seed}");
            assert!(
                matches!(o.per_block, ObservedState::Stuck | ObservedState::Unbound),
                "seed {seed}: {:?}",
                o.per_block
            );
        }
        // With the demo's seed the race is lost, which is the point of the demo.
        assert_eq!(run(1).expect("demo").per_block, ObservedState::Stuck);
    }
}
