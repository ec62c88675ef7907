//! A machine file while it is served as real files (`sim mount`, `sim run`): opening it,
//! writing it back as it changes, and the signals that stop serving.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use daxplug_fuse::Mount;
use daxplug_model::{MachineFile, Sim};

/// How often a changed machine is written back to its file while served.
const SAVE_EVERY: Duration = Duration::from_millis(200);

pub(crate) fn open(file: &Path) -> anyhow::Result<(Arc<Sim>, MachineFile)> {
    let (sim, store) = Sim::open(file)?;
    Ok((Arc::new(sim), store))
}

pub(crate) fn save(sim: &Sim, store: &MachineFile) -> anyhow::Result<()> {
    sim.with(|m| store.save(m))?;
    Ok(())
}

/// Writes the machine back at most every [`SAVE_EVERY`], when it changed.
pub(crate) struct Saver {
    last: std::time::Instant,
}

impl Saver {
    pub(crate) fn new() -> Self {
        Self {
            last: std::time::Instant::now(),
        }
    }

    pub(crate) fn tick(
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

pub(crate) fn stop_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .context("cannot install the SIGINT/SIGTERM handler")?;
    }
    Ok(flag)
}
