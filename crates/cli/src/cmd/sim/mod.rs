//! `daxplug sim ...`: create emulated machines and act on them as an admin would on a real
//! one: raw reads and writes, competing controllers, faults, udev, the event log.

pub mod mount;
pub mod run;
mod served;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::exit::Exit;
use clap::{Subcommand, ValueEnum};
use daxplug_abi::OnlineType;
use daxplug_kernel::{Errno, Kernel};
use daxplug_model::{Actor, Flavour, Machine, PRESETS, Sim, build_preset, rhel_rule};

/// Kernel flavour on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KernelArg {
    /// Released kernels: per-block control only; unbinding kmem with a block online leaks.
    Legacy,
    /// With the atomic whole-device series: daxX.Y/state.
    Atomic,
}

impl From<KernelArg> for Flavour {
    fn from(k: KernelArg) -> Self {
        match k {
            KernelArg::Legacy => Flavour::Legacy,
            KernelArg::Atomic => Flavour::Atomic,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Create an emulated machine in FILE from a preset.
    Init {
        /// The machine file to create.
        file: PathBuf,
        /// Which machine (see `daxplug sim presets`).
        #[arg(long, default_value = "hmem")]
        preset: String,
        /// Which kernel it runs.
        #[arg(long, value_enum, default_value = "legacy")]
        kernel: KernelArg,
        /// Seed of every interleaving and fault.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Chance per scheduler step, in per mille, that the kernel pins a page in a
        /// kernel-zone block of device memory (which then will not offline). Default: the
        /// preset's; 0 makes every offline of an idle machine succeed, as on a quiet guest.
        #[arg(long, value_name = "PER_MILLE")]
        kernel_allocs: Option<u32>,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// List the presets.
    Presets,
    /// Serve the machine in FILE as real files under DIR (DIR/sys, DIR/proc) through FUSE,
    /// with the model's semantics on every read and write; changes are saved to FILE.
    /// Runs until Ctrl-C, SIGTERM or `umount DIR`. Needs root and /dev/fuse.
    Mount {
        /// The machine file.
        file: PathBuf,
        /// An empty directory to mount on.
        dir: PathBuf,
    },
    /// Run COMMAND in a private mount namespace where /sys/bus/dax, /sys/devices/system/
    /// memory and node, /sys/module, the region devices, /proc/iomem and /proc/meminfo are
    /// the machine in FILE, the rest of /sys is the host's read-only, /run is FILE.run and
    /// modprobe loads modules into the model. Unmodified programs (daxctl, shell scripts)
    /// act on the emulated machine; the host is untouched. Exits with COMMAND's status.
    /// FILE may also be a directory tree (DIR/sys, DIR/proc, DIR/dev), such as a captured
    /// fixture: then nothing is saved and modules cannot load.
    Run {
        /// The machine file, or a directory tree.
        file: PathBuf,
        /// The command and its arguments (after `--`).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            required = true,
            value_name = "COMMAND"
        )]
        command: Vec<String>,
    },
    /// A command on the machine of --sim FILE.
    #[command(flatten)]
    On(MachineCommand),
}

/// The sim commands that act on the machine of `--sim FILE`.
#[derive(Debug, Subcommand)]
pub enum MachineCommand {
    /// Summarize the machine: kernel, clock, udev, actors, faults.
    Show,
    /// Print a file, as `cat` would.
    Read {
        /// Kernel path, such as /sys/devices/system/memory/memory40/state.
        path: String,
    },
    /// Write a value to a file, as `echo VALUE > PATH` would.
    Write {
        /// Kernel path.
        path: String,
        /// The value (a newline is not needed).
        value: String,
    },
    /// List a directory.
    Ls {
        /// Kernel path.
        path: String,
    },
    /// Print a link's target.
    Readlink {
        /// Kernel path.
        path: String,
    },
    /// Load the kmem module (its driver appears and binds the devices it matches).
    Modprobe {
        /// `kmem` or `fsdev_dax`.
        module: String,
    },
    /// Add, list or remove competing controllers.
    #[command(subcommand)]
    Actor(ActorCommand),
    /// Arm a fault for future operations.
    #[command(subcommand)]
    Fault(FaultCommand),
    /// Stop or start udev's exec queue, or show it.
    Udev {
        /// `stop`, `start` or `status`.
        #[arg(value_parser = ["stop", "start", "status"])]
        action: String,
    },
    /// Let the actors run for N scheduler steps.
    Step {
        /// Number of steps.
        #[arg(default_value_t = 1)]
        steps: u64,
    },
    /// Show the event log: uevents, what actors did, and the kernel log.
    Events {
        /// Only the last N entries of each log.
        #[arg(long, default_value_t = 30)]
        last: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum ActorCommand {
    /// Add a competing controller.
    Add {
        #[command(subcommand)]
        actor: ActorKind,
    },
    /// List the actors and udev rules.
    List,
    /// Remove actor number N (as listed).
    Remove {
        /// Index from `sim actor list`.
        index: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum ActorKind {
    /// RHEL's udev rule: online every added block (online_movable, or online with --vm).
    RhelRule {
        /// The virtual-machine variant (plain `online`).
        #[arg(long)]
        vm: bool,
    },
    /// A udev rule that puts a block back online whenever it goes offline
    /// (`SUBSYSTEM=="memory", ACTION=="offline", ATTR{state}=="offline", ATTR{state}="online"`).
    KeepOnlineRule {
        /// The value written.
        #[arg(long, default_value = "online")]
        value: String,
    },
    /// kata-agent: `echo 1 > memoryN/online` on every block add, from netlink.
    KataAgent,
    /// A daxctl-like per-block pass over one device.
    DaxctlLike {
        device: String,
        /// What to write to each block: online_movable, online or offline.
        target: String,
    },
    /// An admin toggling single blocks.
    Admin {
        /// Chance per step, in per mille.
        #[arg(long, default_value_t = 100)]
        per_mille: u32,
    },
    /// A tiering daemon keeping pages busy on a node.
    Tiering {
        node: u32,
        /// Migration passes added per step.
        #[arg(long, default_value_t = 2)]
        passes: u32,
    },
    /// A loop onlining every offline block of a device.
    Reonliner {
        device: String,
        /// The value written to state.
        #[arg(long, default_value = "online_movable")]
        value: String,
    },
    /// udev at boot loading kmem for a dax device's modalias (autoprobing as the bus
    /// says), racing whatever loads it first.
    ModaliasLoad {
        /// Scheduler steps until the load.
        #[arg(long, default_value_t = 0)]
        delay: u32,
    },
    /// A storm of memory uevents (`udevadm trigger` in a loop): `change` events for
    /// random blocks.
    UeventStorm {
        /// Events per scheduler step.
        #[arg(long, default_value_t = 20)]
        per_step: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// Pin an unmovable page in block N: its offline fails with EBUSY.
    BusyBlock {
        /// Block number (memoryN).
        block: u64,
    },
    /// Every offline needs this many more migration passes.
    SlowOffline {
        /// Extra passes.
        passes: u32,
    },
    /// Deliver a signal (EINTR) to the client N steps into its next long operation.
    SignalAtStep {
        /// Steps from now.
        steps: u64,
    },
    /// The next COUNT memory adds fail with ENOMEM.
    EnomemOnAdd {
        /// How many.
        #[arg(default_value_t = 1)]
        count: u32,
    },
    /// Remove a device from the bus N steps into the client's next long operation.
    RemoveDevice {
        device: String,
        /// Steps from now (0: at once).
        #[arg(long, default_value_t = 0)]
        at_step: u64,
    },
    /// Make every offline take this long in real time per migration pass (microseconds).
    StepDelay {
        /// Microseconds per pass.
        micros: u64,
    },
    /// Disarm every fault.
    Clear,
}

/// `sim init`.
fn init(
    file: &Path,
    preset: &str,
    kernel: KernelArg,
    seed: u64,
    kernel_allocs: Option<u32>,
    force: bool,
) -> anyhow::Result<String> {
    let mut m = build_preset(preset, kernel.into(), seed)?;
    if let Some(p) = kernel_allocs {
        if p > 1000 {
            return Err(crate::exit::Usage(format!(
                "--kernel-allocs {p} is not a chance: expected 0 to 1000 (per mille)"
            ))
            .into());
        }
        m.kernel_alloc_per_mille = p;
    }
    daxplug_model::MachineFile::create(file, &m, force)?;
    Ok(format!(
        "Created {}: preset {preset}, {} kernel, seed {seed}.\nTry: daxplug --sim {} list\n",
        file.display(),
        m.flavour.as_str(),
        file.display()
    ))
}

/// `sim presets`.
fn presets() -> String {
    let mut out = String::new();
    for p in PRESETS {
        let _ = writeln!(out, "{:<6} {}", p.name, p.about);
    }
    out
}

fn errno_line(e: Errno) -> String {
    e.name().map_or_else(|| e.to_string(), str::to_owned)
}

impl SimCommand {
    /// `daxplug sim ...`: `init`, `presets`, `mount` and `run` take their machine file as
    /// an argument; the others act on the machine of `--sim FILE`.
    pub fn run(self, m: &crate::machine::Machine) -> anyhow::Result<(String, Exit)> {
        match self {
            SimCommand::Init {
                file,
                preset,
                kernel,
                seed,
                kernel_allocs,
                force,
            } => init(&file, &preset, kernel, seed, kernel_allocs, force).map(|t| (t, Exit::Ok)),
            SimCommand::Presets => Ok((presets(), Exit::Ok)),
            SimCommand::Mount { file, dir } => mount::mount(&file, &dir),
            SimCommand::Run { file, command } => run::run(&file, &command),
            SimCommand::On(cmd) => match &m.sim {
                Some(file) => {
                    crate::machine::on_sim(file, m.run_dir.as_ref(), true, |sim, _, _| {
                        on(sim, cmd).map(|t| (t, Exit::Ok))
                    })
                }
                None => Err(crate::exit::Usage(
                    "this sim command acts on an emulated machine: pass --sim FILE".to_owned(),
                )
                .into()),
            },
        }
    }
}

/// Runs a sim command on the machine.
fn on(sim: &Sim, cmd: MachineCommand) -> anyhow::Result<String> {
    match cmd {
        MachineCommand::Show => Ok(sim.with(|m| show(m))),
        MachineCommand::Read { path } => sim
            .read(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {path}: {}", errno_line(e.errno))),
        MachineCommand::Write { path, value } => sim
            .write(&path, &value)
            .map(|()| String::new())
            .map_err(|e| {
                anyhow::anyhow!(
                    "write error: {} (writing {value:?} to {path})",
                    errno_line(e.errno)
                )
            }),
        MachineCommand::Ls { path } => {
            let mut names = sim
                .list_dir(&path)
                .map_err(|e| anyhow::anyhow!("cannot list {path}: {}", errno_line(e.errno)))?;
            names.sort();
            Ok(names.into_iter().map(|n| n + "\n").collect())
        }
        MachineCommand::Readlink { path } => sim
            .read_link(&path)
            .map(|t| t + "\n")
            .map_err(|e| anyhow::anyhow!("cannot read the link {path}: {}", errno_line(e.errno))),
        MachineCommand::Modprobe { module } => {
            use daxplug_abi::DaxDriver;
            if !matches!(
                module.parse::<DaxDriver>(),
                Ok(DaxDriver::Kmem | DaxDriver::FsdevDax)
            ) {
                bail!(
                    "only the kmem and fsdev_dax modules can be loaded in the emulated machine, not {module:?}"
                );
            }
            sim.with(|m| m.load_module(&module))
                .map_err(|e| anyhow::anyhow!("{module} could not be loaded: {e}"))?;
            Ok(String::new())
        }
        MachineCommand::Actor(a) => sim.with(|m| actor(m, a)),
        MachineCommand::Fault(f) => sim.with(|m| fault(m, f)),
        MachineCommand::Udev { action } => Ok(sim.with(|m| {
            match action.as_str() {
                "stop" => m.udev.running = false,
                "start" => m.udev.running = true,
                _ => {}
            }
            format!(
                "udev exec queue {}; {} events queued, {} handled\n",
                if m.udev.running { "running" } else { "stopped" },
                m.udev.queue.len(),
                m.udev.handled
            )
        })),
        MachineCommand::Step { steps } => Ok(sim.with(|m| {
            for _ in 0..steps {
                m.step();
            }
            format!("clock {}\n", m.clock)
        })),
        MachineCommand::Events { last } => Ok(sim.with(|m| events(m, last))),
    }
}

fn show(m: &Machine) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "preset {}, {} kernel, seed {}, clock {}",
        m.preset,
        m.flavour.as_str(),
        m.seed,
        m.clock
    );
    let _ = writeln!(
        out,
        "kmem {}; udev exec queue {} ({} queued); up to {} actor steps between system calls",
        if m.kmem_loaded {
            "loaded"
        } else {
            "not loaded"
        },
        if m.udev.running { "running" } else { "stopped" },
        m.udev.queue.len(),
        m.max_interleave
    );
    out.push_str(&actor_list(m));
    let f = &m.faults;
    let mut faults = Vec::new();
    let pinned: Vec<String> = m
        .blocks
        .iter()
        .filter(|(_, b)| b.unmovable)
        .map(|(id, _)| format!("memory{id}"))
        .collect();
    if !pinned.is_empty() {
        faults.push(format!("unmovable pages in {}", pinned.join(", ")));
    }
    if f.slow_offline_passes > 0 {
        faults.push(format!(
            "offline takes {} more passes",
            f.slow_offline_passes
        ));
    }
    if !f.signal_at_steps.is_empty() {
        faults.push(format!(
            "signal at client steps {:?} (now {})",
            f.signal_at_steps, m.client_steps
        ));
    }
    if f.add_enomem > 0 {
        faults.push(format!("next {} adds fail with ENOMEM", f.add_enomem));
    }
    if let Some((d, at)) = &f.remove_device_at {
        faults.push(format!("{d} removed at client step {at}"));
    }
    if m.step_delay_us > 0 {
        faults.push(format!("{} µs per migration pass", m.step_delay_us));
    }
    let _ = writeln!(
        out,
        "faults: {}",
        if faults.is_empty() {
            "none".to_owned()
        } else {
            faults.join("; ")
        }
    );
    out
}

fn actor_list(m: &Machine) -> String {
    let mut out = String::new();
    if m.actors.is_empty() && m.udev.rules.is_empty() {
        out.push_str("actors: none\n");
    }
    for (i, a) in m.actors.iter().enumerate() {
        let _ = writeln!(out, "actor {i}: {}", a.describe());
    }
    for r in &m.udev.rules {
        let _ = writeln!(
            out,
            "udev rule {}: on {} {}, write {} to {}",
            r.name,
            r.subsystem.as_str(),
            r.action,
            r.value,
            r.attr
        );
    }
    out
}

fn actor(m: &mut Machine, cmd: ActorCommand) -> anyhow::Result<String> {
    match cmd {
        ActorCommand::List => Ok(actor_list(m)),
        ActorCommand::Remove { index } => {
            if index >= m.actors.len() {
                bail!(
                    "there is no actor {index}: {} actors (see `sim actor list`)",
                    m.actors.len()
                );
            }
            m.actors.remove(index);
            Ok(actor_list(m))
        }
        ActorCommand::Add { actor } => {
            let device = |name: &str| -> anyhow::Result<String> {
                m.device(name)
                    .map(|d| d.name.clone())
                    .with_context(|| format!("there is no dax device named {name}"))
            };
            match actor {
                ActorKind::RhelRule { vm } => m.udev.rules.push(rhel_rule(vm)),
                ActorKind::KeepOnlineRule { value } => {
                    value.parse::<OnlineType>().map_err(|_| {
                        crate::exit::Usage(format!(
                            "{value:?} is not an online type: expected online, online_movable or online_kernel"
                        ))
                    })?;
                    m.udev.rules.push(daxplug_model::Rule {
                        name: "keep-memory-online".into(),
                        subsystem: daxplug_model::Subsystem::Memory,
                        action: "offline".into(),
                        if_offline: true,
                        attr: "state".into(),
                        value,
                    });
                }
                ActorKind::KataAgent => {
                    let cursor = m.uevents.last().map_or(1, |e| e.seq + 1);
                    m.actors.push(Actor::KataAgent { cursor });
                }
                ActorKind::DaxctlLike { device: d, target } => {
                    let target: OnlineType = target
                        .parse()
                        .with_context(|| "the daxctl-like target must be online_movable, online, online_kernel or offline")?;
                    m.actors.push(Actor::DaxctlLike {
                        device: device(&d)?,
                        target,
                        cursor: 0,
                        done: false,
                    });
                }
                ActorKind::Admin { per_mille } => m.actors.push(Actor::Admin { per_mille }),
                ActorKind::ModaliasLoad { delay } => m.actors.push(Actor::ModaliasLoad { delay }),
                ActorKind::UeventStorm { per_step } => {
                    m.actors.push(Actor::UeventStorm { per_step })
                }
                ActorKind::Tiering { node, passes } => {
                    m.actors.push(Actor::Tiering { node, passes })
                }
                ActorKind::Reonliner { device: d, value } => {
                    value.parse::<OnlineType>().with_context(
                        || "the re-onliner writes online, online_movable or online_kernel",
                    )?;
                    m.actors.push(Actor::Reonliner {
                        device: device(&d)?,
                        value,
                    });
                }
            }
            Ok(actor_list(m))
        }
    }
}

fn fault(m: &mut Machine, cmd: FaultCommand) -> anyhow::Result<String> {
    match cmd {
        FaultCommand::BusyBlock { block } => {
            let b = m
                .blocks
                .get_mut(&block)
                .with_context(|| format!("memory{block} does not exist"))?;
            b.unmovable = true;
        }
        FaultCommand::SlowOffline { passes } => m.faults.slow_offline_passes = passes,
        FaultCommand::SignalAtStep { steps } => {
            let at = m.client_steps + steps.max(1);
            m.faults.signal_at_steps.insert(at);
        }
        FaultCommand::EnomemOnAdd { count } => m.faults.add_enomem = count,
        FaultCommand::RemoveDevice { device, at_step } => {
            if m.device(&device).is_none() {
                bail!("there is no dax device named {device}");
            }
            if at_step == 0 {
                m.remove_device(&device);
            } else {
                m.faults.remove_device_at = Some((device, m.client_steps + at_step));
            }
        }
        FaultCommand::StepDelay { micros } => m.step_delay_us = micros,
        FaultCommand::Clear => {
            m.faults = daxplug_model::Faults::default();
            m.step_delay_us = 0;
            for b in m.blocks.values_mut().filter(|b| b.owner.is_some()) {
                b.unmovable = false;
            }
        }
    }
    Ok(show(m))
}

fn events(m: &Machine, last: usize) -> String {
    let tail = |n: usize| n.saturating_sub(last);
    let mut out = String::from("uevents:\n");
    for e in &m.uevents[tail(m.uevents.len())..] {
        let vars: String = e.vars.iter().map(|(k, v)| format!(" {k}={v}")).collect();
        let _ = writeln!(
            out,
            "  {:>5} clock {:>5}  {:<8} {}{vars}",
            e.seq, e.clock, e.action, e.devpath
        );
    }
    out.push_str("actors:\n");
    for l in &m.actor_log[tail(m.actor_log.len())..] {
        let _ = writeln!(out, "  {l}");
    }
    out.push_str("kernel log:\n");
    for l in &m.dmesg[tail(m.dmesg.len())..] {
        let _ = writeln!(out, "  {l}");
    }
    out
}
