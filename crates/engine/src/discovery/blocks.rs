//! Reading memory blocks: each block's state, zones and node, by id. Devices and leaked
//! ranges find their blocks by address arithmetic and read them here.

use daxplug_abi::{BlockSize, BlockState, ValidZones};
use daxplug_kernel::{Kernel, paths};

use crate::discovery::error::DiscoveryError;
use crate::discovery::read::parse_optional;
use crate::discovery::topology::Block;

/// Whether each block's node is read (it is shown per block, and used for nothing else).
#[derive(Debug, Clone, Copy)]
pub(crate) enum BlockNodes {
    Skip,
    /// Read, testing the device's target node first.
    Read(Option<u32>),
}

/// Devices with fewer blocks are read by one thread: threads cost more than they save.
const PARALLEL_FROM: usize = 1024;

/// Reads the blocks that exist among `ids`, in order; big devices with several threads when
/// the kernel interface allows it (each block is independent of the others).
pub(crate) fn read_blocks(
    k: &dyn Kernel,
    ids: &[u64],
    block_size: BlockSize,
    nodes: BlockNodes,
) -> Result<Vec<Block>, DiscoveryError> {
    let read = |chunk: &[u64]| -> Result<Vec<Block>, DiscoveryError> {
        let mut out = Vec::with_capacity(chunk.len());
        for id in chunk {
            if let Some(b) = read_block(k, *id, block_size, nodes)? {
                out.push(b);
            }
        }
        Ok(out)
    };
    // Small devices first: asking for the parallelism costs system calls of its own.
    if ids.len() < PARALLEL_FROM || !k.parallel_reads() {
        return read(ids);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 {
        return read(ids);
    }
    std::thread::scope(|s| {
        let workers: Vec<_> = ids
            .chunks(ids.len().div_ceil(threads))
            .map(|chunk| s.spawn(move || read(chunk)))
            .collect();
        let mut blocks = Vec::with_capacity(ids.len());
        for w in workers {
            let part = w.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            blocks.extend(part);
        }
        Ok(blocks)
    })
}

/// Reads one block; `None` if it does not exist.
fn read_block(
    k: &dyn Kernel,
    id: u64,
    block_size: BlockSize,
    nodes: BlockNodes,
) -> Result<Option<Block>, DiscoveryError> {
    let dir = paths::memory_block(id);
    // `valid_zones` names one zone (or `none`) exactly when the block is online, and
    // several otherwise (an offline block: the default zone and the other kind; one going
    // offline reads the same), on every kernel with kmem (5.1 and later). So an online
    // block takes one file; `state` is read only when the zones do not settle it.
    let valid_zones = parse_optional(k, &paths::block_valid_zones(id), str::parse::<ValidZones>)?;
    let state = match &valid_zones {
        Some(vz) if vz.zones().len() <= 1 => BlockState::Online,
        _ => {
            let Some(state) = parse_optional(k, &paths::block_state(id), str::parse::<BlockState>)?
            else {
                return Ok(None);
            };
            state
        }
    };
    let node = match nodes {
        BlockNodes::Skip => None,
        // The block is almost always on the device's target node: test that link first,
        // and only list the directory when it is elsewhere.
        BlockNodes::Read(Some(n)) if k.exists(&paths::block_node(id, n)) => Some(n),
        BlockNodes::Read(_) => k
            .list_dir(&dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e.strip_prefix("node"))
            .find_map(|n| n.parse().ok()),
    };
    let range = block_size
        .block_range(id)
        .ok_or_else(|| DiscoveryError::Parse {
            path: dir.clone(),
            source: daxplug_abi::ParseError {
                text: id.to_string(),
                expected: "a block id inside the 64-bit address space".into(),
                line: None,
            },
        })?;
    Ok(Some(Block {
        id,
        range,
        state,
        valid_zones,
        node,
    }))
}
