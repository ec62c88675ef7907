//! `/proc/iomem` as the model renders it: the boot entries, each dax device's reservation
//! nested in the deepest boot entry that holds it, and `System RAM (kmem)` under each range
//! kmem added.

use std::fmt::Write as _;

use daxplug_abi::{Iomem, KMEM_RESOURCE_NAME, PhysRange};

use crate::machine::Machine;

impl Machine {
    /// `/proc/iomem`: the boot entries with the dax reservations nested in the deepest boot
    /// entry that contains them, and `System RAM (kmem)` under each added reservation.
    pub fn iomem(&self) -> Iomem {
        let mut roots: Vec<ResNode> = Vec::new();
        for r in &self.boot_iomem {
            let mut level = &mut roots;
            for _ in 0..r.depth {
                if level.is_empty() {
                    break;
                }
                let last = level.len() - 1;
                level = &mut level[last].children;
            }
            level.push(ResNode::new(r.range, &r.name));
        }
        for (name, range, kmem) in self.dax_resources() {
            let mut node = ResNode::new(range, &name);
            if kmem {
                node.children.push(ResNode::new(range, KMEM_RESOURCE_NAME));
            }
            let mut level = &mut roots;
            while let Some(i) = level.iter().position(|n| n.range.contains_range(&range)) {
                level = &mut level[i].children;
            }
            let at = level
                .iter()
                .position(|n| n.range.start > range.start)
                .unwrap_or(level.len());
            level.insert(at, node);
        }
        let mut text = String::new();
        for n in &roots {
            n.render(0, &mut text);
        }
        Iomem::parse(&text).unwrap_or_default()
    }
}

/// A resource while `/proc/iomem` is assembled.
struct ResNode {
    range: PhysRange,
    name: String,
    children: Vec<ResNode>,
}

impl ResNode {
    fn new(range: PhysRange, name: &str) -> Self {
        Self {
            range,
            name: name.to_owned(),
            children: Vec::new(),
        }
    }

    fn render(&self, depth: usize, out: &mut String) {
        let _ = writeln!(
            out,
            "{:w$}{} : {}",
            "",
            self.range,
            self.name,
            w = depth * 2
        );
        for c in &self.children {
            c.render(depth + 1, out);
        }
    }
}
