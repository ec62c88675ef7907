//! Memory tiering and NUMA placement: the memory-tier directories
//! (`/sys/devices/virtual/memory_tiering/memory_tierN`), the demotion switch
//! (`/sys/kernel/mm/numa/demotion_enabled`) and the weighted-interleave weights
//! (`/sys/kernel/mm/mempolicy/weighted_interleave/{nodeN,auto}`).
//!
//! A tier's number is its abstract distance shifted right by [`MEMTIER_CHUNK_BITS`]: a
//! smaller number is a faster tier. Both the demotion switch and the interleave `auto`
//! switch print `true` or `false`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{ParseError, token};

/// The abstract distance bits that fall inside one tier (`MEMTIER_CHUNK_BITS`): a tier
/// directory is named after `adistance >> MEMTIER_CHUNK_BITS`.
pub const MEMTIER_CHUNK_BITS: u32 = 7;

/// The abstract distance the kernel gives DRAM (`MEMTIER_ADISTANCE_DRAM`: four chunks and a
/// half), so that DRAM lands in `memory_tier4`.
pub const ADISTANCE_DRAM: u32 = (4 << MEMTIER_CHUNK_BITS) + (1 << (MEMTIER_CHUNK_BITS - 1));

/// The abstract distance kmem gives a dax node when firmware says nothing about its
/// performance (`MEMTIER_DEFAULT_DAX_ADISTANCE`: five times DRAM's).
pub const ADISTANCE_DAX_DEFAULT: u32 = ADISTANCE_DRAM * 5;

/// The tier an abstract distance falls in.
pub fn tier_of_adistance(adistance: u32) -> MemoryTier {
    MemoryTier(adistance >> MEMTIER_CHUNK_BITS)
}

/// A memory tier, by the number in its directory's name (`memory_tierN`); serialized as
/// that number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct MemoryTier(pub u32);

impl MemoryTier {
    /// Parses a directory name under `memory_tiering` (`memory_tier22`); other entries
    /// (`power`, `uevent`) are `None`.
    pub fn from_dir_name(name: &str) -> Option<Self> {
        let n = name.strip_prefix("memory_tier")?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n.parse().ok().map(MemoryTier)
    }

    /// The directory name.
    pub fn dir_name(self) -> String {
        format!("memory_tier{}", self.0)
    }
}

impl fmt::Display for MemoryTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Parses a switch the kernel prints as `true` or `false` (`demotion_enabled`, the
/// weighted-interleave `auto`).
pub fn parse_true_false(text: &str) -> Result<bool, ParseError> {
    match token(text) {
        "true" => Ok(true),
        "false" => Ok(false),
        t => Err(ParseError::new(t, "`true` or `false`")),
    }
}

/// A node's weighted-interleave weight (`weighted_interleave/nodeN`): how many pages in a
/// round go to the node, 1 to 255. Serialized as the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct InterleaveWeight(u8);

impl InterleaveWeight {
    /// The weight a node has until someone (or auto mode) sets one.
    pub const DEFAULT: InterleaveWeight = InterleaveWeight(1);

    /// A weight, if it is one the kernel accepts (1 to 255).
    pub fn new(weight: u8) -> Option<Self> {
        (weight >= 1).then_some(InterleaveWeight(weight))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl FromStr for InterleaveWeight {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        const EXPECTED: &str = "an interleave weight (1 to 255)";
        let t = token(text);
        t.parse::<u8>()
            .ok()
            .and_then(InterleaveWeight::new)
            .ok_or_else(|| ParseError::new(t, EXPECTED))
    }
}

impl fmt::Display for InterleaveWeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `nodeN` in `weighted_interleave/`: the node it sets; `auto` and others are `None`.
pub fn parse_interleave_node_file(name: &str) -> Option<u32> {
    let n = name.strip_prefix("node")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_follow_abstract_distance() {
        assert_eq!(tier_of_adistance(ADISTANCE_DRAM), MemoryTier(4));
        assert_eq!(tier_of_adistance(ADISTANCE_DAX_DEFAULT), MemoryTier(22));
        assert_eq!(
            MemoryTier::from_dir_name("memory_tier22"),
            Some(MemoryTier(22))
        );
        assert_eq!(MemoryTier(4).dir_name(), "memory_tier4");
        for bad in [
            "memory_tier",
            "memory_tierx",
            "power",
            "uevent",
            "memory_tier-1",
        ] {
            assert_eq!(MemoryTier::from_dir_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn switches_and_weights() {
        assert_eq!(parse_true_false("true\n"), Ok(true));
        assert_eq!(parse_true_false("false\n"), Ok(false));
        let e = parse_true_false("1\n").expect_err("1 is not a switch");
        assert_eq!(e.to_string(), "\"1\" is not `true` or `false`");
        assert_eq!(
            "7\n".parse::<InterleaveWeight>().map(InterleaveWeight::get),
            Ok(7)
        );
        for bad in ["0", "256", "-1", "", "x"] {
            let e = bad.parse::<InterleaveWeight>().expect_err(bad);
            assert!(e.to_string().contains("interleave weight"), "{bad}: {e}");
        }
        assert_eq!(parse_interleave_node_file("node12"), Some(12));
        assert_eq!(parse_interleave_node_file("auto"), None);
        assert_eq!(parse_interleave_node_file("node"), None);
    }
}
