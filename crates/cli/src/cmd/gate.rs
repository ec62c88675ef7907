//! `daxplug gate`: the boot gate (engine `gate`), closed by `daxplug-gate.service` early at
//! boot so that no dax device binds on its own before the daemon has applied the policy.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use daxplug_engine::gate::{self, ClosedBy, GateState};
use daxplug_kernel::Kernel;
use serde_json::json;

use crate::exit::Exit;
use crate::machine::{Machine, on_machine};

/// `daxplug gate ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum GateCommand {
    /// Close the gate: the dax bus's drivers_autoprobe off, so that a dax device that
    /// appears stays unbound (kmem loaded by udev, a rule or built in binds nothing, and no
    /// memory is onlined) until the daemon binds it as its policy says or admits it. The
    /// state to restore is kept in RUN/daxplug/gate.json.
    Close {
        /// As the early boot unit (daxplug-gate.service): close only when the policy file
        /// exists and is valid (otherwise no daemon would ever open the gate), and record
        /// that the boot closed it.
        #[arg(long)]
        boot: bool,
        /// The policy file --boot checks.
        #[arg(long, value_name = "FILE", default_value = "/etc/daxplug/daxplug.toml")]
        config: PathBuf,
    },
    /// Open the gate: drivers_autoprobe back as it was; devices bind on their own again.
    /// The daemon does this when it stops.
    Open,
    /// Whether the gate is closed, since when, who closed it, which devices were already
    /// bound then (those it could not protect) and which it admitted.
    Status {
        /// Print one JSON object.
        #[arg(short, long)]
        json: bool,
    },
}

impl GateCommand {
    /// Whether the command writes to the machine.
    pub fn writes(&self) -> bool {
        !matches!(self, GateCommand::Status { .. })
    }
}

impl GateCommand {
    /// `daxplug gate ...`.
    pub fn run(self, m: &Machine) -> anyhow::Result<(String, Exit)> {
        on_machine(m, self.writes(), |b| {
            run(b.kernel(), &b.host().run_dir(), &self)
        })
    }
}

fn run(k: &dyn Kernel, run_dir: &Path, cmd: &GateCommand) -> anyhow::Result<(String, Exit)> {
    match cmd {
        GateCommand::Close { boot, config } => {
            let by = if *boot {
                if let Err(why) = boot_policy(config) {
                    return Ok((
                        format!("boot gate left open: {why}; dax devices bind on their own.\n"),
                        Exit::Ok,
                    ));
                }
                ClosedBy::Boot
            } else {
                ClosedBy::Operator
            };
            let r = gate::close(k, run_dir, by).context("cannot close the boot gate")?;
            let mut out = "boot gate closed: dax drivers bind no device on their own until the daemon has decided (drivers_autoprobe 0)".to_owned();
            if !r.bound_before.is_empty() {
                out.push_str(&format!(
                    "; already bound, so not protected: {} (bound by the initramfs or a built-in driver: boot with memhp_default_state=offline to keep their memory offline)",
                    gate::describe_bound(&r.bound_before)
                ));
            }
            out.push_str(".\n");
            Ok((out, Exit::Ok))
        }
        GateCommand::Open => {
            let r = gate::open(k, run_dir).context("cannot open the boot gate")?;
            Ok((
                match r {
                    Some(r) => format!(
                        "boot gate opened: drivers_autoprobe back to {}; dax devices bind on their own again.\n",
                        r.autoprobe_before
                    ),
                    None => "the boot gate was not closed.\n".to_owned(),
                },
                Exit::Ok,
            ))
        }
        GateCommand::Status { json } => {
            let s = gate::state(k, run_dir).context("cannot read the boot gate")?;
            Ok((
                if *json {
                    status_json(&s) + "\n"
                } else {
                    status_text(&s)
                },
                Exit::Ok,
            ))
        }
    }
}

/// Why the boot unit must not close the gate: no valid policy with a rule.
fn boot_policy(config: &Path) -> Result<(), String> {
    if !config.exists() {
        return Err(format!("{} does not exist", config.display()));
    }
    daxplug_engine::plan::policy::Policy::load(config)
        .map(|_| ())
        .map_err(|e| format!("the policy is not valid: {e}"))
}

fn status_text(s: &GateState) -> String {
    let Some(r) = s.record() else {
        return "boot gate: open (dax drivers bind devices as they appear)\n".to_owned();
    };
    let mut out = format!("boot gate: {} ({})\n", s.as_str(), r.describe());
    if matches!(s, GateState::Breached(_)) {
        out.push_str(
            "  drivers_autoprobe is 1 again: something else turned it on, and devices bind on their own\n",
        );
    }
    if !r.admitted.is_empty() {
        out.push_str(&format!(
            "  admitted (no rule covers them): {}\n",
            r.admitted
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

/// The `gate status --json` object (docs/JSON.md).
pub fn status_json(s: &GateState) -> String {
    let r = s.record();
    json!({
        "gate": s.as_str(),
        "closed_by": r.map(|r| r.by),
        "closed_at": r.map(|r| r.closed_at),
        "uptime_at_close": r.and_then(|r| r.uptime),
        "bound_before": r.map_or_else(Vec::new, |r| r.bound_before.iter().map(|(d, drv)| json!({"device": d.to_string(), "driver": drv})).collect()),
        "admitted": r.map_or_else(Vec::new, |r| r.admitted.iter().map(ToString::to_string).collect()),
    })
    .to_string()
}
