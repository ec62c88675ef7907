//! `/proc/iomem`: the tree of physical resources.

use std::fmt;

use crate::error::ParseError;
use crate::range::PhysRange;

/// Name of the resource kmem registers for hot-added memory, a child of `daxX.Y`.
pub const KMEM_RESOURCE_NAME: &str = "System RAM (kmem)";

/// One line of `/proc/iomem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IomemEntry {
    /// The physical range (inclusive end).
    pub range: PhysRange,
    /// The resource name (`System RAM`, `dax0.0`, `System RAM (kmem)`, …).
    pub name: String,
    /// Nesting depth: 0 for top-level resources.
    pub depth: usize,
    /// Index of the enclosing entry, if any.
    pub parent: Option<usize>,
}

/// The parsed resource tree, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Iomem {
    entries: Vec<IomemEntry>,
}

impl Iomem {
    /// Parses the whole file. Each level of nesting is two spaces of indentation; a child
    /// must lie inside its parent.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        const EXPECTED: &str =
            "a /proc/iomem line (START-END : NAME, indented two spaces per level)";
        let mut entries: Vec<IomemEntry> = Vec::new();
        // Index of the most recent entry at each depth.
        let mut open: Vec<usize> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let err = || ParseError::new(line, EXPECTED).at_line(n + 1);
            let body = line.trim_start_matches(' ');
            let indent = line.len() - body.len();
            if indent % 2 != 0 || body.is_empty() {
                return Err(err());
            }
            let depth = indent / 2;
            if depth > open.len() {
                return Err(err());
            }
            let (range, name) = match body.split_once(" : ") {
                Some(parts) => parts,
                None => (body.strip_suffix(" :").ok_or_else(err)?, ""),
            };
            let range: PhysRange = range.parse().map_err(|_| err())?;
            open.truncate(depth);
            let parent = open.last().copied();
            if parent.is_some_and(|p| !entries[p].range.contains_range(&range)) {
                return Err(err());
            }
            open.push(entries.len());
            entries.push(IomemEntry {
                range,
                name: name.to_owned(),
                depth,
                parent,
            });
        }
        Ok(Self { entries })
    }

    /// All entries in file order.
    pub fn entries(&self) -> &[IomemEntry] {
        &self.entries
    }

    /// The entries directly inside entry `index`.
    pub fn children(&self, index: usize) -> impl Iterator<Item = (usize, &IomemEntry)> {
        self.entries
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.parent == Some(index))
    }

    /// Entries with exactly this name, at any depth.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (usize, &'a IomemEntry)> {
        self.entries
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.name == name)
    }

    /// Whether every address reads as zero, which is what a reader without
    /// `CAP_SYS_ADMIN` sees.
    pub fn addresses_hidden(&self) -> bool {
        !self.entries.is_empty()
            && self
                .entries
                .iter()
                .all(|e| e.range.start == 0 && e.range.end == 0)
    }
}

impl fmt::Display for Iomem {
    /// Prints the tree as the kernel does (8-digit minimum hex, two spaces per level).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            writeln!(
                f,
                "{:indent$}{} : {}",
                "",
                e.range,
                e.name,
                indent = e.depth * 2
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const HMEM: &str = "\
100000000-13fffffff : System RAM
140000000-17fffffff : Soft Reserved
  140000000-17fffffff : dax0.0
    140000000-17fffffff : System RAM (kmem)
180000000-1ffffffff : PCI Bus 0000:00
";

    #[test]
    fn nested_kmem_range() {
        let io = Iomem::parse(HMEM).expect("parses");
        let (dax, entry) = io.named("dax0.0").next().expect("has dax0.0");
        assert_eq!(entry.depth, 1);
        let kids: Vec<_> = io.children(dax).map(|(_, e)| e.name.as_str()).collect();
        assert_eq!(kids, vec![KMEM_RESOURCE_NAME]);
        assert_eq!(io.entries()[4].name, "PCI Bus 0000:00");
        assert_eq!(io.to_string(), HMEM);
        assert!(!io.addresses_hidden());
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let err = Iomem::parse("100000000-13fffffff : System RAM\n   1-2 : odd\n")
            .expect_err("odd indent");
        assert_eq!(err.line, Some(2));
        assert!(Iomem::parse("  1-2 : too deep\n").is_err());
        assert!(Iomem::parse("10-20 : a\n  0-30 : outside parent\n").is_err());
        assert!(Iomem::parse("zz-20 : a\n").is_err());
        let hidden = Iomem::parse("00000000-00000000 : System RAM\n").expect("parses");
        assert!(hidden.addresses_hidden());
    }

    fn tree() -> impl Strategy<Value = Vec<(u64, u64, usize, String)>> {
        // Non-overlapping top-level ranges, each optionally with a nested child chain.
        proptest::collection::vec(
            (1u64..1 << 20, 0usize..3, "[A-Za-z0-9 ()._:-]{1,20}"),
            0..20,
        )
        .prop_map(|items| {
            let mut out = Vec::new();
            let mut base = 0u64;
            for (len, depth, name) in items {
                let start = base;
                let end = base + len;
                base = end + 1;
                for d in 0..=depth {
                    out.push((start, end, d, name.trim().to_owned()));
                }
            }
            out
        })
    }

    proptest! {
        #[test]
        fn round_trips(entries in tree()) {
            let mut text = String::new();
            for (s, e, d, name) in &entries {
                text.push_str(&format!("{:w$}{s:08x}-{e:08x} : {name}\n", "", w = d * 2));
            }
            let io = Iomem::parse(&text).expect("generated text parses");
            prop_assert_eq!(io.entries().len(), entries.len());
            prop_assert_eq!(io.to_string(), text);
        }

        #[test]
        fn never_panics(text in "[ 0-9a-f:\\-\n A-Z]{0,200}") {
            let _ = Iomem::parse(&text);
        }
    }
}
