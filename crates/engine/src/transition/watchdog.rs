//! The watchdog thread that interrupts a transition's blocked writes when it must stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use daxplug_kernel::ThreadToken;

use super::POLL;

/// Interrupts a transition's writes when it must stop (Ctrl-C, the timeout). A thread of
/// its own, parked until a write that may block begins; while the write lasts and the run
/// must stop, it signals the writing thread every `POLL` (a signal that lands while the
/// writer waits for the hotplug lock is consumed by the restart, and must be sent again).
/// The writes stay on the transition's thread: none waits for a thread to start or to hand
/// back its result, which on a slow machine costs more than the write.
pub(super) struct Watchdog {
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
    pub(super) fn start(
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
    pub(super) fn begin(&self) {
        self.state.interrupted.store(false, Ordering::SeqCst);
        self.state.writing.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }

    /// The write returned: whether the watchdog interrupted it.
    pub(super) fn end(&self) -> bool {
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
