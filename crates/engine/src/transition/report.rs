//! What a transition is told (`Options`) and what it tells (`Report`, `Outcome`,
//! `TransitionError`).

use daxplug_abi::token_enum;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::discovery::error::DiscoveryError;
use crate::discovery::observe::ObservedState;
use crate::plan::Protocol;
use crate::plan::layout::LayoutChange;
use crate::plan::target::Target;

use super::SETTLE;

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
    /// Told, once, when the system-wide lock has been waited for a second (whom for).
    pub on_wait: Option<Arc<dyn Fn(String) + Send + Sync>>,
    /// How long every block must stay offline before kmem is unbound without a `state`
    /// file (at least `SETTLE_ROUNDS` checks happen whatever this is).
    pub settle: Duration,
    /// A device a running daemon manages is held for maintenance (until released) and
    /// changed, instead of refused.
    pub daemon_override: bool,
    /// The daemon's own transitions: a device held for maintenance is refused once the
    /// lock is taken (a hold taken while the daemon waited for the lock counts).
    pub respect_holds: bool,
    /// Hooks for the tests only; the default is off.
    pub test_hooks: TestHooks,
}

/// What only tests set: ways to crash or break a transition on purpose, so that the tests
/// can show they would catch it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestHooks {
    /// Stop dead (no cleanup, as a crash would) right before the Nth kernel write or udev
    /// action of the transition (its journal saved), or after the last.
    pub crash_at: Option<usize>,
    /// Run the fallback unplug the per-block way (one offline pass, no settle period, no
    /// last check before the unbind).
    pub broken_commit: bool,
    /// Every journal write fails with this errno, as on a full or read-only filesystem.
    pub journal_errno: Option<i32>,
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
            on_wait: None,
            settle: SETTLE,
            daemon_override: false,
            respect_holds: false,
            test_hooks: TestHooks::default(),
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
            .field("test_hooks", &self.test_hooks)
            .finish_non_exhaustive()
    }
}

/// Progress of the offlining phase.
#[derive(Debug, Clone)]
pub struct Progress {
    pub device: String,
    /// Blocks handled so far.
    pub done: u64,
    /// Blocks to handle.
    pub total: u64,
    /// The block being offlined.
    pub block: u64,
}

token_enum! {
    /// How a transition ended.
    Outcome, "an outcome" {
        /// The device is in the requested state.
        Done = "done",
        /// It already was.
        NoChange = "no_change",
        /// `--dry-run`: nothing was done.
        DryRun = "dry_run",
        /// Nothing was done: a bad request, a busy or stuck device, a safety check.
        Refused = "refused",
        /// It failed or was cancelled, and the device is back where it started.
        RolledBack = "rolled_back",
        /// The kernel leaked the device's range.
        Stuck = "stuck",
        /// The device could not be put back together: it is left mixed.
        Torn = "torn",
        /// It failed and the device is consistent, but neither where it started nor where
        /// asked.
        Failed = "failed",
    }
}

/// Time spent in one step.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTime {
    pub phase: String,
    pub millis: f64,
}

/// What a transition did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub device: String,
    /// Observed state before.
    pub start: Option<ObservedState>,
    /// The state asked for.
    pub target: Target,
    /// Observed state after (`None` once a destroyed device is gone).
    pub end: Option<ObservedState>,
    /// The size asked for, for a resize or a create.
    pub requested_size: Option<u64>,
    /// The device is to be destroyed.
    pub destroy: bool,
    /// The device's size before, in bytes.
    pub start_size: Option<u64>,
    /// Its size after.
    pub end_size: Option<u64>,
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
    /// The kernel refused to take the memory offline (`EBUSY`: a page it cannot migrate),
    /// which for memory in a kernel zone lasts until a reboot.
    #[serde(skip)]
    pub offline_refused: bool,
}

/// A transition could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// Reading the machine failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// A journal left by an interrupted transition cannot be used.
    #[error(transparent)]
    Journal(#[from] crate::rundir::journal::JournalError),
    /// The lock or journal could not be used.
    #[error("cannot use {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub(super) fn report(device: &str, goal: Goal) -> Report {
    let (requested_size, destroy) = match goal {
        Goal::Layout(LayoutChange::Resize { size, .. }) => (Some(size), false),
        Goal::Layout(LayoutChange::Destroy) => (None, true),
        Goal::State(_) => (None, false),
    };
    Report {
        device: device.to_owned(),
        start: None,
        target: goal.target(),
        end: None,
        requested_size,
        destroy,
        start_size: None,
        end_size: None,
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
        offline_refused: false,
    }
}

impl Report {
    /// Records the time since `since` as `phase`, and restarts the clock.
    pub(super) fn lap(&mut self, phase: &str, since: &mut Instant) {
        let now = Instant::now();
        self.phases.push(PhaseTime {
            phase: phase.to_owned(),
            millis: (now - *since).as_secs_f64() * 1e3,
        });
        *since = now;
    }
}

/// What a transition is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// A state (`daxplug set`).
    State(Target),
    /// A change of the device's extent (`daxplug resize`, `destroy`, and `create`'s sizing).
    Layout(LayoutChange),
}

impl Goal {
    /// The state the device is to end in, as far as the goal says (a resize that keeps the
    /// device's mode learns it from the plan).
    pub fn target(self) -> Target {
        match self {
            Goal::State(t)
            | Goal::Layout(LayoutChange::Resize {
                target: Some(t), ..
            }) => t,
            Goal::Layout(LayoutChange::Resize { target: None, .. } | LayoutChange::Destroy) => {
                Target::Unplugged
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Outcome, Protocol};

    /// The tokens JSON and metrics print are the ones serde writes for the engine's types.
    #[test]
    fn as_str_is_the_serde_token() {
        for &o in Outcome::ALL {
            assert_eq!(serde_json::to_value(o).expect("json"), o.as_str());
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
        }
        for &p in Protocol::ALL {
            assert_eq!(serde_json::to_value(p).expect("json"), p.as_str());
        }
    }
}
