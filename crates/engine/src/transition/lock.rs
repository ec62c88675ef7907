//! The system-wide lock: one daxplug transition at a time on a machine.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::time::Instant;

use crate::host::Host;

use super::report::TransitionError;
use super::{DEFAULT_LOCK_WAIT, POLL};

/// The system-wide lock, held for the whole transition.
pub(super) struct Lock {
    _file: File,
}

/// Takes the lock, waiting until `deadline`. The holder's pid is written in the file, so that
/// a second daxplug can say whom it waits for (`on_wait`, once, after a second).
pub(super) fn take_lock(
    host: &dyn Host,
    deadline: Option<Instant>,
    on_wait: Option<&(dyn Fn(String) + Send + Sync)>,
) -> Result<Option<Lock>, TransitionError> {
    // Everything daxplug keeps lives in one directory (RUN/daxplug), which is all a
    // sandboxed service must be able to write besides /sys.
    let dir = crate::rundir::dir(&host.run_dir());
    let path = crate::rundir::lock(&host.run_dir());
    let io = |source| TransitionError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    let started = Instant::now();
    let until = deadline.unwrap_or_else(|| started + DEFAULT_LOCK_WAIT);
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ = (&file).write_all(format!("{}\n", std::process::id()).as_bytes());
                return Ok(Some(Lock { _file: file }));
            }
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < until => {
                if !said && started.elapsed() >= std::time::Duration::from_secs(1) {
                    said = true;
                    if let Some(f) = on_wait {
                        let holder = std::fs::read_to_string(&path).unwrap_or_default();
                        let holder = holder.trim();
                        f(format!(
                            "waiting for {} (held by {}, another daxplug or the daemon)",
                            path.display(),
                            if holder.is_empty() {
                                "another process".to_owned()
                            } else {
                                format!("pid {holder}")
                            }
                        ));
                    }
                }
                std::thread::sleep(POLL)
            }
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
}

/// The system-wide lock held shared while the machine is read outside a transition: a
/// transition in another process waits for the read to end, and the read waits for (or
/// skips) a transition in flight. Reading `memory_tierN/nodelist` while a transition takes
/// a node's last memory offline deadlocks the kernel (the read holds the attribute and waits
/// for `memory_tier_lock`; the offline holds that lock and waits for the read to end, to
/// remove the emptied tier's device), so no read of the tiers may overlap another process's
/// transition.
#[derive(Debug)]
pub struct ReadGuard {
    _file: Option<File>,
}

/// Whether the shared lock could be had.
#[derive(Debug)]
pub enum ReadLock {
    /// Held until dropped (or nothing to hold: no lock file, so no transition holds it).
    Held(ReadGuard),
    /// A transition is in flight.
    Busy,
}

/// Takes the lock shared, without waiting.
pub fn read_lock(host: &dyn Host) -> ReadLock {
    // Opened, never created: a reader changes nothing, and without the file no transition
    // holds the lock.
    let path = crate::rundir::lock(&host.run_dir());
    let Ok(file) = File::open(&path) else {
        return ReadLock::Held(ReadGuard { _file: None });
    };
    match file.try_lock_shared() {
        Ok(()) => ReadLock::Held(ReadGuard { _file: Some(file) }),
        Err(std::fs::TryLockError::WouldBlock) => ReadLock::Busy,
        Err(std::fs::TryLockError::Error(_)) => ReadLock::Held(ReadGuard { _file: None }),
    }
}

/// Takes the lock shared, waiting up to `max` for a transition in flight to end (then
/// reading anyway: a stuck transition must not hide the machine).
pub fn read_lock_wait(host: &dyn Host, max: std::time::Duration) -> ReadGuard {
    let until = Instant::now() + max;
    loop {
        match read_lock(host) {
            ReadLock::Held(g) => return g,
            ReadLock::Busy if Instant::now() < until => std::thread::sleep(POLL),
            ReadLock::Busy => return ReadGuard { _file: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use daxplug_abi::{DaxDriver, DaxName};
    use daxplug_kernel::{Kernel, RootFs};

    use super::*;
    use crate::host::{ModuleError, UdevError};

    struct Dir(tempfile::TempDir, RootFs);

    impl Host for Dir {
        fn kernel(&self) -> &dyn Kernel {
            &self.1
        }
        fn run_dir(&self) -> PathBuf {
            self.0.path().to_path_buf()
        }
        fn udev_running(&self) -> bool {
            false
        }
        fn set_udev_queue(&self, _: bool) -> Result<(), UdevError> {
            Ok(())
        }
        fn dax_users(&self, _: DaxName) -> Vec<u32> {
            Vec::new()
        }
        fn load_module(&self, module: DaxDriver) -> Result<(), ModuleError> {
            Err(ModuleError::NoKernel { module })
        }
    }

    /// A second taker waits, says once whom for (the holder's pid from the lock file), and
    /// gives up at its deadline.
    #[test]
    fn a_waiter_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = RootFs::new(dir.path(), daxplug_kernel::Access::ReadOnly).expect("root");
        let host = Dir(dir, fs);
        let held = take_lock(&host, None, None).expect("lock").expect("taken");
        let said = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&said);
        let tell = move |m: String| s.lock().expect("lock").push(m);
        let deadline = Instant::now() + Duration::from_millis(1300);
        let second = take_lock(&host, Some(deadline), Some(&tell)).expect("no error");
        assert!(second.is_none(), "the lock is held");
        let said = said.lock().expect("lock").clone();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains(&format!("pid {}", std::process::id())),
            "{said:?}"
        );
        drop(held);
    }
}
