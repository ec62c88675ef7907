//! The daemon's policy: ordered rules matching devices, each with a desired state and what
//! to do when another controller changes the device.

use daxplug_abi::DaxName;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use daxplug_abi::PhysRange;
use daxplug_kernel::Kernel;
use serde::Deserialize;
use toml::Spanned;

use crate::discovery::identity::backing;
use crate::discovery::topology::{Device, Topology};
use crate::plan::target::Target;

/// What to do when a managed device drifts from its desired state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDrift {
    /// Put it back (with backoff).
    Restore,
    /// Only log it.
    Report,
}

/// Which devices a rule is for; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// Device name (`dax0.0`).
    pub name: Option<String>,
    /// Region id.
    pub region: Option<u32>,
    /// Target node.
    pub target_node: Option<u32>,
    /// Smallest size in bytes.
    pub min_size: Option<u64>,
    /// Largest size in bytes.
    pub max_size: Option<u64>,
    /// A physical range the device's memory must lie within.
    pub within: Option<PhysRange>,
    /// The stable identity of what backs the device (see [`backing`]).
    pub backing: Option<String>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// 1-based position in the file.
    pub index: usize,
    /// Which devices.
    pub matcher: Match,
    /// The state they should be in.
    pub state: Target,
    /// What to do on drift.
    pub on_drift: OnDrift,
    /// Pass the safety checks `set --force` passes (required for `online_kernel`).
    pub force: bool,
}

/// The whole policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Rules, first match wins.
    pub rules: Vec<Rule>,
    /// Where to serve Prometheus metrics (loopback only unless the policy allows more), if
    /// anywhere.
    pub metrics: Option<SocketAddr>,
    /// Where to keep a Node Feature Discovery feature file, if anywhere.
    pub nfd_file: Option<PathBuf>,
    /// Who a device an operator creates or resizes belongs to when a rule matches it.
    pub new_devices: NewDevices,
}

/// Who a device made or resized by an operator (`daxplug create`, `resize`) belongs to
/// when one of the running daemon's rules matches it: the policy's `new_devices`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NewDevices {
    /// The operator's: the command holds it for them until `daxplug release`.
    #[default]
    Operator,
    /// The policy's: the daemon applies the rule at once, and the command says so.
    Policy,
}

/// A policy file that cannot be used. Names the file, the line and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    pub file: PathBuf,
    /// 1-based line, if known.
    pub line: Option<usize>,
    /// The key at fault, if known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    rule: Vec<RuleSpec>,
    metrics: Option<MetricsSpec>,
    node_feature_discovery: Option<NfdSpec>,
    #[serde(default)]
    new_devices: NewDevices,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsSpec {
    listen: Spanned<String>,
    /// Serving on an address other than loopback is a choice made in writing (a pod whose
    /// metrics Prometheus scrapes over the node's network).
    #[serde(default)]
    allow_remote: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NfdSpec {
    file: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    #[serde(rename = "match")]
    matcher: Spanned<MatchSpec>,
    state: Spanned<String>,
    on_drift: Option<Spanned<String>>,
    force: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchSpec {
    name: Option<Spanned<String>>,
    region: Option<u32>,
    target_node: Option<u32>,
    #[serde(default, deserialize_with = "size_spec")]
    min_size: Option<u64>,
    #[serde(default, deserialize_with = "size_spec")]
    max_size: Option<u64>,
    within: Option<Spanned<String>>,
    backing: Option<Spanned<String>>,
}

/// A size in a policy: bytes, or a string with a binary unit as the command line takes it
/// (`"1G"`, `"512M"`).
fn size_spec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected bytes or a size such as \"1G\""))?
    {
        Size::Bytes(n) => Ok(Some(n)),
        Size::Text(t) => crate::units::parse_size(&t)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            file: path.to_owned(),
            line: None,
            key: None,
            message: format!("cannot read it: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates policy text; `path` is for messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, PolicyError> {
        let err = |span: Option<std::ops::Range<usize>>, key: Option<&str>, message: String| {
            PolicyError {
                file: path.to_owned(),
                line: span.map(|s| line_of(text, s.start)),
                key: key.map(str::to_owned),
                message,
            }
        };
        let spec: FileSpec = toml::from_str(text).map_err(|e| {
            let message = e.message().to_owned();
            // Unknown fields are named in the message; for other errors, the key is the
            // one assigned on the line the error points at.
            let key = message
                .split('`')
                .nth(1)
                .filter(|_| message.contains("field"))
                .map(str::to_owned)
                .or_else(|| {
                    let start = e.span()?.start;
                    let line = text[..start.min(text.len())]
                        .rsplit('\n')
                        .next()
                        .unwrap_or("")
                        .to_owned()
                        + text[start.min(text.len())..]
                            .split('\n')
                            .next()
                            .unwrap_or("");
                    let (key, _) = line.split_once('=')?;
                    let key = key.trim().trim_start_matches('{').trim();
                    (!key.is_empty() && !key.contains(['[', '"', ' '])).then(|| key.to_owned())
                });
            err(e.span(), key.as_deref(), message)
        })?;
        let mut rules = Vec::new();
        for (i, r) in spec.rule.into_iter().enumerate() {
            let state: Target =
                r.state
                    .get_ref()
                    .parse()
                    .map_err(|e: crate::plan::target::TargetError| {
                        err(Some(r.state.span()), Some("state"), e.to_string())
                    })?;
            let on_drift = match r.on_drift.as_ref().map(|s| s.get_ref().as_str()) {
                None | Some("restore") => OnDrift::Restore,
                Some("report") => OnDrift::Report,
                Some(other) => {
                    return Err(err(
                        r.on_drift.as_ref().map(Spanned::span),
                        Some("on_drift"),
                        format!("{other:?} is not a drift action: expected restore or report"),
                    ));
                }
            };
            let match_span = r.matcher.span();
            let m = r.matcher.into_inner();
            if let Some(name) = &m.name
                && name.get_ref().parse::<daxplug_abi::DaxName>().is_err()
            {
                return Err(err(
                    Some(name.span()),
                    Some("match.name"),
                    format!(
                        "{:?} is not a dax device name: expected daxREGION.ID",
                        name.get_ref()
                    ),
                ));
            }
            let within = match &m.within {
                Some(w) => Some(parse_range(w.get_ref()).ok_or_else(|| {
                    err(
                        Some(w.span()),
                        Some("match.within"),
                        format!(
                            "{:?} is not an address range: expected 0xSTART-0xEND",
                            w.get_ref()
                        ),
                    )
                })?),
                None => None,
            };
            if let Some(b) = &m.backing
                && !valid_backing(b.get_ref())
            {
                return Err(err(
                    Some(b.span()),
                    Some("match.backing"),
                    format!(
                        "{:?} is no device's backing: expected hmem:0xSTART-0xEND, cxl:regionN or nd:UUID (nd:regionN)",
                        b.get_ref()
                    ),
                ));
            }
            if let (Some(lo), Some(hi)) = (m.min_size, m.max_size)
                && lo > hi
            {
                return Err(err(
                    Some(match_span.clone()),
                    Some("match.min_size"),
                    format!("min_size {lo} is above max_size {hi}: no device can match"),
                ));
            }
            let force = r.force.unwrap_or(false);
            if state == Target::Online(daxplug_abi::OnlineType::OnlineKernel) && !force {
                return Err(err(
                    Some(r.state.span()),
                    Some("state"),
                    "online_kernel is refused without force (its memory can likely never be unplugged again): add force = true to the rule to mean it".into(),
                ));
            }
            let matcher = Match {
                name: m.name.map(Spanned::into_inner),
                region: m.region,
                target_node: m.target_node,
                min_size: m.min_size,
                max_size: m.max_size,
                within,
                backing: m.backing.map(Spanned::into_inner),
            };
            if matcher == Match::default() {
                return Err(err(Some(match_span), Some("match"), "a rule must match on something (name, region, target_node, min_size, max_size, within or backing)".into()));
            }
            rules.push(Rule {
                index: i + 1,
                matcher,
                state,
                on_drift,
                force,
            });
        }
        let metrics = match spec.metrics {
            Some(m) => {
                let addr: SocketAddr = m.listen.get_ref().parse().map_err(|_| {
                    err(
                        Some(m.listen.span()),
                        Some("metrics.listen"),
                        format!(
                            "{:?} is not an address: expected IP:PORT, such as 127.0.0.1:9477",
                            m.listen.get_ref()
                        ),
                    )
                })?;
                if !addr.ip().is_loopback() && !m.allow_remote {
                    return Err(err(
                        Some(m.listen.span()),
                        Some("metrics.listen"),
                        format!(
                            "{addr} is not a loopback address: metrics are served on 127.0.0.0/8 or ::1 unless metrics.allow_remote = true"
                        ),
                    ));
                }
                Some(addr)
            }
            None => None,
        };
        if rules.is_empty() {
            return Err(err(
                None,
                Some("rule"),
                "the policy has no [[rule]]: the daemon would manage nothing".into(),
            ));
        }
        let nfd_file = match spec.node_feature_discovery {
            Some(n) => {
                let path = PathBuf::from(n.file.get_ref());
                let fine = path.is_absolute()
                    && path.file_name().is_some()
                    && !n.file.get_ref().ends_with('/');
                if !fine {
                    return Err(err(
                        Some(n.file.span()),
                        Some("node_feature_discovery.file"),
                        format!(
                            "{:?} is not an absolute file path: expected one such as /etc/kubernetes/node-feature-discovery/features.d/daxplug",
                            n.file.get_ref()
                        ),
                    ));
                }
                Some(path)
            }
            None => None,
        };
        Ok(Policy {
            rules,
            metrics,
            nfd_file,
            new_devices: spec.new_devices,
        })
    }

    /// Which devices each rule takes on this machine (the first rule that matches a device
    /// wins), in rule order: what `--check-config` prints.
    pub fn assignments(&self, k: &dyn Kernel, topo: &Topology) -> Vec<(&Rule, Vec<DaxName>)> {
        self.rules
            .iter()
            .map(|r| {
                let taken = topo
                    .devices
                    .iter()
                    .filter(|d| {
                        self.rule_for(k, topo, d)
                            .is_some_and(|f| f.index == r.index)
                    })
                    .map(|d| d.name)
                    .collect();
                (r, taken)
            })
            .collect()
    }

    /// The first rule matching `dev`, if any.
    pub fn rule_for(&self, k: &dyn Kernel, topo: &Topology, dev: &Device) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matcher.matches(k, topo, dev))
    }
}

/// Whether `text` has the form of a backing identity ([`crate::discovery::identity::backing`]).
fn valid_backing(text: &str) -> bool {
    match text.split_once(':') {
        Some(("hmem", range)) => parse_range(range).is_some(),
        Some(("cxl", region)) => region
            .strip_prefix("region")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        Some(("nd", id)) => !id.is_empty() && !id.contains(char::is_whitespace),
        _ => false,
    }
}

fn parse_range(text: &str) -> Option<PhysRange> {
    let (a, b) = text.split_once('-')?;
    let hex = |s: &str| u64::from_str_radix(s.trim().strip_prefix("0x")?, 16).ok();
    PhysRange::new(hex(a)?, hex(b)?)
}

impl Match {
    /// Whether `dev` matches every field given.
    pub fn matches(&self, k: &dyn Kernel, topo: &Topology, dev: &Device) -> bool {
        self.name
            .as_ref()
            .is_none_or(|n| *n == dev.name.to_string())
            && self.region.is_none_or(|r| dev.region == Some(r))
            && self.target_node.is_none_or(|n| dev.target_node == Some(n))
            && self.min_size.is_none_or(|s| dev.size >= s)
            && self.max_size.is_none_or(|s| dev.size <= s)
            && self.within.is_none_or(|w| {
                !dev.mappings.is_empty() && dev.mappings.iter().all(|m| w.contains_range(&m.range))
            })
            && self
                .backing
                .as_ref()
                // A full discovery has it already; a narrower read does not.
                .is_none_or(|b| match &dev.backing {
                    Some(known) => known == b,
                    None => backing(k, topo, dev).as_deref() == Some(b.as_str()),
                })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(Path::new("/etc/daxplug/daxplug.toml"), text)
    }

    #[test]
    fn the_simplest_policy() {
        let p = parse("[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"online_movable\"\non_drift = \"restore\"\n").expect("parses");
        assert_eq!(p.rules.len(), 1);
        assert_eq!(
            p.rules[0].state,
            Target::Online(daxplug_abi::OnlineType::OnlineMovable)
        );
        assert_eq!(p.rules[0].on_drift, OnDrift::Restore);
        assert_eq!(p.metrics, None);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse("[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"offline\"\n")
            .expect_err("offline");
        assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("state")));
        assert!(
            e.to_string()
                .starts_with("/etc/daxplug/daxplug.toml:3: state: offline is not a state"),
            "{e}"
        );
        let e = parse(
            "[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"online\"\nondrift = \"report\"\n",
        )
        .expect_err("typo");
        assert_eq!(e.line, Some(4));
        assert_eq!(e.key.as_deref(), Some("ondrift"));
        let e = parse("[[rule]]\nmatch = { }\nstate = \"online\"\n").expect_err("empty match");
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("match")));
        let e = parse("[[rule]]\nmatch = { name = \"../x\" }\nstate = \"online\"\n")
            .expect_err("bad name");
        assert_eq!(e.key.as_deref(), Some("match.name"));
        let e = parse("[metrics]\nlisten = \"0.0.0.0:9477\"\n").expect_err("not loopback");
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(2), Some("metrics.listen"))
        );
        let e = parse("[[rule]]\nmatch = { within = \"140000000\" }\nstate = \"online\"\n")
            .expect_err("bad range");
        assert_eq!(e.key.as_deref(), Some("match.within"));
        let e = parse("[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = 3\n").expect_err("type");
        assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("state")), "{e}");
        let e = parse("[[rule]\n").expect_err("syntax");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn remote_metrics_and_the_feature_file_are_chosen_in_writing() {
        let rule = "[[rule]]\nmatch = { target_node = 1 }\nstate = \"online_movable\"\n";
        let p = parse(&format!(
            "{rule}[metrics]\nlisten = \"0.0.0.0:9477\"\nallow_remote = true\n[node_feature_discovery]\nfile = \"/etc/kubernetes/node-feature-discovery/features.d/daxplug\"\n"
        ))
        .expect("parses");
        assert_eq!(p.metrics.map(|a| a.port()), Some(9477));
        assert_eq!(
            p.nfd_file.as_deref(),
            Some(Path::new(
                "/etc/kubernetes/node-feature-discovery/features.d/daxplug"
            ))
        );
        for bad in ["features.d/daxplug", "/etc/features.d/", ""] {
            let e =
                parse(&format!("{rule}[node_feature_discovery]\nfile = {bad:?}\n")).expect_err(bad);
            assert_eq!(
                e.key.as_deref(),
                Some("node_feature_discovery.file"),
                "{bad}"
            );
        }
    }

    /// Rules that can never act are refused when the policy is read, not at run time.
    #[test]
    fn impossible_rules_are_refused() {
        let bad = [
            (
                "[[rule]]\nmatch = { min_size = 2, max_size = 1 }\nstate = \"devdax\"\n",
                "match.min_size",
            ),
            (
                "[[rule]]\nmatch = { backing = \"foo:bar\" }\nstate = \"devdax\"\n",
                "match.backing",
            ),
            (
                "[[rule]]\nmatch = { name = \"dax0.0\" }\nstate = \"online_kernel\"\n",
                "state",
            ),
            ("", "rule"),
        ];
        for (text, key) in bad {
            let e = parse(text).expect_err(text);
            assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        }
        let p = parse(
            "[[rule]]\nmatch = { backing = \"cxl:region3\" }\nstate = \"online_kernel\"\nforce = true\n",
        )
        .expect("force makes online_kernel a rule that can act");
        assert!(p.rules[0].force);
    }
}
