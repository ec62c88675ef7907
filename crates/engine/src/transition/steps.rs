//! Each step of a plan: writing `state`, unbinding, binding, hot-add with the online type
//! applied inside the add, and repair.

use std::time::Instant;

use daxplug_abi::{BlockState, DaxDriver, DaxState, OnlineType, Zone};
use daxplug_kernel::{Errno, paths};

use crate::discovery::observe::ObservedState;
use crate::discovery::topology::Driver;
use crate::plan::write::{DriverFile, Write};
use crate::plan::{BindMethod, BindMethods, Plan, Step};

use super::report::{PhaseTime, Report};
use super::undo::step_name;
use super::{Fail, Run, Undo};

impl Run<'_> {
    pub(super) fn steps(&mut self, p: &Plan, rep: &mut Report) -> Result<(), Fail> {
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

    pub(super) fn step(&mut self, step: &Step) -> Result<(), Fail> {
        let dev = self.journal.device;
        match step {
            Step::WriteState { value } => {
                let (_, d) = self.device()?;
                let before = d.kernel_state;
                if *value == DaxState::Unplugged {
                    self.record("writing unplugged");
                }
                self.apply(&Write::dax_state(dev, *value))?;
                match (*value, before) {
                    (DaxState::Unplugged, Some(s))
                        if s.is_writable() && s != DaxState::Unplugged =>
                    {
                        self.undo.push(Undo::WriteState(s));
                    }
                    (DaxState::Unplugged, _) => {}
                    _ => self.undo.push(Undo::WriteState(DaxState::Unplugged)),
                }
                Ok(())
            }
            Step::Unbind { driver } => {
                if *driver == DaxDriver::DeviceDax {
                    self.journal.unbound_device_dax = true;
                    self.record("unbinding device_dax");
                    self.undo.push(Undo::BindDeviceDax(self.devdax_method()?));
                }
                if *driver == DaxDriver::FsdevDax {
                    self.record("unbinding fsdev_dax");
                    self.undo
                        .push(Undo::Bind(DaxDriver::FsdevDax, BindMethod::NewId));
                }
                self.apply(&Write::driver(*driver, DriverFile::Unbind, dev))
            }
            Step::BindDeviceDax { method } => {
                self.bind(DaxDriver::DeviceDax, *method)?;
                self.undo.push(Undo::UnbindDeviceDax);
                Ok(())
            }
            Step::LoadDriver { driver } => self.load_driver(*driver),
            Step::BindFsdev => {
                self.bind(DaxDriver::FsdevDax, BindMethod::NewId)?;
                self.undo.push(Undo::Unbind(DaxDriver::FsdevDax));
                Ok(())
            }
            Step::SetAlign { align } => self.set_extent(None, Some(*align)),
            Step::Resize { size } => self.set_extent(Some(*size), None),
            Step::Delete => self.delete(),
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

    /// The plan's bind methods; read from the device when there is no plan (a crashed
    /// transition rolled back from its journal).
    fn bind_methods(&self) -> Result<BindMethods, Fail> {
        if let Some(m) = self.bind_methods {
            return Ok(m);
        }
        let (topo, d) = self.reread()?;
        Ok(BindMethods::of(&topo, &d))
    }

    pub(super) fn kmem_method(&self) -> Result<BindMethod, Fail> {
        self.bind_methods().map(|m| m.kmem)
    }

    pub(super) fn devdax_method(&self) -> Result<BindMethod, Fail> {
        self.bind_methods().map(|m| m.device_dax)
    }

    /// Binds a driver and checks it really bound (`new_id` does not report probe failures).
    pub(super) fn bind(&mut self, driver: DaxDriver, method: BindMethod) -> Result<(), Fail> {
        let dev = self.journal.device;
        // `new_id` attaches the driver to every unbound device it then matches: a device
        // another `new_id` left on the id list, and under device_dax on Linux 6.1 (which
        // takes every device by itself) any device at all. With such devices about, `bind`
        // first (it binds this one only wherever the driver matches it), and before a
        // `new_id` the others are taken off the id list (a no-op for a name not on it).
        let others = if method == BindMethod::NewId {
            crate::discovery::bus::unbound_others(self.k, dev)
        } else {
            Vec::new()
        };
        let first = if others.is_empty() {
            method
        } else {
            BindMethod::Bind
        };
        match self.apply(&Write::driver(driver, first.into(), dev)) {
            // Not matched by type after all: the id list does it.
            Err(Fail::Kernel(e)) if e.errno == Errno::ENODEV && first == BindMethod::Bind => {
                let others = if method == BindMethod::Bind {
                    crate::discovery::bus::unbound_others(self.k, dev)
                } else {
                    others
                };
                for other in others {
                    self.apply(&Write::driver(driver, DriverFile::RemoveId, other))?;
                }
                self.apply(&Write::driver(driver, DriverFile::NewId, dev))?;
            }
            other => other?,
        }
        let (_, d) = self.device()?;
        if d.driver != Driver::from(driver) {
            return Err(Fail::Verify(format!(
                "{driver} did not bind to {dev} (its probe failed; a range the kernel leaked makes it fail with EBUSY)"
            )));
        }
        Ok(())
    }

    /// The online type applied inside the kernel's add: no udev rule or agent can online
    /// a block before the kernel has, in the zone asked for.
    pub(super) fn hot_add(
        &mut self,
        online_type: OnlineType,
        method: BindMethod,
    ) -> Result<(), Fail> {
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
            self.apply(&Write::auto_online_blocks(online_type))?;
            self.record("binding kmem under the policy");
        }
        let bound = self.bind(DaxDriver::Kmem, method);
        if matches!(bound, Err(Fail::Crash)) {
            return bound;
        }
        if changed {
            // Restored at once, whatever the bind did.
            let restored = self.restore_aob();
            bound?;
            restored
        } else {
            bound
        }
    }

    /// Puts back the `auto_online_blocks` that `hot_add` saved in the journal.
    pub(super) fn restore_aob(&mut self) -> Result<(), Fail> {
        let Some(saved) = self.journal.saved_aob else {
            return Ok(());
        };
        self.apply_uncancellable(&Write::auto_online_blocks(saved))?;
        self.journal.saved_aob = None;
        self.record("auto_online_blocks restored");
        Ok(())
    }

    /// After a hot-add: every block online in the zone asked for; stragglers are onlined,
    /// blocks in the wrong zone moved.
    pub(super) fn repair(&mut self, online_type: OnlineType) -> Result<(), Fail> {
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
                if b.state == BlockState::Online {
                    self.apply(&Write::block_state(b.id, OnlineType::Offline))?;
                }
                match self.apply(&Write::block_state(b.id, write_type)) {
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
            "{}'s blocks did not all come online as {online_type}: the device is {}",
            d.name, d.state
        )))
    }
}
