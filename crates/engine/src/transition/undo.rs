//! Rollback: the undo stack run in reverse after a failed step.

use daxplug_abi::{BlockState, DaxDriver, DaxState, OnlineType, ValidZones, Zone};
use daxplug_kernel::paths;

use crate::discovery::topology::Driver;
use crate::plan::write::{DriverFile, Write};
use crate::plan::{BindMethod, Step};

use super::observation::observe_device;
use super::{Fail, Run, Undo};

impl Run<'_> {
    /// The undo stack of a transition a crash interrupted, from what its journal says was
    /// done: blocks it offlined are put back first, then device_dax is bound again if
    /// daxplug unbound it and nothing is bound now.
    pub(super) fn undo_from_journal(&mut self) {
        if self.journal.unbound_device_dax
            && let Ok((_, d)) = observe_device(self.k, self.journal.device)
            && d.driver == Driver::None
            && let Ok(m) = self.devdax_method()
        {
            self.undo.push(Undo::BindDeviceDax(m));
        }
        if !self.journal.offlined.is_empty() {
            self.undo.push(Undo::Reonline);
        }
        // Resized while unbound: the size goes back before device_dax binds again.
        if let Some((size, align)) = self.journal.extent_before {
            self.undo.push(Undo::Extent(size, align));
        }
    }

    /// Undoes what was done, last first, best effort.
    pub(super) fn rollback(&mut self) {
        self.actions.push("rolling back".to_owned());
        let was = std::mem::replace(&mut self.rolling_back, true);
        while let Some(u) = self.undo.pop() {
            let r = match u {
                Undo::Reonline => self.reonline(),
                Undo::BindDeviceDax(m) => self.bind(DaxDriver::DeviceDax, m),
                Undo::UnbindDeviceDax => {
                    let dev = self.journal.device;
                    self.apply_uncancellable(&Write::driver(
                        DaxDriver::DeviceDax,
                        DriverFile::Unbind,
                        dev,
                    ))
                }
                Undo::WriteState(v) => {
                    let dev = self.journal.device;
                    self.apply_uncancellable(&Write::dax_state(dev, v))
                }
                Undo::HotAdd(t, m) => self.undo_hot_add(t, m),
                Undo::RemoveAgain => self.remove_again(),
                Undo::Bind(driver, m) => self.bind(driver, m),
                Undo::Unbind(driver) => {
                    let dev = self.journal.device;
                    self.apply_uncancellable(&Write::driver(driver, DriverFile::Unbind, dev))
                }
                Undo::Extent(size, align) => self.restore_extent(size, align),
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
    pub(super) fn reonline(&mut self) -> Result<(), Fail> {
        let offlined = std::mem::take(&mut self.journal.offlined);
        for _ in 0..3 {
            let mut settled = true;
            for (id, zone) in offlined.iter().rev() {
                let state_path = paths::block_state(*id);
                let zones_path = paths::block_valid_zones(*id);
                let Ok(now) = self.k.read(&state_path) else {
                    continue;
                };
                let t = if zone.is_movable() {
                    OnlineType::OnlineMovable
                } else {
                    OnlineType::OnlineKernel
                };
                if now.parse::<BlockState>() != Ok(BlockState::Offline) {
                    // Online (or going offline): in which zone class is it now?
                    let movable_now = self
                        .k
                        .read(&zones_path)
                        .ok()
                        .and_then(|z| z.parse::<ValidZones>().ok())
                        .is_some_and(|z| z.zones() == [Zone::Movable]);
                    if movable_now == zone.is_movable() {
                        continue;
                    }
                    settled = false;
                    if self
                        .apply_uncancellable(&Write::block_state(*id, OnlineType::Offline))
                        .is_err()
                    {
                        continue;
                    }
                }
                settled = false;
                if let Err(e) = self.apply_uncancellable(&Write::block_state(*id, t)) {
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

    pub(super) fn undo_hot_add(&mut self, t: OnlineType, m: BindMethod) -> Result<(), Fail> {
        let saved_cancel = self.deadline.take();
        let r = self.hot_add(t, m);
        self.deadline = saved_cancel;
        r
    }

    /// Takes a hot-added device out again (after a failed repair).
    pub(super) fn remove_again(&mut self) -> Result<(), Fail> {
        let (_, d) = self.device()?;
        let dev = self.journal.device;
        if d.kernel_state.is_some() {
            self.apply_uncancellable(&Write::dax_state(dev, DaxState::Unplugged))?;
            return self.apply_uncancellable(&Write::driver(
                DaxDriver::Kmem,
                DriverFile::Unbind,
                dev,
            ));
        }
        self.journal.offlined.clear();
        let deadline = self.deadline.take();
        let r = self.offline_all().and_then(|()| self.fenced_unbind());
        self.deadline = deadline;
        r
    }
}

pub(super) fn step_name(s: &Step) -> &'static str {
    match s {
        Step::WriteState { .. } => "write state",
        Step::Unbind { .. } => "unbind",
        Step::LoadDriver { .. } => "load driver",
        Step::BindFsdev => "bind fsdev_dax",
        Step::SetAlign { .. } => "set align",
        Step::Resize { .. } => "resize",
        Step::Delete => "delete",
        Step::BindDeviceDax { .. } => "bind device_dax",
        Step::HotAdd { .. } => "hot-add",
        Step::Repair { .. } => "verify zones",
        Step::OfflineBlocks => "offline blocks",
        Step::FencedUnbind => "fenced unbind",
    }
}
