//! Part D of the kernel ABI spec: the scenarios the atomic whole-device ABI (v7) must make
//! safe, each on the `atomic` flavour of the model.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use daxplug_abi::{BlockState, PhysRange, Zone};
use daxplug_kernel::{Errno, Kernel};
use daxplug_model::{
    Actor, Caller, Flavour, KmemState, Machine, Rule, Sim, Subsystem, build_preset,
    check_invariants,
};

const D: &str = "/sys/bus/dax/devices/dax0.0";
const M: &str = "/sys/devices/system/memory";
const GIB: u64 = 1 << 30;

fn machine(policy: &str) -> Machine {
    let mut m = build_preset("hmem", Flavour::Atomic, 7).expect("preset");
    m.kernel_alloc_per_mille = 0;
    write(&mut m, &format!("{M}/auto_online_blocks"), policy).expect("policy");
    m.load_kmem();
    m
}

fn write(m: &mut Machine, path: &str, value: &str) -> Result<(), Errno> {
    m.sysfs_write(path, value, Caller::Client)
}

fn read(m: &Machine, path: &str) -> String {
    m.sysfs_read(path)
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
        .trim_end()
        .to_owned()
}

fn state(m: &Machine) -> String {
    read(m, &format!("{D}/state"))
}

fn blocks_of(m: &Machine, dev: &str) -> Vec<(u64, BlockState, Option<Zone>)> {
    m.blocks
        .iter()
        .filter(|(_, b)| b.owner.as_deref() == Some(dev))
        .map(|(id, b)| (*id, b.state, b.zone))
        .collect()
}

fn iomem_has(m: &Machine, name: &str) -> bool {
    m.iomem().named(name).next().is_some()
}

fn healthy(m: &Machine) {
    let v = check_invariants(m);
    assert!(v.is_empty(), "invariants: {v:?}");
}

#[test]
fn d01_bind_with_movable_policy() {
    let base = build_preset("hmem", Flavour::Atomic, 7)
        .expect("preset")
        .mem_total();
    let m = machine("online_movable");
    assert_eq!(state(&m), "online_movable");
    let blocks = blocks_of(&m, "dax0.0");
    assert_eq!(blocks.len(), 8);
    assert!(
        blocks
            .iter()
            .all(|(_, s, z)| *s == BlockState::Online && *z == Some(Zone::Movable))
    );
    assert_eq!(read(&m, &format!("{M}/memory40/valid_zones")), "Movable");
    assert_eq!(m.mem_total(), base + GIB);
    healthy(&m);
}

#[test]
fn d02_bind_with_offline_policy() {
    let m = machine("offline");
    assert_eq!(state(&m), "offline");
    assert!(
        blocks_of(&m, "dax0.0")
            .iter()
            .all(|(_, s, _)| *s == BlockState::Offline)
    );
    assert_eq!(blocks_of(&m, "dax0.0").len(), 8);
}

#[test]
fn d03_bind_with_online_policy_follows_online_policy() {
    let m = machine("online");
    assert_eq!(state(&m), "online");
    // contig-zones on an empty node: the kernel zone.
    assert_eq!(read(&m, &format!("{M}/memory40/valid_zones")), "Normal");
    // auto-movable: Movable while the device fits within auto_movable_ratio of kernel
    // memory; NUMA-aware (the default), a CPU-less node with no kernel memory gets Normal.
    for (numa_aware, zone) in [("N", "Movable"), ("Y", "Normal")] {
        let mut m = build_preset("hmem", Flavour::Atomic, 7).expect("preset");
        write(
            &mut m,
            "/sys/module/memory_hotplug/parameters/online_policy",
            "auto-movable",
        )
        .expect("policy");
        write(
            &mut m,
            "/sys/module/memory_hotplug/parameters/auto_movable_numa_aware",
            numa_aware,
        )
        .expect("param");
        write(&mut m, &format!("{M}/auto_online_blocks"), "online").expect("policy");
        m.load_kmem();
        assert_eq!(state(&m), "online");
        assert_eq!(
            read(&m, &format!("{M}/memory40/valid_zones")),
            zone,
            "numa_aware={numa_aware}"
        );
    }
}

#[test]
fn d04_policy_is_resolved_at_each_bind() {
    let mut m = machine("offline");
    write(&mut m, &format!("{D}/state"), "unplugged").expect("unplug");
    write(&mut m, "/sys/bus/dax/drivers/kmem/unbind", "dax0.0").expect("unbind");
    write(&mut m, &format!("{M}/auto_online_blocks"), "online_movable").expect("policy");
    write(&mut m, "/sys/bus/dax/drivers/kmem/bind", "dax0.0").expect("bind");
    assert_eq!(state(&m), "online_movable");
}

#[test]
fn d05_atomic_unplug() {
    let base = build_preset("hmem", Flavour::Atomic, 7)
        .expect("preset")
        .mem_total();
    let mut m = machine("online_movable");
    write(&mut m, &format!("{D}/state"), "unplugged").expect("unplug");
    assert_eq!(state(&m), "unplugged");
    assert!(blocks_of(&m, "dax0.0").is_empty());
    assert!(!iomem_has(&m, "dax0.0") && !iomem_has(&m, "System RAM (kmem)"));
    assert_eq!(m.mem_total(), base);
    healthy(&m);
}

#[test]
fn d06_replug_three_times_returns_to_baseline() {
    let mut m = machine("offline");
    write(&mut m, &format!("{D}/state"), "unplugged").expect("unplug");
    let base = m.mem_total();
    for _ in 0..3 {
        write(&mut m, &format!("{D}/state"), "online_movable").expect("online");
        assert_eq!(m.mem_total(), base + GIB);
        assert!(iomem_has(&m, "System RAM (kmem)"));
        write(&mut m, &format!("{D}/state"), "unplugged").expect("unplug");
        assert_eq!(m.mem_total(), base);
        healthy(&m);
    }
}

#[test]
fn d07_idempotent_writes() {
    let mut m = machine("online_movable");
    let events = m.uevents.len();
    write(&mut m, &format!("{D}/state"), "online_movable").expect("same state");
    assert_eq!(m.uevents.len(), events, "nothing happened");
    write(&mut m, &format!("{D}/state"), "unplugged").expect("unplug");
    write(&mut m, &format!("{D}/state"), "unplugged\n").expect("same state");
    assert_eq!(state(&m), "unplugged");
}

#[test]
fn d08_no_type_switch_without_unplug() {
    let mut m = machine("online_movable");
    for other in ["online_kernel", "online"] {
        assert_eq!(
            write(&mut m, &format!("{D}/state"), other),
            Err(Errno::EBUSY)
        );
    }
    assert_eq!(state(&m), "online_movable");
    assert!(
        blocks_of(&m, "dax0.0")
            .iter()
            .all(|(_, _, z)| *z == Some(Zone::Movable))
    );
}

#[test]
fn d09_d10_offline_and_garbage_are_einval() {
    for policy in ["online_movable", "offline"] {
        let mut m = machine(policy);
        let before = state(&m);
        for bad in ["offline", "bogus", "unplug", ""] {
            assert_eq!(
                write(&mut m, &format!("{D}/state"), bad),
                Err(Errno::EINVAL),
                "{bad:?}"
            );
        }
        assert_eq!(state(&m), before);
    }
}

#[test]
fn d11_legacy_offline_device() {
    let mut m = machine("offline");
    assert_eq!(
        write(&mut m, &format!("{D}/state"), "online_movable"),
        Err(Errno::EBUSY)
    );
    write(&mut m, &format!("{D}/state"), "unplugged").expect("unplug");
    assert!(blocks_of(&m, "dax0.0").is_empty());
    write(&mut m, &format!("{D}/state"), "online_movable").expect("online");
    assert_eq!(state(&m), "online_movable");
}

/// The cxl preset's dax1.0 has two ranges; pin one page in the second and unplug.
fn all_or_nothing(first: &str) {
    let mut m = build_preset("cxl", Flavour::Atomic, 3).expect("preset");
    m.kernel_alloc_per_mille = 0;
    let d1 = "/sys/bus/dax/devices/dax1.0/state";
    if first != "online" {
        write(&mut m, d1, "unplugged").expect("unplug");
        write(&mut m, d1, first).expect("online");
    }
    let before = blocks_of(&m, "dax1.0");
    assert_eq!(before.len(), 8);
    let last = before.last().expect("blocks").0;
    m.blocks.get_mut(&last).expect("block").unmovable = true;
    let total = m.mem_total();
    assert_eq!(write(&mut m, d1, "unplugged"), Err(Errno::EBUSY));
    assert_eq!(
        blocks_of(&m, "dax1.0"),
        before,
        "every block back online in its zone"
    );
    assert_eq!(m.mem_total(), total);
    assert_eq!(read(&m, d1), first);
    assert!(
        m.dmesg
            .iter()
            .any(|l| l.contains("hotremove failed, device left online"))
    );
    healthy(&m);
}

#[test]
fn d12_unplug_is_all_or_nothing() {
    all_or_nothing("online");
    all_or_nothing("online_movable");
    all_or_nothing("online_kernel");
}

#[test]
fn d13_interrupted_unplug_rolls_back() {
    let mut m = machine("online_movable");
    m.faults.slow_offline_passes = 3;
    m.faults.signal_at_steps.insert(m.client_steps + 10);
    let before = blocks_of(&m, "dax0.0");
    assert_eq!(
        write(&mut m, &format!("{D}/state"), "unplugged"),
        Err(Errno::EINTR)
    );
    assert_eq!(blocks_of(&m, "dax0.0"), before);
    assert_eq!(state(&m), "online_movable");
    healthy(&m);
}

#[test]
fn d13_a_signal_from_another_thread_interrupts_the_write() {
    let mut m = machine("online_movable");
    m.faults.slow_offline_passes = 100_000;
    m.step_delay_us = 50;
    let sim = Arc::new(Sim::new(m));
    let signal = sim.signal_handle();
    let killer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        signal.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let err = sim
        .write(&format!("{D}/state"), "unplugged")
        .expect_err("interrupted");
    killer.join().expect("thread");
    assert_eq!(err.errno, Errno::EINTR);
    sim.with(|m| {
        assert!(
            blocks_of(m, "dax0.0")
                .iter()
                .all(|(_, s, z)| *s == BlockState::Online && *z == Some(Zone::Movable))
        );
        healthy(m);
    });
}

#[test]
fn d14_a_competing_controller_is_held_off_during_unplug() {
    let mut m = machine("online_movable");
    m.faults.slow_offline_passes = 4;
    m.max_interleave = 6;
    m.actors.push(Actor::Reonliner {
        device: "dax0.0".into(),
        value: "online_movable".into(),
    });
    m.check_each_step = true;
    write(&mut m, &format!("{D}/state"), "unplugged").expect("the unplug itself succeeds");
    assert!(m.restarts > 0, "the re-onliner met the lock");
    assert!(blocks_of(&m, "dax0.0").is_empty());
    m.settle(100);
    assert!(
        blocks_of(&m, "dax0.0").is_empty(),
        "nothing left for it to online"
    );
    assert!(m.violations.is_empty(), "{:?}", m.violations);
    healthy(&m);
}

#[test]
fn d15_udev_online_on_add_fails_harmlessly() {
    let mut m = machine("online_movable");
    write(&mut m, &format!("{D}/state"), "unplugged").expect("unplug");
    m.settle(1000);
    m.udev.rules.push(Rule {
        name: "online-on-add".into(),
        subsystem: Subsystem::Memory,
        action: "add".into(),
        if_offline: false,
        attr: "state".into(),
        value: "online".into(),
    });
    write(&mut m, &format!("{D}/state"), "online_movable").expect("online");
    m.settle(1000);
    assert_eq!(
        m.actor_log.iter().filter(|l| l.contains("EINVAL")).count(),
        8,
        "{:?}",
        m.actor_log
    );
    assert!(
        blocks_of(&m, "dax0.0")
            .iter()
            .all(|(_, _, z)| *z == Some(Zone::Movable))
    );
    assert_eq!(state(&m), "online_movable");
}

#[test]
fn d16_out_of_band_offline_then_unplug() {
    let mut m = machine("online_movable");
    write(&mut m, &format!("{M}/memory43/state"), "offline").expect("offline one");
    write(&mut m, &format!("{D}/state"), "unplugged").expect("unplug");
    assert!(blocks_of(&m, "dax0.0").is_empty());
    assert_eq!(state(&m), "unplugged");
}

#[test]
fn d17_stale_state_then_unbind_removes_everything() {
    let mut m = machine("online_movable");
    for id in 40..48 {
        write(&mut m, &format!("{M}/memory{id}/state"), "offline").expect("offline");
    }
    assert_eq!(state(&m), "online_movable", "the state file is stale");
    write(&mut m, "/sys/bus/dax/drivers/kmem/unbind", "dax0.0").expect("unbind");
    assert!(blocks_of(&m, "dax0.0").is_empty());
    assert!(!iomem_has(&m, "dax0.0"));
    write(&mut m, "/sys/bus/dax/drivers/kmem/bind", "dax0.0").expect("rebind");
    healthy(&m);
}

#[test]
fn d18_unbind_while_online_leaks_until_reboot() {
    let mut m = machine("online_movable");
    write(&mut m, "/sys/bus/dax/drivers/kmem/unbind", "dax0.0").expect("unbind cannot fail");
    assert_eq!(blocks_of(&m, "dax0.0").len(), 8);
    assert!(
        blocks_of(&m, "dax0.0")
            .iter()
            .all(|(_, s, _)| *s == BlockState::Online)
    );
    assert!(
        m.dmesg
            .iter()
            .any(|l| l.contains("stuck online until reboot"))
    );
    assert!(iomem_has(&m, "System RAM (kmem)"));
    assert!(!m.sysfs_exists(&format!("{D}/state")));
    assert_eq!(
        write(&mut m, "/sys/bus/dax/drivers/kmem/bind", "dax0.0"),
        Err(Errno::EBUSY)
    );
    healthy(&m);
}

#[test]
fn d19_unbind_while_unplugged_is_clean() {
    let mut m = machine("online_movable");
    write(&mut m, &format!("{D}/state"), "unplugged").expect("unplug");
    write(&mut m, "/sys/bus/dax/drivers/kmem/unbind", "dax0.0").expect("unbind");
    assert!(!m.sysfs_exists(&format!("{D}/state")));
    assert!(!iomem_has(&m, "dax0.0"));
    assert!(m.device("dax0.0").is_some_and(|d| d.leaked.is_empty()));
}

#[test]
fn d20_state_exists_only_while_kmem_is_bound() {
    let mut m = build_preset("pmem", Flavour::Atomic, 7).expect("preset");
    assert!(!m.sysfs_exists(&format!("{D}/state")), "device_dax bound");
    write(&mut m, "/sys/bus/dax/drivers/device_dax/unbind", "dax0.0").expect("unbind");
    write(&mut m, "/sys/bus/dax/drivers/kmem/new_id", "dax0.0").expect("new_id");
    assert!(m.sysfs_exists(&format!("{D}/state")));
    let legacy = {
        let mut l = build_preset("hmem", Flavour::Legacy, 7).expect("preset");
        l.load_kmem();
        l
    };
    assert!(
        !legacy.sysfs_exists(&format!("{D}/state")),
        "never on the legacy flavour"
    );
}

#[test]
fn d21_total_hot_add_failure_leaves_nothing_behind() {
    let mut m = machine("offline");
    write(&mut m, &format!("{D}/state"), "unplugged").expect("unplug");
    m.faults.add_enomem = 1;
    assert_eq!(
        write(&mut m, &format!("{D}/state"), "online_movable"),
        Err(Errno::ENOMEM)
    );
    assert_eq!(state(&m), "unplugged");
    assert!(!iomem_has(&m, "dax0.0"));
    // A conflicting resource: the first range cannot be reserved.
    m.orphans.push((
        "dax9.9".into(),
        PhysRange::new(0x1_4000_0000, 0x1_47ff_ffff).expect("range"),
    ));
    assert_eq!(
        write(&mut m, &format!("{D}/state"), "online_movable"),
        Err(Errno::EBUSY)
    );
    assert_eq!(state(&m), "unplugged");
    assert!(!iomem_has(&m, "dax0.0"));
    m.orphans.clear();
    write(&mut m, &format!("{D}/state"), "online_movable").expect("now it works");
}

#[test]
fn d22_concurrent_writers_are_serialized() {
    let mut m = machine("online_movable");
    m.faults.slow_offline_passes = 20;
    m.step_delay_us = 200;
    let sim = Arc::new(Sim::new(m));
    let first = {
        let sim = Arc::clone(&sim);
        thread::spawn(move || sim.write(&format!("{D}/state"), "unplugged"))
    };
    thread::sleep(Duration::from_millis(5));
    // Waits for the first writer, then sees `unplugged`: a no-op.
    sim.write(&format!("{D}/state"), "unplugged")
        .expect("second writer");
    first.join().expect("thread").expect("first writer");
    sim.with(|m| {
        assert_eq!(
            m.device("dax0.0")
                .and_then(|d| d.kmem.as_ref())
                .map(|k| k.state),
            Some(KmemState::Unplugged)
        )
    });
}

#[test]
fn d23_no_hotremove_support() {
    let mut m = machine("online_movable");
    m.hotremove = false;
    assert_eq!(
        write(&mut m, &format!("{D}/state"), "unplugged"),
        Err(Errno::EBUSY)
    );
    assert_eq!(state(&m), "online_movable");
}

#[test]
fn d24_memmap_on_memory() {
    let mut m = build_preset("hmem", Flavour::Atomic, 7).expect("preset");
    let mm = format!("{D}/memmap_on_memory");
    // Unsupported while memory_hotplug.memmap_on_memory=N.
    assert_eq!(write(&mut m, &mm, "1"), Err(Errno::EOPNOTSUPP));
    m.memmap_on_memory = daxplug_abi::MemmapOnMemory::Enabled;
    write(&mut m, &mm, "1").expect("set while unbound");
    write(&mut m, &format!("{M}/auto_online_blocks"), "online_movable").expect("policy");
    m.load_kmem();
    assert_eq!(state(&m), "online_movable");
    assert_eq!(write(&mut m, &mm, "0"), Err(Errno::EBUSY));
    write(&mut m, &format!("{D}/state"), "unplugged").expect("unplug");
    write(&mut m, &format!("{D}/state"), "online_movable").expect("online");
    assert_eq!(read(&m, &mm), "1");
}
