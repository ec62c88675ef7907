//! The engine: what daxplug knows and decides, on top of the kernel interface.
//!
//! * [`topology`] reads the machine through a [`daxplug_kernel::Kernel`] into a
//!   [`Topology`] snapshot: regions, devices, drivers, ranges, the blocks of each range,
//!   nodes and hotplug policy.
//! * [`observe`] computes each device's observed state from its blocks and `/proc/iomem`,
//!   whatever the kernel's own `state` file claims.

mod error;
pub mod observe;
pub mod problems;
mod read;
pub mod topology;

pub use error::DiscoveryError;
pub use observe::{BlockCounts, ObservedState};
pub use problems::{Problem, ProblemCode, format_block_ids, problems};
pub use topology::{
    Block, Device, Driver, IomemRange, KernelAbi, Mapping, Mode, Nodes, Policy, Region, RegionKind,
    Scope, Topology, discover, parse_device_name,
};
