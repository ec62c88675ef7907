//! udev rules read as udev reads them, to find the ones that compete with daxplug: rule
//! files in priority order with masking, continuation lines, `GOTO`/`LABEL`, `ENV{}` and
//! `$env{}` substitution. Each rule file is walked for a synthetic event (a memory block
//! added, a dax device added); a match daxplug cannot decide (`PROGRAM`, `TEST`, ...) is
//! followed both ways, so a rule is reported if any path reaches it.

use std::collections::{BTreeMap, BTreeSet};

/// One rule file as udev would read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFile {
    /// Its path, as shown to people.
    pub path: String,
    /// Its contents.
    pub text: String,
}

/// Chooses the files udev reads from `(directory priority, file name, file)` candidates,
/// highest priority first: one file per name, the highest-priority one; an empty file (or
/// a link to /dev/null, given as empty) masks the name. Sorted by name, as udev runs them.
pub fn effective<T>(candidates: Vec<(usize, String, Option<T>)>) -> Vec<(String, T)> {
    let mut by_name: BTreeMap<String, (usize, Option<T>)> = BTreeMap::new();
    for (priority, name, file) in candidates {
        match by_name.get(&name) {
            Some((p, _)) if *p <= priority => {}
            _ => {
                by_name.insert(name, (priority, file));
            }
        }
    }
    by_name
        .into_iter()
        .filter_map(|(name, (_, f))| f.map(|f| (name, f)))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Match,
    NoMatch,
    Assign,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    name: String,
    attr: Option<String>,
    op: Op,
    value: String,
}

/// A rule: its first line in the file, its text (continuations joined) and its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    line: usize,
    text: String,
    keys: Vec<Key>,
}

fn parse_key(s: &str) -> Option<(Key, &str)> {
    let s = s.trim_start_matches([' ', '\t', ',']);
    let name_end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    let (name, mut rest) = s.split_at(name_end);
    let mut attr = None;
    if let Some(r) = rest.strip_prefix('{') {
        let close = r.find('}')?;
        attr = Some(r[..close].to_owned());
        rest = &r[close + 1..];
    }
    let rest = rest.trim_start();
    let (op, rest) = if let Some(r) = rest.strip_prefix("==") {
        (Op::Match, r)
    } else if let Some(r) = rest.strip_prefix("!=") {
        (Op::NoMatch, r)
    } else if let Some(r) = rest
        .strip_prefix("+=")
        .or_else(|| rest.strip_prefix(":="))
        .or_else(|| rest.strip_prefix("-="))
        .or_else(|| rest.strip_prefix('='))
    {
        (Op::Assign, r)
    } else {
        return None;
    };
    let rest = rest.trim_start().strip_prefix('"')?;
    let close = rest.find('"')?;
    let key = Key {
        name: name.to_owned(),
        attr,
        op,
        value: rest[..close].to_owned(),
    };
    Some((key, &rest[close + 1..]))
}

fn parse(text: &str) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let (start, mut joined) = pending.take().unwrap_or((n + 1, String::new()));
        if joined.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(line);
        let mut keys = Vec::new();
        let mut rest = joined.as_str();
        while let Some((k, r)) = parse_key(rest) {
            keys.push(k);
            rest = r;
        }
        rules.push(Rule {
            line: start,
            text: joined.trim().to_owned(),
            keys,
        });
    }
    rules
}

/// udev's glob: `*`, `?`, `[...]` and `|` between alternatives.
fn glob(pattern: &str, text: &str) -> bool {
    fn one(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => one(&p[1..], t) || (!t.is_empty() && one(p, &t[1..])),
            (Some(b'?'), Some(_)) => one(&p[1..], &t[1..]),
            (Some(b'['), Some(c)) => {
                let Some(close) = p.iter().position(|b| *b == b']') else {
                    return false;
                };
                let set = &p[1..close];
                let (neg, set) = match set.first() {
                    Some(b'!' | b'^') => (true, &set[1..]),
                    _ => (false, set),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == b'-' {
                        hit |= set[i] <= *c && *c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == *c;
                        i += 1;
                    }
                }
                hit != neg && one(&p[close + 1..], &t[1..])
            }
            (Some(a), Some(b)) if a == b => one(&p[1..], &t[1..]),
            _ => false,
        }
    }
    pattern
        .split('|')
        .any(|alt| one(alt.as_bytes(), text.as_bytes()))
}

/// What a synthetic event carries.
#[derive(Debug, Clone)]
pub struct Event {
    /// `SUBSYSTEM`.
    pub subsystem: &'static str,
    /// `ACTION`.
    pub action: &'static str,
    /// `KERNEL` (the device's name).
    pub kernel: &'static str,
    /// `DEVPATH`.
    pub devpath: &'static str,
    /// `ATTR{}` values.
    pub attrs: &'static [(&'static str, &'static str)],
}

/// A memory block being added, offline (what kmem's hot-add announces).
pub const MEMORY_ADD: Event = Event {
    subsystem: "memory",
    action: "add",
    kernel: "memory40",
    devpath: "/devices/system/memory/memory40",
    attrs: &[
        ("state", "offline"),
        ("online", "0"),
        ("valid_zones", "Normal Movable"),
    ],
};

/// A dax device being added.
pub const DAX_ADD: Event = Event {
    subsystem: "dax",
    action: "add",
    kernel: "dax0.0",
    devpath: "/devices/platform/hmem.0/dax0.0",
    attrs: &[],
};

/// What a reached rule does that competes with daxplug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Competes {
    /// Writes a memory block's `state` or `online` (the values it may write).
    OnlinesMemory(BTreeSet<String>),
    /// Runs daxctl, or starts daxctl's reconfigure service, for a dax device.
    RunsDaxctl,
}

/// A rule that competes, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub path: String,
    /// Its first line.
    pub line: usize,
    /// Its text.
    pub text: String,
    /// What it does.
    pub competes: Competes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    Yes,
    No,
    Maybe,
}

type Env = BTreeMap<String, BTreeSet<String>>;

/// Every value `value` can have once `$env{x}` / `%E{x}` are replaced.
fn expand(value: &str, env: &Env) -> BTreeSet<String> {
    for open in ["$env{", "%E{"] {
        if let Some(i) = value.find(open) {
            let rest = &value[i + open.len()..];
            let Some(close) = rest.find('}') else {
                break;
            };
            let name = &rest[..close];
            let values = env
                .get(name)
                .cloned()
                .unwrap_or_else(|| BTreeSet::from([String::new()]));
            return values
                .iter()
                .flat_map(|v| expand(&format!("{}{v}{}", &value[..i], &rest[close + 1..]), env))
                .collect();
        }
    }
    BTreeSet::from([value.to_owned()])
}

fn check(key: &Key, event: &Event, env: &Env) -> Truth {
    let known: Option<BTreeSet<String>> = match (key.name.as_str(), key.attr.as_deref()) {
        ("SUBSYSTEM" | "SUBSYSTEMS", _) => Some(BTreeSet::from([event.subsystem.to_owned()])),
        ("ACTION", _) => Some(BTreeSet::from([event.action.to_owned()])),
        ("KERNEL" | "KERNELS", _) => Some(BTreeSet::from([event.kernel.to_owned()])),
        ("DEVPATH", _) => Some(BTreeSet::from([event.devpath.to_owned()])),
        ("ATTR" | "ATTRS", Some(a)) => event
            .attrs
            .iter()
            .find(|(k, _)| *k == a)
            .map(|(_, v)| BTreeSet::from([(*v).to_owned()])),
        ("ENV", Some(e)) => Some(
            env.get(e)
                .cloned()
                .unwrap_or_else(|| BTreeSet::from([String::new()])),
        ),
        _ => None,
    };
    let Some(values) = known else {
        return Truth::Maybe;
    };
    let patterns = expand(&key.value, env);
    let hits = values
        .iter()
        .filter(|v| patterns.iter().any(|p| glob(p, v)))
        .count();
    let truth = match hits {
        0 => Truth::No,
        n if n == values.len() => Truth::Yes,
        _ => Truth::Maybe,
    };
    match (key.op, truth) {
        (Op::NoMatch, Truth::Yes) => Truth::No,
        (Op::NoMatch, Truth::No) => Truth::Yes,
        (_, t) => t,
    }
}

fn is_online_value(v: &str) -> bool {
    matches!(v, "online" | "online_movable" | "online_kernel" | "1")
}

/// The rules of `files` (in the order udev runs them) that compete with daxplug on
/// `event`, on some path through the rules.
pub fn competing(files: &[RuleFile], event: &Event) -> Vec<Hit> {
    let mut hits: Vec<Hit> = Vec::new();
    let mut env = Env::new();
    for f in files {
        let rules = parse(&f.text);
        // Paths through this file: (next rule, environment). Bounded: a file cannot make
        // the walk grow without end.
        let mut ends: Vec<Env> = Vec::new();
        let mut work = vec![(0usize, env.clone())];
        let mut steps = 0;
        while let Some((mut i, mut e)) = work.pop() {
            while i < rules.len() {
                steps += 1;
                if steps > 10_000 {
                    break;
                }
                let rule = &rules[i];
                i += 1;
                let truths: Vec<Truth> = rule
                    .keys
                    .iter()
                    .filter(|k| k.op != Op::Assign)
                    .map(|k| check(k, event, &e))
                    .collect();
                if truths.contains(&Truth::No) {
                    continue;
                }
                if truths.contains(&Truth::Maybe) {
                    // The other path: the rule does not match.
                    work.push((i, e.clone()));
                }
                for k in rule.keys.iter().filter(|k| k.op == Op::Assign) {
                    let values = expand(&k.value, &e);
                    let competes = match (k.name.as_str(), k.attr.as_deref()) {
                        ("ATTR", Some("state" | "online")) if event.subsystem == "memory" => {
                            let online: BTreeSet<String> = values
                                .iter()
                                .filter(|v| is_online_value(v))
                                .cloned()
                                .collect();
                            (!online.is_empty()).then_some(Competes::OnlinesMemory(online))
                        }
                        ("RUN", _) if event.subsystem == "memory" => values
                            .iter()
                            .any(|v| v.contains("/online") || v.contains("/state"))
                            .then(|| {
                                Competes::OnlinesMemory(BTreeSet::from(["online".to_owned()]))
                            }),
                        ("RUN", _) if event.subsystem == "dax" => values
                            .iter()
                            .any(|v| v.contains("daxctl"))
                            .then_some(Competes::RunsDaxctl),
                        ("ENV", Some("SYSTEMD_WANTS")) if event.subsystem == "dax" => values
                            .iter()
                            .any(|v| v.contains("daxdev-reconfigure"))
                            .then_some(Competes::RunsDaxctl),
                        _ => None,
                    };
                    if let Some(c) = competes {
                        match hits
                            .iter_mut()
                            .find(|h| h.path == f.path && h.line == rule.line)
                        {
                            // Another path to the same rule: the values it can write add up.
                            Some(Hit {
                                competes: Competes::OnlinesMemory(seen),
                                ..
                            }) => {
                                if let Competes::OnlinesMemory(more) = c {
                                    seen.extend(more);
                                }
                            }
                            Some(_) => {}
                            None => hits.push(Hit {
                                path: f.path.clone(),
                                line: rule.line,
                                text: rule.text.clone(),
                                competes: c,
                            }),
                        }
                    }
                    match (k.name.as_str(), k.attr.as_deref()) {
                        ("ENV", Some(name)) => {
                            e.insert(name.to_owned(), values);
                        }
                        ("GOTO", _) => {
                            if let Some(j) = rules.iter().position(|r| {
                                r.keys
                                    .iter()
                                    .any(|l| l.name == "LABEL" && l.value == k.value)
                            }) {
                                i = j;
                            }
                        }
                        _ => {}
                    }
                }
            }
            ends.push(e);
        }
        // What the next file sees: every value any path left.
        for e in ends {
            for (k, v) in e {
                env.entry(k).or_default().extend(v);
            }
        }
    }
    hits.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> RuleFile {
        RuleFile {
            path: path.to_owned(),
            text: text.to_owned(),
        }
    }

    /// The structure of RHEL's memory hotplug section (written for this test, same facts):
    /// bail-outs by GOTO, the online type chosen into an environment key, and the write on
    /// a separate line that never names memory.
    const RHEL_LIKE: &str = "\
# memory hotplug
SUBSYSTEM!=\"memory\", GOTO=\"mem_end\"
ACTION!=\"add\", GOTO=\"mem_end\"
PROGRAM=\"/bin/uname -p\", RESULT==\"s390*\", GOTO=\"mem_end\"
ENV{.state}=\"online\"
PROGRAM=\"/usr/bin/systemd-detect-virt\", RESULT!=\"none\", \\
    ENV{.state}=\"online_movable\"
ATTR{state}==\"offline\", ATTR{state}=\"$env{.state}\"
LABEL=\"mem_end\"
";

    #[test]
    fn a_write_on_its_own_line_is_found_with_the_values_it_can_write() {
        let hits = competing(
            &[file("/usr/lib/udev/rules.d/40-redhat.rules", RHEL_LIKE)],
            &MEMORY_ADD,
        );
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].line, 8);
        assert_eq!(
            hits[0].competes,
            Competes::OnlinesMemory(BTreeSet::from(["online".into(), "online_movable".into()]))
        );
        // A dax device's add never reaches it.
        assert!(competing(&[file("x", RHEL_LIKE)], &DAX_ADD).is_empty());
    }

    #[test]
    fn other_distributions_shapes_and_daxctl() {
        // One line that tests for the file and writes `online` (Ubuntu's VM hot-add rule).
        let ubuntu = "SUBSYSTEM==\"memory\", ACTION==\"add\", DEVPATH==\"/devices/system/memory/memory*[0-9]\", TEST==\"/sys$devpath/online\", ATTR{online}=\"1\"\n";
        // A PROGRAM test before an unconditional online (SUSE's hot-plug rule).
        let suse = "SUBSYSTEM==\"memory\", ACTION==\"add\", PROGRAM==\"/bin/uname -p\", RESULT!=\"s390*\", ATTR{state}==\"offline\", ATTR{state}=\"online\"\n";
        // daxctl's: a dax device's add starts its reconfigure service.
        let daxctl = "ACTION==\"add\", SUBSYSTEM==\"dax\", TAG+=\"systemd\", ENV{SYSTEMD_WANTS}=\"daxdev-reconfigure@$env{DEVNAME}.service\"\n";
        // daxctl 76's older form runs daxctl itself.
        let daxctl_run = "ACTION==\"add\", SUBSYSTEM==\"dax\", RUN+=\"/usr/bin/daxctl -C --reconfigure-device $kernel\"\n";
        let files = [
            file("a.rules", ubuntu),
            file("b.rules", suse),
            file("c.rules", daxctl),
            file("d.rules", daxctl_run),
        ];
        let memory: Vec<String> = competing(&files, &MEMORY_ADD)
            .into_iter()
            .map(|h| h.path)
            .collect();
        assert_eq!(memory, vec!["a.rules", "b.rules"]);
        let dax: Vec<String> = competing(&files, &DAX_ADD)
            .into_iter()
            .map(|h| h.path)
            .collect();
        assert_eq!(dax, vec!["c.rules", "d.rules"]);
    }

    #[test]
    fn rules_that_do_not_compete_are_not_flagged() {
        let quiet = "\
# reading state, writing nothing
SUBSYSTEM==\"memory\", ACTION==\"add\", ATTR{state}==\"online\", ATTR{state}=\"offline\"
SUBSYSTEM==\"memory\", ACTION==\"remove\", ATTR{state}=\"online\"
SUBSYSTEM==\"block\", ATTR{state}=\"online\"
";
        assert!(competing(&[file("q.rules", quiet)], &MEMORY_ADD).is_empty());
    }

    #[test]
    fn masking_keeps_the_highest_priority_file_and_an_empty_one_masks() {
        let chosen = effective(vec![
            (0, "40-redhat.rules".to_owned(), None),
            (2, "40-redhat.rules".to_owned(), Some("vendor")),
            (2, "90-daxctl-device.rules".to_owned(), Some("daxctl")),
            (0, "10-local.rules".to_owned(), Some("local")),
        ]);
        assert_eq!(
            chosen,
            vec![
                ("10-local.rules".to_owned(), "local"),
                ("90-daxctl-device.rules".to_owned(), "daxctl"),
            ]
        );
    }

    #[test]
    fn globs() {
        assert!(glob("memory*[0-9]", "memory40"));
        assert!(!glob("memory*[0-9]", "memoryx"));
        assert!(glob("add|change", "change"));
        assert!(glob("s390*", "s390x"));
        assert!(!glob("s390*", "x86_64"));
    }
}
