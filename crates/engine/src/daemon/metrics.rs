//! The numbers the daemon's metrics endpoint serves, in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use daxplug_abi::DaxName;

use crate::discovery::observe::ObservedState;
use crate::discovery::placement::{Demotion, NodePlacement};
use crate::discovery::topology::Topology;
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
    /// Managed devices whose memory is pinned in a kernel zone: the rule cannot be reached
    /// before a reboot.
    pub blocked: std::collections::BTreeSet<DaxName>,
    /// Whether the boot gate is closed (`None`: no dax bus to gate).
    pub gate_closed: Option<bool>,
    /// Whether the last write of the Node Feature Discovery file worked (`None`: the
    /// policy asks for none).
    pub nfd_written: Option<bool>,
    /// Unix time of the last transition.
    pub last_transition: Option<u64>,
    /// What the daemon itself costs, filled by its event loop.
    pub cost: DaemonCost,
    /// Per node a device targets: its placement and the device memory online on it.
    pub nodes: BTreeMap<u32, NodeMetrics>,
    /// `demotion_enabled`, where the kernel has it.
    pub demotion_enabled: Option<bool>,
    /// Weighted interleave in auto mode, where the kernel has the switch.
    pub interleave_auto: Option<bool>,
}

/// One node's numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeMetrics {
    /// Tier, demotion, interleave weight.
    pub placement: NodePlacement,
    /// Device memory online in `ZONE_MOVABLE`, in bytes.
    pub movable_bytes: u64,
    /// Device memory online in a kernel zone, in bytes.
    pub kernel_bytes: u64,
}

/// One metric with a single value: its help, its type and the value.
fn scalar(s: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        s,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

impl Metrics {
    /// Takes every device's state and block counts, and the placement and device memory of
    /// each node, from a fresh reading.
    pub fn observe(&mut self, topo: &Topology) {
        self.devices = topo
            .devices
            .iter()
            .map(|d| {
                (
                    d.name,
                    (d.state, d.counts.online, d.counts.movable, d.counts.normal),
                )
            })
            .collect();
        let has_cpu = topo.nodes.has_cpu.as_ref();
        self.nodes = topo
            .device_memory_by_node()
            .into_iter()
            .map(|(node, (movable_bytes, kernel_bytes))| {
                let placement = topo.placement.node(node, has_cpu);
                (
                    node,
                    NodeMetrics {
                        placement,
                        movable_bytes,
                        kernel_bytes,
                    },
                )
            })
            .collect();
        self.demotion_enabled = topo.placement.demotion_enabled;
        self.interleave_auto = topo.placement.interleave.as_ref().and_then(|i| i.auto);
    }

    fn render_nodes(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "# HELP daxplug_node_device_memory_bytes Device memory online on each node, by zone.\n# TYPE daxplug_node_device_memory_bytes gauge"
        );
        for (node, n) in &self.nodes {
            let _ = writeln!(
                s,
                "daxplug_node_device_memory_bytes{{node=\"{node}\",zone=\"movable\"}} {}\ndaxplug_node_device_memory_bytes{{node=\"{node}\",zone=\"kernel\"}} {}",
                n.movable_bytes, n.kernel_bytes
            );
        }
        type Value = fn(&NodeMetrics) -> Option<u64>;
        let per_node: [(&str, &str, Value); 4] = [
            (
                "daxplug_node_memory_tier",
                "Memory tier of each node device memory lands on (memory_tierN); absent while the node is in none.",
                |n| n.placement.tier.map(|t| u64::from(t.0)),
            ),
            (
                "daxplug_node_in_dram_tier",
                "1 if the node shares DRAM's memory tier.",
                |n| {
                    n.placement
                        .tier
                        .map(|_| u64::from(n.placement.in_dram_tier()))
                },
            ),
            (
                "daxplug_node_demotion_target",
                "1 if demotion is on and a faster tier demotes to the node.",
                |n| {
                    (n.placement.demotion != Demotion::Unknown)
                        .then(|| u64::from(n.placement.demotion == Demotion::Reaches))
                },
            ),
            (
                "daxplug_node_interleave_weight",
                "Weighted-interleave weight of the node.",
                |n| n.placement.interleave_weight.map(|w| u64::from(w.get())),
            ),
        ];
        for (name, help, value) in per_node {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (node, n) in &self.nodes {
                if let Some(v) = value(n) {
                    let _ = writeln!(s, "{name}{{node=\"{node}\"}} {v}");
                }
            }
        }
        for (name, help, value) in [
            (
                "daxplug_demotion_enabled",
                "1 if reclaim demotes pages to slower tiers.",
                self.demotion_enabled,
            ),
            (
                "daxplug_weighted_interleave_auto",
                "1 if the kernel sets interleave weights from bandwidth.",
                self.interleave_auto,
            ),
        ] {
            if let Some(v) = value {
                scalar(s, name, "gauge", help, u8::from(v));
            }
        }
    }
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
            for &st in ObservedState::ALL {
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
        scalar(
            &mut s,
            "daxplug_drift_events_total",
            "counter",
            "Times a managed device left its desired state.",
            self.drift_events,
        );
        scalar(
            &mut s,
            "daxplug_held_devices",
            "gauge",
            "Managed devices held for maintenance (daxplug hold).",
            self.held,
        );
        let _ = writeln!(
            s,
            "# HELP daxplug_device_blocked_until_reboot A managed device whose memory is pinned in a kernel zone: its rule cannot be reached before a reboot.\n# TYPE daxplug_device_blocked_until_reboot gauge"
        );
        for d in self.devices.keys() {
            let _ = writeln!(
                s,
                "daxplug_device_blocked_until_reboot{{device=\"{d}\"}} {}",
                u8::from(self.blocked.contains(d))
            );
        }
        if let Some(closed) = self.gate_closed {
            scalar(
                &mut s,
                "daxplug_boot_gate_closed",
                "gauge",
                "1 while the boot gate keeps dax drivers from binding devices on their own.",
                u8::from(closed),
            );
        }
        if let Some(written) = self.nfd_written {
            scalar(
                &mut s,
                "daxplug_nfd_file_written",
                "gauge",
                "1 if the last write of the Node Feature Discovery file worked; the rules apply either way.",
                u8::from(written),
            );
        }
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
            scalar(&mut s, name, kind, help, value);
        }
        self.render_nodes(&mut s);
        if let Some(t) = self.last_transition {
            scalar(
                &mut s,
                "daxplug_last_transition_timestamp_seconds",
                "gauge",
                "Unix time of the last transition.",
                t,
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::discover;
    use crate::discovery::topology::Scope;
    use daxplug_model::{Flavour, Sim, build_preset};

    #[test]
    fn nodes_carry_tier_demotion_interleave_and_device_memory() {
        let sim = Sim::new(build_preset("cxl", Flavour::Atomic, 1).expect("preset"));
        let mut m = Metrics::default();
        m.observe(&discover(&sim, &Scope::All).expect("discover"));
        let text = m.render();
        for line in [
            "daxplug_node_device_memory_bytes{node=\"1\",zone=\"kernel\"} 1073741824",
            "daxplug_node_device_memory_bytes{node=\"1\",zone=\"movable\"} 0",
            "daxplug_node_memory_tier{node=\"2\"} 22",
            "daxplug_node_in_dram_tier{node=\"1\"} 0",
            "daxplug_node_demotion_target{node=\"1\"} 0",
            "daxplug_node_interleave_weight{node=\"1\"} 1",
            "daxplug_demotion_enabled 0",
            "daxplug_weighted_interleave_auto 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
    }
}
