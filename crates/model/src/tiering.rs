//! Memory tiering and NUMA placement: which memory tier a node's memory joins, the
//! demotion switch, and the weighted-interleave weights, as `mm/memory-tiers.c` and
//! `mm/mempolicy.c` keep them.
//!
//! A node is in a tier only while it has memory (`N_MEMORY`): its first online block puts
//! it there and its last offlined block takes it out. The tier comes from the node's
//! abstract distance: DRAM's for nodes with boot memory or CPUs, the one firmware reports
//! (HMAT, CDAT) where the machine file gives one, else kmem's default for dax memory.
//! The `legacy` flavour (6.12) shows an interleave weight for every possible node and has
//! no `auto` switch; the `atomic` flavour (7.3) shows weights for nodes with memory only,
//! with `auto` on at boot.

use std::collections::BTreeMap;

use daxplug_abi::{ADISTANCE_DAX_DEFAULT, ADISTANCE_DRAM, MemoryTier, tier_of_adistance};
use daxplug_kernel::Errno;

use crate::machine::{Flavour, Machine};

/// The most nodes the emulated machine has files for in `weighted_interleave/`.
pub const MAX_NODES: u32 = 16;

impl Machine {
    /// The abstract distance of a node's memory.
    pub fn node_adistance(&self, node: u32) -> u32 {
        match self.nodes.iter().find(|n| n.id == node) {
            Some(n) => n.adistance.unwrap_or(if n.has_cpu || n.boot_mem_total > 0 {
                ADISTANCE_DRAM
            } else {
                ADISTANCE_DAX_DEFAULT
            }),
            None => ADISTANCE_DAX_DEFAULT,
        }
    }

    /// The tier of a node while it has memory.
    pub fn node_tier(&self, node: u32) -> Option<MemoryTier> {
        self.node_has_memory(node, false)
            .then(|| tier_of_adistance(self.node_adistance(node)))
    }

    /// Every tier with memory in it, with its nodes.
    pub fn memory_tiers(&self) -> BTreeMap<MemoryTier, Vec<u32>> {
        let mut tiers: BTreeMap<MemoryTier, Vec<u32>> = BTreeMap::new();
        for n in &self.nodes {
            if let Some(t) = self.node_tier(n.id) {
                tiers.entry(t).or_default().push(n.id);
            }
        }
        tiers
    }

    /// Whether the kernel shows the weighted-interleave `auto` switch.
    pub fn has_interleave_auto(&self) -> bool {
        self.flavour == Flavour::Atomic
    }

    /// Whether the kernel sets the weights itself: it has the `auto` switch and it is on.
    pub fn interleave_in_auto_mode(&self) -> bool {
        self.has_interleave_auto() && self.placement.interleave_auto
    }

    /// Whether `weighted_interleave/nodeN` is there.
    pub fn interleave_file(&self, node: u32) -> bool {
        let possible = node < MAX_NODES && self.nodes.iter().any(|n| n.id == node);
        match self.flavour {
            Flavour::Legacy => possible,
            Flavour::Atomic => possible && self.node_has_memory(node, false),
        }
    }

    /// A node's interleave weight as the kernel shows it: in auto mode the one derived from
    /// the node's bandwidth (1 where firmware gives none), else the one set, else 1.
    pub fn interleave_weight(&self, node: u32) -> u8 {
        if self.interleave_in_auto_mode() {
            return self.auto_weight(node);
        }
        self.placement
            .interleave_weights
            .get(&node)
            .copied()
            .unwrap_or(1)
    }

    fn auto_weight(&self, node: u32) -> u8 {
        self.nodes
            .iter()
            .find(|n| n.id == node)
            .and_then(|n| n.bandwidth_weight)
            .unwrap_or(1)
    }

    /// A write to `weighted_interleave/nodeN`: 1 to 255 (any base `kstrtou8` reads), and
    /// the kernel leaves auto mode, keeping the weights auto mode had computed. 6.12 also
    /// takes 0 or nothing, which puts the node back to the default weight; 7.3 refuses them.
    pub fn set_interleave_weight(&mut self, node: u32, token: &str) -> Result<(), Errno> {
        if self.flavour == Flavour::Legacy
            && (token.is_empty() || crate::kstr::kstrtou8(token) == Some(0))
        {
            self.placement.interleave_weights.remove(&node);
            return Ok(());
        }
        let weight = crate::kstr::kstrtou8(token)
            .filter(|w| *w > 0)
            .ok_or(Errno::EINVAL)?;
        if self.interleave_in_auto_mode() {
            self.keep_auto_weights();
        }
        self.placement.interleave_weights.insert(node, weight);
        Ok(())
    }

    /// A write to `weighted_interleave/auto`. True recomputes every weight from the nodes'
    /// bandwidth, which the kernel refuses with `ENODEV` when firmware reported none (even
    /// though the file reads `true` until a weight is first written); false keeps the
    /// weights in force, as manual ones.
    pub fn set_interleave_auto(&mut self, on: bool) -> Result<(), Errno> {
        if on {
            if !self.nodes.iter().any(|n| n.bandwidth_weight.is_some()) {
                return Err(Errno::ENODEV);
            }
            self.placement.interleave_weights.clear();
        } else if self.placement.interleave_auto {
            self.keep_auto_weights();
        }
        self.placement.interleave_auto = on;
        Ok(())
    }

    /// Leaving auto mode: the weights it computed become manual ones.
    fn keep_auto_weights(&mut self) {
        self.placement.interleave_weights = self
            .nodes
            .iter()
            .map(|n| (n.id, self.auto_weight(n.id)))
            .collect();
        self.placement.interleave_auto = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Caller;
    use crate::presets::build;

    /// Binds the first device to kmem and brings it to `state` through `daxX.Y/state`.
    fn first_device_to(m: &mut Machine, state: &str) {
        let dev = m.devices[0].name.clone();
        m.load_kmem();
        if let Some(driver) = m.devices[0].driver.filter(|d| *d != crate::DaxDriver::Kmem) {
            let unbind = format!("/sys/bus/dax/drivers/{}/unbind", driver.as_str());
            m.sysfs_write(&unbind, &dev, Caller::Client)
                .expect("unbind");
        }
        if m.devices[0].driver.is_none() {
            m.sysfs_write("/sys/bus/dax/drivers/kmem/bind", &dev, Caller::Client)
                .expect("bind");
        }
        // Moving between online types goes through unplugged.
        let path = format!("/sys/bus/dax/devices/{dev}/state");
        m.sysfs_write(&path, "unplugged", Caller::Client)
            .expect("unplugged");
        if state != "unplugged" {
            m.sysfs_write(&path, state, Caller::Client).expect(state);
        }
    }

    fn read(m: &Machine, path: &str) -> String {
        m.sysfs_read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn a_dax_node_joins_its_tier_with_its_first_online_block_and_leaves_with_its_last() {
        let mut m = build("hmem", Flavour::Atomic, 1).expect("preset");
        let tiering = "/sys/devices/virtual/memory_tiering";
        assert_eq!(m.sysfs_list(tiering).expect("list"), ["memory_tier4"]);
        assert_eq!(read(&m, &format!("{tiering}/memory_tier4/nodelist")), "0\n");
        first_device_to(&mut m, "online_movable");
        assert_eq!(
            m.sysfs_list(tiering).expect("list"),
            ["memory_tier22", "memory_tier4"]
        );
        assert_eq!(
            read(&m, &format!("{tiering}/memory_tier22/nodelist")),
            "1\n"
        );
        let wi = "/sys/kernel/mm/mempolicy/weighted_interleave";
        assert_eq!(read(&m, &format!("{wi}/node1")), "1\n");
        first_device_to(&mut m, "unplugged");
        assert_eq!(m.sysfs_list(tiering).expect("list"), ["memory_tier4"]);
        // 7.3 removes the weight file of a node that lost its memory.
        assert!(!m.sysfs_exists(&format!("{wi}/node1")));
    }

    #[test]
    fn firmware_can_put_device_memory_in_the_dram_tier() {
        let mut m = build("hmem", Flavour::Atomic, 1).expect("preset");
        m.nodes[1].adistance = Some(ADISTANCE_DRAM);
        first_device_to(&mut m, "online_movable");
        let tiering = "/sys/devices/virtual/memory_tiering";
        assert_eq!(m.sysfs_list(tiering).expect("list"), ["memory_tier4"]);
        assert_eq!(
            read(&m, &format!("{tiering}/memory_tier4/nodelist")),
            "0-1\n"
        );
    }

    #[test]
    fn weights_switch_the_kernel_to_manual_mode() {
        let mut m = build("cxl", Flavour::Atomic, 1).expect("preset");
        let wi = "/sys/kernel/mm/mempolicy/weighted_interleave";
        assert_eq!(read(&m, &format!("{wi}/auto")), "true\n");
        for bad in ["0", "256", "", "x"] {
            assert_eq!(
                m.sysfs_write(&format!("{wi}/node0"), bad, Caller::Client),
                Err(Errno::EINVAL),
                "{bad:?}"
            );
        }
        m.sysfs_write(&format!("{wi}/node0"), "0x3", Caller::Client)
            .expect("weight");
        assert_eq!(read(&m, &format!("{wi}/node0")), "3\n");
        assert_eq!(read(&m, &format!("{wi}/auto")), "false\n");
        // No bandwidth figures from firmware: the kernel cannot compute weights.
        assert_eq!(
            m.sysfs_write(&format!("{wi}/auto"), "1", Caller::Client),
            Err(Errno::ENODEV)
        );
        m.nodes[0].bandwidth_weight = Some(5);
        m.sysfs_write(&format!("{wi}/auto"), "1", Caller::Client)
            .expect("auto");
        assert_eq!(read(&m, &format!("{wi}/node0")), "5\n");
        assert_eq!(read(&m, &format!("{wi}/node1")), "1\n");
        m.sysfs_write(&format!("{wi}/auto"), "0", Caller::Client)
            .expect("manual");
        assert_eq!(
            read(&m, &format!("{wi}/node0")),
            "5\n",
            "manual keeps the weights"
        );
        let legacy = build("cxl", Flavour::Legacy, 1).expect("preset");
        assert!(!legacy.sysfs_exists(&format!("{wi}/auto")));
        // 6.12 shows a weight for every possible node, memory or not, and takes 0 as "back
        // to the default".
        assert_eq!(read(&legacy, &format!("{wi}/node2")), "1\n");
        let mut legacy = legacy;
        legacy
            .sysfs_write(&format!("{wi}/node2"), "5", Caller::Client)
            .expect("weight");
        assert_eq!(read(&legacy, &format!("{wi}/node2")), "5\n");
        legacy
            .sysfs_write(&format!("{wi}/node2"), "0", Caller::Client)
            .expect("reset");
        assert_eq!(read(&legacy, &format!("{wi}/node2")), "1\n");
    }

    #[test]
    fn demotion_switch_takes_kstrtobool() {
        let mut m = build("cxl", Flavour::Legacy, 1).expect("preset");
        let p = "/sys/kernel/mm/numa/demotion_enabled";
        assert_eq!(read(&m, p), "false\n");
        m.sysfs_write(p, "y", Caller::Client).expect("on");
        assert_eq!(read(&m, p), "true\n");
        assert_eq!(
            m.sysfs_write(p, "maybe", Caller::Client),
            Err(Errno::EINVAL)
        );
    }
}
