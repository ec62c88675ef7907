//! Node lists as `/sys/devices/system/node/{possible,online,has_memory,…}` print them.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{ParseError, token};
use crate::number::parse_decimal;

/// Largest node number accepted; the kernel's `MAX_NUMNODES` is at most 1024.
const MAX_NODE: u64 = 1 << 16;

/// A set of NUMA node numbers, printed by the kernel as a compressed list (`0-1,4`);
/// an empty list is an empty line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NodeList(BTreeSet<u32>);

impl NodeList {
    /// Whether `node` is in the list.
    pub fn contains(&self, node: u32) -> bool {
        self.0.contains(&node)
    }

    /// The nodes in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<u32> for NodeList {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl fmt::Display for NodeList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut nodes = self.0.iter().copied().peekable();
        while let Some(lo) = nodes.next() {
            let mut hi = lo;
            while hi < u32::MAX && nodes.peek() == Some(&(hi + 1)) {
                hi += 1;
                nodes.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for NodeList {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        const EXPECTED: &str = "a node list (e.g. 0-1,4, or empty)";
        let text = token(text);
        let err = || ParseError::new(text, EXPECTED);
        let mut nodes = BTreeSet::new();
        if text.is_empty() {
            return Ok(Self(nodes));
        }
        for part in text.split(',') {
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => (lo, hi),
                None => (part, part),
            };
            let lo = parse_decimal(lo, EXPECTED).map_err(|_| err())?;
            let hi = parse_decimal(hi, EXPECTED).map_err(|_| err())?;
            if lo > hi || hi > MAX_NODE {
                return Err(err());
            }
            for n in lo..=hi {
                nodes.insert(u32::try_from(n).map_err(|_| err())?);
            }
        }
        Ok(Self(nodes))
    }
}

impl Serialize for NodeList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn kernel_forms() {
        let l: NodeList = "0-1,4\n".parse().expect("parses");
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![0, 1, 4]);
        assert_eq!(l.to_string(), "0-1,4");
        assert!("\n".parse::<NodeList>().expect("empty line").is_empty());
        assert!("1-0".parse::<NodeList>().is_err());
        assert!("0,,1".parse::<NodeList>().is_err());
        assert!("0-".parse::<NodeList>().is_err());
        assert!("0-99999999".parse::<NodeList>().is_err());
    }

    proptest! {
        #[test]
        fn round_trips(nodes in proptest::collection::btree_set(0u32..300, 0..40)) {
            let l: NodeList = nodes.into_iter().collect();
            prop_assert_eq!(l.to_string().parse::<NodeList>(), Ok(l));
        }

        #[test]
        fn never_panics(text in "[0-9,\\- ]{0,20}") {
            let _ = text.parse::<NodeList>();
        }
    }
}
