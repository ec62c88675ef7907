//! Part C of the kernel ABI spec on the `legacy` flavour: the values and errnos a real 6.12
//! kernel returned, and the unbind race with its stuck aftermath.

use daxplug_abi::BlockState;
use daxplug_kernel::Errno;
use daxplug_model::{Caller, Flavour, Machine, build_preset, check_invariants};

const M: &str = "/sys/devices/system/memory";
const KMEM: &str = "/sys/bus/dax/drivers/kmem";

fn write(m: &mut Machine, path: &str, value: &str) -> Result<(), Errno> {
    m.sysfs_write(path, value, Caller::Client)
}

fn state(m: &Machine, id: u64) -> String {
    m.sysfs_read(&format!("{M}/memory{id}/state"))
        .expect("state")
        .trim_end()
        .to_owned()
}

/// hmem with kmem bound and every block offline, as in fixture 03.
fn bound_offline() -> Machine {
    let mut m = build_preset("hmem", Flavour::Legacy, 11).expect("preset");
    m.kernel_alloc_per_mille = 0;
    write(&mut m, &format!("{M}/auto_online_blocks"), "offline").expect("policy");
    m.load_kmem();
    m
}

#[test]
fn block_state_errnos() {
    let mut m = bound_offline();
    let s = |id: u64| format!("{M}/memory{id}/state");
    assert_eq!(
        write(&mut m, &s(40), "offline"),
        Err(Errno::EINVAL),
        "already offline"
    );
    write(&mut m, &s(40), "online_movable").expect("online");
    assert_eq!(
        write(&mut m, &s(40), "online_movable"),
        Err(Errno::EINVAL),
        "already online"
    );
    assert_eq!(
        write(&mut m, &s(40), "online_kernel"),
        Err(Errno::EINVAL),
        "no zone change while online"
    );
    assert_eq!(write(&mut m, &s(40), "online"), Err(Errno::EINVAL));
    assert_eq!(write(&mut m, &s(41), "bogus"), Err(Errno::EINVAL));
    // Boot memory: memory0 spans DMA and DMA32, memory39 holds the memmap.
    assert_eq!(write(&mut m, &s(0), "offline"), Err(Errno::EINVAL));
    assert_eq!(
        m.sysfs_read(&format!("{M}/memory0/valid_zones")).as_deref(),
        Ok("none\n")
    );
    assert_eq!(write(&mut m, &s(39), "offline"), Err(Errno::EBUSY));
    assert!(m.dmesg.iter().any(|l| l.contains("unmovable page")));
    write(&mut m, &s(38), "offline").expect("ordinary boot RAM migrates");
    write(&mut m, &s(38), "online").expect("and comes back");
    assert_eq!(
        m.sysfs_read(&format!("{M}/memory38/valid_zones"))
            .as_deref(),
        Ok("Normal\n")
    );
}

#[test]
fn the_online_file_is_idempotent() {
    let mut m = bound_offline();
    let online = format!("{M}/memory42/online");
    write(&mut m, &online, "1").expect("online");
    write(&mut m, &online, "1").expect("already online is fine here");
    assert_eq!(state(&m, 42), "online");
    write(&mut m, &online, "0").expect("offline");
    write(&mut m, &online, "0").expect("already offline is fine here");
    assert_eq!(m.sysfs_read(&online).as_deref(), Ok("0\n"));
}

#[test]
fn valid_zones_as_the_kernel_prints_them() {
    let mut m = bound_offline();
    assert_eq!(
        m.sysfs_read(&format!("{M}/memory40/valid_zones"))
            .as_deref(),
        Ok("Normal Movable\n")
    );
    write(&mut m, &format!("{M}/memory41/state"), "online_movable").expect("online");
    // 40 is next to Movable but outside its span: plain online still picks Normal.
    assert_eq!(
        m.sysfs_read(&format!("{M}/memory40/valid_zones"))
            .as_deref(),
        Ok("Normal Movable\n")
    );
    write(&mut m, &format!("{M}/memory42/state"), "online_movable").expect("online");
    write(&mut m, &format!("{M}/memory44/state"), "online_movable").expect("online");
    // 43 lies inside the Movable span 41-44: plain online picks Movable.
    assert_eq!(
        m.sysfs_read(&format!("{M}/memory43/valid_zones"))
            .as_deref(),
        Ok("Movable Normal\n")
    );
    write(&mut m, &format!("{M}/memory43/state"), "online").expect("online");
    assert_eq!(
        m.sysfs_read(&format!("{M}/memory43/valid_zones"))
            .as_deref(),
        Ok("Movable\n")
    );
    // online_kernel above movable blocks is allowed: zones may interleave.
    write(&mut m, &format!("{M}/memory47/state"), "online_kernel").expect("online_kernel");
    assert_eq!(
        m.sysfs_read(&format!("{M}/memory47/valid_zones"))
            .as_deref(),
        Ok("Normal\n")
    );
}

#[test]
fn bus_errnos() {
    let mut m = bound_offline();
    assert_eq!(
        write(&mut m, &format!("{KMEM}/bind"), "dax0.0"),
        Err(Errno::EBUSY),
        "already bound"
    );
    assert_eq!(
        write(&mut m, &format!("{KMEM}/unbind"), "dax9.9"),
        Err(Errno::ENODEV)
    );
    assert_eq!(
        write(&mut m, "/sys/bus/dax/drivers/device_dax/unbind", "dax0.0"),
        Err(Errno::ENODEV),
        "bound to kmem"
    );
    assert_eq!(
        m.sysfs_read(&format!("{KMEM}/bind")),
        Err(Errno::EACCES),
        "write-only"
    );
    assert_eq!(
        m.sysfs_read("/sys/bus/dax/devices/dax0.0/mapping"),
        Err(Errno::EACCES),
        "write-only"
    );
    assert_eq!(
        write(&mut m, "/sys/bus/dax/devices/dax0.0/memmap_on_memory", "1"),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        write(&mut m, "/sys/bus/dax/devices/dax0.0/target_node", "0"),
        Err(Errno::EACCES),
        "read-only"
    );
    assert_eq!(
        write(&mut m, "/sys/bus/dax/devices/dax0.0/nope", "0"),
        Err(Errno::ENOENT)
    );
    assert!(
        !m.sysfs_exists("/sys/bus/dax/devices/dax0.0/state"),
        "no state file on 6.12"
    );
    assert!(!m.sysfs_exists("/sys/bus/dax/devices/dax0.0/hotplug"));

    // pmem: devdax-type region. kmem bind is ENODEV; new_id works.
    let mut p = build_preset("pmem", Flavour::Legacy, 11).expect("preset");
    write(&mut p, "/sys/bus/dax/drivers/device_dax/unbind", "dax0.0").expect("unbind");
    assert_eq!(
        write(&mut p, &format!("{KMEM}/bind"), "dax0.0"),
        Err(Errno::ENODEV)
    );
    write(&mut p, &format!("{KMEM}/new_id"), "dax0.0").expect("new_id binds");
    assert_eq!(
        p.sysfs_readlink("/sys/bus/dax/devices/dax0.0/driver")
            .as_deref(),
        Ok("../../../../../../../bus/dax/drivers/kmem")
    );
    // kmem rounds the start up: the first block of the range is lost.
    assert!(!p.blocks.contains_key(&40) && p.blocks.contains_key(&41));
}

#[test]
fn unbind_with_one_block_online_leaks_until_reboot() {
    let mut m = bound_offline();
    write(&mut m, &format!("{M}/memory40/state"), "online_movable").expect("online");
    let total = m.mem_total();
    write(&mut m, &format!("{KMEM}/unbind"), "dax0.0").expect("the unbind write succeeds");
    assert!(m.dmesg.iter().any(|l| l.contains(
        "removing memory fails, because memory [0x0000000140000000-0x0000000147ffffff] is onlined"
    )));
    assert!(
        m.dmesg
            .iter()
            .any(|l| l
                .contains("0x140000000-0x17fffffff cannot be hotremoved until the next reboot"))
    );
    assert!(
        m.sysfs_readlink("/sys/bus/dax/devices/dax0.0/driver")
            .is_err(),
        "no driver"
    );
    assert_eq!(
        (40..48).filter(|id| m.blocks.contains_key(id)).count(),
        8,
        "all blocks remain"
    );
    assert_eq!(state(&m, 40), "online");
    assert_eq!(m.mem_total(), total);
    let iomem = m.sysfs_read("/proc/iomem").expect("iomem");
    assert!(
        iomem.contains(
            "  140000000-17fffffff : dax0.0\n    140000000-17fffffff : System RAM (kmem)\n"
        )
    );
    // The orphaned blocks still answer to memoryN/state, but nothing can bind again.
    write(&mut m, &format!("{M}/memory40/state"), "offline").expect("offline still works");
    assert_eq!(
        write(&mut m, &format!("{KMEM}/bind"), "dax0.0"),
        Err(Errno::EBUSY)
    );
    assert!(
        m.dmesg
            .iter()
            .any(|l| l.contains("could not reserve region"))
    );
    write(&mut m, "/sys/bus/dax/drivers/device_dax/new_id", "dax0.0")
        .expect("new_id reports no probe error");
    assert_eq!(
        write(&mut m, "/sys/bus/dax/drivers/device_dax/bind", "dax0.0"),
        Err(Errno::EBUSY)
    );
    assert!(
        m.dmesg
            .iter()
            .any(|l| l.contains("could not reserve range"))
    );
    assert!(
        m.blocks
            .get(&40)
            .is_some_and(|b| b.state == BlockState::Offline)
    );
    assert!(check_invariants(&m).is_empty());
}

#[test]
fn clean_removal_after_offlining_everything() {
    let mut m = bound_offline();
    for id in 40..48 {
        write(&mut m, &format!("{M}/memory{id}/state"), "online_movable").expect("online");
    }
    for id in 40..48 {
        write(&mut m, &format!("{M}/memory{id}/state"), "offline").expect("offline");
    }
    write(&mut m, &format!("{KMEM}/unbind"), "dax0.0").expect("unbind");
    assert!(!m.blocks.contains_key(&40));
    assert!(
        !m.sysfs_exists("/sys/devices/system/node/node1"),
        "node 1 goes offline"
    );
    assert_eq!(
        m.sysfs_read("/sys/devices/system/node/online").as_deref(),
        Ok("0\n")
    );
    write(&mut m, &format!("{KMEM}/bind"), "dax0.0").expect("rebinds");
}

#[test]
fn uevents_for_blocks_and_devices() {
    let mut m = bound_offline();
    let adds = m
        .uevents
        .iter()
        .filter(|e| e.action == "add" && e.devpath.starts_with("/devices/system/memory/memory"))
        .count();
    assert_eq!(adds, 8);
    assert!(m.uevents.iter().any(|e| e.action == "bind" && e.vars.iter().any(|(k, v)| k == "DRIVER" && v == "kmem")));
    write(&mut m, &format!("{M}/memory40/state"), "online_movable").expect("online");
    assert_eq!(
        m.uevents
            .last()
            .map(|e| (e.action.as_str(), e.devpath.as_str())),
        Some(("online", "/devices/system/memory/memory40"))
    );
}
