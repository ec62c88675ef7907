//! Faults armed on demand: each is consumed by the operation it breaks.

use std::collections::BTreeSet;

use daxplug_kernel::Errno;
use serde::{Deserialize, Serialize};

/// Faults waiting to fire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    /// Extra migration passes every offline needs (slow offlining).
    pub slow_offline_passes: u32,
    /// Deliver a signal to the client when its multi-step operations reach these step
    /// numbers (`client_steps`): the offline in progress fails with `EINTR`.
    pub signal_at_steps: BTreeSet<u64>,
    /// The next N memory adds fail with `ENOMEM`.
    pub add_enomem: u32,
    /// The next N block onlines fail with `ENOMEM`.
    pub online_enomem: u32,
    /// The next offline is vetoed by a memory notifier with this errno.
    #[serde(with = "errno_opt")]
    pub notifier_veto: Option<Errno>,
    /// Remove this device from the bus (forcing its driver off) at this client step.
    pub remove_device_at: Option<(String, u64)>,
}

mod errno_opt {
    use daxplug_kernel::Errno;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Errno>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(e) => s.serialize_some(&e.raw()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Errno>, D::Error> {
        Ok(Option::<i32>::deserialize(d)?.map(Errno::from_raw))
    }
}
