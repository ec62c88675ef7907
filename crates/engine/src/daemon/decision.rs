//! What the daemon decided about a device, and how a decision is logged.

use std::fmt::Write as _;

use daxplug_abi::DaxName;
use serde::Serialize;

use crate::discovery::observe::ObservedState;
use crate::plan::target::Target;
use crate::transition::Outcome;

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
    /// The memory is in a kernel zone and the kernel will not take it offline: the rule
    /// cannot be reached before a reboot, and the daemon stops trying until the device
    /// changes.
    BlockedUntilReboot,
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
            DecisionResult::BlockedUntilReboot => "blocked_until_reboot",
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
