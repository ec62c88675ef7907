//! The kernel interface: the only way daxplug talks to the kernel.
//!
//! [`Kernel`] is deliberately narrow (read, write, list a directory, read a link, test
//! existence) and keeps the raw errno of every failure, because the protocols depend on
//! telling `EBUSY` from `EINVAL` from `EINTR`. Paths are the kernel's own absolute paths
//! (`/sys/...`, `/proc/...`); each backend decides where they really live.
//!
//! * [`RootFs`] answers from files under a root directory: `/` on a real machine, a copied
//!   sysfs tree in tests, or a FUSE mount of the emulated machine.
//! * The model crate answers from the Rust model of the kernel.

mod errno;
mod error;
pub mod interrupt;
pub mod namespace;
pub mod paths;
mod rootfs;
pub mod uevents;
pub mod usage;

pub use errno::Errno;
pub use error::{KernelError, Op, RootError};
pub use interrupt::{Interrupter, ThreadToken};
pub use rootfs::{Access, RootFs, on_fuse, read_proc_file};
pub use uevents::{NetlinkWatch, Seen, UeventWatch};

/// Result of a kernel-interface call.
pub type Result<T, E = KernelError> = std::result::Result<T, E>;

/// The operations daxplug needs from the kernel, on kernel paths such as
/// `/sys/devices/system/memory/memory40/state`.
pub trait Kernel: Send + Sync {
    /// Reads a whole attribute file as text (sysfs values end with a newline).
    fn read(&self, path: &str) -> Result<String>;

    /// Writes `value` to an attribute in a single `write(2)`, as `echo value > path` does.
    /// The kernel's errno (`EBUSY`, `EINVAL`, `EINTR`, …) is kept in the error.
    fn write(&self, path: &str, value: &str) -> Result<()>;

    /// Names of the entries of a directory, in no particular order.
    fn list_dir(&self, path: &str) -> Result<Vec<String>>;

    /// The target of a symbolic link, as stored (usually relative).
    fn read_link(&self, path: &str) -> Result<String>;

    /// Whether `path` exists; a symbolic link counts even if it dangles.
    fn exists(&self, path: &str) -> bool;

    /// Interrupts a call of this kernel that `thread` may be blocked in: on a real kernel a
    /// signal, which makes an offline in progress fail with `EINTR`. Calls that already
    /// returned are unaffected.
    fn interrupt(&self, thread: ThreadToken) {
        let _ = interrupt::signal_thread(thread);
    }

    /// What [`Kernel::interrupt`] does, as a handle another thread can keep without
    /// borrowing the kernel (a watchdog that outlives the borrow).
    fn interrupter(&self) -> Interrupter {
        std::sync::Arc::new(|thread| {
            let _ = interrupt::signal_thread(thread);
        })
    }

    /// Whether independent reads may be issued from several threads at once (true for
    /// files; false for the model, whose deterministic schedules follow the order of calls).
    fn parallel_reads(&self) -> bool {
        false
    }

    /// Begins watching the kernel's uevents, where this backend can see them: the running
    /// kernel's netlink group, the model's event log. `None` for a copied tree, or a tree
    /// served by FUSE (`sim run`), whose changes send no uevent to this process.
    fn watch_uevents(&self) -> Option<Box<dyn UeventWatch + '_>> {
        None
    }
}

impl<K: Kernel + ?Sized> Kernel for &K {
    fn read(&self, path: &str) -> Result<String> {
        (**self).read(path)
    }
    fn write(&self, path: &str, value: &str) -> Result<()> {
        (**self).write(path, value)
    }
    fn list_dir(&self, path: &str) -> Result<Vec<String>> {
        (**self).list_dir(path)
    }
    fn read_link(&self, path: &str) -> Result<String> {
        (**self).read_link(path)
    }
    fn exists(&self, path: &str) -> bool {
        (**self).exists(path)
    }
    fn interrupt(&self, thread: ThreadToken) {
        (**self).interrupt(thread);
    }
    fn interrupter(&self) -> Interrupter {
        (**self).interrupter()
    }
    fn parallel_reads(&self) -> bool {
        (**self).parallel_reads()
    }
    fn watch_uevents(&self) -> Option<Box<dyn UeventWatch + '_>> {
        (**self).watch_uevents()
    }
}
