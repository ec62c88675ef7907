//! `daxplug`: whole-device control of device memory. This file owns argument parsing,
//! error reporting and exit codes; the work is in the engine.

mod args;
mod daemoncmd;
mod demo;
mod doctorcmd;
mod events;
mod exit;
mod gatecmd;
mod holdcmd;
mod host;
mod human;
mod json;
mod layoutcmd;
mod listcmd;
mod manual;
mod mountcmd;
mod served;
mod setcmd;
mod simcmd;
mod simrun;
mod units;

use crate::exit::Exit;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use daxplug_kernel::{Access, Kernel, RootFs};
use daxplug_model::Sim;

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

#[derive(Debug, Subcommand)]
enum Command {
    /// List every dax device with its observed state, kernel state, node, size and blocks.
    List(listcmd::ListArgs),
    /// Show one device in detail: ranges, /proc/iomem entries, and a row per memory block.
    Status {
        /// The device, such as dax0.0.
        #[arg(value_name = "DEV")]
        device: String,
        /// Print one JSON object (the same schema as `list --json --blocks`).
        #[arg(short, long)]
        json: bool,
    },
    /// Move a device (or all) to a whole-device state, so that it never ends torn: it ends
    /// in the state asked for, or back where it started (exit 6), or, if the kernel leaked
    /// the range, reported stuck (exit 7). Uses the kernel's daxX.Y/state where it exists
    /// and daxplug's own protocol where it does not.
    Set {
        /// The device, such as dax0.0, or `all`.
        #[arg(value_name = "DEV|all")]
        device: String,
        /// unplugged, online, online_kernel, online_movable, devdax or famfs.
        #[arg(value_name = "STATE", value_parser = args::TargetParser)]
        state: daxplug_engine::Target,
        /// With several devices (`set all`): every device's actions and times, not one line
        /// each and a summary.
        #[arg(short, long)]
        verbose: bool,
        #[command(flatten)]
        common: TransitionArgs,
    },
    /// Create a device in a dynamic region (hmem, CXL): a new device carved from the
    /// region's free space (the FREE line of `daxplug list`, `regions[].available_size` in
    /// its JSON), brought to STATE (devdax unless --state says otherwise), with set's safety
    /// checks (online_kernel, or online where the kernel would pick a kernel zone, needs
    /// --force). Prints the new device's name.
    Create {
        /// The region: its id, such as 0 or region0.
        #[arg(value_name = "REGION")]
        region: String,
        /// The size: bytes, or with K, M, G or T (binary), such as 512M or 1.5G; a multiple
        /// of the alignment (2 MiB at least). `max`, or no --size, takes all the region's
        /// free space.
        #[arg(short, long, value_name = "SIZE", default_value = "max")]
        size: String,
        /// The device's alignment, written before its size: 4K, 2M or 1G.
        #[arg(long, value_name = "BYTES")]
        align: Option<String>,
        /// The state the new device ends in: devdax, unplugged, online_movable, ...
        #[arg(long, value_name = "STATE", default_value = "devdax", value_parser = args::TargetParser)]
        state: daxplug_engine::Target,
        #[command(flatten)]
        common: TransitionArgs,
    },
    /// Grow or shrink a device of a dynamic region. Only while its memory is out of the
    /// system: devdax and famfs devices stay so; unplugged and unbound ones end unbound (the
    /// kernel changes only a device no driver holds). Growing takes the
    /// region's free space first-fit and may give the device several ranges; shrinking
    /// gives back its end.
    Resize {
        /// The device, such as dax0.1.
        #[arg(value_name = "DEV")]
        device: String,
        /// The new size: bytes, or with K, M, G or T (binary), such as 256M.
        #[arg(value_name = "SIZE")]
        size: String,
        #[command(flatten)]
        common: TransitionArgs,
    },
    /// Destroy a device of a dynamic region: its memory goes back to the region's free
    /// space. Only while its memory is out of the system; a region's device 0 is kept by
    /// the kernel, at size 0.
    Destroy {
        /// The device, such as dax0.1.
        #[arg(value_name = "DEV")]
        device: String,
        #[command(flatten)]
        common: TransitionArgs,
    },
    /// Finish or roll back a transition a crash interrupted, and restore the settings it
    /// had changed (auto_online_blocks, udev's exec queue). `set` does this by itself first.
    Recover {
        /// Print one JSON object.
        #[arg(short, long)]
        json: bool,
    },
    /// Find the risks: controllers that race daxplug (udev rules onlining memory, daxctl's
    /// reconfigure rule, service and configuration), hotplug settings that strand memory,
    /// devices that are mixed, stuck or in a kernel zone. Exit 0 when nothing is wrong, 9
    /// when anything is.
    Doctor {
        /// Print one JSON object.
        #[arg(short, long)]
        json: bool,
        /// The daemon's policy, checked against the devices (rules that match by name
        /// only). Default: ROOT/etc/daxplug/daxplug.toml when it exists (none with --sim).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Apply a written policy to device memory as it appears and keep it there: one
    /// controller instead of competing udev rules. Listens to kernel uevents (or the emulated
    /// machine's, with --sim), restores or reports drift with backoff, SIGHUP reloads the
    /// policy, SIGTERM rolls back the transition in flight and exits. One log line per
    /// decision.
    Daemon {
        /// The policy file (TOML; daxplug.toml(5), DAEMON.md in /usr/share/doc/daxplug).
        #[arg(long, value_name = "FILE", default_value = "/etc/daxplug/daxplug.toml")]
        config: std::path::PathBuf,
        /// Apply the policy to every present device, report, and exit (for boot units and
        /// scripts): exit 0 when every managed device is in its state.
        #[arg(long)]
        once: bool,
        /// Only validate the policy file: errors name the file, line and key.
        #[arg(long)]
        check_config: bool,
        /// Stop after this long (for trials on the emulated machine, and tests).
        #[arg(long, value_name = "DURATION", value_parser = setcmd::parse_timeout)]
        exit_after: Option<setcmd::Timeout>,
        /// With --once: print what the daemon would do (each transition's plan) and change
        /// nothing.
        #[arg(long, requires = "once")]
        dry_run: bool,
        /// How often to look at every device even though no event came: a safety net
        /// where kernel uevents (or file events on a copied tree) wake the daemon (default
        /// 5m); the polling interval where none can (the emulated /sys of `sim run`,
        /// default 1s).
        #[arg(long, value_name = "DURATION", value_parser = setcmd::parse_timeout)]
        sweep: Option<setcmd::Timeout>,
    },
    /// Hold a device for maintenance: a running daemon leaves it alone (and `set` may
    /// change it) until the hold lapses or `daxplug release DEV`.
    Hold {
        /// The device, such as dax0.0.
        #[arg(value_name = "DEV")]
        device: String,
        /// How long (30m, 2h; default: until released).
        #[arg(long = "for", value_name = "DURATION", value_parser = setcmd::parse_timeout)]
        duration: Option<setcmd::Timeout>,
        /// Why, shown by `list`, `status`, `doctor` and the daemon's log.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Who holds it (default: the login name, the one behind sudo if any). Each holder
        /// has their own hold; the device stays held until the last one ends.
        #[arg(long, value_name = "NAME")]
        holder: Option<String>,
    },
    /// End your hold on a device (or, with --all, every hold on it). When no hold is left,
    /// the daemon applies its rule to the device again.
    Release {
        /// The device, such as dax0.0.
        #[arg(value_name = "DEV")]
        device: String,
        /// Whose hold to end (default: yours, as `hold` names you).
        #[arg(long, value_name = "NAME", conflicts_with = "all")]
        holder: Option<String>,
        /// End every hold on the device, whoever took it.
        #[arg(long)]
        all: bool,
    },
    /// The boot gate: keep dax drivers from binding devices on their own (so that no
    /// device memory is onlined before the daemon applies its policy). Closed early at boot
    /// by daxplug-gate.service, kept closed by the daemon while it runs, opened when it
    /// stops.
    #[command(subcommand)]
    Gate(gatecmd::GateCommand),
    /// Write shell completions or man pages generated from this command-line definition.
    Generate {
        /// `completions` (to stdout) or `man` (into --dir).
        #[arg(value_parser = ["completions", "man"])]
        what: String,
        /// Shell for completions: bash, zsh, fish, elvish, powershell.
        #[arg(long, default_value = "bash")]
        shell: String,
        /// Directory for man pages.
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
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

/// The options of every command that changes a device: `set`, `create`, `resize`,
/// `destroy`.
#[derive(Debug, Clone, Copy, clap::Args)]
struct TransitionArgs {
    /// Give up and roll back after this long (30s, 500ms, 2m; 0 for never).
    #[arg(short, long, value_name = "DURATION", default_value = "5m", value_parser = setcmd::parse_timeout)]
    timeout: setcmd::Timeout,
    /// Print the plan (every sysfs write in order) and change nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Print one JSON object with a `results` array.
    #[arg(short, long)]
    json: bool,
    /// Proceed past a safety check (online_kernel, a /dev/daxX.Y in use, leaving famfs);
    /// the message of the check says what it risks.
    #[arg(short, long)]
    force: bool,
    /// Do not ask first: `set all` and `destroy` ask for a yes on a terminal.
    #[arg(short, long)]
    yes: bool,
    /// Change a device a running daemon manages: it is held for maintenance (the daemon
    /// leaves it alone) until `daxplug release DEV`.
    #[arg(long = "override")]
    daemon_override: bool,
}

impl From<TransitionArgs> for layoutcmd::Common {
    fn from(a: TransitionArgs) -> Self {
        layoutcmd::Common {
            timeout: a.timeout.0,
            dry_run: a.dry_run,
            json: a.json,
            force: a.force,
            daemon_override: a.daemon_override,
            yes: a.yes,
        }
    }
}

/// The one dispatcher: commands that need no machine run at once; the others open the
/// machine (`--sim FILE`, or the root; writable only for commands that change it) and run
/// against it.
fn run(cli: Cli) -> anyhow::Result<(String, Exit)> {
    let text = |r: anyhow::Result<String>| r.map(|t| (t, Exit::Ok));
    let Cli {
        root,
        run_dir,
        sim,
        command,
    } = cli;
    let cli = Machine { root, run_dir, sim };
    match command {
        Command::Sim(simcmd::SimCommand::Init {
            ref file,
            ref preset,
            kernel,
            seed,
            kernel_allocs,
            force,
        }) => text(simcmd::init(
            file,
            preset,
            kernel,
            seed,
            kernel_allocs,
            force,
        )),
        Command::Sim(simcmd::SimCommand::Presets) => Ok((simcmd::presets(), Exit::Ok)),
        Command::Sim(simcmd::SimCommand::Mount { ref file, ref dir }) => mountcmd::mount(file, dir),
        Command::Sim(simcmd::SimCommand::Run {
            ref file,
            ref command,
        }) => simrun::run(file, command),
        Command::Generate {
            ref what,
            ref shell,
            ref dir,
        } => {
            use clap::CommandFactory as _;
            manual::generate(Cli::command(), what, shell, dir)
        }
        Command::Demo { seed } => demo::checked(seed),
        Command::Daemon {
            ref config,
            check_config: true,
            ..
        } => {
            let p = daxplug_engine::plan::policy::Policy::load(config)
                .map_err(|e| exit::Usage(format!("the policy is not valid: {e}")))?;
            let mut out = daemoncmd::check_config_header(config, &p);
            // What each rule takes on this machine, and what doctor would say of the policy.
            match on_machine(&cli, false, |b| {
                daemoncmd::check_config_on(b.kernel(), config, &p)
            }) {
                Ok((lines, _)) => out.push_str(&lines),
                Err(e) => out.push_str(&format!("  (this machine could not be read: {e:#})\n")),
            }
            Ok((out, Exit::Ok))
        }
        Command::Sim(cmd) => match &cli.sim {
            Some(file) => on_sim(file, cli.run_dir.as_ref(), true, |sim, _, _| {
                text(simcmd::run(sim, cmd))
            }),
            None => Err(exit::Usage(
                "this sim command acts on an emulated machine: pass --sim FILE".to_owned(),
            )
            .into()),
        },
        Command::Set {
            ref device,
            state,
            verbose,
            common,
        } => on_machine(&cli, !common.dry_run, |b| {
            let host = b.host();
            setcmd::run(
                host.as_ref(),
                &setcmd::SetArgs {
                    device: device.clone(),
                    target: state,
                    timeout: common.timeout.0,
                    dry_run: common.dry_run,
                    json: common.json,
                    force: common.force,
                    daemon_override: common.daemon_override,
                    verbose,
                    yes: common.yes,
                },
            )
        }),
        Command::Daemon {
            ref config,
            once,
            exit_after,
            dry_run,
            sweep,
            ..
        } => on_machine(&cli, !dry_run, |b| {
            let host = b.host();
            let events = match b {
                Backend::Sim(sim, _, store) => daemoncmd::Events::Sim(sim, store),
                // The emulated /sys of `sim run` is served through FUSE: no uevent or
                // inotify event reports what the model does.
                Backend::Root(_, root, _)
                    if root == std::path::Path::new("/")
                        && daxplug_kernel::on_fuse(std::path::Path::new(
                            daxplug_kernel::paths::MEMORY,
                        )) =>
                {
                    daemoncmd::Events::Poll
                }
                Backend::Root(_, root, _) if root == std::path::Path::new("/") => {
                    daemoncmd::Events::Netlink
                }
                Backend::Root(_, root, _) => daemoncmd::Events::Tree(root.clone()),
            };
            let args = daemoncmd::DaemonArgs {
                config: config.clone(),
                once,
                exit_after: exit_after.and_then(|t| t.0),
                dry_run,
                sweep: sweep.and_then(|t| t.0),
            };
            daemoncmd::run(host.as_ref(), &events, &args)
        }),
        Command::Create {
            ref region,
            ref size,
            ref align,
            ref state,
            common,
        } => on_machine(&cli, !common.dry_run, |b| {
            layoutcmd::run_create(
                b.host().as_ref(),
                region,
                size,
                align.as_deref(),
                *state,
                common.into(),
            )
        }),
        Command::Resize {
            ref device,
            ref size,
            common,
        } => on_machine(&cli, !common.dry_run, |b| {
            layoutcmd::run_resize(b.host().as_ref(), device, size, common.into())
        }),
        Command::Destroy { ref device, common } => on_machine(&cli, !common.dry_run, |b| {
            layoutcmd::run_destroy(b.host().as_ref(), device, common.into())
        }),
        Command::Hold {
            ref device,
            duration,
            ref reason,
            ref holder,
        } => on_machine(&cli, true, |b| {
            let secs = duration.and_then(|d| d.0).map(|d| d.as_secs());
            holdcmd::run_hold(
                b.host().as_ref(),
                device,
                secs,
                reason.clone(),
                holder.as_deref(),
            )
        }),
        Command::Release {
            ref device,
            ref holder,
            all,
        } => on_machine(&cli, true, |b| {
            holdcmd::run_release(b.host().as_ref(), device, holder.as_deref(), all)
        }),
        Command::Gate(ref cmd) => on_machine(&cli, cmd.writes(), |b| {
            gatecmd::run(b.kernel(), &b.host().run_dir(), cmd)
        }),
        Command::Recover { json } => on_machine(&cli, true, |b| {
            setcmd::run_recover(b.host().as_ref(), json, None)
        }),
        Command::Doctor { json, ref config } => on_machine(&cli, false, |b| {
            let _read = read_guard(b);
            let root = match b {
                Backend::Root(_, root, _) => Some(root.as_path()),
                Backend::Sim(..) => None,
            };
            doctorcmd::run(
                b.kernel(),
                &b.host().run_dir(),
                root,
                config.as_deref(),
                json,
            )
        }),
        Command::List(ref args) => on_machine(&cli, false, |b| {
            let _read = read_guard(b);
            listcmd::list(b.kernel(), &b.host().run_dir(), args)
        }),
        Command::Status { ref device, json } => on_machine(&cli, false, |b| {
            let _read = read_guard(b);
            listcmd::status(b.kernel(), &b.host().run_dir(), device, json)
        }),
    }
}

/// Opens the emulated machine in `file` and runs `f` on it with its run directory
/// (`FILE.run` unless `--run-dir`); saves it afterwards, whatever `f` returns.
fn on_sim(
    file: &std::path::Path,
    run_dir: Option<&PathBuf>,
    changes: bool,
    f: impl FnOnce(&Sim, PathBuf, &daxplug_model::MachineFile) -> anyhow::Result<(String, Exit)>,
) -> anyhow::Result<(String, Exit)> {
    let (sim, store) = Sim::open(file)?;
    let mut default = file.as_os_str().to_owned();
    default.push(".run");
    let run_dir = run_dir.cloned().unwrap_or_else(|| default.into());
    let result = f(&sim, run_dir, &store);
    // The machine changed even if the command failed (a write that failed may have moved
    // the clock and let actors run): save it either way, unless this user may only read it
    // and the command only reads.
    if !store.read_only() || changes {
        sim.save(&store)?;
    }
    result
}

/// The global options that say which machine a command acts on.
struct Machine {
    root: PathBuf,
    run_dir: Option<PathBuf>,
    sim: Option<PathBuf>,
}

/// Opens the machine the command acts on and runs `f` against it: the emulated machine of
/// `--sim FILE` (saved afterwards, whatever `f` returns), or the files under the root,
/// writable only when the command `changes` the machine.
fn on_machine(
    cli: &Machine,
    changes: bool,
    f: impl FnOnce(&Backend<'_>) -> anyhow::Result<(String, Exit)>,
) -> anyhow::Result<(String, Exit)> {
    if let Some(file) = &cli.sim {
        return on_sim(
            file,
            cli.run_dir.as_ref(),
            changes,
            |sim, run_dir, store| f(&Backend::Sim(sim, run_dir, store)),
        );
    }
    if changes
        && cli.root == std::path::Path::new("/")
        && std::env::var_os("DAXPLUG_REFUSE_HOST").is_some()
        && !simrun::inside_sim_run()
    {
        return Err(exit::Usage(
            "DAXPLUG_REFUSE_HOST is set: this environment (a test run) must not change the machine's own /sys; pass --root or --sim".to_owned(),
        )
        .into());
    }
    // Only commands that change the machine open it writable; looking never writes.
    let access = if changes {
        Access::ReadWrite
    } else {
        Access::ReadOnly
    };
    let kernel = RootFs::new(&cli.root, access)?;
    let run_dir = cli.run_dir.clone().unwrap_or_else(|| cli.root.join("run"));
    f(&Backend::Root(&kernel, cli.root.clone(), run_dir))
}

/// What the command runs against.
enum Backend<'a> {
    /// Files under a root directory (the running kernel, or a copied tree), and the
    /// directory for the lock and journals.
    Root(&'a RootFs, std::path::PathBuf, std::path::PathBuf),
    /// The emulated machine, the directory for its lock and journal, and its file.
    Sim(&'a Sim, std::path::PathBuf, &'a daxplug_model::MachineFile),
}

impl Backend<'_> {
    fn kernel(&self) -> &dyn Kernel {
        match self {
            Backend::Root(k, ..) => *k,
            Backend::Sim(k, ..) => *k,
        }
    }

    fn host(&self) -> Box<dyn daxplug_engine::Host + '_> {
        match self {
            Backend::Root(fs, root, run_dir) => Box::new(host::RealHost {
                fs: (*fs).clone(),
                root: root.clone(),
                run_dir: run_dir.clone(),
            }),
            Backend::Sim(sim, run_dir, _) => Box::new(daxplug_engine::host::sim::SimHost {
                sim,
                run_dir: run_dir.clone(),
            }),
        }
    }
}

/// The read commands wait for another process's transition to end before reading (the
/// memory tiers must not be read while one runs: `ReadGuard`).
fn read_guard(b: &Backend<'_>) -> daxplug_engine::transition::ReadGuard {
    daxplug_engine::transition::read_lock_wait(b.host().as_ref(), setcmd::READ_WAIT)
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
