//! A device's identity that survives reboots: what backs it, whatever `daxX.Y` name probe
//! order gave it this time (since Linux 7.1 one range can be `dax0.0` under a CXL region on
//! one boot and `dax6.0` under hmem on the next).

use daxplug_kernel::{Kernel, paths};

use daxplug_abi::{Iomem, PhysRange};

use crate::discovery::topology::{Device, Region, Topology};

/// The uuid of the NVDIMM namespace behind a libnvdimm dax device: the provider is the nd
/// dax device, whose `namespace` names the namespace, whose `uuid` is stable across boots.
fn nd_namespace_uuid(k: &dyn Kernel, provider: &str) -> Option<String> {
    let ns = k.read(&paths::nd_dax_namespace(provider)).ok()?;
    let uuid = k.read(&paths::nd_namespace_uuid(ns.trim())).ok()?;
    let uuid = uuid.trim();
    (!uuid.is_empty()).then(|| uuid.to_owned())
}

/// The stable identity of what backs a device's region, independent of its `daxX.Y` name
/// and of how the region is carved: `hmem:0xSTART-0xEND` (the soft-reserved range the
/// region covers) for soft-reserved memory, `cxl:regionN` for a CXL region, and for NVDIMM
/// or legacy pmem `nd:UUID` (the namespace's uuid) where sysfs has it, else `nd:regionN`.
/// Every device carved from one region shares it; a device within its region is told apart
/// by its extent (`match.within`). Reads `/proc/iomem` for hmem; [`backing_in`] takes it.
pub fn backing(k: &dyn Kernel, topo: &Topology, dev: &Device) -> Option<String> {
    let iomem = k
        .read(paths::IOMEM)
        .ok()
        .and_then(|t| Iomem::parse(&t).ok());
    backing_in(k, iomem.as_ref(), topo, dev)
}

/// [`backing`], with `/proc/iomem` already read (`None`, or hidden addresses, when it could
/// not be).
pub fn backing_in(
    k: &dyn Kernel,
    iomem: Option<&Iomem>,
    topo: &Topology,
    dev: &Device,
) -> Option<String> {
    let region = dev
        .region
        .and_then(|id| topo.regions.iter().find(|r| r.id == id))?;
    // The region's parent device, as an absolute sysfs path.
    let provider = paths::region_provider(&region.path).to_owned();
    let region_dir = provider
        .split('/')
        .find(|c| c.starts_with("region") && c[6..].bytes().all(|b| b.is_ascii_digit()));
    if provider.contains("ACPI0017") || provider.contains("/decoder") {
        return region_dir.map(|r| format!("cxl:{r}"));
    }
    if provider.contains("ndbus") {
        return Some(nd_namespace_uuid(k, &provider).map_or_else(
            || format!("nd:{}", region_dir.unwrap_or("region")),
            |u| format!("nd:{u}"),
        ));
    }
    let range = hmem_region_range(iomem, topo, region)?;
    Some(format!("hmem:{:#x}-{:#x}", range.start, range.end))
}

/// The physical range an hmem region covers: the top-level `/proc/iomem` entry (`Soft
/// Reserved`) holding its devices' memory; without a readable `/proc/iomem`, from the
/// lowest address of its devices and the region's size.
fn hmem_region_range(iomem: Option<&Iomem>, topo: &Topology, region: &Region) -> Option<PhysRange> {
    let starts: Vec<u64> = topo
        .devices
        .iter()
        .filter(|d| d.region == Some(region.id))
        .flat_map(|d| d.mappings.iter().map(|m| m.range.start))
        .collect();
    let lowest = starts.iter().min().copied()?;
    if let Some(io) = iomem.filter(|io| !io.addresses_hidden())
        && let Some(top) = io
            .entries()
            .iter()
            .find(|e| e.depth == 0 && e.range.start <= lowest && lowest <= e.range.end)
    {
        return Some(top.range);
    }
    let size = region.size.filter(|s| *s > 0)?;
    Some(PhysRange {
        start: lowest,
        end: lowest + size - 1,
    })
}
