//! The policy daemon's core: apply the policy to the devices present, detect drift, restore
//! or report it with backoff, and keep the numbers the metrics endpoint serves. The event
//! sources (netlink, the model's uevent log) live with the callers.

use daxplug_abi::DaxName;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::discovery::discover;
use crate::discovery::observe::ObservedState;
use crate::discovery::topology::{Scope, Topology};
use crate::host::Host;
use crate::plan::policy::{OnDrift, Policy};
use crate::transition::{Options, Outcome, ReadLock, TransitionError, read_lock, recover, set};

mod decision;
mod metrics;
pub mod nfd;

pub use decision::{Decision, DecisionResult};
pub use metrics::{DaemonCost, Metrics};

/// The first wait before restoring a device that drifted again; doubled each time.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// The longest wait.
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How soon a pass that found another process's transition in flight looks again.
const BUSY_RETRY: Duration = Duration::from_millis(200);

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
    /// When the daemon last restored it.
    last_restore: Option<Instant>,
    /// The kernel refused to take its memory out of a kernel zone: the device as it was
    /// then. Not tried again until it changes (or the policy is reloaded).
    blocked: Option<(ObservedState, crate::discovery::topology::BlockCounts)>,
}

/// Why a device cannot reach its rule before a reboot, and the way out.
fn blocked_reason(rule_state: crate::plan::target::Target) -> String {
    format!(
        "its memory is in a kernel zone (ZONE_NORMAL) and the kernel will not take it offline (EBUSY: unmovable pages), so {rule_state} cannot be reached before a reboot; after one, the boot gate (daxplug-gate.service) keeps it unbound until the daemon onlines it (or boot with memhp_default_state=offline); the daemon tries again only if the device changes"
    )
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
    registered: Option<crate::rundir::holds::DaemonRecord>,
    /// Added to the clock (backoff): a simulated run advances time without waiting.
    pub skew: Duration,
    /// The Node Feature Discovery file the policy asks for.
    features: Option<nfd::FeatureFile>,
    /// Every device seen so far: one the daemon first sees unbound behind a closed boot
    /// gate, with no rule for it, is admitted to its driver; one seen bound before and
    /// unbound later was unbound on purpose, and is left alone.
    seen: std::collections::BTreeSet<DaxName>,
    /// What the pass did besides decisions (the boot gate, holds that ended), for the log
    /// (taken by the caller).
    pub notes: Vec<String>,
    /// The last error writing the Node Feature Discovery file, if the last write failed.
    nfd_error: Option<String>,
    /// A pass found another process's transition in flight: look again then.
    busy_retry: Option<Instant>,
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
            opts,
            managed: BTreeMap::new(),
            metrics: Metrics::default(),
            config: None,
            registered: None,
            skew: Duration::ZERO,
            features: policy_features(&policy),
            seen: std::collections::BTreeSet::new(),
            notes: Vec::new(),
            nfd_error: None,
            busy_retry: None,
            policy,
        }
    }

    /// Takes the feature file's path from the policy (a new path starts a new file).
    fn sync_features(&mut self) {
        let wanted = self.policy.nfd_file.as_deref();
        if self.features.as_ref().map(nfd::FeatureFile::path) != wanted {
            self.features = policy_features(&self.policy);
        }
    }

    /// The metrics and the feature file, from a fresh reading. A feature file that cannot be
    /// written fails the pass (logged; the next event or sweep tries again).
    /// Metrics and Node Feature Discovery labels. The labels are an extra: a file that
    /// cannot be written is logged (when the error changes) and counted, and the rules
    /// apply all the same.
    fn publish(&mut self, topo: &Topology) {
        self.metrics.observe(topo);
        if let Some(f) = &mut self.features {
            let result = f.update(topo);
            self.metrics.nfd_written = Some(result.is_ok());
            let error = result.err().map(|e| e.to_string());
            if error != self.nfd_error {
                self.notes.push(match &error {
                    Some(e) => format!(
                        "node_feature_discovery: cannot write {}: {e}; labels are not updated, the rules apply all the same",
                        f.path().display()
                    ),
                    None => format!(
                        "node_feature_discovery: {} is written again",
                        f.path().display()
                    ),
                });
                self.nfd_error = error;
            }
        }
    }

    fn now(&self) -> Instant {
        Instant::now() + self.skew
    }

    /// When a device waiting out its backoff may be tried again: the earliest such time,
    /// which the event loop sleeps until when no event comes first.
    pub fn next_retry(&self) -> Option<Instant> {
        self.managed
            .values()
            .filter(|m| !m.reached)
            .filter_map(|m| m.next_allowed)
            .min()
            .map(|t| t - self.skew)
            .into_iter()
            .chain(self.busy_retry)
            .min()
    }

    /// Replaces the policy (SIGHUP).
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
        self.managed.clear();
        self.sync_features();
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
        // Never read the machine while another process's transition runs (see
        // `ReadGuard`: the kernel can deadlock on the memory tiers); look again shortly.
        let guard = match read_lock(self.host) {
            ReadLock::Held(g) => g,
            ReadLock::Busy => {
                self.busy_retry = Some(Instant::now() + BUSY_RETRY);
                return Ok(Vec::new());
            }
        };
        self.busy_retry = None;
        let topo = discover(self.host.kernel(), &Scope::All)?;
        // A daemon that cannot see the blocks must not act on what it cannot see.
        if topo.limited {
            return Err(crate::discovery::error::DiscoveryError::IomemHidden.into());
        }
        self.publish(&topo);
        // The daemon's own transitions take the lock themselves.
        drop(guard);
        let now = self.now();
        // Devices that left the bus take their state with them: a machine whose devices
        // come and go must not grow the daemon.
        self.managed
            .retain(|name, _| topo.devices.iter().any(|d| d.name == *name));
        // A device that comes back under the same name (a region carved again) is new.
        self.seen
            .retain(|name| topo.devices.iter().any(|d| d.name == *name));
        let mut out = Vec::new();
        // Read once a pass: which devices the rules take, and the holds in force.
        let mut managed = Vec::new();
        let holds = crate::rundir::holds::holds(&self.host.run_dir());
        self.metrics.held = 0;
        let gate = crate::gate::state(self.host.kernel(), &self.host.run_dir()).ok();
        if !self.opts.dry_run
            && let Some(crate::gate::GateState::Closed(record)) = &gate
        {
            let present: Vec<DaxName> = topo.devices.iter().map(|d| d.name).collect();
            if let Err(e) = crate::gate::forget_gone(&self.host.run_dir(), record, &present) {
                self.notes
                    .push(format!("the boot gate's record could not be updated: {e}"));
            }
        }
        self.metrics.gate_closed = gate.as_ref().map(|g| g.record().is_some());
        for dev in &topo.devices {
            let first_sight = self.seen.insert(dev.name);
            let Some(rule) = self
                .policy
                .rule_for(self.host.kernel(), &topo, dev)
                .cloned()
            else {
                if first_sight
                    && !self.opts.dry_run
                    && let Some(crate::gate::GateState::Closed(record)) = &gate
                {
                    self.admit(record, dev);
                }
                continue;
            };
            managed.push((dev.name, rule.state.to_string()));
            let m = self.managed.entry(dev.name).or_default();
            let held = crate::rundir::holds::longest(
                holds.iter().filter(|h| h.device == dev.name).cloned(),
            );
            if held.is_none() && m.held_logged {
                m.held_logged = false;
                self.notes.push(format!(
                    "device={} hold ended (lapsed or released): rule {} applies again",
                    dev.name, rule.index
                ));
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
                        Some(format!(
                            "held for maintenance by {}{}{}",
                            h.holder,
                            h.until.map_or_else(
                                || " until released".to_owned(),
                                |u| format!(" until {}", crate::units::utc(u))
                            ),
                            h.reason
                                .as_deref()
                                .map_or_else(String::new, |r| format!(": {r}"))
                        )),
                        Some(dev.state),
                    ));
                }
                continue;
            }
            if let Some((state, counts)) = m.blocked {
                if state == dev.state && counts == dev.counts {
                    continue;
                }
                // The device changed: the kernel may take it now.
                m.blocked = None;
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
                // Backoff is for a ping-pong: a device that stayed put longer than the
                // longest wait since the last restore starts afresh.
                if m.last_restore
                    .is_some_and(|t| now.saturating_duration_since(t) > BACKOFF_MAX)
                {
                    m.restores = 0;
                }
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
            if let Some(t) = m.next_allowed.filter(|t| now < *t) {
                let wait = t.saturating_duration_since(now);
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
                respect_holds: true,
                ..self.opts.clone()
            };
            let r = set(self.host, &dev.name.to_string(), rule.state, &opts)?;
            let m = self.managed.entry(dev.name).or_default();
            // Memory in a kernel zone the kernel will not offline stays there until a
            // reboot: retrying only repeats the rollback, so say so once and stop.
            if r.outcome == Outcome::RolledBack && r.offline_refused && dev.counts.normal > 0 {
                m.blocked = Some((dev.state, dev.counts));
                m.reached = false;
                *self.metrics.transitions.entry(r.outcome).or_default() += 1;
                out.push(Decision {
                    device: dev.name,
                    rule: Some(rule.index),
                    from: dev.state,
                    to: rule.state,
                    result: DecisionResult::BlockedUntilReboot,
                    reason: Some(blocked_reason(rule.state)),
                    end: r.end,
                    plan: Vec::new(),
                });
                continue;
            }
            let result = DecisionResult::Transition(r.outcome);
            if r.outcome == Outcome::Done || r.outcome == Outcome::NoChange {
                m.reached = true;
            }
            // Backoff whenever daxplug had to act again on a device it had already brought
            // to its state, or when acting failed: two controllers cannot ping-pong at speed.
            if drifted || !matches!(r.outcome, Outcome::Done | Outcome::NoChange) {
                m.last_restore = Some(Instant::now() + self.skew);
                m.restores += 1;
                let factor = 1u32 << m.restores.saturating_sub(1).min(6);
                m.next_allowed =
                    Some(Instant::now() + self.skew + (BACKOFF_START * factor).min(BACKOFF_MAX));
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
                // The knob of a rule is `force = true`, not the command line's flag.
                reason: r
                    .reason
                    .as_deref()
                    .map(|why| why.replace("pass --force", "set force = true in the rule")),
                end: r.end,
                plan: if r.outcome == Outcome::DryRun {
                    r.plan.clone()
                } else {
                    Vec::new()
                },
            });
        }
        self.metrics.blocked = self
            .managed
            .iter()
            .filter(|(_, m)| m.blocked.is_some())
            .map(|(d, _)| *d)
            .collect();
        if out.iter().any(|d| d.end != Some(d.from)) {
            self.refresh_metrics()?;
        }
        let record = crate::rundir::holds::DaemonRecord {
            pid: std::process::id(),
            started: crate::rundir::holds::process_start(std::process::id()),
            config: self.config.clone().unwrap_or_default(),
            blocked: self
                .metrics
                .blocked
                .iter()
                .filter_map(|d| {
                    let (_, state) = managed.iter().find(|(n, _)| n == d)?;
                    Some((*d, state.clone()))
                })
                .collect(),
            managed,
        };
        // Written when it changes, not at every pass. Best effort: a run directory that
        // cannot be written only costs `set` the warning.
        if !self.opts.dry_run
            && self.registered.as_ref() != Some(&record)
            && crate::rundir::holds::register_daemon(&self.host.run_dir(), &record).is_ok()
        {
            self.registered = Some(record);
        }
        Ok(out)
    }

    /// Lets a device no rule covers, which the closed boot gate kept unbound, bind as the
    /// kernel would have (a zero-sized device, a region's seed, is left: nothing binds it).
    fn admit(
        &mut self,
        record: &crate::gate::GateRecord,
        dev: &crate::discovery::topology::Device,
    ) {
        if dev.driver != crate::discovery::topology::Driver::None
            || dev.size == 0
            || record.admitted.contains(&dev.name)
            || record.present.contains(&dev.name)
        {
            return;
        }
        let note = match crate::gate::admit(self.host.kernel(), &self.host.run_dir(), dev.name) {
            Ok(()) => format!(
                "device={} rule=- result=admitted reason=\"no rule covers it: the boot gate lets it bind as the kernel would\"",
                dev.name
            ),
            Err(e) => format!(
                "device={} rule=- result=failed reason=\"the boot gate could not admit it: {e}\"",
                dev.name
            ),
        };
        self.notes.push(note);
    }

    /// Closes the boot gate, or keeps the record of the one already closed.
    pub fn close_gate(&self) -> Result<crate::gate::GateRecord, crate::gate::GateError> {
        crate::gate::close(
            self.host.kernel(),
            &self.host.run_dir(),
            crate::gate::ClosedBy::Daemon,
        )
    }

    /// When the first maintenance hold with an end lapses: its device's rule applies then.
    pub fn next_hold_lapse(&self) -> Option<Instant> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        // A device stays held until the last of its holds ends.
        let mut lapse: BTreeMap<DaxName, Option<u64>> = BTreeMap::new();
        for h in crate::rundir::holds::holds(&self.host.run_dir()) {
            let e = lapse.entry(h.device).or_insert(h.until);
            *e = match (*e, h.until) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        let until = lapse.into_values().flatten().min()?;
        Some(Instant::now() + Duration::from_secs(until.saturating_sub(now)))
    }

    /// Opens the boot gate (the daemon is stopping: devices bind on their own again).
    pub fn open_gate(&self) -> Result<Option<crate::gate::GateRecord>, crate::gate::GateError> {
        crate::gate::open(self.host.kernel(), &self.host.run_dir())
    }

    /// Withdraws the daemon's registration (it is exiting).
    pub fn unregister(&mut self) {
        crate::rundir::holds::unregister_daemon(&self.host.run_dir());
        self.registered = None;
    }

    /// Reads every device again for the metrics and the feature file.
    fn refresh_metrics(&mut self) -> Result<(), TransitionError> {
        // A transition in flight elsewhere: the next pass publishes.
        let ReadLock::Held(_guard) = read_lock(self.host) else {
            return Ok(());
        };
        let topo = discover(self.host.kernel(), &Scope::All)?;
        self.publish(&topo);
        Ok(())
    }
}

/// The feature file a policy asks for.
fn policy_features(policy: &Policy) -> Option<nfd::FeatureFile> {
    policy.nfd_file.clone().map(nfd::FeatureFile::new)
}
