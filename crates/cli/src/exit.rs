//! Exit codes, one per outcome a script may want to tell apart. Documented in
//! `docs/CLI.md`; never renumber one.

use daxplug_engine::DiscoveryError;
use daxplug_kernel::RootError;

/// Success.
pub const OK: u8 = 0;
/// An unexpected failure: an I/O error, or the kernel printed something unparseable.
pub const FAILURE: u8 = 1;
/// Bad usage: unknown option, missing argument, or an argument that is malformed (for
/// example a device name with `/` in it). Nothing was read or changed.
pub const USAGE: u8 = 2;
/// The root is unusable: missing, not a sysfs tree, or no memory hotplug in the kernel.
pub const ENVIRONMENT: u8 = 3;
/// The named device does not exist.
pub const NO_SUCH_DEVICE: u8 = 4;
/// `set` refused: a safety check (pass `--force`), a stuck device, another daxplug busy,
/// the kmem driver missing. Nothing was changed.
pub const REFUSED: u8 = 5;
/// `set` failed or was cancelled (timeout, Ctrl-C, SIGTERM, a block that will not
/// offline) and the device is back in the state it started from.
pub const ROLLED_BACK: u8 = 6;
/// The device is stuck: the kernel leaked its range (blocks or `System RAM (kmem)` left
/// with no driver). Only a reboot frees it.
pub const STUCK: u8 = 7;
/// `set` failed and could not put the device back together: it is left mixed.
pub const TORN: u8 = 8;
/// `doctor` found something wrong (a warning or an error).
pub const RISKS: u8 = 9;

/// A request that cannot be carried out as given (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

fn discovery_code(e: &DiscoveryError) -> u8 {
    match e {
        DiscoveryError::NoMemoryHotplug { .. } | DiscoveryError::IomemHidden => ENVIRONMENT,
        DiscoveryError::InvalidDeviceName { .. } => USAGE,
        DiscoveryError::UnknownDevice { .. } => NO_SUCH_DEVICE,
        DiscoveryError::Parse { .. } | DiscoveryError::Kernel(_) => FAILURE,
    }
}

/// The exit code for an error that reached the top of the program.
pub fn code_for(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<Usage>().is_some()
        || err.downcast_ref::<daxplug_model::UnknownPreset>().is_some()
    {
        return USAGE;
    }
    if let Some(e) = err.downcast_ref::<daxplug_model::StoreError>() {
        return match e {
            daxplug_model::StoreError::Exists { .. } => USAGE,
            _ => ENVIRONMENT,
        };
    }
    if let Some(e) = err.downcast_ref::<DiscoveryError>() {
        return discovery_code(e);
    }
    if let Some(daxplug_engine::TransitionError::Discovery(e)) =
        err.downcast_ref::<daxplug_engine::TransitionError>()
    {
        return discovery_code(e);
    }
    if err.downcast_ref::<RootError>().is_some() {
        return ENVIRONMENT;
    }
    FAILURE
}
