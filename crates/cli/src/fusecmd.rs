//! `daxplug sim mount` and `daxplug sim run`: the emulated machine as real files, for
//! programs that know nothing about daxplug.

use crate::exit::Exit;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use daxplug_fuse::Mount;
use daxplug_fuse::namespace::{Sandbox, Source, tree_providers};
use daxplug_model::{MachineFile, Sim};

use crate::exit;

/// How often a changed machine is written back to its file while served.
const SAVE_EVERY: Duration = Duration::from_millis(200);

/// The environment variable `sim run` sets for the command it runs (the machine file).
pub const SIM_RUN_ENV: &str = "DAXPLUG_SIM_RUN";

fn open(file: &Path) -> anyhow::Result<(Arc<Sim>, MachineFile)> {
    let (sim, store) = Sim::open(file)?;
    Ok((Arc::new(sim), store))
}

fn save(sim: &Sim, store: &MachineFile) -> anyhow::Result<()> {
    sim.with(|m| store.save(m))?;
    Ok(())
}

/// Writes the machine back at most every [`SAVE_EVERY`], when it changed.
struct Saver {
    last: std::time::Instant,
}

impl Saver {
    fn new() -> Self {
        Self {
            last: std::time::Instant::now(),
        }
    }

    fn tick(
        &mut self,
        mount: Option<&Mount>,
        sim: &Sim,
        store: &MachineFile,
    ) -> anyhow::Result<()> {
        if self.last.elapsed() >= SAVE_EVERY && mount.is_some_and(Mount::take_changed) {
            save(sim, store)?;
            self.last = std::time::Instant::now();
        }
        Ok(())
    }
}

fn stop_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .context("cannot install the SIGINT/SIGTERM handler")?;
    }
    Ok(flag)
}

/// Directories a mount must never cover: the host's own kernel interfaces.
fn refuse_system_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let real = std::fs::canonicalize(dir).map_err(|e| {
        exit::Usage(format!(
            "the mount point {} must be an existing directory: {e}",
            dir.display()
        ))
    })?;
    if !real.is_dir() {
        return Err(exit::Usage(format!(
            "the mount point {} is not a directory",
            dir.display()
        ))
        .into());
    }
    let system = ["/sys", "/proc", "/dev", "/run"];
    if real == Path::new("/") || system.iter().any(|s| real.starts_with(s)) {
        return Err(exit::Usage(format!(
            "refusing to mount the emulated machine on {}: it would hide the host's own files; use an empty directory such as /tmp/sim (or `daxplug sim run` for a private /sys)",
            real.display()
        ))
        .into());
    }
    Ok(real)
}

/// `sim mount FILE DIR`: serves until SIGINT, SIGTERM or `umount DIR`.
pub fn mount(file: &Path, dir: &Path) -> anyhow::Result<(String, Exit)> {
    let dir = refuse_system_dir(dir)?;
    let (sim, store) = open(file)?;
    let stop = stop_signals()?;
    let mount = Mount::new(Arc::clone(&sim), &dir)?;
    eprintln!(
        "daxplug: serving {} on {} ({0}/sys, {0}/proc); Ctrl-C or `umount {0}` stops",
        file.display(),
        dir.display()
    );
    let mut saver = Saver::new();
    while !stop.load(Ordering::Acquire) && !mount.finished() {
        std::thread::sleep(Duration::from_millis(50));
        saver.tick(Some(&mount), &sim, &store)?;
    }
    let requests = mount.requests();
    mount.unmount()?;
    save(&sim, &store)?;
    Ok((
        format!(
            "Unmounted {}: {requests} requests served, machine saved to {}.\n",
            dir.display(),
            file.display()
        ),
        Exit::Ok,
    ))
}

/// `sim run FILE -- COMMAND...`: runs COMMAND with the machine as its `/sys` and `/proc`;
/// the exit code is the command's (128 + N when killed by signal N).
pub fn run(file: &Path, command: &[String]) -> anyhow::Result<(String, Exit)> {
    let Some((program, args)) = command.split_first() else {
        return Err(exit::Usage("sim run needs a command after --".to_owned()).into());
    };
    if file.is_dir() {
        return run_tree(file, program, args);
    }
    let (sim, store) = open(file)?;
    let providers: Vec<String> =
        sim.with(|m| m.regions.iter().map(|r| r.provider.clone()).collect());
    let mut run_dir = std::path::absolute(file)
        .with_context(|| format!("cannot resolve {}", file.display()))?
        .into_os_string();
    run_dir.push(".run");
    // The namespace first, while the process has one thread.
    let sandbox = Sandbox::enter(
        Source::Model(Arc::clone(&sim)),
        Path::new(&run_dir),
        &providers,
    )?;
    let stop = stop_signals()?;
    let mut child = std::process::Command::new(program)
        .args(args)
        .env(SIM_RUN_ENV, file)
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let mut forwarded = false;
    let mut saver = Saver::new();
    let status = loop {
        if let Some(status) = child.try_wait().context("cannot wait for the command")? {
            break status;
        }
        // Ctrl-C reaches the command through the terminal; SIGTERM aimed at us is passed on.
        if stop.load(Ordering::Acquire) && !forwarded {
            forwarded = true;
            if let Some(pid) = i32::try_from(child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        saver.tick(sandbox.mount(), &sim, &store)?;
        std::thread::sleep(Duration::from_millis(10));
    };
    sandbox.leave()?;
    save(&sim, &store)?;
    let code = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(c), _) => u8::try_from(c).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(1),
        (None, None) => 1,
    };
    Ok((String::new(), Exit::Command(code)))
}

/// `sim run DIR -- COMMAND`: the same with a directory tree (DIR/sys, DIR/proc, DIR/dev)
/// as the machine, such as a captured fixture; nothing is saved, modules cannot load.
fn run_tree(dir: &Path, program: &str, args: &[String]) -> anyhow::Result<(String, Exit)> {
    if !dir.join("sys/devices/system/memory").is_dir() {
        return Err(exit::Usage(format!(
            "{} is not a machine: expected a machine file or a directory with sys/devices/system/memory",
            dir.display()
        ))
        .into());
    }
    let providers = tree_providers(dir);
    // The tree is left as it is: /run is a scratch directory for this run only.
    let run_dir = std::env::temp_dir().join(format!("daxplug-tree-run-{}", std::process::id()));
    let sandbox = Sandbox::enter(Source::Tree(dir.to_owned()), &run_dir, &providers)?;
    let status = std::process::Command::new(program)
        .args(args)
        .env(SIM_RUN_ENV, dir)
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    sandbox.leave()?;
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok((String::new(), Exit::Command(exit_code(status))))
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(c), _) => u8::try_from(c).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(1),
        (None, None) => 1,
    }
}

/// Whether this process runs under `sim run`: `/sys/devices/system/memory` is served by
/// daxplug's FUSE server in this mount namespace, so writing "the machine's own /sys"
/// writes the emulated machine.
pub fn inside_sim_run() -> bool {
    std::env::var_os(SIM_RUN_ENV).is_some()
        && std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
            daxplug_fuse::mount_table(&info).iter().any(|m| {
                m.point == "/sys/devices/system/memory" && m.fstype == daxplug_fuse::FSTYPE
            })
        })
}
