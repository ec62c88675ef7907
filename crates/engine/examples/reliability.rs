//! Prints docs/RELIABILITY.md: outcomes of every transition against every competitor and
//! fault on the model, for daxplug and for a daxctl-like per-block protocol.
//!
//! cargo run --release -p daxplug-engine --example reliability -- --seeds 19 > docs/RELIABILITY.md
//! cargo run --release -p daxplug-engine --example reliability -- --replay 1:legacy:12:11:6

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use common::harness::{COMPETITORS, Case, Class, FAULTS, Ran, cases, run_all, transitions};

const CLASSES: [Class; 6] = [
    Class::Reached,
    Class::RolledBack,
    Class::StuckByFault,
    Class::Stuck,
    Class::Torn,
    Class::Lied,
];

type Counts = BTreeMap<String, BTreeMap<Class, u64>>;

fn header(out: &mut String, first: &str) {
    let _ = writeln!(
        out,
        "| {first} | runs | reached | rolled back | stuck (fault) | stuck | torn | silent |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
}

fn table(out: &mut String, title: &str, first: &str, counts: &Counts) {
    let _ = writeln!(out, "\n## {title}\n");
    header(out, first);
    for (name, counts) in counts {
        let total: u64 = counts.values().sum();
        let cells: Vec<String> = CLASSES
            .iter()
            .map(|c| counts.get(c).copied().unwrap_or(0).to_string())
            .collect();
        let _ = writeln!(out, "| {name} | {total} | {} |", cells.join(" | "));
    }
}

fn count(map: &mut Counts, key: String, class: Class) {
    *map.entry(key).or_default().entry(class).or_default() += 1;
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn replay(id: &str) -> std::process::ExitCode {
    let case = match Case::parse(id) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reliability: --replay {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let (class, detail, reports) = case.run_traced();
    println!("{case}\n{class:?}: {detail}");
    for (i, r) in reports.iter().enumerate() {
        println!(
            "\nrun {}: {:?} -> {:?}, {:?}",
            i + 1,
            r.start,
            r.end,
            r.outcome
        );
        for line in r
            .recovered
            .iter()
            .map(|l| format!("recovered: {l}"))
            .chain(r.actions.iter().cloned())
        {
            println!("  {line}");
        }
    }
    if class == Class::Lied {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(id) = arg(&args, "--replay") {
        return replay(&id);
    }
    let seeds: u64 = match arg(&args, "--seeds").map(|s| s.parse()) {
        None => 3,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("reliability: --seeds takes a number of seeds, 1 or more");
            return std::process::ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let all = cases(1..=seeds);
    let ran = run_all(&all);
    let elapsed = started.elapsed().as_secs_f64();
    print!("{}", render(&ran, seeds, elapsed));
    if ran.iter().any(|r| r.ours == Class::Lied) {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

fn render(ran: &[Ran], seeds: u64, elapsed: f64) -> String {
    let mut by_comp = Counts::new();
    let mut theirs_by_comp = Counts::new();
    let mut by_fault = Counts::new();
    let mut by_flavour = Counts::new();
    let mut by_transition = Counts::new();
    let mut by_cause = Counts::new();
    let mut bad: Vec<&Ran> = Vec::new();
    for r in ran {
        let c = r.case;
        count(&mut by_comp, c.competitor().to_string(), r.ours);
        count(&mut by_fault, c.fault().to_string(), r.ours);
        count(
            &mut by_flavour,
            format!("{:?}", c.flavour).to_lowercase(),
            r.ours,
        );
        count(
            &mut by_transition,
            format!("{} → {}", c.start(), c.target()),
            r.ours,
        );
        if let Some(theirs) = r.theirs {
            count(&mut theirs_by_comp, c.competitor().to_string(), theirs);
        }
        if !r.ours.acceptable() {
            count(&mut by_cause, common::harness::cause(r).to_owned(), r.ours);
            bad.push(r);
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "# Reliability\n");
    let _ = writeln!(
        out,
        "Every transition ({} of them) on the kernel model, against each of {} competing controllers alone and all together, with each of {} faults, on both kernel flavours, for {seeds} seed(s): **{} runs of `daxplug set`**, and the same schedules on the legacy flavour for a daxctl-like per-block protocol (offline each block once, unbind; bind, online each block once: no lock, no udev fence, no rollback) where the fault is not daxplug's own.\n",
        transitions().len(),
        COMPETITORS.len() - 1,
        FAULTS.len() - 1,
        ran.len()
    );
    let _ = writeln!(
        out,
        "Made by:\n\n```\ncargo run --release -p daxplug-engine --example reliability -- --seeds {seeds} > docs/RELIABILITY.md\ncargo bench -p daxplug --bench race -- --seeds 20 --step-delay 1000 >> docs/RELIABILITY.md   # the last section\n```\n\non {} ({} cores), in {elapsed:.0} s. `cargo test -p daxplug-engine --test reliability` runs seed 1 ({} runs) in CI. Any run replays alone with `--replay SEED:FLAVOUR:T:C:F` (printed for every run below).\n",
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        ran.len() as u64 / seeds,
    );
    out.push_str(include_str!("reliability-intro.md"));
    let silent = ran.iter().filter(|r| r.ours == Class::Lied).count();
    let unexplained = ran
        .iter()
        .filter(|r| !r.ours.acceptable() && common::harness::cause(r) == "unexplained")
        .count();
    let _ = writeln!(
        out,
        "\n**This run: {} schedules, {silent} silent, {unexplained} not in a named class.**",
        ran.len()
    );
    table(
        &mut out,
        "Every run that did not keep the promise, by cause",
        "cause",
        &by_cause,
    );
    table(&mut out, "By competitor: daxplug", "competitor", &by_comp);
    table(
        &mut out,
        "By competitor: daxctl-like per-block protocol (legacy kernel)",
        "competitor",
        &theirs_by_comp,
    );
    table(&mut out, "daxplug by fault", "fault", &by_fault);
    table(&mut out, "daxplug by kernel flavour", "kernel", &by_flavour);
    table(
        &mut out,
        "daxplug by transition",
        "transition",
        &by_transition,
    );
    let _ = writeln!(out, "\n## Runs that did not keep the promise\n");
    if bad.is_empty() {
        let _ = writeln!(out, "None.");
    }
    // The first few of each cause, each with the command that replays it.
    let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &bad {
        let cause = common::harness::cause(r);
        let n = shown.entry(cause).or_default();
        *n += 1;
        if *n <= 5 {
            let _ = writeln!(
                out,
                "* {}: {:?} ({}) — `--replay {}`",
                r.case,
                r.ours,
                r.detail,
                r.case.id()
            );
        }
    }
    let more = bad
        .len()
        .saturating_sub(shown.values().map(|n| (*n).min(5)).sum());
    if more > 0 {
        let _ = writeln!(out, "\n…and {more} more of the same causes.");
    }
    out
}
