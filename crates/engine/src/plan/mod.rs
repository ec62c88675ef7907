//! Planning a transition: which protocol, and which steps in which order.

pub mod layout;
pub mod policy;
pub mod target;
pub mod write;

use daxplug_abi::token_enum;
use daxplug_abi::{
    BoolParam, BusAutoprobe, DaxDriver, DaxName, DaxState, OnlinePolicy, OnlineType, Zone,
};
use daxplug_kernel::paths;
use serde::{Deserialize, Serialize};

use crate::discovery::observe::ObservedState;
use crate::discovery::topology::{Device, Driver, RegionKind, Topology};
use crate::plan::target::Target;
pub use crate::plan::write::BindMethod;
use crate::plan::write::{DriverFile, Write};

token_enum! {
    /// How the device is switched.
    Protocol, "a protocol" {
        /// The kernel's `daxX.Y/state` file does the whole-device switch.
        Native = "native",
        /// No `state` file: daxplug's own protocol (lock, policy-at-bind hot-add, offline
        /// with rollback, fenced commit, journal).
        Fallback = "fallback",
        /// Nothing to do.
        None = "none",
    }
}

/// What the fallback protocol sets while it offlines movable memory: a block another
/// controller onlines with plain `online` then lands in `Movable`, on a CPU-less node too.
pub const GUARDED_POLICY: (OnlinePolicy, BoolParam) = (OnlinePolicy::AutoMovable, BoolParam::N);

/// One step of a transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Native: write the kernel's `state` file.
    WriteState {
        /// The value written.
        value: DaxState,
    },
    /// Unbind a driver from a device that holds no memory blocks (device_dax, or kmem on an
    /// unplugged device).
    Unbind {
        /// `device_dax` or `kmem`.
        driver: DaxDriver,
    },
    /// Bind device_dax.
    BindDeviceDax { method: BindMethod },
    /// Load a driver's module (kmem, fsdev_dax) with the dax bus's `drivers_autoprobe` off,
    /// so that loading it binds no device (kmem's auto-probe would online every matching
    /// device's memory under the default policy); the setting is restored right after.
    LoadDriver { driver: DaxDriver },
    /// Bind fsdev_dax (always through `new_id`: it matches no region by type).
    BindFsdev,
    /// Hot-add with the online type applied inside the kernel's add: set
    /// `auto_online_blocks` to the type, bind kmem, restore `auto_online_blocks`.
    HotAdd {
        /// The online type.
        online_type: OnlineType,
        /// How kmem is bound.
        method: BindMethod,
    },
    /// Check every block is online in the right zone; online or move the stragglers.
    Repair {
        /// The online type asked for.
        online_type: OnlineType,
    },
    /// Offline every online block, remembering its zone; offline again, within a bound,
    /// any block someone else onlines meanwhile.
    OfflineBlocks,
    /// Stop udev's exec queue, verify every block offline, unbind kmem, verify the blocks and
    /// the `System RAM (kmem)` range are gone, restart the queue.
    FencedUnbind,
    /// Write the (unbound) device's `align`.
    SetAlign {
        /// Bytes: a page, 2 MiB or 1 GiB.
        align: u64,
    },
    /// Write the (unbound) device's `size`: grown from its region's free space, or shrunk
    /// from its end.
    Resize { size: u64 },
    /// Remove the (unbound, zero-sized) device from its region (`dax_region/delete`).
    Delete,
}

impl Step {
    /// The commands this step amounts to, for `--dry-run` (blocks as they are now).
    pub fn commands(&self, dev: &Device, aob: Option<OnlineType>) -> Vec<String> {
        let name = dev.name;
        let drv = |d: DaxDriver, file: DriverFile| Write::driver(d, file, name).to_string();
        match self {
            Step::WriteState { value } => vec![Write::dax_state(name, *value).to_string()],
            Step::Unbind { driver } => vec![drv(*driver, DriverFile::Unbind)],
            Step::BindDeviceDax { method } => vec![drv(DaxDriver::DeviceDax, (*method).into())],
            Step::HotAdd {
                online_type,
                method,
            } => {
                let restore = aob.map_or_else(
                    || format!("echo (previous value) > {}", paths::AUTO_ONLINE_BLOCKS),
                    |a| Write::auto_online_blocks(a).to_string(),
                );
                vec![
                    Write::auto_online_blocks(*online_type).to_string(),
                    drv(DaxDriver::Kmem, (*method).into()),
                    restore,
                    "verify: kmem bound".to_owned(),
                ]
            }
            Step::LoadDriver { driver } => vec![
                format!(
                    "{}   (if it is 1; restored right after)",
                    Write::drivers_autoprobe(BusAutoprobe::Off)
                ),
                format!("modprobe {driver}"),
                Write::drivers_autoprobe(BusAutoprobe::On).to_string(),
                format!("verify: {}/{driver} exists", paths::DAX_DRIVERS),
            ],
            Step::BindFsdev => vec![
                drv(DaxDriver::FsdevDax, DriverFile::NewId),
                "verify: fsdev_dax bound".to_owned(),
            ],
            Step::Repair { online_type } => vec![format!(
                "verify: every block online as {online_type}; write {online_type} to any block left offline, move any in the wrong zone"
            )],
            Step::OfflineBlocks => {
                let mut v = Vec::new();
                if dev.counts.movable > 0 {
                    let [p, n] = Write::online_policy(GUARDED_POLICY);
                    v.push(format!("{p}; {n}   (restored at the end)"));
                }
                v.extend(
                    dev.online_blocks()
                        .map(|b| Write::block_state(b.id, OnlineType::Offline).to_string()),
                );
                v.push("verify: every block offline (offline again, with udev's exec queue held, any block re-onlined meanwhile; a bounded number of times)".to_owned());
                v
            }
            Step::SetAlign { align } => vec![Write::device_align(name, *align).to_string()],
            Step::Resize { size } => vec![
                Write::device_size(name, *size).to_string(),
                format!("verify: {name} is {size} bytes"),
            ],
            Step::Delete => vec![Write::region_delete(&dev.path, name).to_string()],
            Step::FencedUnbind => vec![
                "udevadm control --stop-exec-queue   (if udev runs)".to_owned(),
                "verify: every block offline".to_owned(),
                drv(DaxDriver::Kmem, DriverFile::Unbind),
                "verify: no block and no System RAM (kmem) range of the device left".to_owned(),
                "udevadm control --start-exec-queue   (always)".to_owned(),
            ],
        }
    }

    /// Whether the step changes the device irreversibly (after it, a crashed transition is
    /// finished rather than rolled back).
    pub fn commits(&self) -> bool {
        matches!(
            self,
            Step::WriteState { .. } | Step::FencedUnbind | Step::HotAdd { .. } | Step::Delete
        )
    }
}

/// Why a transition is refused before anything is done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The kernel leaked the device's range.
    #[error(
        "{device} is stuck: {detail} Nothing can change it until reboot, so daxplug leaves it alone."
    )]
    Stuck {
        device: String,
        /// Which blocks and ranges remain.
        detail: String,
    },
    /// A driver daxplug does not manage.
    #[error(
        "{device} is bound to {driver}, which daxplug does not manage: to hand it back, unbind it from that driver first (echo {device} > /sys/bus/dax/drivers/{driver}/unbind)"
    )]
    OtherDriver { device: String, driver: String },
    /// A safety check that `--force` overrides.
    #[error("{0}")]
    NeedsForce(String),
    /// A device of size 0: no driver binds to it.
    #[error(
        "{0} has no memory (size 0), so no driver can bind to it: give it a size first (daxplug resize {0} SIZE), or destroy it"
    )]
    Empty(String),
    /// A device or region whose extent cannot change as asked (see [`crate::plan::layout`]).
    #[error("{0}")]
    Layout(String),
}

impl Refusal {
    /// The refusal of a stuck device, with what the kernel leaked.
    pub(crate) fn stuck(dev: &Device) -> Self {
        let detail = crate::discovery::problems::problems(dev)
            .into_iter()
            .find(|p| p.code == crate::discovery::problems::ProblemCode::Stuck)
            .map_or_else(String::new, |p| p.message);
        Refusal::Stuck {
            device: dev.name.to_string(),
            detail,
        }
    }
}

/// A planned transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub device: DaxName,
    /// Its observed state now.
    pub start: ObservedState,
    /// The state asked for.
    pub target: Target,
    /// Native or fallback.
    pub protocol: Protocol,
    /// Steps in order.
    pub steps: Vec<Step>,
    /// How kmem and device_dax bind this device, decided once from the observation the
    /// plan was made from (the runner and its undo steps use them as they are).
    pub bind_methods: BindMethods,
}

/// How each driver binds a device: facts of its region (static or dynamic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMethods {
    /// kmem's.
    pub kmem: BindMethod,
    /// device_dax's.
    pub device_dax: BindMethod,
}

impl BindMethods {
    /// The methods for `dev` in `topo`.
    pub fn of(topo: &Topology, dev: &Device) -> Self {
        BindMethods {
            kmem: kmem_method(topo, dev),
            device_dax: devdax_method(topo, dev),
        }
    }
}

/// How kmem binds to `dev`: by type on a dynamic (kmem-type) region, `new_id` on a static one.
fn kmem_method(topo: &Topology, dev: &Device) -> BindMethod {
    match region_kind(topo, dev) {
        Some(RegionKind::Static) => BindMethod::NewId,
        _ => BindMethod::Bind,
    }
}

/// How device_dax binds to `dev`: by type on a static region, `new_id` on a dynamic one.
fn devdax_method(topo: &Topology, dev: &Device) -> BindMethod {
    match region_kind(topo, dev) {
        Some(RegionKind::Static) => BindMethod::Bind,
        _ => BindMethod::NewId,
    }
}

/// The zone plain `online` would put `dev`'s memory in, if daxplug can tell: the zone
/// already online blocks have (the repair keeps it), else the first zone an offline block's
/// `valid_zones` lists (the one the kernel picks), else, for memory still to be added, the
/// policy's: `Movable` under auto-movable when it is not NUMA-aware (the NUMA-aware ratio
/// gives a CPU-less node without kernel memory a kernel zone), a kernel zone under
/// contig-zones (the default). When in doubt, a kernel zone: the refusal is the safe side.
pub fn plain_online_zone(topo: &Topology, dev: &Device) -> Option<Zone> {
    let c = &dev.counts;
    if c.online > 0 && c.normal == 0 {
        return Some(Zone::Movable);
    }
    if c.online > 0 && c.movable == 0 {
        return Some(Zone::Normal);
    }
    if let Some(z) = dev
        .blocks
        .iter()
        .filter(|b| b.state == daxplug_abi::BlockState::Offline)
        .filter_map(|b| b.valid_zones.as_ref()?.zones().first().copied())
        .find(|z| *z != Zone::Movable)
        .or_else(|| (c.offline > 0).then_some(Zone::Movable))
    {
        return Some(z);
    }
    match (
        topo.policy.online_policy,
        topo.policy.auto_movable_numa_aware,
    ) {
        (Some(OnlinePolicy::AutoMovable), Some(false)) => Some(Zone::Movable),
        _ => Some(Zone::Normal),
    }
}

/// The smallest safe change for a kmem device some of whose blocks are offline while the
/// online ones are already where `t` wants them: online the offline ones into that zone
/// (as `daxctl online-memory` would), and nothing else — not a release and re-add that
/// migrates every healthy block. `None` when that cannot give `t`: blocks missing or going
/// offline, online blocks in the other zone class, or a kernel whose `daxX.Y/state` does the
/// whole device in one write (unless the state is stale, blocks changed behind it).
fn repair_only(dev: &Device, t: OnlineType) -> Option<OnlineType> {
    let c = &dev.counts;
    if c.total != c.span || c.total == 0 || c.going_offline > 0 || c.online == c.total {
        return None;
    }
    if dev.kernel_state.is_some() && !dev.state_disagrees() {
        return None;
    }
    match t {
        OnlineType::OnlineMovable => (c.normal == 0).then_some(OnlineType::OnlineMovable),
        OnlineType::OnlineKernel => (c.movable == 0).then_some(OnlineType::OnlineKernel),
        // Plain `online`: the zone the online blocks already have, if they agree.
        _ if c.online > 0 && c.normal == 0 => Some(OnlineType::OnlineMovable),
        _ if c.online > 0 && c.movable == 0 => Some(OnlineType::OnlineKernel),
        _ => None,
    }
}

/// Loading the driver `target` needs (kmem, fsdev_dax) when it is not loaded: the plan's
/// first step, so that a module that will not load leaves the device as it was.
pub(crate) fn load_driver_first(topo: &Topology, target: Target) -> Option<Step> {
    match target {
        Target::Online(_) if !topo.kmem_loaded => Some(Step::LoadDriver {
            driver: DaxDriver::Kmem,
        }),
        Target::Famfs if !topo.fsdev_loaded => Some(Step::LoadDriver {
            driver: DaxDriver::FsdevDax,
        }),
        _ => None,
    }
}

/// The steps that bind an unbound device for `target`: kmem with the online type applied
/// during the add and its zones repaired, device_dax, or nothing for `unplugged`.
pub(crate) fn bind_for(target: Target, methods: BindMethods) -> Vec<Step> {
    match target {
        Target::Online(t) => vec![
            Step::HotAdd {
                online_type: t,
                method: methods.kmem,
            },
            Step::Repair { online_type: t },
        ],
        Target::Devdax => vec![Step::BindDeviceDax {
            method: methods.device_dax,
        }],
        Target::Famfs => vec![Step::BindFsdev],
        Target::Unplugged => Vec::new(),
    }
}

pub(crate) fn region_kind(topo: &Topology, dev: &Device) -> Option<RegionKind> {
    dev.region
        .and_then(|id| topo.regions.iter().find(|r| r.id == id))
        .map(|r| r.kind)
}

/// The checks `--force` passes, the same for every command that can move a device's memory
/// (`set`, and `create` or `resize` with `--state`): leaving famfs, a kernel zone asked
/// for, or a kernel zone the kernel would pick for plain `online`; and no memory to online.
pub(crate) fn check_safety(
    topo: &Topology,
    dev: &Device,
    target: Target,
    force: bool,
) -> Result<(), Refusal> {
    if dev.driver == Driver::FsdevDax && !force {
        return Err(Refusal::NeedsForce(format!(
            "{} is bound to fsdev_dax (famfs): a famfs file system on it loses its memory when the driver lets go: pass --force to move it",
            dev.name
        )));
    }
    if target == Target::Online(OnlineType::OnlineKernel) && !force {
        return Err(Refusal::NeedsForce(format!(
            "online_kernel puts {}'s memory in a kernel zone, where kernel allocations usually keep it from ever going offline again without a reboot: pass --force to accept that",
            dev.name
        )));
    }
    if target == Target::Online(OnlineType::Online)
        && !force
        && let Some(zone) = plain_online_zone(topo, dev)
        && zone != Zone::Movable
    {
        return Err(Refusal::NeedsForce(format!(
            "online lets the kernel pick the zone, and for {} it would pick {zone}{}: a kernel zone, where kernel allocations usually keep memory from ever going offline again. Ask for online_movable, or pass --force to accept {zone}",
            dev.name,
            topo.policy
                .online_policy
                .map_or_else(String::new, |p| format!(" (online_policy={p})"))
        )));
    }
    Ok(())
}

/// Plans moving `dev` to `target`. `force` passes the safety checks.
pub fn plan(topo: &Topology, dev: &Device, target: Target, force: bool) -> Result<Plan, Refusal> {
    let start = dev.state;
    let mut plan = Plan {
        device: dev.name,
        start,
        target,
        protocol: Protocol::None,
        steps: Vec::new(),
        bind_methods: BindMethods::of(topo, dev),
    };
    if start == ObservedState::Stuck {
        return Err(Refusal::stuck(dev));
    }
    if let Driver::Other(driver) = &dev.driver {
        return Err(Refusal::OtherDriver {
            device: dev.name.to_string(),
            driver: driver.clone(),
        });
    }
    if target.satisfied_by(start) {
        return Ok(plan);
    }
    if dev.size == 0 && target != Target::Unplugged {
        return Err(Refusal::Empty(dev.name.to_string()));
    }
    check_safety(topo, dev, target, force)?;
    if let (Driver::Kmem, Target::Online(t)) = (&dev.driver, target)
        && let Some(write) = repair_only(dev, t)
    {
        plan.protocol = Protocol::Fallback;
        plan.steps.push(Step::Repair { online_type: write });
        return Ok(plan);
    }
    let steps = &mut plan.steps;
    match dev.driver {
        Driver::None | Driver::DeviceDax | Driver::FsdevDax => {
            plan.protocol = Protocol::Fallback;
            steps.extend(load_driver_first(topo, target));
            steps.extend(
                dev.driver
                    .dax_driver()
                    .map(|driver| Step::Unbind { driver }),
            );
            steps.extend(bind_for(target, plan.bind_methods));
        }
        Driver::Kmem if dev.kernel_state.is_some() => {
            plan.protocol = Protocol::Native;
            if dev.kernel_state != Some(daxplug_abi::DaxState::Unplugged)
                || target == Target::Unplugged
            {
                steps.push(Step::WriteState {
                    value: DaxState::Unplugged,
                });
            }
            match target {
                Target::Online(t) => steps.push(Step::WriteState {
                    value: DaxState::from(t),
                }),
                Target::Devdax | Target::Famfs => {
                    steps.extend(load_driver_first(topo, target));
                    steps.push(Step::Unbind {
                        driver: DaxDriver::Kmem,
                    });
                    steps.extend(bind_for(target, plan.bind_methods));
                }
                Target::Unplugged => {}
            }
        }
        Driver::Kmem => {
            plan.protocol = Protocol::Fallback;
            steps.extend(load_driver_first(topo, target));
            steps.push(Step::OfflineBlocks);
            steps.push(Step::FencedUnbind);
            steps.extend(bind_for(target, plan.bind_methods));
        }
        Driver::Other(_) => {}
    }
    Ok(plan)
}
