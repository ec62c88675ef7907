//! Sizes, durations and addresses as people write and read them: the engine's units, and the
//! forms clap parses them in.

use std::time::Duration;

pub use daxplug_engine::units::{duration, parse_duration, parse_size, size};

/// Formats an inclusive range as `0x140000000-0x17fffffff`.
pub fn range(r: &daxplug_abi::PhysRange) -> String {
    format!("{:#x}-{:#x}", r.start, r.end)
}

/// A duration option (`--timeout`, `--for`, `--sweep`): `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Option<Duration>);

/// Parses a duration option for clap.
pub fn parse_timeout(text: &str) -> Result<Timeout, String> {
    parse_duration(text).map(Timeout)
}

/// A size argument: what is wrong with it names the argument (`--size: ...`).
pub fn size_arg(text: &str, what: &str) -> Result<u64, crate::exit::Usage> {
    parse_size(text).map_err(|e| crate::exit::Usage(format!("{what}: {e}")))
}
