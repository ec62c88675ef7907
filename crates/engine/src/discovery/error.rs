//! Errors of discovery.

use daxplug_abi::ParseError;
use daxplug_kernel::KernelError;

/// Why the machine's topology could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The memory-block directory is missing: not a sysfs tree, or no memory hotplug.
    #[error(
        "{path} does not exist: the root is not a Linux sysfs tree, or the kernel lacks memory hotplug (CONFIG_MEMORY_HOTPLUG)"
    )]
    NoMemoryHotplug {
        /// The missing kernel path.
        path: String,
    },
    /// A device name that cannot be a dax device (and must not be used in a path).
    #[error("{name:?} is not a dax device name: expected daxREGION.ID, such as dax0.0")]
    InvalidDeviceName {
        /// The name as given.
        name: String,
    },
    /// No dax region of that id exists.
    #[error("there is no dax region {region} (regions: {present})")]
    UnknownRegion {
        /// The id asked for.
        region: u32,
        /// The regions that do exist, comma-separated, or `none`.
        present: String,
    },
    /// No device of that name exists.
    #[error("there is no dax device named {name} (present: {present})")]
    UnknownDevice {
        /// The name as given.
        name: String,
        /// The devices that do exist, comma-separated, or `none`.
        present: String,
    },
    /// `/proc/iomem` was read without the privilege to see addresses.
    #[error(
        "/proc/iomem shows every address as zero, which means it was read without CAP_SYS_ADMIN: run daxplug as root"
    )]
    IomemHidden,
    /// A file held text that does not parse.
    #[error("{path} holds unexpected text")]
    Parse {
        /// The kernel path of the file.
        path: String,
        /// What was wrong with it.
        #[source]
        source: ParseError,
    },
    /// A value no machine has, from a damaged copy of sysfs or a hand-edited machine:
    /// refused before any per-block work, which it would make unbounded.
    #[error("{path} says {what}, more than any machine has: the tree is damaged")]
    Implausible {
        /// The kernel path of the file.
        path: String,
        /// The value, in words.
        what: String,
    },
    /// A kernel-interface call failed.
    #[error(transparent)]
    Kernel(#[from] KernelError),
}
