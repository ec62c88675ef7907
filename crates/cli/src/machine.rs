//! Which machine a command acts on: the emulated machine of `--sim FILE`, or the files
//! under `--root` (the running kernel, or a copied tree), with the run directory for the
//! lock, journals and holds. Opening it, and saving the emulated one afterwards, is done
//! here once for every command.

use std::path::{Path, PathBuf};

use daxplug_kernel::{Access, Kernel, RootFs};
use daxplug_model::Sim;

use crate::exit::{self, Exit};
use crate::host;

/// Opens the emulated machine in `file` and runs `f` on it with its run directory
/// (`FILE.run` unless `--run-dir`); saves it afterwards, whatever `f` returns.
pub fn on_sim(
    file: &Path,
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
#[derive(Debug, Clone)]
pub struct Machine {
    /// `--root`: where /sys and /proc are read.
    pub root: PathBuf,
    /// `--run-dir`: where the lock, journals and holds live.
    pub run_dir: Option<PathBuf>,
    /// `--sim FILE`: the emulated machine instead of the root.
    pub sim: Option<PathBuf>,
}

/// Opens the machine the command acts on and runs `f` against it: the emulated machine of
/// `--sim FILE` (saved afterwards, whatever `f` returns), or the files under the root,
/// writable only when the command `changes` the machine.
pub fn on_machine(
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
        && cli.root == Path::new("/")
        && std::env::var_os("DAXPLUG_REFUSE_HOST").is_some()
        && !crate::cmd::sim::run::inside_sim_run()
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
pub enum Backend<'a> {
    /// Files under a root directory (the running kernel, or a copied tree), and the
    /// directory for the lock and journals.
    Root(&'a RootFs, PathBuf, PathBuf),
    /// The emulated machine, the directory for its lock and journal, and its file.
    Sim(&'a Sim, PathBuf, &'a daxplug_model::MachineFile),
}

impl Backend<'_> {
    pub fn kernel(&self) -> &dyn Kernel {
        match self {
            Backend::Root(k, ..) => *k,
            Backend::Sim(k, ..) => *k,
        }
    }

    pub fn host(&self) -> Box<dyn daxplug_engine::Host + '_> {
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
pub fn read_guard(b: &Backend<'_>) -> daxplug_engine::transition::ReadGuard {
    daxplug_engine::transition::read_lock_wait(
        b.host().as_ref(),
        daxplug_engine::transition::READ_WAIT,
    )
}
