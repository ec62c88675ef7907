//! A transition from start to verdict: observe, plan, refuse or execute under a journal,
//! roll back on failure, and judge the end state.

use std::time::Instant;

use daxplug_abi::DaxName;
use daxplug_kernel::paths;

use crate::discovery::topology::Driver;
use crate::host::Host;
use crate::plan::layout::LayoutChange;
use crate::plan::target::Target;

use super::claim::drop_holds;
use super::execute::{execute, plan_lines, planned};
use super::lock::take_lock;
use super::observation::observe_device;
use super::recover::recover_locked;
use super::report::{Goal, Options, Outcome, Report, TransitionError, report};

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
    let device = crate::discovery::device_name(device)?;
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
            crate::rundir::dir(&host.run_dir())
                .join("daxplug.lock")
                .display()
        ));
        return Ok(rep);
    };
    rep.lap("lock", &mut lap);
    if opts.respect_holds
        && let Some(h) = crate::rundir::holds::held(&host.run_dir(), device)
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
    let daemon = crate::rundir::holds::running_daemon(&run)?;
    if daemon.pid == std::process::id() {
        return None;
    }
    let (_, wants) = daemon.managed.iter().find(|(d, _)| *d == device)?;
    if crate::rundir::holds::held(&run, device).is_some() {
        return None;
    }
    if opts.daemon_override && !opts.dry_run {
        return match crate::rundir::holds::hold(
            &run,
            device,
            &crate::rundir::holds::default_holder(),
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
