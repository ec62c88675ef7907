//! `daxplug sim mount`: the emulated machine as real files under a directory, for programs
//! that know nothing about daxplug.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use daxplug_fuse::Mount;

use super::served::{Saver, open, save, stop_signals};
use crate::exit::{self, Exit};

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
        "daxplug: serving {} on {1} ({1}/sys, {1}/proc); Ctrl-C or `umount {1}` stops",
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
