//! Differential check against the real kernel: drive the `hmem` and `pmem` presets on the
//! legacy flavour through the steps that produced the captured fixtures (a 6.12 kernel under
//! QEMU) and compare, file by file, every file daxplug reads.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use daxplug_model::{Caller, Flavour, Machine, build_preset};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Whether daxplug reads this file (kernel path), so the model must reproduce it exactly.
fn compared(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    if path == "/proc/iomem" || path == "/proc/meminfo" {
        return true;
    }
    if let Some(rest) = path.strip_prefix("/sys/devices/system/memory/") {
        return !rest.contains('/') && matches!(name, "block_size_bytes" | "auto_online_blocks")
            || rest.starts_with("memory")
                && matches!(
                    name,
                    "state"
                        | "online"
                        | "valid_zones"
                        | "phys_index"
                        | "phys_device"
                        | "removable"
                        | "subsystem"
                )
            || rest.starts_with("memory") && name.starts_with("node");
    }
    if let Some(rest) = path.strip_prefix("/sys/devices/system/node/") {
        return matches!(
            rest,
            "possible" | "online" | "has_memory" | "has_normal_memory" | "has_cpu"
        ) || name == "meminfo"
            || name.starts_with("memory");
    }
    if path.starts_with("/sys/bus/dax/devices/") || path.starts_with("/sys/bus/dax/drivers/") {
        return name.starts_with("dax") || name == "module";
    }
    if path.starts_with("/sys/devices/platform/") {
        return matches!(
            name,
            "align"
                | "dev"
                | "modalias"
                | "numa_node"
                | "resource"
                | "size"
                | "target_node"
                | "memmap_on_memory"
                | "uevent"
                | "driver"
                | "subsystem"
                | "start"
                | "end"
                | "page_offset"
                | "id"
        ) && !path.contains("/mapping0/uevent");
    }
    false
}

/// Only the `MemTotal` line of meminfo files: the rest (free, cached, …) depends on what the
/// guest happened to be doing.
fn normalize(path: &str, text: &str) -> String {
    if path.ends_with("meminfo") {
        return text
            .lines()
            .filter(|l| l.contains("MemTotal:"))
            .map(|l| format!("{l}\n"))
            .collect();
    }
    text.to_owned()
}

/// Compares every compared file of the fixture with the model; returns the differences.
fn diff(m: &Machine, fixture: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut compared_files = 0;
    let mut stack = vec![fixture.to_path_buf()];
    let mut fixture_blocks = BTreeSet::new();
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("fixture dir") {
            let entry = entry.expect("entry");
            let host = entry.path();
            let kpath = format!("/{}", host.strip_prefix(fixture).expect("inside").display());
            let ft = entry.file_type().expect("type");
            if ft.is_dir() {
                if let Some(n) = kpath.strip_prefix("/sys/devices/system/memory/memory") {
                    fixture_blocks.insert(n.to_owned());
                }
                stack.push(host);
                continue;
            }
            if !compared(&kpath) {
                continue;
            }
            compared_files += 1;
            if ft.is_symlink() {
                let want = fs::read_link(&host).expect("link").display().to_string();
                match m.sysfs_readlink(&kpath) {
                    Ok(got) if got == want => {}
                    got => out.push(format!("{kpath}: link {got:?}, kernel {want:?}")),
                }
                continue;
            }
            let want = normalize(&kpath, &fs::read_to_string(&host).expect("read"));
            match m.sysfs_read(&kpath) {
                Ok(got) if normalize(&kpath, &got) == want => {}
                got => out.push(format!("{kpath}: model {got:?}, kernel {want:?}")),
            }
        }
    }
    assert!(
        compared_files >= 20,
        "only {compared_files} files compared in {}",
        fixture.display()
    );
    // The device's blocks and the online nodes must match as sets too. (The captures hold
    // only the device's blocks, not boot memory.)
    let model_blocks: BTreeSet<String> = m
        .blocks
        .iter()
        .filter(|(_, b)| b.owner.is_some())
        .map(|(id, _)| id.to_string())
        .collect();
    if model_blocks != fixture_blocks {
        out.push(format!(
            "memory blocks: model {model_blocks:?}, kernel {fixture_blocks:?}"
        ));
    }
    let nodes = |p: &Path| -> BTreeSet<String> {
        fs::read_dir(p.join("sys/devices/system/node"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("node"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let model_nodes: BTreeSet<String> = m
        .sysfs_list("/sys/devices/system/node")
        .expect("node dir")
        .into_iter()
        .filter(|n| n.starts_with("node"))
        .collect();
    if model_nodes != nodes(fixture) {
        out.push(format!(
            "node directories: model {model_nodes:?}, kernel {:?}",
            nodes(fixture)
        ));
    }
    out
}

fn write(m: &mut Machine, path: &str, value: &str) {
    if let Err(e) = m.sysfs_write(path, value, Caller::Client) {
        panic!("writing {value:?} to {path} failed: {e}");
    }
}

fn blocks(ids: std::ops::RangeInclusive<u64>, value: &str, m: &mut Machine) {
    for id in ids {
        write(
            m,
            &format!("/sys/devices/system/memory/memory{id}/state"),
            value,
        );
    }
}

fn check(m: &Machine, kind: &str, state: &str) {
    let d = diff(m, &fixtures().join(kind).join(state));
    assert!(
        d.is_empty(),
        "{kind}/{state} differs from the kernel:\n{}",
        d.join("\n")
    );
}

/// A machine with no kernel allocations pinning blocks, as in the short QEMU runs.
fn machine(preset: &str) -> Machine {
    let mut m = build_preset(preset, Flavour::Legacy, 1).expect("preset");
    m.kernel_alloc_per_mille = 0;
    m
}

#[test]
fn hmem_matches_the_kernel_at_every_captured_step() {
    let mut m = machine("hmem");
    check(&m, "hmem", "01-before-kmem");
    m.load_kmem(); // insmod kmem.ko: auto-binds under auto_online_blocks=online
    check(&m, "hmem", "02-kmem-auto-online");
    blocks(40..=47, "offline", &mut m);
    write(&mut m, "/sys/bus/dax/drivers/kmem/unbind", "dax0.0");
    write(
        &mut m,
        "/sys/devices/system/memory/auto_online_blocks",
        "offline",
    );
    write(&mut m, "/sys/bus/dax/drivers/kmem/bind", "dax0.0");
    check(&m, "hmem", "03-kmem-bound-offline");
    blocks(40..=47, "online_movable", &mut m);
    check(&m, "hmem", "04-online-movable");
    blocks(40..=40, "offline", &mut m);
    blocks(40..=40, "online_kernel", &mut m);
    check(&m, "hmem", "05-mixed-zones");
    blocks(40..=47, "offline", &mut m);
    write(&mut m, "/sys/bus/dax/drivers/kmem/unbind", "dax0.0");
    check(&m, "hmem", "06-removed");
    write(&mut m, "/sys/bus/dax/drivers/device_dax/new_id", "dax0.0");
    check(&m, "hmem", "07-devdax");
    write(&mut m, "/sys/bus/dax/drivers/device_dax/unbind", "dax0.0");
    write(
        &mut m,
        "/sys/bus/dax/drivers/device_dax/remove_id",
        "dax0.0",
    );
    write(&mut m, "/sys/bus/dax/drivers/kmem/bind", "dax0.0");
    blocks(40..=47, "online_movable", &mut m);
    blocks(40..=47, "offline", &mut m);
    blocks(40..=40, "online_movable", &mut m);
    check(&m, "hmem", "08-race-one-online-before-unbind");
    // The unbind write succeeds, and leaks the range.
    write(&mut m, "/sys/bus/dax/drivers/kmem/unbind", "dax0.0");
    check(&m, "hmem", "09-race-after-failed-unbind");
    blocks(40..=40, "offline", &mut m);
    check(&m, "hmem", "10-stuck-final");
}

#[test]
fn a_wrong_state_is_caught() {
    // The comparison is not vacuous: the machine at step 02 is not the kernel at step 04.
    let mut m = machine("hmem");
    m.load_kmem();
    let d = diff(&m, &fixtures().join("hmem/04-online-movable"));
    assert!(
        d.iter().any(|l| l.contains("memory40/valid_zones")),
        "{d:?}"
    );
    assert!(d.iter().any(|l| l.contains("auto_online_blocks")), "{d:?}");
}

#[test]
fn pmem_matches_the_kernel_at_every_captured_step() {
    let mut m = machine("pmem");
    check(&m, "e820", "01-before-kmem");
    write(&mut m, "/sys/bus/dax/drivers/device_dax/unbind", "dax0.0");
    write(
        &mut m,
        "/sys/devices/system/memory/auto_online_blocks",
        "offline",
    );
    write(&mut m, "/sys/bus/dax/drivers/kmem/new_id", "dax0.0");
    check(&m, "e820", "03-kmem-bound-offline");
    blocks(41..=47, "online_movable", &mut m);
    check(&m, "e820", "04-online-movable");
    blocks(41..=41, "offline", &mut m);
    blocks(41..=41, "online_kernel", &mut m);
    check(&m, "e820", "05-mixed-zones");
    blocks(41..=47, "offline", &mut m);
    write(&mut m, "/sys/bus/dax/drivers/kmem/unbind", "dax0.0");
    write(&mut m, "/sys/bus/dax/drivers/kmem/remove_id", "dax0.0");
    check(&m, "e820", "06-removed");
    write(&mut m, "/sys/bus/dax/drivers/device_dax/bind", "dax0.0");
    check(&m, "e820", "07-devdax");
    write(&mut m, "/sys/bus/dax/drivers/device_dax/unbind", "dax0.0");
    write(&mut m, "/sys/bus/dax/drivers/kmem/new_id", "dax0.0");
    blocks(41..=47, "online_movable", &mut m);
    blocks(41..=47, "offline", &mut m);
    blocks(41..=41, "online_movable", &mut m);
    check(&m, "e820", "08-race-one-online-before-unbind");
    write(&mut m, "/sys/bus/dax/drivers/kmem/unbind", "dax0.0");
    check(&m, "e820", "09-race-after-failed-unbind");
    blocks(41..=41, "offline", &mut m);
    check(&m, "e820", "10-stuck-final");
}

/// The `cxl` preset as the QEMU guest of `tests/e2e/run.sh cxl` has it before kmem loads:
/// the preset's dax0.0 is that guest's region0 device (same window, node, blocks 98-105,
/// provider path); its second device (dax1.0, two ranges on node 2) has no counterpart in
/// the guest and is taken out, and the preset boots with kmem bound where the guest loads
/// kmem later. The boot layout (q35's firmware ranges, the kernel image, node 0's memory) is
/// adopted from the capture, as the e2e agreement does.
fn cxl_guest() -> Machine {
    let mut m = machine("cxl");
    for (device, ids) in [("dax0.0", 98..=105), ("dax1.0", 106..=109)] {
        let present: Vec<u64> = ids.filter(|id| m.blocks.contains_key(id)).collect();
        for id in present {
            blocks(id..=id, "offline", &mut m);
        }
        write(&mut m, "/sys/bus/dax/drivers/kmem/unbind", device);
    }
    m.devices.retain(|d| d.name == "dax0.0");
    m.regions.retain(|r| r.id == 0);
    m.nodes.retain(|n| n.id != 2);
    m.blocks.retain(|_, b| b.owner.is_none());
    m.kmem_loaded = false;
    let capture = fixtures().join("cxl/01-before-kmem");
    let iomem = fs::read_to_string(capture.join("proc/iomem")).expect("iomem");
    let node0 =
        fs::read_to_string(capture.join("sys/devices/system/node/node0/meminfo")).expect("meminfo");
    let bytes = daxplug_abi::Meminfo::parse(&node0)
        .ok()
        .and_then(|i| i.mem_total())
        .expect("MemTotal");
    m.adopt_boot(&iomem, &[(0, bytes / 1024)])
        .expect("boot layout");
    m
}

/// The steps daxplug took in the cxl guest (Debian 6.12, legacy ABI) between the captures,
/// as the writes they amount to.
#[test]
fn cxl_matches_the_kernel_at_every_captured_step() {
    let aob = "/sys/devices/system/memory/auto_online_blocks";
    let mut m = cxl_guest();
    check(&m, "cxl", "01-before-kmem");
    write(&mut m, aob, "offline");
    m.load_kmem();
    write(&mut m, aob, "online");
    check(&m, "cxl", "02-kmem-bound-offline");
    // set online_movable: unbind, then bind with the online type applied inside the add.
    write(&mut m, "/sys/bus/dax/drivers/kmem/unbind", "dax0.0");
    write(&mut m, aob, "online_movable");
    write(&mut m, "/sys/bus/dax/drivers/kmem/bind", "dax0.0");
    write(&mut m, aob, "online");
    check(&m, "cxl", "03-online-movable");
    blocks(101..=101, "offline", &mut m);
    check(&m, "cxl", "04-one-block-offline");
    // set online_movable (the block onlined again), then set unplugged.
    blocks(101..=101, "online_movable", &mut m);
    blocks(98..=105, "offline", &mut m);
    write(&mut m, "/sys/bus/dax/drivers/kmem/unbind", "dax0.0");
    check(&m, "cxl", "05-unplugged");
    write(&mut m, "/sys/bus/dax/drivers/device_dax/new_id", "dax0.0");
    check(&m, "cxl", "06-devdax");
    // The stuck case: kmem bound under the offline policy, one block onlined, kmem unbound.
    write(&mut m, "/sys/bus/dax/drivers/device_dax/unbind", "dax0.0");
    write(&mut m, aob, "offline");
    write(&mut m, "/sys/bus/dax/drivers/kmem/new_id", "dax0.0");
    blocks(98..=98, "online_movable", &mut m);
    write(&mut m, "/sys/bus/dax/drivers/kmem/unbind", "dax0.0");
    check(&m, "cxl", "07-stuck");
}
