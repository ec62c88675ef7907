//! Reading the device a transition works on: a one-device discovery, re-reads, and the
//! stable observation the verdict is made from.

use daxplug_abi::DaxName;
use daxplug_kernel::Kernel;

use crate::error::DiscoveryError;
use crate::topology::{Device, Topology};

/// The observed device of a one-device topology.
pub(super) fn with_device(
    topo: Topology,
    device: DaxName,
) -> Result<(Topology, Device), DiscoveryError> {
    let dev = topo
        .devices
        .first()
        .cloned()
        .ok_or_else(|| DiscoveryError::UnknownDevice {
            name: device.to_string(),
            present: "none".to_owned(),
        })?;
    Ok((topo, dev))
}

pub(super) fn observe_device(
    k: &dyn Kernel,
    device: DaxName,
) -> Result<(Topology, Device), DiscoveryError> {
    // What a plan needs: the device, its region, whether kmem is loaded, and the
    // auto-online policy its commands mention; not the node lists or meminfo of a full
    // discovery.
    crate::discover::require_memory_hotplug(k)?;
    let mut topo = crate::discover::discover_device(k, &device.to_string())?;
    topo.policy.auto_online_blocks = crate::discover::read_auto_online_blocks(k)?;
    // Which zone plain `online` gives: the plan warns before it lands in a kernel zone.
    topo.policy.online_policy = k
        .read(daxplug_kernel::paths::ONLINE_POLICY)
        .ok()
        .and_then(|t| t.parse().ok());
    topo.policy.auto_movable_numa_aware = k
        .read(daxplug_kernel::paths::AUTO_MOVABLE_NUMA_AWARE)
        .ok()
        .and_then(|t| daxplug_abi::parse_param_bool(&t).ok());
    with_device(topo, device)
}

/// The device alone (no machine-wide policy or nodes): what a transition re-reads to
/// verify its steps.
pub(super) fn reobserve_device(
    k: &dyn Kernel,
    device: DaxName,
) -> Result<(Topology, Device), DiscoveryError> {
    with_device(
        crate::discover::discover_device(k, &device.to_string())?,
        device,
    )
}

/// Reads the device until two reads in a row agree, so that the verdict is not drawn from
/// a read torn by another controller acting between two block reads (bounded). `seen`, a
/// read made just before with nothing written since, counts as the first.
pub(super) fn stable_observation(
    k: &dyn Kernel,
    device: DaxName,
    seen: Option<Device>,
) -> Result<Device, DiscoveryError> {
    let mut dev = match seen {
        Some(d) => d,
        None => reobserve_device(k, device)?.1,
    };
    for _ in 0..5 {
        let (_, again) = reobserve_device(k, device)?;
        let same = again.state == dev.state && again.blocks == dev.blocks;
        dev = again;
        if same {
            break;
        }
    }
    Ok(dev)
}
