//! A device's block counts from its node's zone totals (`/proc/zoneinfo`) instead of one read
//! per block. Each memory block on a node adds at most its own pages to the node's present
//! pages, and only while it is online; nothing else on the node adds any once no block
//! carries its own memmap (the kernel counts that as present while the block is offline,
//! so the totals are used only with `memmap_on_memory` off) and the node has no zone but
//! Normal and Movable. So when the node's Movable (or Normal) pages are exactly the pages of
//! every block its directory lists, every one of those blocks is online in that zone; when
//! the node has no present page, none is online. That holds whatever the blocks belong to,
//! several devices, boot memory or a leaked range, so each device on the node takes its
//! listed blocks with that one state. Only such a uniform answer is taken; anything else, a
//! mixed or torn device or a block with holes, is read block by block, so that every block
//! of it can be named. A block whose offlining is under way still counts in the totals until
//! it completes, so a listing at that moment names it online, as a read of its `state` an
//! instant before would have; no listing of many blocks is one instant anyway.

use std::cell::RefCell;
use std::collections::BTreeMap;

use daxplug_abi::{BlockSize, BlockState, ValidZones, Zone, Zoneinfo};
use daxplug_kernel::{Kernel, paths};

use crate::discovery::observe::BlockCounts;
use crate::discovery::read::parse_optional;
use crate::discovery::topology::Block;

/// What a listing needs to count devices by zone: the zone totals, and what each node's
/// totals settle, worked out once per node however many devices target it.
#[derive(Debug)]
pub(crate) struct ZoneCounts {
    zoneinfo: Zoneinfo,
    block_size: BlockSize,
    nodes: RefCell<BTreeMap<u32, Option<Uniform>>>,
}

/// A node whose blocks are all in one state: its blocks in ascending order, and the zone
/// they are all online in (`None`: all offline).
#[derive(Debug)]
struct Uniform {
    blocks: Vec<u64>,
    zone: Option<Zone>,
}

impl ZoneCounts {
    /// Reads `/proc/zoneinfo`; `None` where it cannot be read or understood (a tree copied
    /// without it), and the blocks are read one by one: the totals only save reads, and a
    /// listing never fails for want of them.
    pub(crate) fn read(k: &dyn Kernel, block_size: BlockSize) -> Option<Self> {
        let zoneinfo = parse_optional(k, paths::ZONEINFO, Zoneinfo::parse)
            .ok()
            .flatten()?;
        Some(ZoneCounts {
            zoneinfo,
            block_size,
            nodes: RefCell::new(BTreeMap::new()),
        })
    }

    /// The blocks of the device whose candidate blocks are `candidates` (ascending) and
    /// whose memory joins `node`, with their counts, if the node's totals settle them;
    /// `None` when they do not, and the blocks must be read.
    pub(crate) fn device(
        &self,
        k: &dyn Kernel,
        node: u32,
        candidates: &[u64],
        span: u64,
    ) -> Option<(Vec<Block>, BlockCounts)> {
        if candidates.is_empty() {
            return None;
        }
        let mut nodes = self.nodes.borrow_mut();
        let uniform = nodes
            .entry(node)
            .or_insert_with(|| self.uniform(k, node))
            .as_ref()?;
        let blocks: Vec<Block> = candidates
            .iter()
            .filter(|id| uniform.blocks.binary_search(id).is_ok())
            .map(|&id| {
                Some(Block {
                    id,
                    range: self.block_size.block_range(id)?,
                    state: if uniform.zone.is_some() {
                        BlockState::Online
                    } else {
                        BlockState::Offline
                    },
                    valid_zones: uniform.zone.map(|z| ValidZones::new(vec![z])),
                    node: None,
                })
            })
            .collect::<Option<_>>()?;
        let counts = BlockCounts::of(&blocks, span);
        Some((blocks, counts))
    }

    /// What the node's totals say of every block it lists, if that is one state.
    fn uniform(&self, k: &dyn Kernel, node: u32) -> Option<Uniform> {
        let mut blocks = Vec::new();
        for entry in k.list_dir(&paths::node(node)).ok()? {
            if let Some(id) = entry.strip_prefix("memory") {
                blocks.push(id.parse::<u64>().ok()?);
            }
        }
        blocks.sort_unstable();
        let pages = self.block_size.bytes() / 4096;
        let movable = self.zoneinfo.present(node, Zone::Movable);
        let normal = self.zoneinfo.present(node, Zone::Normal);
        if pages == 0
            || self.zoneinfo.node_present(node) != movable + normal
            || !movable.is_multiple_of(pages)
            || !normal.is_multiple_of(pages)
        {
            return None;
        }
        let n = blocks.len() as u64;
        let zone = match (movable / pages, normal / pages) {
            (0, 0) => None,
            (m, 0) if m == n => Some(Zone::Movable),
            (0, k) if k == n => Some(Zone::Normal),
            _ => return None,
        };
        Some(Uniform { blocks, zone })
    }
}
