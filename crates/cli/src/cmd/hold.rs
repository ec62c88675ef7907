//! `daxplug hold DEV`: a maintenance hold, one per holder. A device stays held (the daemon
//! leaves it alone) until the last of its holds ends; a second holder's short hold never
//! ends a first holder's long one.

use std::fmt::Write as _;

use anyhow::Context as _;
use daxplug_engine::Host;
use daxplug_engine::rundir::holds;

use crate::exit::{self, Exit};
use crate::machine::{Machine, on_machine};

/// The holder: `--holder`, else the login name behind sudo, else the login name.
pub(crate) fn holder(given: Option<&str>) -> Result<String, exit::Usage> {
    match given {
        Some(h) if h.trim().is_empty() || h.len() > 64 => Err(exit::Usage(format!(
            "--holder {h:?}: expected a name of 1 to 64 characters, such as your login name"
        ))),
        Some(h) => Ok(h.to_owned()),
        None => Ok(holds::default_holder()),
    }
}

/// What `hold` was asked for.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The device, such as dax0.0.
    #[arg(value_name = "DEV")]
    pub device: String,
    /// How long (30m, 2h; default: until released).
    #[arg(long = "for", value_name = "DURATION", value_parser = crate::units::parse_timeout)]
    pub duration: Option<crate::units::Timeout>,
    /// Why, shown by `list`, `status`, `doctor` and the daemon's log.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Who holds it (default: the login name, the one behind sudo if any). Each holder
    /// has their own hold; the device stays held until the last one ends.
    #[arg(long, value_name = "NAME")]
    pub holder: Option<String>,
}

impl Args {
    /// `daxplug hold DEV [--for D] [--reason TEXT] [--holder NAME]`.
    pub fn run(self, m: &Machine) -> anyhow::Result<(String, Exit)> {
        let seconds = self.duration.and_then(|d| d.0).map(|d| d.as_secs());
        on_machine(m, true, |b| {
            hold(
                b.host().as_ref(),
                &self.device,
                seconds,
                self.reason.clone(),
                self.holder.as_deref(),
            )
        })
    }
}

fn hold(
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
    let mut out = format!("{name} is {}.\n", &taken.hold.phrase());
    if let Some(old) = &taken.replaced {
        let _ = writeln!(
            out,
            "  This replaces {who}'s earlier hold ({}).",
            old.until_phrase()
        );
    }
    for other in &taken.others {
        let _ = writeln!(out, "  Also {}.", other.phrase());
    }
    if let Some(h) = holds::held(&host.run_dir(), name) {
        let _ = writeln!(
            out,
            "The daemon leaves {name} alone {} (the last hold to end).",
            &h.until_phrase()
        );
    }
    Ok((out, Exit::Ok))
}
