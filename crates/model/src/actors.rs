//! Competing controllers, each a small actor that takes one action per scheduler step.

use daxplug_abi::{BlockState, OnlineType};
use serde::{Deserialize, Serialize};

use crate::hotplug::Caller;
use crate::machine::Machine;
use crate::udev::{Rule, Subsystem};

/// A competing controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Actor {
    /// kata-agent: reads kernel uevents from netlink itself (not through udev) and writes
    /// `1` to `online` of every memory block added.
    KataAgent {
        /// Next uevent sequence number to look at.
        cursor: u64,
    },
    /// A daxctl-like per-block controller: one pass over a device's blocks, one block per
    /// step, writing `target` (`online_movable`, `online` or `offline`) to each block not
    /// already there. No lock, no retry, no rollback; the first hard error ends the pass.
    DaxctlLike {
        device: String,
        /// What to write.
        target: OnlineType,
        /// Next block position in the pass.
        cursor: usize,
        /// The pass has ended.
        done: bool,
    },
    /// An admin toggling single blocks of dax devices now and then.
    Admin {
        /// Chance per step, in per mille, of toggling a block.
        per_mille: u32,
    },
    /// A memory-tiering daemon: keeps pages on a node busy, so offlining its blocks takes
    /// more migration passes.
    Tiering {
        /// The node it promotes and demotes pages on.
        node: u32,
        /// Passes added to one random online block per step.
        passes: u32,
    },
    /// udev at boot: a dax device's modalias makes it run `modprobe kmem` (drivers
    /// autoprobing as the bus says) after `delay` steps, racing whatever loads kmem first.
    ModaliasLoad {
        /// Steps until the load.
        delay: u32,
    },
    /// Something flooding the kernel with memory uevents (`udevadm trigger` in a loop, a
    /// flapping hotplug controller): `per_step` `change` events for random blocks a step.
    UeventStorm {
        /// Events a step.
        per_step: u32,
    },
    /// A loop that onlines every offline block of a device it sees, like the udev rules
    /// and agents do, writing `value` to `state`.
    Reonliner {
        device: String,
        /// The value written (`online_movable`, `online`, …).
        value: String,
    },
}

impl Actor {
    /// A short name for listings.
    pub fn describe(&self) -> String {
        match self {
            Actor::KataAgent { .. } => {
                "kata-agent (echo 1 > memoryN/online on every block add, via netlink)".to_owned()
            }
            Actor::DaxctlLike {
                device,
                target,
                done,
                ..
            } => {
                format!(
                    "daxctl-like per-block pass: {target} on every block of {device}{}",
                    if *done { " (done)" } else { "" }
                )
            }
            Actor::Admin { per_mille } => {
                format!("admin toggling single blocks ({per_mille}‰ per step)")
            }
            Actor::Tiering { node, passes } => {
                format!("tiering daemon on node {node} (+{passes} migration passes per step)")
            }
            Actor::ModaliasLoad { delay } => {
                format!("udev loading kmem for a dax device's modalias (in {delay} steps)")
            }
            Actor::UeventStorm { per_step } => {
                format!("uevent storm ({per_step} memory change events per step)")
            }
            Actor::Reonliner { device, value } => {
                format!("re-onliner: {value} on every offline block of {device}")
            }
        }
    }
}

/// The udev rule RHEL ships (`40-redhat.rules`): online every added memory block, movable on
/// bare metal and plain `online` in virtual machines.
pub fn rhel_rule(vm: bool) -> Rule {
    Rule {
        name: if vm {
            "rhel-memory-online-vm"
        } else {
            "rhel-memory-online"
        }
        .to_owned(),
        subsystem: Subsystem::Memory,
        action: "add".to_owned(),
        if_offline: true,
        attr: "state".to_owned(),
        value: if vm { "online" } else { "online_movable" }.to_owned(),
    }
}

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
                    if self.sysfs_write(&path, "1", Caller::Actor) == Err(crate::RESTART) {
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
                        Err(e) if e == crate::RESTART => return,
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
