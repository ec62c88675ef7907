//! The JSON schema of `list --json` and `status --json`.
//!
//! These structs are the contract with scripts, kept apart from the engine's types so that
//! a refactor cannot change the output by accident. Every field is documented in
//! `docs/JSON.md`; a field's type never depends on a flag (absent values are `null`).

use std::collections::BTreeSet;

use daxplug_abi::{
    BlockState, DaxState, MemmapOnMemory, NodeList, OnlinePolicy, OnlineType, ValidZones, Zone,
};
use daxplug_engine::{
    BlockCounts, Device, KernelAbi, Mode, ObservedState, Problem, RegionKind, Topology, problems,
};
use serde::Serialize;

/// Bumped only on an incompatible change (a field removed or its type changed).
pub const SCHEMA_VERSION: u32 = 1;

/// The whole document.
#[derive(Debug, Serialize)]
pub struct Report {
    schema_version: u32,
    kernel: KernelJson,
    nodes: Vec<NodeJson>,
    regions: Vec<RegionJson>,
    devices: Vec<DeviceJson>,
}

#[derive(Debug, Serialize)]
struct KernelJson {
    abi: KernelAbi,
    block_size: u64,
    mem_total: Option<u64>,
    auto_online_blocks: Option<OnlineType>,
    online_policy: Option<OnlinePolicy>,
    memmap_on_memory: Option<MemmapOnMemory>,
    auto_movable_ratio: Option<u32>,
    auto_movable_numa_aware: Option<bool>,
}

#[derive(Debug, Serialize)]
struct NodeJson {
    node: u32,
    online: Option<bool>,
    has_memory: Option<bool>,
    has_normal_memory: Option<bool>,
    has_cpu: Option<bool>,
    mem_total: Option<u64>,
}

#[derive(Debug, Serialize)]
struct RegionJson {
    id: u32,
    provider: String,
    kind: RegionKind,
    size: Option<u64>,
    align: Option<u64>,
    path: String,
}

#[derive(Debug, Serialize)]
struct DeviceJson {
    name: String,
    region: Option<u32>,
    path: String,
    mode: Mode,
    driver: Option<String>,
    state: ObservedState,
    kernel_state: Option<DaxState>,
    state_disagrees: bool,
    target_node: Option<u32>,
    numa_node: Option<u32>,
    size: u64,
    align: Option<u64>,
    memmap_on_memory: Option<bool>,
    ranges: Vec<RangeJson>,
    iomem: Vec<IomemJson>,
    blocks: BlockCounts,
    block_list: Option<Vec<BlockJson>>,
    problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
struct RangeJson {
    mapping: u32,
    start: u64,
    end: u64,
    page_offset: u64,
    first_block: Option<u64>,
    last_block: Option<u64>,
}

#[derive(Debug, Serialize)]
struct IomemJson {
    start: u64,
    end: u64,
    kmem_start: Option<u64>,
    kmem_end: Option<u64>,
}

#[derive(Debug, Serialize)]
struct BlockJson {
    id: u64,
    name: String,
    state: BlockState,
    zone: Option<Zone>,
    valid_zones: Option<ValidZones>,
    node: Option<u32>,
    start: u64,
    end: u64,
}

fn member(list: Option<&NodeList>, node: u32) -> Option<bool> {
    list.map(|l| l.contains(node))
}

impl Report {
    /// Builds the document; `with_blocks` fills each device's `block_list`.
    pub fn new(topo: &Topology, with_blocks: bool) -> Self {
        let n = &topo.nodes;
        let node_ids: BTreeSet<u32> = [&n.possible, &n.online, &n.has_memory]
            .into_iter()
            .flatten()
            .flat_map(NodeList::iter)
            .chain(n.mem_total.keys().copied())
            .collect();
        Report {
            schema_version: SCHEMA_VERSION,
            kernel: KernelJson {
                abi: topo.kernel_abi,
                block_size: topo.block_size.bytes(),
                mem_total: topo.mem_total,
                auto_online_blocks: topo.policy.auto_online_blocks,
                online_policy: topo.policy.online_policy,
                memmap_on_memory: topo.policy.memmap_on_memory,
                auto_movable_ratio: topo.policy.auto_movable_ratio,
                auto_movable_numa_aware: topo.policy.auto_movable_numa_aware,
            },
            nodes: node_ids
                .into_iter()
                .map(|node| NodeJson {
                    node,
                    online: member(n.online.as_ref(), node),
                    has_memory: member(n.has_memory.as_ref(), node),
                    has_normal_memory: member(n.has_normal_memory.as_ref(), node),
                    has_cpu: member(n.has_cpu.as_ref(), node),
                    mem_total: n.mem_total.get(&node).copied(),
                })
                .collect(),
            regions: topo
                .regions
                .iter()
                .map(|r| RegionJson {
                    id: r.id,
                    provider: r.provider.clone(),
                    kind: r.kind,
                    size: r.size,
                    align: r.align,
                    path: r.path.clone(),
                })
                .collect(),
            devices: topo
                .devices
                .iter()
                .map(|d| device(d, with_blocks))
                .collect(),
        }
    }
}

fn device(d: &Device, with_blocks: bool) -> DeviceJson {
    DeviceJson {
        name: d.name.clone(),
        region: d.region,
        path: d.path.clone(),
        mode: d.mode(),
        driver: d.driver.name().map(str::to_owned),
        state: d.state,
        kernel_state: d.kernel_state,
        state_disagrees: d.state_disagrees(),
        target_node: d.target_node,
        numa_node: d.numa_node,
        size: d.size,
        align: d.align,
        memmap_on_memory: d.memmap_on_memory,
        ranges: d
            .mappings
            .iter()
            .map(|m| RangeJson {
                mapping: m.index,
                start: m.range.start,
                end: m.range.end,
                page_offset: m.page_offset,
                first_block: m.blocks.map(|b| b.0),
                last_block: m.blocks.map(|b| b.1),
            })
            .collect(),
        iomem: d
            .iomem
            .iter()
            .map(|r| IomemJson {
                start: r.range.start,
                end: r.range.end,
                kmem_start: r.kmem.map(|k| k.start),
                kmem_end: r.kmem.map(|k| k.end),
            })
            .collect(),
        blocks: d.counts,
        block_list: with_blocks.then(|| {
            d.blocks
                .iter()
                .map(|b| BlockJson {
                    id: b.id,
                    name: format!("memory{}", b.id),
                    state: b.state,
                    zone: b.zone(),
                    valid_zones: b.valid_zones.clone(),
                    node: b.node,
                    start: b.range.start,
                    end: b.range.end,
                })
                .collect()
        }),
        problems: problems(d),
    }
}
