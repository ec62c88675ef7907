//! `/proc/zoneinfo`: for each online node, each of its zones with the pages present in it.
//! Memory hotplug moves a zone's `present` count by a whole block's pages when a block is
//! onlined into it or offlined from it (`adjust_present_page_count()`), so on a node whose
//! memory is all one device's, the counts are that device's online blocks per zone.
//!
//! Only the header of each zone (`Node N, zone NAME`) and its `present` line are read; every
//! other line (per-node stats, watermarks, pagesets) is skipped.

use std::fmt;

use crate::block::Zone;
use crate::error::ParseError;
use crate::number::parse_decimal;

/// One zone of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZonePages {
    pub node: u32,
    pub zone: Zone,
    /// Pages present in the zone (online memory, holes excluded).
    pub present: u64,
}

/// The zones of `/proc/zoneinfo`, in the kernel's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zoneinfo {
    zones: Vec<ZonePages>,
}

const EXPECTED: &str = "/proc/zoneinfo: `Node N, zone NAME` headers, each with a `present` count";

impl Zoneinfo {
    pub fn new(zones: Vec<ZonePages>) -> Self {
        Zoneinfo { zones }
    }

    /// Parses the file. A zone without its `present` line, or a header that is not the
    /// kernel's, is an error: a count taken for zero would report memory as offline.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut zones: Vec<ZonePages> = Vec::new();
        let mut open = false;
        for (n, line) in text.lines().enumerate() {
            let err = || ParseError::new(line, EXPECTED).at_line(n + 1);
            if let Some(rest) = line.strip_prefix("Node ") {
                if open {
                    return Err(err());
                }
                let (node, zone) = rest.split_once(", zone ").ok_or_else(err)?;
                let node = u32::try_from(parse_decimal(node, EXPECTED).map_err(|_| err())?)
                    .map_err(|_| err())?;
                let zone: Zone = zone.trim().parse().map_err(|_| err())?;
                zones.push(ZonePages {
                    node,
                    zone,
                    present: 0,
                });
                open = true;
            } else if let Some(count) = line.trim_start().strip_prefix("present ") {
                let last = zones.last_mut().filter(|_| open).ok_or_else(err)?;
                last.present = parse_decimal(count.trim(), EXPECTED).map_err(|_| err())?;
                open = false;
            }
        }
        if open {
            return Err(ParseError::new(
                text.lines().last().unwrap_or_default(),
                EXPECTED,
            ));
        }
        Ok(Zoneinfo { zones })
    }

    /// Every zone, in the kernel's order.
    pub fn zones(&self) -> &[ZonePages] {
        &self.zones
    }

    /// The pages present in `zone` of `node` (0 for a node or zone the file does not list:
    /// an offline node has no memory).
    pub fn present(&self, node: u32, zone: Zone) -> u64 {
        self.zones
            .iter()
            .filter(|z| z.node == node && z.zone == zone)
            .map(|z| z.present)
            .sum()
    }

    /// The pages present on `node` in every zone.
    pub fn node_present(&self, node: u32) -> u64 {
        self.zones
            .iter()
            .filter(|z| z.node == node)
            .map(|z| z.present)
            .sum()
    }
}

/// The kernel's layout, reduced to the lines daxplug reads and the zone's other counts as
/// zero: what the emulated machine serves.
impl fmt::Display for Zoneinfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for z in &self.zones {
            writeln!(f, "Node {}, zone {:>8}", z.node, z.zone.as_str())?;
            writeln!(f, "  pages free     0")?;
            writeln!(f, "        spanned  {}", z.present)?;
            writeln!(f, "        present  {}", z.present)?;
            writeln!(f, "        managed  {}", z.present)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Two zones as a 6.12 kernel prints them (per-node stats and pagesets shortened).
    const KERNEL: &str = "Node 0, zone   Normal
  per-node stats
      nr_inactive_anon 1064
      nr_active_anon 2
  pages free     705232
        boost    0
        min      11264
        low      14080
        high     16896
        promo    19712
        spanned  786432
        present  786432
        managed  765416
        cma      0
        protection: (0, 0, 0, 0, 0)
      nr_free_pages 705232
  pagesets
    cpu: 0
              count:    150
  node_unreclaimable:  0
  start_pfn:           1048576
Node 1, zone  Movable
  pages free     262144
        boost    0
        min      0
        spanned  262144
        present  262144
        managed  262144
        cma      0
        protection: (0, 0, 0, 0, 0)
Node 1, zone   Device
  pages free     0
        spanned  0
        present  0
        managed  0
        protection: (0, 0, 0, 0, 0)
";

    #[test]
    fn reads_the_present_count_of_each_zone() {
        let z = Zoneinfo::parse(KERNEL).expect("parses");
        assert_eq!(z.zones().len(), 3);
        assert_eq!(z.present(0, Zone::Normal), 786_432);
        assert_eq!(z.present(1, Zone::Movable), 262_144);
        assert_eq!(z.present(1, Zone::Normal), 0);
        assert_eq!(z.node_present(1), 262_144);
        assert_eq!(z.node_present(7), 0);
    }

    #[test]
    fn a_zone_without_its_count_is_an_error() {
        let cut = "Node 0, zone   Normal\n  pages free     5\nNode 1, zone  Movable\n        present  1\n";
        assert!(Zoneinfo::parse(cut).is_err());
        assert!(Zoneinfo::parse("Node 0, zone   Normal\n").is_err());
        assert!(Zoneinfo::parse("Node x, zone   Normal\n        present 1\n").is_err());
        assert!(Zoneinfo::parse("Node 0, zone   Bogus\n        present 1\n").is_err());
        assert!(Zoneinfo::parse("        present 1\n").is_err());
        assert_eq!(Zoneinfo::parse("").expect("empty"), Zoneinfo::default());
    }

    fn zone() -> impl Strategy<Value = Zone> {
        prop::sample::select(Zone::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn display_round_trips(zones in prop::collection::vec((0u32..64, zone(), 0u64..1 << 40), 0..12)) {
            let z = Zoneinfo::new(zones.into_iter().map(|(node, zone, present)| ZonePages { node, zone, present }).collect());
            prop_assert_eq!(Zoneinfo::parse(&z.to_string()).expect("parses"), z);
        }
    }
}
