//! `daxplug set DEV|all STATE`: whole-device transitions from the command line.

use daxplug_engine::{Report, Scope, Target, discover, set_many};

use crate::exit::Exit;
use crate::human;
use crate::machine::{Machine, on_machine};
use crate::transition::{TransitionArgs, confirmed, declined, output, placement_lines, worst};

/// What `set` was asked for.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The device, such as dax0.0, or `all`.
    #[arg(value_name = "DEV|all")]
    pub device: String,
    /// unplugged, online, online_kernel, online_movable, devdax or famfs.
    #[arg(value_name = "STATE", value_parser = crate::args::TokenParser::<Target>::new())]
    pub state: Target,
    /// With several devices (`set all`): every device's actions and times, not one line
    /// each and a summary.
    #[arg(short, long)]
    pub verbose: bool,
    #[command(flatten)]
    pub common: TransitionArgs,
}

impl Args {
    /// `daxplug set`.
    pub fn run(self, m: &Machine) -> anyhow::Result<(String, Exit)> {
        on_machine(m, !self.common.dry_run, |b| {
            let host = b.host();
            let host = host.as_ref();
            let all = self.device == "all";
            let devices: Vec<String> = if all {
                discover(host.kernel(), &Scope::All)?
                    .devices
                    .into_iter()
                    .map(|d| d.name.to_string())
                    .collect()
            } else {
                // Validates the name and that the device exists before anything else (the
                // transition reads the rest).
                daxplug_engine::discovery::require_device(host.kernel(), &self.device)?;
                vec![self.device.clone()]
            };
            let opts = self.common.options()?;
            if all
                && !self.common.dry_run
                && !confirmed(
                    &format!(
                        "Move every dax device ({}) to {}?",
                        devices.join(", "),
                        self.state
                    ),
                    self.common.yes,
                )
            {
                return Ok(declined());
            }
            let batch = set_many(host, &devices, self.state, &opts)?;
            if devices.is_empty() && !self.common.json {
                return Ok(("No dax devices.\n".to_owned(), Exit::Ok));
            }
            // A dry run prints every device's plan: that is what it is for.
            if batch.reports.len() > 1 && !self.common.json && !self.verbose && !self.common.dry_run
            {
                let (mut text, code) = summary(&batch.reports);
                text.push_str(&placement_lines(&batch.placement));
                return Ok((text, code));
            }
            output(&batch.reports, &batch.placement, self.common.json)
        })
    }
}

/// Several transitions (`set all`): each device's headline, then how many ended each way;
/// `--verbose` gives every device's actions and times instead.
fn summary(reports: &[Report]) -> (String, Exit) {
    let code = worst(reports.iter().map(|r| crate::exit::outcome_code(r.outcome)));
    let mut out = String::new();
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for r in reports {
        let full = human::report(r, true);
        let mut lines = full.lines();
        if let Some(head) = lines.next() {
            out.push_str(head);
            out.push('\n');
        }
        // A reason says why a device did not end as asked: it stays.
        for l in lines.filter(|l| l.starts_with("  reason: ")) {
            out.push_str(l);
            out.push('\n');
        }
        *counts.entry(r.outcome.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
    out.push_str(&format!(
        "{} devices: {} (exit {}; --verbose shows each device's actions)\n",
        reports.len(),
        parts.join(", "),
        code.code()
    ));
    (out, code)
}
