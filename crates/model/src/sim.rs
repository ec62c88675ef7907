//! The model served through the kernel interface, and machines kept in files.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use daxplug_kernel::{Kernel, KernelError, Op, Result};

use crate::machine::Caller;
use crate::machine::Machine;
use crate::machine::SignalFlag;
use crate::machine::UeventRecord;

/// The emulated machine behind the [`Kernel`] trait. Every call is a scheduling point:
/// competing actors may run before it, and during its long operations.
#[derive(Debug)]
pub struct Sim {
    machine: Mutex<Machine>,
    signal: Arc<AtomicBool>,
}

impl Sim {
    /// Serves `machine`.
    pub fn new(mut machine: Machine) -> Self {
        let signal = Arc::new(AtomicBool::new(false));
        machine.signal = SignalFlag(Some(Arc::clone(&signal)));
        Self {
            machine: Mutex::new(machine),
            signal,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Machine> {
        // A panic while holding the lock leaves a machine that is still consistent data.
        self.machine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the machine (for admin actions and tests).
    pub fn with<R>(&self, f: impl FnOnce(&mut Machine) -> R) -> R {
        f(&mut self.lock())
    }

    /// Serves `machine` from now on, in place of the one served so far (a machine file
    /// another process changed, read again).
    pub fn replace(&self, mut machine: Machine) {
        machine.signal = SignalFlag(Some(Arc::clone(&self.signal)));
        *self.lock() = machine;
    }

    /// Saves the machine served now to `file`, and goes on serving it.
    pub fn save_to(&self, file: &MachineFile) -> std::result::Result<(), StoreError> {
        self.with(|m| file.save(m))
    }

    /// A handle that delivers a signal to the client's current (or next) system call: a
    /// pending offline fails with `EINTR`, as when a real thread is signalled.
    pub fn signal_handle(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.signal)
    }

    /// The machine, for saving.
    pub fn into_machine(self) -> Machine {
        let mut m = self
            .machine
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.signal = SignalFlag::default();
        m
    }
}

impl Kernel for Sim {
    fn watch_uevents(&self) -> Option<Box<dyn daxplug_kernel::UeventWatch + '_>> {
        let from = self.with(|m| m.uevent_seqnum);
        Some(Box::new(SimWatch { sim: self, from }))
    }

    fn read(&self, path: &str) -> Result<String> {
        let mut m = self.lock();
        m.interleave();
        m.sysfs_read(path)
            .map_err(|e| KernelError::new(Op::Read, path, e))
    }

    fn write(&self, path: &str, value: &str) -> Result<()> {
        let mut m = self.lock();
        // A signal aimed at an earlier call that had already returned is moot.
        self.signal
            .store(false, std::sync::atomic::Ordering::SeqCst);
        m.interleave();
        m.sysfs_write(path, value, Caller::Client)
            .map_err(|e| KernelError::write(path, value, e))
    }

    fn list_dir(&self, path: &str) -> Result<Vec<String>> {
        let mut m = self.lock();
        m.interleave();
        m.sysfs_list(path)
            .map_err(|e| KernelError::new(Op::ListDir, path, e))
    }

    fn read_link(&self, path: &str) -> Result<String> {
        let mut m = self.lock();
        m.interleave();
        m.sysfs_readlink(path)
            .map_err(|e| KernelError::new(Op::ReadLink, path, e))
    }

    fn exists(&self, path: &str) -> bool {
        let mut m = self.lock();
        m.interleave();
        m.sysfs_exists(path)
    }

    fn interrupt(&self, _thread: daxplug_kernel::ThreadToken) {
        self.signal.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn interrupter(&self) -> daxplug_kernel::Interrupter {
        let signal = Arc::clone(&self.signal);
        Arc::new(move |_thread| signal.store(true, std::sync::atomic::Ordering::SeqCst))
    }
}

/// A machine file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading, writing or locking the file failed.
    #[error("cannot use the emulated machine file {}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a saved machine.
    #[error("{} is not an emulated machine file (create one with `daxplug sim init`)", .path.display())]
    Format {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The file describes a machine no hardware has (a hand-edited file): refused before
    /// anything iterates over its blocks.
    #[error("{} describes {what}, more than any machine has", .path.display())]
    Implausible {
        path: PathBuf,
        /// What, in words.
        what: String,
    },
    /// `init` would overwrite a machine.
    #[error("{} already exists: pass --force to replace it", .path.display())]
    Exists { path: PathBuf },
}

/// A machine file held under an exclusive lock (`FILE.lock`), so that two commands on the
/// same machine run one after the other.
#[derive(Debug)]
pub struct MachineFile {
    path: PathBuf,
    _lock: File,
    /// The lock file could only be opened for reading (a user who may read the machine
    /// but not write it): commands that only read use the machine as they would otherwise.
    read_only: bool,
}

impl MachineFile {
    fn lock_path(path: &Path) -> PathBuf {
        let mut p = path.as_os_str().to_owned();
        p.push(".lock");
        PathBuf::from(p)
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// Takes the lock of an existing machine file (waiting for another command to finish);
    /// a missing file is an error before any lock file is made next to it.
    pub fn lock_existing(path: &Path) -> Result<Self, StoreError> {
        fs::metadata(path).map_err(Self::io(path))?;
        Self::lock(path)
    }

    /// Takes the lock of `path` (waiting for another command to finish).
    pub fn lock(path: &Path) -> Result<Self, StoreError> {
        let lock_path = Self::lock_path(path);
        let writable = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path);
        // flock needs no write access: a reader locks the existing lock file read-only.
        let (lock, read_only) = match writable {
            Ok(f) => (f, false),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => (
                File::open(&lock_path).map_err(|_| Self::io(&lock_path)(e))?,
                true,
            ),
            Err(e) => return Err(Self::io(&lock_path)(e)),
        };
        lock.lock().map_err(Self::io(&lock_path))?;
        Ok(Self {
            path: path.to_owned(),
            _lock: lock,
            read_only,
        })
    }

    /// Whether this process may only read the machine file.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Lets other commands use the machine file while this process waits: it must
    /// [`MachineFile::relock`] (and load the machine again) before using the machine.
    pub fn unlock(&self) -> Result<(), StoreError> {
        self._lock.unlock().map_err(Self::io(&self.path))
    }

    /// Takes the lock given up by [`MachineFile::unlock`] again (waiting for another
    /// command to finish).
    pub fn relock(&self) -> Result<(), StoreError> {
        self._lock.lock().map_err(Self::io(&self.path))
    }

    /// The machine file's modification time and length: what changes when another
    /// command saves it.
    pub fn stamp(&self) -> Option<(std::time::SystemTime, u64)> {
        let m = fs::metadata(&self.path).ok()?;
        Some((m.modified().ok()?, m.len()))
    }

    /// Loads the machine.
    pub fn load(&self) -> Result<Machine, StoreError> {
        let text = fs::read_to_string(&self.path).map_err(Self::io(&self.path))?;
        let machine: Machine =
            serde_json::from_str(&text).map_err(|source| StoreError::Format {
                path: self.path.clone(),
                source,
            })?;
        machine.implausible().map_or(Ok(machine), |what| {
            Err(StoreError::Implausible {
                path: self.path.clone(),
                what,
            })
        })
    }

    /// Saves the machine atomically (write a temporary file, then rename).
    pub fn save(&self, machine: &Machine) -> Result<(), StoreError> {
        let text = serde_json::to_string(machine).map_err(|source| StoreError::Format {
            path: self.path.clone(),
            source,
        })?;
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = File::create(&tmp).map_err(Self::io(&tmp))?;
        f.write_all(text.as_bytes()).map_err(Self::io(&tmp))?;
        f.sync_all().map_err(Self::io(&tmp))?;
        fs::rename(&tmp, &self.path).map_err(Self::io(&self.path))
    }

    /// Creates a machine file; refuses to replace one unless `force`.
    pub fn create(path: &Path, machine: &Machine, force: bool) -> Result<(), StoreError> {
        let file = Self::lock(path)?;
        if path.exists() && !force {
            return Err(StoreError::Exists {
                path: path.to_owned(),
            });
        }
        file.save(machine)
    }
}

impl Sim {
    /// Serves the machine in a locked file; [`Sim::save`] writes it back.
    pub fn open(path: &Path) -> Result<(Self, MachineFile), StoreError> {
        let file = MachineFile::lock_existing(path)?;
        let machine = file.load()?;
        Ok((Sim::new(machine), file))
    }

    /// Writes the machine back to its file.
    pub fn save(self, file: &MachineFile) -> Result<(), StoreError> {
        file.save(&self.into_machine())
    }
}

/// A uevent watch on the model, as a netlink listener would have it: no scheduling point
/// (reading a socket does not let the machine's actors run).
struct SimWatch<'a> {
    sim: &'a Sim,
    from: u64,
}

impl daxplug_kernel::UeventWatch for SimWatch<'_> {
    fn seen(&mut self) -> daxplug_kernel::Seen {
        self.sim.with(|m| {
            let from = self.from;
            self.from = m.uevent_seqnum;
            // Trimmed from the log: lost, as a listener whose buffer overflowed.
            if m.uevents.first().is_some_and(|e| e.seq > from + 1) {
                return daxplug_kernel::Seen::Lost;
            }
            let start = m.uevents.partition_point(|e| e.seq <= from);
            daxplug_kernel::Seen::Messages(
                m.uevents[start..]
                    .iter()
                    .map(UeventRecord::message)
                    .collect(),
            )
        })
    }
}
