//! Human-readable sizes and addresses.

pub use daxplug_engine::units::{parse_size, size};

/// Formats an inclusive range as `0x140000000-0x17fffffff`.
pub fn range(r: &daxplug_abi::PhysRange) -> String {
    format!("{:#x}-{:#x}", r.start, r.end)
}

/// A duration as the command line takes it: `5m`, `1s`, `250ms`, `2h`.
pub fn duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".to_owned(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}
