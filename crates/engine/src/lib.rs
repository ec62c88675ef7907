//! The engine: what daxplug knows and decides, on top of the kernel interface.
//!
//! * [`discover`](mod@discover) reads the machine through a [`daxplug_kernel::Kernel`] into a
//!   [`Topology`] snapshot (the data types of [`topology`]): regions, devices, drivers,
//!   ranges, the blocks of each range, nodes, placement and hotplug policy.
//! * [`observe`] computes each device's observed state from its blocks and `/proc/iomem`,
//!   whatever the kernel's own `state` file claims; [`problems`](mod@problems) says what is wrong with it.
//! * [`plan`](mod@plan) and [`layout`] decide the steps of a change; [`transition`] runs them under the
//!   lock and journal, with rollback and recovery; [`holds`] and [`journal`] keep what lasts
//!   between runs in the run directory.
//! * [`daemon`] applies a [`policy`]; [`doctor`] finds the risks; [`gate`] is the boot gate.

mod bus;
pub mod daemon;
pub mod discover;
pub mod doctor;
mod error;
pub mod gate;
pub mod holds;
pub mod host;
pub mod identity;
pub mod journal;
pub mod layout;
pub mod observe;
pub mod orphans;
pub mod placement;
pub mod plan;
pub mod policy;
pub mod problems;
mod read;
#[cfg(feature = "model")]
pub mod simhost;
pub mod target;
pub mod topology;
pub mod transition;
pub mod udev_rules;
pub mod units;
pub mod write;

pub use discover::{Detail, discover, discover_with};
pub use error::DiscoveryError;
pub use host::Host;
pub use journal::{Journal, JournalError, JournalFile};
pub use layout::LayoutChange;
pub use observe::{BlockCounts, ObservedState};
pub use plan::{BindMethod, BindMethods, Plan, Protocol, Refusal, Step, plan};
pub use problems::{Problem, ProblemCode, format_block_ids, problems};
pub use target::{Target, TargetError};
pub use topology::{
    Block, Device, Driver, IomemRange, KernelAbi, Mapping, Mode, Nodes, Policy, Region, RegionKind,
    Scope, Topology,
};
pub use transition::{
    Goal, NewDevice, Options, Outcome, PhaseTime, Progress, Report, TestHooks, TransitionError,
    change_layout, create, recover, set,
};
