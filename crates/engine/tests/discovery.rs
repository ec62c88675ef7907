//! Discovery on synthetic sysfs trees: shapes the captured fixtures do not cover
//! (several ranges, the atomic ABI's state file, partial adds, blocks on another node),
//! and proof that discovery reads only the blocks of the devices asked about.

use std::fs;
use std::path::Path;
use std::sync::Mutex;

use daxplug_abi::DaxState;
use daxplug_engine::{DiscoveryError, KernelAbi, ObservedState, Scope, discover};
use daxplug_kernel::{Access, Kernel, KernelError, RootFs};

/// Builds a minimal machine under a temp dir.
struct Tree(tempfile::TempDir);

impl Tree {
    fn new() -> Self {
        let t = Tree(tempfile::tempdir().expect("tempdir"));
        t.file("sys/devices/system/memory/block_size_bytes", "8000000\n");
        t.file("sys/devices/system/memory/auto_online_blocks", "offline\n");
        t.file("sys/devices/system/node/online", "0-1\n");
        t.file("sys/devices/system/node/has_memory", "0-1\n");
        t.file("proc/meminfo", "MemTotal:        4194304 kB\n");
        t.file("proc/iomem", "");
        t
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn file(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, text).expect("write");
    }

    fn link(&self, rel: &str, target: &str) {
        let p = self.path().join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, p).expect("symlink");
    }

    /// A device under platform/hmem.R with the given (start, end) mappings.
    fn device(&self, name: &str, region: u32, ranges: &[(u64, u64)], driver: Option<&str>) {
        let dir = format!("sys/devices/platform/hmem.{region}/{name}");
        self.link(
            &format!("sys/bus/dax/devices/{name}"),
            &format!("../../../devices/platform/hmem.{region}/{name}"),
        );
        self.file(
            &format!("sys/devices/platform/hmem.{region}/dax_region/id"),
            &format!("{region}\n"),
        );
        self.file(
            &format!("sys/devices/platform/hmem.{region}/dax_region/create"),
            "",
        );
        let size: u64 = ranges.iter().map(|(s, e)| e - s + 1).sum();
        self.file(&format!("{dir}/size"), &format!("{size}\n"));
        self.file(&format!("{dir}/target_node"), "1\n");
        self.file(&format!("{dir}/numa_node"), "0\n");
        for (i, (s, e)) in ranges.iter().enumerate() {
            self.file(&format!("{dir}/mapping{i}/start"), &format!("{s:#x}\n"));
            self.file(&format!("{dir}/mapping{i}/end"), &format!("{e:#x}\n"));
            self.file(&format!("{dir}/mapping{i}/page_offset"), "0x0\n");
        }
        if let Some(drv) = driver {
            self.link(
                &format!("{dir}/driver"),
                &format!("../../../../bus/dax/drivers/{drv}"),
            );
        }
    }

    fn block(&self, id: u64, state: &str, zones: &str, node: u32) {
        let dir = format!("sys/devices/system/memory/memory{id}");
        self.file(&format!("{dir}/state"), &format!("{state}\n"));
        self.file(&format!("{dir}/valid_zones"), &format!("{zones}\n"));
        self.link(
            &format!("{dir}/node{node}"),
            &format!("../../node/node{node}"),
        );
    }

    fn kernel(&self) -> RootFs {
        RootFs::new(self.path(), Access::ReadOnly).expect("root")
    }
}

#[test]
fn two_ranges_with_a_partial_add_are_mixed() {
    let t = Tree::new();
    // Two 512 MiB ranges; the second one's first block failed to add.
    t.device(
        "dax0.0",
        0,
        &[
            (0x1_0000_0000, 0x1_1fff_ffff),
            (0x2_0000_0000, 0x2_1fff_ffff),
        ],
        Some("kmem"),
    );
    for id in 32..36 {
        t.block(id, "online", "Movable", 1);
    }
    for id in 65..68 {
        t.block(id, "online", "Movable", 1);
    }
    t.file(
        "proc/iomem",
        "100000000-11fffffff : dax0.0\n  100000000-11fffffff : System RAM (kmem)\n200000000-21fffffff : dax0.0\n  200000000-21fffffff : System RAM (kmem)\n",
    );
    let topo = discover(&t.kernel(), &Scope::All).expect("discovers");
    let d = &topo.devices[0];
    assert_eq!(d.mappings.len(), 2);
    assert_eq!(d.mappings[1].blocks, Some((64, 67)));
    assert_eq!(d.counts.span, 8);
    assert_eq!(d.counts.total, 7);
    assert_eq!(d.state, ObservedState::Mixed);
    assert_eq!(d.iomem.len(), 2);
    assert_eq!(topo.kernel_abi, KernelAbi::Legacy);
}

#[test]
fn atomic_kernel_state_is_reported_and_checked() {
    let t = Tree::new();
    t.device("dax0.0", 0, &[(0x1_0000_0000, 0x1_0fff_ffff)], Some("kmem"));
    t.file(
        "sys/devices/platform/hmem.0/dax0.0/state",
        "online_movable\n",
    );
    t.block(32, "online", "Movable", 1);
    t.block(33, "online", "Movable", 1);
    let topo = discover(&t.kernel(), &Scope::All).expect("discovers");
    assert_eq!(topo.kernel_abi, KernelAbi::Atomic);
    let d = &topo.devices[0];
    assert_eq!(d.kernel_state, Some(DaxState::OnlineMovable));
    assert_eq!(d.state, ObservedState::OnlineMovable);
    assert!(!d.state_disagrees());

    // Someone offlines a block through memoryN/state: the kernel's state goes stale.
    t.file("sys/devices/system/memory/memory33/state", "offline\n");
    t.file(
        "sys/devices/system/memory/memory33/valid_zones",
        "Movable Normal\n",
    );
    let topo = discover(&t.kernel(), &Scope::All).expect("discovers");
    let d = &topo.devices[0];
    assert_eq!(d.state, ObservedState::Mixed);
    assert!(d.state_disagrees());

    // The atomic ABI's unplugged: kmem bound, no blocks.
    for id in [32, 33] {
        fs::remove_dir_all(
            t.path()
                .join(format!("sys/devices/system/memory/memory{id}")),
        )
        .expect("rm");
    }
    t.file("sys/devices/platform/hmem.0/dax0.0/state", "unplugged\n");
    let d = discover(&t.kernel(), &Scope::All)
        .expect("discovers")
        .devices
        .remove(0);
    assert_eq!(d.state, ObservedState::Unplugged);
    assert!(!d.state_disagrees());
}

#[test]
fn block_node_comes_from_its_link_even_off_the_target_node() {
    let t = Tree::new();
    t.device("dax0.0", 0, &[(0x1_0000_0000, 0x1_0fff_ffff)], Some("kmem"));
    t.block(32, "online", "Movable", 1);
    t.block(33, "online", "Movable", 0);
    let d = discover(&t.kernel(), &Scope::All)
        .expect("discovers")
        .devices
        .remove(0);
    assert_eq!(
        d.blocks.iter().map(|b| b.node).collect::<Vec<_>>(),
        vec![Some(1), Some(0)]
    );
}

#[test]
fn no_dax_bus_means_no_devices() {
    let t = Tree::new();
    let topo = discover(&t.kernel(), &Scope::All).expect("discovers");
    assert!(topo.devices.is_empty());
    assert_eq!(topo.kernel_abi, KernelAbi::Unknown);
    assert!(matches!(
        discover(&t.kernel(), &Scope::Devices(vec!["dax0.0".into()])),
        Err(DiscoveryError::UnknownDevice { present, .. }) if present == "none"
    ));
}

#[test]
fn devices_sort_numerically() {
    let t = Tree::new();
    for name in ["dax10.0", "dax2.1", "dax2.0"] {
        t.device(
            name,
            0,
            &[(0x1_0000_0000, 0x1_0fff_ffff)],
            Some("device_dax"),
        );
    }
    let names: Vec<String> = discover(&t.kernel(), &Scope::All)
        .expect("discovers")
        .devices
        .into_iter()
        .map(|d| d.name.to_string())
        .collect();
    assert_eq!(names, vec!["dax2.0", "dax2.1", "dax10.0"]);
}

/// Read without root, /proc/iomem shows no addresses: a full discovery says so and gives
/// what can be known.
#[test]
fn hidden_iomem_gives_a_limited_view() {
    let t = Tree::new();
    t.file("proc/iomem", "00000000-00000000 : System RAM\n");
    let topo = discover(&t.kernel(), &Scope::All).expect("a limited view");
    assert!(topo.limited);
    assert!(topo.orphans.is_empty());
}

/// A kernel wrapper that records every path touched.
struct Recording<'a> {
    inner: &'a dyn Kernel,
    touched: Mutex<Vec<(&'static str, String)>>,
}

impl Recording<'_> {
    fn note(&self, op: &'static str, path: &str) {
        self.touched
            .lock()
            .expect("lock")
            .push((op, path.to_owned()));
    }
}

impl Kernel for Recording<'_> {
    fn read(&self, path: &str) -> Result<String, KernelError> {
        self.note("read", path);
        self.inner.read(path)
    }
    fn write(&self, path: &str, value: &str) -> Result<(), KernelError> {
        self.note("write", path);
        self.inner.write(path, value)
    }
    fn list_dir(&self, path: &str) -> Result<Vec<String>, KernelError> {
        self.note("list_dir", path);
        self.inner.list_dir(path)
    }
    fn read_link(&self, path: &str) -> Result<String, KernelError> {
        self.note("read_link", path);
        self.inner.read_link(path)
    }
    fn exists(&self, path: &str) -> bool {
        self.note("exists", path);
        self.inner.exists(path)
    }
}

#[test]
fn only_the_blocks_of_the_devices_asked_about_are_read() {
    let t = Tree::new();
    // 1 GiB of boot RAM (memory0-7) and two devices of 2 blocks each.
    for id in 0..8 {
        t.block(id, "online", "Normal", 0);
    }
    t.device("dax0.0", 0, &[(0x1_0000_0000, 0x1_0fff_ffff)], Some("kmem"));
    t.device("dax1.0", 1, &[(0x2_0000_0000, 0x2_0fff_ffff)], Some("kmem"));
    for id in [32, 33, 64, 65] {
        t.block(id, "online", "Movable", 1);
    }
    let fs = t.kernel();
    let rec = Recording {
        inner: &fs,
        touched: Mutex::new(Vec::new()),
    };
    discover(&rec, &Scope::Devices(vec!["dax1.0".into()])).expect("discovers");
    let touched = rec.touched.into_inner().expect("lock");
    let blocks: Vec<&String> = touched
        .iter()
        .map(|(_, p)| p)
        .filter(|p| p.contains("/memory/memory"))
        .collect();
    assert!(!blocks.is_empty());
    assert!(
        blocks
            .iter()
            .all(|p| p.contains("/memory64/") || p.contains("/memory65/")),
        "touched blocks outside dax1.0: {blocks:?}"
    );
    assert!(
        !touched
            .iter()
            .any(|(op, p)| *op == "list_dir" && p == "/sys/devices/system/memory"),
        "never lists every block of the machine"
    );
    assert!(
        touched.iter().all(|(_, p)| !p.contains("dax0.0")),
        "dax0.0 not read"
    );
    assert!(
        touched.iter().all(|(op, _)| *op != "write"),
        "discovery never writes"
    );
}
