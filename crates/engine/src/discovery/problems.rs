//! What is wrong with a device, in words for people and codes for programs.

use std::fmt::Write as _;

use daxplug_abi::BlockState;
use serde::Serialize;

use crate::discovery::observe::ObservedState;
use crate::discovery::topology::{Device, Orphan};

/// A machine-readable kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// kmem is not bound but the device's memory is still in the system.
    Stuck,
    /// kmem is bound but the blocks disagree with each other.
    Mixed,
    /// The kernel's `state` file disagrees with the blocks.
    KernelStateStale,
    /// Blocks are online in a kernel zone, from which they rarely offline again.
    KernelZone,
    /// The device has no `mappingN` directories, so its ranges are unknown.
    NoMappings,
}

/// One problem of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub code: ProblemCode,
    /// A full sentence for people.
    pub message: String,
}

/// Formats block ids as `memory40-memory47, memory50`, folding runs.
pub fn format_block_ids(ids: impl IntoIterator<Item = u64>) -> String {
    let mut out = String::new();
    let mut ids = ids.into_iter().peekable();
    while let Some(first) = ids.next() {
        let mut last = first;
        while ids.peek() == Some(&(last + 1)) {
            last += 1;
            ids.next();
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        let _ = write!(out, "memory{first}");
        if last != first {
            let _ = write!(out, "-memory{last}");
        }
    }
    out
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The problems of `device`, most serious first.
pub fn problems(device: &Device) -> Vec<Problem> {
    let mut out = Vec::new();
    let c = &device.counts;
    // A device of size 0 has no ranges; one read without root has them hidden.
    if device.mappings.is_empty() && device.size > 0 && !device.ranges_hidden {
        out.push(Problem {
            code: ProblemCode::NoMappings,
            message: "no mappingN directories (a kernel older than 5.10?), so only its /proc/iomem entries tell where its memory is.".to_owned(),
        });
    }
    match device.state {
        ObservedState::Stuck => {
            let mut held = Vec::new();
            if c.total > 0 {
                let mut blocks = format!(
                    "{} ({})",
                    plural(c.total, "block"),
                    format_block_ids(device.blocks.iter().map(|b| b.id))
                );
                let online: Vec<u64> = device.online_blocks().map(|b| b.id).collect();
                if !online.is_empty() {
                    let verb = if online.len() == 1 { "is" } else { "are" };
                    let _ = write!(
                        blocks,
                        ", of which {} {verb} online",
                        format_block_ids(online)
                    );
                }
                held.push(blocks);
            }
            if let Some(r) = device.iomem.iter().find_map(|r| r.kmem) {
                held.push(format!(
                    "the System RAM (kmem) range {:#x}-{:#x} in /proc/iomem",
                    r.start, r.end
                ));
            }
            let msg = format!(
                "kmem is not bound, but the kernel still holds the device's memory: {}. The range leaked when kmem was unbound with a block online; it cannot be removed or bound to a driver again until reboot.",
                held.join(", and ")
            );
            out.push(Problem {
                code: ProblemCode::Stuck,
                message: msg,
            });
        }
        ObservedState::Mixed => {
            let mut parts = Vec::new();
            if c.online > 0 {
                parts.push(format!(
                    "{} online ({} Movable, {} in a kernel zone)",
                    c.online, c.movable, c.normal
                ));
            }
            if c.offline > 0 {
                parts.push(format!("{} offline", c.offline));
            }
            if c.going_offline > 0 {
                parts.push(format!("{} going offline", c.going_offline));
            }
            if c.total < c.span {
                parts.push(format!("{} missing", c.span - c.total));
            }
            out.push(Problem {
                code: ProblemCode::Mixed,
                message: format!(
                    "torn: of its {}, {}.",
                    plural(c.span.max(c.total), "block"),
                    parts.join(", ")
                ),
            });
        }
        _ => {}
    }
    if let Some(k) = device.kernel_state.filter(|_| device.state_disagrees()) {
        out.push(Problem {
            code: ProblemCode::KernelStateStale,
            message: format!(
                "the kernel's state file says {k} (KERNEL *), but the blocks say {}: blocks were changed through memoryN/state behind the driver's back.",
                device.state
            ),
        });
    }
    if c.normal > 0 && device.state != ObservedState::Stuck {
        let ids = device
            .blocks
            .iter()
            .filter(|b| b.state == BlockState::Online && !b.zone().is_some_and(|z| z.is_movable()))
            .map(|b| b.id);
        out.push(Problem {
            code: ProblemCode::KernelZone,
            message: format!(
                "{} online in a kernel zone; kernel allocations land there and usually keep them from going offline again.",
                if c.normal == 1 {
                    format!("{} is", format_block_ids(ids))
                } else {
                    format!("{} are", format_block_ids(ids))
                }
            ),
        });
    }
    out
}

impl Orphan {
    /// One sentence for people: what is left and why it stays.
    pub fn sentence(&self) -> String {
        let online = self
            .blocks
            .iter()
            .filter(|b| b.state == daxplug_abi::BlockState::Online)
            .count();
        let blocks = if self.blocks.is_empty() {
            "no memory block".to_owned()
        } else {
            format!(
                "{} ({online} online)",
                format_block_ids(self.blocks.iter().map(|b| b.id))
            )
        };
        format!(
            "{} is gone from the dax bus, but /proc/iomem still holds its range {:#x}-{:#x}{}, with {blocks}: the kernel leaked it, and it stays until reboot",
            self.name,
            self.range.start,
            self.range.end,
            if self.kmem.is_some() {
                " as System RAM (kmem)"
            } else {
                ""
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_id_runs() {
        assert_eq!(
            format_block_ids([40, 41, 42, 47]),
            "memory40-memory42, memory47"
        );
        assert_eq!(format_block_ids([5]), "memory5");
        assert_eq!(format_block_ids([]), "");
    }
}
