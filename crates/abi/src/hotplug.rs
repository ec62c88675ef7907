//! The `memory_hotplug` module parameters (`/sys/module/memory_hotplug/parameters/`).

use crate::error::{ParseError, token};
use crate::number::parse_decimal;
use crate::token_enum;

token_enum! {
    /// `memory_hotplug.memmap_on_memory`: whether hot-added memory carries its own memmap.
    MemmapOnMemory, "a memmap_on_memory mode (Y, N or force)" {
        /// Enabled where the block size allows it.
        Enabled = "Y",
        /// Disabled (the default).
        Disabled = "N",
        /// Enabled even where it wastes memory in every block.
        Force = "force",
    }
}

token_enum! {
    /// `memory_hotplug.online_policy`: which zone a plain `online` picks.
    OnlinePolicy, "an online policy (contig-zones or auto-movable)" {
        /// Keep zones contiguous (the default): usually `Normal` unless next to `Movable`.
        ContigZones = "contig-zones",
        /// Prefer `Movable` within `auto_movable_ratio`.
        AutoMovable = "auto-movable",
    }
}

token_enum! {
    /// A boolean module parameter as the kernel prints and accepts it, such as
    /// `memory_hotplug.auto_movable_numa_aware`.
    BoolParam, "a boolean parameter (Y or N)" {
        Y = "Y",
        /// Not set.
        N = "N",
    }
}

impl From<BoolParam> for bool {
    fn from(b: BoolParam) -> bool {
        b == BoolParam::Y
    }
}

/// Parses a boolean module parameter (`Y` or `N`), such as `auto_movable_numa_aware`.
pub fn parse_param_bool(text: &str) -> Result<bool, ParseError> {
    text.parse::<BoolParam>().map(bool::from)
}

/// Parses `auto_movable_ratio` (a percentage, decimal).
pub fn parse_auto_movable_ratio(text: &str) -> Result<u32, ParseError> {
    const EXPECTED: &str = "a ratio in percent (decimal)";
    let t = token(text);
    parse_decimal(t, EXPECTED)
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| ParseError::new(t, EXPECTED))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parameter_values() {
        assert_eq!("N\n".parse(), Ok(MemmapOnMemory::Disabled));
        assert_eq!("force".parse(), Ok(MemmapOnMemory::Force));
        assert_eq!("contig-zones\n".parse(), Ok(OnlinePolicy::ContigZones));
        assert!("contig_zones".parse::<OnlinePolicy>().is_err());
        assert_eq!(parse_param_bool("Y\n"), Ok(true));
        assert!(parse_param_bool("1").is_err());
        assert_eq!(parse_auto_movable_ratio("301\n"), Ok(301));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,30}") {
            let _ = text.parse::<MemmapOnMemory>();
            let _ = text.parse::<OnlinePolicy>();
            let _ = parse_param_bool(&text);
            let _ = parse_auto_movable_ratio(&text);
        }
    }
}
