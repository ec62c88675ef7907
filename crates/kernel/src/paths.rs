//! Every kernel path daxplug uses, in one place, and helpers to build and resolve them.

/// Memory-block directory.
pub const MEMORY: &str = "/sys/devices/system/memory";
/// Memory block size (hex, no `0x`).
pub const BLOCK_SIZE_BYTES: &str = "/sys/devices/system/memory/block_size_bytes";
/// Online type applied to blocks at hot-add time.
pub const AUTO_ONLINE_BLOCKS: &str = "/sys/devices/system/memory/auto_online_blocks";
/// NUMA node directory.
pub const NODE: &str = "/sys/devices/system/node";
/// dax bus devices (symlinks to the devices' canonical directories).
pub const DAX_DEVICES: &str = "/sys/bus/dax/devices";
/// dax bus drivers (`kmem`, `device_dax`).
pub const DAX_DRIVERS: &str = "/sys/bus/dax/drivers";
/// The dax bus's `drivers_autoprobe`.
pub const DAX_DRIVERS_AUTOPROBE: &str = "/sys/bus/dax/drivers_autoprobe";
/// The dax bus's `drivers_probe`: a device name written there binds the first matching
/// loaded driver, as its appearance would have with autoprobe on.
pub const DAX_DRIVERS_PROBE: &str = "/sys/bus/dax/drivers_probe";
/// `memory_hotplug` module parameters.
pub const HOTPLUG_PARAMS: &str = "/sys/module/memory_hotplug/parameters";
/// The zone policy of plain `online` (`contig-zones` or `auto-movable`).
pub const ONLINE_POLICY: &str = "/sys/module/memory_hotplug/parameters/online_policy";
/// Whether `auto-movable` weighs each node's ratio too.
pub const AUTO_MOVABLE_NUMA_AWARE: &str =
    "/sys/module/memory_hotplug/parameters/auto_movable_numa_aware";
/// The number of the last uevent the kernel sent (every block online/offline, bind and
/// unbind sends one).
pub const UEVENT_SEQNUM: &str = "/sys/kernel/uevent_seqnum";
/// Memory tiers (`memory_tierN/nodelist`).
pub const MEMORY_TIERING: &str = "/sys/devices/virtual/memory_tiering";
/// Whether reclaim demotes pages to slower tiers.
pub const DEMOTION_ENABLED: &str = "/sys/kernel/mm/numa/demotion_enabled";
/// Weighted-interleave weights (`nodeN`) and mode (`auto`).
pub const WEIGHTED_INTERLEAVE: &str = "/sys/kernel/mm/mempolicy/weighted_interleave";
/// The physical resource tree.
pub const IOMEM: &str = "/proc/iomem";
/// Each online node's zones with the pages present in them.
pub const ZONEINFO: &str = "/proc/zoneinfo";
/// System-wide memory statistics.
pub const MEMINFO: &str = "/proc/meminfo";
/// The running kernel's release (`uname -r`).
pub const OSRELEASE: &str = "/proc/sys/kernel/osrelease";
/// Seconds since boot (and idle seconds).
pub const UPTIME: &str = "/proc/uptime";
/// The kernel's command line.
pub const CMDLINE: &str = "/proc/cmdline";
/// Devices of the nvdimm bus (regions, namespaces).
pub const ND_DEVICES: &str = "/sys/bus/nd/devices";

/// `/sys/devices/system/memory/memory<id>`.
pub fn memory_block(id: u64) -> String {
    format!("{MEMORY}/memory{id}")
}

/// `memory<id>/state`: `online`, `offline`, `going-offline`; written with an online type.
pub fn block_state(id: u64) -> String {
    format!("{}/state", memory_block(id))
}

/// `memory<id>/valid_zones`: the zone of an online block, the candidates of an offline one.
pub fn block_valid_zones(id: u64) -> String {
    format!("{}/valid_zones", memory_block(id))
}

/// The link from memory block `id` to node `n` (`memoryN/nodeM`), present when the block
/// is on that node.
pub fn block_node(id: u64, n: u32) -> String {
    format!("{}/node{n}", memory_block(id))
}

/// `/sys/bus/dax/devices/<name>`.
pub fn dax_device(name: &str) -> String {
    format!("{DAX_DEVICES}/{name}")
}

/// An attribute of a dax device: `/sys/bus/dax/devices/<name>/<attr>` (`state`, `size`,
/// `align`, `driver`, `target_node`, ...).
pub fn dax_attr(name: &str, attr: &str) -> String {
    format!("{DAX_DEVICES}/{name}/{attr}")
}

/// The `dax_region` directory beside a dax device's canonical directory (the region's
/// provider holds both).
pub fn dax_region_of(device_canonical: &str) -> String {
    let provider = device_canonical
        .rsplit_once('/')
        .map_or("", |(provider, _)| provider);
    format!("{provider}/dax_region")
}

/// An attribute of a `dax_region` directory (`id`, `size`, `align`, `available_size`,
/// `create`, `delete`, `seed`).
pub fn region_attr(region_dir: &str, attr: &str) -> String {
    format!("{region_dir}/{attr}")
}

/// The device that provides a region (its `dax_region` directory's parent).
pub fn region_provider(region_dir: &str) -> &str {
    region_dir.trim_end_matches("/dax_region")
}

/// `/sys/devices/system/node/node<n>`.
pub fn node(n: u32) -> String {
    format!("{NODE}/node{n}")
}

/// A file of weighted interleave: `nodeN` (a weight) or `auto`.
pub fn weighted_interleave_attr(name: &str) -> String {
    format!("{WEIGHTED_INTERLEAVE}/{name}")
}

/// An attribute of a NUMA node: `/sys/devices/system/node/node<n>/<attr>` (`meminfo`, ...).
pub fn node_attr(n: u32, attr: &str) -> String {
    format!("{}/{attr}", node(n))
}

/// A dax driver's directory: `/sys/bus/dax/drivers/<driver>` (present while it is loaded).
pub fn dax_driver(driver: &str) -> String {
    format!("{DAX_DRIVERS}/{driver}")
}

/// A file of a dax driver: `bind`, `unbind`, `new_id`, `remove_id`.
pub fn dax_driver_file(driver: &str, file: &str) -> String {
    format!("{}/{file}", dax_driver(driver))
}

/// A dax device's `mapping<index>` directory.
pub fn dax_mapping(name: &str, index: u32) -> String {
    dax_attr(name, &format!("mapping{index}"))
}

/// An attribute of a `mapping<index>` directory: `start`, `end`, `page_offset`.
pub fn mapping_attr(mapping_dir: &str, attr: &str) -> String {
    format!("{mapping_dir}/{attr}")
}

/// A parameter of the memory_hotplug module (`memmap_on_memory`, `auto_movable_ratio`, ...).
pub fn hotplug_param(name: &str) -> String {
    format!("{HOTPLUG_PARAMS}/{name}")
}

/// A node mask of `/sys/devices/system/node` (`possible`, `online`, `has_cpu`, ...).
pub fn node_mask(name: &str) -> String {
    format!("{NODE}/{name}")
}

/// A memory tier's `nodelist` (`memory_tiering/memory_tier<N>/nodelist`).
pub fn memory_tier_nodelist(tier_dir: &str) -> String {
    format!("{MEMORY_TIERING}/{tier_dir}/nodelist")
}

/// The namespace a libnvdimm dax device (its provider directory) is made from.
pub fn nd_dax_namespace(provider_dir: &str) -> String {
    format!("{provider_dir}/namespace")
}

/// An NVDIMM namespace's `uuid`, stable across boots.
pub fn nd_namespace_uuid(namespace: &str) -> String {
    format!("{ND_DEVICES}/{namespace}/uuid")
}

/// The path of dax device `name` beside `sibling`, another device of the same provider.
pub fn dax_sibling(sibling_canonical: &str, name: &str) -> String {
    let provider = sibling_canonical
        .rsplit_once('/')
        .map_or("", |(provider, _)| provider);
    format!("{provider}/{name}")
}

/// Whether `name` can be used as one path component: not empty, not `.` or `..`, and
/// without `/` or NUL.
pub fn is_single_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Resolves the target of the link at `link` (both kernel paths) into an absolute kernel
/// path, folding `.` and `..`. `None` if the target climbs above `/`.
pub fn resolve_link(link: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let parent = link.rsplit_once('/').map_or("", |(dir, _)| dir);
        parent.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_sysfs_links() {
        assert_eq!(
            resolve_link(
                "/sys/bus/dax/devices/dax0.0",
                "../../../devices/platform/hmem.0/dax0.0"
            )
            .as_deref(),
            Some("/sys/devices/platform/hmem.0/dax0.0")
        );
        assert_eq!(
            resolve_link(
                "/sys/devices/platform/hmem.0/dax0.0/driver",
                "../../../../bus/dax/drivers/kmem"
            )
            .as_deref(),
            Some("/sys/bus/dax/drivers/kmem")
        );
        assert_eq!(resolve_link("/sys/a", "../../../x"), None);
        assert_eq!(
            resolve_link("/sys/a", "/abs/./b").as_deref(),
            Some("/abs/b")
        );
    }

    #[test]
    fn component_names() {
        assert!(is_single_component("dax0.0"));
        for bad in ["", ".", "..", "a/b", "../dax0.0", "a\0"] {
            assert!(!is_single_component(bad), "{bad:?}");
        }
    }
}
