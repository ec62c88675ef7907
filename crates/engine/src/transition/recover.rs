//! Recovery of a transition a crash interrupted, from its journal.

use std::time::Instant;

use daxplug_abi::DaxName;

use crate::host::Host;
use crate::rundir::journal::JournalFile;

use crate::plan::Step;
use crate::plan::layout::LayoutChange;

use super::Run;
use super::execute::{execute, plan_lines, planned};
use super::lock::take_lock;
use super::observation::observe_device;
use super::report::{Goal, Options, Report, TestHooks, TransitionError, report};

/// Finishes or rolls back transitions a crash interrupted, and restores the machine-wide
/// settings they had changed. Takes the lock.
pub fn recover(host: &dyn Host, opts: &Options) -> Result<Vec<String>, TransitionError> {
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let Some(_lock) = take_lock(host, deadline, opts.on_wait.as_deref())? else {
        return Ok(vec![
            "another daxplug holds the lock: it will recover what needs recovering".to_owned(),
        ]);
    };
    recover_locked(host, opts)
}

pub(super) fn recover_locked(
    host: &dyn Host,
    opts: &Options,
) -> Result<Vec<String>, TransitionError> {
    let dir = host.run_dir();
    let journals = JournalFile::list(&dir)?;
    let mut out = Vec::new();
    for (file, j) in journals {
        let opts = Options {
            test_hooks: TestHooks::default(),
            ..opts.clone()
        };
        let mut run = Run::new(
            host,
            &opts,
            j.clone(),
            file.clone(),
            Instant::now(),
            None,
            None,
        );
        let mut done = Vec::new();
        if j.committed {
            // Past the point of no return: finish the transition.
            let _ = file.remove();
            // A deletion that began is finished as a deletion.
            let goal = if j.steps.contains(&Step::Delete) {
                Goal::Layout(LayoutChange::Destroy)
            } else {
                Goal::State(j.target)
            };
            match set_unlocked(host, j.device, goal, &opts, true) {
                Ok(r) if r.destroy && r.end.is_none() => {
                    done.push(format!("finished: {} is deleted", j.device));
                }
                Ok(r) => done.push(format!(
                    "finished: {} is {}",
                    j.device,
                    r.end.map_or("unknown", |s| s.as_str())
                )),
                Err(e) => done.push(format!("could not finish: {e}")),
            }
        } else {
            run.undo_from_journal();
            run.rollback();
            done.extend(
                std::mem::take(&mut run.actions)
                    .into_iter()
                    .filter(|a| a != "rolling back"),
            );
            done.push(format!("rolled back {} toward {}", j.device, j.start));
        }
        // The settings last, as a transition restores them: with the kernel's own online
        // policy back while blocks are still offline, another controller onlining one
        // would put it in a kernel zone, where it can be pinned for good.
        done.extend(run.restore_settings());
        let _ = file.remove();
        out.push(format!(
            "recovered an interrupted transition of {} to {}: {}",
            j.device,
            j.target,
            done.join("; ")
        ));
    }
    Ok(out)
}

impl Run<'_> {
    /// Puts back every machine-wide setting the journal says daxplug changed (udev's exec
    /// queue, the online policy, `auto_online_blocks`) with the same writes a transition
    /// restores them with; what was done, as sentences.
    fn restore_settings(&mut self) -> Vec<String> {
        let mut done = Vec::new();
        if self.journal.udev_stopped {
            done.push(match self.release_udev() {
                Ok(()) => "restarted the udev exec queue".to_owned(),
                Err(e) => format!("could not restart the udev exec queue: {}", e.sentence()),
            });
        }
        if let Some((policy, numa)) = self.journal.saved_policy {
            self.restore_policy();
            done.push(if self.journal.saved_policy.is_none() {
                format!("restored online_policy={policy}, auto_movable_numa_aware={numa}")
            } else {
                "could not restore online_policy".to_owned()
            });
        }
        if let Some(autoprobe) = self.journal.saved_autoprobe {
            done.push(match self.restore_autoprobe() {
                Ok(()) => format!("restored the dax bus's drivers_autoprobe={autoprobe}"),
                Err(e) => format!("could not restore the dax bus's drivers_autoprobe: {e}"),
            });
        }
        if let Some(aob) = self.journal.saved_aob {
            done.push(match self.restore_aob() {
                Ok(()) => format!("restored auto_online_blocks={aob}"),
                Err(e) => format!("could not restore auto_online_blocks: {e}"),
            });
        }
        // The sentences above say it; the writes themselves are not repeated.
        self.actions.clear();
        done
    }
}

/// A transition without taking the lock or recovering (the caller holds the lock). `force`
/// passes the safety checks (recovery finishes what was decided already).
pub(super) fn set_unlocked(
    host: &dyn Host,
    device: DaxName,
    goal: Goal,
    opts: &Options,
    force: bool,
) -> Result<Report, TransitionError> {
    let k = host.kernel();
    let mut rep = report(&device.to_string(), goal);
    let (topo, dev) = observe_device(k, device)?;
    let Some(p) = planned(&mut rep, &topo, &dev, goal, force) else {
        return Ok(rep);
    };
    rep.protocol = p.protocol;
    rep.plan = plan_lines(&p, &dev, &topo);
    execute(host, opts, &p, &mut rep, Instant::now(), &dev)?;
    Ok(rep)
}
