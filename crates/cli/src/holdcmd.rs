//! `daxplug hold` and `daxplug release`: maintenance holds, one per holder. A device stays
//! held (the daemon leaves it alone) until the last of its holds ends; a second holder's
//! short hold never ends a first holder's long one.

use std::fmt::Write as _;

use anyhow::Context as _;
use daxplug_engine::Host;
use daxplug_engine::rundir::holds::{self, Hold};

use crate::exit::{self, Exit};
use crate::human;

/// The holder: `--holder`, else the login name behind sudo, else the login name.
fn holder(given: Option<&str>) -> Result<String, exit::Usage> {
    match given {
        Some(h) if h.trim().is_empty() || h.len() > 64 => Err(exit::Usage(format!(
            "--holder {h:?}: expected a name of 1 to 64 characters, such as your login name"
        ))),
        Some(h) => Ok(h.to_owned()),
        None => Ok(holds::default_holder()),
    }
}

/// `daxplug hold DEV [--for D] [--reason TEXT] [--holder NAME]`.
pub fn run_hold(
    host: &dyn Host,
    device: &str,
    seconds: Option<u64>,
    reason: Option<String>,
    holder_arg: Option<&str>,
) -> anyhow::Result<(String, Exit)> {
    let name = daxplug_engine::discovery::device_name(device)?;
    daxplug_engine::discovery::require_device(host.kernel(), device)?;
    let who = holder(holder_arg)?;
    let taken = holds::hold(&host.run_dir(), name, &who, seconds, reason)
        .with_context(|| format!("cannot hold {name}"))?;
    let mut out = format!("{name} is {}.\n", human::hold_phrase(&taken.hold));
    if let Some(old) = &taken.replaced {
        let _ = writeln!(
            out,
            "  This replaces {who}'s earlier hold ({}).",
            human::hold_until(old)
        );
    }
    for other in &taken.others {
        let _ = writeln!(out, "  Also {}.", human::hold_phrase(other));
    }
    if let Some(h) = holds::held(&host.run_dir(), name) {
        let _ = writeln!(
            out,
            "The daemon leaves {name} alone {} (the last hold to end).",
            human::hold_until(&h)
        );
    }
    Ok((out, Exit::Ok))
}

/// `daxplug release DEV [--holder NAME | --all]`.
pub fn run_release(
    host: &dyn Host,
    device: &str,
    holder_arg: Option<&str>,
    all: bool,
) -> anyhow::Result<(String, Exit)> {
    let name = daxplug_engine::discovery::device_name(device)?;
    let run = host.run_dir();
    let who = holder(holder_arg)?;
    let before = holds::holds_of(&run, name);
    if before.is_empty() {
        return Ok((format!("{name} was not held.\n"), Exit::Ok));
    }
    let ended = holds::release(&run, name, (!all).then_some(who.as_str()))
        .with_context(|| format!("cannot release {name}"))?;
    let left: Vec<Hold> = holds::holds_of(&run, name);
    if ended.is_empty() {
        let mut out = format!("daxplug: {name} is not held by {who}; it stays held:\n");
        for h in &left {
            let _ = writeln!(out, "  {}", human::hold_phrase(h));
        }
        let _ = writeln!(
            out,
            "  `daxplug release {name} --holder NAME` ends one of them, `--all` ends every one."
        );
        return Ok((out, Exit::Refused));
    }
    let mut out = String::new();
    for h in &ended {
        let _ = writeln!(
            out,
            "Ended {}'s hold on {name} ({}).",
            h.holder,
            human::hold_until(h)
        );
    }
    if left.is_empty() {
        let _ = writeln!(
            out,
            "{name} is released: the daemon applies its rule to it again."
        );
    } else {
        for h in &left {
            let _ = writeln!(out, "{name} is still {}.", human::hold_phrase(h));
        }
    }
    Ok((out, Exit::Ok))
}

/// A maintenance hold, as doctor reports it.
pub fn held_finding(h: &daxplug_engine::rundir::holds::Hold) -> daxplug_engine::doctor::Finding {
    daxplug_engine::doctor::Finding {
        severity: daxplug_engine::doctor::Severity::Info,
        code: "held",
        subject: h.device.to_string(),
        evidence: human::hold_phrase(h),
        fix: format!(
            "the daemon leaves it alone until every hold on it ends (`daxplug release {} --holder {}`)",
            h.device, h.holder
        ),
    }
}
