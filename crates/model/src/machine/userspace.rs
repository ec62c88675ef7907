//! The plain state of user space in the emulated machine: the competing controllers, udev
//! and its rules, and the uevents the kernel sent. Their behaviour is in `actors` and `udev`.

use std::collections::VecDeque;

use daxplug_abi::OnlineType;
use serde::{Deserialize, Serialize};

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

/// Subsystem of a uevent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subsystem {
    /// Memory blocks.
    Memory,
    /// dax devices.
    Dax,
}

impl Subsystem {
    /// The kernel's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Subsystem::Memory => "memory",
            Subsystem::Dax => "dax",
        }
    }
}

/// How many uevents the model keeps for its listeners (kata-agent, the daemon under
/// `--sim`): enough for every event of a transition, bounded under a uevent storm.
pub const UEVENT_LOG: usize = 1 << 16;

/// One kernel uevent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UeventRecord {
    /// `SEQNUM`.
    pub seq: u64,
    /// Virtual time it was sent.
    pub clock: u64,
    /// `ACTION`: add, remove, online, offline, bind, unbind.
    pub action: String,
    /// `DEVPATH` (under `/sys`).
    pub devpath: String,
    /// `SUBSYSTEM`.
    pub subsystem: Subsystem,
    /// Other variables (`DRIVER=kmem`, …).
    pub vars: Vec<(String, String)>,
}

impl UeventRecord {
    /// The message netlink delivers for it: `action@devpath`, then `KEY=value` items, each
    /// ended by a NUL.
    pub fn message(&self) -> Vec<u8> {
        let mut m = format!(
            "{action}@{devpath}\0ACTION={action}\0DEVPATH={devpath}\0SUBSYSTEM={}\0SEQNUM={}\0",
            self.subsystem.as_str(),
            self.seq,
            action = self.action,
            devpath = self.devpath,
        );
        for (k, v) in &self.vars {
            m.push_str(&format!("{k}={v}\0"));
        }
        m.into_bytes()
    }
}

/// A udev rule that writes an attribute of the event's device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// A name for listings (`rhel-memory-online`).
    pub name: String,
    /// Matches `SUBSYSTEM`.
    pub subsystem: Subsystem,
    /// Matches `ACTION`.
    pub action: String,
    /// Only when the device's `state` reads `offline` (`ATTR{state}=="offline"`).
    pub if_offline: bool,
    /// The attribute written (`state`, `online`).
    pub attr: String,
    /// The value written.
    pub value: String,
}

/// udev's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Udev {
    /// Whether the exec queue runs (`udevadm control --start-exec-queue`).
    pub running: bool,
    /// Sequence numbers of events not yet handled.
    pub queue: VecDeque<u64>,
    /// Rules, in order.
    pub rules: Vec<Rule>,
    /// Events handled so far.
    pub handled: u64,
}

impl Default for Udev {
    fn default() -> Self {
        Self {
            running: true,
            queue: VecDeque::new(),
            rules: Vec::new(),
            handled: 0,
        }
    }
}
