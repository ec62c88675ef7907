//! An executable, deterministic model of the kernel's device-memory hotplug: the memory
//! hotplug core (blocks, zones, `valid_zones`, offlining that migrates, fails and is
//! interrupted), the dax bus with `device_dax` and `kmem` in two flavours (`legacy` 6.12 and
//! `atomic`, the v7 whole-device series), uevents and udev, competing controllers and
//! faults. One seed decides every interleaving and fault.
//!
//! [`Sim`] serves the model through the same [`daxplug_kernel::Kernel`] trait as the real
//! backend, so daxplug runs unchanged against it; it is also the emulated machine users can
//! try daxplug on (`daxplug --sim FILE`).

mod actors;
mod boot;
mod dax;
mod faults;
mod hotplug;
mod invariants;
mod iomem;
mod kstr;
mod machine;
mod presets;
mod rng;
mod sched;
pub mod script;
mod sim;
mod sizing;
mod sysfs;
mod tiering;
mod udev;

pub use boot::BootError;
pub use faults::Faults;
pub use invariants::{Violation, check as check_invariants};
pub use machine::{
    Actor, Caller, DaxDevice, DaxDriver, DevRange, Flavour, Holder, KmemData, KmemState,
    LeakedRange, Machine, MemBlock, NodeSpec, Placement, RESTART, Region, RegionType, Rule,
    StaticResource, Subsystem, UEVENT_LOG, Udev, UeventRecord, rhel_rule,
};
pub use presets::{PRESETS, PresetInfo, UnknownPreset, build as build_preset, scaled};
pub use rng::Rng;
pub use sim::{MachineFile, Sim, StoreError};
pub use sysfs::{DAX_MAJOR, Kind};
pub use tiering::MAX_NODES;
