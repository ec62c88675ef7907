//! What every command that changes a device shares (`set`, `create`, `resize`, `destroy`,
//! `recover`): its options, the confirmation on a terminal, Ctrl-C handling, the progress
//! bar, and the reports' output with the exit code of the worst.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use daxplug_engine::discovery::placement::PlacementChange;
use daxplug_engine::{Options, Report};

use crate::exit::Exit;
use crate::human;
use crate::json::{SetJson, TransitionJson};

/// The options of every command that changes a device: `set`, `create`, `resize`,
/// `destroy`.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct TransitionArgs {
    /// Give up and roll back after this long (30s, 500ms, 2m; 0 for never).
    #[arg(short, long, value_name = "DURATION", default_value = "5m", value_parser = crate::units::parse_timeout)]
    pub timeout: crate::units::Timeout,
    /// Print the plan (every sysfs write in order) and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print one JSON object with a `results` array.
    #[arg(short, long)]
    pub json: bool,
    /// Proceed past a safety check (online_kernel, a /dev/daxX.Y in use, leaving famfs);
    /// the message of the check says what it risks.
    #[arg(short, long)]
    pub force: bool,
    /// Do not ask first: `set all` and `destroy` ask for a yes on a terminal.
    #[arg(short, long)]
    pub yes: bool,
    /// Change a device a running daemon manages: it is held for maintenance (the daemon
    /// leaves it alone) until `daxplug release DEV`.
    #[arg(long = "override")]
    pub daemon_override: bool,
}

impl TransitionArgs {
    /// The engine's options for these arguments: Ctrl-C and SIGTERM cancel and roll back,
    /// a progress bar on a terminal, and a line when the lock is waited for.
    pub fn options(&self) -> anyhow::Result<Options> {
        Ok(Options {
            timeout: self.timeout.0,
            force: self.force,
            dry_run: self.dry_run,
            daemon_override: self.daemon_override,
            cancel: if self.dry_run {
                Arc::new(AtomicBool::new(false))
            } else {
                cancel_flag()?
            },
            progress: progress_bar(self.json),
            on_wait: Some(Arc::new(|what: String| eprintln!("daxplug: {what}..."))),
            // Only for the end-to-end tests' proof that they catch a broken protocol.
            test_hooks: daxplug_engine::TestHooks {
                broken_commit: std::env::var_os("DAXPLUG_TEST_BREAK_PROTOCOL").is_some(),
                ..Default::default()
            },
            ..Options::default()
        })
    }
}

/// Of several outcomes, the one a script most needs to hear about.
pub fn worst(codes: impl IntoIterator<Item = Exit>) -> Exit {
    codes.into_iter().max().unwrap_or(Exit::Ok)
}

/// Asks `question` on a terminal; `true` without one (a script), or with `--yes`.
pub fn confirmed(question: &str, yes: bool) -> bool {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if yes || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return true;
    }
    let mut err = std::io::stderr();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// What a declined confirmation prints: nothing changed.
pub fn declined() -> (String, Exit) {
    (
        "daxplug: not confirmed, nothing changed\n".to_owned(),
        Exit::Refused,
    )
}

/// Installs Ctrl-C / SIGTERM handling (cancel and roll back) and the writer wake-up signal.
pub fn cancel_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .context("cannot install the signal handlers")?;
    }
    daxplug_kernel::interrupt::install_wakeup_handler()
        .context("cannot install the signal handlers")?;
    Ok(flag)
}

fn progress_bar(json: bool) -> Option<Arc<dyn Fn(daxplug_engine::Progress) + Send + Sync>> {
    use std::io::IsTerminal as _;
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} blocks")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(Arc::new(move |p: daxplug_engine::Progress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(format!("{}: offlining memory{}", p.device, p.block));
        if p.done + 1 >= p.total {
            bar.finish_and_clear();
        }
    }))
}

/// The reports of transitions, for people or as `set --json`'s object, with the exit code
/// of the worst, and what they changed in placement.
pub fn output(
    reports: &[Report],
    placement: &[PlacementChange],
    json: bool,
) -> anyhow::Result<(String, Exit)> {
    let code = worst(reports.iter().map(|r| crate::exit::outcome_code(r.outcome)));
    if json {
        let mut text = serde_json::to_string_pretty(&SetJson {
            schema_version: crate::json::SCHEMA_VERSION,
            results: reports.iter().map(TransitionJson::new).collect(),
            placement_changes: placement,
            exit_code: code.code(),
        })?;
        text.push('\n');
        return Ok((text, code));
    }
    let mut text: String = reports.iter().map(|r| human::report(r, true)).collect();
    text.push_str(&placement_lines(placement));
    Ok((text, code))
}

/// What the transitions changed in placement, a line each.
pub fn placement_lines(changes: &[PlacementChange]) -> String {
    changes
        .iter()
        .map(|c| format!("placement: {}\n", c.sentence()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_outcome_wins() {
        assert_eq!(
            worst([Exit::Ok, Exit::RolledBack, Exit::Refused]),
            Exit::RolledBack
        );
        assert_eq!(worst([Exit::Stuck, Exit::Torn]), Exit::Torn);
        assert_eq!(worst([]), Exit::Ok);
    }
}
