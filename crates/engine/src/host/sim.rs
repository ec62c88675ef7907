//! The emulated machine as a [`Host`]: udev's queue and open devices come from the model,
//! the lock and journal live in a directory of the caller's choosing.

use daxplug_abi::{DaxDriver, DaxName};
use std::path::PathBuf;

use daxplug_kernel::Kernel;
use daxplug_model::Sim;

use crate::host::Host;

/// A [`Host`] backed by the model.
#[derive(Debug)]
pub struct SimHost<'a> {
    pub sim: &'a Sim,
    /// Where the lock and the journal live.
    pub run_dir: PathBuf,
}

impl Host for SimHost<'_> {
    fn kernel(&self) -> &dyn Kernel {
        self.sim
    }

    fn run_dir(&self) -> PathBuf {
        self.run_dir.clone()
    }

    fn udev_running(&self) -> bool {
        self.sim.with(|m| m.udev.running)
    }

    fn set_udev_queue(&self, running: bool) -> Result<(), crate::host::UdevError> {
        self.sim.with(|m| m.udev.running = running);
        Ok(())
    }

    fn load_module(&self, module: DaxDriver) -> Result<(), crate::host::ModuleError> {
        self.sim
            .with(|m| m.load_module(module.as_str()))
            .map_err(|e| crate::host::ModuleError::Failed {
                module,
                stderr: format!("the emulated machine has no such module ({e})"),
            })
    }

    fn dax_users(&self, device: DaxName) -> Vec<u32> {
        self.sim.with(|m| {
            m.dax_open
                .get(&device.to_string())
                .cloned()
                .unwrap_or_default()
        })
    }
}
