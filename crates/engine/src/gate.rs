//! The boot gate: keeps every driver of the dax bus from binding a device on its own from
//! early boot until the policy daemon has decided, so that no device memory a policy covers
//! is onlined by the kernel's auto-online, a udev rule or a modalias-loaded kmem first.
//!
//! Closing it turns the dax bus's `drivers_autoprobe` off (a device that appears stays
//! unbound; a driver that registers binds nothing) and records that in `RUN/daxplug/gate.json`
//! with what was already bound (a device bound before the gate closed was bound by the
//! initramfs or a built-in driver, which only the kernel command line can stop). While it is
//! closed the daemon binds what its rules cover, inside its own hot-add, and admits every
//! other device to the driver the kernel would have chosen (`drivers_probe`). Opening it
//! puts `drivers_autoprobe` back.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use daxplug_abi::{BusAutoprobe, DaxName};
use daxplug_kernel::{Kernel, KernelError, paths};
use serde::{Deserialize, Serialize};

/// Why the gate could not be closed, opened or a device admitted.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The kernel has no dax bus (no `CONFIG_DAX`): nothing can bind a dax device.
    #[error(
        "{} does not exist: this kernel has no dax bus, so no dax device can appear",
        paths::DAX_DRIVERS_AUTOPROBE
    )]
    NoDaxBus,
    /// A sysfs file could not be read or written.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The dax bus printed something other than 0 or 1.
    #[error("{} holds {text:?}, not 0 or 1", paths::DAX_DRIVERS_AUTOPROBE)]
    Autoprobe {
        /// What it held.
        text: String,
    },
    /// The gate's record could not be written or removed.
    #[error("the boot gate's record {} could not be written", path.display())]
    Record {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Who closed the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedBy {
    /// `daxplug gate close --boot`: the early boot unit, before udev's coldplug.
    Boot,
    /// The daemon, started with the gate open.
    Daemon,
    /// `daxplug gate close` by hand.
    Operator,
}

/// What closing the gate found and did, kept in `RUN/daxplug/gate.json` while it is closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    /// Who closed it.
    pub by: ClosedBy,
    /// Unix time it closed.
    pub closed_at: u64,
    /// Seconds since the kernel booted when it closed (`/proc/uptime`), where known.
    pub uptime: Option<f64>,
    /// The dax bus's `drivers_autoprobe` before; opening the gate puts it back.
    pub autoprobe_before: BusAutoprobe,
    /// Devices already bound when it closed, with their drivers: bound before daxplug could
    /// act (the initramfs, a built-in driver), so the gate did not protect them.
    pub bound_before: Vec<(DaxName, String)>,
    /// Every device on the bus when it closed: those were not kept unbound by the gate, so
    /// they are never admitted (an unbound one was left so on purpose).
    #[serde(default)]
    pub present: Vec<DaxName>,
    /// Devices no rule covers that the daemon let bind as the kernel would have.
    #[serde(default)]
    pub admitted: Vec<DaxName>,
}

impl GateRecord {
    /// Who closed it, when, and what was bound by then, as a phrase: `closed at boot by
    /// daxplug-gate.service, 16.2 s after the kernel started, before any dax device was bound`.
    pub fn describe(&self) -> String {
        format!(
            "closed {}{}{}",
            match self.by {
                ClosedBy::Boot => "at boot by daxplug-gate.service",
                ClosedBy::Daemon => "by the daemon",
                ClosedBy::Operator => "by daxplug gate close",
            },
            self.uptime
                .map(|u| format!(", {u:.1} s after the kernel started"))
                .unwrap_or_default(),
            if self.bound_before.is_empty() {
                ", before any dax device was bound".to_owned()
            } else {
                format!(
                    "; already bound then: {}",
                    describe_bound(&self.bound_before)
                )
            }
        )
    }
}

/// The gate as it is now.
#[derive(Debug, Clone, PartialEq)]
pub enum GateState {
    /// No record: drivers bind devices as they appear (the kernel's default).
    Open,
    /// Closed, and `drivers_autoprobe` is still off.
    Closed(GateRecord),
    /// A record says closed but `drivers_autoprobe` is on again: something else turned it
    /// on, and devices bind on their own.
    Breached(GateRecord),
}

impl GateState {
    /// The record, when the gate was closed.
    pub fn record(&self) -> Option<&GateRecord> {
        match self {
            GateState::Open => None,
            GateState::Closed(r) | GateState::Breached(r) => Some(r),
        }
    }

    /// The token used in logs and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            GateState::Open => "open",
            GateState::Closed(_) => "closed",
            GateState::Breached(_) => "breached",
        }
    }
}

fn read_autoprobe(k: &dyn Kernel) -> Result<BusAutoprobe, GateError> {
    let text = match k.read(paths::DAX_DRIVERS_AUTOPROBE) {
        Err(e) if e.is_not_found() => return Err(GateError::NoDaxBus),
        r => r?,
    };
    text.parse().map_err(|_| GateError::Autoprobe {
        text: text.trim().to_owned(),
    })
}

fn write_record(run_dir: &Path, record: &GateRecord) -> Result<(), GateError> {
    let path = crate::rundir::gate(run_dir);
    crate::rundir::holds::write_json(&path, record)
        .map_err(|source| GateError::Record { path, source })
}

fn read_record(run_dir: &Path) -> Option<GateRecord> {
    serde_json::from_str(&fs::read_to_string(crate::rundir::gate(run_dir)).ok()?).ok()
}

fn uptime(k: &dyn Kernel) -> Option<f64> {
    k.read(paths::UPTIME)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Closes the gate: `drivers_autoprobe` off, and the record written. Closing a closed gate
/// keeps its first record (the state to restore is the one from before the first close).
pub fn close(k: &dyn Kernel, run_dir: &Path, by: ClosedBy) -> Result<GateRecord, GateError> {
    if let GateState::Closed(r) = state(k, run_dir)? {
        return Ok(r);
    }
    let before = read_autoprobe(k)?;
    k.write(paths::DAX_DRIVERS_AUTOPROBE, BusAutoprobe::Off.as_str())?;
    let devices = crate::discovery::bus::devices(k)?;
    let present = devices.iter().map(|(d, _)| *d).collect();
    let bound_before = devices
        .into_iter()
        .filter_map(|(d, drv)| Some((d, drv?)))
        .collect();
    let record = GateRecord {
        by,
        closed_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        uptime: uptime(k),
        autoprobe_before: before,
        bound_before,
        present,
        admitted: Vec::new(),
    };
    if let Err(e) = write_record(run_dir, &record) {
        // Without its record nobody would know to open it again.
        let _ = k.write(paths::DAX_DRIVERS_AUTOPROBE, before.as_str());
        return Err(e);
    }
    Ok(record)
}

/// Opens the gate: `drivers_autoprobe` back as it was before, the record removed. Returns
/// the record of the gate that was closed, if any.
pub fn open(k: &dyn Kernel, run_dir: &Path) -> Result<Option<GateRecord>, GateError> {
    let Some(record) = read_record(run_dir) else {
        return Ok(None);
    };
    k.write(
        paths::DAX_DRIVERS_AUTOPROBE,
        record.autoprobe_before.as_str(),
    )?;
    let path = crate::rundir::gate(run_dir);
    match fs::remove_file(&path) {
        Ok(()) => Ok(Some(record)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Some(record)),
        Err(source) => Err(GateError::Record { path, source }),
    }
}

/// The gate as it is: the record, checked against `drivers_autoprobe`.
pub fn state(k: &dyn Kernel, run_dir: &Path) -> Result<GateState, GateError> {
    let Some(record) = read_record(run_dir) else {
        return Ok(GateState::Open);
    };
    Ok(match read_autoprobe(k)? {
        BusAutoprobe::Off => GateState::Closed(record),
        BusAutoprobe::On => GateState::Breached(record),
    })
}

/// `dax0.0 (kmem), dax1.0 (device_dax)`.
pub fn describe_bound(bound: &[(DaxName, String)]) -> String {
    bound
        .iter()
        .map(|(d, drv)| format!("{d} ({drv})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Lets `device` bind as the kernel would have without the gate (`drivers_probe`: the first
/// loaded driver that matches it), and records it as admitted.
pub fn admit(k: &dyn Kernel, run_dir: &Path, device: DaxName) -> Result<(), GateError> {
    k.write(paths::DAX_DRIVERS_PROBE, &device.to_string())?;
    if let Some(mut record) = read_record(run_dir)
        && !record.admitted.contains(&device)
    {
        record.admitted.push(device);
        write_record(run_dir, &record)?;
    }
    Ok(())
}

/// Takes the devices gone from the bus out of the record, so that a device that appears
/// again under the same name is a new device (a no-op when none is gone).
pub fn forget_gone(
    run_dir: &Path,
    record: &GateRecord,
    present: &[DaxName],
) -> Result<(), GateError> {
    let mut kept = record.clone();
    kept.present.retain(|d| present.contains(d));
    kept.admitted.retain(|d| present.contains(d));
    if kept == *record {
        return Ok(());
    }
    write_record(run_dir, &kept)
}

#[cfg(all(test, feature = "model"))]
mod tests {
    use super::*;
    use daxplug_model::{Flavour, Sim, build_preset};

    fn sim() -> Sim {
        Sim::new(build_preset("hmem", Flavour::Legacy, 1).expect("preset"))
    }

    #[test]
    fn close_open_round_trip() {
        let k = sim();
        let run = tempfile::tempdir().expect("tempdir");
        assert_eq!(state(&k, run.path()).expect("state"), GateState::Open);
        let r = close(&k, run.path(), ClosedBy::Boot).expect("close");
        assert_eq!(r.autoprobe_before, BusAutoprobe::On);
        assert_eq!(k.read(paths::DAX_DRIVERS_AUTOPROBE).expect("read"), "0\n");
        // A second close keeps the first record: opening restores what was there before.
        let again = close(&k, run.path(), ClosedBy::Boot).expect("close again");
        assert_eq!(again, r);
        assert!(matches!(
            state(&k, run.path()).expect("state"),
            GateState::Closed(_)
        ));
        k.write(paths::DAX_DRIVERS_AUTOPROBE, "1").expect("write");
        assert!(matches!(
            state(&k, run.path()).expect("state"),
            GateState::Breached(_)
        ));
        k.write(paths::DAX_DRIVERS_AUTOPROBE, "0").expect("write");
        assert_eq!(open(&k, run.path()).expect("open"), Some(r));
        assert_eq!(k.read(paths::DAX_DRIVERS_AUTOPROBE).expect("read"), "1\n");
        assert_eq!(state(&k, run.path()).expect("state"), GateState::Open);
        assert_eq!(open(&k, run.path()).expect("open again"), None);
    }

    #[test]
    fn devices_gone_from_the_bus_leave_the_record() {
        let k = sim();
        let run = tempfile::tempdir().expect("tempdir");
        let r = close(&k, run.path(), ClosedBy::Daemon).expect("close");
        let dev: DaxName = "dax0.0".parse().expect("name");
        assert_eq!(r.present, vec![dev]);
        forget_gone(run.path(), &r, &[dev]).expect("nothing gone");
        assert_eq!(state(&k, run.path()).expect("state").record(), Some(&r));
        forget_gone(run.path(), &r, &[]).expect("forget");
        let after = state(&k, run.path()).expect("state");
        assert!(
            after.record().is_some_and(|r| r.present.is_empty()),
            "{after:?}"
        );
    }

    #[test]
    fn kmem_loaded_behind_the_gate_binds_nothing_until_admitted() {
        let k = sim();
        let run = tempfile::tempdir().expect("tempdir");
        let dev: DaxName = "dax0.0".parse().expect("name");
        let driver = |k: &Sim| k.read_link(&paths::dax_attr("dax0.0", "driver")).ok();
        k.write(
            &paths::dax_driver_file(daxplug_abi::DaxDriver::DeviceDax.as_str(), "unbind"),
            "dax0.0",
        )
        .ok();
        let r = close(&k, run.path(), ClosedBy::Boot).expect("close");
        assert!(r.bound_before.is_empty(), "{r:?}");
        k.with(|m| m.load_kmem());
        assert_eq!(driver(&k), None, "kmem bound a device behind a closed gate");
        admit(&k, run.path(), dev).expect("admit");
        assert!(driver(&k).is_some(), "drivers_probe bound nothing");
        assert_eq!(
            state(&k, run.path())
                .expect("state")
                .record()
                .map(|r| r.admitted.clone()),
            Some(vec![dev])
        );
    }
}
