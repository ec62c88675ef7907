//! `daxplug sim run`: runs a command in a private mount namespace whose `/sys`, `/proc` and
//! `/dev` are the emulated machine (or a captured tree).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use daxplug_fuse::namespace::{Sandbox, Source, tree_providers};

use super::served::{Saver, open, save, stop_signals};
use crate::exit::{self, Exit};

/// The environment variable `sim run` sets for the command it runs (the machine file).
pub const SIM_RUN_ENV: &str = "DAXPLUG_SIM_RUN";

/// The environment variable `sim run` sets to the file that loads a module into the served
/// model: daxplug loads kmem through it when the sandbox has no `modprobe` program.
pub const SIM_MODPROBE_ENV: &str = "DAXPLUG_SIM_MODPROBE";

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
    let mut command = std::process::Command::new(program);
    if let Some(control) = sandbox.modprobe_control() {
        command.env(SIM_MODPROBE_ENV, control);
    }
    let mut child = command
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
    Ok((String::new(), Exit::Command(exit_code(status))))
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

/// The code a shell would report for the command: its own, or 128 + N when killed by
/// signal N.
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
