//! `daxplug release DEV`: end your hold on a device, someone else's, or every one. When no
//! hold is left, the daemon applies its rule to the device again.

use std::fmt::Write as _;

use anyhow::Context as _;
use daxplug_engine::Host;
use daxplug_engine::rundir::holds::{self, Hold};

use super::hold::holder;
use crate::exit::Exit;
use crate::machine::{Machine, on_machine};

/// What `release` was asked for.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The device, such as dax0.0.
    #[arg(value_name = "DEV")]
    pub device: String,
    /// Whose hold to end (default: yours, as `hold` names you).
    #[arg(long, value_name = "NAME", conflicts_with = "all")]
    pub holder: Option<String>,
    /// End every hold on the device, whoever took it.
    #[arg(long)]
    pub all: bool,
}

impl Args {
    /// `daxplug release DEV [--holder NAME | --all]`.
    pub fn run(self, m: &Machine) -> anyhow::Result<(String, Exit)> {
        on_machine(m, true, |b| {
            release(
                b.host().as_ref(),
                &self.device,
                self.holder.as_deref(),
                self.all,
            )
        })
    }
}

fn release(
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
            let _ = writeln!(out, "  {}", h.phrase());
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
            h.until_phrase()
        );
    }
    if left.is_empty() {
        let _ = writeln!(
            out,
            "{name} is released: the daemon applies its rule to it again."
        );
    } else {
        for h in &left {
            let _ = writeln!(out, "{name} is still {}.", h.phrase());
        }
    }
    Ok((out, Exit::Ok))
}
