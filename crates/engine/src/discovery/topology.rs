//! What discovery builds: one consistent picture of the machine's device memory (regions,
//! devices, their ranges and blocks, nodes, hotplug policy) and each device's observed
//! state. Plain data; reading it is `discover`, deciding the state is `observe`.

use daxplug_abi::token_enum;
use std::collections::BTreeMap;

use daxplug_abi::{
    BlockSize, BlockState, DaxDriver, DaxName, DaxState, MemmapOnMemory, NodeList, OnlinePolicy,
    OnlineType, PhysRange, ValidZones, Zone,
};
use serde::Serialize;

/// Which whole-device ABI the kernel offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelAbi {
    /// `daxX.Y/state` exists on kmem-bound devices (the atomic hotplug series).
    Atomic,
    /// A kmem-bound device has no `state` file: per-block control only.
    Legacy,
    /// No device is bound to kmem, and the file exists only while one is, so the kernel
    /// cannot be told apart yet.
    Unknown,
}

/// The driver a dax device is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driver {
    /// No driver.
    None,
    /// `kmem`: the memory is (or is to be) system RAM.
    Kmem,
    /// `device_dax`: a character device.
    DeviceDax,
    /// `fsdev_dax`: the memory of a famfs file system.
    FsdevDax,
    /// Any other driver on the dax bus.
    Other(String),
}

impl Driver {
    /// The driver's name, if bound.
    pub fn name(&self) -> Option<&str> {
        match self {
            Driver::Other(name) => Some(name),
            known => known.dax_driver().map(DaxDriver::as_str),
        }
    }

    /// The driver as daxplug binds and unbinds it, if it is one it knows.
    pub fn dax_driver(&self) -> Option<DaxDriver> {
        match self {
            Driver::Kmem => Some(DaxDriver::Kmem),
            Driver::DeviceDax => Some(DaxDriver::DeviceDax),
            Driver::FsdevDax => Some(DaxDriver::FsdevDax),
            Driver::None | Driver::Other(_) => None,
        }
    }

    pub(crate) fn from_name(name: &str) -> Self {
        name.parse::<DaxDriver>()
            .map_or_else(|_| Driver::Other(name.to_owned()), Driver::from)
    }
}

impl From<DaxDriver> for Driver {
    fn from(d: DaxDriver) -> Self {
        match d {
            DaxDriver::Kmem => Driver::Kmem,
            DaxDriver::FsdevDax => Driver::FsdevDax,
            DaxDriver::DeviceDax => Driver::DeviceDax,
        }
    }
}

/// How the device is used, by driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Bound to `kmem`.
    SystemRam,
    /// Bound to `device_dax`.
    Devdax,
    /// No driver.
    Unbound,
    /// Bound to `fsdev_dax`.
    Famfs,
    /// Some other driver.
    Other,
}

impl Mode {
    /// The name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::SystemRam => "system-ram",
            Mode::Devdax => "devdax",
            Mode::Unbound => "unbound",
            Mode::Famfs => "famfs",
            Mode::Other => "other",
        }
    }
}

token_enum! {
    /// Whether a region's devices can be created and resized at run time.
    RegionKind, "a region kind" {
        /// hmem and CXL regions (`dax_region/create` exists). These are kmem-type: `kmem`
        /// binds with a plain `bind`.
        Dynamic = "dynamic",
        /// pmem regions (e820, NVDIMM namespaces in devdax mode). These are devdax-type:
        /// `kmem/bind` fails with `ENODEV`, and `kmem/new_id` is needed.
        Static = "static",
    }
}

/// A dax region: the parent of one or more dax devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Region {
    /// `dax_region/id`.
    pub id: u32,
    /// Canonical sysfs path of the `dax_region` directory.
    pub path: String,
    /// The device that provides the region, relative to `/sys/devices`
    /// (`platform/hmem.0`, `platform/e820_pmem/ndbus0/region0/dax0.0`, …).
    pub provider: String,
    /// Whether the region is dynamic or static.
    pub kind: RegionKind,
    /// `dax_region/size` in bytes.
    pub size: Option<u64>,
    /// `dax_region/align` in bytes (root-only on some kernels).
    pub align: Option<u64>,
    /// `dax_region/available_size`: the bytes no device holds, which `create` and a growing
    /// `resize` take from (0 for a static region, whose one device holds it all).
    pub available_size: Option<u64>,
}

/// One `mappingN` of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// N in `mappingN`.
    pub index: u32,
    /// The physical range (inclusive end).
    pub range: PhysRange,
    /// `page_offset`: where the range sits within the device.
    pub page_offset: u64,
    /// The whole memory blocks kmem would add for this range (`first`, `last`); `None` when
    /// the range is smaller than a block after alignment.
    pub blocks: Option<(u64, u64)>,
}

/// A `daxX.Y` entry of `/proc/iomem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IomemRange {
    /// The reserved range.
    pub range: PhysRange,
    /// The `System RAM (kmem)` child, if any: memory the kernel added for the device.
    pub kmem: Option<PhysRange>,
}

/// One memory block (`memoryN`) of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// N in `memoryN`.
    pub id: u64,
    /// The block's physical range.
    pub range: PhysRange,
    /// `memoryN/state`.
    pub state: BlockState,
    /// `memoryN/valid_zones` (absent without `CONFIG_MEMORY_HOTREMOVE`).
    pub valid_zones: Option<ValidZones>,
    /// The node the block belongs to (`memoryN/nodeX` link).
    pub node: Option<u32>,
}

impl Block {
    /// The zone the block is in: only for an online block, from `valid_zones`.
    pub fn zone(&self) -> Option<Zone> {
        match self.state {
            BlockState::Online => self.valid_zones.as_ref().and_then(ValidZones::first),
            _ => None,
        }
    }
}

/// One dax device and everything known about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// `daxX.Y`.
    pub name: DaxName,
    /// Canonical sysfs path.
    pub path: String,
    /// Id of the region it belongs to.
    pub region: Option<u32>,
    /// The bound driver.
    pub driver: Driver,
    /// What backs it, whatever its name (see [`crate::discovery::identity::backing`]); filled by a full
    /// discovery, `None` in a transition's re-reads.
    pub backing: Option<String>,
    /// `size` in bytes.
    pub size: u64,
    /// `align` in bytes.
    pub align: Option<u64>,
    /// `target_node`: the node its memory joins as system RAM.
    pub target_node: Option<u32>,
    /// `numa_node`: the node closest to the device itself.
    pub numa_node: Option<u32>,
    /// `memmap_on_memory`.
    pub memmap_on_memory: Option<bool>,
    /// The kernel's `state` file, if this kernel has one and kmem is bound.
    pub kernel_state: Option<DaxState>,
    /// Every `mappingN`, in index order.
    pub mappings: Vec<Mapping>,
    /// The device's entries in `/proc/iomem`.
    pub iomem: Vec<IomemRange>,
    /// The memory blocks that exist within the device's ranges, in id order.
    pub blocks: Vec<Block>,
    /// Block counts.
    pub counts: BlockCounts,
    /// The observed state.
    pub state: ObservedState,
    /// Read without root: the kernel hides the device's ranges (0400) and `/proc/iomem`'s
    /// addresses, so its blocks, and whether a range leaked, are unknown.
    pub ranges_hidden: bool,
}

impl Device {
    /// The mode, by driver.
    pub fn mode(&self) -> Mode {
        match self.driver {
            Driver::Kmem => Mode::SystemRam,
            Driver::DeviceDax => Mode::Devdax,
            Driver::None => Mode::Unbound,
            Driver::FsdevDax => Mode::Famfs,
            Driver::Other(_) => Mode::Other,
        }
    }

    /// Whether the kernel's `state` file disagrees with the observed state.
    pub fn state_disagrees(&self) -> bool {
        self.kernel_state
            .is_some_and(|k| !self.state.agrees_with(k))
    }

    /// The online blocks.
    pub fn online_blocks(&self) -> impl Iterator<Item = &Block> {
        self.blocks.iter().filter(|b| b.state == BlockState::Online)
    }
}

/// The hotplug policy in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// `auto_online_blocks`: applied to blocks when they are added.
    pub auto_online_blocks: Option<OnlineType>,
    /// `memory_hotplug.online_policy`.
    pub online_policy: Option<OnlinePolicy>,
    /// `memory_hotplug.memmap_on_memory`.
    pub memmap_on_memory: Option<MemmapOnMemory>,
    /// `memory_hotplug.auto_movable_ratio` (percent).
    pub auto_movable_ratio: Option<u32>,
    /// `memory_hotplug.auto_movable_numa_aware`.
    pub auto_movable_numa_aware: Option<bool>,
}

/// NUMA nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Nodes {
    /// `possible`.
    pub possible: Option<NodeList>,
    /// `online`.
    pub online: Option<NodeList>,
    /// `has_memory`.
    pub has_memory: Option<NodeList>,
    /// `has_normal_memory`.
    pub has_normal_memory: Option<NodeList>,
    /// `has_cpu`.
    pub has_cpu: Option<NodeList>,
    /// Per-node `MemTotal` in bytes, for nodes that have a `meminfo`.
    pub mem_total: BTreeMap<u32, u64>,
}

/// A snapshot of the machine's device memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Memory block size.
    pub block_size: BlockSize,
    /// Which ABI the kernel offers.
    pub kernel_abi: KernelAbi,
    /// Hotplug policy.
    pub policy: Policy,
    /// `/proc/meminfo` `MemTotal` in bytes.
    pub mem_total: Option<u64>,
    /// NUMA nodes.
    pub nodes: Nodes,
    /// Memory tiers, demotion and weighted interleave (left empty by a one-device read).
    pub placement: crate::discovery::placement::Placement,
    /// Regions of the devices read, by id.
    pub regions: Vec<Region>,
    /// The devices read, in name order (`dax0.0`, `dax0.1`, `dax1.0`, …).
    pub devices: Vec<Device>,
    /// Whether the kmem driver is loaded.
    pub kmem_loaded: bool,
    /// Whether the fsdev_dax driver is loaded.
    pub fsdev_loaded: bool,
    /// Read without root (`/proc/iomem` shows no addresses): what needs root is left out
    /// (kmem-bound devices are `needs_root`, no blocks, no leaks).
    pub limited: bool,
    /// Ranges of devices no longer on the bus that the kernel still holds (leaked until
    /// reboot); filled by a full discovery.
    pub orphans: Vec<Orphan>,
}

impl Topology {
    /// The nodes the devices' memory joins (their target nodes), in order.
    pub fn target_nodes(&self) -> std::collections::BTreeSet<u32> {
        self.devices.iter().filter_map(|d| d.target_node).collect()
    }

    /// Device memory online on each device's target node: (bytes in `ZONE_MOVABLE`, bytes
    /// in a kernel zone). Every node a device targets is there, with zeros if nothing is
    /// online.
    pub fn device_memory_by_node(&self) -> std::collections::BTreeMap<u32, (u64, u64)> {
        let mut out = std::collections::BTreeMap::new();
        let block = self.block_size.bytes();
        for d in &self.devices {
            let Some(node) = d.target_node else { continue };
            let e: &mut (u64, u64) = out.entry(node).or_default();
            e.0 += d.counts.movable * block;
            e.1 += d.counts.normal * block;
        }
        out
    }
}

/// Which devices to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every dax device.
    All,
    /// Only these devices; an invalid or unknown name is an error.
    Devices(Vec<String>),
}

token_enum! {
    /// The state of a device as observed from its memory blocks and `/proc/iomem`.
    ObservedState, "an observed state" {
        /// No driver and nothing left in the system: the memory is not in use.
        Unbound = "unbound",
        /// Bound to `device_dax`: a character device, not system RAM.
        Devdax = "devdax",
        /// Bound to `fsdev_dax`: the memory of a famfs file system, not system RAM.
        Famfs = "famfs",
        /// Bound to a driver daxplug does not know; not system RAM.
        OtherDriver = "other_driver" | "foreign",
        /// Read without root, bound to `kmem` or unbound with memory: the kernel hides
        /// `/proc/iomem`'s addresses and the device's ranges, so its blocks (and whether its
        /// range leaked) cannot be told.
        NeedsRoot = "needs_root",
        /// Bound to `kmem` with no memory blocks (only kernels with the atomic ABI get here).
        Unplugged = "unplugged",
        /// Bound to `kmem`, every block present and offline.
        Offline = "offline",
        /// Bound to `kmem`, every block online in `ZONE_MOVABLE` (removable again).
        OnlineMovable = "online_movable",
        /// Bound to `kmem`, every block online in a kernel zone (usually not removable).
        OnlineKernel = "online_kernel",
        /// Bound to `kmem` but torn: some blocks online and some offline, some missing, some
        /// going offline, or blocks in both movable and kernel zones.
        Mixed = "mixed",
        /// Not bound to `kmem`, yet blocks or a `System RAM (kmem)` range of the device remain:
        /// the kernel leaked the range, which stays until reboot.
        Stuck = "stuck",
    }
}

impl ObservedState {
    /// What the state means, in a line (for `--help` and man pages).
    pub fn meaning(self) -> &'static str {
        match self {
            ObservedState::Unbound => "no driver; the memory is not in use",
            ObservedState::Devdax => "bound to device_dax: a character device",
            ObservedState::Famfs => "bound to fsdev_dax: the memory of a famfs file system",
            ObservedState::OtherDriver => "bound to a driver daxplug does not manage",
            ObservedState::NeedsRoot => "read without root: its blocks cannot be told",
            ObservedState::Unplugged => "bound to kmem with no memory blocks (atomic ABI kernels)",
            ObservedState::Offline => "bound to kmem, every block offline",
            ObservedState::OnlineMovable => "every block online in ZONE_MOVABLE (removable)",
            ObservedState::OnlineKernel => "every block online in a kernel zone (rarely removable)",
            ObservedState::Mixed => "torn: blocks disagree (online/offline, zones, missing)",
            ObservedState::Stuck => "kmem unbound, blocks or range left: leaked until reboot",
        }
    }

    /// Whether the kernel's `state` value is consistent with this observation. `online`
    /// (kernel picks the zone) agrees with either uniform online state.
    pub fn agrees_with(self, kernel: DaxState) -> bool {
        matches!(
            (kernel, self),
            (DaxState::Unplugged, ObservedState::Unplugged)
                | (DaxState::Offline, ObservedState::Offline)
                | (DaxState::OnlineMovable, ObservedState::OnlineMovable)
                | (DaxState::OnlineKernel, ObservedState::OnlineKernel)
                | (
                    DaxState::Online,
                    ObservedState::OnlineMovable | ObservedState::OnlineKernel
                )
        )
    }
}

/// Counts of a device's memory blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BlockCounts {
    /// Blocks that exist (`memoryN` directories present).
    pub total: u64,
    /// Present blocks that are online.
    pub online: u64,
    /// Present blocks that are offline.
    pub offline: u64,
    /// Present blocks in the middle of going offline.
    pub going_offline: u64,
    /// Online blocks in `ZONE_MOVABLE`.
    pub movable: u64,
    /// Online blocks in a kernel zone (`Normal`, `DMA`, `DMA32`, or spanning zones).
    pub normal: u64,
    /// Whole blocks the device's ranges cover, present or not.
    pub span: u64,
}

/// The range a removed device left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// The name the kernel still gives the range.
    pub name: String,
    pub range: PhysRange,
    /// The `System RAM (kmem)` inside it, if any.
    pub kmem: Option<PhysRange>,
    /// The memory blocks still present in the range.
    pub blocks: Vec<Block>,
}
