//! The fallback protocol's release: offline every block with rollback, hold udev, settle,
//! the fenced kmem unbind, and the hotplug settings it guards and restores.

use std::time::Instant;

use daxplug_abi::{BlockState, BoolParam, DaxDriver, OnlinePolicy, OnlineType, Zone};
use daxplug_kernel::{Errno, paths};

use crate::discovery::observe::ObservedState;
use crate::host::UdevError;
use crate::plan::GUARDED_POLICY;
use crate::plan::write::{DriverFile, Write};

use super::report::Progress;
use super::{Fail, Run, SETTLE_ROUNDS};

impl Run<'_> {
    /// Offlines every online block of the device, remembering zones; blocks someone else
    /// onlines meanwhile are offlined again, up to `max_rounds` times.
    pub(super) fn offline_all(&mut self) -> Result<(), Fail> {
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
            if rounds > 0 && self.opts.test_hooks.broken_commit {
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
                        device: self.journal.device.to_string(),
                        done: i as u64,
                        total,
                        block: id,
                    });
                }
                match self.apply(&Write::block_state(id, OnlineType::Offline)) {
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
    pub(super) fn fenced_unbind(&mut self) -> Result<(), Fail> {
        self.hold_udev()?;
        let result = self.commit_unbind();
        if matches!(result, Err(Fail::Crash)) {
            // A crash stops dead: recovery restarts the queue.
            return result;
        }
        // A queue that cannot be restarted is reported among the actions; the transition
        // itself is done.
        let _ = self.release_udev();
        result
    }

    /// Stops udev's exec queue (if udev runs and it is not stopped already): udev rules
    /// then cannot act on the device's blocks until `release_udev`. Journaled first.
    pub(super) fn hold_udev(&mut self) -> Result<(), Fail> {
        if self.journal.udev_stopped || !self.host.udev_running() {
            return Ok(());
        }
        self.journal.udev_stopped = true;
        self.record("stopping the udev exec queue");
        self.save()?;
        if let Err(e) = self.host.set_udev_queue(false) {
            self.journal.udev_stopped = false;
            return Err(Fail::Verify(format!(
                "cannot stop the udev exec queue: {}",
                e.sentence()
            )));
        }
        self.actions
            .push("udevadm control --stop-exec-queue".to_owned());
        Ok(())
    }

    /// Restarts udev's exec queue if daxplug stopped it.
    pub(super) fn release_udev(&mut self) -> Result<(), UdevError> {
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
                self.actions.push(format!(
                    "could not restart udev's exec queue: {}",
                    e.sentence()
                ));
                Err(e)
            }
        }
    }

    pub(super) fn commit_unbind(&mut self) -> Result<(), Fail> {
        self.offline_all()?;
        // offline_all's last look, which found every block offline.
        let d = self.device_seen()?;
        let ids: Vec<u64> = d.blocks.iter().map(|b| b.id).collect();
        if !self.opts.test_hooks.broken_commit {
            self.settle(&ids)?;
        }
        self.record("unbinding kmem");
        // The last look comes right before the unbind: one read per block, nothing else in
        // between, so that the window a competitor could online a block in is as short as
        // user space can make it.
        if !self.opts.test_hooks.broken_commit {
            self.assert_offline(&ids)?;
        }
        let dev = self.journal.device;
        self.apply_uncancellable(&Write::driver(DaxDriver::Kmem, DriverFile::Unbind, dev))?;
        let (_, d) = self.device()?;
        if d.state == ObservedState::Stuck {
            return Err(Fail::Verify(format!(
                "a block came online between the last check and the unbind, and the kernel kept {}",
                crate::discovery::problems::format_block_ids(d.online_blocks().map(|b| b.id))
            )));
        }
        Ok(())
    }

    /// While a device whose memory is movable is being offlined, another controller may
    /// online a block again with plain `online`, and `contig-zones` would put it in a
    /// kernel zone, where kernel allocations soon pin it for good. `auto-movable` (not
    /// NUMA-aware, so a CPU-less node qualifies) puts it back in `Movable` instead, where
    /// daxplug can offline it again. Journaled, and restored at the end whatever happens.
    pub(super) fn guard_policy(&mut self) -> Result<(), Fail> {
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
        let (Ok(policy), Ok(numa)) = (policy.parse::<OnlinePolicy>(), numa.parse::<BoolParam>())
        else {
            return Ok(());
        };
        if (policy, numa) == GUARDED_POLICY {
            return Ok(());
        }
        self.journal.saved_policy = Some((policy, numa));
        self.record("setting online_policy=auto-movable");
        // Saved here: a failure of the writes below is tolerated, a journal failure not.
        self.save()?;
        // Only a safeguard: a kernel where these cannot be written still gets the rest of
        // the protocol.
        let [p, n] = Write::online_policy(GUARDED_POLICY);
        match self
            .apply_uncancellable(&p)
            .and_then(|()| self.apply_uncancellable(&n))
        {
            Ok(()) => {}
            // A crash is not a failed write: the process is gone, nothing goes on.
            Err(Fail::Crash) => return Err(Fail::Crash),
            Err(e) => {
                self.actions
                    .push(format!("going on without the online_policy safeguard: {e}"));
                self.restore_policy();
            }
        }
        Ok(())
    }

    /// Puts back what `guard_policy` changed.
    pub(super) fn restore_policy(&mut self) {
        if let Some(saved) = self.journal.saved_policy {
            let [p, n] = Write::online_policy(saved);
            let a = self.apply_uncancellable(&p);
            let b = self.apply_uncancellable(&n);
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
    pub(super) fn settle(&mut self, ids: &[u64]) -> Result<(), Fail> {
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
    pub(super) fn assert_offline(&mut self, ids: &[u64]) -> Result<(), Fail> {
        let online: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| {
                self.k
                    .read(&paths::block_state(*id))
                    .is_ok_and(|s| s.parse::<BlockState>() != Ok(BlockState::Offline))
            })
            .collect();
        if online.is_empty() {
            Ok(())
        } else {
            Err(Fail::Contended(online))
        }
    }
}
