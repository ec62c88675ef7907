//! Crash before every kernel write or udev action, then recover: the device ends consistent (where it started
//! or where it was going, never torn) and the machine-wide settings are restored.

mod common;

use common::harness::{Start, prepared, transitions};
use daxplug_engine::{JournalFile, ObservedState, Options, Scope, Target, discover, recover, set};
use daxplug_model::{Flavour, check_invariants};

fn start_target(s: Start) -> Target {
    match s {
        Start::NoKmem | Start::Unbound => Target::Unplugged,
        Start::Devdax => Target::Devdax,
        Start::Online(t) => Target::Online(t),
    }
}

#[test]
fn every_crash_point_recovers() {
    let mut crash_points = 0;
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        for (start, target) in transitions() {
            for k in 1.. {
                let host = prepared(flavour, 5, start);
                // Make the settings daxplug changes visible if they are not restored.
                host.sim.with(|m| m.udev.running = true);
                let before = host.sim.with(|m| {
                    (
                        m.auto_online_blocks,
                        m.online_policy,
                        m.auto_movable_numa_aware,
                    )
                });
                let opts = Options {
                    force: true,
                    test_hooks: daxplug_engine::TestHooks {
                        crash_at: Some(k),
                        ..Default::default()
                    },
                    settle: std::time::Duration::ZERO,
                    ..Options::default()
                };
                let r = set(&host, "dax0.0", target, &opts).expect("runs");
                if r.reason.as_deref() != Some("simulated crash: the journal is left for recovery")
                {
                    // Past the last crash point: the transition completed.
                    assert!(
                        k > 1,
                        "{flavour:?} {start} -> {target}: no crash point at all"
                    );
                    break;
                }
                crash_points += 1;
                let journals = JournalFile::list(host.run.path()).expect("journal dir");
                assert_eq!(journals.len(), 1, "the crash left its journal");
                let done = recover(
                    &host,
                    &Options {
                        settle: std::time::Duration::ZERO,
                        ..Options::default()
                    },
                )
                .expect("recover");
                assert_eq!(done.len(), 1, "{done:?}");
                let where_ =
                    format!("{flavour:?} {start} -> {target}, crash at point {k}: {done:?}");
                assert!(
                    JournalFile::list(host.run.path()).expect("dir").is_empty(),
                    "{where_}"
                );
                host.sim.with(|m| {
                    assert_eq!(
                        (
                            m.auto_online_blocks,
                            m.online_policy,
                            m.auto_movable_numa_aware
                        ),
                        before,
                        "{where_}"
                    );
                    assert!(m.udev.running, "{where_}");
                    m.max_interleave = 0;
                    assert!(
                        check_invariants(m).is_empty(),
                        "{where_}: {:?}",
                        check_invariants(m)
                    );
                });
                let state = discover(&host.sim, &Scope::All).expect("discover").devices[0].state;
                assert!(
                    target.satisfied_by(state) || start_target(start).satisfied_by(state),
                    "{where_}: ended {state}"
                );
                assert!(
                    !matches!(state, ObservedState::Mixed | ObservedState::Stuck),
                    "{where_}"
                );
            }
        }
    }
    eprintln!("{crash_points} crash points");
    // One point before every kernel write and udev action of every transition, and one
    // after the last (73 when written): far fewer means the hook stopped reaching them.
    assert!(
        crash_points > 65,
        "only {crash_points} crash points exercised"
    );
}

/// The same for a `set` that has to load kmem first: whatever point it dies at, recovery
/// leaves the bus's autoprobe and `auto_online_blocks` as they were, and the device
/// unbound or online_movable.
#[test]
fn a_crash_while_loading_kmem_recovers() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        let mut points = 0;
        for k in 1.. {
            let mut m = daxplug_model::build_preset("hmem", flavour, 5).expect("preset");
            m.kernel_alloc_per_mille = 0;
            let host = common::TestHost::new(daxplug_model::Sim::new(m));
            let before = host
                .sim
                .with(|m| (m.drivers_autoprobe, m.auto_online_blocks));
            let opts = Options {
                test_hooks: daxplug_engine::TestHooks {
                    crash_at: Some(k),
                    ..Default::default()
                },
                settle: std::time::Duration::ZERO,
                ..Options::default()
            };
            let target = Target::Online(daxplug_abi::OnlineType::OnlineMovable);
            let r = set(&host, "dax0.0", target, &opts).expect("runs");
            if r.reason.as_deref() != Some("simulated crash: the journal is left for recovery") {
                break;
            }
            points += 1;
            let done = recover(&host, &Options::default()).expect("recover");
            let at = format!("{flavour:?}, crash at point {k}: {done:?}");
            host.sim.with(|m| {
                assert_eq!((m.drivers_autoprobe, m.auto_online_blocks), before, "{at}");
                assert!(check_invariants(m).is_empty(), "{at}");
            });
            let state = discover(&host.sim, &Scope::All).expect("discover").devices[0].state;
            assert!(
                matches!(state, ObservedState::Unbound | ObservedState::OnlineMovable),
                "{at}: ended {state}"
            );
        }
        // Autoprobe off, the load, autoprobe back, then the hot-add's own points.
        assert!(points >= 4, "{flavour:?}: only {points} crash points");
    }
}
