//! The Node Feature Discovery feature file: labels a Kubernetes scheduler can use (how much
//! device memory is online on each node and zone, its memory tier, whether the kernel has
//! the atomic ABI), written where nfd-worker's `local` source reads them (`features.d/`).
//!
//! The file is replaced atomically (a hidden temporary in the same directory, fsync,
//! rename), so nfd-worker never reads half of it, and only when a label changed.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::discovery::topology::{KernelAbi, Topology};

/// The labels for `topo`, in order. nfd-worker prefixes names without a namespace with
/// `feature.node.kubernetes.io/`.
pub fn labels(topo: &Topology) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match topo.kernel_abi {
        KernelAbi::Atomic => out.push(("daxplug-atomic-abi".to_owned(), "true".to_owned())),
        KernelAbi::Legacy => out.push(("daxplug-atomic-abi".to_owned(), "false".to_owned())),
        // Only a kmem-bound device shows whether the kernel has daxX.Y/state.
        KernelAbi::Unknown => {}
    }
    let by_node = topo.device_memory_by_node();
    let (movable, kernel) = by_node
        .values()
        .fold((0, 0), |(m, k), (dm, dk)| (m + dm, k + dk));
    out.push(("daxplug-movable-bytes".to_owned(), movable.to_string()));
    out.push(("daxplug-kernel-bytes".to_owned(), kernel.to_string()));
    let has_cpu = topo.nodes.has_cpu.as_ref();
    for (node, (movable, kernel)) in by_node {
        out.push((
            format!("daxplug-node{node}-movable-bytes"),
            movable.to_string(),
        ));
        out.push((
            format!("daxplug-node{node}-kernel-bytes"),
            kernel.to_string(),
        ));
        if let Some(tier) = topo.placement.node(node, has_cpu).tier {
            out.push((format!("daxplug-node{node}-memory-tier"), tier.to_string()));
        }
    }
    out
}

/// The file's text.
pub fn render(labels: &[(String, String)]) -> String {
    let mut s =
        String::from("# Written by the daxplug daemon on every change; edits are overwritten.\n");
    for (k, v) in labels {
        s.push_str(k);
        s.push('=');
        s.push_str(v);
        s.push('\n');
    }
    s
}

/// Keeps the feature file up to date.
#[derive(Debug)]
pub struct FeatureFile {
    path: PathBuf,
    last: Option<String>,
}

impl FeatureFile {
    /// The file at `path` (absolute; its directory must exist).
    pub fn new(path: PathBuf) -> Self {
        FeatureFile { path, last: None }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the labels of `topo` if they differ from the last written; whether it wrote.
    pub fn update(&mut self, topo: &Topology) -> std::io::Result<bool> {
        let text = render(&labels(topo));
        if self.last.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        write_atomically(&self.path, &text)?;
        self.last = Some(text);
        Ok(true)
    }
}

/// Replaces `path` with `text`: readers see the old file or the new one, never a mix.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "features".into(), |n| n.to_string_lossy().into_owned());
    // nfd-worker skips hidden files, so it never reads the temporary.
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    // The rename itself reaches the disk with the directory.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::discover;
    use crate::discovery::topology::Scope;
    use daxplug_kernel::Kernel;
    use daxplug_model::{Flavour, Sim, build_preset};
    use std::collections::BTreeMap;

    fn labels_of(k: &dyn Kernel) -> BTreeMap<String, String> {
        labels(&discover(k, &Scope::All).expect("discover"))
            .into_iter()
            .collect()
    }

    #[test]
    fn labels_follow_the_device_memory_online_per_node_and_zone() {
        let sim = Sim::new(build_preset("cxl", Flavour::Atomic, 1).expect("preset"));
        let l = labels_of(&sim);
        // The preset boots with both devices online in a kernel zone, 1 GiB each.
        assert_eq!(l["daxplug-atomic-abi"], "true");
        assert_eq!(l["daxplug-node1-kernel-bytes"], (1u64 << 30).to_string());
        assert_eq!(l["daxplug-node1-movable-bytes"], "0");
        assert_eq!(l["daxplug-kernel-bytes"], (2u64 << 30).to_string());
        assert_eq!(l["daxplug-node1-memory-tier"], "22");
        for (k, v) in &l {
            // Kubernetes label names and values: at most 63 characters, alphanumerics,
            // '-', '_' and '.'.
            for s in [k, v] {
                assert!(s.len() <= 63, "{s}");
                assert!(
                    s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                    "{s}"
                );
            }
        }
        let legacy = Sim::new(build_preset("hmem", Flavour::Legacy, 1).expect("preset"));
        let l = labels_of(&legacy);
        assert!(
            !l.contains_key("daxplug-atomic-abi"),
            "no kmem-bound device: unknown"
        );
        assert_eq!(l["daxplug-movable-bytes"], "0");
    }

    #[test]
    fn the_file_is_replaced_whole_and_only_on_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daxplug");
        let sim = Sim::new(build_preset("cxl", Flavour::Atomic, 1).expect("preset"));
        let topo = discover(&sim, &Scope::All).expect("discover");
        let mut f = FeatureFile::new(path.clone());
        assert!(f.update(&topo).expect("write"));
        assert!(!f.update(&topo).expect("same labels"));
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.lines().any(|l| l == "daxplug-atomic-abi=true"),
            "{text}"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            names,
            [std::ffi::OsString::from("daxplug")],
            "no temporary left"
        );
    }
}
