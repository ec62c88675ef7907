//! Memory block files under `/sys/devices/system/memory/`.

use crate::token_enum;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{ParseError, token};
use crate::number::{parse_bare_hex, parse_decimal};
use crate::range::BlockSize;

token_enum! {
    /// What `memoryN/state` reads.
    BlockState, "a memory block state (online, offline or going-offline)" {
        /// The block's pages are in a zone and usable.
        Online = "online",
        /// The block exists but its pages are not usable.
        Offline = "offline",
        /// An offline is in progress (the kernel sets this before migrating pages).
        GoingOffline = "going-offline",
    }
}

token_enum! {
    /// An online type: what `memoryN/state` and `auto_online_blocks` accept (`MMOP_*`).
    OnlineType, "an online type (offline, online, online_kernel or online_movable)" {
        /// `MMOP_OFFLINE`: leave (or make) the block offline.
        Offline = "offline",
        /// `MMOP_ONLINE`: online into the zone the kernel picks (see `online_policy`).
        Online = "online",
        /// `MMOP_ONLINE_KERNEL`: online into a kernel zone (normally `Normal`).
        OnlineKernel = "online_kernel",
        /// `MMOP_ONLINE_MOVABLE`: online into `ZONE_MOVABLE`, which keeps it removable.
        OnlineMovable = "online_movable",
    }
}

token_enum! {
    /// A zone name as `valid_zones` prints it.
    Zone, "a zone name (DMA, DMA32, Normal, HighMem, Movable or Device)" {
        /// `ZONE_DMA`.
        Dma = "DMA",
        /// `ZONE_DMA32`.
        Dma32 = "DMA32",
        /// `ZONE_NORMAL`.
        Normal = "Normal",
        /// `ZONE_HIGHMEM` (32-bit only).
        HighMem = "HighMem",
        /// `ZONE_MOVABLE`: only movable allocations, so it can be offlined.
        Movable = "Movable",
        /// `ZONE_DEVICE` (never seen in `valid_zones`, accepted for completeness).
        Device = "Device",
    }
}

impl Zone {
    /// Whether the zone is `ZONE_MOVABLE`. Every other zone is a kernel zone, into which
    /// unmovable allocations may land and pin the block forever.
    pub fn is_movable(self) -> bool {
        self == Zone::Movable
    }
}

/// What `memoryN/valid_zones` reads.
///
/// For an online block: the one zone it is in, or `none` (no zones) when it spans zones or
/// nodes and so cannot be offlined. For an offline block: the zones it may be onlined
/// into, the first being the one a plain `online` would pick now.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ValidZones(Vec<Zone>);

impl ValidZones {
    /// Builds the value from a list of zones; an empty list is `none`.
    pub fn new(zones: Vec<Zone>) -> Self {
        Self(zones)
    }

    /// The zones in kernel order; empty for `none`.
    pub fn zones(&self) -> &[Zone] {
        &self.0
    }

    /// The first zone: the block's zone if it is online, or the zone plain `online` would
    /// pick if it is offline. `None` for `none`.
    pub fn first(&self) -> Option<Zone> {
        self.0.first().copied()
    }

    /// Whether the file read `none`.
    pub fn is_none(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ValidZones {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, zone) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(zone.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for ValidZones {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        const EXPECTED: &str = "a valid_zones value (none, or zone names separated by spaces)";
        let text = token(text);
        if text == "none" {
            return Ok(Self(Vec::new()));
        }
        if text.is_empty() {
            return Err(ParseError::new(text, EXPECTED));
        }
        let mut zones = Vec::new();
        for word in text.split(' ') {
            let zone = word.parse().map_err(|_| ParseError::new(text, EXPECTED))?;
            if zones.contains(&zone) {
                return Err(ParseError::new(text, EXPECTED));
            }
            zones.push(zone);
        }
        Ok(Self(zones))
    }
}

impl Serialize for ValidZones {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

/// Parses `block_size_bytes`: hex without `0x`, a non-zero power of two.
pub fn parse_block_size(text: &str) -> Result<BlockSize, ParseError> {
    const EXPECTED: &str = "a memory block size (a power of two in hex without 0x, e.g. 8000000)";
    let text = token(text);
    parse_bare_hex(text, EXPECTED)
        .ok()
        .and_then(BlockSize::new)
        .ok_or_else(|| ParseError::new(text, EXPECTED))
}

/// Parses `memoryN/phys_index`: the block id in hex (`%08lx`).
pub fn parse_phys_index(text: &str) -> Result<u64, ParseError> {
    parse_bare_hex(token(text), "a block index (hex without 0x, e.g. 00000028)")
}

/// Parses `memoryN/online`: `1` (online) or `0` (offline).
pub fn parse_online(text: &str) -> Result<bool, ParseError> {
    match parse_decimal(token(text), "0 or 1") {
        Ok(0) => Ok(false),
        Ok(1) => Ok(true),
        _ => Err(ParseError::new(token(text), "0 or 1")),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::sample::subsequence;

    use super::*;

    #[test]
    fn tokens_as_the_kernel_prints_them() {
        assert_eq!("online\n".parse(), Ok(BlockState::Online));
        assert_eq!("going-offline".parse(), Ok(BlockState::GoingOffline));
        assert_eq!("online_movable\n".parse(), Ok(OnlineType::OnlineMovable));
        assert_eq!(OnlineType::OnlineKernel.to_string(), "online_kernel");
        let err = "onlin".parse::<BlockState>().expect_err("not a state");
        assert_eq!(
            err.to_string(),
            "\"onlin\" is not a memory block state (online, offline or going-offline)"
        );
        assert!(" online".parse::<BlockState>().is_err());
        assert!("Online".parse::<BlockState>().is_err());
    }

    #[test]
    fn valid_zones_forms() {
        let vz: ValidZones = "Normal Movable\n".parse().expect("parses");
        assert_eq!(vz.first(), Some(Zone::Normal));
        assert_eq!(vz.zones(), &[Zone::Normal, Zone::Movable]);
        let none: ValidZones = "none\n".parse().expect("parses");
        assert!(none.is_none());
        assert_eq!(none.to_string(), "none");
        assert!("".parse::<ValidZones>().is_err());
        assert!("Normal  Movable".parse::<ValidZones>().is_err());
        assert!("Normal Normal".parse::<ValidZones>().is_err());
        assert!("Movable Bogus".parse::<ValidZones>().is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(
            parse_block_size("8000000\n").map(BlockSize::bytes),
            Ok(128 << 20)
        );
        assert_eq!(
            parse_block_size("80000000").map(BlockSize::bytes),
            Ok(2 << 30)
        );
        assert!(parse_block_size("0").is_err());
        assert!(parse_block_size("c000000").is_err());
        assert!(parse_block_size("0x8000000").is_err());
        assert_eq!(parse_phys_index("00000028\n"), Ok(40));
        assert_eq!(parse_online("1\n"), Ok(true));
        assert_eq!(parse_online("0"), Ok(false));
        assert!(parse_online("2").is_err());
    }

    proptest! {
        #[test]
        fn every_token_round_trips(i in 0usize..4) {
            let t = OnlineType::ALL[i];
            prop_assert_eq!(format!("{t}\n").parse::<OnlineType>(), Ok(t));
            let s = BlockState::ALL[i % 3];
            prop_assert_eq!(s.to_string().parse::<BlockState>(), Ok(s));
        }

        #[test]
        fn valid_zones_round_trip(zones in subsequence(Zone::ALL.to_vec(), 0..=Zone::ALL.len())) {
            let vz = ValidZones::new(zones);
            prop_assert_eq!(vz.to_string().parse::<ValidZones>(), Ok(vz));
        }

        #[test]
        fn parsers_never_panic(text in "\\PC{0,30}") {
            let _ = text.parse::<BlockState>();
            let _ = text.parse::<OnlineType>();
            let _ = text.parse::<ValidZones>();
            let _ = parse_block_size(&text);
            let _ = parse_phys_index(&text);
            let _ = parse_online(&text);
        }
    }
}
