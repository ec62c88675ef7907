//! `daxplug daemon`: the event loop around the engine's daemon core. It sleeps until an
//! event source ([`crate::events`]) says something changed, a device's backoff ends, or the
//! sweep interval (a safety net) elapses; it acts once per burst of events.

use crate::exit::Exit;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use daxplug_engine::daemon::{Daemon, DaemonCost, DecisionResult, Metrics};
use daxplug_engine::plan::policy::Policy;
use daxplug_engine::{Host, Options};
use daxplug_kernel::usage;
use daxplug_model::Sim;
use std::fmt::Write as _;

use crate::events::{Control, Inotify, Model, Netlink, Poll, Source, Wake};

use crate::exit;
use crate::machine::{Backend, Machine, on_machine};

/// Where events come from.
enum Events<'a> {
    /// The kernel's `NETLINK_KOBJECT_UEVENT` socket.
    Netlink,
    /// The emulated machine, and its file (shared with other commands between passes):
    /// its actors run, its uevent number is watched.
    Sim(&'a Sim, &'a daxplug_model::MachineFile),
    /// A copied tree under `--root`: inotify on its files.
    Tree(std::path::PathBuf),
    /// No event source reaches the files (the emulated /sys of `sim run`): poll.
    Poll,
}

/// The full sweep's interval where events are seen: a safety net only.
const SWEEP: Duration = Duration::from_secs(300);
/// The polling interval where nothing sends events.
const POLL: Duration = Duration::from_secs(1);
/// A batch of events is acted on once no event came for this long…
const QUIET: Duration = Duration::from_millis(50);
/// …or once it has lasted this long (a storm does not starve the devices).
const BATCH_MAX: Duration = Duration::from_millis(500);

/// What `daemon` was asked for.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy file (TOML; daxplug.toml(5), DAEMON.md in /usr/share/doc/daxplug).
    #[arg(long, value_name = "FILE", default_value = "/etc/daxplug/daxplug.toml")]
    pub config: std::path::PathBuf,
    /// Apply the policy to every present device, report, and exit (for boot units and
    /// scripts): exit 0 when every managed device is in its state.
    #[arg(long)]
    pub once: bool,
    /// Only validate the policy file: errors name the file, line and key.
    #[arg(long)]
    pub check_config: bool,
    /// Stop after this long (for trials on the emulated machine, and tests).
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_timeout)]
    pub exit_after: Option<crate::units::Timeout>,
    /// With --once: print what the daemon would do (each transition's plan) and change
    /// nothing.
    #[arg(long, requires = "once")]
    pub dry_run: bool,
    /// How often to look at every device even though no event came: a safety net
    /// where kernel uevents (or file events on a copied tree) wake the daemon (default
    /// 5m); the polling interval where none can (the emulated /sys of `sim run`,
    /// default 1s).
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_timeout)]
    pub sweep: Option<crate::units::Timeout>,
}

impl Args {
    /// `daxplug daemon`, or `daemon --check-config`.
    pub fn run(self, m: &Machine) -> anyhow::Result<(String, Exit)> {
        if self.check_config {
            return check_config(m, &self.config);
        }
        on_machine(m, !self.dry_run, |b| {
            let args = DaemonArgs {
                config: self.config.clone(),
                once: self.once,
                exit_after: self.exit_after.and_then(|t| t.0),
                dry_run: self.dry_run,
                sweep: self.sweep.and_then(|t| t.0),
            };
            run(b.host().as_ref(), &Events::of(b), &args)
        })
    }
}

/// `daemon --check-config`: the policy is valid, what each rule takes on this machine, and
/// what doctor would say of the policy.
fn check_config(m: &Machine, config: &Path) -> anyhow::Result<(String, Exit)> {
    let p =
        Policy::load(config).map_err(|e| exit::Usage(format!("the policy is not valid: {e}")))?;
    let mut out = check_config_header(config, &p);
    match on_machine(m, false, |b| check_config_on(b.kernel(), config, &p)) {
        Ok((lines, _)) => out.push_str(&lines),
        Err(e) => out.push_str(&format!("  (this machine could not be read: {e:#})\n")),
    }
    Ok((out, Exit::Ok))
}

impl<'a> Events<'a> {
    /// The event source for the machine the daemon runs on.
    fn of(b: &'a Backend<'a>) -> Self {
        match b {
            Backend::Sim(sim, _, store) => Events::Sim(sim, store),
            // The emulated /sys of `sim run` is served through FUSE: no uevent or inotify
            // event reports what the model does.
            Backend::Root(_, root, _)
                if root == Path::new("/")
                    && daxplug_kernel::on_fuse(Path::new(daxplug_kernel::paths::MEMORY)) =>
            {
                Events::Poll
            }
            Backend::Root(_, root, _) if root == Path::new("/") => Events::Netlink,
            Backend::Root(_, root, _) => Events::Tree(root.clone()),
        }
    }
}

/// The daemon's options, once parsed.
struct DaemonArgs {
    config: std::path::PathBuf,
    once: bool,
    exit_after: Option<Duration>,
    dry_run: bool,
    sweep: Option<Duration>,
}

fn log(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "daxplug-daemon: {line}");
    let _ = out.flush();
}

fn serve_metrics(addr: SocketAddr, metrics: Arc<Mutex<Metrics>>) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr} for metrics"))?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            // The whole request head: closing with part of it unread would reset the
            // connection and lose the response.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let body = metrics.lock().map(|m| m.render()).unwrap_or_default();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            // Closed in order: our side first, then whatever the client still sends.
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            while stream.read(&mut buf).is_ok_and(|n| n > 0) {}
        }
    });
    log(&format!("metrics on http://{addr}/metrics"));
    Ok(())
}

/// The resident daemon keeps the boot gate closed while it runs (the boot unit closed it
/// before any dax device appeared; a daemon started later closes it now), so that a device
/// appearing meanwhile binds only by the daemon's hand or its admission.
fn close_gate(daemon: &Daemon<'_>) {
    match daemon.close_gate() {
        Ok(r) if r.by == daxplug_engine::gate::ClosedBy::Boot => {
            log(&format!("boot gate {}", r.describe()));
        }
        Ok(_) => log(
            "boot gate closed: dax drivers bind devices only by the daemon's hand while it runs",
        ),
        // No dax bus (a kernel without CONFIG_DAX, a copied tree without the file): nothing
        // to gate, and nothing the daemon could be raced on.
        Err(e) => log(&format!("boot gate not closed: {e}")),
    }
}

/// Runs the daemon.
fn run(host: &dyn Host, events: &Events<'_>, args: &DaemonArgs) -> anyhow::Result<(String, Exit)> {
    let policy = Policy::load(&args.config)
        .map_err(|e| exit::Usage(format!("the policy is not valid: {e}")))?;
    let cancel = crate::transition::cancel_flag()?;
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .context("cannot install the SIGHUP handler")?;
    let opts = Options {
        cancel: Arc::clone(&cancel),
        dry_run: args.dry_run,
        ..Options::default()
    };
    let metrics_addr = policy.metrics;
    let mut daemon = Daemon::new(host, policy, opts);
    // Named as an absolute path: `set` quotes it from any directory.
    daemon.config = Some(std::path::absolute(&args.config).unwrap_or_else(|_| args.config.clone()));
    if !args.dry_run {
        for line in daemon.recover()? {
            log(&line);
        }
    }
    let shared = Arc::new(Mutex::new(Metrics::default()));
    if let (Some(addr), false) = (metrics_addr, args.once) {
        serve_metrics(addr, Arc::clone(&shared))?;
    }
    let publish = |d: &Daemon<'_>| {
        if let Ok(mut m) = shared.lock() {
            *m = d.metrics.clone();
        }
    };
    if !args.dry_run && !args.once {
        close_gate(&daemon);
    }
    let decisions = daemon.apply(args.once)?;
    for note in std::mem::take(&mut daemon.notes) {
        log(&note);
    }
    for d in &decisions {
        log(&d.log_line());
        for line in &d.plan {
            log(&format!("  would run: {line}"));
        }
    }
    publish(&daemon);
    if args.once {
        daemon.unregister();
        let bad = decisions.iter().any(|d| !d.result.is_settled());
        return Ok((String::new(), if bad { Exit::Failure } else { Exit::Ok }));
    }
    let control = Control::new(
        &args.config,
        &daxplug_engine::rundir::holds(&host.run_dir()),
    )?;
    let mut source: Box<dyn Source + '_> = match events {
        Events::Netlink => Box::new(Netlink::open()?),
        Events::Sim(sim, store) => Box::new(Model::new(sim, store)),
        Events::Tree(root) => Box::new(Inotify::open(root)?),
        Events::Poll => Box::new(Poll),
    };
    let sweep = args
        .sweep
        .unwrap_or(if source.sees_changes() { SWEEP } else { POLL });
    log(&format!(
        "watching {} {}; events: {}; full sweep every {}",
        daemon.policy().rules.len(),
        if daemon.policy().rules.len() == 1 {
            "rule"
        } else {
            "rules"
        },
        source.name(),
        crate::units::duration(sweep)
    ));
    // Between passes, other commands may use the machine (an emulated one's file too).
    source.pass_ends();
    let started = Instant::now();
    let cpu_at_start = usage::cpu_seconds();
    let mut cost = DaemonCost::default();
    let mut next_sweep = started + sweep;
    let stop_at = args.exit_after.map(|d| started + d);
    let mut reloaded = false;
    loop {
        if cancel.load(Ordering::SeqCst) || stop_at.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let changes = control.drain();
        // A release (or a hold lapsing, below) applies the rule at once.
        if changes.holds {
            reloaded = true;
        }
        if reload.swap(false, Ordering::SeqCst) || changes.config {
            match Policy::load(&args.config) {
                Ok(p) => {
                    log(&format!(
                        "reloaded {}: {} rule{}",
                        args.config.display(),
                        p.rules.len(),
                        if p.rules.len() == 1 { "" } else { "s" }
                    ));
                    daemon.set_policy(p);
                    // The new rules apply now, not at the next event.
                    reloaded = true;
                }
                Err(e) => log(&format!("reload refused, keeping the policy in force: {e}")),
            }
        }
        let mut until = if reloaded { Instant::now() } else { next_sweep };
        if let Some(t) = daemon.next_retry() {
            until = until.min(t);
        }
        if let Some(t) = daemon.next_hold_lapse() {
            until = until.min(t);
        }
        if let Some(t) = stop_at {
            until = until.min(t);
        }
        let woke = Instant::now();
        let pass = match source.wait(&control, until.saturating_duration_since(woke)) {
            Wake::Events(n) => {
                cost.events += n;
                // Let the burst settle: act once on all of it.
                let first = Instant::now();
                while first.elapsed() < BATCH_MAX {
                    match source.wait(&control, QUIET) {
                        Wake::Events(m) => cost.events += m,
                        Wake::Overflow => {
                            cost.overflows += 1;
                            break;
                        }
                        Wake::Control | Wake::Timeout => break,
                    }
                }
                Some(first)
            }
            Wake::Overflow => {
                cost.overflows += 1;
                log("events were lost (the kernel's buffer overflowed): looking at every device");
                Some(Instant::now())
            }
            Wake::Control => None,
            Wake::Timeout => {
                let now = Instant::now();
                if reloaded {
                    Some(now)
                } else if now >= next_sweep {
                    cost.sweeps += 1;
                    Some(now)
                } else if daemon.next_retry().is_some_and(|t| now >= t)
                    || daemon.next_hold_lapse().is_some_and(|t| now >= t)
                {
                    Some(now)
                } else {
                    None
                }
            }
        };
        let Some(since) = pass else { continue };
        reloaded = false;
        cost.passes += 1;
        // Any pass looks at every device: the sweep's clock starts again.
        next_sweep = Instant::now() + sweep;
        source.pass_begins();
        let applied = daemon.apply(false);
        for note in std::mem::take(&mut daemon.notes) {
            log(&note);
        }
        match applied {
            Ok(decisions) => {
                for d in decisions {
                    let mut line = d.log_line();
                    if matches!(d.result, DecisionResult::Transition(_)) {
                        let _ = write!(line, " after_event_ms={}", since.elapsed().as_millis());
                    }
                    log(&line);
                }
            }
            // A resident daemon outlives a bad read: the next event or sweep looks again.
            Err(e) => log(&format!(
                "this pass failed, the next event or sweep looks again: {}",
                crate::exit::chain(&anyhow::Error::new(e))
            )),
        }
        source.refresh();
        cost.cpu_seconds = usage::cpu_seconds() - cpu_at_start;
        cost.resident_bytes = usage::resident_bytes();
        daemon.metrics.cost = cost;
        publish(&daemon);
        source.pass_ends();
    }
    source.pass_begins();
    daemon.unregister();
    match daemon.open_gate() {
        Ok(Some(_)) => log("opened the boot gate: dax drivers bind devices on their own again"),
        Ok(None) => {}
        Err(e) => log(&format!("could not open the boot gate: {e}")),
    }
    let elapsed = started.elapsed().as_secs_f64();
    let used = usage::cpu_seconds() - cpu_at_start;
    let rss = usage::resident_bytes();
    log(&format!(
        "stopping after {elapsed:.1} s: {used:.3} s of CPU ({:.3}% of a core), {} events, {} passes, {} sweeps, {} overflows, {} KiB resident",
        used * 100.0 / elapsed.max(1e-9),
        cost.events,
        cost.passes,
        cost.sweeps,
        cost.overflows,
        rss / 1024
    ));
    Ok((String::new(), Exit::Ok))
}

/// The first line of `daemon --check-config`: the policy is valid, with how many rules.
fn check_config_header(
    config: &std::path::Path,
    p: &daxplug_engine::plan::policy::Policy,
) -> String {
    let n = p.rules.len();
    let rules = if n == 1 { "rule" } else { "rules" };
    format!("{}: {n} {rules}, valid\n", config.display())
}

/// The rest of `daemon --check-config`: what each rule takes on this machine (the first
/// rule that matches a device wins), and the warnings doctor gives about the policy (rules
/// that match by name only, a Node Feature Discovery directory that does not exist).
fn check_config_on(
    k: &dyn daxplug_kernel::Kernel,
    config: &std::path::Path,
    p: &daxplug_engine::plan::policy::Policy,
) -> anyhow::Result<(String, crate::exit::Exit)> {
    use std::fmt::Write as _;
    let topo =
        daxplug_engine::discovery::discover(k, &daxplug_engine::discovery::topology::Scope::All)?;
    let mut lines = String::new();
    for (r, devices) in p.assignments(k, &topo) {
        let which = if devices.is_empty() {
            "no device on this machine".to_owned()
        } else {
            devices
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(lines, "  rule {} ({}): {which}", r.index, r.state);
    }
    for f in daxplug_engine::doctor::policy_findings(k, config, p, &topo) {
        let _ = writeln!(lines, "  warning: {}: {}", f.subject, f.evidence);
        let _ = writeln!(lines, "    fix: {}", f.fix);
    }
    Ok((lines, crate::exit::Exit::Ok))
}
