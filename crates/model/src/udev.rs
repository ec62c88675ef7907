//! Uevents and udev: every kernel event is logged; udev queues them and, while its exec
//! queue runs, applies its rules one event per scheduler step.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::hotplug::Caller;
use crate::machine::Machine;

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

impl Machine {
    /// Sends a uevent: logged for netlink listeners and queued for udev.
    pub(crate) fn emit(
        &mut self,
        action: &str,
        devpath: &str,
        subsystem: Subsystem,
        vars: Vec<(String, String)>,
    ) {
        self.uevent_seqnum += 1;
        let seq = self.uevent_seqnum;
        if self.uevents.len() >= UEVENT_LOG {
            // Dropped in bulk so that a storm does not shift the log at every event.
            self.uevents.drain(..UEVENT_LOG / 4);
        }
        self.uevents.push(UeventRecord {
            seq,
            clock: self.clock,
            action: action.to_owned(),
            devpath: devpath.to_owned(),
            subsystem,
            vars,
        });
        // udev's socket holds so much: past it, the kernel drops events for udev too.
        if self.udev.queue.len() >= UEVENT_LOG {
            self.udev.queue.pop_front();
        }
        self.udev.queue.push_back(seq);
    }

    /// The event with this sequence number.
    pub fn uevent(&self, seq: u64) -> Option<&UeventRecord> {
        // Events are appended in sequence order, so a binary search finds them.
        self.uevents
            .binary_search_by_key(&seq, |e| e.seq)
            .ok()
            .and_then(|i| self.uevents.get(i))
    }

    /// Whether udev has an event it could handle now.
    pub(crate) fn udev_ready(&self) -> bool {
        self.udev.running && !self.udev.queue.is_empty()
    }

    /// Handles the event at the head of udev's queue. If a rule's write is held off by the
    /// hotplug lock, the event stays queued and is retried at a later step.
    pub(crate) fn udev_step(&mut self) {
        let Some(&seq) = self.udev.queue.front() else {
            return;
        };
        let Some(ev) = self.uevent(seq).cloned() else {
            self.udev.queue.pop_front();
            return;
        };
        let rules: Vec<Rule> = self
            .udev
            .rules
            .iter()
            .filter(|r| r.subsystem == ev.subsystem && r.action == ev.action)
            .cloned()
            .collect();
        for rule in rules {
            let dir = format!("/sys{}", ev.devpath);
            if rule.if_offline {
                match self.sysfs_read(&format!("{dir}/state")) {
                    Ok(state) if state.trim_end() == "offline" => {}
                    _ => continue,
                }
            }
            let path = format!("{dir}/{}", rule.attr);
            if let Err(e) = self.sysfs_write(&path, &rule.value, Caller::Actor)
                && e == crate::RESTART
            {
                return;
            }
        }
        self.udev.queue.pop_front();
        self.udev.handled += 1;
    }
}
