//! Physical address ranges and memory-block arithmetic.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ParseError;
use crate::number::parse_bare_hex;

/// A physical address range with an inclusive end, as the kernel prints ranges
/// (`mappingN/end`, `/proc/iomem`). An empty range cannot be represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawRange")]
pub struct PhysRange {
    /// First byte of the range.
    pub start: u64,
    /// Last byte of the range (inclusive).
    pub end: u64,
}

/// The unchecked form a range is deserialized from.
#[derive(Deserialize)]
struct RawRange {
    start: u64,
    end: u64,
}

impl TryFrom<RawRange> for PhysRange {
    type Error = String;

    fn try_from(r: RawRange) -> Result<Self, String> {
        PhysRange::new(r.start, r.end)
            .ok_or_else(|| format!("range end {:#x} is before its start {:#x}", r.end, r.start))
    }
}

impl PhysRange {
    /// Builds a range from its first and last byte; `None` if `end < start`.
    pub fn new(start: u64, end: u64) -> Option<Self> {
        (start <= end).then_some(Self { start, end })
    }

    /// Number of bytes in the range (a range covering all of `u64` is capped at `u64::MAX`).
    pub fn len(&self) -> u64 {
        // An inverted range (a damaged file) is empty, not a panic.
        if self.end < self.start {
            return 0;
        }
        (self.end - self.start).saturating_add(1)
    }

    /// Always false: empty ranges cannot be built. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains_range(&self, other: &PhysRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Whether the two ranges share at least one byte.
    pub fn overlaps(&self, other: &PhysRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// The part of the range made of whole memory blocks: start rounded up, end+1 rounded
    /// down to the block size, as the kernel's `memory_block_aligned_range()` does for kmem.
    /// `None` when no whole block fits (the kernel skips such a range).
    ///
    /// Unlike the kernel helper, a range ending at `u64::MAX` is handled correctly
    /// instead of wrapping to empty.
    pub fn block_aligned(&self, block_size: BlockSize) -> Option<PhysRange> {
        let bs = u128::from(block_size.bytes());
        let start = u128::from(self.start).div_ceil(bs) * bs;
        let end_exclusive = (u128::from(self.end) + 1) / bs * bs;
        if start >= end_exclusive {
            return None;
        }
        // Both values are within u64 because they lie inside the original range.
        Some(PhysRange {
            start: u64::try_from(start).ok()?,
            end: u64::try_from(end_exclusive - 1).ok()?,
        })
    }

    /// Ids of the memory blocks that lie entirely inside this range (`memoryN` numbers),
    /// as an inclusive pair `(first, last)`; `None` if no whole block fits.
    pub fn whole_blocks(&self, block_size: BlockSize) -> Option<(u64, u64)> {
        let aligned = self.block_aligned(block_size)?;
        Some((
            aligned.start / block_size.bytes(),
            aligned.end / block_size.bytes(),
        ))
    }
}

impl fmt::Display for PhysRange {
    /// Formats as `/proc/iomem` does: `start-end` in lowercase hex, at least 8 digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}-{:08x}", self.start, self.end)
    }
}

impl std::str::FromStr for PhysRange {
    type Err = ParseError;

    /// Parses `START-END` in bare hex, as `/proc/iomem` prints a range.
    fn from_str(text: &str) -> Result<Self, ParseError> {
        const EXPECTED: &str = "an address range (hex START-END with START <= END)";
        let (start, end) = text
            .split_once('-')
            .ok_or_else(|| ParseError::new(text, EXPECTED))?;
        let start = parse_bare_hex(start, EXPECTED).map_err(|_| ParseError::new(text, EXPECTED))?;
        let end = parse_bare_hex(end, EXPECTED).map_err(|_| ParseError::new(text, EXPECTED))?;
        PhysRange::new(start, end).ok_or_else(|| ParseError::new(text, EXPECTED))
    }
}

/// The memory block size: a non-zero power of two (128 MiB on x86_64 by default,
/// up to 2 GiB on large machines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BlockSize(u64);

impl BlockSize {
    /// `None` unless `bytes` is a non-zero power of two.
    pub fn new(bytes: u64) -> Option<Self> {
        bytes.is_power_of_two().then_some(Self(bytes))
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// The physical range covered by block `id` (`memory<id>`); `None` if it would lie
    /// beyond the 64-bit address space.
    pub fn block_range(self, id: u64) -> Option<PhysRange> {
        let start = id.checked_mul(self.0)?;
        let end = start.checked_add(self.0 - 1)?;
        Some(PhysRange { start, end })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn pmem_variant_loses_its_first_block() {
        // e820 fixture: the namespace's data starts 2 MiB into the region, so kmem maps
        // 0x148000000-0x17fffffff, i.e. memory41..memory47.
        let bs = BlockSize::new(128 * MIB).expect("power of two");
        let mapping = PhysRange::new(0x1_4020_0000, 0x1_7fff_ffff).expect("valid");
        assert_eq!(
            mapping.block_aligned(bs),
            PhysRange::new(0x1_4800_0000, 0x1_7fff_ffff)
        );
        assert_eq!(mapping.whole_blocks(bs), Some((41, 47)));
    }

    #[test]
    fn too_small_range_has_no_block() {
        let bs = BlockSize::new(128 * MIB).expect("power of two");
        let r = PhysRange::new(0x1_4020_0000, 0x1_47ff_ffff).expect("valid");
        assert_eq!(r.block_aligned(bs), None);
    }

    #[test]
    fn top_of_address_space_does_not_wrap() {
        let bs = BlockSize::new(128 * MIB).expect("power of two");
        let r = PhysRange::new(u64::MAX - 256 * MIB + 1, u64::MAX).expect("valid");
        assert_eq!(r.whole_blocks(bs).map(|(a, b)| b - a + 1), Some(2));
    }

    #[test]
    fn iomem_range_text() {
        let r: PhysRange = "140000000-17fffffff".parse().expect("parses");
        assert_eq!(r.len(), 1 << 30);
        assert_eq!(r.to_string(), "140000000-17fffffff");
        assert!("17fffffff-140000000".parse::<PhysRange>().is_err());
        assert!("140000000".parse::<PhysRange>().is_err());
    }

    proptest! {
        #[test]
        fn aligned_range_is_the_largest_whole_block_subrange(
            start in any::<u64>(), len in 1u64..(1 << 40), shift in 12u32..32,
        ) {
            let bs = BlockSize::new(1 << shift).expect("power of two");
            let end = start.saturating_add(len - 1);
            let r = PhysRange::new(start, end).expect("valid");
            match r.block_aligned(bs) {
                Some(a) => {
                    prop_assert!(r.contains_range(&a));
                    prop_assert_eq!(a.start % bs.bytes(), 0);
                    prop_assert_eq!(a.len() % bs.bytes(), 0);
                    // Growing it by a block on either side would leave the range.
                    prop_assert!(a.start - r.start < bs.bytes());
                    prop_assert!(r.end - a.end < bs.bytes());
                    let (first, last) = r.whole_blocks(bs).expect("has blocks");
                    prop_assert_eq!(bs.block_range(first).map(|b| b.start), Some(a.start));
                    prop_assert_eq!(bs.block_range(last).map(|b| b.end), Some(a.end));
                }
                None => prop_assert!(len < 2 * bs.bytes()),
            }
        }

        #[test]
        fn range_text_round_trips(start in any::<u64>(), end in any::<u64>()) {
            let (start, end) = (start.min(end), start.max(end));
            let r = PhysRange::new(start, end).expect("ordered");
            prop_assert_eq!(r.to_string().parse::<PhysRange>(), Ok(r));
        }

        #[test]
        fn range_parser_never_panics(text in ".{0,40}") {
            let _ = text.parse::<PhysRange>();
        }
    }
}
