//! `daxplug`: whole-device control of device memory. This file owns the command line (the
//! global options and the command table), error reporting and the exit; each command runs
//! in its own file under `cmd/`, and the work is in the engine.

mod args;
mod cmd;
mod events;
mod exit;
mod host;
mod human;
mod json;
mod machine;
mod manual;
mod transition;
mod units;

use crate::exit::Exit;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::machine::Machine;

const ABOUT: &str = "Atomic, whole-device control of device memory (CXL, HBM, pmem, soft-reserved) that the kernel exposes as dax devices.";

/// `--help`'s long text: the states and exit codes, from the enums that define them.
fn long_about() -> String {
    use std::fmt::Write as _;
    let mut s = String::from(
        "Atomic, whole-device control of device memory (CXL, HBM, pmem, soft-reserved) that the \
kernel exposes as dax devices and turns into system RAM through the kmem driver.

Every state daxplug reports is computed from the memory blocks and /proc/iomem, whatever the \
kernel's own daxX.Y/state file claims:

",
    );
    for st in daxplug_engine::ObservedState::ALL {
        let _ = writeln!(s, "  {:<15} {}", st.as_str(), st.meaning());
    }
    s.push_str("\nExit codes:\n\n");
    for e in exit::Exit::ALL {
        let _ = writeln!(s, "  {:<3} {}", e.code(), e.meaning());
    }
    s.push_str(
        "\nDocumentation: /usr/share/doc/daxplug (CLI.md, JSON.md, DAEMON.md) and the man pages.",
    );
    s
}

#[derive(Debug, Parser)]
#[command(name = "daxplug", version, about = ABOUT, long_about = long_about())]
struct Cli {
    /// Read the machine under DIR: DIR/sys/... and DIR/proc/... (a copied sysfs tree, or
    /// a mount of the emulated machine).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/",
        conflicts_with = "sim",
        help_heading = "Which machine"
    )]
    root: PathBuf,

    /// Where daxplug keeps its lock and transition journals: default ROOT/run (so /run on
    /// the live machine), or FILE.run with --sim. Needed with --root on a read-only tree
    /// such as a `daxplug sim mount`.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Which machine"
    )]
    run_dir: Option<PathBuf>,

    /// Run against the emulated machine kept in FILE (create one with `daxplug sim init`);
    /// its state is saved back after the command, so commands see each other's effects.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help_heading = "Which machine"
    )]
    sim: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

/// The command table: what each command is (its `--help` line) and the file that runs it.
#[derive(Debug, Subcommand)]
enum Command {
    /// List every dax device with its observed state, kernel state, node, size and blocks.
    List(cmd::list::Args),
    /// Show one device in detail: ranges, /proc/iomem entries, and a row per memory block.
    Status(cmd::status::Args),
    /// Move a device (or all) to a whole-device state, so that it never ends torn: it ends
    /// in the state asked for, or back where it started (exit 6), or, if the kernel leaked
    /// the range, reported stuck (exit 7). Uses the kernel's daxX.Y/state where it exists
    /// and daxplug's own protocol where it does not.
    Set(cmd::set::Args),
    /// Create a device in a dynamic region (hmem, CXL): a new device carved from the
    /// region's free space (the FREE line of `daxplug list`, `regions[].available_size` in
    /// its JSON), brought to STATE (devdax unless --state says otherwise), with set's safety
    /// checks (online_kernel, or online where the kernel would pick a kernel zone, needs
    /// --force). Prints the new device's name.
    Create(cmd::create::Args),
    /// Grow or shrink a device of a dynamic region. Only while its memory is out of the
    /// system: devdax and famfs devices stay so; unplugged and unbound ones end unbound (the
    /// kernel changes only a device no driver holds). Growing takes the
    /// region's free space first-fit and may give the device several ranges; shrinking
    /// gives back its end.
    Resize(cmd::resize::Args),
    /// Destroy a device of a dynamic region: its memory goes back to the region's free
    /// space. Only while its memory is out of the system; a region's device 0 is kept by
    /// the kernel, at size 0.
    Destroy(cmd::destroy::Args),
    /// Finish or roll back a transition a crash interrupted, and restore the settings it
    /// had changed (auto_online_blocks, udev's exec queue). `set` does this by itself first.
    Recover(cmd::recover::Args),
    /// Find the risks: controllers that race daxplug (udev rules onlining memory, daxctl's
    /// reconfigure rule, service and configuration), hotplug settings that strand memory,
    /// devices that are mixed, stuck or in a kernel zone. Exit 0 when nothing is wrong, 9
    /// when anything is.
    Doctor(cmd::doctor::Args),
    /// Apply a written policy to device memory as it appears and keep it there: one
    /// controller instead of competing udev rules. Listens to kernel uevents (or the emulated
    /// machine's, with --sim), restores or reports drift with backoff, SIGHUP reloads the
    /// policy, SIGTERM rolls back the transition in flight and exits. One log line per
    /// decision.
    Daemon(cmd::daemon::Args),
    /// Hold a device for maintenance: a running daemon leaves it alone (and `set` may
    /// change it) until the hold lapses or `daxplug release DEV`.
    Hold(cmd::hold::Args),
    /// End your hold on a device (or, with --all, every hold on it). When no hold is left,
    /// the daemon applies its rule to the device again.
    Release(cmd::release::Args),
    /// The boot gate: keep dax drivers from binding devices on their own (so that no
    /// device memory is onlined before the daemon applies its policy). Closed early at boot
    /// by daxplug-gate.service, kept closed by the daemon while it runs, opened when it
    /// stops.
    #[command(subcommand)]
    Gate(cmd::gate::GateCommand),
    /// Write shell completions or man pages generated from this command-line definition.
    Generate(cmd::generate::Args),
    /// The emulated machine: create one, and act on it as an admin would on a real one.
    #[command(subcommand)]
    Sim(cmd::sim::SimCommand),
    /// A short narrated run on fresh emulated machines: a per-block unplug torn by a
    /// competing controller, then the same unplug done atomically.
    Demo(cmd::demo::Args),
}

/// Runs the command on the machine the global options name.
fn run(cli: Cli) -> anyhow::Result<(String, Exit)> {
    let m = Machine {
        root: cli.root,
        run_dir: cli.run_dir,
        sim: cli.sim,
    };
    match cli.command {
        Command::List(a) => a.run(&m),
        Command::Status(a) => a.run(&m),
        Command::Set(a) => a.run(&m),
        Command::Create(a) => a.run(&m),
        Command::Resize(a) => a.run(&m),
        Command::Destroy(a) => a.run(&m),
        Command::Recover(a) => a.run(&m),
        Command::Doctor(a) => a.run(&m),
        Command::Daemon(a) => a.run(&m),
        Command::Hold(a) => a.run(&m),
        Command::Release(a) => a.run(&m),
        Command::Gate(c) => c.run(&m),
        Command::Generate(a) => a.run(&m),
        Command::Sim(c) => c.run(&m),
        Command::Demo(a) => a.run(&m),
    }
}

/// The command line, or the exit for a bad one: one sentence on stderr prefixed `daxplug:`
/// like every other error, the usage line after it, exit 2.
fn parse_args() -> Result<Cli, ExitCode> {
    use clap::error::ErrorKind;
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            let text = e.render().to_string();
            let body = text.trim_start_matches("error: ");
            let (sentence, rest) = body.split_once("\n\n").unwrap_or((body, ""));
            eprintln!("daxplug: {}", sentence.trim_end());
            for line in rest.lines().filter(|l| l.starts_with("Usage:")) {
                eprintln!("  {}", line.replacen("Usage:", "usage:", 1));
            }
            Err(ExitCode::from(Exit::Usage))
        }
    }
}

fn main() -> ExitCode {
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(cli) {
        Ok((text, code)) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`daxplug list | head`) is not an error worth a message.
            if stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::from(Exit::Failure);
            }
            ExitCode::from(code)
        }
        Err(err) => {
            eprintln!("daxplug: {}", exit::chain(&err));
            ExitCode::from(exit::code_for(&err))
        }
    }
}
