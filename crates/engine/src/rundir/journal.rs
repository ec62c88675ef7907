//! The transition journal: every step is recorded before it is taken, so that a crashed
//! transition can be finished or rolled back by the next daxplug run.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use daxplug_abi::{BoolParam, BusAutoprobe, DaxName, OnlinePolicy, OnlineType, Zone};
use serde::{Deserialize, Serialize};

use crate::discovery::observe::ObservedState;
use crate::plan::target::Target;
use crate::plan::{Plan, Protocol, Step};

/// Format version of journal files.
pub const JOURNAL_VERSION: u32 = 1;

/// What a transition in progress has done and must be able to undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Format version.
    pub version: u32,
    /// The process running the transition.
    pub pid: u32,
    pub device: DaxName,
    /// The state asked for.
    pub target: Target,
    /// The state it started from.
    pub start: ObservedState,
    /// Native or fallback.
    pub protocol: Protocol,
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

impl JournalFile {
    /// The journal file of `device`.
    pub fn for_device(run_dir: &Path, device: DaxName) -> Self {
        Self {
            path: super::journal(run_dir, device),
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

    /// Every journal left in `run_dir`. A journal that cannot be understood (damaged by a
    /// crash or an editor, cut short, from another version) is an error, never a guess.
    pub fn list(run_dir: &Path) -> Result<Vec<(JournalFile, Journal)>, JournalError> {
        let dir = super::dir(run_dir);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| JournalError::Io { path, source }
        };
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(io(&dir))?.path();
            // The directory also holds the lock, holds and the daemon's registration.
            let journal = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("journal-") && n.ends_with(".json"));
            if journal {
                let bytes = fs::read(&path).map_err(io(&path))?;
                out.push((
                    JournalFile { path: path.clone() },
                    Journal::parse(&path, &bytes)?,
                ));
            }
        }
        out.sort_by_key(|(_, j)| j.device);
        Ok(out)
    }
}

impl Journal {
    /// Reads a journal file's bytes: valid JSON of this version, or why not.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Journal, JournalError> {
        let unreadable = |why: String| JournalError::Unreadable {
            path: path.to_path_buf(),
            why,
        };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| unreadable(e.to_string()))?;
        let version = value.get("version").and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(JOURNAL_VERSION)) {
            return Err(JournalError::Version {
                path: path.to_path_buf(),
                found: version.map_or_else(|| "none".to_owned(), |v| v.to_string()),
            });
        }
        serde_json::from_value(value).map_err(|e| unreadable(e.to_string()))
    }
}

/// A journal left by an interrupted transition that recovery cannot use.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The directory or file cannot be read.
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a journal this daxplug wrote: damaged or cut short.
    #[error(
        "the journal {} of an interrupted transition is damaged ({why}); daxplug will not guess what that transition did: look at the device with `daxplug status`, move the file aside, then run the command again",
        path.display()
    )]
    Unreadable { path: PathBuf, why: String },
    /// Written by another version of daxplug.
    #[error(
        "the journal {} of an interrupted transition has format version {found}, and this daxplug reads version {JOURNAL_VERSION}; recover with the daxplug that wrote it, or look at the device with `daxplug status`, move the file aside, then run the command again",
        path.display()
    )]
    Version { path: PathBuf, found: String },
}
