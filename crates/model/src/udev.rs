//! Uevents and udev: every kernel event is logged; udev queues them and, while its exec
//! queue runs, applies its rules one event per scheduler step.

use crate::machine::{Caller, Machine, Rule, Subsystem, UEVENT_LOG, UeventRecord};

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
                && e == crate::machine::RESTART
            {
                return;
            }
        }
        self.udev.queue.pop_front();
        self.udev.handled += 1;
    }
}
