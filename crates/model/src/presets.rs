//! Ready-made machines.

use std::collections::{BTreeMap, BTreeSet};

use daxplug_abi::{BlockState, Iomem, MemmapOnMemory, OnlinePolicy, OnlineType, PhysRange, Zone};
use serde::Serialize;

use crate::faults::Faults;
use crate::machine::Udev;
use crate::machine::{
    DaxDevice, DaxDriver, DevRange, Flavour, Machine, MemBlock, NodeSpec, Region, RegionType,
    StaticResource,
};
use crate::rng::Rng;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A preset's name and what it is.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PresetInfo {
    /// Name for `sim init --preset`.
    pub name: &'static str,
    /// One line about it.
    pub about: &'static str,
}

/// Every preset.
pub const PRESETS: &[PresetInfo] = &[
    PresetInfo {
        name: "hmem",
        about: "the QEMU machine of the captured fixtures: 4 GiB on node 0, one 1 GiB soft-reserved range on CPU-less node 1 as dax0.0 (kmem-type region), kmem not loaded yet, auto_online_blocks=online",
    },
    PresetInfo {
        name: "pmem",
        about: "the e820 variant: dax0.0 in a static pmem region (devdax-type: kmem needs new_id), bound to device_dax, starting 2 MiB into the range so kmem loses a block",
    },
    PresetInfo {
        name: "cxl",
        about: "two CXL devices on CPU-less nodes 1 and 2, dax1.0 with two ranges; kmem bound them at boot and auto_online_blocks=online put them in Normal",
    },
    PresetInfo {
        name: "large",
        about: "1 TiB of device memory in 2 GiB blocks: eight 128 GiB devices on nodes 1-4, unbound, kmem loaded, auto_online_blocks=offline",
    },
];

/// An unknown preset name.
#[derive(Debug, thiserror::Error)]
#[error("there is no preset named {name:?}: expected one of {}", PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join(", "))]
pub struct UnknownPreset {
    /// The name given.
    pub name: String,
}

fn iomem(text: &str) -> Vec<StaticResource> {
    Iomem::parse(text)
        .map(|io| {
            io.entries()
                .iter()
                .map(|e| StaticResource {
                    depth: e.depth,
                    range: e.range,
                    name: e.name.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

const QEMU_LOW: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000a0000-000bffff : PCI Bus 0000:00
000c0000-000c05ff : Video ROM
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-bffdffff : System RAM
  01000000-01ffffff : Kernel code
  02000000-02b70fff : Kernel rodata
  02c00000-02e70f7f : Kernel data
  03736000-03bfffff : Kernel bss
bffe0000-bfffffff : Reserved
c0000000-febfffff : PCI Bus 0000:00
fec00000-fec003ff : IOAPIC 0
fed00000-fed003ff : HPET 0
  fed00000-fed003ff : PNP0103:00
fffc0000-ffffffff : Reserved
100000000-13fffffff : System RAM
";

fn base(preset: &str, flavour: Flavour, seed: u64, block_size: u64) -> Machine {
    Machine {
        preset: preset.to_owned(),
        seed,
        flavour,
        block_size,
        nodes: Vec::new(),
        boot_iomem: Vec::new(),
        blocks: BTreeMap::new(),
        regions: Vec::new(),
        devices: Vec::new(),
        orphans: Vec::new(),
        kmem_loaded: true,
        drivers_autoprobe: true,
        fsdev_loaded: false,
        new_ids: BTreeMap::new(),
        auto_online_blocks: OnlineType::Online,
        online_policy: OnlinePolicy::ContigZones,
        memmap_on_memory: MemmapOnMemory::Disabled,
        auto_movable_ratio: 301,
        auto_movable_numa_aware: true,
        placement: crate::machine::Placement::default(),
        movable_node: false,
        hotremove: true,
        lock: None,
        uevents: Vec::new(),
        uevent_seqnum: 0,
        udev: Udev::default(),
        actors: Vec::new(),
        faults: Faults::default(),
        clock: 0,
        client_steps: 0,
        max_interleave: 2,
        kernel_alloc_per_mille: 20,
        signal_pending: false,
        step_delay_us: 0,
        rng: Rng::new(seed),
        signal: crate::machine::SignalFlag::default(),
        dmesg: Vec::new(),
        actor_log: Vec::new(),
        restarts: 0,
        dax_open: BTreeMap::new(),
        check_each_step: false,
        violations: Vec::new(),
    }
}

/// Boot blocks: the first spans DMA and DMA32, the rest of the low 4 GiB is DMA32, above
/// is Normal; `pinned` holds the memblock-allocated memmap and never offlines.
fn boot_blocks(m: &mut Machine, ids: impl IntoIterator<Item = u64>, pinned: &[u64]) {
    let four_gib_block = (4 * GIB) / m.block_size;
    for id in ids {
        m.blocks.insert(
            id,
            MemBlock {
                node: 0,
                state: BlockState::Online,
                zone: Some(if id < four_gib_block {
                    Zone::Dma32
                } else {
                    Zone::Normal
                }),
                boot_zone: Some(if id < four_gib_block {
                    Zone::Dma32
                } else {
                    Zone::Normal
                }),
                spans_zones: id == 0,
                unmovable: pinned.contains(&id),
                busy: 0,
                owner: None,
            },
        );
    }
}

/// `len` bytes from `start`.
fn range(start: u64, len: u64) -> PhysRange {
    PhysRange {
        start,
        end: start + len - 1,
    }
}

fn device(name: &str, region: u32, minor: u32, ranges: &[(u64, u64)], node: u32) -> DaxDevice {
    let mut offset = 0;
    DaxDevice {
        name: name.to_owned(),
        region,
        ranges: ranges
            .iter()
            .map(|(s, e)| {
                let r = DevRange {
                    range: PhysRange { start: *s, end: *e },
                    page_offset: offset / crate::sizing::PAGE_SIZE,
                };
                offset += e - s + 1;
                r
            })
            .collect(),
        target_node: Some(node),
        numa_node: Some(0),
        align: 2 * MIB,
        memmap_on_memory: false,
        minor,
        driver: None,
        devdax_res: Vec::new(),
        kmem: None,
        leaked: Vec::new(),
    }
}

/// The QEMU machine of the captures: node 0 has 4 GiB (memory0-23 and memory32-39, with
/// 4013984 kB managed), node 1 is CPU-less.
fn qemu(preset: &str, flavour: Flavour, seed: u64) -> Machine {
    let mut m = base(preset, flavour, seed, 128 * MIB);
    m.nodes = vec![
        NodeSpec {
            id: 0,
            has_cpu: true,
            boot_mem_total: 4_013_984 * 1024,
            ..NodeSpec::dax(0)
        },
        NodeSpec::dax(1),
    ];
    boot_blocks(&mut m, (0..24).chain(32..40), &[39]);
    m
}

/// Builds a preset machine.
pub fn build(name: &str, flavour: Flavour, seed: u64) -> Result<Machine, UnknownPreset> {
    let m = match name {
        "hmem" => {
            let mut m = qemu(name, flavour, seed);
            m.boot_iomem = iomem(&format!(
                "{QEMU_LOW}140000000-17fffffff : Soft Reserved\n180000000-1ffffffff : PCI Bus 0000:00\nfd00000000-ffffffffff : Reserved\n"
            ));
            m.kmem_loaded = false;
            m.regions.push(Region {
                id: 0,
                provider: "/sys/devices/platform/hmem.0".to_owned(),
                kind: RegionType::Kmem,
                range: range(0x1_4000_0000, GIB),
                align: 2 * MIB,
                seed: None,
                youngest: None,
            });
            m.devices
                .push(device("dax0.0", 0, 0, &[(0x1_4000_0000, 0x1_7fff_ffff)], 1));
            m
        }
        "pmem" => {
            let mut m = qemu(name, flavour, seed);
            m.boot_iomem = iomem(&format!(
                "{QEMU_LOW}140000000-17fffffff : Persistent Memory (legacy)\n  140000000-1401fffff : namespace0.0\n180000000-1ffffffff : PCI Bus 0000:00\nfd00000000-ffffffffff : Reserved\n"
            ));
            m.auto_online_blocks = OnlineType::Online;
            m.regions.push(Region {
                id: 0,
                provider: "/sys/devices/platform/e820_pmem/ndbus0/region0/dax0.0".to_owned(),
                kind: RegionType::Devdax,
                range: range(0x1_4020_0000, 1_071_644_672),
                align: 2 * MIB,
                seed: None,
                youngest: None,
            });
            let mut d = device("dax0.0", 0, 0, &[(0x1_4020_0000, 0x1_7fff_ffff)], 1);
            d.driver = Some(DaxDriver::DeviceDax);
            d.devdax_res = vec![d.ranges[0].range];
            m.devices.push(d);
            m
        }
        "cxl" => {
            let mut m = qemu(name, flavour, seed);
            m.nodes.push(NodeSpec::dax(2));
            m.boot_iomem = iomem(&format!(
                "{QEMU_LOW}180000000-1ffffffff : PCI Bus 0000:00\n310000000-40fffffff : CXL Window 0\nfd00000000-ffffffffff : Reserved\n"
            ));
            // region1 leaves a 512 MiB hole between dax1.0's two ranges.
            for (id, region, r) in [
                (0u32, "region0/dax_region0", range(0x3_1000_0000, GIB)),
                (1, "region1/dax_region1", range(0x3_5000_0000, 3 * GIB / 2)),
            ] {
                m.regions.push(Region {
                    id,
                    provider: format!(
                        "/sys/devices/platform/ACPI0017:00/root0/decoder0.0/{region}"
                    ),
                    kind: RegionType::Kmem,
                    range: r,
                    align: 2 * MIB,
                    seed: None,
                    youngest: None,
                });
            }
            let mut d0 = device("dax0.0", 0, 0, &[(0x3_1000_0000, 0x3_4fff_ffff)], 1);
            let mut d1 = device(
                "dax1.0",
                1,
                1,
                &[
                    (0x3_5000_0000, 0x3_6fff_ffff),
                    (0x3_9000_0000, 0x3_afff_ffff),
                ],
                2,
            );
            // As a CXL region's device on the real kernel (tests/fixtures/cxl): numa_node -1,
            // memmap_on_memory set by dax_cxl.
            for d in [&mut d0, &mut d1] {
                d.memmap_on_memory = true;
                d.numa_node = None;
            }
            m.devices.push(d0);
            m.devices.push(d1);
            // Boot: dax_cxl creates the devices and kmem binds them under the default policy.
            m.driver_attach(DaxDriver::Kmem);
            m.uevents.clear();
            m.udev.queue.clear();
            m
        }
        "large" => {
            let mut m = base(name, flavour, seed, 2 * GIB);
            m.auto_online_blocks = OnlineType::Offline;
            m.nodes = vec![NodeSpec {
                id: 0,
                has_cpu: true,
                boot_mem_total: 63 * GIB,
                ..NodeSpec::dax(0)
            }];
            m.nodes.extend((1..=4).map(NodeSpec::dax));
            boot_blocks(&mut m, 0..32, &[31]);
            let mut text = "00001000-0009fbff : System RAM\n00100000-bfffffff : System RAM\n100000000-fffffffff : System RAM\n".to_owned();
            for i in 0..8u32 {
                let start = 64 * GIB + u64::from(i) * 128 * GIB;
                let end = start + 128 * GIB - 1;
                text.push_str(&format!("{start:x}-{end:x} : Soft Reserved\n"));
                m.regions.push(Region {
                    id: i,
                    provider: format!("/sys/devices/platform/hmem.{i}"),
                    kind: RegionType::Kmem,
                    range: range(start, 128 * GIB),
                    align: 2 * MIB,
                    seed: None,
                    youngest: None,
                });
                m.devices.push(device(
                    &format!("dax{i}.0"),
                    i,
                    i,
                    &[(start, end)],
                    1 + i / 2,
                ));
            }
            m.boot_iomem = iomem(&text);
            m
        }
        other => {
            return Err(UnknownPreset {
                name: other.to_owned(),
            });
        }
    };
    debug_assert!(m.new_ids.values().all(BTreeSet::is_empty));
    Ok(m)
}

/// A machine of `blocks` 128 MiB memory blocks for benchmarks: the first half boot RAM on
/// node 0, the second half split evenly between `devices` soft-reserved devices (each its
/// own hmem region) on CPU-less node 1, bound to kmem and online in `Movable`.
pub fn scaled(blocks: u64, devices: u64, flavour: Flavour, seed: u64) -> Machine {
    let devices = devices.max(1);
    let per_device = (blocks / 2 / devices).max(1);
    let boot = blocks.saturating_sub(per_device * devices).max(1);
    let mut m = base("scaled", flavour, seed, 128 * MIB);
    m.nodes = vec![
        NodeSpec {
            id: 0,
            has_cpu: true,
            boot_mem_total: boot * 128 * MIB,
            ..NodeSpec::dax(0)
        },
        NodeSpec::dax(1),
    ];
    boot_blocks(&mut m, 0..boot, &[]);
    let mut text = format!("00000000-{:x} : System RAM\n", boot * 128 * MIB - 1);
    for i in 0..devices {
        let first = boot + i * per_device;
        let (start, end) = (first * 128 * MIB, (first + per_device) * 128 * MIB - 1);
        let id = u32::try_from(i).unwrap_or(u32::MAX);
        text.push_str(&format!("{start:x}-{end:x} : Soft Reserved\n"));
        m.regions.push(Region {
            id,
            provider: format!("/sys/devices/platform/hmem.{i}"),
            kind: RegionType::Kmem,
            range: range(start, end - start + 1),
            align: 2 * MIB,
            seed: None,
            youngest: None,
        });
        m.devices
            .push(device(&format!("dax{i}.0"), id, id, &[(start, end)], 1));
    }
    m.boot_iomem = iomem(&text);
    m.auto_online_blocks = OnlineType::OnlineMovable;
    m.driver_attach(DaxDriver::Kmem);
    m.auto_online_blocks = OnlineType::Offline;
    m.uevents.clear();
    m.udev.queue.clear();
    m
}
