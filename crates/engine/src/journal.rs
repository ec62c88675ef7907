//! The transition journal: every step is recorded before it is taken, so that a crashed
//! transition can be finished or rolled back by the next daxplug run.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use daxplug_abi::{BoolParam, BusAutoprobe, DaxName, OnlinePolicy, OnlineType, Zone};
use serde::{Deserialize, Serialize};

use crate::observe::ObservedState;
use crate::plan::{Plan, Protocol, Step};
use crate::target::Target;

/// Format version of journal files.
pub const JOURNAL_VERSION: u32 = 1;

/// What a transition in progress has done and must be able to undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Format version.
    pub version: u32,
    /// The process running the transition.
    pub pid: u32,
    /// The device.
    pub device: DaxName,
    /// The state asked for.
    pub target: Target,
    /// The state it started from.
    pub start: ObservedState,
    /// Native or fallback.
    pub protocol: Protocol,
    /// The plan.
    pub steps: Vec<Step>,
    /// Index of the step being taken.
    pub step: usize,
    /// What within the step is about to happen.
    pub note: String,
    /// An irreversible step has begun: recovery finishes the transition.
    pub committed: bool,
    /// The user's `auto_online_blocks`, while daxplug has it set to something else.
    pub saved_aob: Option<OnlineType>,
    /// The user's `memory_hotplug.online_policy` and `auto_movable_numa_aware`, while
    /// daxplug has them set so that a block another controller onlines with plain `online`
    /// during an unplug lands in `Movable`.
    #[serde(default)]
    pub saved_policy: Option<(OnlinePolicy, BoolParam)>,
    /// The dax bus's `drivers_autoprobe`, while daxplug has it off to load kmem without
    /// the load binding any device.
    #[serde(default)]
    pub saved_autoprobe: Option<BusAutoprobe>,
    /// udev's exec queue is stopped by daxplug.
    pub udev_stopped: bool,
    /// Blocks daxplug offlined, with the zone each had.
    pub offlined: Vec<(u64, Zone)>,
    /// daxplug unbound device_dax from the device.
    pub unbound_device_dax: bool,
    /// The device's size and alignment before daxplug changed them, while a layout change
    /// is under way.
    #[serde(default)]
    pub extent_before: Option<(u64, Option<u64>)>,
}

impl Journal {
    /// The journal of `plan` before its first step, written by this process.
    pub fn planned(plan: &Plan) -> Self {
        Journal {
            version: JOURNAL_VERSION,
            pid: std::process::id(),
            device: plan.device,
            target: plan.target,
            start: plan.start,
            protocol: plan.protocol,
            steps: plan.steps.clone(),
            step: 0,
            note: "planned".to_owned(),
            committed: false,
            saved_aob: None,
            saved_policy: None,
            saved_autoprobe: None,
            udev_stopped: false,
            offlined: Vec::new(),
            unbound_device_dax: false,
            extent_before: None,
        }
    }
}

/// A journal file: `RUN/daxplug/journal-<device>.json`.
#[derive(Debug, Clone)]
pub struct JournalFile {
    path: PathBuf,
}

/// The journal directory under a run directory.
pub fn journal_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("daxplug")
}

impl JournalFile {
    /// The journal file of `device`.
    pub fn for_device(run_dir: &Path, device: DaxName) -> Self {
        Self {
            path: journal_dir(run_dir).join(format!("journal-{device}.json")),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the journal durably (temporary file, fsync, rename).
    pub fn write(&self, j: &Journal) -> std::io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        // The directory is made on the first write only (a transition writes a dozen
        // times); should it vanish meanwhile, it is made again.
        let mut f = match File::create(&tmp) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = self.path.parent() {
                    fs::create_dir_all(dir)?;
                }
                File::create(&tmp)?
            }
            other => other?,
        };
        f.write_all(
            serde_json::to_string_pretty(j)
                .map_err(std::io::Error::other)?
                .as_bytes(),
        )?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path)
    }

    /// Deletes the journal: the transition is over.
    pub fn remove(&self) -> std::io::Result<()> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every journal left in `run_dir`.
    pub fn list(run_dir: &Path) -> std::io::Result<Vec<(JournalFile, Journal)>> {
        let dir = journal_dir(run_dir);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = fs::read_to_string(&path)?;
                let j: Journal = serde_json::from_str(&text).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                out.push((JournalFile { path }, j));
            }
        }
        out.sort_by_key(|(_, j)| j.device);
        Ok(out)
    }
}
