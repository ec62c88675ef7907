//! `daxplug set` and `daxplug recover`: whole-device transitions from the command line.

use crate::exit::Exit;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use daxplug_engine::{
    Host, ObservedState, Options, Outcome, Report, Scope, Target, discover, recover, set,
};

use daxplug_engine::discovery::placement::{self, Placement, PlacementChange, read_placement};
use daxplug_engine::discovery::{Detail, discover_with};

use crate::json::{RecoverJson, SetJson, TransitionJson};

/// A `--timeout`: `None` waits as long as the kernel does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Option<Duration>);

/// Parses a `--timeout` for clap.
pub fn parse_timeout(text: &str) -> Result<Timeout, String> {
    parse_duration(text).map(Timeout)
}

/// Parses `30s`, `500ms`, `2m`, `1h`, `2d` or plain seconds; `0` means no timeout.
pub fn parse_duration(text: &str) -> Result<Option<Duration>, String> {
    let err = || {
        format!(
            "{text:?} is not a duration: expected a number with ms, s, m, h or d (30s, 500ms, 2m, 2d; a bare number is seconds), or 0 for none"
        )
    };
    let (num, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |i| text.split_at(i));
    let n: f64 = num.parse().map_err(|_| err())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return Err(err()),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(err());
    }
    // A deadline is a point in time: one beyond any transition's life is a mistake, and
    // would overflow the clock arithmetic.
    const LONGEST: f64 = 366.0 * 24.0 * 3600.0;
    if secs > LONGEST {
        return Err(format!(
            "{text:?} is longer than a year: give a shorter duration, or 0 for none"
        ));
    }
    Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs)))
}

/// Of several outcomes, the one a script most needs to hear about.
fn worst(codes: impl IntoIterator<Item = Exit>) -> Exit {
    codes.into_iter().max().unwrap_or(Exit::Ok)
}

/// Options from the command line.
#[derive(Debug)]
pub struct SetArgs {
    /// `daxX.Y` or `all`.
    pub device: String,
    /// The state asked for.
    pub target: Target,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--json`.
    pub json: bool,
    /// `--force`.
    pub force: bool,
    /// `--override`.
    pub daemon_override: bool,
    /// `--verbose`.
    pub verbose: bool,
    /// `--yes`.
    pub yes: bool,
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

/// `daxplug set`.
pub fn run(host: &dyn Host, args: &SetArgs) -> anyhow::Result<(String, Exit)> {
    let target = args.target;
    let devices: Vec<String> = if args.device == "all" {
        discover(host.kernel(), &Scope::All)?
            .devices
            .into_iter()
            .map(|d| d.name.to_string())
            .collect()
    } else {
        // Validates the name and that the device exists before anything else (the
        // transition reads the rest).
        daxplug_engine::discovery::require_device(host.kernel(), &args.device)?;
        vec![args.device.clone()]
    };
    let opts = options(
        args.timeout,
        args.force,
        args.dry_run,
        args.json,
        args.daemon_override,
    )?;
    if args.device == "all"
        && !args.dry_run
        && !confirmed(
            &format!(
                "Move every dax device ({}) to {target}?",
                devices.join(", ")
            ),
            args.yes,
        )
    {
        return Ok(declined());
    }
    let before = placement_before(host, args.dry_run);
    let mut reports = Vec::new();
    for d in &devices {
        reports.push(set(host, d, target, &opts)?);
    }
    if devices.is_empty() && !args.json {
        return Ok(("No dax devices.\n".to_owned(), Exit::Ok));
    }
    let placement = before
        .map(|b| placement_changes(host, &devices, &b))
        .unwrap_or_default();
    // A dry run prints every device's plan: that is what it is for.
    if reports.len() > 1 && !args.json && !args.verbose && !args.dry_run {
        let (mut text, code) = summary(&reports);
        text.push_str(&placement_lines(&placement));
        return Ok((text, code));
    }
    output_with(&reports, &placement, args.json)
}

/// How long a read outside a transition waits for another process's transition to end
/// (`daxplug_engine::transition::ReadGuard` says why it waits at all).
pub const READ_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// What changed in the placement of the devices' target nodes since `before`.
fn placement_changes(
    host: &dyn Host,
    devices: &[String],
    before: &Placement,
) -> Vec<PlacementChange> {
    let k = host.kernel();
    let _read = daxplug_engine::transition::read_lock_wait(host, READ_WAIT);
    let Ok(topo) = discover_with(k, &Scope::Devices(devices.to_vec()), Detail::Counts) else {
        return Vec::new();
    };
    placement::changes(
        before,
        &topo.placement,
        topo.target_nodes(),
        topo.nodes.has_cpu.as_ref(),
    )
}

fn placement_lines(changes: &[PlacementChange]) -> String {
    changes
        .iter()
        .map(|c| format!("placement: {}\n", c.sentence()))
        .collect()
}

/// Several transitions (`set all`): each device's headline, then how many ended each way;
/// `--verbose` gives every device's actions and times instead.
fn summary(reports: &[Report]) -> (String, Exit) {
    let code = worst(reports.iter().map(|r| crate::exit::outcome_code(r.outcome)));
    let mut out = String::new();
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for r in reports {
        let full = human(r, true);
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

/// The options of a transition from the command line's.
pub fn options(
    timeout: Option<Duration>,
    force: bool,
    dry_run: bool,
    json: bool,
    daemon_override: bool,
) -> anyhow::Result<Options> {
    Ok(Options {
        timeout,
        force,
        dry_run,
        daemon_override,
        cancel: if dry_run {
            Arc::new(AtomicBool::new(false))
        } else {
            cancel_flag()?
        },
        progress: progress_bar(json),
        on_wait: Some(Arc::new(|what: String| eprintln!("daxplug: {what}..."))),
        // Only for the end-to-end tests' proof that they catch a broken protocol.
        test_hooks: daxplug_engine::TestHooks {
            broken_commit: std::env::var_os("DAXPLUG_TEST_BREAK_PROTOCOL").is_some(),
            ..Default::default()
        },
        ..Options::default()
    })
}

/// What onlining or unplugging does to placement (tiers, demotion, interleave weights) is
/// read around the transitions: the placement before, unless a dry run changes nothing.
pub fn placement_before(host: &dyn Host, dry_run: bool) -> Option<Placement> {
    if dry_run {
        return None;
    }
    let _read = daxplug_engine::transition::read_lock_wait(host, READ_WAIT);
    read_placement(host.kernel()).ok()
}

/// The reports of transitions, for people or as `set --json`'s object, with the exit code
/// of the worst, and what they changed in placement since `before` (for the devices that
/// are still there).
pub fn output(
    host: &dyn Host,
    reports: &[Report],
    before: Option<&Placement>,
    json: bool,
) -> anyhow::Result<(String, Exit)> {
    let devices: Vec<String> = reports
        .iter()
        .filter(|r| r.end.is_some())
        .map(|r| r.device.clone())
        .collect();
    let placement = match before {
        Some(b) if !devices.is_empty() => placement_changes(host, &devices, b),
        _ => Vec::new(),
    };
    output_with(reports, &placement, json)
}

/// [`output`], with what the transitions changed in placement.
fn output_with(
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
    let mut text: String = reports.iter().map(|r| human(r, true)).collect();
    text.push_str(&placement_lines(placement));
    Ok((text, code))
}

fn state(s: Option<ObservedState>) -> &'static str {
    s.map_or("unknown", ObservedState::as_str)
}

/// Where a report's device came from and was to go: its states, and for a resize, create
/// or destroy its sizes.
fn ends(r: &Report) -> (String, String) {
    let sized = |s: Option<ObservedState>, bytes: Option<u64>| match bytes {
        Some(b) if r.requested_size.is_some() || r.destroy => {
            format!("{}, {}", state(s), crate::units::size(b))
        }
        _ => state(s).to_owned(),
    };
    let to = if r.destroy {
        "destroyed".to_owned()
    } else {
        match r.requested_size {
            // A resized device keeps its mode: the state it ended in says it best.
            Some(b) => {
                let to = match (r.outcome, r.end) {
                    (Outcome::Done, Some(end)) => end.as_str(),
                    // A resize or create takes the device out of its driver: asked to be
                    // out of the system, it ends with none, as the real run says.
                    _ if r.target == Target::Unplugged => ObservedState::Unbound.as_str(),
                    _ => r.target.as_str(),
                };
                format!("{to}, {}", crate::units::size(b))
            }
            None => r.target.to_string(),
        }
    };
    (sized(r.start, r.start_size), to)
}

/// One report for people; `times` adds how long each step took.
pub fn human(r: &Report, times: bool) -> String {
    let mut out = String::new();
    let (from, to) = ends(r);
    let protocol = match r.protocol {
        daxplug_engine::Protocol::Native => " (kernel's daxX.Y/state)",
        daxplug_engine::Protocol::Fallback => " (daxplug's protocol: no daxX.Y/state)",
        daxplug_engine::Protocol::None => "",
    };
    let headline = match r.outcome {
        Outcome::Done if times => {
            format!("{from} -> {to}: done in {:.1} ms{protocol}", r.total_millis)
        }
        Outcome::Done => format!("{from} -> {to}: done{protocol}"),
        Outcome::NoChange if r.destroy => {
            "already empty, nothing to do (a region's device 0 stays while the region exists)"
                .to_owned()
        }
        Outcome::NoChange => match (r.requested_size, r.end_size) {
            (Some(_), Some(size)) => format!(
                "already {}, {}, nothing to do",
                state(r.end),
                crate::units::size(size)
            ),
            _ => format!("already {}, nothing to do", state(r.end)),
        },
        Outcome::DryRun => format!("{from} -> {to}{protocol}, would run:"),
        Outcome::Refused => match r.end {
            Some(end) => format!("refused, nothing changed ({end})"),
            None => "refused, nothing changed".to_owned(),
        },
        Outcome::RolledBack if r.end.is_none() && r.start_size == Some(0) => {
            format!("{from} -> {to} failed and was rolled back: the new device was deleted again")
        }
        Outcome::RolledBack => format!(
            "{from} -> {to} failed and was rolled back: the device is {} again",
            state(r.end)
        ),
        Outcome::Stuck => "STUCK: the kernel leaked the device's range".to_owned(),
        Outcome::Torn => format!(
            "FAILED and could not be put back together: the device is {}",
            state(r.end)
        ),
        Outcome::Failed => format!("{from} -> {to} failed: the device is now {}", state(r.end)),
    };
    let _ = writeln!(out, "{}: {headline}", r.device);
    if let Some(reason) = &r.reason {
        let _ = writeln!(out, "  reason: {reason}");
    }
    for line in &r.recovered {
        let _ = writeln!(out, "  {line}");
    }
    let lines = if r.outcome == Outcome::DryRun {
        &r.plan
    } else {
        &r.actions
    };
    for a in lines {
        let _ = writeln!(out, "    {a}");
    }
    if times && !r.phases.is_empty() {
        let phases: Vec<String> = r
            .phases
            .iter()
            .map(|p| format!("{} {:.1} ms", p.phase, p.millis))
            .collect();
        let settle = if r.settle_millis > 0.0 {
            format!(", {:.1} ms settling", r.settle_millis)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  time: {}; {:.1} ms of it in kernel writes{settle}, {:.1} ms writing the journal",
            phases.join(", "),
            r.kernel_write_millis,
            r.journal_millis
        );
    }
    if r.outcome == Outcome::Stuck {
        let _ = writeln!(
            out,
            "  {} cannot be removed or rebound until the machine reboots; daxplug will not touch it.",
            daxplug_engine::format_block_ids(r.stuck_blocks.iter().copied())
        );
    }
    if r.end == Some(ObservedState::Unbound)
        && r.requested_size.is_none()
        && !r.destroy
        && r.target == Target::Unplugged
        && r.outcome == Outcome::Done
    {
        let _ = writeln!(
            out,
            "  {} now has no driver: its memory is out of the system (this kernel has no daxX.Y/state to keep kmem bound while unplugged). `daxplug set {} online_movable` brings it back.",
            r.device, r.device
        );
    }
    out
}

/// `daxplug recover`.
pub fn run_recover(
    host: &dyn Host,
    json: bool,
    timeout: Option<Duration>,
) -> anyhow::Result<(String, Exit)> {
    let opts = Options {
        timeout,
        cancel: cancel_flag()?,
        ..Options::default()
    };
    let done = recover(host, &opts)?;
    if json {
        let mut text = serde_json::to_string_pretty(&RecoverJson {
            schema_version: crate::json::SCHEMA_VERSION,
            recovered: &done,
        })?;
        text.push('\n');
        return Ok((text, Exit::Ok));
    }
    if done.is_empty() {
        return Ok((
            "Nothing to recover: no interrupted transition in the journal.\n".to_owned(),
            Exit::Ok,
        ));
    }
    Ok((done.into_iter().map(|l| l + "\n").collect(), Exit::Ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Some(Duration::from_secs(30))));
        assert_eq!(
            parse_duration("500ms"),
            Ok(Some(Duration::from_millis(500)))
        );
        assert_eq!(parse_duration("2m"), Ok(Some(Duration::from_secs(120))));
        assert_eq!(parse_duration("10"), Ok(Some(Duration::from_secs(10))));
        assert_eq!(parse_duration("0"), Ok(None));
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            parse_duration("2d"),
            Ok(Some(Duration::from_secs(2 * 86_400)))
        );
        assert!(parse_duration("400d").is_err(), "longer than a year");
        assert!(parse_duration("").is_err());
        // Huge values are refused, not a panic (Duration::from_secs_f64 would overflow).
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("1e400").is_err());
        assert_eq!(
            parse_duration("8784h"),
            Ok(Some(Duration::from_secs(8784 * 3600)))
        );
    }

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
