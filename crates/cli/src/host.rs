//! The real machine (or a copied tree) as the engine's [`Host`]: its sysfs and procfs, the
//! run directory for the lock and journals, udev's exec queue through `udevadm`, and the
//! scan of `/proc` for processes using `/dev/daxX.Y`.

use daxplug_abi::{DaxDriver, DaxName};
use std::path::{Path, PathBuf};

use daxplug_engine::Host;
use daxplug_engine::host::{ModuleError, UdevError};
use daxplug_kernel::{Kernel, RootFs};

/// The running kernel, or a copied tree, as a [`Host`].
#[derive(Debug)]
pub struct RealHost {
    /// sysfs and procfs under the root.
    pub fs: RootFs,
    /// The root (`/` on a real machine).
    pub root: PathBuf,
    /// Where the lock and journals live (`/run` on a real machine).
    pub run_dir: PathBuf,
}

impl RealHost {
    fn is_live(&self) -> bool {
        self.root == Path::new("/")
    }
}

impl Host for RealHost {
    fn kernel(&self) -> &dyn Kernel {
        &self.fs
    }

    fn run_dir(&self) -> PathBuf {
        self.run_dir.clone()
    }

    fn udev_running(&self) -> bool {
        // Only the live machine has a udev to hold; a copied tree has none.
        self.is_live() && Path::new("/run/udev/control").exists()
    }

    fn set_udev_queue(&self, running: bool) -> Result<(), UdevError> {
        let action = if running {
            "--start-exec-queue"
        } else {
            "--stop-exec-queue"
        };
        let out = std::process::Command::new("udevadm")
            .args(["control", action])
            .output()
            .map_err(UdevError::Spawn)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(UdevError::Failed {
                action,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    fn load_module(&self, module: DaxDriver) -> Result<(), ModuleError> {
        if !self.is_live() {
            return Err(ModuleError::NoKernel { module });
        }
        // Under `sim run` the namespace's modprobe configuration feeds the model; its
        // control file does the same where no modprobe program is installed.
        if crate::cmd::sim::run::inside_sim_run()
            && let Some(control) = std::env::var_os(crate::cmd::sim::run::SIM_MODPROBE_ENV)
        {
            return std::fs::write(control, module.as_str()).map_err(ModuleError::Control);
        }
        let out = std::process::Command::new("modprobe")
            .arg(module.as_str())
            .output()
            .map_err(ModuleError::Spawn)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ModuleError::Failed {
                module,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    fn dax_users(&self, device: DaxName) -> Vec<u32> {
        dax_users(&self.root.join("proc"), &device.to_string())
    }
}

/// Processes under `proc` with `/dev/<device>` among their open files or mappings.
pub fn dax_users(proc: &Path, device: &str) -> Vec<u32> {
    let dev = format!("/dev/{device}");
    let Ok(entries) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    // Kernel threads are kthreadd's (pid 2) children: one read names them all, so that
    // they cost nothing below (most of the processes of a small machine are those).
    let kernel_threads: std::collections::BTreeSet<u32> =
        daxplug_kernel::read_proc_file(&proc.join("2/task/2/children"))
            .unwrap_or_default()
            .split_ascii_whitespace()
            .filter_map(|p| p.parse().ok())
            .chain([2])
            .collect();
    // daxplug itself never opens a dax device.
    let me = std::process::id();
    let mut pids = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me || kernel_threads.contains(&pid) {
            continue;
        }
        let dir = e.path();
        // Other kernel threads have no executable either: one readlink instead of a
        // directory listing and a maps file each.
        if std::fs::read_link(dir.join("exe")).is_err() {
            continue;
        }
        let open = || {
            std::fs::read_dir(dir.join("fd")).is_ok_and(|fds| {
                fds.flatten()
                    .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == Path::new(&dev)))
            })
        };
        let mapped = || {
            daxplug_kernel::read_proc_file(&dir.join("maps"))
                .is_ok_and(|maps| maps.lines().any(|l| l.ends_with(&dev)))
        };
        if open() || mapped() {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

#[cfg(test)]
mod dax_users_tests {
    use super::dax_users;
    use std::os::unix::fs::symlink;

    #[test]
    fn open_and_mapped_users_are_found_and_kernel_threads_skipped() {
        let proc = tempfile::tempdir().expect("tmp");
        let p = proc.path();
        let make = |pid: &str, exe: bool| {
            std::fs::create_dir_all(p.join(pid).join("fd")).expect("mkdir");
            std::fs::write(p.join(pid).join("maps"), "").expect("maps");
            if exe {
                symlink("/usr/bin/true", p.join(pid).join("exe")).expect("exe");
            }
        };
        make("10", true);
        symlink("/dev/dax0.0", p.join("10/fd/3")).expect("fd");
        make("11", true);
        std::fs::write(
            p.join("11/maps"),
            "7f00-7f10 rw-s 00000000 00:06 5 /dev/dax0.0\n",
        )
        .expect("maps");
        make("12", false);
        symlink("/dev/dax0.0", p.join("12/fd/3")).expect("fd");
        make("13", true);
        symlink("/dev/dax1.0", p.join("13/fd/3")).expect("fd");
        // A kernel thread named by kthreadd's children file is skipped unread, even
        // with what would otherwise count as a use.
        make("2", false);
        std::fs::create_dir_all(p.join("2/task/2")).expect("mkdir");
        std::fs::write(p.join("2/task/2/children"), "14 15 ").expect("children");
        make("14", true);
        symlink("/dev/dax0.0", p.join("14/fd/3")).expect("fd");
        std::fs::create_dir_all(p.join("self")).expect("not a pid");
        assert_eq!(dax_users(p, "dax0.0"), vec![10, 11]);
    }
}
