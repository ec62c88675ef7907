//! The whole-device states a user can ask for.

use std::fmt;
use std::str::FromStr;

use daxplug_abi::OnlineType;
use serde::{Deserialize, Serialize};

use crate::discovery::observe::ObservedState;

/// A requested whole-device state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The memory out of the system: kmem bound with no blocks (atomic kernels), or no
    /// driver at all (how released kernels get there).
    Unplugged,
    /// System RAM, every block online with this type (`online`, `online_kernel` or
    /// `online_movable`).
    Online(OnlineType),
    /// A character device (`device_dax`).
    Devdax,
    /// The memory of a famfs file system (`fsdev_dax`, Linux 7.1+).
    Famfs,
}

/// A target that cannot be asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// `offline` names no whole-device state.
    #[error(
        "offline is not a state a whole device can be put in: its blocks would exist, offline, for any controller to online; use unplugged to take the memory out of the system"
    )]
    Offline,
    /// Anything else.
    #[error(
        "{0:?} is not a device state: expected unplugged, online, online_kernel, online_movable, devdax or famfs"
    )]
    Unknown(String),
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, TargetError> {
        match s {
            "unplugged" => Ok(Target::Unplugged),
            "online" => Ok(Target::Online(OnlineType::Online)),
            "online_kernel" => Ok(Target::Online(OnlineType::OnlineKernel)),
            "online_movable" => Ok(Target::Online(OnlineType::OnlineMovable)),
            "devdax" => Ok(Target::Devdax),
            "famfs" => Ok(Target::Famfs),
            "offline" => Err(TargetError::Offline),
            other => Err(TargetError::Unknown(other.to_owned())),
        }
    }
}

impl Target {
    /// Every state that can be asked for, in the order of the documentation.
    pub const ALL: [Target; 6] = [
        Target::Unplugged,
        Target::Online(OnlineType::Online),
        Target::Online(OnlineType::OnlineKernel),
        Target::Online(OnlineType::OnlineMovable),
        Target::Devdax,
        Target::Famfs,
    ];

    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Unplugged => "unplugged",
            Target::Online(t) => t.as_str(),
            Target::Devdax => "devdax",
            Target::Famfs => "famfs",
        }
    }

    /// Whether a device observed in `state` is in this target state. `unplugged` is met by
    /// a kmem-bound device without blocks and by a device with no driver and nothing left
    /// in the system; `online` by either uniform online state.
    pub fn satisfied_by(self, state: ObservedState) -> bool {
        match self {
            Target::Unplugged => matches!(state, ObservedState::Unplugged | ObservedState::Unbound),
            Target::Online(OnlineType::OnlineMovable) => state == ObservedState::OnlineMovable,
            Target::Online(OnlineType::OnlineKernel) => state == ObservedState::OnlineKernel,
            Target::Online(_) => matches!(
                state,
                ObservedState::OnlineMovable | ObservedState::OnlineKernel
            ),
            Target::Devdax => state == ObservedState::Devdax,
            Target::Famfs => state == ObservedState::Famfs,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_meet() {
        assert_eq!(
            "online_movable".parse(),
            Ok(Target::Online(OnlineType::OnlineMovable))
        );
        assert_eq!("offline".parse::<Target>(), Err(TargetError::Offline));
        assert!(matches!(
            "up".parse::<Target>(),
            Err(TargetError::Unknown(_))
        ));
        assert!(Target::Unplugged.satisfied_by(ObservedState::Unbound));
        assert!(Target::Online(OnlineType::Online).satisfied_by(ObservedState::OnlineKernel));
        assert!(!Target::Online(OnlineType::OnlineMovable).satisfied_by(ObservedState::Mixed));
        assert!(!Target::Unplugged.satisfied_by(ObservedState::Stuck));
    }
}
