//! Exit codes, one per outcome a script may want to tell apart.

use daxplug_engine::DiscoveryError;
use daxplug_engine::Outcome;
use daxplug_kernel::RootError;

/// How daxplug exits. The numbers are documented in `docs/CLI.md`; never renumber one.
/// Ordered by how much a script needs to hear about it, so that the worst of several
/// results is their `max()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Ok,
    /// 1: an unexpected failure: an I/O error, or the kernel printed something
    /// unparseable.
    Failure,
    /// 2: bad usage: unknown option, missing argument, or an argument that is malformed
    /// (for example a device name with `/` in it). Nothing was read or changed.
    Usage,
    /// 3: the root is unusable: missing, not a sysfs tree, or no memory hotplug in the
    /// kernel.
    Environment,
    /// 4: the named device does not exist.
    NoSuchDevice,
    /// 5: `set` refused: a safety check (pass `--force`), a stuck device, another daxplug
    /// busy, the kmem driver missing. Nothing was changed.
    Refused,
    /// 6: `set` failed or was cancelled (timeout, Ctrl-C, SIGTERM, a block that will not
    /// offline) and the device is back in the state it started from.
    RolledBack,
    /// 7: the device is stuck: the kernel leaked its range (blocks or `System RAM (kmem)`
    /// left with no driver). Only a reboot frees it.
    Stuck,
    /// 8: `set` failed and could not put the device back together: it is left mixed.
    Torn,
    /// 9: `doctor` found something wrong (a warning or an error).
    Risks,
    /// The exit code of the command `sim run` ran, passed through.
    Command(u8),
}

impl Exit {
    /// Every fixed code, in order.
    pub const ALL: [Exit; 10] = [
        Exit::Ok,
        Exit::Failure,
        Exit::Usage,
        Exit::Environment,
        Exit::NoSuchDevice,
        Exit::Refused,
        Exit::RolledBack,
        Exit::Stuck,
        Exit::Torn,
        Exit::Risks,
    ];

    /// What the code means, for the manual.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "success",
            Exit::Failure => {
                "an unexpected failure: an I/O error, or the kernel printed something unparseable"
            }
            Exit::Usage => {
                "bad usage: an unknown option, a missing or malformed argument; nothing was read or changed"
            }
            Exit::Environment => {
                "the root is unusable: missing, not a sysfs tree, damaged, or no memory hotplug in the kernel"
            }
            Exit::NoSuchDevice => "the named device or region does not exist",
            Exit::Refused => {
                "refused, nothing changed: a safety check (--force), a device a running daemon manages (hold it, or --override), another daxplug busy"
            }
            Exit::RolledBack => {
                "failed or cancelled, and the device is back in the state it started from"
            }
            Exit::Stuck => {
                "the device is stuck: the kernel leaked its range; only a reboot frees it"
            }
            Exit::Torn => "failed and could not put the device back together: it is left mixed",
            Exit::Risks => "doctor found something wrong (a warning or an error)",
            Exit::Command(_) => "sim run: the command's own exit code",
        }
    }

    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Environment => 3,
            Exit::NoSuchDevice => 4,
            Exit::Refused => 5,
            Exit::RolledBack => 6,
            Exit::Stuck => 7,
            Exit::Torn => 8,
            Exit::Risks => 9,
            Exit::Command(c) => c,
        }
    }

    /// Rank for `Ord`: a torn device first, then a stuck one, an unexpected failure, a
    /// rollback, a refusal; everything else below.
    fn severity(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Torn => 6,
            Exit::Stuck => 5,
            Exit::Failure => 4,
            Exit::RolledBack => 3,
            Exit::Refused => 2,
            _ => 1,
        }
    }
}

impl Ord for Exit {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.severity()
            .cmp(&other.severity())
            .then(self.code().cmp(&other.code()))
    }
}

impl PartialOrd for Exit {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A request that cannot be carried out as given (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

fn discovery_code(e: &DiscoveryError) -> Exit {
    match e {
        DiscoveryError::NoMemoryHotplug { .. } | DiscoveryError::IomemHidden => Exit::Environment,
        DiscoveryError::InvalidDeviceName { .. } => Exit::Usage,
        DiscoveryError::UnknownDevice { .. } | DiscoveryError::UnknownRegion { .. } => {
            Exit::NoSuchDevice
        }
        DiscoveryError::Parse { .. } | DiscoveryError::Kernel(_) => Exit::Failure,
        DiscoveryError::Implausible { .. } => Exit::Environment,
    }
}

/// An error and its causes, one sentence each, joined.
pub fn chain(err: &anyhow::Error) -> String {
    err.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// The exit code for an error that reached the top of the program.
pub fn code_for(err: &anyhow::Error) -> Exit {
    if err.downcast_ref::<Usage>().is_some()
        || err.downcast_ref::<daxplug_model::UnknownPreset>().is_some()
    {
        return Exit::Usage;
    }
    if let Some(e) = err.downcast_ref::<daxplug_model::StoreError>() {
        return match e {
            daxplug_model::StoreError::Exists { .. } => Exit::Usage,
            _ => Exit::Environment,
        };
    }
    if let Some(e) = err.downcast_ref::<DiscoveryError>() {
        return discovery_code(e);
    }
    match err.downcast_ref::<daxplug_engine::TransitionError>() {
        Some(daxplug_engine::TransitionError::Discovery(e)) => return discovery_code(e),
        // A journal recovery cannot use: the operator has to look before anything runs.
        Some(daxplug_engine::TransitionError::Journal(_)) => return Exit::Environment,
        _ => {}
    }
    if err.downcast_ref::<RootError>().is_some() {
        return Exit::Environment;
    }
    Exit::Failure
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

/// The exit code of a transition's outcome (`set`, `create`, `resize`, `destroy`).
pub fn outcome_code(o: Outcome) -> Exit {
    match o {
        Outcome::Done | Outcome::NoChange | Outcome::DryRun => Exit::Ok,
        Outcome::Refused => Exit::Refused,
        Outcome::RolledBack => Exit::RolledBack,
        Outcome::Stuck => Exit::Stuck,
        Outcome::Torn => Exit::Torn,
        Outcome::Failed => Exit::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn numbers_are_stable_and_the_worst_is_the_max() {
        let all = Exit::ALL;
        let codes: Vec<u8> = all.iter().map(|e| e.code()).collect();
        assert_eq!(codes, (0..=9).collect::<Vec<u8>>());
        let mut ranked = vec![
            Exit::Refused,
            Exit::Torn,
            Exit::Ok,
            Exit::Stuck,
            Exit::RolledBack,
            Exit::Failure,
        ];
        ranked.sort();
        assert_eq!(
            ranked,
            [
                Exit::Ok,
                Exit::Refused,
                Exit::RolledBack,
                Exit::Failure,
                Exit::Stuck,
                Exit::Torn
            ]
        );
    }
}
