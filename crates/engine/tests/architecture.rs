//! The house rules of docs/ARCHITECTURE.md that the compiler does not check, checked on the
//! workspace's sources: no import cycle among the modules of any crate, the engine's wings
//! used only downwards, and no source file over 800 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The engine's wings, lowest first: a wing may use only the wings before it.
const ENGINE_FLOORS: &[&[&str]] = &[
    &["units", "host"],
    &["discovery"],
    &["plan"],
    &["rundir"],
    &["gate"],
    &["transition"],
    &["daemon"],
    &["doctor"],
];

const MOST_LINES: usize = 800;

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read source dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file (`discovery::blocks` for `src/discovery/blocks.rs`,
/// `discovery` for `src/discovery/mod.rs`, the empty path for the crate root).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code of a file without its test module and comments: tests may reach anywhere.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path the code names from `crate::` or `super::` (any number of them), as module
/// paths, braces expanded one level (`crate::{a, b::c}`).
fn named_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    for head in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(i) = rest.find(head) {
            let starts_a_path = !rest[..i].ends_with(|c: char| ident(c) || c == ':');
            rest = &rest[i + head.len()..];
            if !starts_a_path {
                continue;
            }
            let mut base: Vec<String> = if head == "crate::" {
                Vec::new()
            } else {
                module[..module.len().saturating_sub(1)].to_vec()
            };
            let mut tail_start = rest;
            while head == "super::" && tail_start.starts_with("super::") {
                base.pop();
                tail_start = &tail_start["super::".len()..];
            }
            let tails: Vec<String> = if let Some(group) = tail_start.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                group[..end]
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .collect()
            } else {
                let end = tail_start
                    .find(|c: char| !(ident(c) || c == ':'))
                    .unwrap_or(tail_start.len());
                vec![tail_start[..end].to_owned()]
            };
            for tail in tails {
                let mut path = base.clone();
                path.extend(
                    tail.split("::")
                        .filter(|s| !s.is_empty() && s.chars().all(ident))
                        .map(str::to_owned),
                );
                out.push(path);
            }
        }
    }
    out
}

/// A crate's modules and which other modules each one uses (a module's use of its own
/// ancestors is not an edge: a parent owns its children).
fn import_graph(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_of(src, f), f.clone()))
        .collect();
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let text = fs::read_to_string(file).expect("read source");
        let mut uses = BTreeSet::new();
        for path in named_paths(&code(&text), module) {
            let found = (1..=path.len())
                .rev()
                .map(|k| path[..k].to_vec())
                .find(|p| modules.contains_key(p));
            if let Some(target) = found
                && !module.starts_with(&target)
                && !target.is_empty()
            {
                uses.insert(target);
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

/// The import cycles of a graph (its strongly connected components of two or more).
fn cycles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    let reach = |from: &Vec<String>| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<_, _> = graph.keys().map(|m| (m.clone(), reach(m))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut placed = BTreeSet::new();
    for m in graph.keys() {
        if placed.contains(m) || !reaches[m].contains(m) {
            continue;
        }
        let circle: Vec<String> = graph
            .keys()
            .filter(|o| reaches[m].contains(*o) && reaches[*o].contains(m))
            .inspect(|o| {
                placed.insert((*o).clone());
            })
            .map(|o| o.join("::"))
            .collect();
        out.push(circle);
    }
    out
}

fn crate_sources() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = fs::read_dir(crates_dir())
        .expect("crates dir")
        .flatten()
        .map(|e| e.path().join("src"))
        .filter(|src| src.is_dir())
        .map(|src| {
            let name = src
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, src)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn no_crate_has_an_import_cycle() {
    let sources = crate_sources();
    assert!(
        sources.iter().any(|(n, _)| n == "engine") && sources.iter().any(|(n, _)| n == "model"),
        "the workspace's crates were not found under {}",
        crates_dir().display()
    );
    let mut found = Vec::new();
    for (name, src) in &sources {
        for circle in cycles(&import_graph(src)) {
            found.push(format!("{name}: {}", circle.join(" <-> ")));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_engines_wings_are_used_only_downwards() {
    let graph = import_graph(&crates_dir().join("engine/src"));
    let floor = |wing: &str| ENGINE_FLOORS.iter().position(|f| f.contains(&wing));
    let mut wrong = Vec::new();
    for (module, uses) in &graph {
        let Some(wing) = module.first() else { continue };
        let Some(from) = floor(wing) else {
            wrong.push(format!("{wing} is in no floor of ENGINE_FLOORS"));
            continue;
        };
        for target in uses {
            let used = &target[0];
            if used == wing {
                continue;
            }
            match floor(used) {
                Some(to) if to < from => {}
                _ => wrong.push(format!(
                    "{} uses {}, which is not below it",
                    module.join("::"),
                    target.join("::")
                )),
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_source_file_is_over_800_lines() {
    let mut long = Vec::new();
    for (_, src) in crate_sources() {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for f in files {
            let lines = fs::read_to_string(&f).expect("read").lines().count();
            if lines > MOST_LINES {
                long.push(format!("{} has {lines} lines", f.display()));
            }
        }
    }
    assert!(long.is_empty(), "{}", long.join("\n"));
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let dir = std::env::temp_dir().join(format!("daxplug-arch-{}", std::process::id()));
    let src = dir.join("src");
    fs::create_dir_all(src.join("wing")).expect("mkdir");
    fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod wing;\n").expect("write");
    fs::write(src.join("a.rs"), "use crate::b::B;\npub struct A;\n").expect("write");
    fs::write(src.join("b.rs"), "pub struct B(crate::wing::leaf::L);\n").expect("write");
    fs::write(src.join("wing/mod.rs"), "pub mod leaf;\nuse super::a::A;\n").expect("write");
    fs::write(
        src.join("wing/leaf.rs"),
        "use super::super::a::A;\npub struct L;\n",
    )
    .expect("write");
    let found = cycles(&import_graph(&src));
    fs::remove_dir_all(&dir).ok();
    assert_eq!(
        found,
        vec![vec!["a".to_owned(), "b".into(), "wing::leaf".into()]]
    );
}
