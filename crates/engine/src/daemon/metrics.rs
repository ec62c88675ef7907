//! The numbers the daemon's metrics endpoint serves, in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use daxplug_abi::DaxName;

use crate::observe::ObservedState;
use crate::transition::Outcome;

/// Numbers for the metrics endpoint.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Per device: observed state, online, movable, normal blocks.
    pub devices: BTreeMap<DaxName, (ObservedState, u64, u64, u64)>,
    /// Transitions by result.
    pub transitions: BTreeMap<Outcome, u64>,
    /// Drift events seen.
    pub drift_events: u64,
    /// Managed devices held for maintenance at the last pass.
    pub held: u64,
    /// Unix time of the last transition.
    pub last_transition: Option<u64>,
    /// What the daemon itself costs, filled by its event loop.
    pub cost: DaemonCost,
}

/// The daemon's own cost and work, as its event loop counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DaemonCost {
    /// CPU time used by the process (user + system), in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub resident_bytes: u64,
    /// Events about memory blocks or dax devices handled.
    pub events: u64,
    /// Times the event source lost events (a full look at every device followed).
    pub overflows: u64,
    /// Passes over the devices, for any reason.
    pub passes: u64,
    /// Passes made because the sweep interval elapsed, not because of an event.
    pub sweeps: u64,
}

impl Metrics {
    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP daxplug_device_state Observed state of each dax device (1 for the current state).\n# TYPE daxplug_device_state gauge\n");
        for (d, (state, ..)) in &self.devices {
            for st in ObservedState::ALL {
                let _ = writeln!(
                    s,
                    "daxplug_device_state{{device=\"{d}\",state=\"{st}\"}} {}",
                    u8::from(*state == st)
                );
            }
        }
        for (name, help, idx) in [
            (
                "daxplug_device_blocks_online",
                "Online memory blocks of each device.",
                1,
            ),
            (
                "daxplug_device_blocks_movable",
                "Online memory blocks in ZONE_MOVABLE.",
                2,
            ),
            (
                "daxplug_device_blocks_normal",
                "Online memory blocks in a kernel zone.",
                3,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (d, v) in &self.devices {
                let n = match idx {
                    1 => v.1,
                    2 => v.2,
                    _ => v.3,
                };
                let _ = writeln!(s, "{name}{{device=\"{d}\"}} {n}");
            }
        }
        s.push_str("# HELP daxplug_transitions_total Transitions the daemon ran, by result.\n# TYPE daxplug_transitions_total counter\n");
        for (r, n) in &self.transitions {
            let _ = writeln!(
                s,
                "daxplug_transitions_total{{result=\"{}\"}} {n}",
                r.as_str()
            );
        }
        let _ = writeln!(
            s,
            "# HELP daxplug_drift_events_total Times a managed device left its desired state.\n# TYPE daxplug_drift_events_total counter\ndaxplug_drift_events_total {}",
            self.drift_events
        );
        let _ = writeln!(
            s,
            "# HELP daxplug_held_devices Managed devices held for maintenance (daxplug hold).\n# TYPE daxplug_held_devices gauge\ndaxplug_held_devices {}",
            self.held
        );
        for (name, kind, help, value) in [
            (
                "daxplug_daemon_cpu_seconds_total",
                "counter",
                "CPU time the daemon used (user and system).",
                self.cost.cpu_seconds.to_string(),
            ),
            (
                "daxplug_daemon_resident_memory_bytes",
                "gauge",
                "The daemon's resident memory.",
                self.cost.resident_bytes.to_string(),
            ),
            (
                "daxplug_daemon_events_total",
                "counter",
                "Memory and dax events the daemon handled.",
                self.cost.events.to_string(),
            ),
            (
                "daxplug_daemon_event_overflows_total",
                "counter",
                "Times events were lost and every device was looked at again.",
                self.cost.overflows.to_string(),
            ),
            (
                "daxplug_daemon_passes_total",
                "counter",
                "Passes over the devices, for any reason.",
                self.cost.passes.to_string(),
            ),
            (
                "daxplug_daemon_sweeps_total",
                "counter",
                "Passes made because the sweep interval elapsed.",
                self.cost.sweeps.to_string(),
            ),
        ] {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        if let Some(t) = self.last_transition {
            let _ = writeln!(
                s,
                "# HELP daxplug_last_transition_timestamp_seconds Unix time of the last transition.\n# TYPE daxplug_last_transition_timestamp_seconds gauge\ndaxplug_last_transition_timestamp_seconds {t}"
            );
        }
        s
    }
}
