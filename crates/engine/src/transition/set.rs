//! A transition from start to verdict: observe, plan, refuse or execute under a journal,
//! roll back on failure, and judge the end state.

use std::time::Instant;

use daxplug_kernel::{Kernel, paths};

use crate::error::DiscoveryError;
use crate::host::Host;
use crate::journal::{Journal, JournalFile};
use crate::layout::{LayoutChange, plan_layout};
use crate::observe::ObservedState;
use crate::plan::{Plan, Refusal, plan};
use crate::target::Target;
use crate::topology::{Block, Device, Driver, Topology};
use daxplug_abi::DaxName;

use super::lock::take_lock;
use super::observation::{observe_device, stable_observation};
use super::recover::recover_locked;
use super::report::{Options, Outcome, Report, TransitionError, report};
use super::{Fail, Run};

pub(super) fn plan_lines(p: &Plan, dev: &Device, topo: &Topology) -> Vec<String> {
    // Plain `online` names no zone: say which one the memory lands in before acting.
    let zone = (p.target == Target::Online(daxplug_abi::OnlineType::Online) && !p.steps.is_empty())
        .then(|| crate::plan::plain_online_zone(topo, dev))
        .flatten()
        .map(|z| format!("note: online lets the kernel pick the zone: the memory lands in {z}"));
    zone.into_iter()
        .chain(
            p.steps
                .iter()
                .flat_map(|s| s.commands(dev, topo.policy.auto_online_blocks)),
        )
        .collect()
}

/// What a transition is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// A state (`daxplug set`).
    State(Target),
    /// A change of the device's extent (`daxplug resize`, `destroy`, and `create`'s sizing).
    Layout(LayoutChange),
}

impl Goal {
    /// The state the device is to end in, as far as the goal says (a resize that keeps the
    /// device's mode learns it from the plan).
    pub fn target(self) -> Target {
        match self {
            Goal::State(t)
            | Goal::Layout(LayoutChange::Resize {
                target: Some(t), ..
            }) => t,
            Goal::Layout(LayoutChange::Resize { target: None, .. } | LayoutChange::Destroy) => {
                Target::Unplugged
            }
        }
    }
}

/// Moves `device` to `target`.
pub fn set(
    host: &dyn Host,
    device: &str,
    target: Target,
    opts: &Options,
) -> Result<Report, TransitionError> {
    transition(host, device, Goal::State(target), opts)
}

/// Changes `device`'s extent (resize or destroy) under the same lock, journal, rollback and
/// verdict as `set`.
pub fn change_layout(
    host: &dyn Host,
    device: &str,
    change: LayoutChange,
    opts: &Options,
) -> Result<Report, TransitionError> {
    transition(host, device, Goal::Layout(change), opts)
}

fn transition(
    host: &dyn Host,
    device: &str,
    goal: Goal,
    opts: &Options,
) -> Result<Report, TransitionError> {
    let started = Instant::now();
    let deadline = opts.timeout.map(|t| started + t);
    let k = host.kernel();
    let mut rep = report(device, goal);
    let device = crate::discover::device_name(device)?;
    if let Some(why) = daemon_conflict(host, device, opts, &mut rep) {
        rep.reason = Some(why);
        return Ok(rep);
    }

    if opts.dry_run {
        let (topo, dev) = observe_device(k, device)?;
        rep.end = Some(dev.state);
        rep.end_size = Some(dev.size);
        if let Some(p) = planned(&mut rep, &topo, &dev, goal, opts.force) {
            // A dry run predicts the refusal a real run would give for a device in use.
            if !p.steps.is_empty()
                && dev.driver == Driver::DeviceDax
                && !opts.force
                && let Some(why) = users_refusal(device, &host.dax_users(device))
            {
                rep.reason = Some(why);
                return Ok(rep);
            }
            rep.protocol = p.protocol;
            rep.plan = plan_lines(&p, &dev, &topo);
            rep.outcome = if p.steps.is_empty() {
                Outcome::NoChange
            } else {
                Outcome::DryRun
            };
        }
        return Ok(rep);
    }

    let mut lap = Instant::now();
    let Some(_lock) = take_lock(host, deadline, opts.on_wait.as_deref())? else {
        rep.reason = Some(format!(
            "another daxplug (or the daxplug daemon) holds {}: it is changing device memory now; try again when it is done",
            crate::journal::journal_dir(&host.run_dir())
                .join("daxplug.lock")
                .display()
        ));
        return Ok(rep);
    };
    rep.lap("lock", &mut lap);
    if opts.respect_holds
        && let Some(h) = crate::holds::held(&host.run_dir(), device)
    {
        rep.reason = Some(format!(
            "{device} was held for maintenance by {} while this waited for the lock",
            h.holder
        ));
        return Ok(rep);
    }
    rep.recovered = recover_locked(host, opts)?;
    rep.lap("recovery check", &mut lap);

    // Looking for users of /dev/daxX.Y means reading every process's descriptors and
    // mappings: when device_dax holds the device, that scan runs beside the observation
    // (files only: the model answers one call at a time, in a deterministic order).
    let scan_early = !opts.force
        && k.parallel_reads()
        && k.read_link(&paths::dax_attr(&device.to_string(), "driver"))
            .is_ok_and(|t| {
                Driver::from_name(t.rsplit('/').next().unwrap_or(&t)) == Driver::DeviceDax
            });
    let (observed, early_users) = std::thread::scope(|s| {
        let scan = scan_early.then(|| s.spawn(|| host.dax_users(device)));
        let observed = observe_device(k, device);
        let users = scan.map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        (observed, users)
    });
    let (topo, dev) = observed?;
    let p = planned(&mut rep, &topo, &dev, goal, opts.force);
    rep.lap("observe and plan", &mut lap);
    let Some(p) = p else {
        return Ok(rep);
    };
    rep.protocol = p.protocol;
    rep.plan = plan_lines(&p, &dev, &topo);
    if p.steps.is_empty() {
        rep.outcome = Outcome::NoChange;
        rep.end = Some(dev.state);
        rep.end_size = Some(dev.size);
        return Ok(rep);
    }
    if dev.driver == Driver::DeviceDax && !opts.force {
        let users = early_users.unwrap_or_else(|| host.dax_users(device));
        rep.lap("users check", &mut lap);
        if let Some(why) = users_refusal(device, &users) {
            rep.reason = Some(why);
            rep.end = Some(dev.state);
            return Ok(rep);
        }
    }

    execute(host, opts, &p, &mut rep, started, &dev)?;
    match goal {
        Goal::Layout(LayoutChange::Destroy) if rep.outcome == Outcome::Done => {
            if device.id == 0 {
                rep.actions.push(format!(
                    "{device} stays, empty: the kernel keeps a region's device 0 while the region exists"
                ));
            }
            // A hold is on this device, not on the next one to get its name.
            drop_holds(host, device, "the device was destroyed", &mut rep);
        }
        Goal::Layout(LayoutChange::Resize { .. }) if rep.outcome == Outcome::Done => {
            super::claim::claim_for_operator(host, device, "resize", &mut rep);
        }
        _ => {}
    }
    Ok(rep)
}

/// Ends every hold on `device`, saying so among the actions.
pub(super) fn drop_holds(host: &dyn Host, device: DaxName, why: &str, rep: &mut Report) {
    match crate::holds::release(&host.run_dir(), device, None) {
        Ok(ended) => {
            for h in ended {
                rep.actions.push(format!(
                    "ended {}'s hold on {device}{}: {why}",
                    h.holder,
                    h.reason
                        .as_deref()
                        .map_or_else(String::new, |r| format!(" ({r})"))
                ));
            }
        }
        Err(e) => rep
            .actions
            .push(format!("could not end the holds on {device}: {e}")),
    }
}

/// The refusal for a devdax device some process has open or mapped.
fn users_refusal(device: DaxName, users: &[u32]) -> Option<String> {
    (!users.is_empty()).then(|| {
        format!(
            "/dev/{device} is open or mapped by process{} {}: switching it would pull the memory from under them; pass --force to do it anyway",
            if users.len() == 1 { "" } else { "es" },
            users
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// A running daxplug daemon manages `device` and would put it back: the refusal, unless it
/// is held for maintenance, or `--override` holds it now (said among the actions).
fn daemon_conflict(
    host: &dyn Host,
    device: DaxName,
    opts: &Options,
    rep: &mut Report,
) -> Option<String> {
    let run = host.run_dir();
    let daemon = crate::holds::running_daemon(&run)?;
    if daemon.pid == std::process::id() {
        return None;
    }
    let (_, wants) = daemon.managed.iter().find(|(d, _)| *d == device)?;
    if crate::holds::held(&run, device).is_some() {
        return None;
    }
    if opts.daemon_override && !opts.dry_run {
        return match crate::holds::hold(
            &run,
            device,
            &crate::holds::default_holder(),
            None,
            Some("daxplug set --override".into()),
        ) {
            Ok(_) => {
                rep.actions.push(format!(
                    "held {device} for maintenance: the daemon leaves it alone until `daxplug release {device}`"
                ));
                None
            }
            Err(e) => Some(format!("cannot hold {device} for maintenance: {e}")),
        };
    }
    Some(format!(
        "{device} is managed by the daxplug daemon (pid {}, {}: {wants}), which would put it back: hold it first (daxplug hold {device} [--for 2h]), or pass --override, which holds it until `daxplug release {device}`",
        daemon.pid,
        daemon.config.display()
    ))
}

/// The plan for `goal`, or `None` with the refusal written into `rep` (the device then
/// ends where it started).
pub(super) fn planned(
    rep: &mut Report,
    topo: &Topology,
    dev: &Device,
    goal: Goal,
    force: bool,
) -> Option<Plan> {
    rep.start = Some(dev.state);
    rep.start_size = Some(dev.size);
    let planned = match goal {
        Goal::State(target) => plan(topo, dev, target, force),
        Goal::Layout(change) => plan_layout(topo, dev, change, available_size(topo, dev), force),
    };
    match planned {
        Ok(p) => {
            rep.target = p.target;
            Some(p)
        }
        Err(r) => {
            refuse(rep, &r, dev);
            rep.end = Some(dev.state);
            rep.end_size = Some(dev.size);
            None
        }
    }
}

/// The free space of `dev`'s region, if the region says (dynamic regions do).
fn available_size(topo: &Topology, dev: &Device) -> Option<u64> {
    topo.regions
        .iter()
        .find(|r| Some(r.id) == dev.region)?
        .available_size
}

/// Whether two observations of a device have the same blocks, each in the same state and
/// zone: "nothing changed", checked when a transition that started mixed fails.
fn same_blocks(a: &Device, b: &Device) -> bool {
    let key = |b: &Block| (b.id, b.state, b.zone());
    a.blocks.len() == b.blocks.len() && a.blocks.iter().map(key).eq(b.blocks.iter().map(key))
}

/// Runs a plan under a fresh journal: steps, rollback on failure, cleanup, verdict. A
/// simulated crash (test hook) leaves everything as a crash would.
pub(super) fn execute(
    host: &dyn Host,
    opts: &Options,
    p: &Plan,
    rep: &mut Report,
    started: Instant,
    start: &Device,
) -> Result<(), TransitionError> {
    let journal = Journal::planned(p);
    let file = JournalFile::for_device(&host.run_dir(), p.device);
    let deadline = opts.timeout.map(|t| started + t);
    let mut run = Run::new(
        host,
        opts,
        journal,
        file,
        started,
        deadline,
        Some(p.bind_methods),
    );
    // The journal is written before the first kernel write: a transition that could not
    // be recovered after a crash is not begun (a full or read-only filesystem).
    if let Err(Fail::Journal(e)) = run.write_journal() {
        rep.actions = std::mem::take(&mut run.actions);
        rep.outcome = Outcome::Refused;
        rep.reason = Some(format!(
            "the journal {} cannot be written ({}); nothing was changed: a transition without its journal could not be recovered after a crash",
            run.file.path().display(),
            match e.raw_os_error() {
                Some(_) => daxplug_kernel::Errno::from_io_error(&e).to_string(),
                None => e.to_string(),
            }
        ));
        rep.end = Some(start.state);
        rep.end_size = Some(start.size);
        return Ok(());
    }
    let result = match run.steps(p, rep) {
        Err(Fail::Crash) => {
            rep.actions = run.actions;
            rep.outcome = Outcome::Failed;
            rep.reason = Some("simulated crash: the journal is left for recovery".to_owned());
            return Ok(());
        }
        Err(f) => {
            let reason = f.to_string();
            rep.offline_refused = match &f {
                Fail::Busy(_) => true,
                Fail::Kernel(e) => e.errno == daxplug_kernel::Errno::EBUSY,
                _ => false,
            };
            run.rollback();
            Err(reason)
        }
        Ok(()) => Ok(()),
    };
    run.restore_policy();
    let _ = run.restore_autoprobe();
    let _ = run.release_udev();
    let _ = run.file.remove();
    rep.actions.extend(std::mem::take(&mut run.actions));
    rep.kernel_write_millis = run.kernel_time.as_secs_f64() * 1e3;
    rep.settle_millis = run.settle_time.as_secs_f64() * 1e3;
    rep.journal_millis = run.journal_time.as_secs_f64() * 1e3;
    let mut lap = Instant::now();
    let verdict = finish(host.kernel(), rep, start, result, run.seen.take());
    rep.lap("verdict", &mut lap);
    // The verdict's reads are part of the transition's cost.
    rep.total_millis = run.started.elapsed().as_secs_f64() * 1e3;
    verdict
}

pub(super) fn refuse(rep: &mut Report, r: &Refusal, dev: &Device) {
    rep.reason = Some(r.to_string());
    if let Refusal::Stuck { .. } = r {
        rep.outcome = Outcome::Stuck;
        rep.stuck_blocks = dev.blocks.iter().map(|b| b.id).collect();
    }
}

/// Decides the outcome from what the device is now.
pub(super) fn finish(
    k: &dyn Kernel,
    rep: &mut Report,
    start: &Device,
    result: Result<(), String>,
    seen: Option<Device>,
) -> Result<(), TransitionError> {
    let dev = match stable_observation(k, start.name, seen) {
        Ok(dev) => dev,
        Err(DiscoveryError::UnknownDevice { .. }) if rep.destroy && result.is_ok() => {
            rep.end = None;
            rep.end_size = None;
            rep.outcome = Outcome::Done;
            return Ok(());
        }
        Err(DiscoveryError::UnknownDevice { .. }) => {
            rep.end = None;
            rep.outcome = Outcome::Failed;
            let why = result.err().map_or_else(String::new, |r| format!(" ({r})"));
            rep.reason = Some(format!(
                "{} was removed from the bus during the transition{why}",
                rep.device
            ));
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    rep.end = Some(dev.state);
    rep.end_size = Some(dev.size);
    let sized = rep.requested_size.is_none_or(|s| s == dev.size);
    rep.outcome = match (&result, dev.state) {
        (_, ObservedState::Stuck) => {
            rep.stuck_blocks = dev.blocks.iter().map(|b| b.id).collect();
            Outcome::Stuck
        }
        // A failed step, yet the device is where it was asked to be (another controller got
        // there first: udev's modalias load bound kmem before daxplug could): the device
        // is what a script acts on; the reason says what failed on the way.
        (_, s) if rep.target.satisfied_by(s) && sized => Outcome::Done,
        // A device left mixed is reported torn (exit 8) whoever tore it: a script must be
        // able to tell from the exit code alone that the device needs attention.
        (_, ObservedState::Mixed) => Outcome::Torn,
        (Err(_), s) if s == start.state && dev.size == start.size => Outcome::RolledBack,
        _ => Outcome::Failed,
    };
    // Torn, but not by this transition: it was mixed when observed, and every block is as
    // it was (on a kernel with daxX.Y/state, the atomic unplug undid itself). Say so.
    let untouched = rep.outcome == Outcome::Torn
        && start.state == ObservedState::Mixed
        && same_blocks(start, &dev);
    rep.reason = match (result, rep.outcome) {
        (Err(reason), Outcome::Done) => Some(format!(
            "{reason}; the device got to {} all the same (another controller acted meanwhile)",
            dev.state
        )),
        (Err(reason), _) if untouched => Some(format!(
            "{reason}; the device was already mixed when the transition began, and every block is as it was then"
        )),
        (Err(reason), _) => Some(reason),
        (Ok(()), Outcome::Done) => None,
        (Ok(()), _) if !sized => Some(format!(
            "the device ended with {} bytes instead of {}",
            dev.size,
            rep.requested_size.unwrap_or_default()
        )),
        (Ok(()), _) => Some(format!(
            "the device ended {} instead of {}",
            dev.state, rep.target
        )),
    };
    if rep.outcome == Outcome::Stuck {
        let detail = crate::problems::problems(&dev)
            .into_iter()
            .find(|p| p.code == crate::problems::ProblemCode::Stuck)
            .map(|p| p.message);
        rep.reason = Some(
            [rep.reason.take(), detail]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(". "),
        );
    }
    Ok(())
}
