//! What a transition needs besides sysfs: where its lock and journal live, udev's exec
//! queue, and who has a device open.

#[cfg(feature = "model")]
pub mod sim;

use daxplug_abi::{DaxDriver, DaxName};
use std::path::PathBuf;

use daxplug_kernel::Kernel;

/// Why udev's exec queue could not be stopped or started.
#[derive(Debug, thiserror::Error)]
pub enum UdevError {
    /// `udevadm` could not be started.
    #[error("udevadm could not be run")]
    Spawn(#[source] std::io::Error),
    /// `udevadm control` ran and failed.
    #[error("udevadm control {action} failed: {stderr}")]
    Failed {
        /// `--stop-exec-queue` or `--start-exec-queue`.
        action: &'static str,
        /// What udevadm printed on stderr.
        stderr: String,
    },
}

impl UdevError {
    /// The message with its cause, for a report line.
    pub fn sentence(&self) -> String {
        match self {
            UdevError::Spawn(e) => format!("{self}: {e}"),
            UdevError::Failed { .. } => self.to_string(),
        }
    }
}

/// Why a kernel module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// `modprobe` could not be started.
    #[error("modprobe could not be run")]
    Spawn(#[source] std::io::Error),
    /// `modprobe` ran and failed.
    #[error("modprobe {module} failed: {stderr}")]
    Failed {
        module: DaxDriver,
        /// What modprobe printed on stderr.
        stderr: String,
    },
    /// Under `daxplug sim run`: the served machine's module control file could not be
    /// written.
    #[error("the emulated machine's module control file could not be written")]
    Control(#[source] std::io::Error),
    /// The machine is a copied tree: there is no kernel to load a module into.
    #[error("{module} cannot be loaded into a copied sysfs tree")]
    NoKernel { module: DaxDriver },
}

impl ModuleError {
    /// The message with its cause, for a report line.
    pub fn sentence(&self) -> String {
        match self {
            ModuleError::Spawn(e) | ModuleError::Control(e) => format!("{self}: {e}"),
            _ => self.to_string(),
        }
    }
}

/// The machine a transition runs on.
pub trait Host: Sync {
    /// The kernel interface.
    fn kernel(&self) -> &dyn Kernel;

    /// The directory holding `daxplug/` (the lock, journals, holds and the daemon's
    /// registration): `/run` on
    /// a real machine, under the root or next to the emulated machine otherwise.
    fn run_dir(&self) -> PathBuf;

    /// Whether udev runs, so that its exec queue can be stopped.
    fn udev_running(&self) -> bool;

    /// Stops (`false`) or starts (`true`) udev's exec queue.
    fn set_udev_queue(&self, running: bool) -> Result<(), UdevError>;

    /// Processes that have `/dev/<device>` open or mapped.
    fn dax_users(&self, device: DaxName) -> Vec<u32>;

    /// Loads a dax driver's module (`modprobe kmem`), the way the system loads it.
    fn load_module(&self, module: DaxDriver) -> Result<(), ModuleError>;
}
