//! The run directory, `RUN/daxplug/`: what lasts between daxplug runs and is shared by every
//! daxplug on the machine. Its layout is spelled here once; [`journal`] and [`holds`] own the
//! records in it.
//!
//! ```text
//! RUN/daxplug/daxplug.lock      the transition lock
//! RUN/daxplug/journal-daxX.Y.json  a transition in progress
//! RUN/daxplug/holds/DEV@HOLDER.json
//! RUN/daxplug/daemon.json       the running daemon's registration
//! RUN/daxplug/gate.json         the boot gate's record
//! ```

pub mod holds;
pub mod journal;

use std::path::{Path, PathBuf};

use daxplug_abi::DaxName;

/// `RUN/daxplug`, where every record below lives.
pub fn dir(run_dir: &Path) -> PathBuf {
    run_dir.join("daxplug")
}

/// The transition lock's file.
pub fn lock(run_dir: &Path) -> PathBuf {
    dir(run_dir).join("daxplug.lock")
}

/// The journal of a transition of `device`.
pub fn journal(run_dir: &Path, device: DaxName) -> PathBuf {
    dir(run_dir).join(format!("journal-{device}.json"))
}

/// The directory of maintenance holds.
pub fn holds(run_dir: &Path) -> PathBuf {
    dir(run_dir).join("holds")
}

/// The hold of `device` by `holder` (a name already made safe for a file name).
pub fn hold(run_dir: &Path, device: DaxName, holder: &str) -> PathBuf {
    holds(run_dir).join(format!("{device}@{holder}.json"))
}

/// The running daemon's registration.
pub fn daemon(run_dir: &Path) -> PathBuf {
    dir(run_dir).join("daemon.json")
}

/// The boot gate's record.
pub fn gate(run_dir: &Path) -> PathBuf {
    dir(run_dir).join("gate.json")
}
