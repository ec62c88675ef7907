//! Running a transition: the lock, the journal, interruptible writes, each step, rollback,
//! and recovery of a crashed transition. This module holds what every part shares (the
//! runner `Run`, why a step failed, what undoes a step); each concern is a file of its own.

mod batch;
mod claim;
mod create;
mod execute;
mod extent;
mod fallback;
mod lock;
mod modules;
mod observation;
mod recover;
mod report;
mod run;
mod set;
mod steps;
mod undo;
mod watchdog;

pub use batch::{Batch, READ_WAIT, placement_before, placement_since, set_many};
pub use create::{NewDevice, create};
pub use lock::{ReadGuard, ReadLock, read_lock, read_lock_wait};
pub use recover::recover;
pub use report::{Goal, Options, Outcome, PhaseTime, Progress, Report, TestHooks, TransitionError};
pub use set::{change_layout, set};

use watchdog::Watchdog;

use std::sync::Arc;
use std::time::{Duration, Instant};

use daxplug_abi::{DaxState, OnlineType};
use daxplug_kernel::{Kernel, KernelError};

use crate::discovery::topology::Device;
use crate::host::Host;
use crate::plan::{BindMethod, BindMethods};
use crate::rundir::journal::{Journal, JournalFile};

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
                crate::discovery::problems::format_block_ids(ids.iter().copied())
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
    WriteState(DaxState),
    HotAdd(OnlineType, BindMethod),
    RemoveAgain,
    /// Bind a driver again.
    Bind(daxplug_abi::DaxDriver, BindMethod),
    /// Unbind a driver again.
    Unbind(daxplug_abi::DaxDriver),
    /// Put the size (and alignment) back.
    Extent(u64, Option<u64>),
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
    bind_methods: Option<BindMethods>,
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
        bind_methods: Option<BindMethods>,
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
