//! A device's identity that survives reboots: what backs it, whatever `daxX.Y` name probe
//! order gave it this time (since Linux 7.1 one range can be `dax0.0` under a CXL region on
//! one boot and `dax6.0` under hmem on the next).

use daxplug_kernel::{Kernel, paths};

use crate::topology::{Device, Topology};

/// The uuid of the NVDIMM namespace behind a libnvdimm dax device: the provider is the nd
/// dax device, whose `namespace` names the namespace, whose `uuid` is stable across boots.
fn nd_namespace_uuid(k: &dyn Kernel, provider: &str) -> Option<String> {
    let ns = k.read(&format!("{provider}/namespace")).ok()?;
    let uuid = k
        .read(&format!("{}/{}/uuid", paths::ND_DEVICES, ns.trim()))
        .ok()?;
    let uuid = uuid.trim();
    (!uuid.is_empty()).then(|| uuid.to_owned())
}

/// The stable identity of what backs a device, independent of its `daxX.Y` name:
/// `hmem:0xSTART-0xEND` for soft-reserved memory, `cxl:regionN` for a CXL region, and for
/// NVDIMM or legacy pmem `nd:UUID` (the namespace's uuid) where sysfs has it, else
/// `nd:regionN`.
pub fn backing(k: &dyn Kernel, topo: &Topology, dev: &Device) -> Option<String> {
    // The region's parent device, as an absolute sysfs path.
    let provider = dev
        .region
        .and_then(|id| topo.regions.iter().find(|r| r.id == id))
        .map(|r| r.path.trim_end_matches("/dax_region").to_owned())?;
    let region = provider
        .split('/')
        .find(|c| c.starts_with("region") && c[6..].bytes().all(|b| b.is_ascii_digit()));
    if provider.contains("ACPI0017") || provider.contains("/decoder") {
        return region.map(|r| format!("cxl:{r}"));
    }
    if provider.contains("ndbus") {
        return Some(nd_namespace_uuid(k, &provider).map_or_else(
            || format!("nd:{}", region.unwrap_or("region")),
            |u| format!("nd:{u}"),
        ));
    }
    dev.mappings
        .first()
        .map(|m| format!("hmem:{:#x}-{:#x}", m.range.start, m.range.end))
}
