//! A device an operator creates or resizes is theirs: when a running daemon has a rule that
//! would take it, the command holds it for the operator (until `daxplug release`), unless
//! the daemon's policy says new devices are the policy's (`new_devices = "policy"`). Either
//! way the operator is told, in the report's actions. Runs under the transition lock, so
//! the daemon's next transition sees the hold.

use daxplug_abi::DaxName;

use crate::discovery::discover;
use crate::discovery::topology::Scope;
use crate::host::Host;
use crate::plan::policy::{NewDevices, Policy};

use super::report::Report;

/// Keeps `device`, just made or resized by `command`, from a running daemon's rule.
pub(super) fn claim_for_operator(
    host: &dyn Host,
    device: DaxName,
    command: &str,
    rep: &mut Report,
) {
    let run = host.run_dir();
    let Some(daemon) = crate::rundir::holds::running_daemon(&run) else {
        return;
    };
    if daemon.pid == std::process::id() {
        return;
    }
    let k = host.kernel();
    // A policy that cannot be read now is treated as one that takes the device.
    let policy = Policy::load(&daemon.config).ok();
    let rule = match &policy {
        Some(p) => {
            let Ok(topo) = discover(k, &Scope::Devices(vec![device.to_string()])) else {
                return;
            };
            let Some(dev) = topo.devices.iter().find(|d| d.name == device) else {
                return;
            };
            match p.rule_for(k, &topo, dev) {
                Some(r) => Some((r.index, r.state)),
                None => return,
            }
        }
        None => None,
    };
    let wants = rule.map_or_else(
        || "its policy could not be read".to_owned(),
        |(i, state)| format!("its rule {i} would make it {state}"),
    );
    if policy
        .as_ref()
        .is_some_and(|p| p.new_devices == NewDevices::Policy)
    {
        rep.actions.push(format!(
            "left {device} to the daxplug daemon (pid {}): {wants} now (new_devices = \"policy\")",
            daemon.pid
        ));
        return;
    }
    if crate::rundir::holds::held(&run, device).is_some() {
        return;
    }
    let holder = crate::rundir::holds::default_holder();
    match crate::rundir::holds::hold(
        &run,
        device,
        &holder,
        None,
        Some(format!("made by daxplug {command}; the daemon's policy waits")),
    ) {
        Ok(_) => rep.actions.push(format!(
            "held {device} for {holder}: the daxplug daemon (pid {}) is running and {wants}; `daxplug release {device}` hands it over",
            daemon.pid
        )),
        Err(e) => rep.actions.push(format!(
            "could not hold {device} against the daxplug daemon ({wants}): {e}"
        )),
    }
}

/// Ends every hold on `device`, saying so among the actions.
pub(super) fn drop_holds(host: &dyn Host, device: DaxName, why: &str, rep: &mut Report) {
    match crate::rundir::holds::release(&host.run_dir(), device, None) {
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
