//! The system-wide lock: one daxplug transition at a time on a machine.

use std::fs::{File, OpenOptions};
use std::time::Instant;

use crate::host::Host;

use super::report::TransitionError;
use super::{DEFAULT_LOCK_WAIT, POLL};

/// The system-wide lock, held for the whole transition.
pub(super) struct Lock {
    _file: File,
}

pub(super) fn take_lock(
    host: &dyn Host,
    deadline: Option<Instant>,
) -> Result<Option<Lock>, TransitionError> {
    let dir = host.run_dir().join("lock");
    let path = dir.join("daxplug.lock");
    let io = |source| TransitionError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    let until = deadline.unwrap_or_else(|| Instant::now() + DEFAULT_LOCK_WAIT);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(Lock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < until => {
                std::thread::sleep(POLL)
            }
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
}
