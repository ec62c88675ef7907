//! A device's block counts from its node's zone totals (`/proc/zoneinfo`) instead of one read
//! per block, where those totals can only be the device's: its target node holds no memory
//! block but the device's (the node's directory lists each block on it, online or not), no
//! other device targets the node, and no block carries its own memmap (which the kernel counts
//! as present while the block is offline). The totals then say how many of the device's blocks
//! are online in Movable and in a kernel zone. Only a uniform answer is taken (every block
//! online in one zone, or none online); anything else, a mixed or torn device, is read block
//! by block, so that every block of it can be named.

use std::collections::{BTreeMap, BTreeSet};

use daxplug_abi::{BlockSize, BlockState, ValidZones, Zone, Zoneinfo};
use daxplug_kernel::{Kernel, paths};

use crate::discovery::observe::BlockCounts;
use crate::discovery::read::parse_optional;
use crate::discovery::topology::Block;

/// What a listing needs to count devices by zone: the zone totals, and how many devices
/// target each node.
#[derive(Debug)]
pub(crate) struct ZoneCounts {
    zoneinfo: Zoneinfo,
    devices_on: BTreeMap<u32, usize>,
}

impl ZoneCounts {
    /// Reads `/proc/zoneinfo`; `None` where it cannot be read or understood (a tree copied
    /// without it), and the blocks are read one by one: the totals only save reads, and a
    /// listing never fails for want of them.
    pub(crate) fn read(
        k: &dyn Kernel,
        target_nodes: impl IntoIterator<Item = u32>,
    ) -> Option<Self> {
        let zoneinfo = parse_optional(k, paths::ZONEINFO, Zoneinfo::parse)
            .ok()
            .flatten()?;
        let mut devices_on = BTreeMap::new();
        for n in target_nodes {
            *devices_on.entry(n).or_default() += 1;
        }
        Some(ZoneCounts {
            zoneinfo,
            devices_on,
        })
    }

    /// The blocks of the device whose candidate blocks are `candidates` and whose memory
    /// joins `node`, with their counts, if the node's totals settle them; `None` when they
    /// do not, and the blocks must be read.
    pub(crate) fn device(
        &self,
        k: &dyn Kernel,
        node: u32,
        candidates: &[u64],
        span: u64,
        block_size: BlockSize,
    ) -> Option<(Vec<Block>, BlockCounts)> {
        if self.devices_on.get(&node) != Some(&1) || candidates.is_empty() {
            return None;
        }
        // Every block on the node must be one of the device's: another's (boot memory, a
        // range a removed device leaked) would count in the same totals.
        let wanted: BTreeSet<u64> = candidates.iter().copied().collect();
        let mut present = Vec::new();
        for entry in k.list_dir(&paths::node(node)).ok()? {
            let Some(id) = entry.strip_prefix("memory") else {
                continue;
            };
            let id: u64 = id.parse().ok()?;
            if !wanted.contains(&id) {
                return None;
            }
            present.push(id);
        }
        present.sort_unstable();
        let pages = block_size.bytes() / 4096;
        let movable = self.zoneinfo.present(node, Zone::Movable);
        let normal = self.zoneinfo.present(node, Zone::Normal);
        if pages == 0
            || self.zoneinfo.node_present(node) != movable + normal
            || !movable.is_multiple_of(pages)
            || !normal.is_multiple_of(pages)
        {
            return None;
        }
        let n = present.len() as u64;
        let zone = match (movable / pages, normal / pages) {
            (0, 0) => None,
            (m, 0) if m == n => Some(Zone::Movable),
            (0, k) if k == n => Some(Zone::Normal),
            _ => return None,
        };
        let blocks: Vec<Block> = present
            .into_iter()
            .map(|id| {
                Some(Block {
                    id,
                    range: block_size.block_range(id)?,
                    state: if zone.is_some() {
                        BlockState::Online
                    } else {
                        BlockState::Offline
                    },
                    valid_zones: zone.map(|z| ValidZones::new(vec![z])),
                    node: None,
                })
            })
            .collect::<Option<_>>()?;
        let counts = BlockCounts::of(&blocks, span);
        Some((blocks, counts))
    }
}
