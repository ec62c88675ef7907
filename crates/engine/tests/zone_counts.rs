//! A listing's block counts from the zone totals (`/proc/zoneinfo`) against the same
//! counts read block by block: on the emulated machine, after every step of seeded random
//! walks through every state a device can be in (mixed, torn across zones, leaked and stuck,
//! unplugged on the atomic ABI), the two must give each device the same state, counts and
//! problems. The seed is printed on a failure.

use std::sync::atomic::{AtomicUsize, Ordering};

use daxplug_engine::{Detail, Scope, Topology, discover_with, problems};
use daxplug_kernel::{Kernel, KernelError};
use daxplug_model::{Flavour, Rng, Sim, build_preset};

const SEEDS: [u64; 6] = [1, 2, 3, 5, 8, 13];
const STEPS: usize = 80;

/// Counts the reads of memory block files.
struct Counting<'a> {
    inner: &'a dyn Kernel,
    block_reads: AtomicUsize,
}

impl Kernel for Counting<'_> {
    fn read(&self, path: &str) -> Result<String, KernelError> {
        if path.starts_with("/sys/devices/system/memory/memory") {
            self.block_reads.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.read(path)
    }
    fn write(&self, path: &str, value: &str) -> Result<(), KernelError> {
        self.inner.write(path, value)
    }
    fn list_dir(&self, path: &str) -> Result<Vec<String>, KernelError> {
        self.inner.list_dir(path)
    }
    fn read_link(&self, path: &str) -> Result<String, KernelError> {
        self.inner.read_link(path)
    }
    fn exists(&self, path: &str) -> bool {
        self.inner.exists(path)
    }
}

/// Each device's blocks (from its ranges), for the walk to act on.
fn device_blocks(topo: &Topology) -> Vec<(String, Vec<u64>)> {
    topo.devices
        .iter()
        .map(|d| {
            let ids = d
                .mappings
                .iter()
                .filter_map(|m| m.blocks)
                .flat_map(|(first, last)| first..=last)
                .collect();
            (d.name.to_string(), ids)
        })
        .collect()
}

/// One random action of an admin or a competing controller.
fn act(sim: &Sim, rng: &mut Rng, devices: &[(String, Vec<u64>)]) {
    let Some((dev, blocks)) = rng.pick(devices).cloned() else {
        return;
    };
    let state = |b: u64| format!("/sys/devices/system/memory/memory{b}/state");
    let all = |value: &str| {
        for b in &blocks {
            let _ = sim.write(&state(*b), value);
        }
    };
    match rng.below(12) {
        0 => {
            let _ = sim.with(|m| m.load_module("kmem"));
        }
        1 | 2 => all("online_movable"),
        3 => all("online_kernel"),
        4 => all("offline"),
        5 | 6 => {
            if let Some(b) = rng.pick(&blocks) {
                let value = *rng
                    .pick(&["online_movable", "online_kernel", "offline", "online"])
                    .expect("a value");
                let _ = sim.write(&state(*b), value);
            }
        }
        7 => {
            // Unbinding kmem with memory online leaks the range: the device is stuck.
            let _ = sim.write("/sys/bus/dax/drivers/kmem/unbind", &dev);
        }
        8 => {
            let _ = sim.write("/sys/bus/dax/drivers/device_dax/unbind", &dev);
            let _ = sim.write("/sys/bus/dax/drivers/kmem/bind", &dev);
        }
        9 => {
            let _ = sim.write("/sys/bus/dax/drivers/kmem/unbind", &dev);
            let _ = sim.write("/sys/bus/dax/drivers/device_dax/bind", &dev);
        }
        10 => {
            let value = *rng
                .pick(&["unplugged", "online_movable", "online_kernel"])
                .expect("a value");
            let _ = sim.write(&format!("/sys/bus/dax/devices/{dev}/state"), value);
        }
        _ => {
            sim.with(|m| {
                for _ in 0..5 {
                    m.step();
                }
            });
        }
    }
}

#[test]
fn zone_totals_and_block_reads_agree_in_every_state() {
    let mut from_totals = 0;
    let mut compared = 0;
    for preset in ["hmem", "cxl", "pmem"] {
        for flavour in [Flavour::Legacy, Flavour::Atomic] {
            for seed in SEEDS {
                let sim = Sim::new(build_preset(preset, flavour, seed).expect("preset"));
                let mut rng = Rng::new(seed);
                let first = discover_with(&sim, &Scope::All, Detail::Blocks).expect("discovers");
                let devices = device_blocks(&first);
                for step in 0..STEPS {
                    act(&sim, &mut rng, &devices);
                    let counting = Counting {
                        inner: &sim,
                        block_reads: AtomicUsize::new(0),
                    };
                    let fast =
                        discover_with(&counting, &Scope::All, Detail::Counts).expect("discovers");
                    let slow = discover_with(&sim, &Scope::All, Detail::Blocks).expect("discovers");
                    let at = format!("{preset}/{flavour:?}, seed {seed}, step {step}");
                    assert_eq!(fast.devices.len(), slow.devices.len(), "{at}");
                    for (f, s) in fast.devices.iter().zip(&slow.devices) {
                        assert_eq!(f.state, s.state, "{at}: {}", f.name);
                        assert_eq!(f.counts, s.counts, "{at}: {}", f.name);
                        let codes = |d| problems(d).into_iter().map(|p| p.code).collect::<Vec<_>>();
                        assert_eq!(codes(f), codes(s), "{at}: {}", f.name);
                        compared += 1;
                    }
                    let with_blocks = slow.devices.iter().filter(|d| d.counts.total > 0).count();
                    if with_blocks > 0 && counting.block_reads.load(Ordering::Relaxed) == 0 {
                        from_totals += 1;
                    }
                }
            }
        }
    }
    eprintln!("zone totals answered {from_totals} listings; {compared} device comparisons");
    // Not vacuous: the totals answered for devices with blocks, not only the block reads.
    assert!(
        from_totals > compared / 20,
        "the zone totals answered {from_totals} listings of {compared} device comparisons"
    );
}
