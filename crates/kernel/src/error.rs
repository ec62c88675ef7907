//! Errors of the kernel interface.

use std::fmt;
use std::path::PathBuf;

use crate::errno::Errno;

/// Which operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// [`crate::Kernel::read`].
    Read,
    /// [`crate::Kernel::write`].
    Write,
    /// [`crate::Kernel::list_dir`].
    ListDir,
    /// [`crate::Kernel::read_link`].
    ReadLink,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::ListDir => "list",
            Op::ReadLink => "read the link",
        })
    }
}

/// A failed kernel-interface call: the operation, the kernel path and the raw errno.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct KernelError {
    /// What was attempted.
    pub op: Op,
    /// The kernel path (`/sys/...`), not the backend's real path.
    pub path: String,
    /// The value written, for failed writes.
    pub value: Option<String>,
    /// The errno the kernel (or the backend) returned.
    pub errno: Errno,
}

impl KernelError {
    /// Builds an error for `op` on `path`.
    pub fn new(op: Op, path: &str, errno: Errno) -> Self {
        Self {
            op,
            path: path.to_owned(),
            value: None,
            errno,
        }
    }

    /// Builds an error for writing `value` to `path`.
    pub fn write(path: &str, value: &str, errno: Errno) -> Self {
        Self {
            op: Op::Write,
            path: path.to_owned(),
            value: Some(value.to_owned()),
            errno,
        }
    }

    /// Whether the path does not exist (`ENOENT`).
    pub fn is_not_found(&self) -> bool {
        self.errno == Errno::ENOENT
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(
                f,
                "writing {:?} to {} failed with {}",
                value, self.path, self.errno
            ),
            None => write!(f, "cannot {} {}: {}", self.op, self.path, self.errno),
        }
    }
}

/// The root directory of a [`crate::RootFs`] cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// The directory does not exist or is not a directory.
    #[error("the root directory {} does not exist or is not a directory", .root.display())]
    Missing {
        /// The root as given.
        root: PathBuf,
    },
}
