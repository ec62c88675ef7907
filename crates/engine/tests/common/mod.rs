//! A Host on the model for the engine's tests.

#![allow(dead_code)]

pub mod harness;

use std::path::PathBuf;

use daxplug_engine::Host;
use daxplug_kernel::Kernel;
use daxplug_model::Sim;

/// Options without the settle wait (no controller in the model polls for offline blocks
/// unless a test adds one).
pub fn quick() -> daxplug_engine::Options {
    daxplug_engine::Options {
        settle: std::time::Duration::ZERO,
        ..daxplug_engine::Options::default()
    }
}

#[derive(Debug)]
pub struct TestHost {
    pub sim: Sim,
    pub run: tempfile::TempDir,
}

impl TestHost {
    pub fn new(sim: Sim) -> Self {
        Self {
            sim,
            run: tempfile::tempdir().expect("tempdir"),
        }
    }
}

impl Host for TestHost {
    fn kernel(&self) -> &dyn Kernel {
        &self.sim
    }
    fn run_dir(&self) -> PathBuf {
        self.run.path().to_path_buf()
    }
    fn udev_running(&self) -> bool {
        self.sim.with(|m| m.udev.running)
    }
    fn set_udev_queue(&self, running: bool) -> Result<(), daxplug_engine::host::UdevError> {
        self.sim.with(|m| m.udev.running = running);
        Ok(())
    }
    fn load_module(
        &self,
        module: daxplug_abi::DaxDriver,
    ) -> Result<(), daxplug_engine::host::ModuleError> {
        self.sim
            .with(|m| m.load_module(module.as_str()))
            .map_err(|e| daxplug_engine::host::ModuleError::Failed {
                module,
                stderr: e.to_string(),
            })
    }
    fn dax_users(&self, device: daxplug_abi::DaxName) -> Vec<u32> {
        self.sim.with(|m| {
            m.dax_open
                .get(&device.to_string())
                .cloned()
                .unwrap_or_default()
        })
    }
}
