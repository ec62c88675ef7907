//! Mounting and unmounting a served machine.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use daxplug_model::Sim;
use rustix::mount::{MountFlags, UnmountFlags};

use crate::server::{self, Server};

/// Worker threads per mount: enough that a write blocked in a long offline leaves others
/// to answer reads (which then wait for the model, as readers of a busy kernel would).
const WORKERS: usize = 4;

/// The filesystem type of a daxplug mount, as the mount table shows it.
pub const FSTYPE: &str = "fuse.daxplug";

/// One line of `/proc/self/mountinfo`: where, with which options, of which type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount point (as the kernel escapes it: spaces as `\040`).
    pub point: String,
    /// The per-mount options (`ro,nosuid,...`).
    pub options: String,
    /// The filesystem type (`sysfs`, `fuse.daxplug`, ...).
    pub fstype: String,
}

/// Parses `/proc/self/mountinfo`; lines it cannot read are left out.
pub fn mount_table(mountinfo: &str) -> Vec<MountEntry> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (head, tail) = l.split_once(" - ")?;
            let mut fields = head.split(' ').skip(4);
            Some(MountEntry {
                point: fields.next()?.to_owned(),
                options: fields.next()?.to_owned(),
                fstype: tail.split(' ').next()?.to_owned(),
            })
        })
        .collect()
}

/// Mounting or serving failed.
#[derive(Debug, thiserror::Error)]
pub enum FuseError {
    /// `/dev/fuse` cannot be opened.
    #[error("cannot open /dev/fuse (FUSE needs the fuse module and root)")]
    Device {
        #[source]
        source: io::Error,
    },
    /// The mount system call failed.
    #[error("cannot mount the emulated machine on {}", .dir.display())]
    Mount {
        /// The mount point.
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Unmounting failed.
    #[error("cannot unmount {}", .dir.display())]
    Unmount {
        /// The mount point.
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A server thread could not start, or stopped on an error.
    #[error("the FUSE server of {} failed", .dir.display())]
    Serve {
        /// The mount point.
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The emulated machine mounted on a directory: `DIR/sys` and `DIR/proc` behave as the
/// model's kernel would. Dropping it unmounts.
#[derive(Debug)]
pub struct Mount {
    dir: PathBuf,
    server: Arc<Server>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    mounted: bool,
}

impl Mount {
    /// Mounts `sim` on `dir` (an existing directory) and starts serving it.
    pub fn new(sim: Arc<Sim>, dir: &Path) -> Result<Self, FuseError> {
        let dev: File = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .map_err(|source| FuseError::Device { source })?;
        // Non-blocking: a request can be withdrawn (its process killed) between the poll
        // that saw it and the read, which would otherwise wait for the next one forever.
        rustix::io::ioctl_fionbio(&dev, true)
            .map_err(|e| FuseError::Device { source: e.into() })?;
        let options = format!(
            "fd={},rootmode=40000,user_id={},group_id={},allow_other",
            dev.as_raw_fd(),
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        );
        let options = std::ffi::CString::new(options).map_err(|_| FuseError::Mount {
            dir: dir.to_owned(),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        })?;
        rustix::mount::mount(
            "daxplug-sim",
            dir,
            FSTYPE,
            MountFlags::NOSUID | MountFlags::NODEV,
            Some(options.as_c_str()),
        )
        .map_err(|e| FuseError::Mount {
            dir: dir.to_owned(),
            source: e.into(),
        })?;
        let server = Arc::new(Server::new(dev, sim));
        let stop = Arc::new(AtomicBool::new(false));
        let mut mount = Self {
            dir: dir.to_owned(),
            server,
            stop,
            threads: Vec::new(),
            mounted: true,
        };
        mount.threads = server::start(&mount.server, WORKERS, &mount.stop).map_err(|source| {
            FuseError::Serve {
                dir: dir.to_owned(),
                source,
            }
        })?;
        Ok(mount)
    }

    /// The mount point.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the machine may have changed since the last call (every request that
    /// reaches the model counts: actors run and time passes even on reads).
    pub fn take_changed(&self) -> bool {
        self.server.dirty.swap(false, Ordering::AcqRel)
    }

    /// Calls `hook` with every device's name, before the reply, whenever a request adds or
    /// removes a dax device.
    pub fn on_devices_changed(&self, hook: crate::server::DevicesChanged) {
        let names = self.server.device_names();
        *crate::server::lock(&self.server.devices_changed) = Some(crate::server::Hook(hook));
        self.server.remember_devices(names);
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.server.stats.requests.load(Ordering::Relaxed)
    }

    /// Whether the server stopped by itself (someone ran `umount DIR`).
    pub fn finished(&self) -> bool {
        self.threads.iter().any(JoinHandle::is_finished)
    }

    /// Unmounts (lazily: processes still inside lose the filesystem) and stops serving.
    pub fn unmount(mut self) -> Result<(), FuseError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), FuseError> {
        let mut result = Ok(());
        if self.mounted {
            self.mounted = false;
            if let Err(e) = rustix::mount::unmount(&self.dir, UnmountFlags::DETACH)
                // Already unmounted by someone else.
                && e != rustix::io::Errno::INVAL
            {
                result = Err(FuseError::Unmount {
                    dir: self.dir.clone(),
                    source: e.into(),
                });
            }
        }
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    if result.is_ok() {
                        result = Err(FuseError::Serve {
                            dir: self.dir.clone(),
                            source,
                        });
                    }
                }
                Err(_) => {
                    if result.is_ok() {
                        result = Err(FuseError::Serve {
                            dir: self.dir.clone(),
                            source: io::Error::other("a server thread panicked"),
                        });
                    }
                }
            }
        }
        result
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Errors were reported by an explicit `unmount`; a drop can only try.
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_table_lines_are_read() {
        let info = "36 35 98:0 / /sys/bus/dax rw,nosuid,relatime shared:1 - fuse.daxplug daxplug-sim rw\n\
                    40 36 0:5 / /sys/kernel ro,nosuid master:2 - sysfs sysfs rw\n\
                    garbage\n";
        assert_eq!(
            mount_table(info),
            vec![
                MountEntry {
                    point: "/sys/bus/dax".into(),
                    options: "rw,nosuid,relatime".into(),
                    fstype: FSTYPE.into(),
                },
                MountEntry {
                    point: "/sys/kernel".into(),
                    options: "ro,nosuid".into(),
                    fstype: "sysfs".into(),
                },
            ]
        );
    }
}
