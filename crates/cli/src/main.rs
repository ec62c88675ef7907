//! `daxplug`: whole-device control of device memory. This file owns argument parsing,
//! error reporting and exit codes; the work is in the engine.

mod demo;
mod exit;
mod human;
mod json;
mod simcmd;
mod units;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use daxplug_engine::{Scope, discover};
use daxplug_kernel::{Access, Kernel, RootFs};
use daxplug_model::Sim;

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
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/",
        conflicts_with = "sim"
    )]
    root: PathBuf,

    /// Run against the emulated machine kept in FILE (create one with `daxplug sim init`);
    /// its state is saved back after the command, so commands see each other's effects.
    #[arg(long, global = true, value_name = "FILE")]
    sim: Option<PathBuf>,

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
    /// The emulated machine: create one, and act on it as an admin would on a real one.
    #[command(subcommand)]
    Sim(simcmd::SimCommand),
    /// A short narrated run on fresh emulated machines: a per-block unplug torn by a
    /// competing controller, then the same unplug done atomically.
    Demo {
        /// Seed of every interleaving.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn run(cli: Cli) -> anyhow::Result<String> {
    // Commands that need no machine.
    match &cli.command {
        Command::Sim(simcmd::SimCommand::Init {
            file,
            preset,
            kernel,
            seed,
            force,
        }) => {
            return simcmd::init(file, preset, *kernel, *seed, *force);
        }
        Command::Sim(simcmd::SimCommand::Presets) => return Ok(simcmd::presets()),
        Command::Demo { seed } => {
            let outcome = demo::run(*seed)?;
            // The demo checks its own claim rather than narrating it blindly.
            if outcome.atomic != daxplug_engine::ObservedState::Unplugged {
                anyhow::bail!(
                    "the demo's atomic unplug ended {}, not unplugged",
                    outcome.atomic
                );
            }
            let _ = outcome.per_block;
            return Ok(outcome.text);
        }
        _ => {}
    }
    match &cli.sim {
        Some(file) => {
            let (sim, store) = Sim::open(file)?;
            let result = command(Backend::Sim(&sim), cli.command);
            // The machine changed even if the command failed (a write that failed may have
            // moved the clock and let actors run): save it either way.
            sim.save(&store)?;
            result
        }
        None => {
            if matches!(cli.command, Command::Sim(_)) {
                return Err(exit::Usage(
                    "this sim command acts on an emulated machine: pass --sim FILE".to_owned(),
                )
                .into());
            }
            // Looking never writes: the backend refuses writes before they reach a file.
            let kernel = RootFs::new(&cli.root, Access::ReadOnly)?;
            command(Backend::Root(&kernel), cli.command)
        }
    }
}

/// What the command runs against.
#[derive(Clone, Copy)]
enum Backend<'a> {
    /// Files under a root directory (the running kernel, or a copied tree).
    Root(&'a RootFs),
    /// The emulated machine.
    Sim(&'a Sim),
}

impl Backend<'_> {
    fn kernel(&self) -> &dyn Kernel {
        match self {
            Backend::Root(k) => *k,
            Backend::Sim(k) => *k,
        }
    }
}

fn command(backend: Backend<'_>, command: Command) -> anyhow::Result<String> {
    let kernel = backend.kernel();
    match command {
        Command::List { json, blocks } => {
            let topo = discover(kernel, &Scope::All)?;
            if json {
                to_json(&json::Report::new(&topo, blocks))
            } else {
                Ok(human::list(&topo, blocks))
            }
        }
        Command::Status { device, json } => {
            let topo = discover(kernel, &Scope::Devices(vec![device.clone()]))?;
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
        Command::Sim(cmd) => match backend {
            Backend::Sim(sim) => simcmd::run(sim, cmd),
            Backend::Root(_) => Err(exit::Usage(
                "this sim command acts on an emulated machine: pass --sim FILE".to_owned(),
            )
            .into()),
        },
        Command::Demo { .. } => anyhow::bail!("internal: demo needs no machine"),
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
