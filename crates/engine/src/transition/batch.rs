//! Several transitions as one request (`set all`, and the single transitions of `create`
//! and `resize`, which report placement the same way): each device's report, and what they
//! changed in the placement (tiers, demotion, interleave weights) of the devices' nodes,
//! read before and after under the read lock.

use crate::discovery::placement::{self, Placement, PlacementChange, read_placement};
use crate::discovery::topology::Scope;
use crate::discovery::{Detail, discover_with};
use crate::host::Host;
use crate::plan::target::Target;

use super::lock::read_lock_wait;
use super::report::{Options, Report, TransitionError};
use super::set::set;

/// How long a read outside a transition waits for another process's transition to end
/// ([`super::ReadGuard`] says why it waits at all).
pub const READ_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// What a batch of transitions did.
#[derive(Debug)]
pub struct Batch {
    /// One report per device, in the order asked.
    pub reports: Vec<Report>,
    /// What the transitions changed in placement, for the devices still there.
    pub placement: Vec<PlacementChange>,
}

/// The placement before a transition, to compare with after it; none for a dry run, which
/// changes nothing.
pub fn placement_before(host: &dyn Host, dry_run: bool) -> Option<Placement> {
    if dry_run {
        return None;
    }
    let _read = read_lock_wait(host, READ_WAIT);
    read_placement(host.kernel()).ok()
}

/// What changed in the placement of the target nodes of `reports`' devices since
/// `before` (devices that no longer exist are left out).
pub fn placement_since(
    host: &dyn Host,
    reports: &[Report],
    before: Option<&Placement>,
) -> Vec<PlacementChange> {
    let devices: Vec<String> = reports
        .iter()
        .filter(|r| r.end.is_some())
        .map(|r| r.device.clone())
        .collect();
    let Some(before) = before.filter(|_| !devices.is_empty()) else {
        return Vec::new();
    };
    let _read = read_lock_wait(host, READ_WAIT);
    let Ok(topo) = discover_with(host.kernel(), &Scope::Devices(devices), Detail::Counts) else {
        return Vec::new();
    };
    placement::changes(
        before,
        &topo.placement,
        topo.target_nodes(),
        topo.nodes.has_cpu.as_ref(),
    )
}

/// Moves each of `devices` to `target`, one after the other, and reports what that changed
/// in placement.
pub fn set_many(
    host: &dyn Host,
    devices: &[String],
    target: Target,
    opts: &Options,
) -> Result<Batch, TransitionError> {
    let before = placement_before(host, opts.dry_run);
    let mut reports = Vec::with_capacity(devices.len());
    for d in devices {
        reports.push(set(host, d, target, opts)?);
    }
    let placement = placement_since(host, &reports, before.as_ref());
    Ok(Batch { reports, placement })
}
