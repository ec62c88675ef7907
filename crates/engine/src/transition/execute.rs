//! Running a plan: the plan's lines for people, the plan or its refusal, the steps under a
//! fresh journal with rollback on failure, and the verdict from what the device is now.
//! `set`, `create`'s sizing and recovery all end here.

use std::time::Instant;

use daxplug_kernel::Kernel;

use crate::discovery::error::DiscoveryError;
use crate::discovery::observe::ObservedState;
use crate::discovery::topology::{Block, Device, Topology};
use crate::host::Host;
use crate::plan::layout::plan_layout;
use crate::plan::target::Target;
use crate::plan::{Plan, Refusal, plan};
use crate::rundir::journal::{Journal, JournalFile};

use super::observation::stable_observation;
use super::report::{Goal, Options, Outcome, Report, TransitionError};
use super::{Fail, Run};

/// The plan's commands as the dry run and the report show them.
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
        let detail = crate::discovery::problems::problems(&dev)
            .into_iter()
            .find(|p| p.code == crate::discovery::problems::ProblemCode::Stuck)
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
