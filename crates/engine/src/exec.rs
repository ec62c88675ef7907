//! Running a transition: the lock, the journal, interruptible writes, each step, rollback,
//! and recovery of a crashed transition.

use std::fs::{File, OpenOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use daxplug_abi::{BlockState, DaxState, OnlineType, Zone};
use daxplug_kernel::{Errno, Kernel, KernelError, ThreadToken, paths};
use serde::Serialize;

use crate::error::DiscoveryError;
use crate::host::Host;
use crate::journal::{JOURNAL_VERSION, Journal, JournalFile};
use crate::observe::ObservedState;
use crate::plan::{BindMethod, Plan, Protocol, Refusal, Step, plan};
use crate::target::Target;
use crate::topology::{Device, Driver, Topology};

/// How long a transition may wait for another daxplug's lock when it has no timeout.
const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);
/// How often a blocked write is checked for a deadline or cancellation (and signalled again).
const POLL: Duration = Duration::from_millis(20);
/// How long every block must stay offline before kmem is unbound (default of
/// `Options::settle`): longer than the cycle of a controller that polls for offline blocks
/// and onlines them, so that such a controller shows itself before the unbind rather than
/// in the window between the last check and the unbind, where it would leak the range.
pub const SETTLE: Duration = Duration::from_millis(250);
/// The fewest checks of the settle period.
const SETTLE_ROUNDS: u32 = 10;

/// How a transition is run.
#[derive(Clone)]
pub struct Options {
    /// Give up (rolling back) after this long; `None` waits as long as the kernel does.
    pub timeout: Option<Duration>,
    /// Pass the safety checks.
    pub force: bool,
    /// Only plan.
    pub dry_run: bool,
    /// Set by a signal handler (Ctrl-C, SIGTERM): roll back.
    pub cancel: Arc<AtomicBool>,
    /// How many times blocks someone else re-onlines are offlined again before giving up.
    pub max_rounds: u32,
    /// Progress messages while offlining (for a progress bar).
    pub progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
    /// Test hook: stop dead (no cleanup, as a crash would) right before the Nth kernel
    /// write or udev action of the transition (its journal saved), or after the last.
    pub crash_at: Option<usize>,
    /// How long every block must stay offline before kmem is unbound without a `state`
    /// file (at least `SETTLE_ROUNDS` checks happen whatever this is).
    pub settle: Duration,
    /// Test hook: run the fallback unplug the per-block way (one offline pass, no settle
    /// period, no last check before the unbind), so that the tests can show they catch a
    /// broken protocol.
    pub broken_commit: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: None,
            force: false,
            dry_run: false,
            cancel: Arc::new(AtomicBool::new(false)),
            max_rounds: 8,
            progress: None,
            crash_at: None,
            settle: SETTLE,
            broken_commit: false,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("timeout", &self.timeout)
            .field("force", &self.force)
            .field("dry_run", &self.dry_run)
            .field("max_rounds", &self.max_rounds)
            .field("crash_at", &self.crash_at)
            .finish_non_exhaustive()
    }
}

/// Progress of the offlining phase.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The device.
    pub device: String,
    /// Blocks handled so far.
    pub done: u64,
    /// Blocks to handle.
    pub total: u64,
    /// The block being offlined.
    pub block: u64,
}

/// How a transition ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The device is in the requested state.
    Done,
    /// It already was.
    NoChange,
    /// `--dry-run`: nothing was done.
    DryRun,
    /// Nothing was done: a bad request, a busy or stuck device, a safety check.
    Refused,
    /// It failed or was cancelled, and the device is back where it started.
    RolledBack,
    /// The kernel leaked the device's range.
    Stuck,
    /// The device could not be put back together: it is left mixed.
    Torn,
    /// It failed and the device is consistent, but neither where it started nor where asked.
    Failed,
}

/// Time spent in one step.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTime {
    /// The step.
    pub phase: String,
    /// Milliseconds.
    pub millis: f64,
}

/// What a transition did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The device.
    pub device: String,
    /// Observed state before.
    pub start: Option<ObservedState>,
    /// The state asked for.
    pub target: Target,
    /// Observed state after.
    pub end: Option<ObservedState>,
    /// Native or fallback.
    pub protocol: Protocol,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, for anything but success.
    pub reason: Option<String>,
    /// The commands of the plan (all of them for `--dry-run`).
    pub plan: Vec<String>,
    /// What was done, in order.
    pub actions: Vec<String>,
    /// Time per step.
    pub phases: Vec<PhaseTime>,
    /// Milliseconds spent inside kernel writes.
    pub kernel_write_millis: f64,
    /// Milliseconds spent waiting on purpose: the settle period before a fenced unbind
    /// (daxplug's own time is the rest: planning, verification reads, the journal).
    pub settle_millis: f64,
    /// Milliseconds spent writing the journal (part of daxplug's own time).
    pub journal_millis: f64,
    /// Milliseconds in all.
    pub total_millis: f64,
    /// Crashed transitions recovered first.
    pub recovered: Vec<String>,
    /// Blocks of a stuck device.
    pub stuck_blocks: Vec<u64>,
}

/// A transition could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// Reading the machine failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The lock or journal could not be used.
    #[error("cannot use {path}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Why a step failed.
#[derive(Debug)]
enum Fail {
    Busy(u64),
    Contended(Vec<u64>),
    Timeout,
    Cancelled,
    Kernel(KernelError),
    Verify(String),
    Journal(std::io::Error),
    Crash,
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Busy(b) => write!(
                f,
                "memory{b} will not go offline (EBUSY: an unmovable page)"
            ),
            Fail::Contended(ids) => write!(
                f,
                "another controller kept onlining {} again while daxplug offlined them (unbinding kmem then would have leaked the range); stop it, or use a kernel with daxX.Y/state",
                crate::problems::format_block_ids(ids.iter().copied())
            ),
            Fail::Timeout => f.write_str("the timeout expired"),
            Fail::Cancelled => f.write_str("cancelled by a signal"),
            Fail::Kernel(e) => write!(f, "{e}"),
            Fail::Verify(s) => f.write_str(s),
            Fail::Journal(e) => write!(f, "the journal could not be written: {e}"),
            Fail::Crash => f.write_str("simulated crash"),
        }
    }
}

/// What undoes a step that was done.
#[derive(Debug, Clone)]
enum Undo {
    Reonline,
    BindDeviceDax(BindMethod),
    UnbindDeviceDax,
    WriteState(String),
    HotAdd(OnlineType, BindMethod),
    RemoveAgain,
}

/// Interrupts a transition's writes when it must stop (Ctrl-C, the timeout). A thread of
/// its own, parked until a write that may block begins; while the write lasts and the run
/// must stop, it signals the writing thread every `POLL` (a signal that lands while the
/// writer waits for the hotplug lock is consumed by the restart, and must be sent again).
/// The writes stay on the transition's thread: none waits for a thread to start or to hand
/// back its result, which on a slow machine costs more than the write.
struct Watchdog {
    state: Arc<WatchState>,
    thread: std::thread::Thread,
}

#[derive(Default)]
struct WatchState {
    writing: AtomicBool,
    interrupted: AtomicBool,
    over: AtomicBool,
}

impl Watchdog {
    /// Starts watching for writes of the calling thread.
    fn start(
        interrupt: daxplug_kernel::Interrupter,
        cancel: Arc<AtomicBool>,
        deadline: Option<Instant>,
    ) -> std::io::Result<Self> {
        let state = Arc::new(WatchState::default());
        let writer = ThreadToken::current();
        let watched = Arc::clone(&state);
        let handle = std::thread::Builder::new()
            .name("daxplug-watchdog".to_owned())
            .stack_size(64 * 1024)
            .spawn(move || {
                while !watched.over.load(Ordering::SeqCst) {
                    if !watched.writing.load(Ordering::SeqCst) {
                        std::thread::park();
                        continue;
                    }
                    std::thread::park_timeout(POLL);
                    let stop = cancel.load(Ordering::SeqCst)
                        || deadline.is_some_and(|d| Instant::now() >= d);
                    if stop && watched.writing.load(Ordering::SeqCst) {
                        watched.interrupted.store(true, Ordering::SeqCst);
                        interrupt(writer);
                    }
                }
            })?;
        Ok(Self {
            state,
            thread: handle.thread().clone(),
        })
    }

    /// A write that may block begins.
    fn begin(&self) {
        self.state.interrupted.store(false, Ordering::SeqCst);
        self.state.writing.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }

    /// The write returned: whether the watchdog interrupted it.
    fn end(&self) -> bool {
        self.state.writing.store(false, Ordering::SeqCst);
        self.state.interrupted.load(Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Not joined: it sees this at once and ends on its own.
        self.state.over.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

struct Run<'a> {
    host: &'a dyn Host,
    k: &'a dyn Kernel,
    opts: &'a Options,
    started: Instant,
    deadline: Option<Instant>,
    journal: Journal,
    file: JournalFile,
    /// Kernel writes and udev actions begun (the crash test hook counts them).
    crash_points: usize,
    /// The journal has notes not written yet.
    unsaved: bool,
    actions: Vec<String>,
    undo: Vec<Undo>,
    kernel_time: Duration,
    settle_time: Duration,
    journal_time: Duration,
    rolling_back: bool,
    /// kmem's and device_dax's bind methods, when known from the plan's observation.
    bind_methods: Option<(BindMethod, BindMethod)>,
    /// The device as last read, while daxplug has written nothing that could change it
    /// since: the next check may start from it instead of reading it again.
    seen: Option<Device>,
    /// Interrupts writes when the run must stop (started by the first write that needs it).
    watchdog: Option<Arc<Watchdog>>,
}

impl<'a> Run<'a> {
    /// A run of `journal`'s plan (a fresh one, or one recovered after a crash) with nothing
    /// done yet.
    fn new(
        host: &'a dyn Host,
        opts: &'a Options,
        journal: Journal,
        file: JournalFile,
        started: Instant,
        deadline: Option<Instant>,
        bind_methods: Option<(BindMethod, BindMethod)>,
    ) -> Self {
        Self {
            host,
            k: host.kernel(),
            opts,
            started,
            deadline,
            journal,
            file,
            crash_points: 0,
            unsaved: false,
            actions: Vec::new(),
            undo: Vec::new(),
            kernel_time: Duration::ZERO,
            settle_time: Duration::ZERO,
            journal_time: Duration::ZERO,
            rolling_back: false,
            bind_methods,
            seen: None,
            watchdog: None,
        }
    }
}

/// `auto_online_blocks` and memory_hotplug's module parameters: settings, which a write
/// changes at once, touching no block or driver.
fn is_hotplug_setting(path: &str) -> bool {
    path == paths::AUTO_ONLINE_BLOCKS || path.starts_with(paths::HOTPLUG_PARAMS)
}

/// Whether a write to `path` may wait in the kernel (for the hotplug lock, a migration, a
/// probe), so that it needs a thread a timeout or Ctrl-C can interrupt.
fn may_block(path: &str) -> bool {
    !is_hotplug_setting(path)
}

/// The observed device of a one-device topology.
fn with_device(topo: Topology, device: &str) -> Result<(Topology, Device), DiscoveryError> {
    let dev = topo
        .devices
        .first()
        .cloned()
        .ok_or_else(|| DiscoveryError::UnknownDevice {
            name: device.to_owned(),
            present: "none".to_owned(),
        })?;
    Ok((topo, dev))
}

fn observe_device(k: &dyn Kernel, device: &str) -> Result<(Topology, Device), DiscoveryError> {
    // What a plan needs: the device, its region, whether kmem is loaded, and the
    // auto-online policy its commands mention; not the node lists or meminfo of a full
    // discovery.
    crate::topology::require_memory_hotplug(k)?;
    let mut topo = crate::topology::discover_device(k, device)?;
    topo.policy.auto_online_blocks = crate::topology::read_auto_online_blocks(k)?;
    with_device(topo, device)
}

/// The device alone (no machine-wide policy or nodes): what a transition re-reads to
/// verify its steps.
fn reobserve_device(k: &dyn Kernel, device: &str) -> Result<(Topology, Device), DiscoveryError> {
    with_device(crate::topology::discover_device(k, device)?, device)
}

/// Reads the device until two reads in a row agree, so that the verdict is not drawn from
/// a read torn by another controller acting between two block reads (bounded). `seen`, a
/// read made just before with nothing written since, counts as the first.
fn stable_observation(
    k: &dyn Kernel,
    device: &str,
    seen: Option<Device>,
) -> Result<Device, DiscoveryError> {
    let mut dev = match seen {
        Some(d) => d,
        None => reobserve_device(k, device)?.1,
    };
    for _ in 0..5 {
        let (_, again) = reobserve_device(k, device)?;
        let same = again.state == dev.state && again.blocks == dev.blocks;
        dev = again;
        if same {
            break;
        }
    }
    Ok(dev)
}

/// The system-wide lock, held for the whole transition.
struct Lock {
    _file: File,
}

fn take_lock(host: &dyn Host, deadline: Option<Instant>) -> Result<Option<Lock>, TransitionError> {
    let dir = host.run_dir().join("lock");
    let path = dir.join("daxplug.lock");
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
    let until = deadline.unwrap_or_else(|| Instant::now() + DEFAULT_LOCK_WAIT);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(Lock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < until => {
                std::thread::sleep(POLL)
            }
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
}

fn report(device: &str, target: Target) -> Report {
    Report {
        device: device.to_owned(),
        start: None,
        target,
        end: None,
        protocol: Protocol::None,
        outcome: Outcome::Refused,
        reason: None,
        plan: Vec::new(),
        actions: Vec::new(),
        phases: Vec::new(),
        kernel_write_millis: 0.0,
        settle_millis: 0.0,
        journal_millis: 0.0,
        total_millis: 0.0,
        recovered: Vec::new(),
        stuck_blocks: Vec::new(),
    }
}

impl Report {
    /// Records the time since `since` as `phase`, and restarts the clock.
    fn lap(&mut self, phase: &str, since: &mut Instant) {
        let now = Instant::now();
        self.phases.push(PhaseTime {
            phase: phase.to_owned(),
            millis: (now - *since).as_secs_f64() * 1e3,
        });
        *since = now;
    }
}

fn plan_lines(p: &Plan, dev: &Device, topo: &Topology) -> Vec<String> {
    p.steps
        .iter()
        .flat_map(|s| s.commands(dev, topo.policy.auto_online_blocks))
        .collect()
}

/// Moves `device` to `target`.
pub fn set(
    host: &dyn Host,
    device: &str,
    target: Target,
    opts: &Options,
) -> Result<Report, TransitionError> {
    let started = Instant::now();
    let deadline = opts.timeout.map(|t| started + t);
    let k = host.kernel();
    let mut rep = report(device, target);

    if opts.dry_run {
        let (topo, dev) = observe_device(k, device)?;
        rep.start = Some(dev.state);
        rep.end = Some(dev.state);
        match plan(&topo, &dev, target, opts.force) {
            Ok(p) => {
                rep.protocol = p.protocol;
                rep.plan = plan_lines(&p, &dev, &topo);
                rep.outcome = if p.steps.is_empty() {
                    Outcome::NoChange
                } else {
                    Outcome::DryRun
                };
            }
            Err(r) => refuse(&mut rep, &r, &dev),
        }
        return Ok(rep);
    }

    let mut lap = Instant::now();
    let Some(_lock) = take_lock(host, deadline)? else {
        rep.reason = Some(format!(
            "another daxplug (or the daxplug daemon) holds {}: it is changing device memory now; try again when it is done",
            host.run_dir().join("lock/daxplug.lock").display()
        ));
        return Ok(rep);
    };
    rep.lap("lock", &mut lap);
    rep.recovered = recover_locked(host, opts)?;
    rep.lap("recovery check", &mut lap);

    // Looking for users of /dev/daxX.Y means reading every process's descriptors and
    // mappings: when device_dax holds the device, that scan runs beside the observation
    // (files only: the model answers one call at a time, in a deterministic order).
    let scan_early = !opts.force
        && k.parallel_reads()
        && k.read_link(&format!("{}/driver", paths::dax_device(device)))
            .is_ok_and(|t| t.ends_with(paths::DEVICE_DAX));
    let (observed, early_users) = std::thread::scope(|s| {
        let scan = scan_early.then(|| s.spawn(|| host.dax_users(device)));
        let observed = observe_device(k, device);
        let users = scan.map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        (observed, users)
    });
    let (topo, dev) = observed?;
    rep.start = Some(dev.state);
    let planned = plan(&topo, &dev, target, opts.force);
    rep.lap("observe and plan", &mut lap);
    let p = match planned {
        Ok(p) => p,
        Err(r) => {
            refuse(&mut rep, &r, &dev);
            rep.end = Some(dev.state);
            return Ok(rep);
        }
    };
    rep.protocol = p.protocol;
    rep.plan = plan_lines(&p, &dev, &topo);
    if p.steps.is_empty() {
        rep.outcome = Outcome::NoChange;
        rep.end = Some(dev.state);
        return Ok(rep);
    }
    if dev.driver == Driver::DeviceDax && !opts.force {
        let users = early_users.unwrap_or_else(|| host.dax_users(device));
        rep.lap("users check", &mut lap);
        if !users.is_empty() {
            rep.reason = Some(format!(
                "/dev/{device} is open or mapped by process{} {}: switching it would pull the memory from under them; pass --force to do it anyway",
                if users.len() == 1 { "" } else { "es" },
                users
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            rep.end = Some(dev.state);
            return Ok(rep);
        }
    }

    let methods = bind_methods(&topo, &dev);
    execute(
        host,
        opts,
        &p,
        &mut rep,
        started,
        Some(methods),
        &layout(&dev),
    )?;
    Ok(rep)
}

/// How kmem and device_dax bind this device: facts of its region and of the loaded
/// drivers, taken from the observation the plan was made from, so that the runner does not
/// read the whole device again just to know them.
fn bind_methods(topo: &Topology, dev: &Device) -> (BindMethod, BindMethod) {
    (
        crate::plan::kmem_method(topo, dev),
        crate::plan::devdax_method(topo, dev),
    )
}

/// Each block of a device with its state and zone: what "nothing changed" is checked
/// against when a transition that started from a mixed device fails.
type Layout = Vec<(u64, BlockState, Option<Zone>)>;

fn layout(dev: &Device) -> Layout {
    dev.blocks
        .iter()
        .map(|b| (b.id, b.state, b.zone()))
        .collect()
}

/// Runs a plan under a fresh journal: steps, rollback on failure, cleanup, verdict. A
/// simulated crash (test hook) leaves everything as a crash would.
fn execute(
    host: &dyn Host,
    opts: &Options,
    p: &Plan,
    rep: &mut Report,
    started: Instant,
    bind_methods: Option<(BindMethod, BindMethod)>,
    start_layout: &Layout,
) -> Result<(), TransitionError> {
    let journal = Journal {
        version: JOURNAL_VERSION,
        pid: std::process::id(),
        device: p.device.clone(),
        target: p.target,
        start: p.start,
        protocol: p.protocol,
        steps: p.steps.clone(),
        step: 0,
        note: "planned".to_owned(),
        committed: false,
        saved_aob: None,
        saved_policy: None,
        udev_stopped: false,
        offlined: Vec::new(),
        unbound_device_dax: false,
    };
    let file = JournalFile::for_device(&host.run_dir(), &p.device);
    let deadline = opts.timeout.map(|t| started + t);
    let mut run = Run::new(host, opts, journal, file, started, deadline, bind_methods);
    let result = match run.steps(p, rep) {
        Err(Fail::Crash) => {
            rep.actions = run.actions;
            rep.outcome = Outcome::Failed;
            rep.reason = Some("simulated crash: the journal is left for recovery".to_owned());
            return Ok(());
        }
        Err(f) => {
            let reason = f.to_string();
            run.rollback();
            Err(reason)
        }
        Ok(()) => Ok(()),
    };
    run.restore_policy();
    let _ = run.release_udev();
    let _ = run.file.remove();
    rep.actions = std::mem::take(&mut run.actions);
    rep.kernel_write_millis = run.kernel_time.as_secs_f64() * 1e3;
    rep.settle_millis = run.settle_time.as_secs_f64() * 1e3;
    rep.journal_millis = run.journal_time.as_secs_f64() * 1e3;
    let mut lap = Instant::now();
    let verdict = finish(
        host.kernel(),
        rep,
        (p.start, start_layout),
        result,
        run.seen.take(),
    );
    rep.lap("verdict", &mut lap);
    // The verdict's reads are part of the transition's cost.
    rep.total_millis = run.started.elapsed().as_secs_f64() * 1e3;
    verdict
}

fn refuse(rep: &mut Report, r: &Refusal, dev: &Device) {
    rep.reason = Some(r.to_string());
    if let Refusal::Stuck { .. } = r {
        rep.outcome = Outcome::Stuck;
        rep.stuck_blocks = dev.blocks.iter().map(|b| b.id).collect();
    }
}

/// Decides the outcome from what the device is now.
fn finish(
    k: &dyn Kernel,
    rep: &mut Report,
    (start, start_layout): (ObservedState, &Layout),
    result: Result<(), String>,
    seen: Option<Device>,
) -> Result<(), TransitionError> {
    let dev = match stable_observation(k, &rep.device, seen) {
        Ok(dev) => dev,
        Err(DiscoveryError::UnknownDevice { .. }) => {
            rep.end = None;
            rep.outcome = Outcome::Failed;
            let why = result.err().map_or_else(String::new, |r| format!(" ({r})"));
            rep.reason = Some(format!(
                "{} was removed from the bus during the transition{why}",
                rep.device
            ));
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    rep.end = Some(dev.state);
    rep.outcome = match (&result, dev.state) {
        (_, ObservedState::Stuck) => {
            rep.stuck_blocks = dev.blocks.iter().map(|b| b.id).collect();
            Outcome::Stuck
        }
        (Ok(()), s) if rep.target.satisfied_by(s) => Outcome::Done,
        // A device that was mixed before and has every block as it was is rolled back,
        // not torn: the failure changed nothing (the kernel's atomic unplug undoes itself).
        (Err(_), ObservedState::Mixed)
            if start == ObservedState::Mixed && layout(&dev) == *start_layout =>
        {
            Outcome::RolledBack
        }
        (_, ObservedState::Mixed) => Outcome::Torn,
        (Err(_), s) if s == start => Outcome::RolledBack,
        _ => Outcome::Failed,
    };
    rep.reason = match (result, rep.outcome) {
        (Err(reason), _) => Some(reason),
        (Ok(()), Outcome::Done) => None,
        (Ok(()), _) => Some(format!(
            "the device ended {} instead of {}",
            dev.state, rep.target
        )),
    };
    if rep.outcome == Outcome::Stuck {
        let detail = crate::problems::problems(&dev)
            .into_iter()
            .find(|p| p.code == crate::problems::ProblemCode::Stuck)
            .map(|p| p.message);
        rep.reason = Some(
            [rep.reason.take(), detail]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(". "),
        );
    }
    Ok(())
}

impl Run<'_> {
    /// Notes progress in the journal; it reaches the disk with the next `save`.
    fn record(&mut self, note: &str) {
        self.journal.note = note.to_owned();
        self.unsaved = true;
    }

    /// Writes the journal if it changed since it was last written. Called before every
    /// kernel write and udev action, so that what is on disk always covers what is about
    /// to be done, with one write however many notes came before it.
    fn save(&mut self) -> Result<(), Fail> {
        if self.unsaved {
            self.write_journal()?;
        }
        self.crash_point()
    }

    /// The crash test hook: a point where a crash leaves the journal as it is on disk.
    fn crash_point(&mut self) -> Result<(), Fail> {
        if self.rolling_back {
            return Ok(());
        }
        self.crash_points += 1;
        if self.opts.crash_at == Some(self.crash_points) {
            return Err(Fail::Crash);
        }
        Ok(())
    }

    fn write_journal(&mut self) -> Result<(), Fail> {
        let t0 = Instant::now();
        let written = self.file.write(&self.journal);
        self.journal_time += t0.elapsed();
        if let Err(e) = written {
            // Putting the device back goes on without a journal.
            return if self.rolling_back {
                Ok(())
            } else {
                Err(Fail::Journal(e))
            };
        }
        self.unsaved = false;
        Ok(())
    }

    fn check(&self) -> Result<(), Fail> {
        // Putting the device back is never cut short.
        if self.rolling_back {
            return Ok(());
        }
        if self.opts.cancel.load(Ordering::SeqCst) {
            return Err(Fail::Cancelled);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Fail::Timeout);
        }
        Ok(())
    }

    fn stop_reason(&self) -> Option<Fail> {
        self.check().err()
    }

    /// One write that a timeout or a cancellation may interrupt: when it may block, the
    /// watchdog signals this thread while the run must stop, and the kernel fails the write
    /// with `EINTR` (an offline in progress is undone). The write is never abandoned.
    fn write(&mut self, path: &str, value: &str) -> Result<(), Fail> {
        self.check()?;
        self.save()?;
        let watched = if may_block(path) {
            self.watchdog()
        } else {
            None
        };
        if let Some(w) = &watched {
            w.begin();
        }
        let result = self.kernel_write(path, value);
        let interrupted = watched.is_some_and(|w| w.end());
        match result {
            Ok(()) => Ok(()),
            // Interrupted by the watchdog, or by Ctrl-C delivered to this thread directly.
            Err(e) if e.errno == Errno::EINTR && (interrupted || self.stop_reason().is_some()) => {
                if let Some(last) = self.actions.last_mut() {
                    *last = format!("echo {} > {path}: interrupted", value.trim_end());
                }
                Err(self.stop_reason().unwrap_or(Fail::Timeout))
            }
            Err(e) => Err(Fail::Kernel(e)),
        }
    }

    /// The run's watchdog, started at its first write that may block; `None` if no thread
    /// can be started (a Ctrl-C then still interrupts a write it lands on).
    fn watchdog(&mut self) -> Option<Arc<Watchdog>> {
        if self.watchdog.is_none() {
            self.watchdog = Watchdog::start(
                self.k.interrupter(),
                Arc::clone(&self.opts.cancel),
                self.deadline,
            )
            .ok()
            .map(Arc::new);
        }
        self.watchdog.clone()
    }

    /// The write itself: timed as the kernel's, recorded among the actions.
    fn kernel_write(&mut self, path: &str, value: &str) -> Result<(), KernelError> {
        self.wrote(path);
        let t0 = Instant::now();
        let r = self.k.write(path, value);
        self.kernel_time += t0.elapsed();
        self.actions.push(match &r {
            Ok(()) => format!("echo {} > {path}", value.trim_end()),
            Err(e) => format!("echo {} > {path}: {}", value.trim_end(), e.errno),
        });
        r
    }

    /// Reads the device again (what the steps verify against), and remembers it.
    fn device(&mut self) -> Result<(Topology, Device), Fail> {
        let (topo, d) = self.reread()?;
        self.seen = Some(d.clone());
        Ok((topo, d))
    }

    /// Reads the device again.
    fn reread(&self) -> Result<(Topology, Device), Fail> {
        reobserve_device(self.k, &self.journal.device).map_err(|e| Fail::Verify(e.to_string()))
    }

    /// The device as last read if daxplug has written nothing that could change it since
    /// (a check that follows another at once starts from it), else read again.
    fn device_seen(&mut self) -> Result<Device, Fail> {
        match self.seen.clone() {
            Some(d) => Ok(d),
            None => Ok(self.device()?.1),
        }
    }

    /// After a write to `path`: the last read of the device is stale unless the write was
    /// to a machine-wide hotplug setting (which changes no block or driver by itself).
    fn wrote(&mut self, path: &str) {
        if !is_hotplug_setting(path) {
            self.seen = None;
        }
    }

    fn steps(&mut self, p: &Plan, rep: &mut Report) -> Result<(), Fail> {
        self.record("begin");
        for (i, step) in p.steps.iter().enumerate() {
            self.check()?;
            self.journal.step = i;
            if step.commits() {
                self.journal.committed = true;
            }
            self.record(&format!("step {i} begins"));
            let t0 = Instant::now();
            self.step(step)?;
            rep.phases.push(PhaseTime {
                phase: step_name(step).to_owned(),
                millis: t0.elapsed().as_secs_f64() * 1e3,
            });
        }
        // After the last write, before the journal is removed.
        self.crash_point()
    }

    fn step(&mut self, step: &Step) -> Result<(), Fail> {
        let dev = self.journal.device.clone();
        match step {
            Step::WriteState { value } => {
                let (_, d) = self.device()?;
                let before = d.kernel_state;
                if value == "unplugged" {
                    self.record("writing unplugged");
                }
                self.write(&format!("{}/state", paths::dax_device(&dev)), value)?;
                match (value.as_str(), before) {
                    ("unplugged", Some(s)) if s.is_writable() && s != DaxState::Unplugged => {
                        self.undo.push(Undo::WriteState(s.to_string()));
                    }
                    ("unplugged", _) => {}
                    _ => self.undo.push(Undo::WriteState("unplugged".to_owned())),
                }
                Ok(())
            }
            Step::Unbind { driver } => {
                if driver == paths::DEVICE_DAX {
                    self.journal.unbound_device_dax = true;
                    self.record("unbinding device_dax");
                    self.undo.push(Undo::BindDeviceDax(self.devdax_method()?));
                }
                self.write(&format!("{}/{driver}/unbind", paths::DAX_DRIVERS), &dev)
            }
            Step::BindDeviceDax { method } => {
                self.bind(paths::DEVICE_DAX, *method)?;
                self.undo.push(Undo::UnbindDeviceDax);
                Ok(())
            }
            Step::HotAdd {
                online_type,
                method,
            } => {
                self.hot_add(*online_type, *method)?;
                self.undo.push(Undo::RemoveAgain);
                Ok(())
            }
            Step::Repair { online_type } => self.repair(*online_type),
            Step::OfflineBlocks => {
                self.undo.push(Undo::Reonline);
                self.guard_policy()?;
                self.offline_all()
            }
            Step::FencedUnbind => {
                self.fenced_unbind()?;
                match self.journal.start {
                    ObservedState::OnlineMovable => self
                        .undo
                        .push(Undo::HotAdd(OnlineType::OnlineMovable, self.kmem_method()?)),
                    ObservedState::OnlineKernel => self
                        .undo
                        .push(Undo::HotAdd(OnlineType::OnlineKernel, self.kmem_method()?)),
                    ObservedState::Offline => self
                        .undo
                        .push(Undo::HotAdd(OnlineType::Offline, self.kmem_method()?)),
                    _ => {}
                }
                Ok(())
            }
        }
    }

    fn kmem_method(&self) -> Result<BindMethod, Fail> {
        if let Some((kmem, _)) = self.bind_methods {
            return Ok(kmem);
        }
        let (topo, d) = self.reread()?;
        Ok(crate::plan::kmem_method(&topo, &d))
    }

    fn devdax_method(&self) -> Result<BindMethod, Fail> {
        if let Some((_, devdax)) = self.bind_methods {
            return Ok(devdax);
        }
        let (topo, d) = self.reread()?;
        Ok(crate::plan::devdax_method(&topo, &d))
    }

    /// Binds a driver and checks it really bound (`new_id` does not report probe failures).
    fn bind(&mut self, driver: &str, method: BindMethod) -> Result<(), Fail> {
        let dev = self.journal.device.clone();
        let file = match method {
            BindMethod::Bind => "bind",
            BindMethod::NewId => "new_id",
        };
        match self.write(&format!("{}/{driver}/{file}", paths::DAX_DRIVERS), &dev) {
            // Not matched by type after all: the id list does it.
            Err(Fail::Kernel(e)) if e.errno == Errno::ENODEV && method == BindMethod::Bind => {
                self.write(&format!("{}/{driver}/new_id", paths::DAX_DRIVERS), &dev)?;
            }
            other => other?,
        }
        let (_, d) = self.device()?;
        if d.driver.name() != Some(driver) {
            return Err(Fail::Verify(format!(
                "{driver} did not bind to {dev} (its probe failed; a range the kernel leaked makes it fail with EBUSY)"
            )));
        }
        Ok(())
    }

    /// The online type applied inside the kernel's add: no udev rule or agent can online
    /// a block before the kernel has, in the zone asked for.
    fn hot_add(&mut self, online_type: OnlineType, method: BindMethod) -> Result<(), Fail> {
        let aob_path = paths::AUTO_ONLINE_BLOCKS;
        let current: OnlineType = self
            .k
            .read(aob_path)
            .map_err(Fail::Kernel)?
            .parse()
            .map_err(|e: daxplug_abi::ParseError| Fail::Verify(format!("{aob_path}: {e}")))?;
        let changed = current != online_type;
        if changed {
            self.journal.saved_aob = Some(current);
            self.record("setting auto_online_blocks");
            self.write(aob_path, online_type.as_str())?;
            self.record("binding kmem under the policy");
        }
        let bound = self.bind(paths::KMEM, method);
        if matches!(bound, Err(Fail::Crash)) {
            return bound;
        }
        if changed {
            // Restored at once, whatever the bind did.
            let restored = self.write_uncancellable(aob_path, current.as_str());
            if restored.is_ok() {
                self.journal.saved_aob = None;
                self.record("auto_online_blocks restored");
            }
            bound?;
            restored
        } else {
            bound
        }
    }

    /// A write that must happen even after a timeout or Ctrl-C (restoring settings).
    fn write_uncancellable(&mut self, path: &str, value: &str) -> Result<(), Fail> {
        self.save()?;
        self.kernel_write(path, value).map_err(Fail::Kernel)
    }

    /// After a hot-add: every block online in the zone asked for; stragglers are onlined,
    /// blocks in the wrong zone moved.
    fn repair(&mut self, online_type: OnlineType) -> Result<(), Fail> {
        for _ in 0..3 {
            // The first look is the bind's own check, when nothing was written since.
            let d = self.device_seen()?;
            let wanted = |z: Option<Zone>| match online_type {
                OnlineType::OnlineMovable => z == Some(Zone::Movable),
                OnlineType::OnlineKernel => z.is_some_and(|z| z != Zone::Movable),
                _ => true,
            };
            // For plain `online`, the zone the majority got is the one to keep.
            let majority_movable = d.counts.movable * 2 >= d.counts.online;
            let write_type = match online_type {
                OnlineType::Online if d.counts.online > 0 => {
                    if majority_movable {
                        OnlineType::OnlineMovable
                    } else {
                        OnlineType::OnlineKernel
                    }
                }
                t => t,
            };
            let mut fixed = true;
            for b in &d.blocks {
                let zone_ok = b.state == BlockState::Online
                    && wanted(b.zone())
                    && (online_type != OnlineType::Online
                        || d.counts.online == 0
                        || b.zone().is_some_and(|z| z.is_movable()) == majority_movable);
                if zone_ok {
                    continue;
                }
                fixed = false;
                let path = format!("{}/state", paths::memory_block(b.id));
                if b.state == BlockState::Online {
                    self.write(&path, "offline")?;
                }
                match self.write(&path, write_type.as_str()) {
                    Err(Fail::Kernel(e)) if e.errno == Errno::EINVAL => {}
                    other => other?,
                }
            }
            if fixed && d.counts.total == d.counts.span {
                return Ok(());
            }
        }
        let (_, d) = self.device()?;
        Err(Fail::Verify(format!(
            "after the hot-add, {} did not all come online as {online_type}: the device is {}",
            d.name, d.state
        )))
    }

    /// Offlines every online block of the device, remembering zones; blocks someone else
    /// onlines meanwhile are offlined again, up to `max_rounds` times.
    fn offline_all(&mut self) -> Result<(), Fail> {
        let mut rounds = 0;
        loop {
            // The first look is the policy guard's, when nothing was written since.
            let d = if rounds == 0 {
                self.device_seen()?
            } else {
                self.device()?.1
            };
            let online: Vec<(u64, Zone)> = d
                .blocks
                .iter()
                .filter(|b| b.state != BlockState::Offline)
                .map(|b| (b.id, b.zone().unwrap_or(Zone::Normal)))
                .collect();
            if online.is_empty() {
                return Ok(());
            }
            if rounds > 0 && self.opts.broken_commit {
                return Ok(());
            }
            if rounds > self.opts.max_rounds {
                return Err(Fail::Contended(online.iter().map(|b| b.0).collect()));
            }
            if rounds > 0 {
                // Blocks came back online: if a udev rule does it, holding udev's queue for
                // the rest of the offlining stops it (the fence is short otherwise).
                self.hold_udev()?;
            }
            rounds += 1;
            // Every block about to be offlined goes into the journal at once (one write,
            // not one per block): recovery re-onlines those it finds offline, in their zone.
            let new: Vec<(u64, Zone)> = online
                .iter()
                .filter(|(id, _)| !self.journal.offlined.iter().any(|(b, _)| b == id))
                .copied()
                .collect();
            if !new.is_empty() {
                self.journal.offlined.extend(new);
                self.record("offlining the device's blocks");
            }
            let total = online.len() as u64;
            for (i, (id, _)) in online.into_iter().enumerate() {
                if let Some(p) = &self.opts.progress {
                    p(Progress {
                        device: self.journal.device.clone(),
                        done: i as u64,
                        total,
                        block: id,
                    });
                }
                match self.write(&format!("{}/state", paths::memory_block(id)), "offline") {
                    Ok(()) => {}
                    // Offline already (someone else did it): fine.
                    Err(Fail::Kernel(e)) if e.errno == Errno::EINVAL => {}
                    Err(Fail::Kernel(e)) if e.errno == Errno::EBUSY => return Err(Fail::Busy(id)),
                    Err(other) => return Err(other),
                }
            }
        }
    }

    /// The fenced commit: udev held, every block verified offline, kmem unbound, the
    /// result verified, udev released (always).
    fn fenced_unbind(&mut self) -> Result<(), Fail> {
        self.hold_udev()?;
        let result = self.commit_unbind();
        if matches!(result, Err(Fail::Crash)) {
            // A crash stops dead: recovery restarts the queue.
            return result;
        }
        let released = self.release_udev();
        result.and(released)
    }

    /// Stops udev's exec queue (if udev runs and it is not stopped already): udev rules
    /// then cannot act on the device's blocks until `release_udev`. Journaled first.
    fn hold_udev(&mut self) -> Result<(), Fail> {
        if self.journal.udev_stopped || !self.host.udev_running() {
            return Ok(());
        }
        self.journal.udev_stopped = true;
        self.record("stopping the udev exec queue");
        self.save()?;
        if let Err(e) = self.host.set_udev_queue(false) {
            self.journal.udev_stopped = false;
            return Err(Fail::Verify(format!(
                "cannot stop the udev exec queue: {e}"
            )));
        }
        self.actions
            .push("udevadm control --stop-exec-queue".to_owned());
        Ok(())
    }

    /// Restarts udev's exec queue if daxplug stopped it.
    fn release_udev(&mut self) -> Result<(), Fail> {
        if !self.journal.udev_stopped {
            return Ok(());
        }
        match self.host.set_udev_queue(true) {
            Ok(()) => {
                self.actions
                    .push("udevadm control --start-exec-queue".to_owned());
                self.journal.udev_stopped = false;
                self.record("udev exec queue restarted");
                Ok(())
            }
            Err(e) => {
                self.actions
                    .push(format!("udevadm control --start-exec-queue failed: {e}"));
                Ok(())
            }
        }
    }

    fn commit_unbind(&mut self) -> Result<(), Fail> {
        self.offline_all()?;
        // offline_all's last look, which found every block offline.
        let d = self.device_seen()?;
        let ids: Vec<u64> = d.blocks.iter().map(|b| b.id).collect();
        if !self.opts.broken_commit {
            self.settle(&ids)?;
        }
        self.record("unbinding kmem");
        // The last look comes right before the unbind: one read per block, nothing else in
        // between, so that the window a competitor could online a block in is as short as
        // user space can make it.
        if !self.opts.broken_commit {
            self.assert_offline(&ids)?;
        }
        let dev = self.journal.device.clone();
        self.write_uncancellable(&format!("{}/kmem/unbind", paths::DAX_DRIVERS), &dev)?;
        let (_, d) = self.device()?;
        if d.state == ObservedState::Stuck {
            return Err(Fail::Verify(format!(
                "a block came online between the last check and the unbind, and the kernel kept {}",
                crate::problems::format_block_ids(d.online_blocks().map(|b| b.id))
            )));
        }
        Ok(())
    }

    /// While a device whose memory is movable is being offlined, another controller may
    /// online a block again with plain `online`, and `contig-zones` would put it in a
    /// kernel zone, where kernel allocations soon pin it for good. `auto-movable` (not
    /// NUMA-aware, so a CPU-less node qualifies) puts it back in `Movable` instead, where
    /// daxplug can offline it again. Journaled, and restored at the end whatever happens.
    fn guard_policy(&mut self) -> Result<(), Fail> {
        let (_, d) = self.device()?;
        if d.counts.movable == 0 || self.journal.saved_policy.is_some() {
            return Ok(());
        }
        let (Ok(policy), Ok(numa)) = (
            self.k.read(paths::ONLINE_POLICY),
            self.k.read(paths::AUTO_MOVABLE_NUMA_AWARE),
        ) else {
            return Ok(());
        };
        let (policy, numa) = (policy.trim_end().to_owned(), numa.trim_end().to_owned());
        if policy == "auto-movable" && numa == "N" {
            return Ok(());
        }
        self.journal.saved_policy = Some((policy, numa));
        self.record("setting online_policy=auto-movable");
        // Saved here: a failure of the writes below is tolerated, a journal failure not.
        self.save()?;
        // Only a safeguard: a kernel where these cannot be written still gets the rest of
        // the protocol.
        if let Err(e) = self
            .write_uncancellable(paths::ONLINE_POLICY, "auto-movable")
            .and_then(|()| self.write_uncancellable(paths::AUTO_MOVABLE_NUMA_AWARE, "N"))
        {
            self.actions
                .push(format!("going on without the online_policy safeguard: {e}"));
            self.restore_policy();
        }
        Ok(())
    }

    /// Puts back what `guard_policy` changed.
    fn restore_policy(&mut self) {
        if let Some((policy, numa)) = self.journal.saved_policy.clone() {
            let a = self.write_uncancellable(paths::ONLINE_POLICY, &policy);
            let b = self.write_uncancellable(paths::AUTO_MOVABLE_NUMA_AWARE, &numa);
            if a.is_ok() && b.is_ok() {
                self.journal.saved_policy = None;
                self.record("online_policy restored");
            }
        }
    }

    /// Before the unbind, every block must stay offline for a settle period: a controller
    /// outside udev that polls for offline blocks and onlines them shows itself here, and
    /// the transition is rolled back, instead of in the window between the last check and
    /// the unbind, where the kernel would keep the block and leak the range.
    fn settle(&mut self, ids: &[u64]) -> Result<(), Fail> {
        let until = Instant::now() + self.opts.settle;
        // The checks spread evenly over the period: a block a controller onlines stays
        // online and is seen by the next check (or the last one, just before the unbind),
        // so more checks would only cost reads.
        let nap = self.opts.settle / SETTLE_ROUNDS;
        let mut rounds = 0;
        while rounds < SETTLE_ROUNDS || Instant::now() < until {
            self.check()?;
            self.assert_offline(ids)?;
            rounds += 1;
            let left = until.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                let slept = Instant::now();
                std::thread::sleep(left.min(nap));
                self.settle_time += slept.elapsed();
            }
        }
        Ok(())
    }

    /// Reads each block's state; any not offline fails the commit.
    fn assert_offline(&mut self, ids: &[u64]) -> Result<(), Fail> {
        let online: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| {
                self.k
                    .read(&format!("{}/state", paths::memory_block(*id)))
                    .is_ok_and(|s| s.trim_end() != "offline")
            })
            .collect();
        if online.is_empty() {
            Ok(())
        } else {
            Err(Fail::Contended(online))
        }
    }

    /// Undoes what was done, last first, best effort.
    fn rollback(&mut self) {
        self.actions.push("rolling back".to_owned());
        let was = std::mem::replace(&mut self.rolling_back, true);
        while let Some(u) = self.undo.pop() {
            let r = match u {
                Undo::Reonline => self.reonline(),
                Undo::BindDeviceDax(m) => self.bind(paths::DEVICE_DAX, m),
                Undo::UnbindDeviceDax => {
                    let dev = self.journal.device.clone();
                    self.write_uncancellable(
                        &format!("{}/device_dax/unbind", paths::DAX_DRIVERS),
                        &dev,
                    )
                }
                Undo::WriteState(v) => {
                    let dev = self.journal.device.clone();
                    self.write_uncancellable(&format!("{}/state", paths::dax_device(&dev)), &v)
                }
                Undo::HotAdd(t, m) => self.undo_hot_add(t, m),
                Undo::RemoveAgain => self.remove_again(),
            };
            if let Err(e) = r {
                self.actions.push(format!("rollback step failed: {e}"));
            }
        }
        self.rolling_back = was;
    }

    /// Re-onlines exactly the blocks daxplug offlined, each into the zone it had. A block
    /// someone else onlined meanwhile into the other zone class is moved back when it can
    /// be (a block pinned in a kernel zone cannot).
    fn reonline(&mut self) -> Result<(), Fail> {
        let offlined = std::mem::take(&mut self.journal.offlined);
        for _ in 0..3 {
            let mut settled = true;
            for (id, zone) in offlined.iter().rev() {
                let state_path = format!("{}/state", paths::memory_block(*id));
                let zones_path = format!("{}/valid_zones", paths::memory_block(*id));
                let Ok(now) = self.k.read(&state_path) else {
                    continue;
                };
                let t = if *zone == Zone::Movable {
                    "online_movable"
                } else {
                    "online_kernel"
                };
                if now.trim_end() != "offline" {
                    let movable_now = self
                        .k
                        .read(&zones_path)
                        .is_ok_and(|z| z.trim_end() == "Movable");
                    if movable_now == (*zone == Zone::Movable) {
                        continue;
                    }
                    settled = false;
                    if self.write_uncancellable(&state_path, "offline").is_err() {
                        continue;
                    }
                }
                settled = false;
                if let Err(e) = self.write_uncancellable(&state_path, t) {
                    self.actions
                        .push(format!("could not re-online memory{id}: {e}"));
                }
            }
            if settled {
                break;
            }
        }
        Ok(())
    }

    fn undo_hot_add(&mut self, t: OnlineType, m: BindMethod) -> Result<(), Fail> {
        let saved_cancel = self.deadline.take();
        let r = self.hot_add(t, m);
        self.deadline = saved_cancel;
        r
    }

    /// Takes a hot-added device out again (after a failed repair).
    fn remove_again(&mut self) -> Result<(), Fail> {
        let (_, d) = self.device()?;
        let dev = self.journal.device.clone();
        if d.kernel_state.is_some() {
            self.write_uncancellable(&format!("{}/state", paths::dax_device(&dev)), "unplugged")?;
            return self.write_uncancellable(&format!("{}/kmem/unbind", paths::DAX_DRIVERS), &dev);
        }
        self.journal.offlined.clear();
        let deadline = self.deadline.take();
        let r = self.offline_all().and_then(|()| self.fenced_unbind());
        self.deadline = deadline;
        r
    }
}

fn step_name(s: &Step) -> &'static str {
    match s {
        Step::WriteState { .. } => "write state",
        Step::Unbind { .. } => "unbind",
        Step::BindDeviceDax { .. } => "bind device_dax",
        Step::HotAdd { .. } => "hot-add",
        Step::Repair { .. } => "verify zones",
        Step::OfflineBlocks => "offline blocks",
        Step::FencedUnbind => "fenced unbind",
    }
}

/// Finishes or rolls back transitions a crash interrupted, and restores the machine-wide
/// settings they had changed. Takes the lock.
pub fn recover(host: &dyn Host, opts: &Options) -> Result<Vec<String>, TransitionError> {
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let Some(_lock) = take_lock(host, deadline)? else {
        return Ok(vec![
            "another daxplug holds the lock: it will recover what needs recovering".to_owned(),
        ]);
    };
    recover_locked(host, opts)
}

fn recover_locked(host: &dyn Host, opts: &Options) -> Result<Vec<String>, TransitionError> {
    let dir = host.run_dir();
    let journals = JournalFile::list(&dir).map_err(|source| TransitionError::Io {
        path: crate::journal::journal_dir(&dir).display().to_string(),
        source,
    })?;
    let k = host.kernel();
    let mut out = Vec::new();
    for (file, j) in journals {
        let mut done = Vec::new();
        if j.udev_stopped {
            match host.set_udev_queue(true) {
                Ok(()) => done.push("restarted the udev exec queue".to_owned()),
                Err(e) => done.push(format!("could not restart the udev exec queue: {e}")),
            }
        }
        if let Some((policy, numa)) = &j.saved_policy {
            let p = k.write(paths::ONLINE_POLICY, policy);
            let n = k.write(paths::AUTO_MOVABLE_NUMA_AWARE, numa);
            if p.is_ok() && n.is_ok() {
                done.push(format!(
                    "restored online_policy={policy}, auto_movable_numa_aware={numa}"
                ));
            } else {
                done.push("could not restore online_policy".to_owned());
            }
        }
        if let Some(aob) = j.saved_aob {
            match k.write(paths::AUTO_ONLINE_BLOCKS, aob.as_str()) {
                Ok(()) => done.push(format!("restored auto_online_blocks={aob}")),
                Err(e) => done.push(format!("could not restore auto_online_blocks: {e}")),
            }
        }
        let opts = Options {
            crash_at: None,
            ..opts.clone()
        };
        if j.committed {
            // Past the point of no return: finish the transition.
            let file_for_run = file.clone();
            let _ = file_for_run.remove();
            match set_unlocked(host, &j.device, j.target, &opts) {
                Ok(r) => done.push(format!(
                    "finished: {} is {}",
                    j.device,
                    r.end.map_or("unknown", |s| s.as_str())
                )),
                Err(e) => done.push(format!("could not finish: {e}")),
            }
        } else {
            let mut run = Run::new(
                host,
                &opts,
                j.clone(),
                file.clone(),
                Instant::now(),
                None,
                None,
            );
            if !j.offlined.is_empty() {
                run.undo.push(Undo::Reonline);
            }
            if j.unbound_device_dax
                && let Ok((_, d)) = observe_device(k, &j.device)
                && d.driver == Driver::None
                && let Ok(m) = run.devdax_method()
            {
                run.undo.insert(0, Undo::BindDeviceDax(m));
            }
            run.rollback();
            done.extend(run.actions.into_iter().filter(|a| a != "rolling back"));
            done.push(format!("rolled back {} toward {}", j.device, j.start));
        }
        let _ = file.remove();
        out.push(format!(
            "recovered an interrupted transition of {} to {}: {}",
            j.device,
            j.target,
            done.join("; ")
        ));
    }
    Ok(out)
}

/// `set` without taking the lock or recovering (the caller holds the lock).
fn set_unlocked(
    host: &dyn Host,
    device: &str,
    target: Target,
    opts: &Options,
) -> Result<Report, TransitionError> {
    let k = host.kernel();
    let mut rep = report(device, target);
    let (topo, dev) = observe_device(k, device)?;
    rep.start = Some(dev.state);
    let p = match plan(&topo, &dev, target, true) {
        Ok(p) => p,
        Err(r) => {
            refuse(&mut rep, &r, &dev);
            rep.end = Some(dev.state);
            return Ok(rep);
        }
    };
    let methods = bind_methods(&topo, &dev);
    execute(
        host,
        opts,
        &p,
        &mut rep,
        Instant::now(),
        Some(methods),
        &layout(&dev),
    )?;
    Ok(rep)
}
