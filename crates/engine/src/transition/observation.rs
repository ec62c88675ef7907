//! Reading the device a transition works on: a one-device discovery, re-reads, and the
//! stable observation the verdict is made from.

use daxplug_abi::DaxName;
use daxplug_kernel::Kernel;

use crate::discovery::error::DiscoveryError;
use crate::discovery::topology::{Device, Topology};

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
    crate::discovery::require_memory_hotplug(k)?;
    let auto_online_blocks = crate::discovery::read_auto_online_blocks(k)?;
    // Which zone plain `online` gives: the plan warns before it lands in a kernel zone.
    let online_policy = k
        .read(daxplug_kernel::paths::ONLINE_POLICY)
        .ok()
        .and_then(|t| t.parse().ok());
    let auto_movable_numa_aware = k
        .read(daxplug_kernel::paths::AUTO_MOVABLE_NUMA_AWARE)
        .ok()
        .and_then(|t| daxplug_abi::parse_param_bool(&t).ok());
    // Fenced, and read last: a plan, and the report of a refusal or of nothing to do, are
    // drawn from it, with no other read after it that would let the device change unseen.
    let (mut topo, _) = fenced(k, device, || {
        crate::discovery::discover_device(k, &device.to_string())
    })?;
    topo.policy.auto_online_blocks = auto_online_blocks;
    topo.policy.online_policy = online_policy;
    topo.policy.auto_movable_numa_aware = auto_movable_numa_aware;
    with_device(topo, device)
}

/// The device alone (no machine-wide policy or nodes): what a transition re-reads to
/// verify its steps.
pub(super) fn reobserve_device(
    k: &dyn Kernel,
    device: DaxName,
) -> Result<(Topology, Device), DiscoveryError> {
    with_device(
        crate::discovery::discover_device(k, &device.to_string())?,
        device,
    )
}

/// The kernel's uevent number, where the tree has it (a copied tree may not).
fn uevent_seqnum(k: &dyn Kernel) -> Option<u64> {
    k.read(daxplug_kernel::paths::UEVENT_SEQNUM)
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// How many times a read is retried while events keep coming.
const FENCE_TRIES: usize = 8;

/// Whether a uevent message can change what `device`'s files say: a block going online or
/// offline, added or removed (any block: a device's blocks are known only after the
/// read), or the device itself bound, unbound, added or removed. `change` events (the
/// kernel's, `udevadm trigger`'s) change neither a block's state nor a driver.
fn concerns(msg: &[u8], device: DaxName) -> bool {
    let Ok(e) = daxplug_abi::Uevent::parse_message(msg) else {
        return false;
    };
    let devpath = e.get("DEVPATH").unwrap_or_default();
    e.get("ACTION").is_some_and(|a| a != "change")
        && (devpath.starts_with("/devices/system/memory/memory")
            || devpath.rsplit('/').next() == Some(device.to_string().as_str()))
}

/// Runs `read` fenced against changes made while it reads the files one by one, so that
/// the result is one snapshot of the device, not a mix of before and after:
///
/// * where the kernel's uevents can be watched (the running kernel's netlink group, the
///   model), no event concerning the device came during the read;
/// * otherwise, `/sys/kernel/uevent_seqnum` did not move (every online, offline, bind and
///   unbind sends a uevent).
///
/// Returns the read and whether it was fenced so (not when neither is there, or events
/// never stopped coming).
fn fenced<T>(
    k: &dyn Kernel,
    device: DaxName,
    mut read: impl FnMut() -> Result<T, DiscoveryError>,
) -> Result<(T, bool), DiscoveryError> {
    let mut last = None;
    if let Some(mut watch) = k.watch_uevents() {
        for _ in 0..FENCE_TRIES {
            let got = read()?;
            match watch.seen() {
                daxplug_kernel::Seen::Messages(m) if !m.iter().any(|e| concerns(e, device)) => {
                    return Ok((got, true));
                }
                _ => last = Some(got),
            }
        }
    } else {
        for _ in 0..FENCE_TRIES {
            let Some(before) = uevent_seqnum(k) else {
                return Ok((read()?, false));
            };
            let got = read()?;
            if uevent_seqnum(k) == Some(before) {
                return Ok((got, true));
            }
            last = Some(got);
        }
    }
    match last {
        Some(got) => Ok((got, false)),
        None => Ok((read()?, false)),
    }
}

/// The device as the verdict sees it: a read fenced by the uevent number (see
/// [`fenced`]); where the number is missing or a storm of events keeps it moving, reads
/// until two in a row agree (bounded). `seen`, a read made just before with nothing
/// written since, counts as the first of those.
pub(super) fn stable_observation(
    k: &dyn Kernel,
    device: DaxName,
    seen: Option<Device>,
) -> Result<Device, DiscoveryError> {
    let (mut dev, true_snapshot) = fenced(k, device, || Ok(reobserve_device(k, device)?.1))?;
    if true_snapshot {
        return Ok(dev);
    }
    if let Some(seen) = seen
        && seen.state == dev.state
        && seen.blocks == dev.blocks
    {
        return Ok(dev);
    }
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
