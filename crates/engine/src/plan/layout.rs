//! Planning changes to a device's extent rather than its state: sizing it (growing into
//! its region's free space, shrinking from its end, its alignment first), destroying it, and
//! bringing a device just created to a state. Only a device of a dynamic region (hmem, CXL)
//! can change, and only while its memory is out of the system.

use crate::discovery::observe::ObservedState;
use crate::discovery::topology::{Device, Driver, RegionKind, Topology};
use crate::plan::target::Target;
use crate::plan::{
    BindMethods, Plan, Protocol, Refusal, Step, bind_for, check_safety, load_driver_first,
    region_kind,
};

/// The smallest granule a device's size changes by: a 2 MiB memory subsection.
pub const SUBSECTION: u64 = 2 << 20;
/// The alignments a device takes: a page, 2 MiB, 1 GiB.
pub const VALID_ALIGNS: [u64; 3] = [4096, 2 << 20, 1 << 30];

/// A change of a device's extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutChange {
    /// Give the device `size` bytes (with `align` written first, if given), then bring it
    /// to `target`.
    Resize {
        size: u64,
        /// Bytes: one of [`VALID_ALIGNS`].
        align: Option<u64>,
        /// The state it ends in; `None` keeps its mode (devdax stays devdax, famfs famfs;
        /// unbound, or kmem with no memory, ends unbound).
        target: Option<Target>,
    },
    /// Size 0, then out of the region. The region's device 0 stays, at size 0: the kernel
    /// keeps it so that the bus is never empty while the region exists.
    Destroy,
}

use crate::units::size as bytes;

/// The state a device is in for the purpose of a layout change: the mode it keeps after a
/// resize (`devdax` stays devdax; unbound, or kmem with no memory, ends unbound).
fn kept_target(dev: &Device) -> Target {
    match dev.state {
        ObservedState::Devdax => Target::Devdax,
        ObservedState::Famfs => Target::Famfs,
        _ => Target::Unplugged,
    }
}

/// Plans `change` for `dev`. `available` is its region's free space (`available_size`).
pub fn plan_layout(
    topo: &Topology,
    dev: &Device,
    change: LayoutChange,
    available: Option<u64>,
    force: bool,
) -> Result<Plan, Refusal> {
    let name = dev.name;
    let refuse = |why: String| Err(Refusal::Layout(why));
    match dev.state {
        ObservedState::Stuck => return Err(Refusal::stuck(dev)),
        ObservedState::Unbound
        | ObservedState::Devdax
        | ObservedState::Famfs
        | ObservedState::Unplugged => {}
        s => {
            return refuse(format!(
                "{name} is {s}: its memory is in the system; take it out first (daxplug set {name} unplugged, or devdax), then change its size"
            ));
        }
    }
    if let Driver::Other(driver) = &dev.driver {
        return Err(Refusal::OtherDriver {
            device: name.to_string(),
            driver: driver.clone(),
        });
    }
    match region_kind(topo, dev) {
        Some(RegionKind::Dynamic) => {}
        Some(RegionKind::Static) => {
            return refuse(format!(
                "{name} belongs to region {}, a static region (a pmem namespace): its devices are as the namespace made them; change the namespace with ndctl instead",
                dev.region.map_or_else(|| "?".to_owned(), |r| r.to_string())
            ));
        }
        None => return refuse(format!("{name}'s region could not be read")),
    }
    let methods = BindMethods::of(topo, dev);
    let (target, mut changes) = match change {
        LayoutChange::Resize {
            size,
            align,
            target,
        } => {
            let target = target.unwrap_or_else(|| kept_target(dev));
            if size == 0 {
                return refuse(format!(
                    "a size of 0 leaves {name} with no memory: to remove a device, use daxplug destroy {name}"
                ));
            }
            if let Some(a) = align
                && !VALID_ALIGNS.contains(&a)
            {
                return refuse(format!(
                    "an alignment of {} is not one the kernel takes: 4 KiB, 2 MiB or 1 GiB",
                    bytes(a)
                ));
            }
            let granule = align.or(dev.align).unwrap_or(SUBSECTION).max(SUBSECTION);
            if !size.is_multiple_of(granule) {
                return refuse(format!(
                    "{} is not a multiple of {name}'s alignment ({})",
                    bytes(size),
                    bytes(granule)
                ));
            }
            let grow = size.saturating_sub(dev.size);
            if let Some(free) = available
                && grow > free
            {
                return refuse(format!(
                    "{name} cannot grow by {}: its region has {} free",
                    bytes(grow),
                    bytes(free)
                ));
            }
            let mut steps = Vec::new();
            if let Some(a) = align.filter(|a| Some(*a) != dev.align) {
                steps.push(Step::SetAlign { align: a });
            }
            if size != dev.size {
                steps.push(Step::Resize { size });
            }
            if steps.is_empty() && target.satisfied_by(dev.state) {
                return Ok(plan_of(dev, target, methods, Vec::new()));
            }
            // The same checks as `set`: a device sized here and brought online gets no
            // kernel zone, and leaves famfs, without --force.
            if matches!(target, Target::Online(_)) {
                check_safety(topo, dev, target, force)?;
            }
            steps.extend(bind_for(target, methods));
            (target, steps)
        }
        LayoutChange::Destroy => {
            let mut steps = Vec::new();
            if dev.size > 0 {
                steps.push(Step::Resize { size: 0 });
            }
            if name.id != 0 {
                steps.push(Step::Delete);
            }
            (Target::Unplugged, steps)
        }
    };
    // Out of its driver first: the kernel changes only an unbound device.
    let mut steps: Vec<Step> = load_driver_first(topo, target).into_iter().collect();
    steps.extend(
        dev.driver
            .dax_driver()
            .map(|driver| Step::Unbind { driver }),
    );
    steps.append(&mut changes);
    Ok(plan_of(dev, target, methods, steps))
}

fn plan_of(dev: &Device, target: Target, methods: BindMethods, steps: Vec<Step>) -> Plan {
    Plan {
        device: dev.name,
        start: dev.state,
        target,
        protocol: if steps.is_empty() {
            Protocol::None
        } else {
            Protocol::Fallback
        },
        steps,
        bind_methods: methods,
    }
}
