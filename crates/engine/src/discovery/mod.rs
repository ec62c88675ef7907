//! Topology discovery: one consistent read of the machine's device memory.
//!
//! Ranges come from every `mappingN` of a device and from the `daxX.Y` entries of
//! `/proc/iomem` (never from `resource` + `size`); blocks are found by address arithmetic
//! over those ranges, so the cost grows with the blocks of the devices asked about, not
//! with every block of the machine.

pub(crate) mod blocks;
pub(crate) mod bus;
pub mod error;
pub mod identity;
pub mod observe;
pub mod orphans;
pub mod placement;
pub mod problems;
pub(crate) mod read;
pub mod topology;
mod zones;

use std::collections::{BTreeMap, BTreeSet};

use daxplug_abi::{
    BlockSize, DaxDriver, DaxName, DaxState, Iomem, KMEM_RESOURCE_NAME, Meminfo, NodeList,
    OnlineType, PhysRange, parse_align, parse_auto_movable_ratio, parse_block_size, parse_dax_size,
    parse_memmap_on_memory, parse_node_id, parse_param_bool, parse_phys_addr, parse_region_id,
};
use daxplug_kernel::{Kernel, paths};

use crate::discovery::blocks::{BlockNodes, read_blocks};
use crate::discovery::error::DiscoveryError;
use crate::discovery::observe::{BlockCounts, observe};
use crate::discovery::read::{parse, parse_optional};
use crate::discovery::topology::{
    Device, Driver, IomemRange, KernelAbi, Mapping, Nodes, Policy, Region, RegionKind, Scope,
    Topology,
};

/// Reads the machine through `k`, every detail.
pub fn discover(k: &dyn Kernel, scope: &Scope) -> Result<Topology, DiscoveryError> {
    discover_with(k, scope, Detail::Blocks)
}

/// The most memory blocks one range of a device may span: 2^24 blocks is 2 PiB of 128 MiB
/// blocks, beyond any machine's physical address space.
const MAX_BLOCKS_PER_RANGE: u64 = 1 << 24;

/// Reads the machine through `k`, to the given detail.
pub fn discover_with(
    k: &dyn Kernel,
    scope: &Scope,
    detail: Detail,
) -> Result<Topology, DiscoveryError> {
    // Bad input is refused before anything is read, let alone any path built from it.
    if let Scope::Devices(wanted) = scope {
        for name in wanted {
            device_name(name)?;
        }
    }
    require_memory_hotplug(k)?;
    let names = device_names(k, scope)?;
    let block_size = parse(k, paths::BLOCK_SIZE_BYTES, parse_block_size)?;
    let iomem = parse(k, paths::IOMEM, Iomem::parse)?;
    // Without root the kernel hides the addresses: show what can be known, and say so.
    let limited = iomem.addresses_hidden();
    let iomem = if limited { Iomem::default() } else { iomem };
    let mem_total = parse_optional(k, paths::MEMINFO, Meminfo::parse)?.and_then(|m| m.mem_total());
    let policy = read_policy(k)?;
    let nodes = read_nodes(k)?;
    let placement = crate::discovery::placement::read_placement(k)?;

    // A listing counts blocks from the zone totals where those settle every block of a node.
    let zone_counts = if detail == Detail::Counts
        && !limited
        && policy.memmap_on_memory == Some(daxplug_abi::MemmapOnMemory::Disabled)
    {
        zones::ZoneCounts::read(k, block_size)
    } else {
        None
    };
    let mut regions: BTreeMap<u32, Region> = BTreeMap::new();
    let mut devices = Vec::with_capacity(names.len());
    for name in &names {
        let (mut device, region) = read_device(
            k,
            name,
            block_size,
            &iomem,
            detail,
            limited,
            zone_counts.as_ref(),
        )?;
        // Without the ranges, blocks and leaked ranges cannot be found: a kmem device's
        // blocks are unknown, and an unbound device with memory may be stuck.
        if limited
            && (device.driver == Driver::Kmem || (device.driver == Driver::None && device.size > 0))
        {
            device.state = crate::discovery::observe::ObservedState::NeedsRoot;
        }
        if let Some(region) = region {
            regions.entry(region.id).or_insert(region);
        }
        devices.push(device);
    }
    let kernel_abi = if devices.iter().any(|d| d.kernel_state.is_some()) {
        KernelAbi::Atomic
    } else if devices.iter().any(|d| d.driver == Driver::Kmem) {
        KernelAbi::Legacy
    } else {
        KernelAbi::Unknown
    };
    let mut topo = Topology {
        block_size,
        kernel_abi,
        policy,
        mem_total,
        nodes,
        placement,
        regions: regions.into_values().collect(),
        devices,
        kmem_loaded: driver_loaded(k, DaxDriver::Kmem),
        fsdev_loaded: driver_loaded(k, DaxDriver::FsdevDax),
        limited,
        orphans: Vec::new(),
    };
    // A device a scope leaves out is not an orphan: only a full look finds those.
    if *scope == Scope::All && !limited {
        let on_bus = names.iter().cloned().collect();
        topo.orphans = crate::discovery::orphans::orphans(
            k,
            &iomem,
            &on_bus,
            block_size,
            MAX_BLOCKS_PER_RANGE,
        )?;
    }
    let backings: Vec<Option<String>> = topo
        .devices
        .iter()
        .map(|d| crate::discovery::identity::backing_in(k, Some(&iomem), &topo, d))
        .collect();
    for (d, b) in topo.devices.iter_mut().zip(backings) {
        d.backing = b;
    }
    Ok(topo)
}

/// Whether a dax driver is loaded: its directory under `/sys/bus/dax/drivers` exists.
pub fn driver_loaded(k: &dyn Kernel, driver: DaxDriver) -> bool {
    k.exists(&paths::dax_driver(driver.as_str()))
}

/// One device and what its state depends on (block size, `/proc/iomem`, its region), without
/// the machine-wide parts (`policy`, `nodes` and `mem_total` are left empty) or each
/// block's node: the cheap re-read a transition makes after each of its steps.
pub fn discover_device(k: &dyn Kernel, name: &str) -> Result<Topology, DiscoveryError> {
    require_device(k, name)?;
    let block_size = parse(k, paths::BLOCK_SIZE_BYTES, parse_block_size)?;
    let iomem = parse(k, paths::IOMEM, Iomem::parse)?;
    if iomem.addresses_hidden() {
        return Err(DiscoveryError::IomemHidden);
    }
    // A transition judges its device block by block: no zone totals here.
    let (device, region) = read_device(k, name, block_size, &iomem, Detail::Counts, false, None)?;
    let regions: Vec<Region> = region.into_iter().collect();
    let devices = vec![device];
    let kernel_abi = match devices.first() {
        Some(d) if d.kernel_state.is_some() => KernelAbi::Atomic,
        Some(d) if d.driver == Driver::Kmem => KernelAbi::Legacy,
        _ => KernelAbi::Unknown,
    };
    Ok(Topology {
        block_size,
        kernel_abi,
        policy: Policy::default(),
        mem_total: None,
        nodes: Nodes::default(),
        placement: crate::discovery::placement::Placement::default(),
        regions,
        devices,
        kmem_loaded: driver_loaded(k, DaxDriver::Kmem),
        fsdev_loaded: driver_loaded(k, DaxDriver::FsdevDax),
        limited: false,
        orphans: Vec::new(),
    })
}

/// Checks that the kernel has memory hotplug at all (`/sys/devices/system/memory`).
pub fn require_memory_hotplug(k: &dyn Kernel) -> Result<(), DiscoveryError> {
    if k.exists(paths::MEMORY) {
        Ok(())
    } else {
        Err(DiscoveryError::NoMemoryHotplug {
            path: paths::MEMORY.to_owned(),
        })
    }
}

/// `name` as a dax device name (`daxX.Y`, which is also a single path component), or the
/// error that names it. Every name a user gives is checked here before any path is built.
pub fn device_name(name: &str) -> Result<DaxName, DiscoveryError> {
    name.parse().map_err(|_| DiscoveryError::InvalidDeviceName {
        name: name.to_owned(),
    })
}

/// Checks that `name` is a device name and that the device is on the bus: one lookup, the
/// bus is listed only to say what is there when it is not.
pub fn require_device(k: &dyn Kernel, name: &str) -> Result<(), DiscoveryError> {
    device_name(name)?;
    if k.exists(&paths::dax_device(name)) {
        return Ok(());
    }
    device_names(k, &Scope::Devices(vec![name.to_owned()])).map(|_| ())
}

/// The sorted names of the devices in scope, validated.
fn device_names(k: &dyn Kernel, scope: &Scope) -> Result<Vec<String>, DiscoveryError> {
    // The dax bus is absent until the dax core is loaded: then there are no devices.
    let mut present: Vec<String> = match k.list_dir(paths::DAX_DEVICES) {
        Ok(names) => names,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    present.retain(|n| n.parse::<DaxName>().is_ok());
    present.sort_by_key(|n| n.parse::<DaxName>().ok());
    match scope {
        Scope::All => Ok(present),
        Scope::Devices(wanted) => {
            let mut out: Vec<String> = Vec::new();
            for name in wanted {
                if !present.contains(name) {
                    return Err(DiscoveryError::UnknownDevice {
                        name: name.clone(),
                        present: if present.is_empty() {
                            "none".to_owned()
                        } else {
                            present.join(", ")
                        },
                    });
                }
                if !out.contains(name) {
                    out.push(name.clone());
                }
            }
            Ok(out)
        }
    }
}

/// `auto_online_blocks`, if the kernel has it.
pub fn read_auto_online_blocks(k: &dyn Kernel) -> Result<Option<OnlineType>, DiscoveryError> {
    parse_optional(k, paths::AUTO_ONLINE_BLOCKS, str::parse)
}

fn read_policy(k: &dyn Kernel) -> Result<Policy, DiscoveryError> {
    Ok(Policy {
        auto_online_blocks: read_auto_online_blocks(k)?,
        online_policy: parse_optional(k, paths::ONLINE_POLICY, str::parse)?,
        memmap_on_memory: parse_optional(k, &paths::hotplug_param("memmap_on_memory"), str::parse)?,
        auto_movable_ratio: parse_optional(
            k,
            &paths::hotplug_param("auto_movable_ratio"),
            parse_auto_movable_ratio,
        )?,
        auto_movable_numa_aware: parse_optional(
            k,
            paths::AUTO_MOVABLE_NUMA_AWARE,
            parse_param_bool,
        )?,
    })
}

fn read_nodes(k: &dyn Kernel) -> Result<Nodes, DiscoveryError> {
    let list = |name: &str| parse_optional(k, &paths::node_mask(name), str::parse::<NodeList>);
    let mut nodes = Nodes {
        possible: list("possible")?,
        online: list("online")?,
        has_memory: list("has_memory")?,
        has_normal_memory: list("has_normal_memory")?,
        has_cpu: list("has_cpu")?,
        mem_total: BTreeMap::new(),
    };
    // Nodes with memory have a meminfo worth reading; that is a handful, not all
    // possible nodes.
    let with_memory: Vec<u32> = nodes
        .has_memory
        .iter()
        .chain(nodes.online.iter())
        .flat_map(NodeList::iter)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for n in with_memory {
        let path = paths::node_attr(n, "meminfo");
        if let Some(total) = parse_optional(k, &path, Meminfo::parse)?.and_then(|m| m.mem_total()) {
            nodes.mem_total.insert(n, total);
        }
    }
    Ok(nodes)
}

fn read_region(k: &dyn Kernel, canonical: &str) -> Result<Option<Region>, DiscoveryError> {
    if !canonical.contains('/') {
        return Ok(None);
    }
    let path = paths::dax_region_of(canonical);
    let attr = |name: &str| paths::region_attr(&path, name);
    let Some(id) = parse_optional(k, &attr("id"), parse_region_id)? else {
        return Ok(None);
    };
    let kind = if k.exists(&attr("create")) {
        RegionKind::Dynamic
    } else {
        RegionKind::Static
    };
    let provider = paths::region_provider(&path);
    Ok(Some(Region {
        id,
        provider: provider
            .strip_prefix("/sys/devices/")
            .unwrap_or(provider)
            .to_owned(),
        kind,
        size: parse_optional(k, &attr("size"), parse_dax_size)?,
        align: optional_root_only(k, &attr("align"), parse_align)?,
        available_size: parse_optional(k, &attr("available_size"), parse_dax_size)?,
        path,
    }))
}

/// Reads a root-only (0400) attribute: `EACCES` is `None`, as for a missing file, so that
/// a non-root `list` still shows what it can.
fn optional_root_only<T>(
    k: &dyn Kernel,
    path: &str,
    parser: impl FnOnce(&str) -> Result<T, daxplug_abi::ParseError>,
) -> Result<Option<T>, DiscoveryError> {
    match parse_optional(k, path, parser) {
        Err(DiscoveryError::Kernel(e)) if e.errno == daxplug_kernel::Errno::EACCES => Ok(None),
        other => other,
    }
}

fn read_device(
    k: &dyn Kernel,
    name: &str,
    block_size: BlockSize,
    iomem: &Iomem,
    detail: Detail,
    limited: bool,
    zone_counts: Option<&zones::ZoneCounts>,
) -> Result<(Device, Option<Region>), DiscoveryError> {
    let dir = paths::dax_device(name);
    let canonical = match k.read_link(&dir) {
        Ok(target) => paths::resolve_link(&dir, &target).unwrap_or_else(|| dir.clone()),
        Err(_) => dir.clone(),
    };
    let region = read_region(k, &canonical)?;
    // One listing tells which optional attributes exist (driver, state, mappingN).
    let entries = k.list_dir(&dir)?;
    let has = |entry: &str| entries.iter().any(|e| e == entry);

    let driver = if has("driver") {
        let target = k.read_link(&paths::dax_attr(name, "driver"))?;
        Driver::from_name(target.rsplit('/').next().unwrap_or(&target))
    } else {
        Driver::None
    };
    let kernel_state = if has("state") {
        Some(parse(
            k,
            &paths::dax_attr(name, "state"),
            str::parse::<DaxState>,
        )?)
    } else {
        None
    };

    let mut indices: Vec<u32> = entries
        .iter()
        .filter_map(|e| e.strip_prefix("mapping"))
        .filter_map(|n| n.parse().ok())
        .collect();
    indices.sort_unstable();
    // The ranges are root-only (0400): without root they are not read.
    if limited {
        indices.clear();
    }
    let mut mappings = Vec::with_capacity(indices.len());
    for index in indices {
        let m = paths::dax_mapping(name, index);
        let start = parse(k, &paths::mapping_attr(&m, "start"), parse_phys_addr)?;
        let end = parse(k, &paths::mapping_attr(&m, "end"), parse_phys_addr)?;
        let page_offset = parse(k, &paths::mapping_attr(&m, "page_offset"), parse_phys_addr)?;
        let range = PhysRange::new(start, end).ok_or_else(|| DiscoveryError::Parse {
            path: paths::mapping_attr(&m, "end"),
            source: daxplug_abi::ParseError {
                text: format!("{end:#x}"),
                expected: format!("an end address at or after the start {start:#x}").into(),
                line: None,
            },
        })?;
        mappings.push(Mapping {
            index,
            range,
            page_offset,
            blocks: range.whole_blocks(block_size),
        });
    }

    let iomem_ranges: Vec<IomemRange> = iomem
        .named(name)
        .map(|(i, e)| IomemRange {
            range: e.range,
            kmem: iomem
                .children(i)
                .find(|(_, c)| c.name == KMEM_RESOURCE_NAME)
                .map(|(_, c)| c.range),
        })
        .collect();

    // Candidate blocks: whole blocks of every mapping, plus those of any iomem range of
    // the device (which outlives the driver when kmem leaks it). A range of more blocks
    // than a machine can have is a damaged file, refused before the per-block work.
    let too_big = |range: PhysRange| range.len() / block_size.bytes() > MAX_BLOCKS_PER_RANGE;
    for m in &mappings {
        if too_big(m.range) {
            return Err(DiscoveryError::Implausible {
                path: paths::dax_mapping(name, m.index),
                what: format!("the range {:#x}-{:#x}", m.range.start, m.range.end),
            });
        }
    }
    for r in &iomem_ranges {
        if too_big(r.range) {
            return Err(DiscoveryError::Implausible {
                path: paths::IOMEM.to_owned(),
                what: format!("{name} spans {:#x}-{:#x}", r.range.start, r.range.end),
            });
        }
    }
    let mut candidates: BTreeSet<u64> = BTreeSet::new();
    let mut add = |range: PhysRange| {
        if let Some((first, last)) = range.whole_blocks(block_size) {
            candidates.extend(first..=last);
        }
    };
    mappings.iter().for_each(|m| add(m.range));
    iomem_ranges
        .iter()
        .for_each(|r| add(r.kmem.unwrap_or(r.range)));
    let span = mappings
        .iter()
        .filter_map(|m| m.blocks)
        .map(|(first, last)| last - first + 1)
        .sum();

    let target_node =
        parse_optional(k, &paths::dax_attr(name, "target_node"), parse_node_id)?.flatten();
    let candidates: Vec<u64> = candidates.into_iter().collect();
    let nodes = match detail {
        Detail::Blocks => BlockNodes::Read(target_node),
        Detail::Counts => BlockNodes::Skip,
    };
    let memmap_on_memory = parse_optional(
        k,
        &paths::dax_attr(name, "memmap_on_memory"),
        parse_memmap_on_memory,
    )?;
    let from_zones = zone_counts
        .filter(|_| memmap_on_memory != Some(true))
        .zip(target_node)
        .and_then(|(z, node)| z.device(k, node, &candidates, span));
    let (blocks, counts) = match from_zones {
        Some(found) => found,
        None => {
            let blocks = read_blocks(k, &candidates, block_size, nodes)?;
            let counts = BlockCounts::of(&blocks, span);
            (blocks, counts)
        }
    };
    let kmem_in_iomem = iomem_ranges.iter().any(|r| r.kmem.is_some());
    let state = observe(&driver, &counts, kmem_in_iomem);

    let device = Device {
        name: device_name(name)?,
        path: canonical,
        backing: None,
        region: region.as_ref().map(|r| r.id),
        size: parse(k, &paths::dax_attr(name, "size"), parse_dax_size)?,
        align: parse_optional(k, &paths::dax_attr(name, "align"), parse_align)?,
        target_node,
        numa_node: parse_optional(k, &paths::dax_attr(name, "numa_node"), parse_node_id)?.flatten(),
        memmap_on_memory,
        driver,
        kernel_state,
        mappings,
        iomem: iomem_ranges,
        blocks,
        counts,
        state,
        ranges_hidden: limited,
    };
    Ok((device, region))
}

/// How much of each device a discovery reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Everything, each block read, its node included.
    Blocks,
    /// What states, counts and problems need (a listing without per-block rows): no block's
    /// node, and a device's blocks counted from its node's zone totals where those can only
    /// be the device's (`zones.rs`), read one by one elsewhere.
    Counts,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_device_name(name: &str) -> Option<(u32, u32)> {
        name.parse::<DaxName>().ok().map(|n| (n.region, n.id))
    }

    #[test]
    fn device_names() {
        assert_eq!(parse_device_name("dax0.0"), Some((0, 0)));
        assert_eq!(parse_device_name("dax12.3"), Some((12, 3)));
        for bad in [
            "dax",
            "dax0",
            "dax0.",
            "dax.0",
            "0.0",
            "dax0.0/..",
            "dax-1.0",
            "dax0.0 ",
        ] {
            assert_eq!(parse_device_name(bad), None, "{bad:?}");
        }
    }
}
