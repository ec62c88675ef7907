//! Serving the model over `/dev/fuse`: inode numbers for model paths, open files and
//! directories, the worker threads, and interrupts.
//!
//! One reader thread takes requests off the device and never waits for the model: it
//! answers INIT, records INTERRUPTs and hands everything else to a few workers. So a
//! write blocked in a long offline (holding the model, as the kernel's device-hotplug
//! lock would) can still be interrupted by a signal to the writer, which the kernel turns
//! into an INTERRUPT request; the model then fails the offline with `EINTR`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use daxplug_kernel::Errno;
use daxplug_model::{Caller, DAX_MAJOR, Kind, Machine, Sim};

use crate::proto::{self, Attr, Opcode, Reply, Request, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG};

/// The directory of control files next to `sys/` and `proc/`.
pub const CONTROL_DIR: &str = "/.daxplug";
/// Writing a module name here loads it into the model (`modprobe` under `sim run` is
/// configured to do so instead of loading it into the host's kernel).
pub const MODPROBE_FILE: &str = "/.daxplug/modprobe";
/// The directory of the devices' character device nodes (`/dev/daxX.Y`), which devtmpfs
/// creates for every dax device whatever its driver; libdaxctl finds a device's sysfs
/// directory from the node's number. The mount is `nodev`, so opening one fails (`EACCES`)
/// instead of reaching whatever device of the host has that number.
pub const DEV_DIR: &str = "/dev";

/// Largest write accepted (sysfs values are short; the kernel needs a buffer this big
/// plus headers for each read of the device).
const MAX_WRITE: u32 = 128 * 1024;
/// Size of the buffer each read of `/dev/fuse` gets.
pub(crate) const READ_BUFFER: usize = MAX_WRITE as usize + 4096;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Model paths and their inode numbers (inode 1 is `/`). Numbers are never reused, so a
/// block that is removed and added again keeps its number, as a path-keyed cache expects.
#[derive(Debug)]
struct Inodes {
    by_path: HashMap<String, u64>,
    paths: Vec<String>,
}

impl Inodes {
    fn new() -> Self {
        Self {
            by_path: HashMap::from([("/".to_owned(), 1)]),
            paths: vec!["/".to_owned()],
        }
    }

    fn path(&self, ino: u64) -> Option<String> {
        let i = usize::try_from(ino.checked_sub(1)?).ok()?;
        self.paths.get(i).cloned()
    }

    fn intern(&mut self, path: String) -> u64 {
        if let Some(ino) = self.by_path.get(&path) {
            return *ino;
        }
        self.paths.push(path.clone());
        let ino = self.paths.len() as u64;
        self.by_path.insert(path, ino);
        ino
    }
}

fn child(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// An open file or directory.
#[derive(Debug)]
enum Handle {
    /// A file: what its last read at offset 0 rendered (later offsets continue it, as a
    /// sysfs `seq_file` does).
    File { path: String, content: Vec<u8> },
    /// A directory: its entries as listed at offset 0.
    Dir {
        path: String,
        entries: Vec<(String, u64, u32)>,
    },
}

/// Where a request that can be interrupted is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flight {
    Queued,
    Interrupted,
    Running,
}

/// Counters, for benchmarks and tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests served.
    pub requests: AtomicU64,
    /// Of which reads and writes of files.
    pub file_ops: AtomicU64,
}

/// The shared state of one mount.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) dev: File,
    sim: Arc<Sim>,
    signal: Arc<AtomicBool>,
    inodes: Mutex<Inodes>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
    flights: Mutex<HashMap<u64, Flight>>,
    pub(crate) dirty: AtomicBool,
    pub(crate) stats: Stats,
    time: u64,
    /// Called with the devices' names, before the reply, after a request that changed which
    /// devices exist (see [`crate::Mount::on_devices_changed`]).
    pub(crate) devices_changed: Mutex<Option<Hook>>,
    /// The device names as last seen by a request.
    devices: Mutex<Vec<String>>,
}

/// A hook for writes that add or remove dax devices.
pub type DevicesChanged = Arc<dyn Fn(&[String]) + Send + Sync>;

/// A [`DevicesChanged`] hook, named in `Debug` output.
#[derive(Clone)]
pub(crate) struct Hook(pub(crate) DevicesChanged);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

fn control_kind(path: &str) -> Option<Kind> {
    match path {
        CONTROL_DIR => Some(Kind::Dir),
        MODPROBE_FILE => Some(Kind::File {
            read: false,
            write: true,
        }),
        _ => None,
    }
}

/// The device behind `/dev/daxX.Y`, if it exists.
fn dev_node<'m>(m: &'m Machine, path: &str) -> Option<&'m daxplug_model::DaxDevice> {
    m.device(path.strip_prefix("/dev/")?)
}

fn kind_of(m: &Machine, path: &str) -> Option<Kind> {
    if path == DEV_DIR {
        return Some(Kind::Dir);
    }
    if path.starts_with("/dev/") {
        // Not a file: `attr_at` makes it a character device.
        return dev_node(m, path).map(|_| Kind::File {
            read: false,
            write: false,
        });
    }
    control_kind(path).or_else(|| m.kind(path))
}

/// How long the kernel may cache `path`'s name and attributes: an hour for what exists as
/// long as the machine does (the model says which: [`Machine::lasting`]), 0 for what can
/// come and go (memory blocks, nodes, drivers and their links, a device's `state`,
/// modules, devices, `/dev` nodes), so that a lookup always asks.
pub(crate) fn ttl(m: &Machine, path: &str) -> u64 {
    const LONG: u64 = 3600;
    let lasting = match path {
        DEV_DIR | CONTROL_DIR | MODPROBE_FILE => true,
        _ if path.starts_with("/dev/") => false,
        _ => m.lasting(path),
    };
    if lasting { LONG } else { 0 }
}

/// What `stat` shows for `path`, if it exists.
fn attr_at(m: &Machine, ino: u64, path: &str, time: u64) -> Option<Attr> {
    if let Some(d) = dev_node(m, path) {
        return Some(Attr {
            ino,
            size: 0,
            mode: S_IFCHR | 0o600,
            nlink: 1,
            time,
            rdev: (DAX_MAJOR, d.minor),
        });
    }
    kind_of(m, path).map(|k| attr_of(ino, path, &k, time))
}

fn attr_of(ino: u64, path: &str, kind: &Kind, time: u64) -> Attr {
    let (mode, size, nlink) = match kind {
        Kind::Dir => (S_IFDIR | 0o755, 0, 2),
        Kind::File { read, write } => {
            let mode = S_IFREG | if *read { 0o444 } else { 0 } | if *write { 0o200 } else { 0 };
            // sysfs attributes claim a page; procfs files and device files nothing.
            let size = if path.starts_with("/sys/") { 4096 } else { 0 };
            (mode, size, 1)
        }
        Kind::Link(target) => (S_IFLNK | 0o777, target.len() as u64, 1),
    };
    Attr {
        ino,
        size,
        mode,
        nlink,
        time,
        rdev: (0, 0),
    }
}

type Outcome = Result<Reply, Errno>;

impl Server {
    pub(crate) fn new(dev: File, sim: Arc<Sim>) -> Self {
        let signal = sim.signal_handle();
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            dev,
            sim,
            signal,
            inodes: Mutex::new(Inodes::new()),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            flights: Mutex::new(HashMap::new()),
            dirty: AtomicBool::new(false),
            devices_changed: Mutex::new(None),
            devices: Mutex::new(Vec::new()),
            stats: Stats::default(),
            time,
        }
    }

    fn send(&self, bytes: &[u8]) {
        // ENOENT: the request was aborted meanwhile (its process was killed); nothing to do.
        if let Err(e) = (&self.dev).write_all(bytes)
            && e.raw_os_error() != Some(Errno::ENOENT.raw())
        {
            eprintln!("daxplug: cannot reply to the kernel's FUSE request: {e}");
        }
    }

    fn path(&self, ino: u64) -> Result<String, Errno> {
        lock(&self.inodes).path(ino).ok_or(Errno::ENOENT)
    }

    /// Runs `f` on the machine; every such call may change it (actors run, time passes).
    /// Runs `f` on the model. When the devices-changed hook is set and the request added or
    /// removed a device (a write, or a fault an actor step fired), the hook runs before the
    /// reply, as devtmpfs makes `/dev/daxX.Y` inside `device_add()`; the comparison is made
    /// under the same lock, so no request waits twice.
    fn machine<R>(&self, f: impl FnOnce(&mut Machine) -> R) -> R {
        self.dirty.store(true, Ordering::Release);
        let hook = lock(&self.devices_changed).clone();
        let (r, changed) = self.sim.with(|m| {
            let r = f(m);
            let changed = hook.as_ref().and_then(|_| {
                let mut seen = lock(&self.devices);
                if seen.iter().eq(m.devices.iter().map(|d| &d.name)) {
                    return None;
                }
                *seen = m.devices.iter().map(|d| d.name.clone()).collect();
                Some(seen.clone())
            });
            (r, changed)
        });
        if let (Some(hook), Some(names)) = (hook, changed) {
            (hook.0)(&names);
        }
        r
    }

    /// Reads requests until the filesystem is unmounted or `stop` is set, dispatching all
    /// but INIT, INTERRUPT and FORGET to `work`.
    pub(crate) fn read_loop(&self, work: &Sender<Request>, stop: &AtomicBool) -> io::Result<()> {
        let mut buf = vec![0u8; READ_BUFFER];
        loop {
            if stop.load(Ordering::Acquire) {
                return Ok(());
            }
            let mut fds = [rustix::event::PollFd::new(
                &self.dev,
                rustix::event::PollFlags::IN,
            )];
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            };
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let n = match (&self.dev).read(&mut buf) {
                Ok(n) => n,
                Err(e) => match e.raw_os_error() {
                    // Unmounted: the connection is gone.
                    Some(19) => return Ok(()),
                    // A request aborted before we read it, or a spurious wakeup.
                    Some(2 | 4 | 11) => continue,
                    _ => return Err(e),
                },
            };
            let req = match Request::parse(&buf[..n]) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("daxplug: ignoring a {e}");
                    continue;
                }
            };
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            match req.opcode {
                Opcode::Init => self.send(&self.init(&req)),
                Opcode::Interrupt => {
                    if let Ok(unique) = req.interrupted() {
                        self.interrupt(unique);
                    }
                }
                Opcode::Forget | Opcode::BatchForget => {}
                Opcode::Destroy => {
                    self.send(&Reply::ok(req.unique).finish());
                    return Ok(());
                }
                Opcode::Write => {
                    lock(&self.flights).insert(req.unique, Flight::Queued);
                    if work.send(req).is_err() {
                        return Ok(());
                    }
                }
                _ => {
                    if work.send(req).is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// A worker: serves requests until the reader stops.
    pub(crate) fn work_loop(&self, queue: &Mutex<Receiver<Request>>) {
        loop {
            let req = match lock(queue).recv() {
                Ok(r) => r,
                Err(_) => return,
            };
            let reply = match self.handle(&req) {
                Ok(r) => r.finish(),
                Err(e) => Reply::error(req.unique, e.raw()),
            };
            self.send(&reply);
        }
    }

    fn init(&self, req: &Request) -> Vec<u8> {
        match req.init() {
            Ok((major, _, max_readahead)) if major == proto::MAJOR => Reply::ok(req.unique)
                .init(max_readahead, MAX_WRITE)
                .finish(),
            // An older or newer major: answer with ours, the kernel decides.
            Ok(_) => Reply::ok(req.unique).init(0, MAX_WRITE).finish(),
            Err(_) => Reply::error(req.unique, Errno::EINVAL.raw()),
        }
    }

    fn interrupt(&self, unique: u64) {
        let mut flights = lock(&self.flights);
        match flights.get(&unique) {
            Some(Flight::Queued) => {
                flights.insert(unique, Flight::Interrupted);
            }
            // The write holds the model: the signal reaches it as the kernel's
            // signal_pending() would, between migration passes.
            Some(Flight::Running) => self.signal.store(true, Ordering::SeqCst),
            Some(Flight::Interrupted) | None => {}
        }
    }

    fn handle(&self, req: &Request) -> Outcome {
        let bad = |_| Errno::EINVAL;
        match req.opcode {
            Opcode::Lookup => {
                let parent = self.path(req.nodeid)?;
                let path = child(&parent, req.name().map_err(bad)?);
                let (attr, ttl) = self
                    .machine(|m| Some((attr_at(m, 0, &path, self.time)?, ttl(m, &path))))
                    .ok_or(Errno::ENOENT)?;
                let ino = lock(&self.inodes).intern(path);
                Ok(Reply::ok(req.unique).entry(&Attr { ino, ..attr }, ttl))
            }
            Opcode::Getattr | Opcode::Setattr => {
                // Setattr: a shell's `>` truncates before writing; sysfs ignores that.
                let path = self.path(req.nodeid)?;
                let (attr, ttl) = self
                    .machine(|m| Some((attr_at(m, req.nodeid, &path, self.time)?, ttl(m, &path))))
                    .ok_or(Errno::ENOENT)?;
                Ok(Reply::ok(req.unique).attr(&attr, ttl))
            }
            Opcode::Readlink => {
                let path = self.path(req.nodeid)?;
                let target = self.machine(|m| {
                    m.interleave();
                    m.sysfs_readlink(&path)
                })?;
                Ok(Reply::ok(req.unique).bytes(target.as_bytes()))
            }
            Opcode::Open => self.open(req),
            Opcode::Read => self.read(req),
            Opcode::Write => {
                let outcome = self.write(req);
                lock(&self.flights).remove(&req.unique);
                outcome
            }
            Opcode::Release | Opcode::Releasedir => {
                lock(&self.handles).remove(&req.fh().map_err(bad)?);
                Ok(Reply::ok(req.unique))
            }
            Opcode::Flush | Opcode::Fsync | Opcode::Fsyncdir => Ok(Reply::ok(req.unique)),
            Opcode::Opendir => {
                let path = self.path(req.nodeid)?;
                match self.machine(|m| kind_of(m, &path)) {
                    Some(Kind::Dir) => {}
                    Some(_) => return Err(Errno::ENOTDIR),
                    None => return Err(Errno::ENOENT),
                }
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                lock(&self.handles).insert(
                    fh,
                    Handle::Dir {
                        path,
                        entries: Vec::new(),
                    },
                );
                Ok(Reply::ok(req.unique).open(fh, 0))
            }
            Opcode::Readdir => self.readdir(req),
            Opcode::Statfs => Ok(Reply::ok(req.unique).statfs()),
            Opcode::Access => {
                let path = self.path(req.nodeid)?;
                self.machine(|m| kind_of(m, &path))
                    .map(|_| Reply::ok(req.unique))
                    .ok_or(Errno::ENOENT)
            }
            // What sysfs answers: no creating files (no ->create), no mkdir/unlink/rename
            // (no such inode operations).
            Opcode::Create | Opcode::Mknod => Err(Errno::EACCES),
            Opcode::Mkdir
            | Opcode::Unlink
            | Opcode::Rmdir
            | Opcode::Rename
            | Opcode::Rename2
            | Opcode::Link
            | Opcode::Symlink => Err(Errno::EPERM),
            Opcode::Init
            | Opcode::Interrupt
            | Opcode::Forget
            | Opcode::BatchForget
            | Opcode::Destroy
            | Opcode::Other(_) => Err(Errno::ENOSYS),
        }
    }

    fn open(&self, req: &Request) -> Outcome {
        let path = self.path(req.nodeid)?;
        let flags = req.open_flags().map_err(|_| Errno::EINVAL)?;
        let (read, write) = match self.machine(|m| kind_of(m, &path)) {
            Some(Kind::File { read, write }) => (read, write),
            Some(Kind::Dir) => return Err(Errno::EISDIR),
            Some(Kind::Link(_)) => return Err(Errno::ELOOP),
            None => return Err(Errno::ENOENT),
        };
        // kernfs refuses at open what the attribute cannot do, root or not.
        let wants = flags & 3;
        if (wants != 1 && !read) || (wants != 0 && !write) {
            return Err(Errno::EACCES);
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(
            fh,
            Handle::File {
                path,
                content: Vec::new(),
            },
        );
        Ok(Reply::ok(req.unique).open(fh, proto::FOPEN_DIRECT_IO))
    }

    fn read(&self, req: &Request) -> Outcome {
        self.stats.file_ops.fetch_add(1, Ordering::Relaxed);
        let (fh, offset, size) = req.read().map_err(|_| Errno::EINVAL)?;
        let path = match lock(&self.handles).get(&fh) {
            Some(Handle::File { path, .. }) => path.clone(),
            _ => return Err(Errno::EBADF),
        };
        let offset = usize::try_from(offset).map_err(|_| Errno::EINVAL)?;
        if offset == 0 {
            let text = self.machine(|m| {
                m.interleave();
                m.sysfs_read(&path)
            });
            // An attribute whose object went away while open: kernfs says ENODEV.
            let text = text.map_err(|e| if e == Errno::ENOENT { Errno::ENODEV } else { e })?;
            if let Some(Handle::File { content, .. }) = lock(&self.handles).get_mut(&fh) {
                *content = text.into_bytes();
            }
        }
        let handles = lock(&self.handles);
        let Some(Handle::File { content, .. }) = handles.get(&fh) else {
            return Err(Errno::EBADF);
        };
        let start = offset.min(content.len());
        let end = start.saturating_add(size as usize).min(content.len());
        Ok(Reply::ok(req.unique).bytes(&content[start..end]))
    }

    fn write(&self, req: &Request) -> Outcome {
        self.stats.file_ops.fetch_add(1, Ordering::Relaxed);
        let (fh, _, data) = req.write().map_err(|_| Errno::EINVAL)?;
        let path = match lock(&self.handles).get(&fh) {
            Some(Handle::File { path, .. }) => path.clone(),
            _ => return Err(Errno::EBADF),
        };
        let value = std::str::from_utf8(data).map_err(|_| Errno::EINVAL)?;
        let len = u32::try_from(data.len()).map_err(|_| Errno::EINVAL)?;
        let result = self.machine(|m| {
            {
                let mut flights = lock(&self.flights);
                if flights.get(&req.unique) == Some(&Flight::Interrupted) {
                    return Err(Errno::EINTR);
                }
                flights.insert(req.unique, Flight::Running);
            }
            // A signal meant for an earlier write that had already returned is moot.
            self.signal.store(false, Ordering::SeqCst);
            if path == MODPROBE_FILE {
                return modprobe(m, value);
            }
            m.interleave();
            m.sysfs_write(&path, value, Caller::Client)
        });
        match result {
            Ok(()) => Ok(Reply::ok(req.unique).written(len)),
            Err(e) if e == Errno::ENOENT && path != MODPROBE_FILE => Err(Errno::ENODEV),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn device_names(&self) -> Vec<String> {
        self.sim
            .with(|m| m.devices.iter().map(|d| d.name.clone()).collect())
    }

    pub(crate) fn remember_devices(&self, names: Vec<String>) {
        *lock(&self.devices) = names;
    }

    fn readdir(&self, req: &Request) -> Outcome {
        let (fh, offset, size) = req.read().map_err(|_| Errno::EINVAL)?;
        let path = match lock(&self.handles).get(&fh) {
            Some(Handle::Dir { path, .. }) => path.clone(),
            _ => return Err(Errno::EBADF),
        };
        if offset == 0 {
            let listed = self.machine(|m| {
                m.interleave();
                let mut v = if path == CONTROL_DIR {
                    vec![(
                        "modprobe".to_owned(),
                        control_kind(MODPROBE_FILE).unwrap_or(Kind::Dir),
                    )]
                } else if path == DEV_DIR {
                    m.devices
                        .iter()
                        .map(|d| {
                            (
                                d.name.clone(),
                                Kind::File {
                                    read: false,
                                    write: false,
                                },
                            )
                        })
                        .collect()
                } else {
                    m.entries(&path).ok_or(Errno::ENOENT)?
                };
                if path == "/" {
                    v.push((".daxplug".to_owned(), Kind::Dir));
                    v.push(("dev".to_owned(), Kind::Dir));
                    v.sort_by(|a, b| a.0.cmp(&b.0));
                }
                Ok::<_, Errno>(v)
            })?;
            let mut inodes = lock(&self.inodes);
            let own = inodes.intern(path.clone());
            let mut entries = vec![(".".to_owned(), own, 4), ("..".to_owned(), own, 4)];
            for (name, kind) in listed {
                let p = child(&path, &name);
                let ino = inodes.intern(p.clone());
                let t = if path == DEV_DIR {
                    2 // DT_CHR
                } else {
                    attr_of(ino, &p, &kind, 0).dirent_type()
                };
                entries.push((name, ino, t));
            }
            drop(inodes);
            if let Some(Handle::Dir { entries: e, .. }) = lock(&self.handles).get_mut(&fh) {
                *e = entries;
            }
        }
        let handles = lock(&self.handles);
        let Some(Handle::Dir { entries, .. }) = handles.get(&fh) else {
            return Err(Errno::EBADF);
        };
        let mut out = Vec::new();
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (name, ino, t)) in entries.iter().enumerate().skip(start) {
            if !proto::push_dirent(&mut out, size as usize, *ino, i as u64 + 1, *t, name) {
                break;
            }
        }
        Ok(Reply::ok(req.unique).bytes(&out))
    }
}

/// A module load requested through [`MODPROBE_FILE`].
fn modprobe(m: &mut Machine, value: &str) -> Result<(), Errno> {
    m.load_module(value.trim())
}

/// Starts the worker threads and the reader; returns their handles.
pub(crate) fn start(
    server: &Arc<Server>,
    workers: usize,
    stop: &Arc<AtomicBool>,
) -> io::Result<Vec<std::thread::JoinHandle<io::Result<()>>>> {
    let (tx, rx) = mpsc::channel::<Request>();
    let rx = Arc::new(Mutex::new(rx));
    let mut threads = Vec::new();
    for i in 0..workers {
        let s = Arc::clone(server);
        let rx = Arc::clone(&rx);
        threads.push(
            std::thread::Builder::new()
                .name(format!("fuse-worker-{i}"))
                .spawn(move || {
                    s.work_loop(&rx);
                    Ok(())
                })?,
        );
    }
    let s = Arc::clone(server);
    let stop = Arc::clone(stop);
    threads.push(
        std::thread::Builder::new()
            .name("fuse-reader".to_owned())
            .spawn(move || s.read_loop(&tx, &stop))?,
    );
    Ok(threads)
}

#[cfg(test)]
mod tests {
    use super::ttl;
    use daxplug_model::{Flavour, build_preset};

    #[test]
    fn only_what_cannot_change_is_cached() {
        // Atomic, with kmem bound: every path below exists, `state` included.
        let mut m = build_preset("hmem", Flavour::Atomic, 1).expect("preset");
        m.kmem_loaded = true;
        m.sysfs_write(
            "/sys/bus/dax/drivers/kmem/bind",
            "dax0.0",
            daxplug_model::Caller::Client,
        )
        .expect("bind kmem");
        assert!(
            m.kind("/sys/devices/platform/hmem.0/dax0.0/state")
                .is_some()
        );
        let ttl = |p: &str| ttl(&m, p);
        for fixed in [
            "/sys",
            "/sys/devices/system/memory",
            "/sys/devices/system/memory/block_size_bytes",
            "/sys/devices/system/node",
            "/sys/bus/dax/devices",
            "/sys/devices/platform",
            "/proc/iomem",
        ] {
            assert!(ttl(fixed) > 0, "{fixed}");
        }
        for changing in [
            "/sys/devices/system/memory/memory40",
            "/sys/devices/system/memory/memory40/state",
            "/sys/devices/system/node/node1",
            "/sys/devices/system/node/node1/memory40",
            "/sys/bus/dax/devices/dax0.0",
            "/sys/bus/dax/drivers/kmem",
            "/sys/bus/dax/drivers/device_dax/dax0.0",
            "/sys/devices/platform/hmem.0/dax0.0/driver",
            "/sys/devices/platform/hmem.0/dax0.0/state",
            "/sys/module/kmem",
            "/sys/dev/char/252:0",
            "/dev/dax0.0",
        ] {
            assert_eq!(ttl(changing), 0, "{changing}");
        }
    }
}
