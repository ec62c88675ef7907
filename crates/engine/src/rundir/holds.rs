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

/// A device held for maintenance by one holder. A device may have several holds, one per
/// holder; it stays held until the last of them ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub device: DaxName,
    /// Who holds it (`--holder`, else the login name of whoever ran `daxplug hold`).
    #[serde(default = "unknown_holder")]
    pub holder: String,
    /// Unix time the hold was taken.
    pub since: u64,
    /// Unix time it lapses; `None` until released.
    pub until: Option<u64>,
    /// Why, as the operator said.
    pub reason: Option<String>,
}

impl Hold {
    /// Until when it holds, for people: `until released`, or
    /// `until 2026-12-06 14:03 UTC (in 59m)`.
    pub fn until_phrase(&self) -> String {
        self.until.map_or_else(
            || "until released".to_owned(),
            |u| {
                format!(
                    "until {} (in {})",
                    crate::units::utc(u),
                    crate::units::duration(std::time::Duration::from_secs(u.saturating_sub(now())))
                )
            },
        )
    }

    /// The hold, for people: `held by alice until ...: firmware update`.
    pub fn phrase(&self) -> String {
        format!(
            "held by {} {}{}",
            self.holder,
            self.until_phrase(),
            self.reason
                .as_deref()
                .map_or_else(String::new, |r| format!(": {r}"))
        )
    }
}

fn unknown_holder() -> String {
    "unknown".to_owned()
}

impl Hold {
    /// Whether it lasts at least as long as `other` (one without an end lasts longest).
    fn outlasts(&self, other: &Hold) -> bool {
        match (self.until, other.until) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a >= b,
        }
    }
}

/// What taking a hold did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The hold now in force for this holder.
    pub hold: Hold,
    /// This holder's earlier hold on the device, which it replaces.
    pub replaced: Option<Hold>,
    /// Other holders' holds on the device, which stay.
    pub others: Vec<Hold>,
}

/// What a running daemon publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonRecord {
    /// Its process.
    pub pid: u32,
    /// When its process started (`/proc/PID/stat`'s starttime, clock ticks since boot): a
    /// pid the kernel reused for another process does not match it.
    #[serde(default)]
    pub started: Option<u64>,
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

/// Who is taking a hold when no `--holder` is given: the user behind `sudo`, else the
/// login name, else the uid.
pub fn default_holder() -> String {
    ["SUDO_USER", "LOGNAME", "USER"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| format!("uid{}", rustix::process::getuid().as_raw()))
}

/// A holder's name as it may appear in a file name: letters, digits, `.`, `_`, `-`.
fn file_safe(holder: &str) -> String {
    let safe: String = holder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() || safe.starts_with('.') {
        format!("_{safe}")
    } else {
        safe
    }
}

fn hold_file(run_dir: &Path, device: DaxName, holder: &str) -> PathBuf {
    super::hold(run_dir, device, &file_safe(holder))
}

/// Every hold file with what it holds (lapsed ones are removed and left out).
fn hold_files(run_dir: &Path) -> Vec<(PathBuf, Hold)> {
    let t = now();
    let mut out: Vec<(PathBuf, Hold)> = fs::read_dir(super::holds(run_dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| {
            let h: Hold = serde_json::from_str(&fs::read_to_string(e.path()).ok()?).ok()?;
            if h.until.is_some_and(|u| u <= t) {
                let _ = fs::remove_file(e.path());
                return None;
            }
            Some((e.path(), h))
        })
        .collect();
    out.sort_by(|a, b| (a.1.device, &a.1.holder).cmp(&(b.1.device, &b.1.holder)));
    out
}

/// Holds `device` for `holder`, for `seconds` (until released when `None`). A holder's
/// second hold replaces their first; other holders' holds stay.
pub fn hold(
    run_dir: &Path,
    device: DaxName,
    holder: &str,
    seconds: Option<u64>,
    reason: Option<String>,
) -> io::Result<Taken> {
    let since = now();
    let h = Hold {
        device,
        holder: holder.to_owned(),
        since,
        until: seconds.map(|s| since.saturating_add(s)),
        reason,
    };
    let (mine, others): (Vec<Hold>, Vec<Hold>) = holds_of(run_dir, device)
        .into_iter()
        .partition(|o| o.holder == holder);
    write_json(&hold_file(run_dir, device, holder), &h)?;
    Ok(Taken {
        hold: h,
        replaced: mine.into_iter().next(),
        others,
    })
}

/// Ends `holder`'s hold on `device`, or every hold on it when `holder` is `None`: the
/// holds ended.
pub fn release(run_dir: &Path, device: DaxName, holder: Option<&str>) -> io::Result<Vec<Hold>> {
    let mut ended = Vec::new();
    for (path, h) in hold_files(run_dir) {
        if h.device != device || holder.is_some_and(|who| who != h.holder) {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => ended.push(h),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ended)
}

/// Every hold in force, by device and holder (lapsed ones are left out, and removed).
pub fn holds(run_dir: &Path) -> Vec<Hold> {
    hold_files(run_dir).into_iter().map(|(_, h)| h).collect()
}

/// The holds in force on `device`.
pub fn holds_of(run_dir: &Path, device: DaxName) -> Vec<Hold> {
    holds(run_dir)
        .into_iter()
        .filter(|h| h.device == device)
        .collect()
}

/// The hold that keeps `device` held longest, if any is in force.
pub fn held(run_dir: &Path, device: DaxName) -> Option<Hold> {
    longest(holds_of(run_dir, device))
}

/// Of several holds, the one that lasts longest.
pub fn longest(holds: impl IntoIterator<Item = Hold>) -> Option<Hold> {
    holds
        .into_iter()
        .reduce(|a, b| if a.outlasts(&b) { a } else { b })
}

/// Publishes the running daemon (called at every pass).
pub fn register_daemon(run_dir: &Path, record: &DaemonRecord) -> io::Result<()> {
    write_json(&super::daemon(run_dir), record)
}

/// Withdraws the daemon's registration (on exit).
pub fn unregister_daemon(run_dir: &Path) {
    let _ = fs::remove_file(super::daemon(run_dir));
}

/// The running daemon, if one is registered and its process is alive.
pub fn running_daemon(run_dir: &Path) -> Option<DaemonRecord> {
    let r: DaemonRecord =
        serde_json::from_str(&fs::read_to_string(super::daemon(run_dir)).ok()?).ok()?;
    // A daemon that died without unregistering manages nothing, and a pid reused since by
    // another process is not the daemon.
    let alive = r.pid == std::process::id()
        || (process_name(r.pid).is_some_and(|n| n.starts_with("daxplug"))
            && r.started.is_none_or(|t| process_start(r.pid) == Some(t)));
    alive.then_some(r)
}

/// A process's command name (`/proc/PID/comm`).
fn process_name(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_owned())
}

/// When a process started: field 22 of `/proc/PID/stat`, in clock ticks since boot.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_lapse_and_release() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d: DaxName = "dax0.0".parse().expect("name");
        assert!(held(dir.path(), d).is_none());
        hold(dir.path(), d, "alice", None, Some("firmware update".into())).expect("hold");
        assert_eq!(
            held(dir.path(), d).and_then(|h| h.reason),
            Some("firmware update".into())
        );
        assert_eq!(
            release(dir.path(), d, Some("alice"))
                .expect("release")
                .len(),
            1
        );
        assert!(
            release(dir.path(), d, Some("alice"))
                .expect("again")
                .is_empty()
        );
        hold(dir.path(), d, "alice", Some(0), None).expect("hold");
        assert!(held(dir.path(), d).is_none(), "a hold of 0 s has lapsed");
    }

    /// A second holder's short hold neither replaces nor ends the first holder's long one.
    #[test]
    fn holds_are_per_holder_and_the_longest_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d: DaxName = "dax0.0".parse().expect("name");
        hold(dir.path(), d, "alice", Some(3600), Some("long job".into())).expect("hold");
        let t = hold(dir.path(), d, "bob", Some(1), Some("quick look".into())).expect("hold");
        assert_eq!(t.others.len(), 1, "alice's hold is reported");
        assert_eq!(t.others[0].holder, "alice");
        assert!(t.replaced.is_none());
        assert_eq!(holds_of(dir.path(), d).len(), 2);
        assert_eq!(
            held(dir.path(), d).map(|h| h.holder),
            Some("alice".into()),
            "the longest hold is the one in force"
        );
        // bob's hold ending leaves alice's.
        release(dir.path(), d, Some("bob")).expect("release");
        assert_eq!(held(dir.path(), d).map(|h| h.holder), Some("alice".into()));
        // alice holding again replaces only her own hold.
        let again = hold(dir.path(), d, "alice", None, None).expect("hold");
        assert_eq!(
            again.replaced.map(|h| h.reason),
            Some(Some("long job".into()))
        );
        assert_eq!(release(dir.path(), d, None).expect("release all").len(), 1);
        assert!(held(dir.path(), d).is_none());
    }

    /// A registration whose pid now belongs to another process (a reused pid) is stale.
    #[test]
    fn a_reused_pid_is_not_the_daemon() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let record = DaemonRecord {
            pid: sleeper.id(),
            started: None,
            config: "/etc/daxplug/daxplug.toml".into(),
            managed: Vec::new(),
            blocked: Vec::new(),
        };
        register_daemon(dir.path(), &record).expect("register");
        let found = running_daemon(dir.path());
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        assert!(found.is_none(), "sleep is not a daxplug daemon");
        let mine = DaemonRecord {
            pid: std::process::id(),
            started: process_start(std::process::id()),
            ..record
        };
        register_daemon(dir.path(), &mine).expect("register");
        assert!(running_daemon(dir.path()).is_some());
        assert!(process_start(std::process::id()).is_some());
    }

    #[test]
    fn holder_names_stay_in_the_holds_directory() {
        assert_eq!(file_safe("../../etc/passwd"), "_.._.._etc_passwd");
        assert_eq!(file_safe(""), "_");
        assert_eq!(file_safe("alice"), "alice");
    }
}
