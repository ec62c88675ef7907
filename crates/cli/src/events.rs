//! Where the daemon's wake-ups come from: the kernel's uevent netlink socket on a live
//! machine, inotify on a copied tree, the emulated machine's uevent number under `--sim`,
//! or a poll where no source can see changes (the emulated `/sys` FUSE serves under
//! `sim run`). Each source waits until something concerning memory blocks or dax devices
//! happened, a signal arrived, the policy file changed, or the time ran out; nothing wakes
//! the daemon while nothing happens.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use daxplug_kernel::{NetlinkWatch, Seen, UeventWatch as _};
use daxplug_model::{MachineFile, Sim};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};

/// What ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// This many events about memory blocks or dax devices.
    Events(u64),
    /// The source lost events (netlink's `ENOBUFS`, inotify's queue overflow): everything
    /// must be looked at again.
    Overflow,
    /// A signal, or the policy file changed: the loop looks at its flags.
    Control,
    /// Nothing happened.
    Timeout,
}

/// The fds every source also waits on: a signal pipe, the policy file's watch and the
/// maintenance holds' directory (a release or a new hold acts at once, not at the next
/// sweep).
pub struct Control {
    signals: UnixStream,
    config: Option<(OwnedFd, PathBuf)>,
    holds: Option<OwnedFd>,
}

/// What changed while the daemon waited, besides the kernel's devices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// The policy file was written or replaced.
    pub config: bool,
    /// A hold was taken or released.
    pub holds: bool,
}

/// A hold is written by a rename into the directory and released by removing its file.
const HOLDS_WATCH: WatchFlags = WatchFlags::MOVED_TO
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::DELETE);

/// What of the policy file is watched: its own inode, not its directory (a busy `/tmp`
/// would wake the daemon for every file there). Replacing the file by a rename ends the
/// old inode's watch (`IN_DELETE_SELF`, `IN_ATTRIB`), and the new file is watched again.
const CONFIG_WATCH: WatchFlags = WatchFlags::CLOSE_WRITE
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF);

impl Control {
    /// Makes SIGINT, SIGTERM and SIGHUP wake a waiting source (their flags are set by
    /// their own handlers), and watches the policy file's inode (again after a rename or
    /// replacement: an editor's save, a configuration manager's write) and the holds'
    /// directory, so that either wakes it too.
    pub fn new(config: &Path, holds_dir: &Path) -> anyhow::Result<Self> {
        let (read, write) = UnixStream::pair().context("cannot make the signal pipe")?;
        read.set_nonblocking(true)
            .context("cannot make the signal pipe non-blocking")?;
        for sig in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            let w = write.try_clone().context("cannot make the signal pipe")?;
            signal_hook::low_level::pipe::register(sig, w)
                .context("cannot install the signal handlers")?;
        }
        let config = (|| {
            let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()?;
            inotify::add_watch(&fd, config, CONFIG_WATCH).ok()?;
            Some((fd, config.to_path_buf()))
        })();
        // The directory is made here so that the first hold is seen too.
        let holds = (|| {
            std::fs::create_dir_all(holds_dir).ok()?;
            let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()?;
            inotify::add_watch(&fd, holds_dir, HOLDS_WATCH).ok()?;
            Some(fd)
        })();
        Ok(Self {
            signals: read,
            config,
            holds,
        })
    }

    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut v = vec![self.signals.as_fd()];
        if let Some((fd, _)) = &self.config {
            v.push(fd.as_fd());
        }
        if let Some(fd) = &self.holds {
            v.push(fd.as_fd());
        }
        v
    }

    /// Empties the signal pipe; returns whether the policy file was written or replaced,
    /// and whether a hold was taken or released.
    pub fn drain(&self) -> Changes {
        use std::io::Read as _;
        let mut buf = [0u8; 64];
        while (&self.signals).read(&mut buf).is_ok_and(|n| n > 0) {}
        let holds = self
            .holds
            .as_ref()
            .is_some_and(|fd| read_inotify(fd, |_, _, _| {}) > 0);
        let Some((fd, path)) = &self.config else {
            return Changes {
                config: false,
                holds,
            };
        };
        let changed = read_inotify(fd, |_, _, _| {}) > 0;
        if changed {
            // A replaced file is a new inode: watch it (a missing one is reported by the
            // reload, and watched again at the next change of the old inode's name).
            let _ = inotify::add_watch(fd, path, CONFIG_WATCH);
        }
        Changes {
            config: changed,
            holds,
        }
    }
}

/// Reads every queued inotify event: (watch, mask, file name).
fn read_inotify(fd: &OwnedFd, mut each: impl FnMut(i32, u32, Option<&[u8]>)) -> usize {
    let mut buf = vec![0u8; 64 * 1024];
    let mut count = 0;
    while let Ok(n) = rustix::io::read(fd, &mut buf) {
        if n == 0 {
            break;
        }
        let mut at = 0;
        // struct inotify_event: wd, mask, cookie, len, then len bytes of name.
        while at + 16 <= n {
            let word = |i: usize| {
                u32::from_ne_bytes(buf[at + i..at + i + 4].try_into().unwrap_or_default())
            };
            let (wd, mask, len) = (word(0) as i32, word(4), word(12) as usize);
            let name = buf
                .get(at + 16..at + 16 + len)
                .map(|b| &b[..b.iter().position(|c| *c == 0).unwrap_or(b.len())])
                .filter(|b| !b.is_empty());
            each(wd, mask, name);
            count += 1;
            at += 16 + len;
        }
    }
    count
}

/// Polls `fds` (the source's first, if any) for up to `timeout`: which are readable.
fn poll(fds: &[BorrowedFd<'_>], timeout: Duration) -> Vec<bool> {
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN))
        .collect();
    let ts = Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    match rustix::event::poll(&mut pfds, Some(&ts)) {
        Ok(_) => pfds.iter().map(|p| !p.revents().is_empty()).collect(),
        // EINTR: a signal; its pipe is readable and the next poll says so.
        Err(_) => vec![false; fds.len()],
    }
}

/// A source of wake-ups.
pub trait Source {
    /// Waits up to `timeout`.
    fn wait(&mut self, control: &Control, timeout: Duration) -> Wake;
    /// Whether it sees every change (if not, the loop polls at the sweep interval).
    fn sees_changes(&self) -> bool {
        true
    }
    /// The source's name, for the log.
    fn name(&self) -> &'static str;
    /// Called after each pass: a source watching files learns the ones that appeared.
    fn refresh(&mut self) {}
    /// Called before a pass: a source sharing the machine with other commands takes it.
    fn pass_begins(&mut self) {}
    /// Called after a pass: such a source gives the machine back to other commands.
    fn pass_ends(&mut self) {}
}

/// The kernel's `NETLINK_KOBJECT_UEVENT` group.
pub struct Netlink {
    watch: NetlinkWatch,
}

impl Netlink {
    pub fn open() -> anyhow::Result<Self> {
        // A storm fills the default buffer at once; the kernel then drops events
        // (ENOBUFS), which makes the daemon rescan everything.
        let watch = NetlinkWatch::listen(4 << 20)
            .context("cannot listen to kernel uevents (needs root)")?;
        Ok(Self { watch })
    }

    /// Reads every queued message: how many concern memory or dax, or the overflow.
    fn drain(&mut self) -> Result<u64, Wake> {
        match self.watch.seen() {
            Seen::Lost => Err(Wake::Overflow),
            Seen::Messages(m) => Ok(m.iter().filter(|msg| relevant(msg)).count() as u64),
        }
    }
}

/// Whether a uevent concerns daxplug: a memory block or a dax device.
fn relevant(msg: &[u8]) -> bool {
    daxplug_abi::Uevent::parse_message(msg)
        .is_ok_and(|e| matches!(e.get("SUBSYSTEM"), Some("memory" | "dax")))
}

impl Source for Netlink {
    fn wait(&mut self, control: &Control, timeout: Duration) -> Wake {
        let deadline = Instant::now() + timeout;
        loop {
            let mut fds = vec![self.watch.as_fd()];
            fds.extend(control.fds());
            let ready = poll(&fds, deadline.saturating_duration_since(Instant::now()));
            if ready.iter().skip(1).any(|r| *r) {
                return Wake::Control;
            }
            if ready.first().copied().unwrap_or(false) {
                match self.drain() {
                    Ok(0) => {}
                    Ok(n) => return Wake::Events(n),
                    Err(w) => return w,
                }
            }
            if Instant::now() >= deadline {
                return Wake::Timeout;
            }
        }
    }
    fn name(&self) -> &'static str {
        "kernel uevents (netlink)"
    }
}

/// inotify on a copied tree: the files a writer changes (a block's `state`, a device's
/// attributes and `driver` link, `/proc/iomem`) and the directories where blocks and
/// devices appear.
pub struct Inotify {
    fd: OwnedFd,
    root: PathBuf,
    /// Set when a directory gained entries: the new ones need watches.
    grown: bool,
    /// The watch limit was reached: some files are not watched.
    pub partial: bool,
}

const DIR_WATCH: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::MOVED_FROM);
const FILE_WATCH: WatchFlags = WatchFlags::CLOSE_WRITE
    .union(WatchFlags::MODIFY)
    .union(DIR_WATCH);

impl Inotify {
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
            .context("cannot start inotify")?;
        let mut s = Self {
            fd,
            root: root.to_path_buf(),
            grown: true,
            partial: false,
        };
        s.refresh();
        Ok(s)
    }

    fn watch(&mut self, path: &Path, flags: WatchFlags) {
        match inotify::add_watch(&self.fd, path, flags) {
            Ok(_) | Err(rustix::io::Errno::NOENT) => {}
            Err(_) => self.partial = true,
        }
    }
}

impl Source for Inotify {
    fn wait(&mut self, control: &Control, timeout: Duration) -> Wake {
        let mut fds = vec![self.fd.as_fd()];
        fds.extend(control.fds());
        let ready = poll(&fds, timeout);
        if ready.iter().skip(1).any(|r| *r) {
            return Wake::Control;
        }
        if !ready.first().copied().unwrap_or(false) {
            return Wake::Timeout;
        }
        let mut overflow = false;
        let mut grown = false;
        let n = read_inotify(&self.fd, |_, mask, _| {
            overflow |= mask & 0x4000 != 0; // IN_Q_OVERFLOW
            grown |= mask & (0x100 | 0x80) != 0; // IN_CREATE, IN_MOVED_TO
        });
        self.grown |= grown;
        if overflow {
            Wake::Overflow
        } else {
            Wake::Events(n as u64)
        }
    }
    fn sees_changes(&self) -> bool {
        // Past the watch limit some blocks are not watched: polling covers them.
        !self.partial
    }
    fn name(&self) -> &'static str {
        if self.partial {
            "file changes in the tree (inotify, partial: the watch limit was reached)"
        } else {
            "file changes in the tree (inotify)"
        }
    }
    fn refresh(&mut self) {
        if !self.grown {
            return;
        }
        self.grown = false;
        let sys = self.root.join("sys");
        let memory = sys.join("devices/system/memory");
        let devices = sys.join("bus/dax/devices");
        self.watch(&memory, DIR_WATCH);
        self.watch(&devices, DIR_WATCH);
        self.watch(&self.root.join("proc"), FILE_WATCH);
        for entry in std::fs::read_dir(&memory).into_iter().flatten().flatten() {
            if entry.file_name().as_encoded_bytes().starts_with(b"memory") {
                self.watch(&entry.path(), FILE_WATCH);
            }
        }
        for entry in std::fs::read_dir(&devices).into_iter().flatten().flatten() {
            // The link resolved: the device's own directory holds its attributes.
            if let Ok(dir) = std::fs::canonicalize(entry.path()) {
                self.watch(&dir, FILE_WATCH);
            }
        }
    }
}

/// The emulated machine under `--sim`: its actors run while the daemon waits, 20
/// scheduler steps a tick of 20 ms, and a moved uevent number means something happened.
pub struct Model<'a> {
    pub sim: &'a Sim,
    /// The machine file, shared with other commands: locked only while the daemon uses the
    /// machine (a pass, a tick of its actors), and read again when another command saved it.
    store: &'a MachineFile,
    /// The file as this process last saved or read it.
    stamp: Option<(std::time::SystemTime, u64)>,
    seen: u64,
    /// When the machine may run its next steps: it keeps its pace whoever asks.
    next_tick: Instant,
}

impl<'a> Model<'a> {
    /// Watches `sim`, which was loaded from `store` (whose lock is held now).
    pub fn new(sim: &'a Sim, store: &'a MachineFile) -> Self {
        let seen = sim.with(|m| m.uevent_seqnum);
        Self {
            sim,
            store,
            stamp: store.stamp(),
            seen,
            next_tick: Instant::now(),
        }
    }

    /// Takes the machine file's lock, and reads the machine again if another command
    /// saved it since.
    fn take(&mut self) {
        if let Err(e) = self.store.relock() {
            eprintln!("daxplug-daemon: {e}");
        }
        if self.store.stamp() != self.stamp {
            match self.store.load() {
                Ok(m) => self.sim.replace(m),
                Err(e) => eprintln!("daxplug-daemon: {e}"),
            }
        }
    }

    /// Saves the machine and lets other commands have the file.
    fn give_back(&mut self) {
        if let Err(e) = self.sim.save_to(self.store) {
            eprintln!("daxplug-daemon: {e}");
        }
        self.let_go();
    }

    /// Lets other commands have the file, unchanged since it was saved or loaded.
    fn let_go(&mut self) {
        self.stamp = self.store.stamp();
        if let Err(e) = self.store.unlock() {
            eprintln!("daxplug-daemon: {e}");
        }
    }
}

/// How often the emulated machine runs its actors while the daemon waits.
const MODEL_TICK: Duration = Duration::from_millis(50);

impl Source for Model<'_> {
    fn wait(&mut self, control: &Control, timeout: Duration) -> Wake {
        let deadline = Instant::now() + timeout;
        loop {
            if Instant::now() >= self.next_tick {
                self.next_tick = Instant::now() + MODEL_TICK;
                self.take();
                let stepped = self.sim.with(|m| {
                    if m.quiet() {
                        return false;
                    }
                    for _ in 0..20 {
                        m.step();
                    }
                    true
                });
                // A machine that only waits is not written back: nothing changed.
                if stepped {
                    self.give_back();
                } else {
                    self.let_go();
                }
            }
            // The daemon's own transitions count too, as their uevents do on a kernel.
            let now = self.sim.with(|m| m.uevent_seqnum);
            if now > self.seen {
                let n = now - self.seen;
                self.seen = now;
                return Wake::Events(n);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Wake::Timeout;
            }
            let tick = self.next_tick.saturating_duration_since(Instant::now());
            if poll(&control.fds(), left.min(tick)).iter().any(|r| *r) {
                return Wake::Control;
            }
        }
    }
    fn name(&self) -> &'static str {
        "the emulated machine's uevents"
    }
    fn pass_begins(&mut self) {
        self.take();
    }
    fn pass_ends(&mut self) {
        self.give_back();
    }
}

/// No source sees changes (the emulated `/sys` under `sim run`, served through FUSE,
/// sends neither uevents nor inotify events): the loop polls at the sweep interval.
pub struct Poll;

impl Source for Poll {
    fn wait(&mut self, control: &Control, timeout: Duration) -> Wake {
        if poll(&control.fds(), timeout).iter().any(|r| *r) {
            Wake::Control
        } else {
            Wake::Timeout
        }
    }
    fn sees_changes(&self) -> bool {
        false
    }
    fn name(&self) -> &'static str {
        "polling (no event source reaches this /sys)"
    }
}
