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
    /// Unbound, kmem not loaded yet (a fresh boot): daxplug loads it.
    NoKmem,
    Unbound,
    Devdax,
    Online(OnlineType),
}

impl fmt::Display for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Start::NoKmem => f.write_str("unbound, no kmem"),
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
    // The lifecycle's first step: kmem loaded by daxplug itself.
    v.push((Start::NoKmem, Target::Online(OnlineMovable)));
    v.push((Start::NoKmem, Target::Online(Online)));
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
    KmemAutoload,
    UeventStorm,
    All,
}

pub const COMPETITORS: [Competitor; 12] = [
    Competitor::None,
    Competitor::RhelRule,
    Competitor::RhelVm,
    Competitor::Kata,
    Competitor::DaxctlLike,
    Competitor::Admin,
    Competitor::Tiering,
    Competitor::Reonliner,
    Competitor::UdevKeepOnline,
    Competitor::KmemAutoload,
    Competitor::UeventStorm,
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
            Competitor::KmemAutoload => "kmem loaded by udev (modalias)",
            Competitor::UeventStorm => "uevent storm",
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
    /// Killed (SIGKILL, no cleanup) right before the Nth kernel write, then started again:
    /// the next `set` recovers from the journal before anything else.
    Crash(usize),
    /// The journal's filesystem is full (`ENOSPC`, from the kernel's `/dev/full`).
    JournalFull,
    /// The journal's filesystem is read-only (`EROFS`).
    JournalReadOnly,
}

pub const FAULTS: [Fault; 14] = [
    Fault::None,
    Fault::BusyBlock,
    Fault::SlowOffline,
    Fault::Signal(1),
    Fault::Signal(4),
    Fault::Signal(9),
    Fault::EnomemOnAdd,
    Fault::RemoveDevice(2),
    Fault::RemoveDevice(6),
    Fault::Crash(2),
    Fault::Crash(5),
    Fault::Crash(11),
    Fault::JournalFull,
    Fault::JournalReadOnly,
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
            Fault::Crash(n) => write!(f, "killed before write {n}, restarted"),
            Fault::JournalFull => f.write_str("journal filesystem full"),
            Fault::JournalReadOnly => f.write_str("journal filesystem read-only"),
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
    if start == Start::NoKmem {
        host.sim.with(|m| m.kmem_loaded = false);
    }
    let target = match start {
        Start::NoKmem | Start::Unbound => None,
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
            Competitor::KmemAutoload => {
                let delay = m.rng.below(6) as u32;
                m.actors.push(Actor::ModaliasLoad { delay });
            }
            Competitor::UeventStorm => m.actors.push(Actor::UeventStorm { per_step: 20 }),
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
                Competitor::KmemAutoload,
                Competitor::UeventStorm,
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
            // Not the kernel's faults: see `options`.
            Fault::Crash(_) | Fault::JournalFull | Fault::JournalReadOnly => {}
        }
    });
    if fault == Fault::JournalFull {
        // Every write of the journal lands on the kernel's full device: ENOSPC.
        let dir = daxplug_engine::rundir::dir(host.run.path());
        std::fs::create_dir_all(&dir).expect("journal dir");
        std::os::unix::fs::symlink("/dev/full", dir.join("journal-dax0.0.json.tmp"))
            .expect("link to /dev/full");
    }
}

/// daxplug's options for a run with `fault`.
fn options(fault: Fault) -> Options {
    let mut opts = Options {
        force: true,
        max_rounds: 8,
        settle: std::time::Duration::ZERO,
        ..Options::default()
    };
    match fault {
        Fault::Crash(n) => opts.test_hooks.crash_at = Some(n),
        Fault::JournalReadOnly => opts.test_hooks.journal_errno = Some(30), // EROFS
        _ => {}
    }
    opts
}

/// The machine-wide settings a transition may change and must put back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    auto_online_blocks: daxplug_abi::OnlineType,
    online_policy: daxplug_abi::OnlinePolicy,
    numa_aware: bool,
    drivers_autoprobe: bool,
    udev_running: bool,
}

fn settings(host: &TestHost) -> Settings {
    host.sim.with(|m| Settings {
        auto_online_blocks: m.auto_online_blocks,
        online_policy: m.online_policy,
        numa_aware: m.auto_movable_numa_aware,
        drivers_autoprobe: m.drivers_autoprobe,
        udev_running: m.udev.running,
    })
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
        Start::NoKmem | Start::Unbound => Target::Unplugged,
        Start::Devdax => Target::Devdax,
        Start::Online(t) => Target::Online(t),
    }
}

fn device_gone(host: &TestHost) -> bool {
    host.sim.with(|m| m.device("dax0.0").is_none())
}

/// Why a report is untrue of the device it describes, if it is: every field a script or
/// an operator acts on (the outcome, hence the exit code; the end state; the stuck blocks;
/// the reason) is held to the device as the harness finds it.
pub fn untrue(
    r: &daxplug_engine::Report,
    target: Target,
    end: Option<ObservedState>,
) -> Option<String> {
    if r.end != end {
        return Some(format!(
            "reported end {:?} but the device is {end:?}",
            r.end
        ));
    }
    let needs_reason = !matches!(r.outcome, Outcome::Done | Outcome::NoChange);
    if needs_reason && r.reason.as_deref().is_none_or(str::is_empty) {
        return Some(format!("{:?} without a reason", r.outcome));
    }
    let ok = match (r.outcome, end) {
        (Outcome::Done | Outcome::NoChange, Some(e)) => target.satisfied_by(e),
        // Back as daxplug found it: a controller may have changed the device between the
        // schedule's start and daxplug's first look, which the report's start then shows.
        (Outcome::RolledBack | Outcome::Refused, Some(e)) => r.start.is_none_or(|s| s == e),
        (Outcome::Torn, Some(e)) => e == ObservedState::Mixed,
        (Outcome::Stuck, Some(e)) => e == ObservedState::Stuck && !r.stuck_blocks.is_empty(),
        // Failed: the device is somewhere the report names, neither asked for nor mixed.
        (Outcome::Failed, Some(e)) => {
            !target.satisfied_by(e) && e != ObservedState::Mixed && e != ObservedState::Stuck
        }
        // Gone from the bus: only a failure may say so.
        (Outcome::Failed, None) => true,
        (_, None) => false,
        (Outcome::DryRun, _) => false,
    };
    (!ok).then(|| format!("{:?} while the device is {end:?}", r.outcome))
}

/// Runs daxplug's transition and classifies the result, with the reports (the first run's,
/// if it was killed, and the judged one) for a replay to show. A run killed by the fault is
/// started again, as a restarted daemon or a repeated command would be, and the restart's
/// report is the one judged (it must say it recovered the journal).
pub fn run_daxplug_traced(
    flavour: Flavour,
    seed: u64,
    start: Start,
    target: Target,
    competitor: Competitor,
    fault: Fault,
) -> (Class, String, Vec<daxplug_engine::Report>) {
    let host = prepared(flavour, seed, start);
    let before = settings(&host);
    arm(&host, competitor, fault);
    let mut opts = options(fault);
    let mut r = set(&host, "dax0.0", target, &opts).expect("set runs");
    let mut reports = Vec::new();
    let mut restarted = false;
    if r.reason.as_deref() == Some("simulated crash: the journal is left for recovery") {
        restarted = true;
        opts.test_hooks = Default::default();
        reports.push(r);
        r = set(&host, "dax0.0", target, &opts).expect("set runs after the crash");
    }
    let gone = device_gone(&host);
    let end = if gone { None } else { observed(&host) };
    let detail = format!(
        "outcome {:?}, end {:?}, reason {:?}{}",
        r.outcome,
        end,
        r.reason,
        if restarted { ", after a restart" } else { "" }
    );
    if settings(&host) != before {
        let why = format!(
            "settings not restored ({before:?} -> {:?}): {detail}",
            settings(&host)
        );
        reports.push(r);
        return (Class::Lied, why, reports);
    }
    if restarted && r.recovered.is_empty() {
        reports.push(r);
        return (
            Class::Lied,
            format!("the restart did not recover the journal: {detail}"),
            reports,
        );
    }
    if let Some(why) = untrue(&r, target, end) {
        reports.push(r);
        return (Class::Lied, format!("{why}: {detail}"), reports);
    }
    let class = match (r.outcome, end) {
        (_, None) => Class::StuckByFault,
        (Outcome::Done | Outcome::NoChange, _) => Class::Reached,
        (Outcome::RolledBack | Outcome::Refused, _) => Class::RolledBack,
        (Outcome::Stuck, _) if matches!(fault, Fault::RemoveDevice(_)) => Class::StuckByFault,
        (Outcome::Stuck, _) => Class::Stuck,
        (Outcome::Failed, _) if matches!(fault, Fault::RemoveDevice(_)) => Class::StuckByFault,
        _ => Class::Torn,
    };
    reports.push(r);
    (class, detail, reports)
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
    if start == Start::NoKmem {
        // daxctl runs `modprobe kmem` as the bus autoprobes: kmem binds at once.
        host.sim.with(|m| m.load_kmem());
    }
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

impl Fault {
    /// Whether the fault is daxplug's own (its process or its journal), which a per-block
    /// protocol without a journal does not meet.
    pub fn of_daxplug(self) -> bool {
        matches!(
            self,
            Fault::Crash(_) | Fault::JournalFull | Fault::JournalReadOnly
        )
    }
}

/// One schedule of the reliability run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub seed: u64,
    pub flavour: Flavour,
    /// Index into [`transitions`].
    pub transition: usize,
    /// Index into [`COMPETITORS`].
    pub competitor: usize,
    /// Index into [`FAULTS`].
    pub fault: usize,
}

impl Case {
    pub fn start(&self) -> Start {
        transitions()[self.transition].0
    }
    pub fn target(&self) -> Target {
        transitions()[self.transition].1
    }
    pub fn competitor(&self) -> Competitor {
        COMPETITORS[self.competitor]
    }
    pub fn fault(&self) -> Fault {
        FAULTS[self.fault]
    }

    /// `SEED:FLAVOUR:T:C:F`, what `--replay` takes.
    pub fn id(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.seed,
            format!("{:?}", self.flavour).to_lowercase(),
            self.transition,
            self.competitor,
            self.fault
        )
    }

    pub fn parse(id: &str) -> Result<Case, String> {
        let parts: Vec<&str> = id.split(':').collect();
        let [seed, flavour, t, c, f] = parts[..] else {
            return Err(format!(
                "{id:?}: expected SEED:FLAVOUR:T:C:F (for example 1:legacy:12:11:6)"
            ));
        };
        let num = |s: &str, what: &str, below: usize| -> Result<usize, String> {
            s.parse::<usize>()
                .ok()
                .filter(|n| *n < below)
                .ok_or_else(|| format!("{what} {s:?}: expected a number below {below}"))
        };
        Ok(Case {
            seed: seed
                .parse()
                .map_err(|_| format!("seed {seed:?}: expected a number"))?,
            flavour: match flavour {
                "legacy" => Flavour::Legacy,
                "atomic" => Flavour::Atomic,
                _ => return Err(format!("flavour {flavour:?}: expected legacy or atomic")),
            },
            transition: num(t, "transition", transitions().len())?,
            competitor: num(c, "competitor", COMPETITORS.len())?,
            fault: num(f, "fault", FAULTS.len())?,
        })
    }

    /// The run, classified.
    pub fn run(&self) -> (Class, String) {
        let (class, detail, _) = self.run_traced();
        (class, detail)
    }

    /// The run, classified, with daxplug's reports.
    pub fn run_traced(&self) -> (Class, String, Vec<daxplug_engine::Report>) {
        run_daxplug_traced(
            self.flavour,
            self.seed,
            self.start(),
            self.target(),
            self.competitor(),
            self.fault(),
        )
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}, {:?}, {} → {}, {}, {}",
            self.seed,
            self.flavour,
            self.start(),
            self.target(),
            self.competitor(),
            self.fault()
        )
    }
}

/// Every schedule for `seeds`.
pub fn cases(seeds: std::ops::RangeInclusive<u64>) -> Vec<Case> {
    let mut v = Vec::new();
    for seed in seeds {
        for flavour in [Flavour::Legacy, Flavour::Atomic] {
            for transition in 0..transitions().len() {
                for competitor in 0..COMPETITORS.len() {
                    for fault in 0..FAULTS.len() {
                        v.push(Case {
                            seed,
                            flavour,
                            transition,
                            competitor,
                            fault,
                        });
                    }
                }
            }
        }
    }
    v
}

/// One run's results: daxplug's, and the per-block protocol's where it meets the fault.
#[derive(Debug, Clone)]
pub struct Ran {
    pub case: Case,
    pub ours: Class,
    pub detail: String,
    pub theirs: Option<Class>,
}

/// Runs `cases` on every core, in order of the list.
pub fn run_all(cases: &[Case]) -> Vec<Ran> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::with_capacity(cases.len()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    let (ours, detail) = case.run();
                    let theirs = (case.flavour == Flavour::Legacy && !case.fault().of_daxplug())
                        .then(|| {
                            run_naive(
                                case.flavour,
                                case.seed,
                                case.start(),
                                case.target(),
                                case.competitor(),
                                case.fault(),
                            )
                            .0
                        });
                    results.lock().expect("results").push((
                        i,
                        Ran {
                            case: *case,
                            ours,
                            detail,
                            theirs,
                        },
                    ));
                }
            });
        }
    });
    let mut v = results.into_inner().expect("results");
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, r)| r).collect()
}

/// The named class of a run that did not keep the promise: what made it so, and why no
/// userspace protocol can prevent it. "unexplained" is a defect.
pub fn cause(r: &Ran) -> &'static str {
    let by_hand = matches!(r.case.competitor(), Competitor::Admin | Competitor::All);
    match r.ours {
        Class::Lied => "untrue report (a defect)",
        Class::Torn | Class::Stuck if by_hand => {
            "a block written by hand after daxplug's last check (torn: exit 8; leaked: exit 7; whole but elsewhere: exit 1)"
        }
        _ => "unexplained",
    }
}
