//! Carving a dynamic dax region into devices, as the dax bus does: `dax_region/create`
//! (a new zero-sized device), `delete`, `seed`, a device's `size` (grow into the region's
//! free space, first fit, extending the last range when it can; shrink from the end),
//! `mapping` (claim an exact range) and `align`. Sizes are multiples of the device's
//! alignment and at least of a 2 MiB subsection (`memremap_compat_align()` on x86).

use daxplug_abi::PhysRange;
use daxplug_kernel::Errno;

use crate::machine::Subsystem;
use crate::machine::{DaxDevice, DevRange, Machine};

/// The page size offsets are counted in.
pub const PAGE_SIZE: u64 = 4096;
/// The smallest granule a device's size may change by (a memory section's subsection).
const SUBSECTION: u64 = 2 << 20;
/// The alignments `align` accepts: a page, a PMD, a PUD.
const VALID_ALIGNS: [u64; 3] = [PAGE_SIZE, 2 << 20, 1 << 30];

/// A device range with its owner, as the region's resource tree lists it.
#[derive(Debug, Clone, Copy)]
struct Child {
    device: usize,
    index: usize,
    range: PhysRange,
}

impl Machine {
    fn region_index(&self, d: &DaxDevice) -> Option<usize> {
        self.regions.iter().position(|r| r.id == d.region)
    }

    /// Every device range in region `ri`, by address.
    fn allocations(&self, ri: usize) -> Vec<Child> {
        let id = self.regions[ri].id;
        let mut v: Vec<Child> = self
            .devices
            .iter()
            .enumerate()
            .filter(|(_, d)| d.region == id)
            .flat_map(|(i, d)| {
                d.ranges.iter().enumerate().map(move |(j, r)| Child {
                    device: i,
                    index: j,
                    range: r.range,
                })
            })
            .collect();
        v.sort_by_key(|c| c.range.start);
        v
    }

    /// `dax_region/available_size`: what no device of the region holds.
    pub fn available_size(&self, ri: usize) -> u64 {
        let used: u64 = self.allocations(ri).iter().map(|c| c.range.len()).sum();
        self.regions[ri].range.len() - used
    }

    /// `alloc_is_aligned()`.
    fn aligned(d: &DaxDevice, size: u64) -> bool {
        size.is_multiple_of(d.align.max(SUBSECTION))
    }

    /// `dax_region/create` (write `1`): a new device of size 0, unbound (a zero-sized
    /// device fails every probe), named with the region's lowest free id.
    pub fn region_create(&mut self, ri: usize, token: &str) -> Result<(), Errno> {
        if !self.regions[ri].is_dynamic() {
            return Err(Errno::EINVAL);
        }
        let value: i64 = token.trim().parse().map_err(|_| Errno::EINVAL)?;
        if value != 1 {
            return Err(Errno::EINVAL);
        }
        if self.available_size(ri) == 0 {
            return Err(Errno::ENOSPC);
        }
        let region = self.regions[ri].id;
        let taken = |id: u32| {
            self.devices
                .iter()
                .any(|d| d.name == format!("dax{region}.{id}"))
        };
        let id = (0..).find(|i| !taken(*i)).unwrap_or(0);
        let minor = (0..)
            .find(|m| !self.devices.iter().any(|d| d.minor == *m))
            .unwrap_or(0);
        let sibling = self.devices.iter().find(|d| d.region == region);
        let device = DaxDevice {
            name: format!("dax{region}.{id}"),
            region,
            ranges: Vec::new(),
            target_node: sibling.and_then(|d| d.target_node),
            numa_node: sibling.and_then(|d| d.numa_node),
            align: self.regions[ri].align,
            memmap_on_memory: false,
            minor,
            driver: None,
            devdax_res: Vec::new(),
            kmem: None,
            leaked: Vec::new(),
        };
        let name = device.name.clone();
        self.devices.push(device);
        let r = &mut self.regions[ri];
        r.seed.get_or_insert_with(|| name.clone());
        r.youngest = Some(name.clone());
        let devpath = self.device_devpath(&name);
        self.emit("add", &devpath, Subsystem::Dax, Vec::new());
        Ok(())
    }

    /// `dax_region/delete` (write a device's name): only an unbound device of size 0, and
    /// never the region's device 0 (it keeps `/sys/bus/dax` populated).
    pub fn region_delete(&mut self, ri: usize, token: &str) -> Result<(), Errno> {
        if !self.regions[ri].is_dynamic() {
            return Err(Errno::EINVAL);
        }
        let name = token.trim_end_matches('\n');
        let region = self.regions[ri].id;
        let d = self
            .devices
            .iter()
            .find(|d| d.region == region && d.name == name)
            .ok_or(Errno::ENXIO)?;
        if d.driver.is_some() || !d.ranges.is_empty() {
            return Err(Errno::EBUSY);
        }
        if name.ends_with(".0") {
            return Err(Errno::EBUSY);
        }
        let name = name.to_owned();
        let r = &mut self.regions[ri];
        for slot in [&mut r.seed, &mut r.youngest] {
            if slot.as_deref() == Some(name.as_str()) {
                *slot = None;
            }
        }
        self.remove_device(&name);
        Ok(())
    }

    /// A device's `size`: grows into the region's free space or shrinks from the end.
    /// The device must be unbound.
    pub fn device_resize(&mut self, di: usize, token: &str) -> Result<(), Errno> {
        let size = crate::kstr::kstrtoull(token).ok_or(Errno::EINVAL)?;
        let d = &self.devices[di];
        if !Self::aligned(d, size) {
            return Err(Errno::EINVAL);
        }
        if d.driver.is_some() {
            return Err(Errno::EBUSY);
        }
        let ri = self.region_index(d).ok_or(Errno::ENXIO)?;
        let current: u64 = d.ranges.iter().map(|r| r.range.len()).sum();
        if size == current {
            return Ok(());
        }
        if size < current {
            self.shrink(di, current - size);
            return Ok(());
        }
        if size - current > self.available_size(ri) {
            return Err(Errno::ENOSPC);
        }
        self.grow(di, ri, size - current)
    }

    /// `dev_dax_shrink()`: whole ranges from the end, then the last one trimmed.
    fn shrink(&mut self, di: usize, mut by: u64) {
        let ranges = &mut self.devices[di].ranges;
        while by > 0 {
            let Some(last) = ranges.last_mut() else {
                return;
            };
            let len = last.range.len();
            if by >= len {
                ranges.pop();
                by -= len;
            } else {
                last.range.end -= by;
                by = 0;
            }
        }
    }

    /// `dev_dax_resize()`'s growth: repeatedly the first gap of the region (before the
    /// first range, between two, after the last), extending the device's last range when
    /// the gap follows it, a new range otherwise.
    fn grow(&mut self, di: usize, ri: usize, mut to_alloc: u64) -> Result<(), Errno> {
        let region = self.regions[ri].range;
        while to_alloc > 0 {
            let children = self.allocations(ri);
            let Some(first) = children.first() else {
                self.add_range(di, region.start, to_alloc);
                return Ok(());
            };
            if first.range.start > region.start {
                let alloc = (first.range.start - region.start).min(to_alloc);
                self.add_range(di, region.start, alloc);
                to_alloc -= alloc;
                continue;
            }
            let mut taken = None;
            for (k, c) in children.iter().enumerate() {
                let next = children.get(k + 1);
                let gap = match next {
                    Some(n) if n.range.start > c.range.end + 1 => n.range.start - (c.range.end + 1),
                    None if c.range.end < region.end => region.end - c.range.end,
                    _ => 0,
                };
                if gap > 0 {
                    taken = Some((*c, gap.min(to_alloc)));
                    break;
                }
            }
            let (c, alloc) = taken.ok_or(Errno::ENOSPC)?;
            let last = self.devices[di].ranges.len().checked_sub(1);
            if c.device == di && Some(c.index) == last {
                if let Some(r) = self.devices[di].ranges.last_mut() {
                    r.range.end += alloc;
                }
            } else {
                self.add_range(di, c.range.end + 1, alloc);
            }
            to_alloc -= alloc;
        }
        Ok(())
    }

    fn add_range(&mut self, di: usize, start: u64, len: u64) {
        let d = &mut self.devices[di];
        let offset: u64 = d.ranges.iter().map(|r| r.range.len()).sum();
        d.ranges.push(DevRange {
            range: PhysRange {
                start,
                end: start + len - 1,
            },
            page_offset: offset / PAGE_SIZE,
        });
    }

    /// A device's `mapping` (`START-END` in hex): claims exactly that range of the region.
    /// A length that is not a multiple of the device's alignment is ignored, as the kernel
    /// does.
    pub fn device_mapping(&mut self, di: usize, token: &str) -> Result<(), Errno> {
        let (start, end) = token
            .trim_end_matches('\n')
            .split_once('-')
            .ok_or(Errno::EINVAL)?;
        let hex = |t: &str| crate::kstr::kstrtoull_hex(t).ok_or(Errno::EINVAL);
        let (start, end) = (hex(start)?, hex(end)?);
        if end < start {
            return Err(Errno::EINVAL);
        }
        let wanted = PhysRange { start, end };
        if !Self::aligned(&self.devices[di], wanted.len()) {
            return Ok(());
        }
        let ri = self.region_index(&self.devices[di]).ok_or(Errno::ENXIO)?;
        let free = self.regions[ri].range.contains_range(&wanted)
            && !self
                .allocations(ri)
                .iter()
                .any(|c| c.range.overlaps(&wanted));
        if !free {
            return Err(Errno::ENOMEM);
        }
        self.add_range(di, start, wanted.len());
        Ok(())
    }

    /// A device's `align`: a page, 2 MiB or 1 GiB, that every range's length honours; the
    /// device must be unbound.
    pub fn device_align(&mut self, di: usize, token: &str) -> Result<(), Errno> {
        let align = crate::kstr::kstrtoull(token).ok_or(Errno::ENXIO)?;
        if !VALID_ALIGNS.contains(&align) {
            return Err(Errno::EINVAL);
        }
        let d = &mut self.devices[di];
        if d.driver.is_some() {
            return Err(Errno::EBUSY);
        }
        let saved = std::mem::replace(&mut d.align, align);
        if !d.ranges.iter().all(|r| Self::aligned(d, r.range.len())) {
            d.align = saved;
            return Err(Errno::EINVAL);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Caller, Flavour, build_preset};

    const MIB: u64 = 1 << 20;

    fn write(m: &mut Machine, path: &str, value: &str) -> Result<(), Errno> {
        m.sysfs_write(path, value, Caller::Client)
    }

    const REGION: &str = "/sys/devices/platform/hmem.0/dax_region";
    const DAX00: &str = "/sys/bus/dax/devices/dax0.0";

    /// The hmem region carved in two, then a hole regrown into a two-range device.
    #[test]
    fn carve_fragment_and_regrow() {
        let mut m = build_preset("hmem", Flavour::Legacy, 1).expect("preset");
        assert_eq!(
            m.sysfs_read(&format!("{REGION}/available_size")),
            Ok("0\n".into())
        );
        assert_eq!(
            write(&mut m, &format!("{REGION}/create"), "1"),
            Err(Errno::ENOSPC)
        );
        write(&mut m, &format!("{DAX00}/size"), &(512 * MIB).to_string()).expect("shrink");
        assert_eq!(
            m.sysfs_read(&format!("{REGION}/available_size")),
            Ok(format!("{}\n", 512 * MIB))
        );
        write(&mut m, &format!("{REGION}/create"), "1").expect("create");
        assert_eq!(
            m.sysfs_read(&format!("{REGION}/create")),
            Ok("dax0.1\n".into())
        );
        assert_eq!(
            m.sysfs_read(&format!("{REGION}/seed")),
            Ok("dax0.1\n".into())
        );
        // A zero-sized device cannot be bound.
        assert_eq!(
            write(&mut m, "/sys/bus/dax/drivers/device_dax/new_id", "dax0.1"),
            Ok(())
        );
        assert_eq!(m.device("dax0.1").and_then(|d| d.driver), None);
        write(
            &mut m,
            "/sys/bus/dax/drivers/device_dax/remove_id",
            "dax0.1",
        )
        .expect("remove_id");
        write(
            &mut m,
            "/sys/bus/dax/devices/dax0.1/size",
            &(256 * MIB).to_string(),
        )
        .expect("size");
        assert_eq!(
            m.sysfs_read("/sys/bus/dax/devices/dax0.1/mapping0/start"),
            Ok("0x160000000\n".into())
        );
        // Misaligned, and more than there is.
        let dax01 = "/sys/bus/dax/devices/dax0.1/size";
        assert_eq!(write(&mut m, dax01, "1000"), Err(Errno::EINVAL));
        assert_eq!(
            write(&mut m, dax01, &(1024 * MIB).to_string()),
            Err(Errno::ENOSPC)
        );
        // Growing into the space right after the device's last range extends that range.
        write(&mut m, dax01, &(512 * MIB).to_string()).expect("grow");
        assert_eq!(m.device("dax0.1").map(|d| d.ranges.len()), Some(1));
        // A hole before dax0.1 is taken as a second range.
        write(&mut m, &format!("{DAX00}/size"), &(256 * MIB).to_string()).expect("shrink");
        write(&mut m, dax01, &(768 * MIB).to_string()).expect("grow");
        let d = m.device("dax0.1").expect("dax0.1");
        let ranges: Vec<(u64, u64, u64)> = d
            .ranges
            .iter()
            .map(|r| (r.range.start, r.range.end, r.page_offset))
            .collect();
        assert_eq!(
            ranges,
            vec![
                (0x1_6000_0000, 0x1_7fff_ffff, 0),
                (0x1_5000_0000, 0x1_5fff_ffff, 512 * MIB / PAGE_SIZE),
            ]
        );
        assert_eq!(
            m.sysfs_read("/sys/bus/dax/devices/dax0.1/mapping1/page_offset"),
            Ok(format!("{:#x}\n", 512 * MIB / PAGE_SIZE))
        );
        assert_eq!(
            m.sysfs_read(&format!("{REGION}/available_size")),
            Ok("0\n".into())
        );
        // Deleting: bound or sized devices and device 0 are refused.
        assert_eq!(
            write(&mut m, &format!("{REGION}/delete"), "dax0.1"),
            Err(Errno::EBUSY)
        );
        write(&mut m, dax01, "0").expect("to zero");
        assert_eq!(
            write(&mut m, &format!("{REGION}/delete"), "dax0.9"),
            Err(Errno::ENXIO)
        );
        write(&mut m, &format!("{REGION}/delete"), "dax0.1").expect("delete");
        assert!(m.device("dax0.1").is_none());
        assert_eq!(m.sysfs_read(&format!("{REGION}/seed")), Ok("\n".into()));
        write(&mut m, &format!("{DAX00}/size"), "0").expect("to zero");
        assert_eq!(
            write(&mut m, &format!("{REGION}/delete"), "dax0.0"),
            Err(Errno::EBUSY)
        );
        assert!(
            crate::check_invariants(&m).is_empty(),
            "{:?}",
            crate::check_invariants(&m)
        );
    }

    #[test]
    fn static_regions_cannot_be_carved() {
        let mut m = build_preset("pmem", Flavour::Legacy, 1).expect("preset");
        let region = "/sys/devices/platform/e820_pmem/ndbus0/region0/dax0.0/dax_region";
        assert_eq!(
            write(&mut m, &format!("{region}/create"), "1"),
            Err(Errno::ENOENT)
        );
        assert_eq!(
            write(&mut m, &format!("{DAX00}/size"), "0"),
            Err(Errno::EACCES)
        );
    }

    #[test]
    fn align_takes_a_page_a_pmd_or_a_pud() {
        let mut m = build_preset("hmem", Flavour::Legacy, 1).expect("preset");
        let align = format!("{DAX00}/align");
        assert_eq!(write(&mut m, &align, "8192"), Err(Errno::EINVAL));
        assert_eq!(write(&mut m, &align, "x"), Err(Errno::ENXIO));
        write(&mut m, &align, "4096").expect("4k");
        assert_eq!(m.sysfs_read(&align), Ok("4096\n".into()));
        write(&mut m, &align, "1073741824").expect("1g: the 1 GiB range honours it");
    }
}
