//! Carving a dynamic region on the model: create, resize and destroy devices, bring a
//! multi-range device online and out again, on both kernel flavours, from a machine fresh
//! from boot (kmem not loaded).

mod common;

use common::TestHost;
use daxplug_abi::OnlineType;
use daxplug_engine::{
    LayoutChange, NewDevice, ObservedState, Options, Outcome, Report, Scope, Target, change_layout,
    create, discover, set,
};
use daxplug_model::{Flavour, Sim, build_preset, check_invariants};

const MIB: u64 = 1 << 20;

use common::quick as opts;

fn resize(size: u64, target: Target) -> LayoutChange {
    LayoutChange::Resize {
        size,
        align: None,
        target: Some(target),
    }
}

fn new(size: u64, target: Target) -> NewDevice {
    NewDevice {
        size: Some(size),
        align: None,
        target,
    }
}

fn state_and_size(host: &TestHost, name: &str) -> Option<(ObservedState, u64, usize)> {
    discover(&host.sim, &Scope::All)
        .expect("discover")
        .devices
        .into_iter()
        .find(|d| d.name == name)
        .map(|d| (d.state, d.size, d.mappings.len()))
}

fn done(r: &Report, what: &str) {
    assert_eq!(
        r.outcome,
        Outcome::Done,
        "{what}: {:?} {:?}",
        r.reason,
        r.actions
    );
}

#[test]
fn carve_a_region_and_move_a_two_range_device_whole() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        let mut m = build_preset("hmem", flavour, 4).expect("preset");
        m.kernel_alloc_per_mille = 0;
        let host = TestHost::new(Sim::new(m));
        let o = opts();
        let movable = Target::Online(OnlineType::OnlineMovable);
        let at = |s: &str| format!("{flavour:?}: {s}");

        let r =
            change_layout(&host, "dax0.0", resize(512 * MIB, Target::Unplugged), &o).expect("runs");
        done(&r, &at("shrink dax0.0"));
        assert_eq!(r.end_size, Some(512 * MIB));
        let r = create(&host, 0, new(256 * MIB, Target::Devdax), &o).expect("runs");
        done(&r, &at("create"));
        assert_eq!(r.device, "dax0.1");
        assert_eq!(
            state_and_size(&host, "dax0.1"),
            Some((ObservedState::Devdax, 256 * MIB, 1))
        );

        // kmem is loaded by this set; the other device stays devdax.
        done(
            &set(&host, "dax0.0", movable, &o).expect("runs"),
            &at("online"),
        );
        assert_eq!(
            state_and_size(&host, "dax0.1").map(|s| s.0),
            Some(ObservedState::Devdax)
        );
        let r = change_layout(&host, "dax0.0", resize(768 * MIB, movable), &o).expect("runs");
        assert_eq!(r.outcome, Outcome::Refused, "{}", at("resize while online"));
        assert!(
            r.reason
                .as_deref()
                .is_some_and(|w| w.contains("in the system")),
            "{r:?}"
        );

        // Out, grown into the space after dax0.1 (a second range), back in whole.
        done(
            &set(&host, "dax0.0", Target::Unplugged, &o).expect("runs"),
            &at("unplug"),
        );
        let r = change_layout(&host, "dax0.0", resize(768 * MIB, movable), &o).expect("runs");
        done(&r, &at("grow and online"));
        assert_eq!(
            state_and_size(&host, "dax0.0"),
            Some((ObservedState::OnlineMovable, 768 * MIB, 2))
        );
        done(
            &set(&host, "dax0.0", Target::Unplugged, &o).expect("runs"),
            &at("unplug two ranges"),
        );

        // Refusals: misaligned, more than the region has, a static region.
        let r = change_layout(&host, "dax0.1", resize(MIB, Target::Devdax), &o).expect("runs");
        assert_eq!(r.outcome, Outcome::Refused, "{r:?}");
        let r = create(&host, 0, new(512 * MIB, Target::Devdax), &o).expect("runs");
        assert_eq!(r.outcome, Outcome::Refused, "{r:?}");
        assert!(
            r.reason.as_deref().is_some_and(|w| w.contains("free")),
            "{r:?}"
        );

        // Destroy dax0.1 and make it again; device 0 stays at size 0.
        done(
            &change_layout(&host, "dax0.1", LayoutChange::Destroy, &o).expect("runs"),
            &at("destroy"),
        );
        assert_eq!(state_and_size(&host, "dax0.1"), None);
        let r = create(&host, 0, new(256 * MIB, movable), &o).expect("runs");
        done(&r, &at("create online"));
        assert_eq!(
            state_and_size(&host, "dax0.1"),
            Some((ObservedState::OnlineMovable, 256 * MIB, 1))
        );
        done(
            &change_layout(&host, "dax0.0", LayoutChange::Destroy, &o).expect("runs"),
            &at("destroy dax0.0"),
        );
        assert_eq!(
            state_and_size(&host, "dax0.0").map(|s| s.1),
            Some(0),
            "device 0 is kept, empty"
        );
        host.sim.with(|m| {
            assert!(check_invariants(m).is_empty(), "{:?}", check_invariants(m));
            assert!(m.drivers_autoprobe);
        });
    }
}

#[test]
fn a_static_region_cannot_be_carved() {
    let host = TestHost::new(Sim::new(
        build_preset("pmem", Flavour::Legacy, 1).expect("preset"),
    ));
    let r = create(&host, 0, new(256 * MIB, Target::Devdax), &opts()).expect("runs");
    assert_eq!(r.outcome, Outcome::Refused);
    assert!(
        r.reason.as_deref().is_some_and(|w| w.contains("static")),
        "{r:?}"
    );
    let r =
        change_layout(&host, "dax0.0", resize(256 * MIB, Target::Devdax), &opts()).expect("runs");
    assert_eq!(r.outcome, Outcome::Refused);
}

/// A resize that dies at any point is put right by recovery: the device is devdax, with
/// its old size or its new one.
#[test]
fn a_crash_during_a_resize_recovers() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        let mut points = 0;
        for k in 1.. {
            let mut m = build_preset("hmem", flavour, 4).expect("preset");
            m.kernel_alloc_per_mille = 0;
            let host = TestHost::new(Sim::new(m));
            done(
                &set(&host, "dax0.0", Target::Devdax, &opts()).expect("runs"),
                "to devdax",
            );
            let crashing = Options {
                test_hooks: daxplug_engine::TestHooks {
                    crash_at: Some(k),
                    ..Default::default()
                },
                ..opts()
            };
            let r = change_layout(
                &host,
                "dax0.0",
                resize(512 * MIB, Target::Devdax),
                &crashing,
            )
            .expect("runs");
            if r.reason.as_deref() != Some("simulated crash: the journal is left for recovery") {
                break;
            }
            points += 1;
            let out = daxplug_engine::recover(&host, &opts()).expect("recover");
            let (state, size, _) = state_and_size(&host, "dax0.0").expect("dax0.0");
            assert_eq!(
                state,
                ObservedState::Devdax,
                "{flavour:?} crash {k}: {out:?}"
            );
            assert!(
                size == 1024 * MIB || size == 512 * MIB,
                "{flavour:?} crash {k}: {size}"
            );
            host.sim
                .with(|m| assert!(check_invariants(m).is_empty(), "{:?}", check_invariants(m)));
        }
        assert!(points >= 3, "{flavour:?}: only {points} crash points");
    }
}
