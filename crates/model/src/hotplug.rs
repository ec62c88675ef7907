//! The memory-hotplug core: zones, `valid_zones`, onlining, offlining (with migration
//! passes, `EBUSY`, `EINTR`), adding and removing memory, and
//! `offline_and_remove_memory_ranges()` with its all-or-nothing rollback.

use std::collections::BTreeMap;

use daxplug_abi::{
    BlockState, OnlinePolicy, OnlineType, PhysRange, ValidZones, Zone, ZonePages, Zoneinfo,
};
use daxplug_kernel::Errno;

use crate::machine::{Caller, Holder, Machine, MemBlock, Subsystem};

fn is_kernel_zone(z: Zone) -> bool {
    !matches!(z, Zone::Movable | Zone::Device)
}

impl Machine {
    /// `/proc/zoneinfo`: every zone of each online node (x86_64's: no HighMem), with the
    /// pages of the blocks online in it. A block counts until its offlining completes, as
    /// `adjust_present_page_count()` counts it.
    pub fn zoneinfo(&self) -> Zoneinfo {
        let pages = self.block_size / 4096;
        let mut present: BTreeMap<(u32, Zone), u64> = BTreeMap::new();
        let mut nodes: Vec<u32> = self
            .nodes
            .iter()
            .filter(|n| n.has_cpu)
            .map(|n| n.id)
            .collect();
        for b in self.blocks.values() {
            nodes.push(b.node);
            if let Some(z) = b.zone.filter(|_| b.state != BlockState::Offline) {
                *present.entry((b.node, z)).or_default() += pages;
            }
        }
        nodes.sort_unstable();
        nodes.dedup();
        let zones = [
            Zone::Dma,
            Zone::Dma32,
            Zone::Normal,
            Zone::Movable,
            Zone::Device,
        ];
        Zoneinfo::new(
            nodes
                .iter()
                .flat_map(|&node| {
                    zones.iter().map(move |&zone| ZonePages {
                        node,
                        zone,
                        present: 0,
                    })
                })
                .map(|mut z| {
                    z.present = present.get(&(z.node, z.zone)).copied().unwrap_or(0);
                    z
                })
                .collect(),
        )
    }

    /// Span of each zone on `node`, as (first block, last block) of its online blocks: the
    /// kernel grows a zone's span when it onlines pages and shrinks it at the edges when it
    /// offlines them.
    fn zone_spans(&self, node: u32) -> BTreeMap<Zone, (u64, u64)> {
        let mut spans: BTreeMap<Zone, (u64, u64)> = BTreeMap::new();
        for (id, b) in self.blocks.iter().filter(|(_, b)| b.node == node) {
            if let Some(z) = b.zone {
                spans
                    .entry(z)
                    .and_modify(|s| {
                        s.0 = s.0.min(*id);
                        s.1 = s.1.max(*id);
                    })
                    .or_insert((*id, *id));
            }
        }
        spans
    }

    fn zone_intersects(&self, node: u32, zone: Zone, id: u64) -> bool {
        self.zone_spans(node)
            .get(&zone)
            .is_some_and(|(first, last)| *first <= id && id <= *last)
    }

    /// `default_kernel_zone_for_pfn()`: the kernel zone whose span the block intersects,
    /// else `Normal`.
    fn default_kernel_zone(&self, node: u32, id: u64) -> Zone {
        [Zone::Dma, Zone::Dma32, Zone::Normal]
            .into_iter()
            .find(|z| self.zone_intersects(node, *z, id))
            .unwrap_or(Zone::Normal)
    }

    /// Online blocks' worth of memory in movable and kernel zones, on `node` or on the
    /// whole machine. Boot memory counts as kernel memory.
    fn online_by_kind(&self, node: Option<u32>) -> (u64, u64) {
        let in_scope = |n: u32| node.is_none_or(|x| x == n);
        let mut kernel: u64 = self
            .nodes
            .iter()
            .filter(|n| in_scope(n.id))
            .map(|n| n.boot_mem_total / self.block_size)
            .sum();
        let mut movable = 0;
        for b in self
            .blocks
            .values()
            .filter(|b| b.owner.is_some() && in_scope(b.node))
        {
            match b.zone {
                Some(Zone::Movable) => movable += 1,
                Some(_) => kernel += 1,
                None => {}
            }
        }
        (movable, kernel)
    }

    /// `auto_movable_zone_for_pfn()`: a block of a static memory group (a kmem device) goes
    /// to `Movable` only if the group has nothing in a kernel zone and the whole group fits
    /// within `auto_movable_ratio` of kernel memory, system-wide and, when NUMA-aware, on the
    /// node (so a CPU-less node without kernel memory gets a kernel zone).
    fn auto_movable_zone(&self, block: &MemBlock, node: u32, kernel: Zone) -> Zone {
        let group: Vec<&MemBlock> = match &block.owner {
            Some(owner) => self
                .blocks
                .values()
                .filter(|b| b.owner.as_ref() == Some(owner))
                .collect(),
            None => vec![block],
        };
        if group.iter().any(|b| b.zone.is_some_and(is_kernel_zone)) {
            return kernel;
        }
        let remaining = group
            .iter()
            .filter(|b| b.zone != Some(Zone::Movable))
            .count() as u64;
        let fits = |scope: Option<u32>| {
            let (movable, kernel_blocks) = self.online_by_kind(scope);
            (movable + remaining) * 100 <= kernel_blocks * u64::from(self.auto_movable_ratio)
        };
        if !fits(None) || (self.auto_movable_numa_aware && !fits(Some(node))) {
            return kernel;
        }
        Zone::Movable
    }

    /// The zone an online of `block` with `online_type` picks (`zone_for_pfn_range()`).
    pub fn zone_for(&self, online_type: OnlineType, id: u64) -> Zone {
        let Some(b) = self.blocks.get(&id) else {
            return Zone::Normal;
        };
        if let Some(z) = b.boot_zone {
            return z;
        }
        let node = b.node;
        match online_type {
            OnlineType::OnlineKernel => self.default_kernel_zone(node, id),
            OnlineType::OnlineMovable => Zone::Movable,
            OnlineType::Online | OnlineType::Offline => {
                let kernel = self.default_kernel_zone(node, id);
                let in_kernel = self.zone_intersects(node, kernel, id);
                let in_movable = self.zone_intersects(node, Zone::Movable, id);
                if self.online_policy == OnlinePolicy::AutoMovable {
                    return self.auto_movable_zone(b, node, kernel);
                }
                if in_kernel != in_movable {
                    if in_kernel { kernel } else { Zone::Movable }
                } else if self.movable_node {
                    Zone::Movable
                } else {
                    kernel
                }
            }
        }
    }

    /// `memoryN/valid_zones` of a block.
    pub fn valid_zones(&self, id: u64) -> ValidZones {
        let Some(b) = self.blocks.get(&id) else {
            return ValidZones::new(Vec::new());
        };
        if b.spans_zones {
            return ValidZones::new(Vec::new());
        }
        // Only a block in MEM_ONLINE names its zone; one going offline reads as offline.
        if let Some(z) = b.zone
            && b.state == BlockState::Online
        {
            return ValidZones::new(vec![z]);
        }
        // Offline, the kernel always names a kernel zone and Movable (`print_allowed_zone()`
        // adds whichever of the two is not the default): never a single zone.
        if let Some(z) = b.boot_zone {
            let other = if z == Zone::Movable {
                Zone::Normal
            } else {
                Zone::Movable
            };
            return ValidZones::new(vec![z, other]);
        }
        let default = self.zone_for(OnlineType::Online, id);
        let mut zones = vec![default];
        for t in [OnlineType::OnlineKernel, OnlineType::OnlineMovable] {
            let z = self.zone_for(t, id);
            if !zones.contains(&z) {
                zones.push(z);
            }
        }
        ValidZones::new(zones)
    }

    /// Onlines one block (`online_pages()` through `device_online()`). `Ok(true)` when it
    /// was already online (the device core's "1").
    pub fn online_block(&mut self, id: u64, online_type: OnlineType) -> Result<bool, Errno> {
        let zone = self.zone_for(online_type, id);
        let Some(b) = self.blocks.get(&id) else {
            return Err(Errno::ENOENT);
        };
        if b.state != BlockState::Offline {
            return Ok(true);
        }
        if b.spans_zones {
            return Err(Errno::EINVAL);
        }
        if self.faults.online_enomem > 0 {
            self.faults.online_enomem -= 1;
            return Err(Errno::ENOMEM);
        }
        let b = self.blocks.get_mut(&id).ok_or(Errno::ENOENT)?;
        b.state = BlockState::Online;
        b.zone = Some(zone);
        self.emit_block(id, "online");
        Ok(false)
    }

    /// Offlines one block (`offline_pages()` through `device_offline()`): isolates it,
    /// migrates its pages pass by pass, fails with `EBUSY` on an unmovable page and with
    /// `EINTR` when a signal is pending, undoing the isolation. `Ok(true)` when it was
    /// already offline.
    pub fn offline_block(&mut self, id: u64, caller: Caller) -> Result<bool, Errno> {
        let Some(b) = self.blocks.get(&id) else {
            return Err(Errno::ENOENT);
        };
        if b.state == BlockState::Offline {
            return Ok(true);
        }
        if b.spans_zones {
            return Err(Errno::EINVAL);
        }
        if let Some(errno) = self.faults.notifier_veto.take() {
            return Err(errno);
        }
        let extra = self.faults.slow_offline_passes;
        if let Some(b) = self.blocks.get_mut(&id) {
            b.state = BlockState::GoingOffline;
            b.busy = b.busy.saturating_add(extra);
        }
        let result = loop {
            if caller == Caller::Client {
                self.client_step();
                if self.take_signal() {
                    break Err(Errno::EINTR);
                }
            }
            let Some(b) = self.blocks.get(&id) else {
                break Err(Errno::ENOENT);
            };
            if b.unmovable {
                self.log(format!(
                    "page dumped because: unmovable page (memory{id}, pfn {:#x})",
                    (id * self.block_size) >> 12
                ));
                break Err(Errno::EBUSY);
            }
            if b.busy == 0 {
                break Ok(());
            }
            if caller == Caller::Client {
                self.interleave();
            }
            if let Some(b) = self.blocks.get_mut(&id) {
                b.busy = if caller == Caller::Client {
                    b.busy.saturating_sub(1)
                } else {
                    0
                };
            }
        };
        let Some(b) = self.blocks.get_mut(&id) else {
            return Err(Errno::ENOENT);
        };
        match result {
            Ok(()) => {
                b.state = BlockState::Offline;
                b.zone = None;
                self.emit_block(id, "offline");
                Ok(false)
            }
            Err(e) => {
                // undo_isolate_page_range(): the block stays online where it was.
                b.state = BlockState::Online;
                Err(e)
            }
        }
    }

    /// `add_memory_driver_managed()` / `__add_memory_driver_managed()`: creates the blocks
    /// of `range` (block-aligned) on `node`, offline, then onlines each with `online_type`
    /// unless it is `offline`. Per-block online failures are ignored, as the kernel ignores
    /// them.
    pub fn add_memory(
        &mut self,
        owner: &str,
        range: PhysRange,
        node: u32,
        online_type: OnlineType,
    ) -> Result<(), Errno> {
        if !range.start.is_multiple_of(self.block_size)
            || !range.len().is_multiple_of(self.block_size)
        {
            return Err(Errno::EINVAL);
        }
        let first = range.start / self.block_size;
        let last = range.end / self.block_size;
        if self.blocks.range(first..=last).next().is_some() {
            return Err(Errno::EEXIST);
        }
        if self.faults.add_enomem > 0 {
            self.faults.add_enomem -= 1;
            return Err(Errno::ENOMEM);
        }
        for id in first..=last {
            self.blocks.insert(
                id,
                MemBlock {
                    node,
                    state: BlockState::Offline,
                    zone: None,
                    boot_zone: None,
                    spans_zones: false,
                    unmovable: false,
                    busy: 0,
                    owner: Some(owner.to_owned()),
                },
            );
            self.emit_block(id, "add");
        }
        if online_type != OnlineType::Offline {
            for id in first..=last {
                let _ = self.online_block(id, online_type);
            }
        }
        Ok(())
    }

    /// `remove_memory()`: removes the blocks of `range` if all are offline; `EBUSY` (and
    /// nothing removed) if any is online.
    pub fn remove_memory(&mut self, range: PhysRange) -> Result<(), Errno> {
        let ids = self.blocks_in(range);
        if let Some(online) = ids.iter().find(|id| {
            self.blocks
                .get(id)
                .is_some_and(|b| b.state != BlockState::Offline)
        }) {
            let r = self.block_range(*online);
            self.log(format!(
                "removing memory fails, because memory [{:#018x}-{:#018x}] is onlined",
                r.start, r.end
            ));
            return Err(Errno::EBUSY);
        }
        for id in ids {
            self.blocks.remove(&id);
            self.emit_block(id, "remove");
        }
        Ok(())
    }

    /// `offline_and_remove_memory_ranges()` (v7 patch 6): under one hotplug lock, offline
    /// every block of every range, remembering each block's zone class; on the first
    /// failure re-online exactly what was offlined and return the error; when all are
    /// offline, remove every range (removal errors are swallowed, as in the kernel).
    pub fn offline_and_remove_ranges(&mut self, ranges: &[PhysRange]) -> Result<(), Errno> {
        if ranges.is_empty() {
            return Err(Errno::EINVAL);
        }
        for r in ranges {
            if r.start % self.block_size != 0 || r.len() % self.block_size != 0 {
                return Err(Errno::EINVAL);
            }
        }
        if !self.hotremove {
            return Err(Errno::EBUSY);
        }
        let held = self.lock;
        self.lock = Some(Holder::Client);
        let mut offlined: Vec<(u64, OnlineType)> = Vec::new();
        let mut failure = None;
        'ranges: for r in ranges {
            for id in self.blocks_in(*r) {
                let class = match self.blocks.get(&id).and_then(|b| b.zone) {
                    Some(Zone::Movable) => OnlineType::OnlineMovable,
                    _ => OnlineType::OnlineKernel,
                };
                match self.offline_block(id, Caller::Client) {
                    Ok(true) => {}
                    Ok(false) => offlined.push((id, class)),
                    Err(e) => {
                        failure = Some(e);
                        break 'ranges;
                    }
                }
            }
        }
        let result = match failure {
            Some(e) => {
                for (id, class) in offlined {
                    if self.online_block(id, class).is_err() {
                        self.log(format!("Failed to re-online memory{id}"));
                    }
                }
                Err(e)
            }
            None => {
                for r in ranges {
                    if self.remove_memory(*r).is_err() {
                        self.log("WARNING: try_remove_memory failed after offlining".to_owned());
                    }
                }
                Ok(())
            }
        };
        self.lock = held;
        result
    }

    /// Whether a node has online memory (`has_memory`) / online kernel-zone memory
    /// (`has_normal_memory`).
    pub fn node_has_memory(&self, node: u32, kernel_only: bool) -> bool {
        let boot = self
            .nodes
            .iter()
            .any(|n| n.id == node && n.boot_mem_total > 0);
        boot || self
            .blocks
            .values()
            .filter(|b| b.node == node)
            .filter_map(|b| b.zone)
            .any(|z| !kernel_only || is_kernel_zone(z))
    }

    pub(crate) fn emit_block(&mut self, id: u64, action: &str) {
        self.emit(
            action,
            &format!("/devices/system/memory/memory{id}"),
            Subsystem::Memory,
            Vec::new(),
        );
    }
}
