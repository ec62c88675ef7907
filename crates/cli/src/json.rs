//! The JSON schema of `list --json`, `status --json`, `set --json`, `recover --json` and
//! `doctor --json`.
//!
//! These structs are the contract with scripts. They choose the fields; a few embed engine
//! types whose spelling is part of the contract too (token enums declared with the engine's
//! `tokens!`, `BlockCounts`, `Problem`), so the tests in `crates/cli/tests/json_doc.rs` hold
//! both to `docs/JSON.md`: every field path printed and documented, every token value in its
//! table or row. A field's type never depends on a flag (absent values are `null`).

use std::collections::BTreeSet;

use daxplug_abi::{
    BlockState, DaxState, InterleaveWeight, MemmapOnMemory, MemoryTier, NodeList, OnlinePolicy,
    OnlineType, ValidZones, Zone,
};
use daxplug_engine::discovery::placement::Demotion;
use daxplug_engine::rundir::holds::Hold;
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
    placement: PlacementJson,
    nodes: Vec<NodeJson>,
    regions: Vec<RegionJson>,
    devices: Vec<DeviceJson>,
    orphans: Vec<OrphanJson>,
    limited: bool,
}

/// A range a device no longer on the bus left behind (leaked until reboot).
#[derive(Debug, Serialize)]
struct OrphanJson {
    name: String,
    start: u64,
    end: u64,
    kmem_start: Option<u64>,
    kmem_end: Option<u64>,
    blocks: Vec<u64>,
    online_blocks: u64,
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
    memory_tier: Option<MemoryTier>,
    in_dram_tier: bool,
    demotion: Demotion,
    interleave_weight: Option<InterleaveWeight>,
}

/// The kernel's placement files, machine-wide; `null` where the kernel has none.
#[derive(Debug, Serialize)]
struct PlacementJson {
    memory_tiers: Option<Vec<TierJson>>,
    dram_tier: Option<MemoryTier>,
    demotion_enabled: Option<bool>,
    weighted_interleave: Option<InterleaveJson>,
}

#[derive(Debug, Serialize)]
struct TierJson {
    tier: MemoryTier,
    nodes: Vec<u32>,
}

#[derive(Debug, Serialize)]
struct InterleaveJson {
    /// `auto` or `manual`.
    mode: &'static str,
    /// Whether the kernel has the `auto` switch (6.16 on).
    auto_switch: bool,
}

impl PlacementJson {
    fn new(topo: &Topology) -> Self {
        let p = &topo.placement;
        let has_cpu = topo.nodes.has_cpu.as_ref();
        PlacementJson {
            memory_tiers: p.tiers.as_ref().map(|tiers| {
                tiers
                    .iter()
                    .map(|(t, nodes)| TierJson {
                        tier: *t,
                        nodes: nodes.iter().collect(),
                    })
                    .collect()
            }),
            dram_tier: p.dram_tier(has_cpu),
            demotion_enabled: p.demotion_enabled,
            weighted_interleave: p.interleave.as_ref().map(|i| InterleaveJson {
                mode: i.mode(),
                auto_switch: i.auto.is_some(),
            }),
        }
    }
}

#[derive(Debug, Serialize)]
struct RegionJson {
    id: u32,
    provider: String,
    kind: RegionKind,
    size: Option<u64>,
    align: Option<u64>,
    available_size: Option<u64>,
    devices: Vec<String>,
    path: String,
}

#[derive(Debug, Serialize)]
struct DeviceJson {
    name: String,
    region: Option<u32>,
    path: String,
    backing: Option<String>,
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
    blocks: Option<BlockCounts>,
    block_list: Option<Vec<BlockJson>>,
    problems: Vec<Problem>,
    holds: Vec<HoldJson>,
}

/// A maintenance hold on a device (`daxplug hold`).
#[derive(Debug, Serialize)]
struct HoldJson {
    holder: String,
    since: u64,
    until: Option<u64>,
    reason: Option<String>,
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
    pub fn new(topo: &Topology, with_blocks: bool, holds: &[Hold]) -> Self {
        let n = &topo.nodes;
        let node_ids: BTreeSet<u32> = [&n.possible, &n.online, &n.has_memory]
            .into_iter()
            .flatten()
            .flat_map(NodeList::iter)
            .chain(n.mem_total.keys().copied())
            .chain(topo.placement.nodes())
            .collect();
        let has_cpu = n.has_cpu.as_ref();
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
            placement: PlacementJson::new(topo),
            nodes: node_ids
                .into_iter()
                .map(|node| {
                    let p = topo.placement.node(node, has_cpu);
                    NodeJson {
                        node,
                        online: member(n.online.as_ref(), node),
                        has_memory: member(n.has_memory.as_ref(), node),
                        has_normal_memory: member(n.has_normal_memory.as_ref(), node),
                        has_cpu: member(has_cpu, node),
                        mem_total: n.mem_total.get(&node).copied(),
                        memory_tier: p.tier,
                        in_dram_tier: p.in_dram_tier(),
                        demotion: p.demotion,
                        interleave_weight: p.interleave_weight,
                    }
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
                    available_size: r.available_size,
                    devices: topo
                        .devices
                        .iter()
                        .filter(|d| d.region == Some(r.id))
                        .map(|d| d.name.to_string())
                        .collect(),
                    path: r.path.clone(),
                })
                .collect(),
            devices: topo
                .devices
                .iter()
                .map(|d| device(d, with_blocks, holds))
                .collect(),
            limited: topo.limited,
            orphans: topo
                .orphans
                .iter()
                .map(|o| OrphanJson {
                    name: o.name.clone(),
                    start: o.range.start,
                    end: o.range.end,
                    kmem_start: o.kmem.map(|r| r.start),
                    kmem_end: o.kmem.map(|r| r.end),
                    blocks: o.blocks.iter().map(|b| b.id).collect(),
                    online_blocks: o
                        .blocks
                        .iter()
                        .filter(|b| b.state == BlockState::Online)
                        .count() as u64,
                })
                .collect(),
        }
    }
}

fn device(d: &Device, with_blocks: bool, holds: &[Hold]) -> DeviceJson {
    DeviceJson {
        name: d.name.to_string(),
        region: d.region,
        path: d.path.clone(),
        backing: d.backing.clone(),
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
        holds: holds
            .iter()
            .filter(|h| h.device == d.name)
            .map(|h| HoldJson {
                holder: h.holder.clone(),
                since: h.since,
                until: h.until,
                reason: h.reason.clone(),
            })
            .collect(),
        blocks: (!d.ranges_hidden || d.size == 0).then_some(d.counts),
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

/// `set --json`: one result per device, and the exit code the command returns.
#[derive(Debug, Serialize)]
pub struct SetJson<'a> {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// One per device, in order.
    pub results: Vec<TransitionJson<'a>>,
    /// What the transitions changed in the memory tier, demotion or interleave weight of
    /// the devices' target nodes.
    pub placement_changes: &'a [daxplug_engine::discovery::placement::PlacementChange],
    /// The command's exit code (the worst of the results).
    pub exit_code: u8,
}

/// One device's transition.
#[derive(Debug, Serialize)]
pub struct TransitionJson<'a> {
    device: &'a str,
    start: Option<&'static str>,
    target: &'static str,
    end: Option<&'static str>,
    size: Option<u64>,
    destroy: bool,
    start_size: Option<u64>,
    end_size: Option<u64>,
    protocol: &'static str,
    outcome: &'static str,
    reason: Option<&'a str>,
    plan: &'a [String],
    actions: &'a [String],
    phases: Vec<PhaseJson<'a>>,
    kernel_write_millis: f64,
    settle_millis: f64,
    journal_millis: f64,
    total_millis: f64,
    recovered: &'a [String],
    stuck_blocks: &'a [u64],
}

/// Time spent in one phase of a transition.
#[derive(Debug, Serialize)]
struct PhaseJson<'a> {
    phase: &'a str,
    millis: f64,
}

impl<'a> TransitionJson<'a> {
    /// The JSON form of `r`.
    pub fn new(r: &'a daxplug_engine::Report) -> Self {
        TransitionJson {
            device: &r.device,
            start: r.start.map(ObservedState::as_str),
            target: r.target.as_str(),
            end: r.end.map(ObservedState::as_str),
            size: r.requested_size,
            destroy: r.destroy,
            start_size: r.start_size,
            end_size: r.end_size,
            protocol: r.protocol.as_str(),
            outcome: r.outcome.as_str(),
            reason: r.reason.as_deref(),
            plan: &r.plan,
            actions: &r.actions,
            phases: r
                .phases
                .iter()
                .map(|p| PhaseJson {
                    phase: &p.phase,
                    millis: p.millis,
                })
                .collect(),
            kernel_write_millis: r.kernel_write_millis,
            settle_millis: r.settle_millis,
            journal_millis: r.journal_millis,
            total_millis: r.total_millis,
            recovered: &r.recovered,
            stuck_blocks: &r.stuck_blocks,
        }
    }
}

/// `doctor --json`.
#[derive(Debug, Serialize)]
pub struct DoctorJson<'a> {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// No finding above a note.
    pub ok: bool,
    /// Every finding, worst first as `doctor` prints them.
    pub findings: Vec<FindingJson<'a>>,
}

/// One finding of `doctor`.
#[derive(Debug, Serialize)]
pub struct FindingJson<'a> {
    severity: daxplug_engine::doctor::Severity,
    code: &'a str,
    subject: &'a str,
    evidence: &'a str,
    fix: &'a str,
}

impl<'a> FindingJson<'a> {
    /// The JSON form of `f`.
    pub fn new(f: &'a daxplug_engine::doctor::Finding) -> Self {
        FindingJson {
            severity: f.severity,
            code: f.code,
            subject: &f.subject,
            evidence: &f.evidence,
            fix: &f.fix,
        }
    }
}

/// `recover --json`.
#[derive(Debug, Serialize)]
pub struct RecoverJson<'a> {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// One line per interrupted transition recovered.
    pub recovered: &'a [String],
}
