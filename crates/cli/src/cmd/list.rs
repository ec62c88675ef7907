//! `daxplug list`: the devices as discovered, filtered, and rendered as a table or as the
//! JSON document of docs/JSON.md, with the maintenance holds and the devices the daemon
//! cannot bring to their rule before a reboot.

use std::path::Path;

use daxplug_engine::{Detail, ObservedState, Scope, discover_with};
use daxplug_kernel::Kernel;

use crate::exit::Exit;
use crate::machine::{Machine, on_machine, read_guard};
use crate::{human, json};

/// What `list` was asked for.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Only these devices (all when none is named).
    #[arg(value_name = "DEV")]
    pub devices: Vec<String>,
    /// Print one JSON object (schema in JSON.md, /usr/share/doc/daxplug) instead of a
    /// table.
    #[arg(short, long)]
    pub json: bool,
    /// Also show every memory block of every device (in JSON: fill `block_list`).
    #[arg(short, long)]
    pub blocks: bool,
    /// Only the devices of this region (0 or region0).
    #[arg(short, long, value_name = "REGION", value_parser = crate::args::region)]
    pub region: Option<u32>,
    /// Only the devices whose memory joins this node (their target node).
    #[arg(long, value_name = "NODE")]
    pub node: Option<u32>,
    /// Only the devices in this observed state (online_movable, devdax, stuck, ...).
    #[arg(short, long, value_name = "STATE", value_parser = crate::args::TokenParser::<ObservedState>::new())]
    pub state: Option<ObservedState>,
    /// Every column (region, kernel state, ranges, backing), however wide.
    #[arg(short, long)]
    pub wide: bool,
}

pub(crate) fn to_json(report: &json::Report) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    Ok(text)
}

impl Args {
    /// `daxplug list`.
    pub fn run(self, m: &Machine) -> anyhow::Result<(String, Exit)> {
        on_machine(m, false, |b| {
            let _read = read_guard(b);
            list(b.kernel(), &b.host().run_dir(), &self)
        })
    }
}

fn list(k: &dyn Kernel, run_dir: &Path, a: &Args) -> anyhow::Result<(String, Exit)> {
    // Each block's node is shown only in per-block rows.
    let detail = if a.blocks {
        Detail::Blocks
    } else {
        Detail::Counts
    };
    let scope = if a.devices.is_empty() {
        Scope::All
    } else {
        Scope::Devices(a.devices.clone())
    };
    let mut topo = discover_with(k, &scope, detail)?;
    let present = topo.devices.len();
    topo.devices.retain(|d| {
        a.region.is_none_or(|r| d.region == Some(r))
            && a.node.is_none_or(|n| d.target_node == Some(n))
            && a.state.is_none_or(|s| d.state == s)
    });
    if topo.devices.is_empty() && present > 0 && !a.json {
        return Ok((
            format!(
                "No dax device matches{}{}{} (this machine has {present}: daxplug list shows them).\n",
                a.region
                    .map_or_else(String::new, |r| format!(" --region {r}")),
                a.node.map_or_else(String::new, |n| format!(" --node {n}")),
                a.state
                    .map_or_else(String::new, |s| format!(" --state {s}")),
            ),
            Exit::Ok,
        ));
    }
    let holds = daxplug_engine::rundir::holds::holds(run_dir);
    let text = if a.json {
        to_json(&json::Report::new(&topo, a.blocks, &holds))?
    } else {
        let daemon = daxplug_engine::rundir::holds::running_daemon(run_dir);
        human::list(&topo, a.blocks, a.wide)
            + &human::holds(&holds)
            + &human::blocked(daemon.as_ref())
    };
    Ok((text, Exit::Ok))
}
