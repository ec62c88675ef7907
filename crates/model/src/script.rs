//! A tiny sysfs script language shared by the model and the real kernel (in the e2e
//! guest, `tests/e2e/guest/agreement.sh` runs the same scripts with a shell), so that the
//! model and the kernel can be compared line by line.
//!
//! One operation per line: `read PATH`, `write PATH VALUE`, `ls PATH`, `memtotal PATH`
//! (the `MemTotal` of a meminfo file, in kB), `modprobe kmem`. `#` starts a comment.

use daxplug_kernel::Errno;

use crate::machine::Caller;
use crate::machine::Machine;

fn errno(e: Errno) -> String {
    e.name()
        .map_or_else(|| format!("errno {}", e.raw()), str::to_owned)
}

/// Runs `script` on the machine; one output line per operation.
pub fn run(m: &mut Machine, script: &str) -> String {
    let mut out = String::new();
    for line in script.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, char::is_whitespace);
        let (op, path, value) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("").trim(),
        );
        let result = match op {
            "read" => match m.sysfs_read(path) {
                Ok(text) => text.trim_end_matches('\n').replace('\n', "|"),
                Err(e) => errno(e),
            },
            "write" => {
                // `echo VALUE > PATH`: the value with a newline, in one write. The shell opens
                // with O_CREAT, and sysfs cannot create a file: a name missing from an
                // existing directory is EACCES, not ENOENT.
                let r = m.sysfs_write(path, &format!("{value}\n"), Caller::Client);
                let parent = path.rsplit_once('/').map_or("/", |(dir, _)| dir);
                let r = match r {
                    Err(e) if e == Errno::ENOENT && m.sysfs_list(parent).is_ok() => {
                        Err(Errno::EACCES)
                    }
                    r => r,
                };
                r.map_or_else(errno, |()| "ok".to_owned())
            }
            "ls" => {
                let mut names = m.sysfs_list(path).unwrap_or_default();
                names.sort();
                names.join(" ")
            }
            "memtotal" => m
                .sysfs_read(path)
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find(|l| l.contains("MemTotal:"))
                        .map(str::to_owned)
                })
                .and_then(|l| l.split_whitespace().rev().nth(1).map(str::to_owned))
                .unwrap_or_default(),
            "modprobe" => {
                let _ = m.load_module(path);
                "ok".to_owned()
            }
            other => format!("unknown operation {other:?}"),
        };
        if op == "write" {
            out.push_str(&format!("write {path} {value} = {result}\n"));
        } else {
            out.push_str(&format!("{op} {path} = {result}\n"));
        }
    }
    out
}
