//! What a transition needs besides sysfs: where its lock and journal live, udev's exec
//! queue, and who has a device open.

use std::path::PathBuf;

use daxplug_kernel::Kernel;

/// The machine a transition runs on.
pub trait Host: Sync {
    /// The kernel interface.
    fn kernel(&self) -> &dyn Kernel;

    /// The directory holding `lock/daxplug.lock` and `daxplug/` (the journal): `/run` on
    /// a real machine, under the root or next to the emulated machine otherwise.
    fn run_dir(&self) -> PathBuf;

    /// Whether udev runs, so that its exec queue can be stopped.
    fn udev_running(&self) -> bool;

    /// Stops (`false`) or starts (`true`) udev's exec queue.
    fn set_udev_queue(&self, running: bool) -> Result<(), String>;

    /// Processes that have `/dev/<device>` open or mapped.
    fn dax_users(&self, device: &str) -> Vec<u32>;
}
