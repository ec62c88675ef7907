//! The policy daemon's core: apply the policy to the devices present, detect drift, restore
//! or report it with backoff, and keep the numbers the metrics endpoint serves. The event
//! sources (netlink, the model's uevent log) live with the callers.

use daxplug_abi::DaxName;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::discover::discover;
use crate::host::Host;
use crate::observe::ObservedState;
use crate::policy::{OnDrift, Policy};
use crate::target::Target;
use crate::topology::Scope;
use crate::transition::{Options, Outcome, TransitionError, recover, set};

/// The first wait before restoring a device that drifted again; doubled each time.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// The longest wait.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What one decision of the daemon came to: the outcome of the transition it ran, or one
/// of the daemon's own answers when it ran none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionResult {
    /// The device already was in its rule's state.
    Ok,
    /// Another controller changed it; the rule only reports.
    DriftReported,
    /// Restored too often in a row: waiting before the next try.
    Backoff,
    /// The kernel leaked the device's range: nothing to run until reboot.
    Stuck,
    /// An operator holds the device for maintenance (`daxplug hold`): left alone.
    Held,
    /// The daemon ran a transition, which ended so.
    Transition(Outcome),
}

impl DecisionResult {
    /// The token used in logs and JSON (a transition's is its outcome's).
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionResult::Ok => "ok",
            DecisionResult::DriftReported => "drift_reported",
            DecisionResult::Backoff => "backoff",
            DecisionResult::Stuck => "stuck",
            DecisionResult::Held => "held",
            DecisionResult::Transition(o) => o.as_str(),
        }
    }

    /// Whether the device is where its rule wants it.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            DecisionResult::Ok
                | DecisionResult::Held
                | DecisionResult::Transition(Outcome::Done | Outcome::NoChange | Outcome::DryRun)
        )
    }
}

impl Serialize for DecisionResult {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for DecisionResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for DecisionResult {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One decision of the daemon: a structured log line.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The device.
    pub device: DaxName,
    /// The rule (1-based), if one matched.
    pub rule: Option<usize>,
    /// Its observed state before.
    pub from: ObservedState,
    /// What the policy wants.
    pub to: Target,
    /// What it came to.
    pub result: DecisionResult,
    /// Why, when not done.
    pub reason: Option<String>,
    /// Its observed state after.
    pub end: Option<ObservedState>,
    /// A dry run's plan: the commands it would run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<String>,
}

impl Decision {
    /// `key=value` form for logs.
    pub fn log_line(&self) -> String {
        let mut s = format!(
            "device={} rule={} from={} to={} result={}",
            self.device,
            self.rule.map_or_else(|| "-".to_owned(), |r| r.to_string()),
            self.from,
            self.to,
            self.result
        );
        if let Some(end) = self.end {
            let _ = write!(s, " end={end}");
        }
        if let Some(r) = &self.reason {
            let _ = write!(s, " reason={r:?}");
        }
        s
    }
}

#[derive(Debug, Default)]
struct Managed {
    /// The device has been in its desired state since daxplug last checked.
    reached: bool,
    /// Drift already logged for the current episode (report-only rules).
    drift_logged: bool,
    /// Restores in a row without the device staying put.
    restores: u32,
    /// Not before this instant.
    next_allowed: Option<Instant>,
    /// The hold in force was already logged.
    held_logged: bool,
}

/// Numbers for the metrics endpoint.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Per device: observed state, online, movable, normal blocks.
    pub devices: BTreeMap<DaxName, (ObservedState, u64, u64, u64)>,
    /// Transitions by result.
    pub transitions: BTreeMap<Outcome, u64>,
    /// Drift events seen.
    pub drift_events: u64,
    /// Managed devices held for maintenance at the last pass.
    pub held: u64,
    /// Unix time of the last transition.
    pub last_transition: Option<u64>,
}

impl Metrics {
    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP daxplug_device_state Observed state of each dax device (1 for the current state).\n# TYPE daxplug_device_state gauge\n");
        for (d, (state, ..)) in &self.devices {
            for st in ObservedState::ALL {
                let _ = writeln!(
                    s,
                    "daxplug_device_state{{device=\"{d}\",state=\"{st}\"}} {}",
                    u8::from(*state == st)
                );
            }
        }
        for (name, help, idx) in [
            (
                "daxplug_device_blocks_online",
                "Online memory blocks of each device.",
                1,
            ),
            (
                "daxplug_device_blocks_movable",
                "Online memory blocks in ZONE_MOVABLE.",
                2,
            ),
            (
                "daxplug_device_blocks_normal",
                "Online memory blocks in a kernel zone.",
                3,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (d, v) in &self.devices {
                let n = match idx {
                    1 => v.1,
                    2 => v.2,
                    _ => v.3,
                };
                let _ = writeln!(s, "{name}{{device=\"{d}\"}} {n}");
            }
        }
        s.push_str("# HELP daxplug_transitions_total Transitions the daemon ran, by result.\n# TYPE daxplug_transitions_total counter\n");
        for (r, n) in &self.transitions {
            let _ = writeln!(
                s,
                "daxplug_transitions_total{{result=\"{}\"}} {n}",
                r.as_str()
            );
        }
        let _ = writeln!(
            s,
            "# HELP daxplug_drift_events_total Times a managed device left its desired state.\n# TYPE daxplug_drift_events_total counter\ndaxplug_drift_events_total {}",
            self.drift_events
        );
        let _ = writeln!(
            s,
            "# HELP daxplug_held_devices Managed devices held for maintenance (daxplug hold).\n# TYPE daxplug_held_devices gauge\ndaxplug_held_devices {}",
            self.held
        );
        if let Some(t) = self.last_transition {
            let _ = writeln!(
                s,
                "# HELP daxplug_last_transition_timestamp_seconds Unix time of the last transition.\n# TYPE daxplug_last_transition_timestamp_seconds gauge\ndaxplug_last_transition_timestamp_seconds {t}"
            );
        }
        s
    }
}

/// The daemon's state.
pub struct Daemon<'a> {
    host: &'a dyn Host,
    policy: Policy,
    opts: Options,
    managed: BTreeMap<DaxName, Managed>,
    /// What the metrics endpoint serves.
    pub metrics: Metrics,
    /// The policy file, published with the daemon's registration so that `set` can name it.
    pub config: Option<std::path::PathBuf>,
    /// The registration last written.
    registered: Option<crate::holds::DaemonRecord>,
}

impl std::fmt::Debug for Daemon<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("policy", &self.policy)
            .field("managed", &self.managed)
            .finish_non_exhaustive()
    }
}

impl<'a> Daemon<'a> {
    /// A daemon applying `policy` on `host`.
    pub fn new(host: &'a dyn Host, policy: Policy, opts: Options) -> Self {
        Self {
            host,
            policy,
            opts,
            managed: BTreeMap::new(),
            metrics: Metrics::default(),
            config: None,
            registered: None,
        }
    }

    /// Replaces the policy (SIGHUP).
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
        self.managed.clear();
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Finishes or rolls back a transition a crash interrupted.
    pub fn recover(&self) -> Result<Vec<String>, TransitionError> {
        recover(self.host, &self.opts)
    }

    /// Applies the policy to every device present: devices no rule matches are left alone.
    /// Returns one decision per managed device that needed (or got) attention; with
    /// `report_ok`, also one per managed device already in its state.
    pub fn apply(&mut self, report_ok: bool) -> Result<Vec<Decision>, TransitionError> {
        let topo = discover(self.host.kernel(), &Scope::All)?;
        // A daemon that cannot see the blocks must not act on what it cannot see.
        if topo.limited {
            return Err(crate::error::DiscoveryError::IomemHidden.into());
        }
        let mut out = Vec::new();
        // Read once a pass: which devices the rules take, and the holds in force.
        let mut managed = Vec::new();
        let holds = crate::holds::holds(&self.host.run_dir());
        self.metrics.held = 0;
        for dev in &topo.devices {
            self.metrics.devices.insert(
                dev.name,
                (
                    dev.state,
                    dev.counts.online,
                    dev.counts.movable,
                    dev.counts.normal,
                ),
            );
            let Some(rule) = self
                .policy
                .rule_for(self.host.kernel(), &topo, dev)
                .cloned()
            else {
                continue;
            };
            managed.push((dev.name, rule.state.to_string()));
            let m = self.managed.entry(dev.name).or_default();
            let held = holds.iter().find(|h| h.device == dev.name).cloned();
            if held.is_none() {
                m.held_logged = false;
            }
            let decision = |result: DecisionResult,
                            reason: Option<String>,
                            end: Option<ObservedState>| Decision {
                device: dev.name,
                rule: Some(rule.index),
                from: dev.state,
                to: rule.state,
                result,
                reason,
                end,
                plan: Vec::new(),
            };
            if let Some(h) = held {
                self.metrics.held += 1;
                // Released later, the device is applied afresh: not drift, no backoff.
                m.reached = false;
                m.restores = 0;
                m.next_allowed = None;
                if !m.held_logged || report_ok {
                    m.held_logged = true;
                    out.push(decision(
                        DecisionResult::Held,
                        Some(h.reason.map_or_else(
                            || "held for maintenance (daxplug hold)".to_owned(),
                            |r| format!("held for maintenance: {r}"),
                        )),
                        Some(dev.state),
                    ));
                }
                continue;
            }
            if rule.state.satisfied_by(dev.state) {
                if !m.reached {
                    m.restores = 0;
                }
                m.reached = true;
                m.drift_logged = false;
                if report_ok {
                    out.push(decision(DecisionResult::Ok, None, Some(dev.state)));
                }
                continue;
            }
            if dev.state == ObservedState::Stuck {
                if !m.drift_logged {
                    m.drift_logged = true;
                    out.push(decision(
                        DecisionResult::Stuck,
                        Some("the kernel leaked the range: nothing to do until reboot".into()),
                        Some(dev.state),
                    ));
                }
                continue;
            }
            let drifted = m.reached;
            if drifted {
                m.reached = false;
                self.metrics.drift_events += 1;
                if rule.on_drift == OnDrift::Report {
                    m.drift_logged = true;
                    out.push(decision(
                        DecisionResult::DriftReported,
                        Some(format!(
                            "another controller changed it; rule {} only reports",
                            rule.index
                        )),
                        Some(dev.state),
                    ));
                    continue;
                }
            } else if rule.on_drift == OnDrift::Report && m.drift_logged {
                continue;
            }
            if let Some(t) = m.next_allowed.filter(|t| Instant::now() < *t) {
                let wait = t.saturating_duration_since(Instant::now());
                if drifted {
                    out.push(decision(
                        DecisionResult::Backoff,
                        Some(format!(
                            "restored {} times in a row; next try in {} ms",
                            m.restores,
                            wait.as_millis()
                        )),
                        Some(dev.state),
                    ));
                }
                continue;
            }
            let opts = Options {
                force: self.opts.force || rule.force,
                ..self.opts.clone()
            };
            let r = set(self.host, &dev.name.to_string(), rule.state, &opts)?;
            let m = self.managed.entry(dev.name).or_default();
            let result = DecisionResult::Transition(r.outcome);
            if r.outcome == Outcome::Done || r.outcome == Outcome::NoChange {
                m.reached = true;
            }
            // Backoff whenever daxplug had to act again on a device it had already brought
            // to its state, or when acting failed: two controllers cannot ping-pong at speed.
            if drifted || !matches!(r.outcome, Outcome::Done | Outcome::NoChange) {
                m.restores += 1;
                let factor = 1u32 << m.restores.saturating_sub(1).min(6);
                m.next_allowed = Some(Instant::now() + (BACKOFF_START * factor).min(BACKOFF_MAX));
            }
            *self.metrics.transitions.entry(r.outcome).or_default() += 1;
            self.metrics.last_transition = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs());
            out.push(Decision {
                device: dev.name,
                rule: Some(rule.index),
                from: dev.state,
                to: rule.state,
                result,
                reason: r.reason.clone(),
                end: r.end,
                plan: if r.outcome == Outcome::DryRun {
                    r.plan.clone()
                } else {
                    Vec::new()
                },
            });
        }
        if out.iter().any(|d| d.end != Some(d.from)) {
            self.refresh_metrics()?;
        }
        let record = crate::holds::DaemonRecord {
            pid: std::process::id(),
            config: self.config.clone().unwrap_or_default(),
            managed,
        };
        // Written when it changes, not at every pass. Best effort: a run directory that
        // cannot be written only costs `set` the warning.
        if !self.opts.dry_run
            && self.registered.as_ref() != Some(&record)
            && crate::holds::register_daemon(&self.host.run_dir(), &record).is_ok()
        {
            self.registered = Some(record);
        }
        Ok(out)
    }

    /// Withdraws the daemon's registration (it is exiting).
    pub fn unregister(&mut self) {
        crate::holds::unregister_daemon(&self.host.run_dir());
        self.registered = None;
    }

    /// Reads every device again for the metrics.
    fn refresh_metrics(&mut self) -> Result<(), TransitionError> {
        let topo = discover(self.host.kernel(), &Scope::All)?;
        self.metrics.devices = topo
            .devices
            .iter()
            .map(|d| {
                (
                    d.name,
                    (d.state, d.counts.online, d.counts.movable, d.counts.normal),
                )
            })
            .collect();
        Ok(())
    }
}
