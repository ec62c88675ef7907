//! The state of the emulated machine. Everything here is plain data (serializable, so a
//! machine can live in a file between commands), and every module of the model's behaviour
//! (`hotplug`, `dax`, `sizing`, `sysfs`, `tiering`, `udev`, `actors`, `sched`) works on it
//! from above: nothing here imports them. User space's part of the state is in
//! [`userspace`].

mod userspace;

pub use userspace::{Actor, Rule, Subsystem, UEVENT_LOG, Udev, UeventRecord, rhel_rule};

use std::collections::{BTreeMap, BTreeSet};

pub use daxplug_abi::DaxDriver;
use daxplug_abi::{BlockState, MemmapOnMemory, OnlinePolicy, OnlineType, PhysRange, Zone};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use daxplug_kernel::Errno;
use serde::{Deserialize, Serialize};

use crate::faults::Faults;
use crate::rng::Rng;

/// Which kernel the machine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavour {
    /// Every released kernel (6.12 as captured): per-block control only, and a kmem unbind
    /// that leaks any range with an online block.
    Legacy,
    /// With the v7 "dax/kmem: atomic whole-device hotplug via sysfs" series:
    /// `daxX.Y/state`, all-or-nothing multi-range unplug, v7 unbind.
    Atomic,
}

impl Flavour {
    /// The name used on the command line and in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::Legacy => "legacy",
            Flavour::Atomic => "atomic",
        }
    }
}

/// A NUMA node the machine could have (`possible`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Node number.
    pub id: u32,
    /// Whether CPUs sit on it (device-memory nodes are usually CPU-less).
    pub has_cpu: bool,
    /// `MemTotal` of the node's boot memory, in bytes, while all its boot blocks are online.
    pub boot_mem_total: u64,
    /// The abstract distance firmware (HMAT, CDAT) reports for the node's memory; `None`:
    /// DRAM's for a node with CPUs or boot memory, kmem's default for dax memory.
    #[serde(default)]
    pub adistance: Option<u32>,
    /// The weighted-interleave weight auto mode derives from the node's bandwidth; `None`:
    /// firmware reports none, and the weight is 1.
    #[serde(default)]
    pub bandwidth_weight: Option<u8>,
}

/// A `/proc/iomem` entry that exists from boot (firmware ranges, boot RAM, the soft-reserved
/// or pmem ranges that regions live in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticResource {
    /// Nesting depth in the file.
    pub depth: usize,
    pub range: PhysRange,
    /// Its name.
    pub name: String,
}

/// One memory block (`memoryN`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemBlock {
    /// The node it belongs to.
    pub node: u32,
    /// `state`.
    pub state: BlockState,
    /// The zone while online.
    pub zone: Option<Zone>,
    /// For boot blocks: the zone they always online into (DMA32 or Normal); `None` for
    /// hot-added blocks, whose zone is chosen at online time.
    pub boot_zone: Option<Zone>,
    /// The block spans two zones (memory0 on x86: DMA and DMA32): `valid_zones` reads
    /// `none` and offlining is `EINVAL`.
    pub spans_zones: bool,
    /// An unmovable page sits in the block: offlining fails with `EBUSY`.
    pub unmovable: bool,
    /// Migration passes still needed before the block is empty (slow offlining).
    pub busy: u32,
    /// The dax device whose range added the block; `None` for boot memory.
    pub owner: Option<String>,
}

impl NodeSpec {
    /// A CPU-less node without boot memory, where firmware says nothing about performance:
    /// the node device memory usually lands on.
    pub fn dax(id: u32) -> Self {
        NodeSpec {
            id,
            has_cpu: false,
            boot_mem_total: 0,
            adistance: None,
            bandwidth_weight: None,
        }
    }
}

impl MemBlock {
    /// Whether the block's pages are in the system: online, or still going offline.
    pub fn is_online(&self) -> bool {
        self.state != BlockState::Offline
    }
}

/// Whether a region's devices bind kmem by type or need `new_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionType {
    /// `IORESOURCE_DAX_KMEM` (hmem, CXL): `kmem` matches by type; dynamic region with
    /// `create`/`delete`/`seed`/`available_size`.
    Kmem,
    /// pmem (e820, NVDIMM): `device_dax` matches by type, `kmem` only through `new_id`;
    /// static region, `size`/`align` read-only, no `mapping` file.
    Devdax,
}

/// A dax region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// `dax_region/id`.
    pub id: u32,
    /// Canonical sysfs directory of the region's parent device; the `dax_region` directory
    /// and the devices live in it.
    pub provider: String,
    /// kmem-type or devdax-type.
    pub kind: RegionType,
    /// The physical range the region's devices are carved from (`dax_region/size` is its
    /// length).
    pub range: PhysRange,
    /// `dax_region/align`.
    pub align: u64,
    /// `dax_region/seed`: the first device created and not yet successfully probed
    /// (dynamic regions).
    #[serde(default)]
    pub seed: Option<String>,
    /// `dax_region/create` as read: the device created last, while it exists.
    #[serde(default)]
    pub youngest: Option<String>,
}

impl Region {
    /// Whether its devices can be created, resized and deleted (hmem, CXL: kmem-type), as
    /// opposed to a static region's one device (pmem).
    pub fn is_dynamic(&self) -> bool {
        self.kind == RegionType::Kmem
    }
}

/// One `mappingN` of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevRange {
    /// The physical range.
    pub range: PhysRange,
    /// `page_offset`.
    pub page_offset: u64,
}

/// The atomic ABI's per-device state (`data->state` in v7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KmemState {
    /// `DAX_KMEM_UNPLUGGED`: no blocks.
    Unplugged,
    /// The online type of the last bind or write (`offline` only from a bind).
    Plugged(OnlineType),
}

/// kmem's driver data for a bound device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmemData {
    /// The atomic ABI's state (kept on both flavours; only atomic shows it).
    pub state: KmemState,
    /// The `daxX.Y` reservation of each mapping (block-aligned), `None` where the range was
    /// too small, could not be reserved, or is not plugged.
    pub res: Vec<Option<PhysRange>>,
    /// Whether memory was added for each reservation (`System RAM (kmem)` child).
    pub added: Vec<bool>,
}

/// A range the kernel could not remove when kmem was unbound: its reservation, its
/// `System RAM (kmem)` child and its blocks stay until reboot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakedRange {
    /// The leaked `daxX.Y` reservation.
    pub range: PhysRange,
}

/// A dax device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaxDevice {
    /// `daxX.Y`.
    pub name: String,
    /// Region id.
    pub region: u32,
    /// `mappingN`, in order.
    pub ranges: Vec<DevRange>,
    /// `target_node` (`None` prints `-1`).
    pub target_node: Option<u32>,
    /// `numa_node` (`None` prints `-1`).
    pub numa_node: Option<u32>,
    /// `align`.
    pub align: u64,
    /// `memmap_on_memory`.
    pub memmap_on_memory: bool,
    /// Character device minor number.
    pub minor: u32,
    /// The bound driver.
    pub driver: Option<DaxDriver>,
    /// `device_dax`'s reservations while bound (whole mapping ranges).
    pub devdax_res: Vec<PhysRange>,
    /// kmem's data while bound.
    pub kmem: Option<KmemData>,
    /// Ranges leaked by a failed kmem removal.
    pub leaked: Vec<LeakedRange>,
}

/// Who holds the device-hotplug lock across scheduler steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    /// The program driving the machine (daxplug, a test, an admin at `sim write`).
    Client,
}

/// The whole machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The preset it was made from.
    pub preset: String,
    /// The seed it was made with.
    pub seed: u64,
    /// Kernel flavour.
    pub flavour: Flavour,
    /// Memory block size in bytes.
    pub block_size: u64,
    /// Possible NUMA nodes.
    pub nodes: Vec<NodeSpec>,
    /// Boot-time `/proc/iomem` entries.
    pub boot_iomem: Vec<StaticResource>,
    /// Memory blocks by id.
    pub blocks: BTreeMap<u64, MemBlock>,
    /// dax regions.
    pub regions: Vec<Region>,
    /// dax devices.
    pub devices: Vec<DaxDevice>,
    /// Ranges leaked by devices that have since been removed from the bus: (name, range).
    pub orphans: Vec<(String, PhysRange)>,
    /// Whether the kmem module is loaded (its driver directory exists).
    pub kmem_loaded: bool,
    /// The dax bus's `drivers_autoprobe`: a driver that registers binds every device it
    /// matches only while this is on.
    #[serde(default = "autoprobe_default")]
    pub drivers_autoprobe: bool,
    /// Whether the fsdev_dax module is loaded.
    #[serde(default)]
    pub fsdev_loaded: bool,
    /// `new_id` lists of each driver.
    pub new_ids: BTreeMap<DaxDriver, BTreeSet<String>>,
    /// `auto_online_blocks`.
    pub auto_online_blocks: OnlineType,
    /// `memory_hotplug.online_policy`.
    pub online_policy: OnlinePolicy,
    /// `memory_hotplug.memmap_on_memory` (read-only at run time).
    pub memmap_on_memory: MemmapOnMemory,
    /// `memory_hotplug.auto_movable_ratio`.
    pub auto_movable_ratio: u32,
    /// `memory_hotplug.auto_movable_numa_aware`.
    pub auto_movable_numa_aware: bool,
    /// Demotion and weighted interleave (the tiers themselves follow from the nodes).
    #[serde(default)]
    pub placement: Placement,
    /// The `movable_node` boot option.
    pub movable_node: bool,
    /// `CONFIG_MEMORY_HOTREMOVE`.
    pub hotremove: bool,
    /// Holder of the device-hotplug lock during a multi-step operation.
    pub lock: Option<Holder>,
    /// The uevents the kernel sent, in order: the newest [`UEVENT_LOG`] of them (a
    /// listener that falls further behind has lost events, as netlink's buffer drops them).
    pub uevents: Vec<UeventRecord>,
    /// `/sys/kernel/uevent_seqnum`: the number of the last uevent sent.
    #[serde(default)]
    pub uevent_seqnum: u64,
    /// udev: rules and exec queue.
    pub udev: Udev,
    /// Competing controllers.
    pub actors: Vec<Actor>,
    /// Faults armed for future operations.
    pub faults: Faults,
    /// Virtual time in scheduler ticks.
    pub clock: u64,
    /// Steps of multi-step client operations so far (faults are aimed at step numbers).
    pub client_steps: u64,
    /// Most actor steps run at each scheduling point.
    pub max_interleave: u32,
    /// Chance per tick, in per mille, that a kernel allocation pins a hot-added block
    /// online in a kernel zone.
    pub kernel_alloc_per_mille: u32,
    /// A signal is pending for the client's current system call.
    pub signal_pending: bool,
    /// Real time each step of a client operation takes, in microseconds (0: none), so that
    /// timeouts and Ctrl-C can be tried against slow offlining.
    pub step_delay_us: u64,
    /// The scheduler's generator.
    pub rng: Rng,
    /// A signal from another thread for the client's current call.
    #[serde(skip)]
    pub signal: SignalFlag,
    /// Kernel log.
    pub dmesg: Vec<String>,
    /// What the actors did and what the kernel answered them.
    pub actor_log: Vec<String>,
    /// Actor writes the held device-hotplug lock made restart.
    pub restarts: u64,
    /// Processes holding `/dev/daxX.Y` open, by device (a fault: "device in use").
    #[serde(default)]
    pub dax_open: BTreeMap<String, Vec<u32>>,
    /// Check the invariants after every actor step (tests), collecting violations.
    #[serde(skip)]
    pub check_each_step: bool,
    /// Violations found by `check_each_step`.
    #[serde(skip)]
    pub violations: Vec<String>,
}

impl Machine {
    /// A device by name.
    pub fn device(&self, name: &str) -> Option<&DaxDevice> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// A device by name, mutably.
    pub fn device_mut(&mut self, name: &str) -> Option<&mut DaxDevice> {
        self.devices.iter_mut().find(|d| d.name == name)
    }

    /// What about the machine no hardware has, if anything: a block size that is not a
    /// power of two, or a range of more blocks than a physical address space holds.
    pub fn implausible(&self) -> Option<String> {
        const MAX_BLOCKS: u64 = 1 << 24;
        if !self.block_size.is_power_of_two() || self.block_size < 4096 {
            return Some(format!("a block size of {} bytes", self.block_size));
        }
        let too_big = |r: &PhysRange| r.end < r.start || r.len() / self.block_size > MAX_BLOCKS;
        for d in &self.devices {
            if let Some(r) = d.ranges.iter().map(|r| &r.range).find(|r| too_big(r)) {
                return Some(format!("{} at {:#x}-{:#x}", d.name, r.start, r.end));
            }
        }
        for r in &self.regions {
            if too_big(&r.range) {
                return Some(format!(
                    "region {} at {:#x}-{:#x}",
                    r.id, r.range.start, r.range.end
                ));
            }
        }
        if self.blocks.len() as u64 > MAX_BLOCKS {
            return Some(format!("{} memory blocks", self.blocks.len()));
        }
        self.inconsistent()
    }

    /// What a machine file damaged by hand can hold that no kernel could: numbers past
    /// what the arithmetic of addresses allows, devices outside their region, regions
    /// that do not exist, alignments that are not powers of two.
    fn inconsistent(&self) -> Option<String> {
        // Counters that grow by one a step, an event or a call: far from their end.
        const COUNTER_MAX: u64 = 1 << 62;
        for (what, n) in [
            ("clock", self.clock),
            ("client_steps", self.client_steps),
            ("uevent_seqnum", self.uevent_seqnum),
        ] {
            if n > COUNTER_MAX {
                return Some(format!("{what} = {n}"));
            }
        }
        // Knobs that set how much work a step or a call does: a file may not make every
        // call run for hours.
        for (what, n, most) in [
            ("max_interleave", u64::from(self.max_interleave), 1024),
            ("step_delay_us", self.step_delay_us, 1_000_000),
            (
                "kernel_alloc_per_mille",
                u64::from(self.kernel_alloc_per_mille),
                1000,
            ),
            (
                "auto_movable_ratio",
                u64::from(self.auto_movable_ratio),
                1 << 20,
            ),
            (
                "faults.slow_offline_passes",
                u64::from(self.faults.slow_offline_passes),
                1 << 20,
            ),
        ] {
            if n > most {
                return Some(format!("{what} = {n} (at most {most})"));
            }
        }
        if let Some((id, b)) = self.blocks.iter().find(|(_, b)| b.busy > 1 << 20) {
            return Some(format!(
                "memory block {id} busy for {} migration passes",
                b.busy
            ));
        }
        let memory = self
            .nodes
            .iter()
            .try_fold(0u64, |sum, n| sum.checked_add(n.boot_mem_total));
        if memory.is_none_or(|m| m > COUNTER_MAX) {
            return Some("more boot memory than the address space holds".to_owned());
        }
        let last_block = u64::MAX / self.block_size;
        if let Some((id, _)) = self
            .blocks
            .iter()
            .next_back()
            .filter(|(id, _)| **id >= last_block)
        {
            return Some(format!("memory block {id} (beyond the address space)"));
        }
        for r in &self.regions {
            if !r.align.is_power_of_two() {
                return Some(format!("region {} with an alignment of {}", r.id, r.align));
            }
        }
        for d in &self.devices {
            let Some(region) = self.region(d.region) else {
                return Some(format!(
                    "{} in region {}, which does not exist",
                    d.name, d.region
                ));
            };
            if d.align != 0 && !d.align.is_power_of_two() {
                return Some(format!("{} with an alignment of {}", d.name, d.align));
            }
            let mut total: u64 = 0;
            for r in d.ranges.iter().map(|r| &r.range) {
                let outside = r.start < region.range.start || r.end > region.range.end;
                total = match total.checked_add(r.len()) {
                    Some(t) if !outside && r.end >= r.start => t,
                    _ => {
                        return Some(format!(
                            "{} at {:#x}-{:#x}, outside region {} ({:#x}-{:#x})",
                            d.name, r.start, r.end, region.id, region.range.start, region.range.end
                        ));
                    }
                };
            }
            if total > region.range.len() {
                return Some(format!("{} larger than its region {}", d.name, region.id));
            }
        }
        None
    }

    /// A region by id.
    pub fn region(&self, id: u32) -> Option<&Region> {
        self.regions.iter().find(|r| r.id == id)
    }

    /// The physical range of block `id`.
    pub fn block_range(&self, id: u64) -> PhysRange {
        let start = id * self.block_size;
        PhysRange {
            start,
            end: start + self.block_size - 1,
        }
    }

    /// Ids of the blocks inside `range` that exist.
    pub fn blocks_in(&self, range: PhysRange) -> Vec<u64> {
        let first = range.start / self.block_size;
        let last = range.end / self.block_size;
        self.blocks.range(first..=last).map(|(id, _)| *id).collect()
    }

    /// Canonical sysfs directory of a device.
    pub fn device_dir(&self, d: &DaxDevice) -> String {
        let provider = self
            .region(d.region)
            .map_or("/sys/devices/virtual", |r| r.provider.as_str());
        format!("{provider}/{}", d.name)
    }

    /// Appends a kernel log line.
    pub fn log(&mut self, line: impl Into<String>) {
        self.dmesg.push(line.into());
    }

    /// Whether a node is online: it has CPUs or present memory blocks.
    pub fn node_online(&self, node: u32) -> bool {
        self.nodes.iter().any(|n| n.id == node && n.has_cpu)
            || self.blocks.values().any(|b| b.node == node)
    }

    /// `MemTotal` of a node in bytes: boot memory still online plus hot-added online blocks.
    pub fn node_mem_total(&self, node: u32) -> u64 {
        let boot = self
            .nodes
            .iter()
            .find(|n| n.id == node)
            .map_or(0, |n| n.boot_mem_total);
        let mut total = boot;
        for b in self.blocks.values().filter(|b| b.node == node) {
            match (&b.owner, b.is_online()) {
                (Some(_), true) => total += self.block_size,
                (None, false) => total = total.saturating_sub(self.block_size),
                _ => {}
            }
        }
        total
    }

    /// System `MemTotal` in bytes.
    pub fn mem_total(&self) -> u64 {
        self.nodes.iter().map(|n| self.node_mem_total(n.id)).sum()
    }
}

/// The kernel's default for a bus's `drivers_autoprobe` (machine files written before the
/// model had it load with it).
fn autoprobe_default() -> bool {
    true
}

/// Internal errno of a system call the kernel restarts (`-ERESTARTNOINTR`): an actor whose
/// write meets the held device-hotplug lock sees it and retries at its next step. User
/// space never sees this value.
pub const RESTART: Errno = Errno::from_raw(513);

/// What the scheduler may do while a client operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The client: multi-step operations hold the lock and let actors run between steps.
    Client,
    /// An actor: its operations complete in one step.
    Actor,
}

/// A signal aimed at the client's current system call from another thread (for example a
/// timeout). Not saved with the machine.
#[derive(Debug, Clone, Default)]
pub struct SignalFlag(pub Option<Arc<AtomicBool>>);

impl PartialEq for SignalFlag {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SignalFlag {}

/// Placement settings an administrator can change at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// `/sys/kernel/mm/numa/demotion_enabled` (off at boot).
    #[serde(default)]
    pub demotion_enabled: bool,
    /// `weighted_interleave/auto` (kernels that have it start in auto mode).
    #[serde(default = "yes")]
    pub interleave_auto: bool,
    /// Weights set in manual mode, by node; a node not here has the default weight, 1.
    #[serde(default)]
    pub interleave_weights: BTreeMap<u32, u8>,
}

fn yes() -> bool {
    true
}

impl Default for Placement {
    fn default() -> Self {
        Placement {
            demotion_enabled: false,
            interleave_auto: true,
            interleave_weights: BTreeMap::new(),
        }
    }
}
