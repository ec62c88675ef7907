//! Human-readable sizes and addresses.

/// Formats bytes with binary units: `1 GiB`, `1022 MiB`, `1.5 GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >= 1u64 << (10 * (unit + 1)) {
        unit += 1;
    }
    let scale = 1u64 << (10 * unit);
    if bytes.is_multiple_of(scale) {
        format!("{} {}", bytes / scale, UNITS[unit])
    } else {
        #[allow(clippy::cast_precision_loss)] // display only
        let value = bytes as f64 / scale as f64;
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Formats an inclusive range as `0x140000000-0x17fffffff`.
pub fn range(r: &daxplug_abi::PhysRange) -> String {
    format!("{:#x}-{:#x}", r.start, r.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(1 << 30), "1 GiB");
        assert_eq!(size(1_071_644_672), "1022 MiB");
        assert_eq!(size(3 << 29), "1.5 GiB");
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(0), "0 bytes");
    }
}
