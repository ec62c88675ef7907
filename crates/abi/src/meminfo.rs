//! `/proc/meminfo` and the per-node `/sys/devices/system/node/nodeN/meminfo`.

use crate::error::ParseError;
use crate::number::parse_decimal;

/// The fields of a meminfo file. Values with a `kB` unit are stored in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meminfo {
    /// The node of a per-node file (`Node N Key: value`); `None` for `/proc/meminfo`.
    pub node: Option<u32>,
    fields: Vec<(String, u64)>,
}

impl Meminfo {
    /// Parses either form. Every line of a per-node file must name the same node.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        const EXPECTED: &str = "a meminfo line ([Node N ]Key: value[ kB])";
        let mut info = Meminfo::default();
        for (n, line) in text.lines().enumerate() {
            let err = || ParseError::new(line, EXPECTED).at_line(n + 1);
            let (node, rest) = match line.strip_prefix("Node ") {
                Some(rest) => {
                    let (num, rest) = rest.split_once(' ').ok_or_else(err)?;
                    let num = parse_decimal(num, EXPECTED).map_err(|_| err())?;
                    (Some(u32::try_from(num).map_err(|_| err())?), rest)
                }
                None => (None, line),
            };
            if n == 0 {
                info.node = node;
            } else if info.node != node {
                return Err(err());
            }
            let (key, value) = rest.split_once(':').ok_or_else(err)?;
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(err());
            }
            let value = value.trim();
            let (number, multiplier) = match value.strip_suffix(" kB") {
                Some(number) => (number.trim_end(), 1024),
                None => (value, 1),
            };
            let number = parse_decimal(number, EXPECTED).map_err(|_| err())?;
            let value = number.checked_mul(multiplier).ok_or_else(err)?;
            info.fields.push((key.to_owned(), value));
        }
        Ok(info)
    }

    /// A field's value (bytes for `kB` fields, the plain number otherwise).
    pub fn get(&self, key: &str) -> Option<u64> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// `MemTotal` in bytes.
    pub fn mem_total(&self) -> Option<u64> {
        self.get("MemTotal")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn both_forms() {
        let sys = Meminfo::parse("MemTotal:        5062560 kB\nHugePages_Total:       0\n")
            .expect("parses");
        assert_eq!(sys.node, None);
        assert_eq!(sys.mem_total(), Some(5_062_560 * 1024));
        assert_eq!(sys.get("HugePages_Total"), Some(0));
        let node = Meminfo::parse("Node 1 MemTotal:        1048576 kB\nNode 1 MemFree: 0 kB\n")
            .expect("parses");
        assert_eq!(node.node, Some(1));
        assert_eq!(node.mem_total(), Some(1 << 30));
        let err = Meminfo::parse("Node 1 MemTotal: 1 kB\nNode 2 MemFree: 0 kB\n")
            .expect_err("mixed nodes");
        assert_eq!(err.line, Some(2));
        assert!(Meminfo::parse("MemTotal 5 kB\n").is_err());
        assert!(Meminfo::parse("MemTotal: -5 kB\n").is_err());
    }

    proptest! {
        #[test]
        fn round_trips(values in proptest::collection::vec(0u64..1 << 40, 1..20), node in proptest::option::of(0u32..64)) {
            let prefix = node.map(|n| format!("Node {n} ")).unwrap_or_default();
            let text: String = values.iter().enumerate()
                .map(|(i, v)| format!("{prefix}Key{i}: {v:>12} kB\n"))
                .collect();
            let info = Meminfo::parse(&text).expect("generated text parses");
            prop_assert_eq!(info.node, node);
            for (i, v) in values.iter().enumerate() {
                prop_assert_eq!(info.get(&format!("Key{i}")), Some(v * 1024));
            }
        }

        #[test]
        fn never_panics(text in "[A-Za-z0-9: \n]{0,100}") {
            let _ = Meminfo::parse(&text);
        }
    }
}
