//! Attributes of a dax device (`/sys/bus/dax/devices/daxX.Y/…`).

use crate::block::OnlineType;
use crate::error::{ParseError, token};
use crate::number::{parse_decimal, parse_prefixed_hex};
use crate::token_enum;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

token_enum! {
    /// What `daxX.Y/state` reads, in kernels with the atomic whole-device hotplug series
    /// (present only while the device is bound to `kmem`).
    ///
    /// It is the last state the driver set (bind-time policy or a successful write), not a
    /// summary of the blocks: per-block changes through `memoryN/state` leave it stale.
    DaxState, "a dax device state (unplugged, offline, online, online_kernel, online_movable or unknown)" {
        /// No memory blocks exist for the device's ranges.
        Unplugged = "unplugged",
        /// Blocks were created offline by a bind under the `offline` policy (read-only).
        Offline = "offline",
        /// Blocks were onlined with `MMOP_ONLINE` (the kernel picked the zone).
        Online = "online",
        /// Blocks were onlined into a kernel zone.
        OnlineKernel = "online_kernel",
        /// Blocks were onlined into `ZONE_MOVABLE`.
        OnlineMovable = "online_movable",
        /// The kernel's defensive fallback for an out-of-range internal value (read-only).
        Unknown = "unknown",
    }
}

token_enum! {
    /// The dax bus's `drivers_autoprobe`: whether a driver that registers (a module that
    /// loads) and a device that is added are matched and bound at once.
    BusAutoprobe, "a bus autoprobe setting (1 or 0)" {
        /// Drivers and devices are bound as they appear (the default).
        On = "1",
        /// Nothing binds until asked through `bind`, `new_id` or `drivers_probe`.
        Off = "0",
    }
}

token_enum! {
    /// A driver of the dax bus that daxplug binds and unbinds (`/sys/bus/dax/drivers/NAME`).
    DaxDriver, "a dax driver (kmem, device_dax or fsdev_dax)" {
        /// `device_dax`: the device is a character device, `/dev/daxX.Y`.
        DeviceDax = "device_dax",
        /// `kmem`: the device's memory becomes system RAM.
        Kmem = "kmem",
        /// `fsdev_dax` (Linux 7.1+): the device backs a famfs file system. It matches no
        /// region by type: a device gets it through `new_id` only.
        FsdevDax = "fsdev_dax",
    }
}

/// A dax device's name, `daxX.Y`: device `Y` of region `X` (the kernel's
/// `dev_set_name(dev, "dax%d.%d", region_id, id)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DaxName {
    /// `X`: the region's id.
    pub region: u32,
    /// `Y`: the device's id within the region.
    pub id: u32,
}

impl FromStr for DaxName {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<Self, ParseError> {
        let bad = || ParseError::new(text, "a dax device name (daxX.Y, for example dax0.0)");
        let (region, id) = text
            .strip_prefix("dax")
            .and_then(|rest| rest.split_once('.'))
            .ok_or_else(bad)?;
        // Digits only: `u32::from_str` would also take a sign.
        let num = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        Ok(DaxName {
            region: num(region).ok_or_else(bad)?,
            id: num(id).ok_or_else(bad)?,
        })
    }
}

impl fmt::Display for DaxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dax{}.{}", self.region, self.id)
    }
}

/// Equal to the name exactly as the kernel spells it (`dax00.0` is not `dax0.0`).
impl PartialEq<str> for DaxName {
    fn eq(&self, other: &str) -> bool {
        use std::fmt::Write as _;
        let mut name = String::new();
        let _ = write!(name, "{self}");
        name == other
    }
}

impl PartialEq<&str> for DaxName {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

/// As its name, `"daxX.Y"`.
impl Serialize for DaxName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DaxName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl DaxState {
    /// Whether the kernel accepts this value on a write (`offline` and `unknown` are
    /// report-only; writing them is `EINVAL`).
    pub fn is_writable(self) -> bool {
        !matches!(self, DaxState::Offline | DaxState::Unknown)
    }

    /// The online type this state stands for, if it is one of the `MMOP_*` states.
    pub fn online_type(self) -> Option<OnlineType> {
        match self {
            DaxState::Offline => Some(OnlineType::Offline),
            DaxState::Online => Some(OnlineType::Online),
            DaxState::OnlineKernel => Some(OnlineType::OnlineKernel),
            DaxState::OnlineMovable => Some(OnlineType::OnlineMovable),
            DaxState::Unplugged | DaxState::Unknown => None,
        }
    }
}

impl From<OnlineType> for DaxState {
    fn from(t: OnlineType) -> Self {
        match t {
            OnlineType::Offline => DaxState::Offline,
            OnlineType::Online => DaxState::Online,
            OnlineType::OnlineKernel => DaxState::OnlineKernel,
            OnlineType::OnlineMovable => DaxState::OnlineMovable,
        }
    }
}

/// Parses `daxX.Y/size` (decimal bytes).
pub fn parse_dax_size(text: &str) -> Result<u64, ParseError> {
    parse_decimal(token(text), "a size in bytes (decimal)")
}

/// Parses `daxX.Y/align` (decimal bytes, a power of two).
pub fn parse_align(text: &str) -> Result<u64, ParseError> {
    const EXPECTED: &str = "an alignment in bytes (a decimal power of two)";
    let text = token(text);
    parse_decimal(text, EXPECTED)
        .ok()
        .filter(|a| a.is_power_of_two())
        .ok_or_else(|| ParseError::new(text, EXPECTED))
}

/// Parses a `0x`-prefixed physical address: `daxX.Y/resource` and
/// `mappingN/{start,end,page_offset}`.
pub fn parse_phys_addr(text: &str) -> Result<u64, ParseError> {
    parse_prefixed_hex(
        token(text),
        "a physical address (hex with 0x, e.g. 0x140000000)",
    )
}

/// Parses `target_node` / `numa_node`: a node number, or `-1` for "no node".
/// Returns `None` for `-1`.
pub fn parse_node_id(text: &str) -> Result<Option<u32>, ParseError> {
    const EXPECTED: &str = "a NUMA node number or -1";
    match token(text) {
        "-1" => Ok(None),
        t => parse_decimal(t, EXPECTED)
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| ParseError::new(t, EXPECTED)),
    }
}

/// Parses `dax_region/id` (decimal).
pub fn parse_region_id(text: &str) -> Result<u32, ParseError> {
    const EXPECTED: &str = "a region id (decimal)";
    let t = token(text);
    parse_decimal(t, EXPECTED)
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| ParseError::new(t, EXPECTED))
}

/// Parses `daxX.Y/memmap_on_memory`: `1` or `0`.
pub fn parse_memmap_on_memory(text: &str) -> Result<bool, ParseError> {
    match token(text) {
        "1" => Ok(true),
        "0" => Ok(false),
        t => Err(ParseError::new(t, "0 or 1")),
    }
}

#[cfg(test)]
mod dax_name_tests {
    use super::*;

    #[test]
    fn dax_names_round_trip_and_bad_ones_are_refused() {
        let n: DaxName = "dax12.3".parse().expect("valid");
        assert_eq!(
            (n.region, n.id, n.to_string()),
            (12, 3, "dax12.3".to_owned())
        );
        for bad in [
            "dax",
            "dax0",
            "dax0.",
            "dax.0",
            "dax+1.0",
            "dax0.-1",
            "mem0.0",
            "dax0.0.0",
            "dax99999999999.0",
        ] {
            assert!(bad.parse::<DaxName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bus_autoprobe_is_the_kernels_one_or_zero() {
        for v in [BusAutoprobe::On, BusAutoprobe::Off] {
            assert_eq!(format!("{v}\n").parse::<BusAutoprobe>(), Ok(v));
        }
        assert!("Y".parse::<BusAutoprobe>().is_err());
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn state_values() {
        for s in DaxState::ALL {
            assert_eq!(format!("{s}\n").parse::<DaxState>(), Ok(*s));
        }
        assert!(!DaxState::Offline.is_writable());
        assert!(DaxState::Unplugged.is_writable());
        assert_eq!(
            DaxState::from(OnlineType::OnlineMovable),
            DaxState::OnlineMovable
        );
        // v1-v3 wrote "unplug"; v7 does not accept it and neither do we.
        assert!("unplug".parse::<DaxState>().is_err());
    }

    #[test]
    fn attribute_values() {
        assert_eq!(parse_dax_size("1071644672\n"), Ok(1_071_644_672));
        assert_eq!(parse_align("2097152\n"), Ok(2 << 20));
        assert!(parse_align("3").is_err());
        assert_eq!(parse_phys_addr("0x140200000\n"), Ok(0x1_4020_0000));
        assert_eq!(parse_phys_addr("0x0\n"), Ok(0));
        assert!(parse_phys_addr("140200000").is_err());
        assert_eq!(parse_node_id("1\n"), Ok(Some(1)));
        assert_eq!(parse_node_id("-1\n"), Ok(None));
        assert!(parse_node_id("-2").is_err());
        assert!(parse_node_id("99999999999").is_err());
        assert_eq!(parse_memmap_on_memory("1\n"), Ok(true));
        assert_eq!(parse_region_id("0\n"), Ok(0));
        assert!(parse_region_id("x").is_err());
        assert!(parse_memmap_on_memory("Y").is_err());
    }

    proptest! {
        #[test]
        fn addresses_round_trip(a in any::<u64>()) {
            prop_assert_eq!(parse_phys_addr(&format!("{a:#x}\n")), Ok(a));
        }

        #[test]
        fn node_ids_round_trip(n in 0u32..=u32::MAX) {
            prop_assert_eq!(parse_node_id(&format!("{n}\n")), Ok(Some(n)));
        }

        #[test]
        fn parsers_never_panic(text in "\\PC{0,30}") {
            let _ = text.parse::<DaxState>();
            let _ = parse_dax_size(&text);
            let _ = parse_align(&text);
            let _ = parse_phys_addr(&text);
            let _ = parse_node_id(&text);
            let _ = parse_memmap_on_memory(&text);
            let _ = parse_region_id(&text);
        }
    }
}
