//! The engine: what daxplug knows and decides, on top of the kernel interface. Its wings form
//! a stack; each uses only the wings below it:
//!
//! ```text
//! units, host  <-  discovery  <-  plan  <-  rundir, gate  <-  transition  <-  daemon  <-  doctor
//! ```
//!
//! * [`discovery`] reads the machine through a [`daxplug_kernel::Kernel`] into a [`Topology`]
//!   snapshot: regions, devices, drivers, ranges, the blocks of each range, nodes, placement
//!   and hotplug policy; it computes each device's observed state from its blocks and
//!   `/proc/iomem`, whatever the kernel's own `state` file claims, and says what is wrong.
//! * [`plan`] decides the steps of a change (and [`plan::policy`] which target a rule gives
//!   a device); [`transition`] runs them under the lock and journal, with rollback and
//!   recovery; [`rundir`] keeps what lasts between runs; [`gate`] is the boot gate.
//! * [`host`] is what a transition needs besides sysfs; [`daemon`] applies a policy;
//!   [`doctor`] finds the risks.

pub mod daemon;
pub mod discovery;
pub mod doctor;
pub mod gate;
pub mod host;
pub mod plan;
pub mod rundir;
pub mod transition;
pub mod units;

pub use discovery::error::DiscoveryError;
pub use discovery::observe::{BlockCounts, ObservedState};
pub use discovery::problems::{Problem, ProblemCode, format_block_ids, problems};
pub use discovery::topology::{
    Block, Device, Driver, IomemRange, KernelAbi, Mapping, Mode, Nodes, Policy, Region, RegionKind,
    Scope, Topology,
};
pub use discovery::{Detail, discover, discover_with};
pub use host::Host;
pub use plan::layout::LayoutChange;
pub use plan::target::{Target, TargetError};
pub use plan::{BindMethod, BindMethods, Plan, Protocol, Refusal, Step, plan};
pub use rundir::journal::{Journal, JournalError, JournalFile};
pub use transition::{
    Batch, Goal, NewDevice, Options, Outcome, PhaseTime, Progress, Report, TestHooks,
    TransitionError, change_layout, create, placement_before, placement_since, recover, set,
    set_many,
};
