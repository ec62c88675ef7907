//! A preset adopting what a real boot decided: the kernel image's resources and firmware
//! ranges in `/proc/iomem`, and each node's boot `MemTotal`. These differ from one kernel
//! build to the next and hotplug never changes them, so a comparison with a real kernel
//! takes them from that kernel's own capture instead of from the preset.

use daxplug_abi::{DaxName, Iomem, KMEM_RESOURCE_NAME, ParseError};

use crate::machine::{Machine, StaticResource};

/// A boot capture that cannot be adopted.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The `/proc/iomem` text does not parse.
    #[error("the captured /proc/iomem does not parse")]
    Iomem(#[source] ParseError),
    /// The capture names a node the machine does not have.
    #[error("the capture has a MemTotal for node {node}, which the machine does not have")]
    UnknownNode { node: u32 },
    /// The capture holds dax or kmem resources, which the model renders itself.
    #[error(
        "the captured /proc/iomem already holds {name:?}: capture before any dax device is bound"
    )]
    NotBoot {
        /// The resource's name.
        name: String,
    },
}

impl Machine {
    /// Takes the boot layout from a real kernel's capture: every `/proc/iomem` entry becomes
    /// a boot resource, and each listed node's boot `MemTotal` (in kB) is set.
    pub fn adopt_boot(
        &mut self,
        iomem: &str,
        node_mem_total_kb: &[(u32, u64)],
    ) -> Result<(), BootError> {
        let parsed = Iomem::parse(iomem).map_err(BootError::Iomem)?;
        if let Some(e) = parsed
            .entries()
            .iter()
            .find(|e| e.name.parse::<DaxName>().is_ok() || e.name == KMEM_RESOURCE_NAME)
        {
            return Err(BootError::NotBoot {
                name: e.name.clone(),
            });
        }
        for &(node, _) in node_mem_total_kb {
            if !self.nodes.iter().any(|n| n.id == node) {
                return Err(BootError::UnknownNode { node });
            }
        }
        self.boot_iomem = parsed
            .entries()
            .iter()
            .map(|e| StaticResource {
                depth: e.depth,
                range: e.range,
                name: e.name.clone(),
            })
            .collect();
        for &(node, kb) in node_mem_total_kb {
            if let Some(n) = self.nodes.iter_mut().find(|n| n.id == node) {
                n.boot_mem_total = kb * 1024;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Flavour;
    use crate::presets::build;

    const IOMEM: &str = "00000000-00000fff : Reserved\n00100000-bffdffff : System RAM\n  01000000-021d3f8f : Kernel code\n100000000-13fffffff : System RAM\n140000000-17fffffff : Soft Reserved\n";

    #[test]
    fn a_capture_replaces_the_boot_layout() {
        let mut m = build("hmem", Flavour::Atomic, 1).expect("preset");
        m.adopt_boot(IOMEM, &[(0, 4_007_448), (1, 0)])
            .expect("adopted");
        let text = m.iomem().to_string();
        assert!(text.contains("01000000-021d3f8f : Kernel code"), "{text}");
        assert!(!text.contains("Kernel rodata"), "{text}");
        assert_eq!(m.node_mem_total(0), 4_007_448 * 1024);
    }

    #[test]
    fn a_capture_with_dax_resources_is_refused() {
        let mut m = build("hmem", Flavour::Legacy, 1).expect("preset");
        let err = m
            .adopt_boot(&format!("{IOMEM}  140000000-17fffffff : dax0.0\n"), &[])
            .expect_err("dax resources refused");
        assert!(matches!(err, BootError::NotBoot { .. }), "{err}");
        let err = m
            .adopt_boot(IOMEM, &[(7, 1)])
            .expect_err("unknown node refused");
        assert!(matches!(err, BootError::UnknownNode { node: 7 }), "{err}");
    }
}
