//! Every transition, on both kernel flavours, without competitors: the device ends where
//! asked, with the protocol expected, and the machine-wide settings untouched.

mod common;

use common::TestHost;
use daxplug_abi::OnlineType;
use daxplug_engine::{ObservedState, Options, Outcome, Protocol, Target, set};
use daxplug_kernel::Kernel as _;
use daxplug_model::{Flavour, Machine, Sim, build_preset, check_invariants};

/// A preset with kmem loaded but not auto-bound (hmem stays unbound, pmem on device_dax,
/// cxl as booted).
fn machine(preset: &str, flavour: Flavour) -> Machine {
    let mut m = build_preset(preset, flavour, 9).expect("preset");
    m.kernel_alloc_per_mille = 0;
    m.kmem_loaded = true;
    m
}

use common::quick;

/// The hmem preset with dax0.0 moved to online_movable by daxplug.
fn online_movable_hmem(flavour: Flavour) -> TestHost {
    let host = TestHost::new(Sim::new(machine("hmem", flavour)));
    set(
        &host,
        "dax0.0",
        Target::Online(OnlineType::OnlineMovable),
        &Options {
            settle: std::time::Duration::ZERO,
            ..Options::default()
        },
    )
    .expect("runs");
    host
}

const TARGETS: [&str; 5] = [
    "online_movable",
    "unplugged",
    "online",
    "devdax",
    "online_kernel",
];

#[test]
fn every_transition_reaches_its_target() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        for preset in ["hmem", "pmem", "cxl"] {
            let host = TestHost::new(Sim::new(machine(preset, flavour)));
            let aob = host.sim.with(|m| m.auto_online_blocks);
            let opts = Options {
                force: true,
                settle: std::time::Duration::ZERO,
                ..Options::default()
            };
            // A walk through every pair of targets.
            for from in TARGETS {
                for to in TARGETS {
                    for t in [from, to] {
                        let target: Target = t.parse().expect("target");
                        let r = set(&host, "dax0.0", target, &opts).expect("runs");
                        assert!(
                            matches!(r.outcome, Outcome::Done | Outcome::NoChange),
                            "{preset} {flavour:?} -> {t}: {:?} {:?}\n{:#?}",
                            r.outcome,
                            r.reason,
                            r.actions
                        );
                        assert!(
                            target.satisfied_by(r.end.expect("end")),
                            "{preset} {flavour:?} {t}: {:?}",
                            r.end
                        );
                        host.sim.with(|m| {
                            assert_eq!(m.auto_online_blocks, aob, "auto_online_blocks restored");
                            assert!(m.udev.running, "udev restarted");
                            assert!(check_invariants(m).is_empty(), "{:?}", check_invariants(m));
                        });
                    }
                }
            }
        }
    }
}

#[test]
fn the_protocol_follows_the_kernel() {
    let host = TestHost::new(Sim::new(machine("hmem", Flavour::Atomic)));
    let opts = Options::default();
    let r = set(
        &host,
        "dax0.0",
        Target::Online(OnlineType::OnlineMovable),
        &opts,
    )
    .expect("runs");
    // From unbound: hot-add with policy-at-bind works on both kernels.
    assert_eq!(r.protocol, Protocol::Fallback);
    let r = set(&host, "dax0.0", Target::Unplugged, &opts).expect("runs");
    assert_eq!(
        (r.protocol, r.outcome, r.end),
        (
            Protocol::Native,
            Outcome::Done,
            Some(ObservedState::Unplugged)
        )
    );
    assert_eq!(
        r.actions,
        vec!["echo unplugged > /sys/bus/dax/devices/dax0.0/state"]
    );

    let host = TestHost::new(Sim::new(machine("hmem", Flavour::Legacy)));
    set(
        &host,
        "dax0.0",
        Target::Online(OnlineType::OnlineMovable),
        &opts,
    )
    .expect("runs");
    let r = set(&host, "dax0.0", Target::Unplugged, &opts).expect("runs");
    assert_eq!(
        (r.protocol, r.outcome, r.end),
        (
            Protocol::Fallback,
            Outcome::Done,
            Some(ObservedState::Unbound)
        )
    );
}

#[test]
fn online_kernel_needs_force_and_dry_run_changes_nothing() {
    let host = TestHost::new(Sim::new(machine("hmem", Flavour::Legacy)));
    let r = set(
        &host,
        "dax0.0",
        Target::Online(OnlineType::OnlineKernel),
        &Options {
            settle: std::time::Duration::ZERO,
            ..Options::default()
        },
    )
    .expect("runs");
    assert_eq!(r.outcome, Outcome::Refused);
    assert!(r.reason.as_deref().is_some_and(|s| s.contains("--force")));
    let before = host
        .sim
        .with(|m| serde_json::to_string(&m.blocks).expect("json"));
    let r = set(
        &host,
        "dax0.0",
        Target::Online(OnlineType::OnlineMovable),
        &Options {
            dry_run: true,
            settle: std::time::Duration::ZERO,
            ..Options::default()
        },
    )
    .expect("runs");
    assert_eq!(r.outcome, Outcome::DryRun);
    assert_eq!(
        r.plan,
        vec![
            "echo online_movable > /sys/devices/system/memory/auto_online_blocks",
            "echo dax0.0 > /sys/bus/dax/drivers/kmem/bind",
            "echo online > /sys/devices/system/memory/auto_online_blocks",
            "verify: kmem bound",
            "verify: every block online as online_movable; write online_movable to any block left offline, move any in the wrong zone",
        ]
    );
    assert_eq!(
        host.sim
            .with(|m| serde_json::to_string(&m.blocks).expect("json")),
        before
    );
}

/// A device that was already mixed (a block moved to Normal by hand, and pinned there) and
/// fails to unplug is left exactly as it was: still reported torn (the exit code must say
/// the device needs attention), with a reason that says the transition did not tear it. On
/// the real Linux 7.3 kernel this is the atomic unplug's EBUSY.
#[test]
fn a_failed_unplug_of_an_already_mixed_device_says_it_was_mixed_before() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        let host = online_movable_hmem(flavour);
        let opts = Options {
            settle: std::time::Duration::ZERO,
            ..Options::default()
        };
        let block = "/sys/devices/system/memory/memory40/state";
        host.sim.write(block, "offline").expect("offline by hand");
        host.sim
            .write(block, "online_kernel")
            .expect("online_kernel by hand");
        host.sim
            .with(|m| m.blocks.get_mut(&40).expect("block").unmovable = true);
        let r = set(&host, "dax0.0", Target::Unplugged, &opts).expect("runs");
        assert_eq!(r.start, Some(ObservedState::Mixed), "{flavour:?}");
        assert_eq!(
            (r.outcome, r.end),
            (Outcome::Torn, Some(ObservedState::Mixed)),
            "{flavour:?}: {:?}",
            r.reason
        );
        assert!(
            r.reason
                .as_deref()
                .is_some_and(|s| s.contains("already mixed when the transition began")),
            "{flavour:?}: {:?}",
            r.reason
        );
    }
}

#[test]
fn a_busy_block_rolls_back_on_both_kernels() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        let host = online_movable_hmem(flavour);
        host.sim
            .with(|m| m.blocks.get_mut(&45).expect("block").unmovable = true);
        let r = set(
            &host,
            "dax0.0",
            Target::Unplugged,
            &Options {
                settle: std::time::Duration::ZERO,
                ..Options::default()
            },
        )
        .expect("runs");
        assert_eq!(
            r.outcome,
            Outcome::RolledBack,
            "{flavour:?}: {:?}",
            r.reason
        );
        assert_eq!(r.end, Some(ObservedState::OnlineMovable));
        assert!(
            r.reason
                .as_deref()
                .is_some_and(|s| s.contains("EBUSY") || s.contains("memory45")),
            "{:?}",
            r.reason
        );
    }
}

#[test]
fn a_timeout_interrupts_a_slow_offline_and_rolls_back() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        let host = online_movable_hmem(flavour);
        host.sim.with(|m| {
            m.faults.slow_offline_passes = 1_000_000;
            m.step_delay_us = 20;
        });
        let opts = Options {
            timeout: Some(std::time::Duration::from_millis(100)),
            settle: std::time::Duration::ZERO,
            ..Options::default()
        };
        let r = set(&host, "dax0.0", Target::Unplugged, &opts).expect("runs");
        assert_eq!(
            r.outcome,
            Outcome::RolledBack,
            "{flavour:?}: {:?} {:#?}",
            r.reason,
            r.actions
        );
        assert_eq!(r.end, Some(ObservedState::OnlineMovable));
        assert_eq!(r.reason.as_deref(), Some("the timeout expired"));
    }
}

#[test]
fn stuck_devices_are_refused() {
    let host = online_movable_hmem(Flavour::Legacy);
    host.sim.with(|m| {
        m.driver_unbind(daxplug_model::DaxDriver::Kmem, "dax0.0")
            .expect("unbind")
    });
    let r = set(
        &host,
        "dax0.0",
        Target::Unplugged,
        &Options {
            force: true,
            settle: std::time::Duration::ZERO,
            ..Options::default()
        },
    )
    .expect("runs");
    assert_eq!(r.outcome, Outcome::Stuck);
    assert_eq!(r.stuck_blocks, (40..48).collect::<Vec<_>>());
    assert!(r.reason.as_deref().is_some_and(|s| s.contains("reboot")));
}

#[test]
fn a_device_in_use_is_refused_without_force() {
    let mut m = build_preset("pmem", Flavour::Legacy, 1).expect("preset");
    m.dax_open.insert("dax0.0".into(), vec![4242]);
    let host = TestHost::new(Sim::new(m));
    let r = set(
        &host,
        "dax0.0",
        Target::Online(OnlineType::OnlineMovable),
        &Options {
            settle: std::time::Duration::ZERO,
            ..Options::default()
        },
    )
    .expect("runs");
    assert_eq!(r.outcome, Outcome::Refused);
    assert!(r.reason.as_deref().is_some_and(|s| s.contains("4242")));
    let r = set(
        &host,
        "dax0.0",
        Target::Online(OnlineType::OnlineMovable),
        &Options {
            force: true,
            settle: std::time::Duration::ZERO,
            ..Options::default()
        },
    )
    .expect("runs");
    assert_eq!(r.outcome, Outcome::Done);
}

/// A machine fresh from boot with kmem not loaded (hmem as QEMU boots it, pmem on
/// device_dax): `set` loads kmem itself, with the bus's autoprobe off so the load binds
/// nothing, and every setting ends as it was.
#[test]
fn kmem_is_loaded_without_binding_anything_else() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        for preset in ["hmem", "pmem"] {
            let mut m = build_preset(preset, flavour, 9).expect("preset");
            m.kernel_alloc_per_mille = 0;
            m.kmem_loaded = false;
            let before = (m.auto_online_blocks, m.drivers_autoprobe);
            let host = TestHost::new(Sim::new(m));
            let r = set(
                &host,
                "dax0.0",
                Target::Online(OnlineType::OnlineMovable),
                &quick(),
            )
            .expect("runs");
            let at = format!("{preset} {flavour:?}: {:?} {:?}", r.reason, r.actions);
            assert_eq!(r.outcome, Outcome::Done, "{at}");
            assert_eq!(r.end, Some(ObservedState::OnlineMovable), "{at}");
            assert!(r.actions.iter().any(|a| a == "modprobe kmem"), "{at}");
            host.sim.with(|m| {
                assert!(m.kmem_loaded, "{at}");
                assert_eq!((m.auto_online_blocks, m.drivers_autoprobe), before, "{at}");
                assert!(check_invariants(m).is_empty(), "{at}");
            });
        }
    }
}

/// A third driver: fsdev_dax (famfs). A device gets there from devdax or system RAM (through
/// the same release as devdax), loading the module first; it leaves only with --force, and
/// is never taken for devdax.
#[test]
fn famfs_is_a_state_of_its_own() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        let host = online_movable_hmem(flavour);
        let opts = quick();
        let r = set(&host, "dax0.0", Target::Famfs, &opts).expect("runs");
        assert_eq!(
            (r.outcome, r.end),
            (Outcome::Done, Some(ObservedState::Famfs)),
            "{flavour:?}: {r:?}"
        );
        assert!(r.actions.iter().any(|a| a == "modprobe fsdev_dax"), "{r:?}");
        let r = set(&host, "dax0.0", Target::Devdax, &opts).expect("runs");
        assert_eq!(r.outcome, Outcome::Refused, "{r:?}");
        assert!(
            r.reason.as_deref().is_some_and(|w| w.contains("famfs")),
            "{r:?}"
        );
        let forced = Options {
            force: true,
            ..opts.clone()
        };
        let r = set(
            &host,
            "dax0.0",
            Target::Online(OnlineType::OnlineMovable),
            &forced,
        )
        .expect("runs");
        assert_eq!(r.end, Some(ObservedState::OnlineMovable), "{r:?}");
        host.sim.with(|m| assert!(check_invariants(m).is_empty()));
    }
}

/// One block offlined by hand on a device online in Movable: the plan onlines that block and
/// touches nothing else (no release, no re-add that would migrate the healthy blocks).
#[test]
fn one_offline_block_is_repaired_alone() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        let host = online_movable_hmem(flavour);
        host.sim
            .with(|m| {
                m.sysfs_write(
                    "/sys/devices/system/memory/memory43/state",
                    "offline",
                    daxplug_model::Caller::Client,
                )
            })
            .expect("offline one block");
        let opts = quick();
        let dry = set(
            &host,
            "dax0.0",
            Target::Online(OnlineType::OnlineMovable),
            &Options {
                dry_run: true,
                ..opts.clone()
            },
        )
        .expect("runs");
        assert_eq!(dry.plan.len(), 1, "{flavour:?}: {:?}", dry.plan);
        let r = set(
            &host,
            "dax0.0",
            Target::Online(OnlineType::OnlineMovable),
            &opts,
        )
        .expect("runs");
        assert_eq!(r.end, Some(ObservedState::OnlineMovable), "{r:?}");
        assert_eq!(
            r.actions,
            vec!["echo online_movable > /sys/devices/system/memory/memory43/state".to_owned()],
            "{flavour:?}"
        );
    }
}

/// Plain `online` lets the kernel pick the zone: where that is a kernel zone (contig-zones,
/// the default) it is refused as online_kernel is, naming the zone; under auto-movable it
/// goes ahead into Movable.
#[test]
fn plain_online_into_a_kernel_zone_needs_force() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        let host = TestHost::new(Sim::new(machine("hmem", flavour)));
        let opts = quick();
        let online = Target::Online(OnlineType::Online);
        let r = set(&host, "dax0.0", online, &opts).expect("runs");
        assert_eq!(r.outcome, Outcome::Refused, "{flavour:?}: {r:?}");
        let why = r.reason.unwrap_or_default();
        assert!(
            why.contains("Normal") && why.contains("online_movable"),
            "{why}"
        );
        host.sim.with(|m| {
            m.online_policy = daxplug_abi::OnlinePolicy::AutoMovable;
            m.auto_movable_numa_aware = false;
        });
        let r = set(&host, "dax0.0", online, &opts).expect("runs");
        assert_eq!(
            r.end,
            Some(ObservedState::OnlineMovable),
            "{flavour:?}: {r:?}"
        );
    }
}

/// famfs on a machine fresh from boot (neither kmem nor fsdev_dax loaded): fsdev_dax is
/// loaded and checked for itself, whatever kmem is.
#[test]
fn famfs_on_a_fresh_machine_loads_fsdev_dax_alone() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        let mut m = build_preset("hmem", flavour, 9).expect("preset");
        m.kmem_loaded = false;
        let host = TestHost::new(Sim::new(m));
        let r = set(&host, "dax0.0", Target::Famfs, &quick()).expect("runs");
        assert_eq!(
            (r.outcome, r.end),
            (Outcome::Done, Some(ObservedState::Famfs)),
            "{flavour:?}: {r:?}"
        );
        host.sim.with(|m| assert!(m.fsdev_loaded && !m.kmem_loaded));
    }
}

/// Binding device_dax by `new_id` attaches it to every unbound device it then matches: with
/// other unbound devices about, `bind` is tried first (where device_dax matches every device
/// by itself, as on Linux 6.1, that binds this one only); here it fails with ENODEV, the
/// others are taken off the id list and `new_id` binds this device alone.
#[test]
fn binding_device_dax_leaves_the_other_unbound_devices_alone() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        let host = TestHost::new(Sim::new(machine("large", flavour)));
        let r = set(&host, "dax3.0", Target::Devdax, &quick()).expect("set");
        assert_eq!(r.end, Some(ObservedState::Devdax), "{r:?}");
        let tried: Vec<&String> = r
            .actions
            .iter()
            .filter(|a| a.contains("/sys/bus/dax/drivers/device_dax/"))
            .collect();
        // bind (ENODEV here), the seven other unbound devices off the id list, new_id.
        assert_eq!(tried.len(), 9, "{:?}", r.actions);
        assert!(
            tried[0].contains("device_dax/bind") && tried[0].contains("ENODEV"),
            "{tried:?}"
        );
        assert!(
            tried[1..8]
                .iter()
                .all(|a| a.contains("device_dax/remove_id")),
            "{tried:?}"
        );
        assert!(
            tried[8].contains("dax3.0 > /sys/bus/dax/drivers/device_dax/new_id"),
            "{tried:?}"
        );
        let unbound = daxplug_engine::discover(&host.sim, &daxplug_engine::Scope::All)
            .expect("discover")
            .devices
            .iter()
            .filter(|d| d.state == ObservedState::Unbound)
            .count();
        assert_eq!(unbound, 7, "{flavour:?}: another device was bound");
    }
}
