//! The scheduler: where actors get to run, virtual time, kernel allocations, signals and
//! the step-numbered faults.

use std::sync::atomic::Ordering;

use daxplug_abi::Zone;

use crate::machine::Machine;

impl Machine {
    /// A scheduling point: between 0 and `max_interleave` actor steps run here, the count
    /// and the actors chosen by the seeded generator.
    pub fn interleave(&mut self) {
        self.fire_device_removal();
        let n = self.rng.below(u64::from(self.max_interleave) + 1);
        for _ in 0..n {
            self.step();
        }
    }

    /// Whether a step would do nothing but move the clock: udev has no event to handle, no
    /// actor has work, and no kernel allocation could pin a block of device memory. A
    /// machine that only waits need not be stepped (or saved).
    pub fn quiet(&self) -> bool {
        let pinnable = self.kernel_alloc_per_mille > 0
            && self.blocks.values().any(|b| {
                b.owner.is_some() && !b.unmovable && matches!(b.zone, Some(z) if z != Zone::Movable)
            });
        !pinnable && !self.udev_ready() && !(0..self.actors.len()).any(|i| self.actor_ready(i))
    }

    /// One tick: time advances, the kernel may pin a page in a kernel-zone block, and one
    /// ready actor (udev counts as one) takes a step.
    pub fn step(&mut self) {
        self.clock += 1;
        if self.kernel_alloc_per_mille > 0 && self.rng.chance(self.kernel_alloc_per_mille) {
            let kernel_zone: Vec<u64> = self
                .blocks
                .iter()
                .filter(|(_, b)| {
                    b.owner.is_some() && matches!(b.zone, Some(z) if z != Zone::Movable)
                })
                .map(|(id, _)| *id)
                .collect();
            if let Some(&id) = self.rng.pick(&kernel_zone)
                && let Some(b) = self.blocks.get_mut(&id)
            {
                b.unmovable = true;
            }
        }
        let mut ready: Vec<Option<usize>> = Vec::new();
        if self.udev_ready() {
            ready.push(None);
        }
        ready.extend(
            (0..self.actors.len())
                .filter(|i| self.actor_ready(*i))
                .map(Some),
        );
        match self.rng.pick(&ready).copied() {
            Some(None) => self.udev_step(),
            Some(Some(i)) => self.actor_step(i),
            None => {}
        }
        if self.check_each_step {
            let found: Vec<String> = crate::invariants::check_step(self)
                .into_iter()
                .map(|v| format!("clock {}: {v}", self.clock))
                .collect();
            self.violations.extend(found);
        }
    }

    /// Runs steps until no actor and no udev event is waiting, or `max` steps ran. Always-
    /// busy actors (admin, tiering) keep it running to `max`.
    pub fn settle(&mut self, max: u64) {
        for _ in 0..max {
            let idle = !self.udev_ready() && !(0..self.actors.len()).any(|i| self.actor_ready(i));
            if idle {
                break;
            }
            self.step();
        }
    }

    /// Counts one step of a client's multi-step operation and fires the faults aimed at it.
    pub(crate) fn client_step(&mut self) {
        self.client_steps += 1;
        if self.faults.signal_at_steps.remove(&self.client_steps) {
            self.signal_pending = true;
        }
        if self.step_delay_us > 0 {
            std::thread::sleep(std::time::Duration::from_micros(self.step_delay_us));
        }
    }

    /// Removes the device the fault names once its step has come and nothing holds the
    /// device-hotplug lock (the removal's unbind needs it, so it waits for a running write).
    fn fire_device_removal(&mut self) {
        if let Some((name, at)) = self.faults.remove_device_at.clone()
            && at <= self.client_steps
            && self.lock.is_none()
        {
            self.faults.remove_device_at = None;
            self.remove_device(&name);
        }
    }

    /// Consumes a pending signal, from a fault or from another thread.
    pub(crate) fn take_signal(&mut self) -> bool {
        let external = self
            .signal
            .0
            .as_ref()
            .is_some_and(|f| f.swap(false, Ordering::SeqCst));
        external || std::mem::take(&mut self.signal_pending)
    }
}

#[cfg(test)]
mod tests {
    use crate::machine::{Actor, Flavour};
    use crate::presets::build;

    #[test]
    fn a_machine_with_nothing_to_do_is_quiet_and_one_with_work_is_not() {
        let mut m = build("hmem", Flavour::Legacy, 1).expect("preset");
        m.kernel_alloc_per_mille = 0;
        assert!(m.quiet(), "no actor, no event, no allocation");
        let before = m.clone();
        m.actors.push(Actor::Admin { per_mille: 1000 });
        assert!(!m.quiet(), "an admin always has work");
        m = before;
        // An allocation can pin a block only of device memory in a kernel zone, once.
        m.load_module("kmem").expect("kmem binds the devices");
        for _ in 0..10_000 {
            if m.quiet() {
                break;
            }
            m.step();
        }
        assert!(m.quiet(), "udev handled the hot-add's events");
        let id = *m
            .blocks
            .iter()
            .find(|(_, b)| b.owner.is_some())
            .expect("a device's block")
            .0;
        for b in m.blocks.values_mut().filter(|b| b.owner.is_some()) {
            b.zone = Some(daxplug_abi::Zone::Movable);
        }
        m.kernel_alloc_per_mille = 1000;
        assert!(m.quiet(), "movable memory cannot be pinned");
        m.blocks.get_mut(&id).expect("block").zone = Some(daxplug_abi::Zone::Normal);
        assert!(
            !m.quiet(),
            "a kernel-zone block of device memory can be pinned"
        );
        m.blocks.get_mut(&id).expect("block").unmovable = true;
        assert!(m.quiet(), "a pinned block cannot be pinned again");
    }
}
