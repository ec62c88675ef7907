//! Where device memory lands once it is system RAM: the memory tier of each node, whether
//! demotion reaches it, and its weighted-interleave weight, read from
//! `/sys/devices/virtual/memory_tiering`, `/sys/kernel/mm/numa/demotion_enabled` and
//! `/sys/kernel/mm/mempolicy/weighted_interleave`. Kernels without these files (tiers came
//! in 6.1, weighted interleave in 6.9, its `auto` switch in 6.16) leave them `None`.

use std::collections::BTreeMap;

use daxplug_abi::{
    InterleaveWeight, MemoryTier, NodeList, parse_interleave_node_file, parse_true_false,
};
use daxplug_kernel::{Kernel, paths};
use serde::Serialize;

use crate::discovery::error::DiscoveryError;
use crate::discovery::read::parse_optional;

/// The placement files of the kernel, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// Each memory tier with nodes in it, by tier; `None`: the kernel has no
    /// `memory_tiering` directory.
    pub tiers: Option<BTreeMap<MemoryTier, NodeList>>,
    /// `demotion_enabled`; `None`: the kernel has no such switch.
    pub demotion_enabled: Option<bool>,
    /// Weighted interleave; `None`: the kernel has no `weighted_interleave` directory.
    pub interleave: Option<Interleave>,
}

/// `weighted_interleave/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interleave {
    /// `auto`; `None`: the kernel has no switch, and weights change only when written.
    pub auto: Option<bool>,
    /// The weight of each node that has a file.
    pub weights: BTreeMap<u32, InterleaveWeight>,
}

impl Interleave {
    /// Whether weights are only what someone wrote (no auto mode, or auto mode off).
    pub fn manual(&self) -> bool {
        self.auto != Some(true)
    }

    /// `manual` or `auto`, as reports name the mode.
    pub fn mode(&self) -> &'static str {
        if self.manual() { "manual" } else { "auto" }
    }

    /// Whether someone set a weight other than the default: interleave is being tuned.
    pub fn tuned(&self) -> bool {
        self.weights
            .values()
            .any(|w| *w != InterleaveWeight::DEFAULT)
    }
}

/// Whether demotion moves pages to a node under memory pressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Demotion {
    /// The kernel has no demotion switch or no memory tiers.
    Unknown,
    /// `demotion_enabled` is false.
    Off,
    /// The node has no memory, so it is in no tier.
    NoTier,
    /// Demotion is on, but no node with memory sits in a faster tier: nothing demotes here.
    NotReached,
    /// Demotion is on and nodes in a faster tier demote to this one.
    Reaches,
}

impl Demotion {
    /// The token in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Demotion::Unknown => "unknown",
            Demotion::Off => "off",
            Demotion::NoTier => "no_tier",
            Demotion::NotReached => "not_reached",
            Demotion::Reaches => "reaches",
        }
    }

    /// Every value.
    const ALL: [Demotion; 5] = [
        Demotion::Unknown,
        Demotion::Off,
        Demotion::NoTier,
        Demotion::NotReached,
        Demotion::Reaches,
    ];

    /// The words for a token of [`Demotion::as_str`]; another text stays as it is.
    pub fn describe_token(token: &str) -> &str {
        Demotion::ALL
            .into_iter()
            .find(|d| d.as_str() == token)
            .map_or(token, |d| d.describe())
    }

    /// Words for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Demotion::Unknown => "demotion unknown (this kernel has no tiers or switch)",
            Demotion::Off => "demotion off",
            Demotion::NoTier => "in no tier (no memory online)",
            Demotion::NotReached => "demotion on, but no faster tier demotes here",
            Demotion::Reaches => "demotion on, reaches it",
        }
    }
}

/// What the placement files say about one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NodePlacement {
    pub node: u32,
    /// Its memory tier (`None`: no memory online on it, or no tiers on this kernel).
    pub tier: Option<MemoryTier>,
    /// The fastest tier holding a node with CPUs: where DRAM is.
    pub dram_tier: Option<MemoryTier>,
    /// Whether demotion reaches it.
    pub demotion: Demotion,
    /// Its weighted-interleave weight (`None`: no file for it).
    pub interleave_weight: Option<InterleaveWeight>,
}

impl NodePlacement {
    /// Whether device memory on the node shares DRAM's tier (demotion never moves pages
    /// there, and tiering software treats it as DRAM).
    pub fn in_dram_tier(&self) -> bool {
        self.tier.is_some() && self.tier == self.dram_tier
    }
}

impl Placement {
    /// The tier a node is in.
    pub fn tier_of(&self, node: u32) -> Option<MemoryTier> {
        self.tiers
            .as_ref()?
            .iter()
            .find(|(_, nodes)| nodes.contains(node))
            .map(|(t, _)| *t)
    }

    /// The fastest tier holding a node with CPUs (`has_cpu`, the kernel's node list): DRAM's.
    pub fn dram_tier(&self, has_cpu: Option<&NodeList>) -> Option<MemoryTier> {
        has_cpu.and_then(|cpus| cpus.iter().filter_map(|n| self.tier_of(n)).min())
    }

    /// Every node the files name: in a tier, or with an interleave weight.
    pub fn nodes(&self) -> impl Iterator<Item = u32> + '_ {
        let tiered = self
            .tiers
            .iter()
            .flat_map(|t| t.values())
            .flat_map(NodeList::iter);
        let weighted = self
            .interleave
            .iter()
            .flat_map(|i| i.weights.keys().copied());
        tiered.chain(weighted)
    }

    /// What the files say about `node`; `has_cpu` is the kernel's `has_cpu` node list.
    pub fn node(&self, node: u32, has_cpu: Option<&NodeList>) -> NodePlacement {
        let tier = self.tier_of(node);
        let dram_tier = self.dram_tier(has_cpu);
        let demotion = match (self.demotion_enabled, &self.tiers) {
            (None, _) | (_, None) => Demotion::Unknown,
            (Some(false), _) => Demotion::Off,
            (Some(true), Some(tiers)) => match tier {
                None => Demotion::NoTier,
                Some(t) if tiers.keys().any(|faster| *faster < t) => Demotion::Reaches,
                Some(_) => Demotion::NotReached,
            },
        };
        NodePlacement {
            node,
            tier,
            dram_tier,
            demotion,
            interleave_weight: self
                .interleave
                .as_ref()
                .and_then(|i| i.weights.get(&node).copied()),
        }
    }
}

/// Reads the placement files.
pub fn read_placement(k: &dyn Kernel) -> Result<Placement, DiscoveryError> {
    let tiers = match k.list_dir(paths::MEMORY_TIERING) {
        Ok(names) => {
            let mut tiers = BTreeMap::new();
            for tier in names.iter().filter_map(|n| MemoryTier::from_dir_name(n)) {
                let path = paths::memory_tier_nodelist(&tier.dir_name());
                // A tier whose last node went away between the listing and the read.
                if let Some(nodes) = parse_optional(k, &path, str::parse::<NodeList>)? {
                    tiers.insert(tier, nodes);
                }
            }
            Some(tiers)
        }
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let demotion_enabled = parse_optional(k, paths::DEMOTION_ENABLED, parse_true_false)?;
    let interleave = match k.list_dir(paths::WEIGHTED_INTERLEAVE) {
        Ok(names) => {
            let mut weights = BTreeMap::new();
            for (name, node) in names
                .iter()
                .filter_map(|n| parse_interleave_node_file(n).map(|node| (n, node)))
            {
                let path = paths::weighted_interleave_attr(name);
                if let Some(w) = parse_optional(k, &path, str::parse::<InterleaveWeight>)? {
                    weights.insert(node, w);
                }
            }
            let path = paths::weighted_interleave_attr("auto");
            let auto = parse_optional(k, &path, parse_true_false)?;
            Some(Interleave { auto, weights })
        }
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    Ok(Placement {
        tiers,
        demotion_enabled,
        interleave,
    })
}

/// What about a node's placement changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlacementField {
    /// The node's memory tier.
    MemoryTier,
    /// Whether demotion reaches the node.
    Demotion,
    /// The node's weighted-interleave weight.
    InterleaveWeight,
}

/// One thing about a node's placement that a transition changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlacementChange {
    pub node: u32,
    /// What changed.
    pub what: PlacementField,
    /// Before, as in `list --json` (`none` where absent).
    pub before: String,
    pub after: String,
}

impl PlacementChange {
    /// One sentence.
    pub fn sentence(&self) -> String {
        let (what, before, after) = match self.what {
            PlacementField::MemoryTier => {
                ("memory tier", self.before.as_str(), self.after.as_str())
            }
            PlacementField::InterleaveWeight => (
                "interleave weight",
                self.before.as_str(),
                self.after.as_str(),
            ),
            PlacementField::Demotion => (
                "demotion",
                Demotion::describe_token(&self.before),
                Demotion::describe_token(&self.after),
            ),
        };
        format!("node {}: {what} {before} -> {after}", self.node)
    }
}

/// What changed for `nodes` between two readings.
pub fn changes(
    before: &Placement,
    after: &Placement,
    nodes: impl IntoIterator<Item = u32>,
    has_cpu: Option<&NodeList>,
) -> Vec<PlacementChange> {
    fn word<T: ToString>(v: Option<T>) -> String {
        v.map_or_else(|| "none".to_owned(), |v| v.to_string())
    }
    let mut out = Vec::new();
    for node in nodes {
        let (b, a) = (before.node(node, has_cpu), after.node(node, has_cpu));
        let mut push = |what, before: String, after: String| {
            if before != after {
                out.push(PlacementChange {
                    node,
                    what,
                    before,
                    after,
                });
            }
        };
        push(PlacementField::MemoryTier, word(b.tier), word(a.tier));
        push(
            PlacementField::Demotion,
            b.demotion.as_str().to_owned(),
            a.demotion.as_str().to_owned(),
        );
        push(
            PlacementField::InterleaveWeight,
            word(b.interleave_weight),
            word(a.interleave_weight),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> NodeList {
        s.parse().expect("node list")
    }

    fn placement(tiers: &[(u32, &str)], demotion: Option<bool>) -> Placement {
        Placement {
            tiers: Some(
                tiers
                    .iter()
                    .map(|(t, n)| (MemoryTier(*t), list(n)))
                    .collect(),
            ),
            demotion_enabled: demotion,
            interleave: None,
        }
    }

    #[test]
    fn demotion_reaches_a_node_only_below_a_faster_tier() {
        let cpus = list("0");
        let p = placement(&[(4, "0"), (22, "1")], Some(true));
        assert_eq!(p.node(1, Some(&cpus)).demotion, Demotion::Reaches);
        assert_eq!(p.node(0, Some(&cpus)).demotion, Demotion::NotReached);
        assert_eq!(p.node(2, Some(&cpus)).demotion, Demotion::NoTier);
        let shared = placement(&[(4, "0-1")], Some(true));
        let n1 = shared.node(1, Some(&cpus));
        assert!(n1.in_dram_tier());
        assert_eq!(n1.demotion, Demotion::NotReached);
        assert_eq!(
            placement(&[(4, "0"), (22, "1")], Some(false))
                .node(1, Some(&cpus))
                .demotion,
            Demotion::Off
        );
        let none = Placement::default();
        assert_eq!(none.node(1, Some(&cpus)).demotion, Demotion::Unknown);
    }

    #[test]
    fn changes_name_what_moved() {
        let before = placement(&[(4, "0")], Some(true));
        let after = placement(&[(4, "0"), (22, "1")], Some(true));
        let c = changes(&before, &after, [1], Some(&list("0")));
        let sentences: Vec<String> = c.iter().map(PlacementChange::sentence).collect();
        assert_eq!(
            sentences,
            [
                "node 1: memory tier none -> 22",
                "node 1: demotion in no tier (no memory online) -> demotion on, reaches it"
            ]
        );
        assert!(changes(&after, &after, [0, 1], None).is_empty());
    }
}
