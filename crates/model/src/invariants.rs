//! Invariants that hold after every step of every schedule. Checked independently of the
//! code that maintains the state: from the rendered files where possible.

use std::fmt;

use daxplug_abi::{BlockState, Meminfo};

use crate::machine::{DaxDriver, KmemState, Machine};

/// A broken invariant, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every violated invariant of `m` between client calls (empty when all hold).
pub fn check(m: &Machine) -> Vec<Violation> {
    let mut v = check_step(m);
    if m.lock.is_some() {
        v.push(Violation(
            "the device-hotplug lock is held between calls".to_owned(),
        ));
    }
    v
}

/// The invariants that hold at every step, even in the middle of a client operation.
pub(crate) fn check_step(m: &Machine) -> Vec<Violation> {
    let mut v = Vec::new();
    let mut bad = |s: String| v.push(Violation(s));

    // A block is in exactly one zone while online, in none while offline.
    for (id, b) in &m.blocks {
        let in_zone = b.zone.is_some();
        if in_zone != (b.state != BlockState::Offline) {
            bad(format!("memory{id} is {} with zone {:?}", b.state, b.zone));
        }
        // One zone (or `none`) exactly when online, several otherwise (going offline
        // included): discovery reads `state` only for blocks whose `valid_zones` names
        // several.
        let vz = m.valid_zones(*id);
        if b.state == BlockState::Online {
            if !b.spans_zones && vz.zones().len() != 1 {
                bad(format!("online memory{id} has valid_zones {vz}"));
            }
        } else if vz.zones().len() < 2 {
            bad(format!("offline memory{id} has valid_zones {vz}"));
        }
    }

    // MemTotal equals boot memory plus every online hot-added block, system-wide and per node.
    let online_added = m
        .blocks
        .values()
        .filter(|b| b.owner.is_some() && b.is_online())
        .count() as u64;
    let offline_boot = m
        .blocks
        .values()
        .filter(|b| b.owner.is_none() && !b.is_online())
        .count() as u64;
    let boot: u64 = m.nodes.iter().map(|n| n.boot_mem_total).sum();
    let expected = boot + online_added * m.block_size - offline_boot * m.block_size;
    let meminfo = m
        .sysfs_read("/proc/meminfo")
        .ok()
        .and_then(|t| Meminfo::parse(&t).ok());
    if meminfo.as_ref().and_then(Meminfo::mem_total) != Some(expected) {
        bad(format!(
            "/proc/meminfo MemTotal is {:?}, expected {expected}",
            meminfo.and_then(|i| i.mem_total())
        ));
    }

    // /proc/iomem is a well-formed tree and no two dax reservations overlap.
    let resources = m.dax_resources();
    for (i, (a, ra, _)) in resources.iter().enumerate() {
        for (b, rb, _) in &resources[i + 1..] {
            if ra.overlaps(rb) {
                bad(format!("reservations of {a} and {b} overlap"));
            }
        }
    }
    if daxplug_abi::Iomem::parse(&m.iomem().to_string()).is_err() {
        bad("/proc/iomem does not parse".to_owned());
    }

    // Every hot-added block lies in an added or leaked range of its owner.
    for (id, b) in &m.blocks {
        let Some(owner) = &b.owner else { continue };
        let r = m.block_range(*id);
        let covered = resources
            .iter()
            .any(|(n, range, kmem)| n == owner && *kmem && range.contains_range(&r));
        if !covered {
            bad(format!(
                "memory{id} of {owner} lies in no System RAM (kmem) range"
            ));
        }
    }

    for d in &m.devices {
        // Driver data matches the driver.
        if d.kmem.is_some() != (d.driver == Some(DaxDriver::Kmem)) {
            bad(format!(
                "{} has kmem data {} but driver {:?}",
                d.name,
                d.kmem.is_some(),
                d.driver
            ));
        }
        if !d.devdax_res.is_empty()
            && !matches!(d.driver, Some(DaxDriver::DeviceDax | DaxDriver::FsdevDax))
        {
            bad(format!(
                "{} holds device_dax reservations without device_dax",
                d.name
            ));
        }
        // An unplugged device has no blocks and no reservation (leaks aside).
        if let Some(k) = &d.kmem {
            if k.state == KmemState::Unplugged {
                if k.res.iter().any(Option::is_some) {
                    bad(format!("unplugged {} still reserves a range", d.name));
                }
                let leaked_blocks: usize =
                    d.leaked.iter().map(|l| m.blocks_in(l.range).len()).sum();
                if m.device_blocks(&d.name).len() != leaked_blocks {
                    bad(format!("unplugged {} still has memory blocks", d.name));
                }
            }
            // Every block of an added range exists.
            for (r, added) in k.res.iter().zip(&k.added) {
                if let (Some(r), true) = (r, added) {
                    let want = r.len() / m.block_size;
                    if m.blocks_in(*r).len() as u64 != want {
                        bad(format!("{}: added range {r} lacks blocks", d.name));
                    }
                }
            }
        }
    }
    v
}
