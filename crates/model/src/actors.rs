//! Competing controllers, each a small actor that takes one action per scheduler step.

use daxplug_abi::{BlockState, OnlineType};

use crate::machine::{Actor, Caller, Machine, Subsystem};

impl Machine {
    /// Blocks that belong to a device (added for it, now or leaked), in id order.
    pub(crate) fn device_blocks(&self, device: &str) -> Vec<u64> {
        self.blocks
            .iter()
            .filter(|(_, b)| b.owner.as_deref() == Some(device))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Whether actor `i` has something to do.
    pub(crate) fn actor_ready(&self, i: usize) -> bool {
        match &self.actors[i] {
            Actor::KataAgent { cursor } => self.uevents.last().is_some_and(|e| e.seq >= *cursor),
            Actor::DaxctlLike { done, .. } => !done,
            Actor::Admin { .. } | Actor::Tiering { .. } | Actor::UeventStorm { .. } => true,
            Actor::ModaliasLoad { .. } => !self.kmem_loaded,
            Actor::Reonliner { device, .. } => self.device_blocks(device).iter().any(|id| {
                self.blocks
                    .get(id)
                    .is_some_and(|b| b.state == BlockState::Offline)
            }),
        }
    }

    /// Runs one step of actor `i`.
    pub(crate) fn actor_step(&mut self, i: usize) {
        let actor = self.actors[i].clone();
        match actor {
            Actor::KataAgent { cursor } => {
                let Some(ev) = self.uevents.iter().find(|e| e.seq >= cursor).cloned() else {
                    return;
                };
                if ev.subsystem == Subsystem::Memory && ev.action == "add" {
                    let path = format!("/sys{}/online", ev.devpath);
                    if self.sysfs_write(&path, "1", Caller::Actor) == Err(crate::machine::RESTART) {
                        return;
                    }
                }
                self.actors[i] = Actor::KataAgent { cursor: ev.seq + 1 };
            }
            Actor::DaxctlLike {
                device,
                target,
                cursor,
                ..
            } => {
                let blocks = self.device_blocks(&device);
                let Some(&id) = blocks.get(cursor) else {
                    self.actors[i] = Actor::DaxctlLike {
                        device,
                        target,
                        cursor,
                        done: true,
                    };
                    return;
                };
                let state = self.blocks.get(&id).map(|b| b.state);
                let wanted = if target == OnlineType::Offline {
                    BlockState::Offline
                } else {
                    BlockState::Online
                };
                let mut done = false;
                if state != Some(wanted) {
                    let path = format!("/sys/devices/system/memory/memory{id}/state");
                    match self.sysfs_write(&path, target.as_str(), Caller::Actor) {
                        Err(e) if e == crate::machine::RESTART => return,
                        // daxctl counts a failed write as raced-success when the block
                        // ended up where it wanted; anything else ends the pass.
                        Err(_) => done = self.blocks.get(&id).map(|b| b.state) != Some(wanted),
                        Ok(()) => {}
                    }
                }
                self.actors[i] = Actor::DaxctlLike {
                    device,
                    target,
                    cursor: cursor + 1,
                    done,
                };
            }
            Actor::Admin { per_mille } => {
                if !self.rng.chance(per_mille) {
                    return;
                }
                let candidates: Vec<u64> = self
                    .blocks
                    .iter()
                    .filter(|(_, b)| b.owner.is_some())
                    .map(|(id, _)| *id)
                    .collect();
                let Some(&id) = self.rng.pick(&candidates) else {
                    return;
                };
                let value = match self.blocks.get(&id).map(|b| b.state) {
                    Some(BlockState::Online) => "offline",
                    _ => *self
                        .rng
                        .pick(&["online", "online_movable", "online_kernel"])
                        .unwrap_or(&"online"),
                };
                let path = format!("/sys/devices/system/memory/memory{id}/state");
                let _ = self.sysfs_write(&path, value, Caller::Actor);
            }
            Actor::Tiering { node, passes } => {
                let online: Vec<u64> = self
                    .blocks
                    .iter()
                    // An isolated (going-offline) block takes no new pages.
                    .filter(|(_, b)| {
                        b.node == node && b.owner.is_some() && b.state == BlockState::Online
                    })
                    .map(|(id, _)| *id)
                    .collect();
                if let Some(&id) = self.rng.pick(&online)
                    && let Some(b) = self.blocks.get_mut(&id)
                {
                    b.busy = b.busy.saturating_add(passes);
                }
            }
            Actor::ModaliasLoad { delay } => {
                if delay == 0 {
                    self.load_kmem();
                } else {
                    self.actors[i] = Actor::ModaliasLoad { delay: delay - 1 };
                }
            }
            Actor::UeventStorm { per_step } => {
                let ids: Vec<u64> = self.blocks.keys().copied().collect();
                for _ in 0..per_step {
                    if let Some(&id) = self.rng.pick(&ids) {
                        self.emit_block(id, "change");
                    }
                }
            }
            Actor::Reonliner { device, value } => {
                let offline: Vec<u64> = self
                    .device_blocks(&device)
                    .into_iter()
                    .filter(|id| {
                        self.blocks
                            .get(id)
                            .is_some_and(|b| b.state == BlockState::Offline)
                    })
                    .collect();
                if let Some(&id) = offline.first() {
                    let path = format!("/sys/devices/system/memory/memory{id}/state");
                    let _ = self.sysfs_write(&path, &value, Caller::Actor);
                }
            }
        }
    }
}
