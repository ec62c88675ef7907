//! The real backend: kernel paths answered by files under a root directory.

use std::fs::{self, OpenOptions};
use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};

use crate::errno::Errno;
use crate::error::{KernelError, Op, RootError};
use crate::{Kernel, Result};

/// Whether a [`RootFs`] may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Every write fails with `EROFS` before touching anything. Used by commands that
    /// only look (`list`, `status`), so they cannot change a machine even by mistake.
    ReadOnly,
    /// Writes go through.
    ReadWrite,
}

/// Kernel paths mapped under a root directory: `/sys/x` is `ROOT/sys/x`.
///
/// With root `/` this is the running kernel; with a copied sysfs tree it is a fixture.
#[derive(Debug, Clone)]
pub struct RootFs {
    root: PathBuf,
    access: Access,
    /// `ROOT/sys/devices/system/memory`, opened on first use: block attributes are opened
    /// relative to it, so the kernel walks two path components instead of eight (on a
    /// machine with 64k blocks that is most of the time `list` takes).
    memory_dir: std::sync::Arc<std::sync::OnceLock<Option<std::os::fd::OwnedFd>>>,
}

/// The kernel path of the memory block directory, with its trailing slash.
const MEMORY_PREFIX: &str = "/sys/devices/system/memory/";

impl RootFs {
    /// Opens a root; fails if it is not an existing directory.
    pub fn new(root: impl Into<PathBuf>, access: Access) -> Result<Self, RootError> {
        let root = root.into();
        if !root.is_dir() {
            return Err(RootError::Missing { root });
        }
        Ok(Self {
            root,
            access,
            memory_dir: std::sync::Arc::default(),
        })
    }

    /// The memory block directory and `path` relative to it, when `path` is under it.
    fn in_memory_dir<'p>(&self, path: &'p str) -> Option<(&std::os::fd::OwnedFd, &'p str)> {
        let rest = path.strip_prefix(MEMORY_PREFIX)?;
        let dir = self
            .memory_dir
            .get_or_init(|| {
                rustix::fs::open(
                    self.root.join(MEMORY_PREFIX.trim_matches('/')),
                    rustix::fs::OFlags::RDONLY
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .ok()
            })
            .as_ref()?;
        Some((dir, rest))
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The real path of a kernel path. Only absolute paths made of normal components are
    /// accepted, so nothing can escape the root.
    fn host_path(&self, path: &str) -> std::result::Result<PathBuf, Errno> {
        let rest = path.strip_prefix('/').ok_or(Errno::EINVAL)?;
        let mut out = self.root.clone();
        for part in rest.split('/') {
            // `Path::components` would silently drop `.`; reject it like `..` instead.
            if !crate::paths::is_single_component(part) {
                return Err(Errno::EINVAL);
            }
            out.push(part);
        }
        Ok(out)
    }

    fn io<T>(&self, op: Op, path: &str, f: impl FnOnce(&Path) -> std::io::Result<T>) -> Result<T> {
        let host = self
            .host_path(path)
            .map_err(|errno| KernelError::new(op, path, errno))?;
        f(&host).map_err(|e| KernelError::new(op, path, Errno::from_io_error(&e)))
    }
}

/// Read size for files that come in records (procfs): `/proc/iomem` of a large machine
/// in two or three reads.
const PROC_CHUNK: usize = 16 * 1024;

/// Reads the rest of `file` after `buf` in large reads: procfs hands out as many records
/// as fit, and reports size 0, so std's reader (a size probe, then small growing reads)
/// would cost a system call per step.
fn read_to_end_in_chunks(file: &mut fs::File, mut buf: Vec<u8>) -> std::io::Result<Vec<u8>> {
    loop {
        if buf.capacity() - buf.len() < PROC_CHUNK / 2 {
            buf.reserve(buf.capacity().max(PROC_CHUNK));
        }
        let start = buf.len();
        buf.resize(buf.capacity(), 0);
        let got = loop {
            match file.read(&mut buf[start..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        buf.truncate(start + *got.as_ref().unwrap_or(&0));
        if got? == 0 {
            return Ok(buf);
        }
    }
}

/// Reads a whole procfs file (`/proc/PID/maps` and the like) in large reads.
pub fn read_proc_file(path: &Path) -> std::io::Result<String> {
    let mut file = fs::File::open(path)?;
    let buf = read_to_end_in_chunks(&mut file, Vec::new())?;
    String::from_utf8(buf).map_err(std::io::Error::other)
}

impl RootFs {
    /// Whether this root is the running kernel's own `/sys` (not a copied tree, and not
    /// the emulated machine FUSE serves under `sim run`).
    fn is_running_kernel(&self) -> bool {
        self.root == Path::new("/") && !on_fuse(Path::new("/sys/devices/system/memory"))
    }
}

/// Whether `path` is on a FUSE filesystem: the emulated `/sys` of `sim run`, whose
/// changes send no uevent and no inotify event.
pub fn on_fuse(path: &Path) -> bool {
    const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
    // f_type is a C long: i64 here, narrower on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    rustix::fs::statfs(path).is_ok_and(|s| i64::from(s.f_type) == FUSE_SUPER_MAGIC)
}

impl Kernel for RootFs {
    fn watch_uevents(&self) -> Option<Box<dyn crate::UeventWatch + '_>> {
        if !self.is_running_kernel() {
            return None;
        }
        crate::uevents::NetlinkWatch::listen(0)
            .ok()
            .map(|w| Box::new(w) as Box<dyn crate::UeventWatch>)
    }

    fn read(&self, path: &str) -> Result<String> {
        // A sysfs attribute comes whole in one read(2) (it is at most a page), so a short
        // read is the end: open, read, close. procfs files (iomem) come a record at a time
        // and are read to the end.
        let whole_at_once = path.starts_with("/sys/");
        let memory = self.in_memory_dir(path);
        let bytes = self.io(Op::Read, path, |p| {
            let mut file = match memory {
                // host_path() has vetted every component of `rest` already.
                Some((dir, rest)) => fs::File::from(rustix::fs::openat(
                    dir,
                    rest,
                    rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )?),
                None => fs::File::open(p)?,
            };
            // Small on the stack: most attributes are a few bytes, and zeroing a page per
            // read costs more than the read on a big machine.
            let mut small = [0u8; 256];
            let n = file.read(&mut small)?;
            if n == 0 || (whole_at_once && n < small.len()) {
                return Ok(small[..n].to_vec());
            }
            let mut buf = Vec::with_capacity(PROC_CHUNK);
            buf.extend_from_slice(&small[..n]);
            read_to_end_in_chunks(&mut file, buf)
        })?;
        String::from_utf8(bytes).map_err(|_| KernelError::new(Op::Read, path, Errno::EILSEQ))
    }

    fn write(&self, path: &str, value: &str) -> Result<()> {
        if self.access == Access::ReadOnly {
            return Err(KernelError::write(path, value, Errno::EROFS));
        }
        let host = self
            .host_path(path)
            .map_err(|errno| KernelError::write(path, value, errno))?;
        let fail = |e: std::io::Error| KernelError::write(path, value, Errno::from_io_error(&e));
        // No O_CREAT: a sysfs attribute that does not exist is ENOENT, never a new file.
        // O_TRUNC is ignored by sysfs and keeps a fixture file equal to the last value.
        let mut file = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(host)
            .map_err(fail)?;
        // One write(2): sysfs treats each write as one store, so never split or retry it.
        let written = file.write(value.as_bytes()).map_err(fail)?;
        if written != value.len() {
            return Err(KernelError::write(path, value, Errno::EIO));
        }
        Ok(())
    }

    fn list_dir(&self, path: &str) -> Result<Vec<String>> {
        self.io(Op::ListDir, path, |p| {
            fs::read_dir(p)?
                .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
    }

    fn read_link(&self, path: &str) -> Result<String> {
        let target = self.io(Op::ReadLink, path, |p| fs::read_link(p))?;
        target
            .into_os_string()
            .into_string()
            .map_err(|_| KernelError::new(Op::ReadLink, path, Errno::EILSEQ))
    }

    fn exists(&self, path: &str) -> bool {
        let Ok(host) = self.host_path(path) else {
            return false;
        };
        match self.in_memory_dir(path) {
            Some((dir, rest)) => {
                rustix::fs::statat(dir, rest, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok()
            }
            None => fs::symlink_metadata(host).is_ok(),
        }
    }

    fn parallel_reads(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let mem = dir.path().join("sys/devices/system/memory/memory40");
        fs::create_dir_all(&mem).expect("mkdir");
        fs::write(mem.join("state"), "online\n").expect("write");
        std::os::unix::fs::symlink("../../node/node1", mem.join("node1")).expect("symlink");
        dir
    }

    #[test]
    fn reads_lists_and_links_under_the_root() {
        let dir = tree();
        let k = RootFs::new(dir.path(), Access::ReadOnly).expect("root");
        assert_eq!(
            k.read("/sys/devices/system/memory/memory40/state")
                .as_deref(),
            Ok("online\n")
        );
        let mut names = k
            .list_dir("/sys/devices/system/memory/memory40")
            .expect("list");
        names.sort();
        assert_eq!(names, vec!["node1", "state"]);
        assert_eq!(
            k.read_link("/sys/devices/system/memory/memory40/node1")
                .as_deref(),
            Ok("../../node/node1")
        );
        // A dangling link still exists.
        assert!(k.exists("/sys/devices/system/memory/memory40/node1"));
        assert!(!k.exists("/sys/devices/system/memory/memory41"));
        let err = k
            .read("/sys/devices/system/memory/memory41/state")
            .expect_err("absent");
        assert!(err.is_not_found());
        assert_eq!(
            err.to_string(),
            "cannot read /sys/devices/system/memory/memory41/state: ENOENT (No such file or directory)"
        );
    }

    #[test]
    fn record_files_are_read_whole_whatever_their_size() {
        let dir = tree();
        fs::create_dir_all(dir.path().join("proc")).expect("mkdir");
        let k = RootFs::new(dir.path(), Access::ReadOnly).expect("root");
        // Around the first small read and the chunk size, and several chunks.
        for len in [
            0,
            1,
            255,
            256,
            257,
            PROC_CHUNK - 1,
            PROC_CHUNK + 300,
            5 * PROC_CHUNK,
        ] {
            let text: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            fs::write(dir.path().join("proc/iomem"), &text).expect("write");
            assert_eq!(
                k.read("/proc/iomem").as_deref(),
                Ok(text.as_str()),
                "{len} bytes"
            );
        }
    }
    #[test]
    fn read_only_root_refuses_writes_untouched() {
        let dir = tree();
        let k = RootFs::new(dir.path(), Access::ReadOnly).expect("root");
        let err = k
            .write("/sys/devices/system/memory/memory40/state", "offline")
            .expect_err("read-only");
        assert_eq!(err.errno, Errno::EROFS);
        let on_disk =
            fs::read_to_string(dir.path().join("sys/devices/system/memory/memory40/state"))
                .expect("read");
        assert_eq!(on_disk, "online\n");
    }

    #[test]
    fn writes_replace_and_never_create() {
        let dir = tree();
        let k = RootFs::new(dir.path(), Access::ReadWrite).expect("root");
        k.write("/sys/devices/system/memory/memory40/state", "offline")
            .expect("write");
        assert_eq!(
            k.read("/sys/devices/system/memory/memory40/state")
                .as_deref(),
            Ok("offline")
        );
        let err = k
            .write("/sys/devices/system/memory/memory40/nope", "1")
            .expect_err("no such attribute");
        assert_eq!(err.errno, Errno::ENOENT);
        assert!(
            !dir.path()
                .join("sys/devices/system/memory/memory40/nope")
                .exists()
        );
    }

    #[test]
    fn paths_cannot_escape_the_root() {
        let dir = tree();
        let k = RootFs::new(dir.path(), Access::ReadWrite).expect("root");
        for bad in ["sys/devices", "/sys/../../etc/passwd", "/sys/./devices", ""] {
            assert_eq!(
                k.read(bad).map_err(|e| e.errno),
                Err(Errno::EINVAL),
                "{bad:?}"
            );
        }
        assert!(matches!(
            RootFs::new(dir.path().join("missing"), Access::ReadOnly),
            Err(RootError::Missing { .. })
        ));
    }
}
