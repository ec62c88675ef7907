//! Tables and sentences for people.

use std::fmt::Write as _;

use comfy_table::{Table, presets};
use daxplug_engine::{
    Device, Driver, KernelAbi, ObservedState, Outcome, RegionKind, Report, Target, Topology,
    format_block_ids, problems,
};

use crate::units;

/// A borderless table with two spaces between columns.
fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    t.set_header(header.to_vec());
    t
}

/// A borderless key/value list.
fn kv_table() -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    t
}

/// Renders with two spaces between columns and no trailing blanks.
fn render(mut t: Table) -> String {
    for column in t.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut out = String::new();
    for line in t.to_string().lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// `online/present` and the zones, e.g. `8/8` and `Movable 7, Normal 1`.
fn zones(d: &Device) -> String {
    let c = &d.counts;
    let mut parts = Vec::new();
    if c.movable > 0 {
        parts.push(format!("Movable {}", c.movable));
    }
    if c.normal > 0 {
        parts.push(format!("kernel {}", c.normal));
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}

/// `8/8 online`, `1/8 online`, `none of 8`, `6/7 online, 1 missing`.
fn blocks(d: &Device) -> String {
    let c = &d.counts;
    if d.ranges_hidden && d.size > 0 {
        return "needs root".to_owned();
    }
    if c.total == 0 {
        return format!("none of {}", c.span);
    }
    let mut s = format!("{}/{} online", c.online, c.total);
    if c.total < c.span {
        let _ = write!(s, ", {} missing", c.span - c.total);
    }
    s
}

fn ranges(d: &Device) -> String {
    if d.mappings.is_empty() {
        return d
            .iomem
            .iter()
            .map(|r| units::range(&r.range))
            .collect::<Vec<_>>()
            .join(" ");
    }
    d.mappings
        .iter()
        .map(|m| units::range(&m.range))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line about the kernel and its policy.
fn kernel_line(topo: &Topology) -> String {
    let abi = match topo.kernel_abi {
        KernelAbi::Atomic => "atomic (daxX.Y/state present)",
        KernelAbi::Legacy => "legacy (per-block only, no daxX.Y/state)",
        KernelAbi::Unknown => {
            "unknown (daxX.Y/state can only appear on a kmem-bound device, and none is)"
        }
    };
    let mut line = format!(
        "kernel ABI: {abi}; block size {}; auto_online_blocks={}",
        units::size(topo.block_size.bytes()),
        or_dash(topo.policy.auto_online_blocks)
    );
    if let Some(p) = topo.policy.online_policy {
        let _ = write!(line, "; online_policy={p}");
    }
    if let Some(total) = topo.mem_total {
        let _ = write!(line, "; MemTotal {}", units::size(total));
    }
    if topo.limited {
        line.push_str(
            "\nread without root: the kernel hides /proc/iomem's addresses and the devices' ranges, so kmem-bound devices, and unbound ones with memory, show needs_root: their blocks, zones and leaked ranges need root (sudo daxplug list)",
        );
    }
    line
}

/// Where memory on `node` lands: its tier, demotion and interleave weight, in words.
fn placement_line(topo: &Topology, node: u32) -> String {
    use daxplug_engine::discovery::placement::Demotion;
    let placement = &topo.placement;
    let p = placement.node(node, topo.nodes.has_cpu.as_ref());
    let mut parts = vec![match (&placement.tiers, p.tier, p.dram_tier) {
        (None, ..) => "no memory tiers on this kernel".to_owned(),
        (Some(_), None, _) => "in no memory tier (no memory online)".to_owned(),
        (Some(_), Some(t), Some(d)) if t == d => format!("memory tier {t}, the same as DRAM"),
        (Some(_), Some(t), Some(d)) => format!("memory tier {t} (DRAM's is {d})"),
        (Some(_), Some(t), None) => format!("memory tier {t}"),
    }];
    let said = p.demotion == Demotion::NoTier
        || (p.demotion == Demotion::Unknown && placement.tiers.is_none());
    if !said {
        parts.push(p.demotion.describe().to_owned());
    }
    parts.push(match (&placement.interleave, p.interleave_weight) {
        (None, _) => "no weighted interleave on this kernel".to_owned(),
        (Some(i), Some(w)) => format!("interleave weight {w} ({})", i.mode()),
        (Some(_), None) => "no interleave weight (no memory online)".to_owned(),
    });
    format!("node {node}: {}", parts.join("; "))
}

/// A placement line for each node the devices' memory lands on.
fn placement_lines(topo: &Topology) -> String {
    topo.target_nodes()
        .into_iter()
        .map(|n| format!("{}\n", placement_line(topo, n)))
        .collect()
}

/// A hint for a device whose memory is out of the system on purpose.
fn note(d: &Device) -> Option<String> {
    match d.state {
        ObservedState::Unbound if d.size == 0 => Some(format!(
            "{}: empty (size 0){}; daxplug resize {} SIZE gives it memory.",
            d.name,
            if d.name.id == 0 {
                ": the kernel keeps a region's device 0 while the region exists"
            } else {
                ""
            },
            d.name
        )),
        ObservedState::NeedsRoot => Some(format!(
            "{}: read without root, its memory blocks and ranges cannot be told (it may be torn, or its range leaked): sudo daxplug status {}.",
            d.name, d.name
        )),
        ObservedState::OtherDriver => Some(format!(
            "{}: bound to {}, which daxplug does not manage; unbinding it from that driver hands it back.",
            d.name,
            d.driver.name().unwrap_or("another driver")
        )),
        ObservedState::Unbound => Some(format!(
            "{}: no driver is bound, so its memory is not system RAM; binding the kmem driver adds it.",
            d.name
        )),
        ObservedState::Devdax => Some(format!(
            "{}: a character device (/dev/{}), not system RAM.",
            d.name, d.name
        )),
        _ => None,
    }
}

fn problem_lines(out: &mut String, d: &Device) {
    for p in problems(d) {
        let _ = writeln!(out, "{}: {}", d.name, p.message);
    }
}

/// Breaks lines longer than `width` at spaces; continuations are indented two spaces.
/// Table rows (two spaces between columns) are left alone.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        if body.chars().count() <= width || body.contains("  ") {
            out.push_str(line);
            continue;
        }
        let mut current = String::new();
        for word in body.split(' ') {
            if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
                out.push_str(&current);
                out.push('\n');
                current = format!("  {word}");
            } else {
                if !current.is_empty() {
                    current.push(' ');
                }
                current.push_str(word);
            }
        }
        out.push_str(&current);
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The maintenance holds in force, a line each (nothing when there is none).
pub fn holds(holds: &[daxplug_engine::rundir::holds::Hold]) -> String {
    let mut out = String::new();
    for h in holds {
        let _ = writeln!(
            out,
            "{}: {}; the daemon leaves it alone until every hold on it ends (daxplug release {} --holder {}).",
            h.device,
            h.phrase(),
            h.device,
            h.holder
        );
    }
    if !out.is_empty() {
        out.insert(0, '\n');
    }
    wrap(&out, 80)
}

/// Devices the running daemon cannot bring to its rule before a reboot.
pub fn blocked(daemon: Option<&daxplug_engine::rundir::holds::DaemonRecord>) -> String {
    let mut out = String::new();
    for (device, state) in daemon.map_or(&[][..], |d| &d.blocked[..]) {
        let _ = writeln!(
            out,
            "{device}: blocked until reboot: the daemon's rule wants {state}, but the memory is pinned in a kernel zone; after a reboot the boot gate keeps it unbound until the daemon onlines it (or boot with memhp_default_state=offline)."
        );
    }
    out
}

/// `daxplug list`.
pub fn list(topo: &Topology, with_blocks: bool, wide: bool) -> String {
    let mut out = String::new();
    // Within 80 columns by default: the region is in the name, the ranges and backing are
    // in `status` and `--wide`; the kernel's state is shown where a kernel has one.
    let kernel_col = wide || topo.devices.iter().any(|d| d.kernel_state.is_some());
    if topo.devices.is_empty() {
        out.push_str("No dax devices.\n");
    } else {
        // MODE (devdax, system-ram) follows from STATE: only --wide shows it.
        let mut headers = vec!["DEVICE"];
        if wide {
            headers.extend(["REGION", "MODE"]);
        }
        headers.push("STATE");
        if kernel_col {
            headers.push("KERNEL");
        }
        headers.extend(["NODE", "SIZE", "BLOCKS", "ZONES"]);
        if wide {
            headers.extend(["RANGES", "BACKING"]);
        }
        let mut t = table(&headers);
        for d in &topo.devices {
            // A stale kernel state is marked `*`; a line below the table says what it means.
            let kernel = match d.kernel_state {
                Some(k) if d.state_disagrees() => format!("{k}*"),
                Some(k) => k.to_string(),
                None => "-".to_owned(),
            };
            let mut row = vec![d.name.to_string()];
            if wide {
                row.extend([or_dash(d.region), d.mode().as_str().to_owned()]);
            }
            row.push(d.state.to_string());
            if kernel_col {
                row.push(kernel);
            }
            row.extend([
                or_dash(d.target_node),
                units::size(d.size),
                blocks(d),
                zones(d),
            ]);
            if wide {
                row.extend([
                    ranges(d),
                    d.backing.clone().unwrap_or_else(|| "-".to_owned()),
                ]);
            }
            t.add_row(row);
        }
        out.push_str(&render(t));
    }
    if !topo.regions.is_empty() {
        out.push('\n');
        out.push_str(&region_table(topo));
    }
    out.push('\n');
    out.push_str(&kernel_line(topo));
    out.push('\n');
    out.push_str(&placement_lines(topo));
    let mut notes = String::new();
    for o in &topo.orphans {
        let _ = writeln!(notes, "STUCK: {}", o.sentence());
    }
    for d in &topo.devices {
        problem_lines(&mut notes, d);
        if let Some(n) = note(d) {
            notes.push_str(&n);
            notes.push('\n');
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes);
    }
    if !wide {
        out = wrap(&out, 80);
    }
    if with_blocks {
        for d in topo.devices.iter().filter(|d| !d.blocks.is_empty()) {
            let _ = write!(out, "\n{}:\n", d.name);
            out.push_str(&block_table(d));
        }
    }
    out
}

/// One row per region: its size, the free space `create` and a growing `resize` take from,
/// its alignment and its devices.
fn region_table(topo: &Topology) -> String {
    let mut t = table(&["REGION", "KIND", "SIZE", "FREE", "ALIGN", "DEVICES"]);
    for r in &topo.regions {
        let devices: Vec<String> = topo
            .devices
            .iter()
            .filter(|d| d.region == Some(r.id))
            .map(|d| d.name.to_string())
            .collect();
        t.add_row(vec![
            format!("region{}", r.id),
            r.kind.as_str().to_owned(),
            r.size.map_or_else(|| "-".to_owned(), units::size),
            r.available_size.map_or_else(|| "-".to_owned(), units::size),
            r.align.map_or_else(|| "-".to_owned(), units::size),
            devices.join(" "),
        ]);
    }
    render(t)
}

fn block_table(d: &Device) -> String {
    let mut t = table(&["BLOCK", "STATE", "ZONE", "VALID ZONES", "NODE", "RANGE"]);
    for b in &d.blocks {
        t.add_row(vec![
            format!("memory{}", b.id),
            b.state.to_string(),
            or_dash(b.zone()),
            or_dash(b.valid_zones.as_ref()),
            or_dash(b.node),
            units::range(&b.range),
        ]);
    }
    render(t)
}

/// `daxplug status DEV`.
pub fn status(topo: &Topology, d: &Device) -> String {
    let mut out = String::new();
    let driver = match &d.driver {
        Driver::None => "no driver".to_owned(),
        Driver::Kmem => "kmem: system RAM".to_owned(),
        Driver::DeviceDax => "device_dax: character device".to_owned(),
        Driver::FsdevDax => "fsdev_dax: famfs file system memory".to_owned(),
        Driver::Other(name) => format!("driver {name}"),
    };
    let _ = writeln!(out, "{}: {} ({driver})", d.name, d.state);
    let mut t = kv_table();
    let kernel_state = match (d.kernel_state, topo.kernel_abi) {
        (Some(k), _) if d.state_disagrees() => format!("{k} (stale: the blocks say {})", d.state),
        (Some(k), _) => k.to_string(),
        (None, KernelAbi::Legacy) => "- (this kernel has no daxX.Y/state)".to_owned(),
        (None, _) => "- (the state file exists only while kmem is bound)".to_owned(),
    };
    t.add_row(vec!["kernel state".to_owned(), kernel_state]);
    t.add_row(vec![
        "backing".to_owned(),
        d.backing.as_deref().map_or_else(
            || "-".to_owned(),
            |b| format!("{b} (stable across boots; a daemon rule can match on it)"),
        ),
    ]);
    if let Some(r) = d
        .region
        .and_then(|id| topo.regions.iter().find(|r| r.id == id))
    {
        let kind = match r.kind {
            RegionKind::Dynamic => "dynamic, kmem binds with bind",
            RegionKind::Static => "static, kmem binds with new_id",
        };
        t.add_row(vec![
            "region".to_owned(),
            format!("{}: {} ({kind})", r.id, r.provider),
        ]);
    }
    t.add_row(vec![
        "target node".to_owned(),
        format!(
            "{} (numa_node {})",
            or_dash(d.target_node),
            or_dash(d.numa_node)
        ),
    ]);
    let mut size = format!("{} ({} bytes)", units::size(d.size), d.size);
    if let Some(a) = d.align {
        let _ = write!(size, ", align {}", units::size(a));
    }
    t.add_row(vec!["size".to_owned(), size]);
    for m in &d.mappings {
        let blocks = match m.blocks {
            Some((first, last)) => format_block_ids(first..=last),
            None => "smaller than one block after alignment".to_owned(),
        };
        t.add_row(vec![
            format!("mapping{}", m.index),
            format!("{} -> {blocks}", units::range(&m.range)),
        ]);
    }
    if d.ranges_hidden {
        t.add_row(vec![
            "ranges".to_owned(),
            "hidden: read without root (the kernel shows them, and /proc/iomem's addresses, to root only)".to_owned(),
        ]);
    } else if d.iomem.is_empty() {
        t.add_row(vec!["/proc/iomem".to_owned(), "no entry".to_owned()]);
    }
    for r in &d.iomem {
        let kmem = r.kmem.map_or_else(String::new, |k| {
            format!(", System RAM (kmem) {}", units::range(&k))
        });
        t.add_row(vec![
            "/proc/iomem".to_owned(),
            format!("{} {}{kmem}", units::range(&r.range), d.name),
        ]);
    }
    let c = &d.counts;
    t.add_row(vec![
        "blocks".to_owned(),
        if d.ranges_hidden && d.size > 0 {
            "unknown without root: torn, leaked or kernel-zone memory cannot be told (sudo daxplug status)".to_owned()
        } else {
            format!(
            "{} of {} present: {} online ({} Movable, {} kernel zone), {} offline",
            c.total, c.span, c.online, c.movable, c.normal, c.offline
            ) + &if c.going_offline > 0 {
                format!(", {} going offline", c.going_offline)
            } else {
                String::new()
            }
        },
    ]);
    if let Some(total) = d.target_node.and_then(|n| topo.nodes.mem_total.get(&n)) {
        t.add_row(vec![
            "node MemTotal".to_owned(),
            format!("{} on node {}", units::size(*total), or_dash(d.target_node)),
        ]);
    }
    if let Some(node) = d.target_node {
        t.add_row(vec!["placement".to_owned(), placement_line(topo, node)]);
    }
    for line in render(t).lines() {
        let _ = writeln!(out, "  {line}");
    }
    if !d.blocks.is_empty() {
        out.push('\n');
        out.push_str(&block_table(d));
    }
    let mut notes = String::new();
    problem_lines(&mut notes, d);
    if let Some(n) = note(d) {
        notes.push_str(&n);
        notes.push('\n');
    }
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes);
    }
    out
}

fn state(s: Option<ObservedState>) -> &'static str {
    s.map_or("unknown", ObservedState::as_str)
}

/// Where a report's device came from and was to go: its states, and for a resize, create
/// or destroy its sizes.
fn ends(r: &Report) -> (String, String) {
    let sized = |s: Option<ObservedState>, bytes: Option<u64>| match bytes {
        Some(b) if r.requested_size.is_some() || r.destroy => {
            format!("{}, {}", state(s), units::size(b))
        }
        _ => state(s).to_owned(),
    };
    let to = if r.destroy {
        "destroyed".to_owned()
    } else {
        match r.requested_size {
            // A resized device keeps its mode: the state it ended in says it best.
            Some(b) => {
                let to = match (r.outcome, r.end) {
                    (Outcome::Done, Some(end)) => end.as_str(),
                    // A resize or create takes the device out of its driver: asked to be
                    // out of the system, it ends with none, as the real run says.
                    _ if r.target == Target::Unplugged => ObservedState::Unbound.as_str(),
                    _ => r.target.as_str(),
                };
                format!("{to}, {}", units::size(b))
            }
            None => r.target.to_string(),
        }
    };
    (sized(r.start, r.start_size), to)
}

/// One report for people; `times` adds how long each step took.
pub fn report(r: &Report, times: bool) -> String {
    let mut out = String::new();
    let (from, to) = ends(r);
    let protocol = match r.protocol {
        daxplug_engine::Protocol::Native => " (kernel's daxX.Y/state)",
        daxplug_engine::Protocol::Fallback => " (daxplug's protocol: no daxX.Y/state)",
        daxplug_engine::Protocol::None => "",
    };
    let headline = match r.outcome {
        Outcome::Done if times => {
            format!("{from} -> {to}: done in {:.1} ms{protocol}", r.total_millis)
        }
        Outcome::Done => format!("{from} -> {to}: done{protocol}"),
        Outcome::NoChange if r.destroy => {
            "already empty, nothing to do (a region's device 0 stays while the region exists)"
                .to_owned()
        }
        Outcome::NoChange => match (r.requested_size, r.end_size) {
            (Some(_), Some(size)) => format!(
                "already {}, {}, nothing to do",
                state(r.end),
                units::size(size)
            ),
            _ => format!("already {}, nothing to do", state(r.end)),
        },
        Outcome::DryRun => format!("{from} -> {to}{protocol}, would run:"),
        Outcome::Refused => match r.end {
            Some(end) => format!("refused, nothing changed ({end})"),
            None => "refused, nothing changed".to_owned(),
        },
        Outcome::RolledBack if r.end.is_none() && r.start_size == Some(0) => {
            format!("{from} -> {to} failed and was rolled back: the new device was deleted again")
        }
        Outcome::RolledBack => format!(
            "{from} -> {to} failed and was rolled back: the device is {} again",
            state(r.end)
        ),
        Outcome::Stuck => "STUCK: the kernel leaked the device's range".to_owned(),
        Outcome::Torn => format!(
            "FAILED and could not be put back together: the device is {}",
            state(r.end)
        ),
        Outcome::Failed => format!("{from} -> {to} failed: the device is now {}", state(r.end)),
    };
    let _ = writeln!(out, "{}: {headline}", r.device);
    if let Some(reason) = &r.reason {
        let _ = writeln!(out, "  reason: {reason}");
    }
    for line in &r.recovered {
        let _ = writeln!(out, "  {line}");
    }
    let lines = if r.outcome == Outcome::DryRun {
        &r.plan
    } else {
        &r.actions
    };
    for a in lines {
        let _ = writeln!(out, "    {a}");
    }
    if times && !r.phases.is_empty() {
        let phases: Vec<String> = r
            .phases
            .iter()
            .map(|p| format!("{} {:.1} ms", p.phase, p.millis))
            .collect();
        let settle = if r.settle_millis > 0.0 {
            format!(", {:.1} ms settling", r.settle_millis)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  time: {}; {:.1} ms of it in kernel writes{settle}, {:.1} ms writing the journal",
            phases.join(", "),
            r.kernel_write_millis,
            r.journal_millis
        );
    }
    if r.outcome == Outcome::Stuck {
        let _ = writeln!(
            out,
            "  {} cannot be removed or rebound until the machine reboots; daxplug will not touch it.",
            daxplug_engine::format_block_ids(r.stuck_blocks.iter().copied())
        );
    }
    if r.end == Some(ObservedState::Unbound)
        && r.requested_size.is_none()
        && !r.destroy
        && r.target == Target::Unplugged
        && r.outcome == Outcome::Done
    {
        let _ = writeln!(
            out,
            "  {} now has no driver: its memory is out of the system (this kernel has no daxX.Y/state to keep kmem bound while unplugged). `daxplug set {} online_movable` brings it back.",
            r.device, r.device
        );
    }
    out
}
