//! Recovery of a transition a crash interrupted, from its journal.

use std::time::Instant;

use crate::host::Host;
use crate::journal::JournalFile;
use crate::target::Target;
use crate::write::Write;

use super::Run;
use super::lock::take_lock;
use super::observation::observe_device;
use super::report::{Options, Report, TestHooks, TransitionError, report};
use super::set::{execute, planned};

/// Finishes or rolls back transitions a crash interrupted, and restores the machine-wide
/// settings they had changed. Takes the lock.
pub fn recover(host: &dyn Host, opts: &Options) -> Result<Vec<String>, TransitionError> {
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let Some(_lock) = take_lock(host, deadline)? else {
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
    let journals = JournalFile::list(&dir).map_err(|source| TransitionError::Io {
        path: crate::journal::journal_dir(&dir).display().to_string(),
        source,
    })?;
    let k = host.kernel();
    let mut out = Vec::new();
    for (file, j) in journals {
        let mut done = Vec::new();
        if j.udev_stopped {
            match host.set_udev_queue(true) {
                Ok(()) => done.push("restarted the udev exec queue".to_owned()),
                Err(e) => done.push(format!(
                    "could not restart the udev exec queue: {}",
                    e.sentence()
                )),
            }
        }
        if let Some(saved @ (policy, numa)) = j.saved_policy {
            let [p, n] = Write::online_policy(saved);
            let (p, n) = (k.write(&p.path, &p.value), k.write(&n.path, &n.value));
            if p.is_ok() && n.is_ok() {
                done.push(format!(
                    "restored online_policy={policy}, auto_movable_numa_aware={numa}"
                ));
            } else {
                done.push("could not restore online_policy".to_owned());
            }
        }
        if let Some(aob) = j.saved_aob {
            let w = Write::auto_online_blocks(aob);
            match k.write(&w.path, &w.value) {
                Ok(()) => done.push(format!("restored auto_online_blocks={aob}")),
                Err(e) => done.push(format!("could not restore auto_online_blocks: {e}")),
            }
        }
        let opts = Options {
            test_hooks: TestHooks::default(),
            ..opts.clone()
        };
        if j.committed {
            // Past the point of no return: finish the transition.
            let file_for_run = file.clone();
            let _ = file_for_run.remove();
            match set_unlocked(host, &j.device, j.target, &opts) {
                Ok(r) => done.push(format!(
                    "finished: {} is {}",
                    j.device,
                    r.end.map_or("unknown", |s| s.as_str())
                )),
                Err(e) => done.push(format!("could not finish: {e}")),
            }
        } else {
            let mut run = Run::new(
                host,
                &opts,
                j.clone(),
                file.clone(),
                Instant::now(),
                None,
                None,
            );
            run.undo_from_journal();
            run.rollback();
            done.extend(run.actions.into_iter().filter(|a| a != "rolling back"));
            done.push(format!("rolled back {} toward {}", j.device, j.start));
        }
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

/// `set` without taking the lock or recovering (the caller holds the lock).
pub(super) fn set_unlocked(
    host: &dyn Host,
    device: &str,
    target: Target,
    opts: &Options,
) -> Result<Report, TransitionError> {
    let k = host.kernel();
    let mut rep = report(device, target);
    let (topo, dev) = observe_device(k, device)?;
    let Some(p) = planned(&mut rep, &topo, &dev, target, true) else {
        return Ok(rep);
    };
    execute(host, opts, &p, &mut rep, Instant::now(), &dev)?;
    Ok(rep)
}
