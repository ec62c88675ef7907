//! The reliability harness: transitions against competing controllers and faults on the
//! model, for daxplug and for a daxctl-like per-block protocol (no lock, no fence, no
//! rollback), with every outcome classified.

#![allow(dead_code)]

use std::fmt;

use daxplug_abi::{BlockState, OnlineType};
use daxplug_engine::{ObservedState, Options, Outcome, Scope, Target, discover, set};
use daxplug_kernel::Kernel;
use daxplug_model::{Actor, Flavour, Machine, Sim, build_preset, rhel_rule};

use super::TestHost;

/// Where a transition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Unbound,
    Devdax,
    Online(OnlineType),
}

impl fmt::Display for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Start::Unbound => f.write_str("unbound"),
            Start::Devdax => f.write_str("devdax"),
            Start::Online(t) => write!(f, "{t}"),
        }
    }
}

/// The transitions of the issue: unbound/devdax to each online type, each online type to
/// unplugged and devdax, and between online types.
pub fn transitions() -> Vec<(Start, Target)> {
    use OnlineType::*;
    let mut v = Vec::new();
    for s in [Start::Unbound, Start::Devdax] {
        for t in [Online, OnlineKernel, OnlineMovable] {
            v.push((s, Target::Online(t)));
        }
    }
    for t in [Online, OnlineKernel, OnlineMovable] {
        v.push((Start::Online(t), Target::Unplugged));
        v.push((Start::Online(t), Target::Devdax));
    }
    v.push((Start::Online(OnlineMovable), Target::Online(OnlineKernel)));
    v.push((Start::Online(OnlineKernel), Target::Online(OnlineMovable)));
    v
}

/// A competing controller, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Competitor {
    None,
    RhelRule,
    RhelVm,
    Kata,
    DaxctlLike,
    Admin,
    Tiering,
    Reonliner,
    UdevKeepOnline,
    All,
}

pub const COMPETITORS: [Competitor; 10] = [
    Competitor::None,
    Competitor::RhelRule,
    Competitor::RhelVm,
    Competitor::Kata,
    Competitor::DaxctlLike,
    Competitor::Admin,
    Competitor::Tiering,
    Competitor::Reonliner,
    Competitor::UdevKeepOnline,
    Competitor::All,
];

impl fmt::Display for Competitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Competitor::None => "none",
            Competitor::RhelRule => "rhel udev rule",
            Competitor::RhelVm => "rhel udev rule (vm)",
            Competitor::Kata => "kata-agent",
            Competitor::DaxctlLike => "daxctl-like pass",
            Competitor::Admin => "admin toggling",
            Competitor::Tiering => "tiering daemon",
            Competitor::Reonliner => "re-onlining loop",
            Competitor::UdevKeepOnline => "udev rule onlining on offline",
            Competitor::All => "all together",
        })
    }
}

/// A fault, aimed at a step of the transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    BusyBlock,
    SlowOffline,
    Signal(u64),
    EnomemOnAdd,
    RemoveDevice(u64),
}

pub const FAULTS: [Fault; 9] = [
    Fault::None,
    Fault::BusyBlock,
    Fault::SlowOffline,
    Fault::Signal(1),
    Fault::Signal(4),
    Fault::Signal(9),
    Fault::EnomemOnAdd,
    Fault::RemoveDevice(2),
    Fault::RemoveDevice(6),
];

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::None => f.write_str("none"),
            Fault::BusyBlock => f.write_str("unmovable page"),
            Fault::SlowOffline => f.write_str("slow offlining"),
            Fault::Signal(n) => write!(f, "signal at step {n}"),
            Fault::EnomemOnAdd => f.write_str("ENOMEM on add"),
            Fault::RemoveDevice(n) => write!(f, "device removed at step {n}"),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// In the requested state.
    Reached,
    /// Back where it started, reported as rolled back (or refused, untouched).
    RolledBack,
    /// Stuck, reported as stuck, caused by the fault (the device was removed under us).
    StuckByFault,
    /// Stuck because of a competitor: reported, but not clean.
    Stuck,
    /// Torn (mixed), or a state neither started from nor asked for.
    Torn,
    /// The protocol reported one thing and the device is another.
    Lied,
}

impl Class {
    /// Whether daxplug's promise holds.
    pub fn acceptable(self) -> bool {
        matches!(
            self,
            Class::Reached | Class::RolledBack | Class::StuckByFault
        )
    }
}

fn machine(flavour: Flavour, seed: u64) -> Machine {
    let mut m = build_preset("hmem", flavour, seed).expect("preset");
    m.kmem_loaded = true;
    m.kernel_alloc_per_mille = 0;
    m
}

/// A machine with dax0.0 in `start`, quiet (no competitors, no faults yet).
pub fn prepared(flavour: Flavour, seed: u64, start: Start) -> TestHost {
    let host = TestHost::new(Sim::new(machine(flavour, seed)));
    let opts = Options {
        force: true,
        settle: std::time::Duration::ZERO,
        ..Options::default()
    };
    let target = match start {
        Start::Unbound => None,
        Start::Devdax => Some(Target::Devdax),
        Start::Online(t) => Some(Target::Online(t)),
    };
    if let Some(t) = target {
        let r = set(&host, "dax0.0", t, &opts).expect("prepare");
        assert!(
            t.satisfied_by(r.end.expect("end")),
            "preparing {start}: {r:?}"
        );
    }
    host.sim.with(|m| {
        m.settle(1000);
        m.kernel_alloc_per_mille = 10;
    });
    host
}

/// Adds competitors and arms the fault.
pub fn arm(host: &TestHost, competitor: Competitor, fault: Fault) {
    host.sim.with(|m| {
        let add = |m: &mut Machine, c: Competitor| match c {
            Competitor::None | Competitor::All => {}
            Competitor::RhelRule => m.udev.rules.push(rhel_rule(false)),
            Competitor::RhelVm => m.udev.rules.push(rhel_rule(true)),
            Competitor::Kata => {
                let cursor = m.uevents.last().map_or(1, |e| e.seq + 1);
                m.actors.push(Actor::KataAgent { cursor });
            }
            Competitor::DaxctlLike => m.actors.push(Actor::DaxctlLike {
                device: "dax0.0".into(),
                target: OnlineType::OnlineMovable,
                cursor: 0,
                done: false,
            }),
            // An admin acts now and then: about once in 300 scheduling points (a transition has a few hundred).
            Competitor::Admin => m.actors.push(Actor::Admin { per_mille: 3 }),
            Competitor::Tiering => m.actors.push(Actor::Tiering { node: 1, passes: 2 }),
            Competitor::Reonliner => m.actors.push(Actor::Reonliner {
                device: "dax0.0".into(),
                value: "online".into(),
            }),
            Competitor::UdevKeepOnline => m.udev.rules.push(daxplug_model::Rule {
                name: "keep-memory-online".into(),
                subsystem: daxplug_model::Subsystem::Memory,
                action: "offline".into(),
                if_offline: true,
                attr: "state".into(),
                value: "online".into(),
            }),
        };
        if competitor == Competitor::All {
            for c in [
                Competitor::RhelRule,
                Competitor::Kata,
                Competitor::DaxctlLike,
                Competitor::Admin,
                Competitor::Tiering,
            ] {
                add(m, c);
            }
        } else {
            add(m, competitor);
        }
        match fault {
            Fault::None => {}
            Fault::BusyBlock => {
                if let Some(b) = m.blocks.get_mut(&44) {
                    b.unmovable = true;
                } else {
                    m.faults.add_enomem = 0;
                }
            }
            Fault::SlowOffline => m.faults.slow_offline_passes = 6,
            Fault::Signal(n) => {
                let at = m.client_steps + n;
                m.faults.signal_at_steps.insert(at);
            }
            Fault::EnomemOnAdd => m.faults.add_enomem = 1,
            Fault::RemoveDevice(n) => {
                m.faults.remove_device_at = Some(("dax0.0".into(), m.client_steps + n))
            }
        }
    });
}

/// The device's state as the transition left it: the actors are frozen first, so that the
/// harness's own reads do not give them more chances to act.
fn observed(host: &TestHost) -> Option<ObservedState> {
    host.sim.with(|m| m.max_interleave = 0);
    discover(&host.sim, &Scope::All)
        .ok()?
        .devices
        .iter()
        .find(|d| d.name == "dax0.0")
        .map(|d| d.state)
}

fn start_state(start: Start) -> Target {
    match start {
        Start::Unbound => Target::Unplugged,
        Start::Devdax => Target::Devdax,
        Start::Online(t) => Target::Online(t),
    }
}

fn device_gone(host: &TestHost) -> bool {
    host.sim.with(|m| m.device("dax0.0").is_none())
}

/// Runs daxplug's transition and classifies the result.
pub fn run_daxplug(
    flavour: Flavour,
    seed: u64,
    start: Start,
    target: Target,
    competitor: Competitor,
    fault: Fault,
) -> (Class, String) {
    let host = prepared(flavour, seed, start);
    let aob = host.sim.with(|m| m.auto_online_blocks);
    arm(&host, competitor, fault);
    let opts = Options {
        force: true,
        max_rounds: 8,
        settle: std::time::Duration::ZERO,
        ..Options::default()
    };
    let r = set(&host, "dax0.0", target, &opts).expect("set runs");
    let gone = device_gone(&host);
    let end = if gone { None } else { observed(&host) };
    let settings_ok = host
        .sim
        .with(|m| m.auto_online_blocks == aob && m.udev.running);
    let detail = format!(
        "outcome {:?}, end {:?}, reason {:?}",
        r.outcome, end, r.reason
    );
    if !settings_ok {
        return (Class::Lied, format!("settings not restored: {detail}"));
    }
    if r.end != end && !gone {
        return (
            Class::Lied,
            format!("reported end {:?} but device is {end:?}: {detail}", r.end),
        );
    }
    let class = match (r.outcome, end) {
        (_, None) => Class::StuckByFault,
        (Outcome::Done | Outcome::NoChange, Some(e)) if target.satisfied_by(e) => Class::Reached,
        (Outcome::RolledBack | Outcome::Refused, Some(e)) if start_state(start).satisfied_by(e) => {
            Class::RolledBack
        }
        (Outcome::Stuck, Some(ObservedState::Stuck)) if matches!(fault, Fault::RemoveDevice(_)) => {
            Class::StuckByFault
        }
        (Outcome::Stuck, Some(ObservedState::Stuck)) => Class::Stuck,
        (Outcome::Failed, Some(e))
            if e != ObservedState::Mixed
                && e != ObservedState::Stuck
                && matches!(fault, Fault::RemoveDevice(_)) =>
        {
            Class::StuckByFault
        }
        (Outcome::Done | Outcome::NoChange | Outcome::RolledBack, _) => Class::Lied,
        _ => Class::Torn,
    };
    (class, detail)
}

/// A daxctl-like per-block protocol, the way `daxctl reconfigure-device`, `online-memory`
/// and `offline-memory` work: one pass over the blocks, the first hard error ends it, and
/// kmem is unbound only if every block read offline just before; but no lock, no udev
/// fence, no rollback, and the auto-online policy left as it is (`--force`).
pub fn naive(k: &dyn Kernel, target: Target) {
    let dev = "dax0.0";
    let blocks = |k: &dyn Kernel| -> Vec<(u64, BlockState)> {
        discover(k, &Scope::All)
            .ok()
            .and_then(|t| t.devices.into_iter().find(|d| d.name == dev))
            .map(|d| d.blocks.iter().map(|b| (b.id, b.state)).collect())
            .unwrap_or_default()
    };
    let driver = || {
        k.read_link(&format!("/sys/bus/dax/devices/{dev}/driver"))
            .ok()
            .and_then(|t| t.rsplit('/').next().map(str::to_owned))
    };
    // offline-memory: stop at the first block that will not go offline.
    let offline_memory = |k: &dyn Kernel| {
        for (id, state) in blocks(k) {
            if state != BlockState::Offline
                && k.write(
                    &format!("/sys/devices/system/memory/memory{id}/state"),
                    "offline",
                )
                .is_err()
                && blocks(k)
                    .iter()
                    .any(|(b, s)| *b == id && *s != BlockState::Offline)
            {
                return;
            }
        }
    };
    // reconfigure-device away from system-ram: refuses while any block is online.
    let unbind_kmem = |k: &dyn Kernel| {
        if blocks(k).iter().all(|(_, s)| *s == BlockState::Offline) {
            let _ = k.write("/sys/bus/dax/drivers/kmem/remove_id", dev);
            let _ = k.write("/sys/bus/dax/drivers/kmem/unbind", dev);
            true
        } else {
            false
        }
    };
    match target {
        Target::Online(t) => {
            if driver().as_deref() == Some("kmem") {
                offline_memory(k);
                if !unbind_kmem(k) {
                    return;
                }
            }
            if driver().as_deref() == Some("device_dax") {
                let _ = k.write("/sys/bus/dax/drivers/device_dax/remove_id", dev);
                let _ = k.write("/sys/bus/dax/drivers/device_dax/unbind", dev);
            }
            let _ = k.write("/sys/bus/dax/drivers/kmem/new_id", dev);
            let _ = k.write("/sys/bus/dax/drivers/kmem/bind", dev);
            // online-memory: online_movable, or `online` for --no-movable.
            let value = if t == OnlineType::OnlineKernel {
                "online"
            } else {
                "online_movable"
            };
            for (id, state) in blocks(k) {
                if state == BlockState::Offline {
                    let _ = k.write(
                        &format!("/sys/devices/system/memory/memory{id}/state"),
                        value,
                    );
                }
            }
        }
        Target::Unplugged => {
            offline_memory(k);
            unbind_kmem(k);
        }
        Target::Devdax => {
            if driver().as_deref() == Some("kmem") {
                offline_memory(k);
                if !unbind_kmem(k) {
                    return;
                }
            }
            let _ = k.write("/sys/bus/dax/drivers/device_dax/new_id", dev);
            let _ = k.write("/sys/bus/dax/drivers/device_dax/bind", dev);
        }
        // daxctl's famfs mode is not part of the naive protocol's schedules.
        Target::Famfs => {}
    }
}

/// Runs the naive protocol on the same schedule and classifies the result.
pub fn run_naive(
    flavour: Flavour,
    seed: u64,
    start: Start,
    target: Target,
    competitor: Competitor,
    fault: Fault,
) -> (Class, String) {
    let host = prepared(flavour, seed, start);
    arm(&host, competitor, fault);
    naive(&host.sim, target);
    if device_gone(&host) {
        return (Class::StuckByFault, "device removed".to_owned());
    }
    let end = observed(&host);
    let class = match end {
        Some(e) if target.satisfied_by(e) => Class::Reached,
        Some(e) if start_state(start).satisfied_by(e) => Class::RolledBack,
        Some(ObservedState::Stuck) if matches!(fault, Fault::RemoveDevice(_)) => {
            Class::StuckByFault
        }
        Some(ObservedState::Stuck) => Class::Stuck,
        _ => Class::Torn,
    };
    (class, format!("end {end:?}"))
}
