//! Findings about where device memory lands: in DRAM's tier, out of demotion's reach, or
//! left at the default interleave weight while interleave is being tuned by hand.

use std::collections::BTreeMap;

use daxplug_abi::InterleaveWeight;
use daxplug_kernel::paths;

use super::{Finding, Severity};
use crate::discovery::placement::Demotion;
use crate::discovery::topology::Topology;

/// The CPU-less nodes with device memory online, each with the devices that put it there.
fn device_memory_nodes(topo: &Topology) -> BTreeMap<u32, Vec<String>> {
    let mut nodes: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for d in topo.devices.iter().filter(|d| d.counts.online > 0) {
        let Some(node) = d.target_node else { continue };
        let with_cpu = topo
            .nodes
            .has_cpu
            .as_ref()
            .is_some_and(|cpus| cpus.contains(node));
        if !with_cpu {
            nodes.entry(node).or_default().push(d.name.to_string());
        }
    }
    nodes
}

/// The placement findings.
pub(super) fn findings(topo: &Topology) -> Vec<Finding> {
    let mut out = Vec::new();
    let placement = &topo.placement;
    let has_cpu = topo.nodes.has_cpu.as_ref();
    // Demotion is one switch for the machine: one finding names every node it concerns.
    let mut demotion_off = Vec::new();
    for (node, devices) in device_memory_nodes(topo) {
        let p = placement.node(node, has_cpu);
        let devices = devices.join(", ");
        let subject = format!("node {node}");
        if let (true, Some(tier)) = (p.in_dram_tier(), p.tier) {
            out.push(Finding {
                severity: Severity::Warning,
                code: "device_memory_in_dram_tier",
                subject: subject.clone(),
                evidence: format!(
                    "the memory of {devices} is in memory_tier{tier}, DRAM's tier: firmware reported it as fast as DRAM, so demotion never moves cold pages there and tiering software takes it for DRAM"
                ),
                fix: "the tier follows the performance firmware reports (HMAT, CXL CDAT); check the firmware's CXL or HMAT settings (memory as 'special purpose' rather than conventional); user space cannot move a node between tiers".into(),
            });
        }
        if p.demotion == Demotion::Off && p.tier.is_some() && !p.in_dram_tier() {
            demotion_off.push(format!("node {node} ({devices})"));
        }
        if let Some(interleave) = &placement.interleave {
            let default = p.interleave_weight == Some(InterleaveWeight::DEFAULT);
            if interleave.manual() && interleave.tuned() && default {
                let fix = if interleave.auto.is_some() {
                    format!(
                        "echo WEIGHT > {wi}/node{node}, WEIGHT (1-255) being the node's share of bandwidth against the other nodes' weights, or echo true > {wi}/auto to let the kernel set weights from bandwidth",
                        wi = paths::WEIGHTED_INTERLEAVE
                    )
                } else {
                    format!(
                        "echo WEIGHT > {}/node{node}, WEIGHT (1-255) being the node's share of bandwidth against the other nodes' weights",
                        paths::WEIGHTED_INTERLEAVE
                    )
                };
                out.push(Finding {
                    severity: Severity::Warning,
                    code: "interleave_default_weight",
                    subject,
                    evidence: format!(
                        "weighted interleave is manual and other nodes have weights set, but node {node} (memory of {devices}) kept the default weight 1"
                    ),
                    fix,
                });
            }
        }
    }
    if !demotion_off.is_empty() {
        out.push(Finding {
            severity: Severity::Warning,
            code: "demotion_off",
            subject: "demotion".into(),
            evidence: format!(
                "device memory is online in a slower tier on {}, and demotion_enabled is false: reclaim swaps or drops cold pages instead of moving them there",
                demotion_off.join(", ")
            ),
            fix: format!(
                "echo true > {} (to keep it across boots, a tmpfiles.d line: w {} - - - - true)",
                paths::DEMOTION_ENABLED,
                paths::DEMOTION_ENABLED
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use daxplug_kernel::Kernel;
    use daxplug_model::{Flavour, Machine, Sim, build_preset};

    use crate::discovery::discover;
    use crate::discovery::topology::Scope;

    const WI: &str = "/sys/kernel/mm/mempolicy/weighted_interleave";

    /// The hmem preset with its device online_movable through the kernel's state file.
    fn online(edit: impl FnOnce(&mut Machine)) -> Sim {
        let mut m = build_preset("hmem", Flavour::Atomic, 1).expect("preset");
        edit(&mut m);
        m.load_kmem();
        let sim = Sim::new(m);
        sim.write("/sys/bus/dax/drivers/device_dax/unbind", "dax0.0")
            .ok();
        sim.write("/sys/bus/dax/drivers/kmem/bind", "dax0.0").ok();
        sim.write("/sys/bus/dax/devices/dax0.0/state", "unplugged")
            .expect("unplug");
        sim.write("/sys/bus/dax/devices/dax0.0/state", "online_movable")
            .expect("online");
        sim
    }

    fn codes(k: &dyn Kernel) -> Vec<&'static str> {
        let topo = discover(k, &Scope::All).expect("discover");
        super::findings(&topo).iter().map(|f| f.code).collect()
    }

    #[test]
    fn device_memory_in_dram_tier_is_named() {
        let sim = online(|m| m.nodes[1].adistance = Some(daxplug_abi::ADISTANCE_DRAM));
        assert_eq!(codes(&sim), ["device_memory_in_dram_tier"]);
    }

    #[test]
    fn demotion_off_is_named_until_switched_on() {
        let sim = online(|_| {});
        assert_eq!(codes(&sim), ["demotion_off"]);
        sim.write("/sys/kernel/mm/numa/demotion_enabled", "true")
            .expect("on");
        assert!(codes(&sim).is_empty());
    }

    #[test]
    fn a_new_node_at_the_default_weight_is_named_only_when_interleave_is_tuned() {
        let sim = online(|m| m.placement.demotion_enabled = true);
        assert!(codes(&sim).is_empty(), "auto mode, nothing tuned");
        sim.write(&format!("{WI}/node0"), "3").expect("weight");
        assert_eq!(codes(&sim), ["interleave_default_weight"]);
        sim.write(&format!("{WI}/node1"), "1").expect("weight");
        assert_eq!(
            codes(&sim),
            ["interleave_default_weight"],
            "1 is still the default"
        );
        sim.write(&format!("{WI}/node1"), "2").expect("weight");
        assert!(codes(&sim).is_empty());
    }
}
