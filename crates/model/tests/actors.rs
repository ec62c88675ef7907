//! The competing controllers and faults, one behaviour each.

use daxplug_abi::{OnlineType, Zone};
use daxplug_kernel::Errno;
use daxplug_model::{Actor, Caller, Flavour, Machine, build_preset, check_invariants, rhel_rule};

const M: &str = "/sys/devices/system/memory";

fn bound(flavour: Flavour, policy: &str, seed: u64) -> Machine {
    let mut m = build_preset("hmem", flavour, seed).expect("preset");
    m.kernel_alloc_per_mille = 0;
    m.sysfs_write(&format!("{M}/auto_online_blocks"), policy, Caller::Client)
        .expect("policy");
    m
}

fn zones(m: &Machine) -> Vec<Option<Zone>> {
    m.blocks
        .values()
        .filter(|b| b.owner.is_some())
        .map(|b| b.zone)
        .collect()
}

#[test]
fn rhel_rule_onlines_added_blocks() {
    for (vm, zone) in [(false, Zone::Movable), (true, Zone::Normal)] {
        let mut m = bound(Flavour::Legacy, "offline", 1);
        m.udev.rules.push(rhel_rule(vm));
        m.load_kmem();
        m.settle(1000);
        assert_eq!(zones(&m), vec![Some(zone); 8], "vm={vm}");
    }
}

#[test]
fn udev_stop_holds_rules_but_not_kata_agent() {
    let mut m = bound(Flavour::Legacy, "offline", 1);
    m.udev.rules.push(rhel_rule(false));
    m.udev.running = false;
    m.load_kmem();
    m.settle(1000);
    assert_eq!(zones(&m), vec![None; 8], "udev stopped: nothing onlined");
    m.udev.running = true;
    m.settle(1000);
    assert_eq!(zones(&m), vec![Some(Zone::Movable); 8]);

    let mut m = bound(Flavour::Legacy, "offline", 1);
    m.udev.running = false;
    m.actors.push(Actor::KataAgent { cursor: 0 });
    m.load_kmem();
    m.settle(1000);
    // kata-agent listens to netlink itself and writes `1` to `online`: plain online, Normal.
    assert_eq!(zones(&m), vec![Some(Zone::Normal); 8]);
}

#[test]
fn daxctl_like_pass_is_torn_by_a_faster_agent() {
    // A per-block onlining pass racing kata-agent: some seed ends with mixed zones.
    let mut torn = 0;
    for seed in 0..20 {
        let mut m = bound(Flavour::Legacy, "offline", seed);
        m.actors.push(Actor::KataAgent { cursor: 0 });
        m.load_kmem();
        m.actors.push(Actor::DaxctlLike {
            device: "dax0.0".into(),
            target: OnlineType::OnlineMovable,
            cursor: 0,
            done: false,
        });
        m.settle(10_000);
        let z = zones(&m);
        assert!(
            z.iter().all(Option::is_some),
            "seed {seed}: every block online"
        );
        if z.contains(&Some(Zone::Normal)) && z.contains(&Some(Zone::Movable)) {
            torn += 1;
        }
        assert!(check_invariants(&m).is_empty());
    }
    assert!(torn > 0, "the race shows up");
}

#[test]
fn tiering_slows_offlining() {
    let steps = |tiering: bool| {
        let mut m = bound(Flavour::Legacy, "online_movable", 5);
        m.load_kmem();
        if tiering {
            m.actors.push(Actor::Tiering { node: 1, passes: 3 });
            for _ in 0..50 {
                m.step();
            }
        }
        let before = m.client_steps;
        for id in 40..48 {
            m.sysfs_write(&format!("{M}/memory{id}/state"), "offline", Caller::Client)
                .expect("offline");
        }
        m.client_steps - before
    };
    assert!(
        steps(true) > steps(false),
        "{} vs {}",
        steps(true),
        steps(false)
    );
}

#[test]
fn an_admin_toggles_blocks() {
    let mut m = bound(Flavour::Legacy, "online_movable", 2);
    m.load_kmem();
    m.actors.push(Actor::Admin { per_mille: 1000 });
    for _ in 0..20 {
        m.step();
    }
    assert!(m.actor_log.len() >= 10, "{:?}", m.actor_log);
    assert!(check_invariants(&m).is_empty());
}

#[test]
fn a_block_offline_holds_the_lock_against_competitors() {
    let mut m = bound(Flavour::Legacy, "online_movable", 3);
    m.load_kmem();
    m.faults.slow_offline_passes = 5;
    m.max_interleave = 4;
    m.actors.push(Actor::Admin { per_mille: 1000 });
    let before = m.restarts;
    m.sysfs_write(&format!("{M}/memory40/state"), "offline", Caller::Client)
        .expect("offline");
    assert!(
        m.restarts > before,
        "the admin met the lock during the migration passes"
    );
}

#[test]
fn a_device_removed_under_us_leaks_what_is_online() {
    let mut m = bound(Flavour::Legacy, "online_movable", 4);
    m.load_kmem();
    m.faults.slow_offline_passes = 1;
    m.faults.remove_device_at = Some(("dax0.0".into(), m.client_steps + 4));
    let mut errors = Vec::new();
    for id in 40..48 {
        m.interleave();
        if let Err(e) = m.sysfs_write(&format!("{M}/memory{id}/state"), "offline", Caller::Client) {
            errors.push(e);
        }
    }
    assert!(m.device("dax0.0").is_none(), "gone from the bus");
    assert!(!m.sysfs_exists("/sys/bus/dax/devices/dax0.0"));
    // Blocks that were online at removal stay, with their range, until reboot.
    assert!(m.iomem().named("dax0.0").next().is_some());
    assert!(
        !m.blocks
            .values()
            .filter(|b| b.owner.is_some())
            .collect::<Vec<_>>()
            .is_empty()
    );
    assert!(
        errors.is_empty() || errors.iter().all(|e| *e == Errno::ENOENT),
        "{errors:?}"
    );
    assert!(
        check_invariants(&m).is_empty(),
        "{:?}",
        check_invariants(&m)
    );
    assert!(
        m.uevents
            .iter()
            .any(|e| e.action == "remove" && e.devpath.ends_with("dax0.0"))
    );
}
