//! The runner's core: the journal, crash points, checks of deadline and cancellation,
//! interruptible kernel writes, and re-reads of the device.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use daxplug_kernel::{Errno, KernelError, paths};

use crate::discovery::topology::{Device, Topology};
use crate::plan::write::Write;

use super::observation::reobserve_device;
use super::watchdog::Watchdog;
use super::{Fail, Run};

/// `auto_online_blocks` and memory_hotplug's module parameters: settings, which a write
/// changes at once, touching no block or driver.
pub(super) fn is_hotplug_setting(path: &str) -> bool {
    path == paths::AUTO_ONLINE_BLOCKS || path.starts_with(paths::HOTPLUG_PARAMS)
}

/// Whether a write to `path` may wait in the kernel (for the hotplug lock, a migration, a
/// probe), so that it needs a thread a timeout or Ctrl-C can interrupt.
pub(super) fn may_block(path: &str) -> bool {
    !is_hotplug_setting(path)
}

impl Run<'_> {
    /// Notes progress in the journal; it reaches the disk with the next `save`.
    pub(super) fn record(&mut self, note: &str) {
        self.journal.note = note.to_owned();
        self.unsaved = true;
    }

    /// Writes the journal if it changed since it was last written. Called before every
    /// kernel write and udev action, so that what is on disk always covers what is about
    /// to be done, with one write however many notes came before it.
    pub(super) fn save(&mut self) -> Result<(), Fail> {
        if self.unsaved {
            self.write_journal()?;
        }
        self.crash_point()
    }

    /// The crash test hook: a point where a crash leaves the journal as it is on disk.
    pub(super) fn crash_point(&mut self) -> Result<(), Fail> {
        if self.rolling_back {
            return Ok(());
        }
        self.crash_points += 1;
        if self.opts.test_hooks.crash_at == Some(self.crash_points) {
            return Err(Fail::Crash);
        }
        Ok(())
    }

    pub(super) fn write_journal(&mut self) -> Result<(), Fail> {
        let t0 = Instant::now();
        let written = match self.opts.test_hooks.journal_errno {
            Some(errno) => Err(std::io::Error::from_raw_os_error(errno)),
            None => self.file.write(&self.journal),
        };
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

    pub(super) fn check(&self) -> Result<(), Fail> {
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

    pub(super) fn stop_reason(&self) -> Option<Fail> {
        self.check().err()
    }

    /// One write that a timeout or a cancellation may interrupt: when it may block, the
    /// watchdog signals this thread while the run must stop, and the kernel fails the write
    /// with `EINTR` (an offline in progress is undone). The write is never abandoned.
    pub(super) fn apply(&mut self, w: &Write) -> Result<(), Fail> {
        self.check()?;
        self.save()?;
        let watched = if may_block(&w.path) {
            self.watchdog()
        } else {
            None
        };
        if let Some(w) = &watched {
            w.begin();
        }
        let result = self.kernel_write(w);
        let interrupted = watched.is_some_and(|w| w.end());
        match result {
            Ok(()) => Ok(()),
            // Interrupted by the watchdog, or by Ctrl-C delivered to this thread directly.
            Err(e) if e.errno == Errno::EINTR && (interrupted || self.stop_reason().is_some()) => {
                if let Some(last) = self.actions.last_mut() {
                    *last = format!("{w}: interrupted");
                }
                Err(self.stop_reason().unwrap_or(Fail::Timeout))
            }
            Err(e) => Err(Fail::Kernel(e)),
        }
    }

    /// The run's watchdog, started at its first write that may block; `None` if no thread
    /// can be started (a Ctrl-C then still interrupts a write it lands on).
    pub(super) fn watchdog(&mut self) -> Option<Arc<Watchdog>> {
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

    /// A write that must happen even after a timeout or Ctrl-C (restoring a setting,
    /// rolling back).
    pub(super) fn apply_uncancellable(&mut self, w: &Write) -> Result<(), Fail> {
        self.save()?;
        self.kernel_write(w).map_err(Fail::Kernel)
    }

    /// The write itself: timed as the kernel's, recorded among the actions as `--dry-run`
    /// shows it.
    fn kernel_write(&mut self, w: &Write) -> Result<(), KernelError> {
        self.wrote(&w.path);
        let t0 = Instant::now();
        let r = self.k.write(&w.path, &w.value);
        self.kernel_time += t0.elapsed();
        self.actions.push(match &r {
            Ok(()) => w.to_string(),
            Err(e) => format!("{w}: {}", e.errno),
        });
        r
    }

    /// Reads the device again (what the steps verify against), and remembers it.
    pub(super) fn device(&mut self) -> Result<(Topology, Device), Fail> {
        let (topo, d) = self.reread()?;
        self.seen = Some(d.clone());
        Ok((topo, d))
    }

    /// Reads the device again.
    pub(super) fn reread(&self) -> Result<(Topology, Device), Fail> {
        reobserve_device(self.k, self.journal.device).map_err(|e| Fail::Verify(e.to_string()))
    }

    /// The device as last read if daxplug has written nothing that could change it since
    /// (a check that follows another at once starts from it), else read again.
    pub(super) fn device_seen(&mut self) -> Result<Device, Fail> {
        match self.seen.clone() {
            Some(d) => Ok(d),
            None => Ok(self.device()?.1),
        }
    }

    /// After a write to `path`: the last read of the device is stale unless the write was
    /// to a machine-wide hotplug setting (which changes no block or driver by itself).
    pub(super) fn wrote(&mut self, path: &str) {
        if !is_hotplug_setting(path) {
            self.seen = None;
        }
    }
}
