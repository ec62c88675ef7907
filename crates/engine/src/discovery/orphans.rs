//! Leaked ranges of devices that are no longer on the bus: a device removed while kmem held
//! its memory online leaves its `daxX.Y` resource (and the `System RAM (kmem)` in it) in
//! `/proc/iomem`, with its memory blocks, until reboot. No device shows it any more, so it is
//! found from `/proc/iomem`.

use std::collections::BTreeSet;

use daxplug_abi::{BlockSize, DaxName, Iomem, KMEM_RESOURCE_NAME};
use daxplug_kernel::Kernel;

use crate::discovery::blocks::{BlockNodes, read_blocks};
use crate::discovery::error::DiscoveryError;
use crate::discovery::topology::Orphan;

/// The `daxX.Y` resources of `/proc/iomem` whose device is not among `on_bus`.
pub(crate) fn orphans(
    k: &dyn Kernel,
    iomem: &Iomem,
    on_bus: &BTreeSet<String>,
    block_size: BlockSize,
    most_blocks: u64,
) -> Result<Vec<Orphan>, DiscoveryError> {
    let mut out = Vec::new();
    for (i, e) in iomem.entries().iter().enumerate() {
        if e.name.parse::<DaxName>().is_err() || on_bus.contains(&e.name) {
            continue;
        }
        if e.range.len() / block_size.bytes() > most_blocks {
            return Err(DiscoveryError::Implausible {
                path: daxplug_kernel::paths::IOMEM.to_owned(),
                what: format!("{} spans {:#x}-{:#x}", e.name, e.range.start, e.range.end),
            });
        }
        let kmem = iomem
            .children(i)
            .find(|(_, c)| c.name == KMEM_RESOURCE_NAME)
            .map(|(_, c)| c.range);
        let ids: Vec<u64> = e
            .range
            .whole_blocks(block_size)
            .map(|(first, last)| (first..=last).collect())
            .unwrap_or_default();
        let blocks = read_blocks(k, &ids, block_size, BlockNodes::Skip)?;
        if kmem.is_none() && blocks.is_empty() {
            // A name with nothing of the system in it holds nothing to report.
            continue;
        }
        out.push(Orphan {
            name: e.name.clone(),
            range: e.range,
            kmem,
            blocks,
        });
    }
    Ok(out)
}
