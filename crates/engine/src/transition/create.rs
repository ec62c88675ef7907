//! Creating a device in a dynamic region: `dax_region/create` gives a new zero-sized device,
//! which is then sized and brought to its state by an ordinary journaled transition. If that
//! transition is refused or rolled back, the empty device is deleted again.

use daxplug_kernel::paths;
use std::time::Instant;

use daxplug_abi::DaxName;

use crate::discovery::discover;
use crate::discovery::error::DiscoveryError;
use crate::discovery::observe::ObservedState;
use crate::discovery::topology::{Driver, RegionKind, Scope};
use crate::host::Host;
use crate::plan::layout::{LayoutChange, SUBSECTION, plan_layout};
use crate::plan::target::Target;
use crate::plan::write::Write;
use crate::units;

use super::claim::drop_holds;
use super::execute::plan_lines;
use super::lock::take_lock;
use super::recover::{recover_locked, set_unlocked};
use super::report::{Goal, Options, Outcome, Report, TransitionError, report};

/// What `create` is asked to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewDevice {
    /// Bytes; `None` takes all the region's free space (as much as the alignment allows).
    pub size: Option<u64>,
    /// The alignment to write before the size, if any.
    pub align: Option<u64>,
    /// The state it ends in.
    pub target: Target,
}

/// Creates a device in region `region` as `new` says and brings it to its target.
pub fn create(
    host: &dyn Host,
    region: u32,
    new: NewDevice,
    opts: &Options,
) -> Result<Report, TransitionError> {
    let started = Instant::now();
    let k = host.kernel();
    let topo = discover(k, &Scope::All)?;
    let Some(r) = topo.regions.iter().find(|r| r.id == region) else {
        let known: Vec<String> = topo.regions.iter().map(|r| r.id.to_string()).collect();
        return Err(DiscoveryError::UnknownRegion {
            region,
            present: if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        }
        .into());
    };
    let free = r.available_size;
    let granule = new.align.or(r.align).unwrap_or(SUBSECTION).max(SUBSECTION);
    let size = new.size.unwrap_or_else(|| {
        let f = free.unwrap_or(0);
        f - f % granule
    });
    let change = LayoutChange::Resize {
        size,
        align: new.align,
        target: Some(new.target),
    };
    let goal = Goal::Layout(change);
    let mut rep = report(&format!("region{region}"), goal);
    // Said of the region, not of a device that does not exist yet.
    if new.size == Some(0) {
        rep.reason = Some(
            "a device of size 0 holds no memory: give --size a size, or max for all of the region's free space".to_owned(),
        );
        return Ok(rep);
    }
    if let Some(f) = free
        && size > f
    {
        rep.reason = Some(format!(
            "region {region} has {} free, less than the {} asked for (daxplug list shows each region's free space; --size max takes all of it)",
            units::size(f),
            units::size(size)
        ));
        return Ok(rep);
    }
    if new
        .align
        .is_none_or(|a| crate::plan::layout::VALID_ALIGNS.contains(&a))
        && !size.is_multiple_of(granule)
    {
        rep.reason = Some(format!(
            "{} is not a multiple of region {region}'s alignment ({})",
            units::size(size),
            units::size(granule)
        ));
        return Ok(rep);
    }
    if size == 0 && new.size.is_none() {
        rep.reason = Some(format!(
            "region {region} has no free space{}: shrink or destroy one of its devices first",
            free.filter(|f| *f > 0)
                .map_or_else(String::new, |f| format!(
                    " in whole {} (its {} free is less)",
                    units::size(granule),
                    units::size(f)
                ))
        ));
        return Ok(rep);
    }
    if r.kind == RegionKind::Static {
        rep.reason = Some(format!(
            "region {region} is static (a pmem namespace): it holds the one device the namespace made; change the namespace with ndctl instead"
        ));
        return Ok(rep);
    }
    // The device as it will be right after `create`: the region's lowest free id, unbound,
    // zero-sized; what the rest of the plan is made for.
    let taken = |id: u32| {
        topo.devices
            .iter()
            .any(|d| d.name == DaxName { region, id })
    };
    let id = (0..).find(|i| !taken(*i)).unwrap_or(0);
    let Some(sibling) = topo.devices.iter().find(|d| d.region == Some(region)) else {
        rep.reason = Some(format!(
            "region {region} has no device to read its layout from"
        ));
        return Ok(rep);
    };
    let name = DaxName { region, id };
    let mut fresh = sibling.clone();
    fresh.name = name;
    fresh.path = paths::dax_sibling(&sibling.path, &name.to_string());
    fresh.driver = Driver::None;
    fresh.size = 0;
    fresh.align = r.align.or(sibling.align);
    fresh.kernel_state = None;
    fresh.mappings.clear();
    fresh.iomem.clear();
    fresh.blocks.clear();
    fresh.counts = Default::default();
    fresh.state = ObservedState::Unbound;
    let p = match plan_layout(&topo, &fresh, change, free, opts.force) {
        Ok(p) => p,
        Err(refusal) => {
            rep.reason = Some(refusal.to_string());
            return Ok(rep);
        }
    };
    let create = Write::region_create(&r.path);
    rep.protocol = p.protocol;
    rep.plan = vec![
        create.to_string(),
        format!("read {}/create: the new device's name ({name} now)", r.path),
    ];
    rep.plan.extend(plan_lines(&p, &fresh, &topo));
    rep.start_size = Some(0);
    rep.start = Some(ObservedState::Unbound);
    if opts.dry_run {
        rep.device = name.to_string();
        rep.outcome = Outcome::DryRun;
        return Ok(rep);
    }
    let mut lap = started;
    rep.lap("observe and plan", &mut lap);
    let deadline = opts.timeout.map(|t| started + t);
    let lock = take_lock(host, deadline, opts.on_wait.as_deref())?;
    rep.lap("lock", &mut lap);
    let Some(_lock) = lock else {
        rep.reason = Some(
            "another daxplug (or the daxplug daemon) holds the lock: try again when it is done"
                .to_owned(),
        );
        return Ok(rep);
    };
    let recovered = recover_locked(host, opts)?;
    if let Err(e) = k.write(&create.path, &create.value) {
        rep.outcome = Outcome::Failed;
        rep.reason = Some(format!("{create}: {}", e.errno));
        rep.recovered = recovered;
        return Ok(rep);
    }
    let made = k
        .read(&paths::region_attr(&r.path, "create"))
        .ok()
        .and_then(|t| t.trim().parse::<DaxName>().ok());
    let Some(made) = made else {
        rep.outcome = Outcome::Failed;
        rep.reason = Some(format!(
            "{create} succeeded but {}/create names no device",
            r.path
        ));
        return Ok(rep);
    };
    // A hold left on this name belonged to a device that is gone (destroyed by another
    // tool): it must not land on the new one.
    let mut stale = report(&made.to_string(), goal);
    drop_holds(
        host,
        made,
        "it was left by an earlier device of that name",
        &mut stale,
    );
    let mut sized = set_unlocked(host, made, goal, opts, opts.force)?;
    sized.actions.splice(0..0, stale.actions);
    sized.recovered = recovered;
    sized.start = Some(ObservedState::Unbound);
    sized.actions.insert(0, create.to_string());
    sized.plan = rep.plan;
    sized.phases.splice(0..0, rep.phases);
    if sized.outcome == Outcome::Done {
        super::claim::claim_for_operator(host, made, "create", &mut sized);
    }
    if matches!(sized.outcome, Outcome::Refused | Outcome::RolledBack) {
        // Nothing of it is wanted: the empty device goes again.
        let delete = Write::region_delete(&fresh.path, made);
        let deleted = k.write(&delete.path, &delete.value);
        sized.actions.push(match deleted {
            Ok(()) => {
                // Nothing is left of it: no end state, no size.
                sized.end = None;
                sized.end_size = None;
                delete.to_string()
            }
            Err(e) => format!("{delete}: {}", e.errno),
        });
    }
    sized.total_millis = started.elapsed().as_secs_f64() * 1e3;
    Ok(sized)
}
