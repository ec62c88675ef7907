//! Extreme values in a copied sysfs tree (a damaged capture, a hand-edited file): discovery
//! answers every one with a result or an error, never a panic, a hang or unbounded memory.

use std::path::Path;
use std::time::{Duration, Instant};

use daxplug_engine::{Scope, discover};
use daxplug_kernel::{Access, RootFs};
use proptest::prelude::*;

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ty = entry.file_type().expect("type");
        if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).expect("link"), &dst)
                .expect("symlink");
        } else if ty.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

fn extreme() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(1u64 << 63),
        Just(0x1_4000_0000),
        any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn discovery_survives_any_number(
        start in extreme(),
        end in extreme(),
        size in extreme(),
        block_size in prop_oneof![Just(0u64), Just(1), Just(3), Just(1 << 27), Just(1 << 63), any::<u64>()],
        iomem_end in extreme(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/hmem/04-online-movable");
        copy_tree(&fixture, dir.path());
        let dev = dir.path().join("sys/devices/platform/hmem.0/dax0.0");
        std::fs::write(dev.join("mapping0/start"), format!("{start:#x}\n")).expect("write");
        std::fs::write(dev.join("mapping0/end"), format!("{end:#x}\n")).expect("write");
        std::fs::write(dev.join("size"), format!("{size}\n")).expect("write");
        std::fs::write(
            dir.path().join("sys/devices/system/memory/block_size_bytes"),
            format!("{block_size:x}\n"),
        )
        .expect("write");
        let iomem = std::fs::read_to_string(dir.path().join("proc/iomem")).expect("iomem");
        let iomem = iomem.replace("17fffffff : dax0.0", &format!("{iomem_end:x} : dax0.0"));
        std::fs::write(dir.path().join("proc/iomem"), iomem).expect("write");

        let k = RootFs::new(dir.path(), Access::ReadOnly).expect("root");
        let started = Instant::now();
        // A result or an error; either is an answer.
        let _ = discover(&k, &Scope::All);
        prop_assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    }
}
