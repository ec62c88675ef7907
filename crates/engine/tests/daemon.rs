//! The daemon on the model: managed devices converge to policy while competitors act,
//! unmanaged ones are left alone, drift is restored or reported, and backoff stops a
//! ping-pong.

mod common;

use std::path::Path;
use std::time::Duration;

use common::TestHost;
use daxplug_engine::daemon::Daemon;
use daxplug_engine::plan::policy::Policy;
use daxplug_engine::{ObservedState, Scope, discover};
use daxplug_model::{Actor, Flavour, Sim, build_preset, rhel_rule};

fn policy(text: &str) -> Policy {
    Policy::parse(Path::new("test.toml"), text).expect("policy")
}

use common::quick as opts;

fn states(host: &TestHost) -> Vec<(String, ObservedState)> {
    host.sim.with(|m| m.max_interleave = 0);
    let v = discover(&host.sim, &Scope::All)
        .expect("discover")
        .devices
        .into_iter()
        .map(|d| (d.name.to_string(), d.state))
        .collect();
    host.sim.with(|m| m.max_interleave = 2);
    v
}

#[test]
fn managed_devices_converge_and_unmanaged_are_left_alone() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        let mut m = build_preset("large", flavour, 3).expect("preset");
        m.kernel_alloc_per_mille = 0;
        m.udev.rules.push(rhel_rule(true));
        let host = TestHost::new(Sim::new(m));
        let p = policy(
            "[[rule]]\nmatch = { target_node = 1 }\nstate = \"online_movable\"\n\n[[rule]]\nmatch = { name = \"dax2.0\" }\nstate = \"devdax\"\non_drift = \"report\"\n",
        );
        let mut d = Daemon::new(&host, p, opts());
        let decisions = d.apply(true).expect("apply");
        assert_eq!(decisions.len(), 3, "{decisions:?}");
        let s = states(&host);
        assert_eq!(s[0], ("dax0.0".into(), ObservedState::OnlineMovable));
        assert_eq!(s[1], ("dax1.0".into(), ObservedState::OnlineMovable));
        assert_eq!(s[2], ("dax2.0".into(), ObservedState::Devdax));
        assert!(
            s[3..].iter().all(|(_, st)| *st == ObservedState::Unbound),
            "unmanaged untouched: {s:?}"
        );
        // Nothing to do the second time.
        assert!(d.apply(false).expect("apply").is_empty());
    }
}

#[test]
fn drift_is_restored_or_reported() {
    let mut m = build_preset("hmem", Flavour::Legacy, 4).expect("preset");
    m.kmem_loaded = true;
    m.kernel_alloc_per_mille = 0;
    let host = TestHost::new(Sim::new(m));
    let mut d = Daemon::new(
        &host,
        policy("[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"online_movable\"\n"),
        opts(),
    );
    d.apply(false).expect("apply");
    // An admin offlines one block behind the daemon's back.
    host.sim
        .with(|m| {
            m.sysfs_write(
                "/sys/devices/system/memory/memory43/state",
                "offline",
                daxplug_model::Caller::Client,
            )
        })
        .expect("offline");
    let decisions = d.apply(false).expect("apply");
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(
        (decisions[0].from, decisions[0].result.as_str()),
        (ObservedState::Mixed, "done")
    );
    assert_eq!(states(&host)[0].1, ObservedState::OnlineMovable);
    assert_eq!(d.metrics.drift_events, 1);
    assert!(
        d.metrics
            .render()
            .contains("daxplug_device_state{device=\"dax0.0\",state=\"online_movable\"} 1")
    );

    // Drift again at once: backoff holds the daemon back instead of ping-ponging.
    host.sim
        .with(|m| {
            m.sysfs_write(
                "/sys/devices/system/memory/memory44/state",
                "offline",
                daxplug_model::Caller::Client,
            )
        })
        .expect("offline");
    let decisions = d.apply(false).expect("apply");
    assert_eq!(decisions[0].result, "backoff", "{decisions:?}");

    // A report-only rule only logs.
    d.set_policy(policy("[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"online_movable\"\non_drift = \"report\"\n"));
    d.apply(false).expect("apply");
    host.sim
        .with(|m| {
            m.sysfs_write(
                "/sys/devices/system/memory/memory45/state",
                "offline",
                daxplug_model::Caller::Client,
            )
        })
        .expect("offline");
    let decisions = d.apply(false).expect("apply");
    assert_eq!(decisions[0].result, "drift_reported", "{decisions:?}");
    assert_eq!(states(&host)[0].1, ObservedState::Mixed);
}

#[test]
fn competitors_cannot_keep_a_managed_device_torn() {
    let mut m = build_preset("hmem", Flavour::Legacy, 5).expect("preset");
    m.kmem_loaded = true;
    m.kernel_alloc_per_mille = 0;
    m.udev.rules.push(rhel_rule(true));
    m.actors.push(Actor::KataAgent { cursor: 0 });
    let host = TestHost::new(Sim::new(m));
    let mut d = Daemon::new(
        &host,
        policy(
            "[[rule]]\nmatch = { backing = \"hmem:0x140000000-0x17fffffff\" }\nstate = \"online_movable\"\n",
        ),
        opts(),
    );
    d.apply(false).expect("apply");
    host.sim
        .with(|m| m.actors.push(Actor::Admin { per_mille: 30 }));
    for _ in 0..30 {
        host.sim.with(|m| {
            for _ in 0..20 {
                m.step();
            }
        });
        d.apply(false).expect("apply");
        std::thread::sleep(Duration::from_millis(5));
    }
    host.sim.with(|m| m.actors.clear());
    std::thread::sleep(Duration::from_millis(1100));
    // Backoff may hold the last restore; once it expires the device converges.
    for _ in 0..8 {
        d.apply(false).expect("apply");
        if states(&host)[0].1 == ObservedState::OnlineMovable {
            break;
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    assert_eq!(states(&host)[0].1, ObservedState::OnlineMovable);
}

/// A device held for maintenance is left alone (logged once, counted in the metrics);
/// released, its rule applies afresh.
#[test]
fn held_devices_are_left_alone_until_released() {
    let mut m = build_preset("hmem", Flavour::Legacy, 2).expect("preset");
    m.kernel_alloc_per_mille = 0;
    let host = TestHost::new(Sim::new(m));
    let mut d = Daemon::new(
        &host,
        policy(
            "[[rule]]\nmatch = { backing = \"hmem:0x140000000-0x17fffffff\" }\nstate = \"online_movable\"\n",
        ),
        opts(),
    );
    let dev: daxplug_abi::DaxName = "dax0.0".parse().expect("name");
    daxplug_engine::rundir::holds::hold(host.run.path(), dev, "ops", None, Some("firmware".into()))
        .expect("hold");
    let decisions = d.apply(false).expect("apply");
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0].result, "held");
    assert_eq!(
        states(&host)[0].1,
        ObservedState::Unbound,
        "held: untouched"
    );
    assert!(d.metrics.render().contains("daxplug_held_devices 1"));
    // Logged once per hold.
    assert!(d.apply(false).expect("apply").is_empty());
    daxplug_engine::rundir::holds::release(host.run.path(), dev, Some("ops")).expect("release");
    let decisions = d.apply(false).expect("apply");
    assert_eq!(decisions[0].result, "done", "{decisions:?}");
    assert_eq!(states(&host)[0].1, ObservedState::OnlineMovable);
}

/// The daemon killed (SIGKILL: no cleanup) in the middle of a transition, at every point,
/// then started again: its first act is the recovery from the journal, and the device
/// ends where the rule wants it, with every setting put back.
#[test]
fn a_daemon_killed_mid_transition_recovers_first_when_restarted() {
    let rule = "[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"online_movable\"\n";
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        let mut crashed = 0;
        for at in 1.. {
            let mut m = build_preset("hmem", flavour, 4).expect("preset");
            m.kmem_loaded = false;
            m.kernel_alloc_per_mille = 0;
            let host = TestHost::new(Sim::new(m));
            let before = host
                .sim
                .with(|m| (m.auto_online_blocks, m.online_policy, m.drivers_autoprobe));
            let mut killed = opts();
            killed.test_hooks.crash_at = Some(at);
            let mut first = Daemon::new(&host, policy(rule), killed);
            let d = first.apply(false).expect("apply");
            let reason = d.first().and_then(|d| d.reason.clone()).unwrap_or_default();
            if !reason.contains("simulated crash") {
                assert!(at > 1, "{flavour:?}: no crash point");
                break;
            }
            crashed += 1;
            drop(first);
            let mut again = Daemon::new(&host, policy(rule), opts());
            let recovered = again.recover().expect("recover");
            assert_eq!(
                recovered.len(),
                1,
                "{flavour:?} crash at {at}: the restart recovers the one journal first: {recovered:?}"
            );
            again.apply(false).expect("apply after recovery");
            assert_eq!(
                states(&host)[0],
                ("dax0.0".into(), ObservedState::OnlineMovable),
                "{flavour:?} crash at {at}: {recovered:?}"
            );
            assert!(
                daxplug_engine::JournalFile::list(host.run.path())
                    .expect("journals")
                    .is_empty()
            );
            let after = host
                .sim
                .with(|m| (m.auto_online_blocks, m.online_policy, m.drivers_autoprobe));
            assert_eq!(
                before, after,
                "{flavour:?} crash at {at}: settings put back"
            );
        }
        assert!(crashed >= 3, "{flavour:?}: only {crashed} crash points");
    }
}

/// A machine whose devices come and go (create, destroy) does not grow the daemon: what it
/// keeps per device goes with the device.
#[test]
fn devices_that_leave_take_their_state_with_them() {
    let m = build_preset("cxl", Flavour::Atomic, 2).expect("preset");
    let host = TestHost::new(Sim::new(m));
    let mut d = Daemon::new(
        &host,
        policy("[[rule]]\nstate = \"online_movable\"\nmatch = { name = \"dax9.9\" }\n"),
        opts(),
    );
    d.apply(true).expect("apply");
    let present = d.metrics.devices.len();
    assert!(present > 0);
    let name = host
        .sim
        .with(|m| m.devices.last().map(|d| d.name.clone()))
        .expect("a device");
    host.sim.with(|m| m.remove_device(&name));
    d.apply(true).expect("apply");
    assert_eq!(
        d.metrics.devices.len(),
        present - 1,
        "{:?}",
        d.metrics.devices
    );
}

/// A fresh boot: kmem not loaded yet, and udev loading it for the device's modalias while
/// the daemon's first transition loads it too. Whoever wins, the device ends where the rule
/// wants it (or the decision says why not), and the bus's autoprobing is put back.
#[test]
fn kmem_loaded_by_udev_races_the_first_transition() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        for seed in 1..=12 {
            for delay in [0, 1, 3, 6, 12] {
                let mut m = build_preset("hmem", flavour, seed).expect("preset");
                m.kmem_loaded = false;
                m.kernel_alloc_per_mille = 0;
                m.actors.push(Actor::ModaliasLoad { delay });
                let host = TestHost::new(Sim::new(m));
                let p =
                    policy("[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"online_movable\"\n");
                let mut d = Daemon::new(&host, p, opts());
                let mut settled = false;
                for _ in 0..3 {
                    let decisions = d.apply(true).expect("apply");
                    settled = decisions.iter().all(|x| x.result.is_settled());
                    if settled {
                        break;
                    }
                    // Backoff does not hold a test: the next try is now.
                    d.skew += Duration::from_secs(120);
                }
                assert!(settled, "{flavour:?} seed {seed} delay {delay}");
                assert_eq!(
                    states(&host)[0],
                    ("dax0.0".into(), ObservedState::OnlineMovable),
                    "{flavour:?} seed {seed} delay {delay}"
                );
                assert!(host.sim.with(|m| m.drivers_autoprobe && m.kmem_loaded));
            }
        }
    }
}

/// Memory pinned in a kernel zone (installed on a running system whose kernel onlined it
/// into ZONE_NORMAL): the daemon says once that the rule waits for a reboot, publishes it,
/// and does not retry until the device changes.
#[test]
fn memory_pinned_in_a_kernel_zone_is_blocked_until_reboot_not_retried() {
    for flavour in [Flavour::Legacy, Flavour::Atomic] {
        let mut m = build_preset("hmem", flavour, 5).expect("preset");
        m.kernel_alloc_per_mille = 0;
        let host = TestHost::new(Sim::new(m));
        let set_kernel = daxplug_engine::Options {
            force: true,
            ..opts()
        };
        let r = daxplug_engine::set(
            &host,
            "dax0.0",
            daxplug_engine::Target::Online(daxplug_abi::OnlineType::OnlineKernel),
            &set_kernel,
        )
        .expect("set");
        assert_eq!(r.end, Some(ObservedState::OnlineKernel), "{r:?}");
        host.sim.with(|m| {
            for b in m.blocks.values_mut().filter(|b| b.owner.is_some()) {
                b.unmovable = true;
            }
        });
        let mut d = Daemon::new(
            &host,
            policy("[[rule]]\nmatch = { target_node = 1 }\nstate = \"online_movable\"\n"),
            opts(),
        );
        let decisions = d.apply(false).expect("apply");
        assert_eq!(decisions.len(), 1, "{decisions:?}");
        assert_eq!(decisions[0].result, "blocked_until_reboot", "{decisions:?}");
        let why = decisions[0].reason.clone().unwrap_or_default();
        assert!(
            why.contains("reboot") && why.contains("memhp_default_state=offline"),
            "{why}"
        );
        assert!(
            d.metrics
                .render()
                .contains("daxplug_device_blocked_until_reboot{device=\"dax0.0\"} 1")
        );
        let record =
            daxplug_engine::rundir::holds::running_daemon(host.run.path()).expect("registration");
        assert_eq!(record.blocked.len(), 1, "{record:?}");
        // No retry while nothing changes: passes are silent, and no transition runs.
        for _ in 0..3 {
            assert!(d.apply(false).expect("apply").is_empty());
        }
        assert_eq!(states(&host)[0].1, ObservedState::OnlineKernel);
        // The pages are freed and an admin offlines a block: the device changed, the
        // daemon tries again and gets there.
        host.sim.with(|m| {
            for b in m.blocks.values_mut() {
                b.unmovable = false;
            }
        });
        host.sim
            .with(|m| {
                m.sysfs_write(
                    "/sys/devices/system/memory/memory47/state",
                    "offline",
                    daxplug_model::Caller::Client,
                )
            })
            .expect("offline");
        let decisions = d.apply(false).expect("apply");
        assert_eq!(decisions[0].result, "done", "{flavour:?}: {decisions:?}");
        assert_eq!(states(&host)[0].1, ObservedState::OnlineMovable);
        assert!(
            d.metrics
                .render()
                .contains("daxplug_device_blocked_until_reboot{device=\"dax0.0\"} 0")
        );
    }
}

/// Behind a closed boot gate nothing binds on its own: the daemon binds what its rules
/// cover, admits every other device to the driver the kernel would have given it, once,
/// and leaves alone a device an operator unbinds later.
#[test]
fn behind_a_closed_gate_covered_devices_are_bound_by_the_rule_and_the_rest_admitted() {
    let mut m = build_preset("large", Flavour::Legacy, 3).expect("preset");
    m.kernel_alloc_per_mille = 0;
    let host = TestHost::new(Sim::new(m));
    let record = daxplug_engine::gate::close(
        &host.sim,
        host.run.path(),
        daxplug_engine::gate::ClosedBy::Boot,
    )
    .expect("close");
    assert!(record.bound_before.is_empty(), "{record:?}");
    // A device present when the gate closed was not kept unbound by it: never admitted.
    let mut d = Daemon::new(
        &host,
        policy("[[rule]]\nmatch = { target_node = 1 }\nstate = \"online_movable\"\n"),
        opts(),
    );
    d.apply(false).expect("apply");
    assert!(d.notes.is_empty(), "{:?}", d.notes);
    assert_eq!(states(&host)[2].1, ObservedState::Unbound);
    // At boot the gate closes before coldplug makes the devices appear: as if none was
    // present then.
    let file = daxplug_engine::rundir::gate(host.run.path());
    let mut r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("record")).expect("json");
    r["present"] = serde_json::json!([]);
    std::fs::write(&file, r.to_string()).expect("write");
    let mut d = Daemon::new(
        &host,
        policy("[[rule]]\nmatch = { target_node = 1 }\nstate = \"online_movable\"\n"),
        opts(),
    );
    d.apply(false).expect("apply");
    let notes = std::mem::take(&mut d.notes);
    let s = states(&host);
    assert_eq!(s[0].1, ObservedState::OnlineMovable, "{s:?}");
    assert_eq!(s[1].1, ObservedState::OnlineMovable, "{s:?}");
    // kmem takes the rest (kmem-type regions), as with autoprobe on, and
    // auto_online_blocks=offline leaves them offline.
    assert!(
        s[2..].iter().all(|(_, st)| *st == ObservedState::Offline),
        "{s:?}"
    );
    assert_eq!(notes.len(), 6, "{notes:?}");
    assert!(
        notes.iter().all(|n| n.contains("result=admitted")),
        "{notes:?}"
    );
    assert!(d.metrics.render().contains("daxplug_boot_gate_closed 1"));
    // An operator unbinds an admitted device: it stays unbound.
    host.sim
        .with(|m| {
            m.sysfs_write(
                "/sys/bus/dax/drivers/kmem/unbind",
                "dax7.0",
                daxplug_model::Caller::Client,
            )
        })
        .expect("unbind");
    d.apply(false).expect("apply");
    assert!(d.notes.is_empty(), "{:?}", d.notes);
    assert_eq!(states(&host)[7].1, ObservedState::Unbound);
    // Opened (the daemon stops): drivers_autoprobe is back as it was.
    d.open_gate().expect("open");
    assert_eq!(
        host.sim
            .with(|m| m.sysfs_read("/sys/bus/dax/drivers_autoprobe"))
            .expect("read"),
        "1\n"
    );
}

/// While another process's transition holds the system-wide lock the daemon reads nothing
/// (reading the memory tiers then can deadlock the kernel) and looks again shortly; once the
/// lock is free it acts.
#[test]
fn a_pass_waits_for_another_process_transition() {
    let mut m = build_preset("hmem", Flavour::Legacy, 2).expect("preset");
    m.kernel_alloc_per_mille = 0;
    let host = TestHost::new(Sim::new(m));
    let dir = host.run.path().join("daxplug");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let other = std::fs::File::create(dir.join("daxplug.lock")).expect("lock file");
    other.lock().expect("lock");
    let mut d = Daemon::new(
        &host,
        policy("[[rule]]\nmatch = { target_node = 1 }\nstate = \"online_movable\"\n"),
        opts(),
    );
    assert!(d.apply(false).expect("apply").is_empty());
    assert!(d.next_retry().is_some(), "no retry planned while busy");
    assert_eq!(states(&host)[0].1, ObservedState::Unbound);
    other.unlock().expect("unlock");
    let decisions = d.apply(false).expect("apply");
    assert_eq!(decisions[0].result, "done", "{decisions:?}");
    assert!(d.next_retry().is_none());
}
