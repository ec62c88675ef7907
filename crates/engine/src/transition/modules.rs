//! Loading a dax driver's module so that the load itself binds nothing: the driver (kmem,
//! fsdev_dax) registers with the dax bus's `drivers_autoprobe` off, and the plan's own bind
//! comes after.

use daxplug_abi::{BusAutoprobe, DaxDriver};
use daxplug_kernel::paths;

use crate::plan::write::Write;

use super::{Fail, Run};

impl Run<'_> {
    /// `modprobe DRIVER` with autoprobe off for the duration (journaled), then restored.
    pub(super) fn load_driver(&mut self, driver: DaxDriver) -> Result<(), Fail> {
        let path = paths::DAX_DRIVERS_AUTOPROBE;
        let current: BusAutoprobe = self
            .k
            .read(path)
            .map_err(Fail::Kernel)?
            .parse()
            .map_err(|e: daxplug_abi::ParseError| Fail::Verify(format!("{path}: {e}")))?;
        if current == BusAutoprobe::On {
            self.journal.saved_autoprobe = Some(current);
            self.record("turning the dax bus's autoprobe off to load a driver");
            self.apply(&Write::drivers_autoprobe(BusAutoprobe::Off))?;
        }
        self.record("loading a driver");
        self.save()?;
        let loaded = self.host.load_module(driver);
        self.actions.push(match &loaded {
            Ok(()) => format!("modprobe {driver}"),
            Err(e) => format!("modprobe {driver}: {}", e.sentence()),
        });
        // Restored whatever the load did: other devices bind as they appear again.
        let restored = self.restore_autoprobe();
        loaded.map_err(|e| {
            Fail::Verify(format!("cannot load the {driver} driver: {}", e.sentence()))
        })?;
        restored?;
        if !crate::discovery::driver_loaded(self.k, driver) {
            return Err(Fail::Verify(format!(
                "modprobe {driver} succeeded but {}/{driver} did not appear",
                paths::DAX_DRIVERS
            )));
        }
        Ok(())
    }

    /// Puts back the `drivers_autoprobe` that `load_driver` saved in the journal.
    pub(super) fn restore_autoprobe(&mut self) -> Result<(), Fail> {
        let Some(saved) = self.journal.saved_autoprobe else {
            return Ok(());
        };
        self.apply_uncancellable(&Write::drivers_autoprobe(saved))?;
        self.journal.saved_autoprobe = None;
        self.record("drivers_autoprobe restored");
        Ok(())
    }
}
