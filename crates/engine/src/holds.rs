//! Maintenance holds and the running daemon's registration, both in the run directory that
//! `set` and the daemon share: an operator holds a device (`daxplug hold DEV`) so that the
//! daemon leaves it alone, and `set` refuses a device a running daemon manages unless it is
//! held, instead of the daemon silently undoing the operator's work a second later.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use daxplug_abi::DaxName;
use serde::{Deserialize, Serialize};

/// A device held for maintenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The device.
    pub device: DaxName,
    /// Unix time the hold was taken.
    pub since: u64,
    /// Unix time it lapses; `None` until released.
    pub until: Option<u64>,
    /// Why, as the operator said.
    pub reason: Option<String>,
}

/// What a running daemon publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonRecord {
    /// Its process.
    pub pid: u32,
    /// Its policy file.
    pub config: PathBuf,
    /// The devices its rules took at its last pass, with the state each rule wants.
    pub managed: Vec<(DaxName, String)>,
    /// Managed devices whose rule cannot be reached before a reboot (memory pinned in a
    /// kernel zone), with the state the rule wants.
    #[serde(default)]
    pub blocked: Vec<(DaxName, String)>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `RUN/daxplug/holds`: one file per held device.
pub fn holds_dir(run_dir: &Path) -> PathBuf {
    crate::journal::journal_dir(run_dir).join("holds")
}

fn daemon_file(run_dir: &Path) -> PathBuf {
    crate::journal::journal_dir(run_dir).join("daemon.json")
}

/// Writes `value` as JSON to `path` atomically (the holds, the registration, the boot
/// gate's record).
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

/// Holds `device` for `seconds` (until released when `None`).
pub fn hold(
    run_dir: &Path,
    device: DaxName,
    seconds: Option<u64>,
    reason: Option<String>,
) -> io::Result<Hold> {
    let since = now();
    let h = Hold {
        device,
        since,
        until: seconds.map(|s| since.saturating_add(s)),
        reason,
    };
    write_json(&holds_dir(run_dir).join(format!("{device}.json")), &h)?;
    Ok(h)
}

/// Releases `device`; whether it was held.
pub fn release(run_dir: &Path, device: DaxName) -> io::Result<bool> {
    match fs::remove_file(holds_dir(run_dir).join(format!("{device}.json"))) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The holds in force (lapsed ones are left out, and removed).
pub fn holds(run_dir: &Path) -> Vec<Hold> {
    let t = now();
    let mut out: Vec<Hold> = fs::read_dir(holds_dir(run_dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let h: Hold = serde_json::from_str(&fs::read_to_string(e.path()).ok()?).ok()?;
            if h.until.is_some_and(|u| u <= t) {
                let _ = fs::remove_file(e.path());
                return None;
            }
            Some(h)
        })
        .collect();
    out.sort_by_key(|h| h.device);
    out
}

/// The hold on `device`, if one is in force.
pub fn held(run_dir: &Path, device: DaxName) -> Option<Hold> {
    holds(run_dir).into_iter().find(|h| h.device == device)
}

/// Publishes the running daemon (called at every pass).
pub fn register_daemon(run_dir: &Path, record: &DaemonRecord) -> io::Result<()> {
    write_json(&daemon_file(run_dir), record)
}

/// Withdraws the daemon's registration (on exit).
pub fn unregister_daemon(run_dir: &Path) {
    let _ = fs::remove_file(daemon_file(run_dir));
}

/// The running daemon, if one is registered and its process is alive.
pub fn running_daemon(run_dir: &Path) -> Option<DaemonRecord> {
    let r: DaemonRecord =
        serde_json::from_str(&fs::read_to_string(daemon_file(run_dir)).ok()?).ok()?;
    // A daemon that died without unregistering manages nothing.
    (r.pid == std::process::id() || Path::new(&format!("/proc/{}", r.pid)).exists()).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_lapse_and_release() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d: DaxName = "dax0.0".parse().expect("name");
        assert!(held(dir.path(), d).is_none());
        hold(dir.path(), d, None, Some("firmware update".into())).expect("hold");
        assert_eq!(
            held(dir.path(), d).and_then(|h| h.reason),
            Some("firmware update".into())
        );
        assert!(release(dir.path(), d).expect("release"));
        assert!(!release(dir.path(), d).expect("release again"));
        hold(dir.path(), d, Some(0), None).expect("hold");
        assert!(held(dir.path(), d).is_none(), "a hold of 0 s has lapsed");
    }
}
