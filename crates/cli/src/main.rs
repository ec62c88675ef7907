//! `daxplug`: whole-device control of device memory. This file owns argument parsing,
//! error reporting and exit codes; the work is in the engine.

mod exit;
mod human;
mod json;
mod units;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use daxplug_engine::{Scope, discover};
use daxplug_kernel::{Access, RootFs};

const ABOUT: &str = "Atomic, whole-device control of device memory (CXL, HBM, pmem, soft-reserved) that the kernel exposes as dax devices.";

const LONG_ABOUT: &str = "\
Atomic, whole-device control of device memory (CXL, HBM, pmem, soft-reserved) that the \
kernel exposes as dax devices and turns into system RAM through the kmem driver.

Every state daxplug reports is computed from the memory blocks and /proc/iomem, whatever the \
kernel's own daxX.Y/state file claims:

  unbound         no driver; the memory is not in use
  devdax          bound to device_dax: a character device
  unplugged       bound to kmem with no memory blocks (kernels with the atomic ABI)
  offline         bound to kmem, every block offline
  online_movable  every block online in ZONE_MOVABLE (removable)
  online_kernel   every block online in a kernel zone (rarely removable)
  mixed           torn: blocks disagree (online/offline, zones, missing blocks)
  stuck           kmem unbound while the kernel still holds blocks or the range:
                  leaked until reboot

Exit codes: 0 success; 1 unexpected failure; 2 bad usage or malformed argument; \
3 unusable root (missing, not a sysfs tree, no memory hotplug); 4 no such device.";

#[derive(Debug, Parser)]
#[command(name = "daxplug", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    /// Read the machine under DIR: DIR/sys/... and DIR/proc/... (a copied sysfs tree, or
    /// a mount of the emulated machine).
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    root: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every dax device with its observed state, kernel state, node, size and blocks.
    List {
        /// Print one JSON object (schema in docs/JSON.md) instead of a table.
        #[arg(long)]
        json: bool,
        /// Also show every memory block of every device (in JSON: fill `block_list`).
        #[arg(long)]
        blocks: bool,
    },
    /// Show one device in detail: ranges, /proc/iomem entries, and a row per memory block.
    Status {
        /// The device, such as dax0.0.
        #[arg(value_name = "DEV")]
        device: String,
        /// Print one JSON object (the same schema as `list --json --blocks`).
        #[arg(long)]
        json: bool,
    },
}

fn run(cli: Cli) -> anyhow::Result<String> {
    // Looking never writes: the backend refuses writes before they reach a file.
    let kernel = RootFs::new(&cli.root, Access::ReadOnly)?;
    match cli.command {
        Command::List { json, blocks } => {
            let topo = discover(&kernel, &Scope::All)?;
            if json {
                to_json(&json::Report::new(&topo, blocks))
            } else {
                Ok(human::list(&topo, blocks))
            }
        }
        Command::Status { device, json } => {
            let topo = discover(&kernel, &Scope::Devices(vec![device.clone()]))?;
            let d = topo
                .devices
                .iter()
                .find(|d| d.name == device)
                .with_context(|| format!("discovery did not return {device}"))?;
            if json {
                to_json(&json::Report::new(&topo, true))
            } else {
                Ok(human::status(&topo, d))
            }
        }
    }
}

fn to_json(report: &json::Report) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    Ok(text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`daxplug list | head`) is not an error worth a message.
            if stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::from(exit::FAILURE);
            }
            ExitCode::from(exit::OK)
        }
        Err(err) => {
            let mut msg = format!("daxplug: {err}");
            for cause in err.chain().skip(1) {
                msg.push_str(": ");
                msg.push_str(&cause.to_string());
            }
            eprintln!("{msg}");
            ExitCode::from(exit::code_for(&err))
        }
    }
}
