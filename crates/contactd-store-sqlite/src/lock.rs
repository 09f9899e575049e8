//! The lock file beside the database: one store holds it, for as long as the store lives.
//! SQLite would let two processes share the file, but the service's single-writer reasoning
//! (positions commit in order, no advisory lock for projections, in-process wake-ups) holds
//! only for one, so a second `contactd` on the same data directory is refused at start-up.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::OpenError;

/// An exclusive lock on `<database file>.lock`, released when dropped (closing the file
/// releases it; a process that dies releases it too).
#[derive(Debug)]
pub(crate) struct LockFile {
    path: PathBuf,
    // Held for its lock only.
    _file: File,
}

impl LockFile {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the lock of `database`, or fails at once if anyone holds it: another process, or
    /// another store of this one (the lock belongs to the open file, not to the process).
    pub(crate) fn acquire(database: &Path) -> Result<Self, OpenError> {
        let path = lock_path(database);
        let io_error = |source| OpenError::LockFile {
            path: path.clone(),
            source,
        };
        // Never truncated before the lock is held: the holder's pid stays readable.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(OpenError::Locked { lock_file: path }),
            Err(TryLockError::Error(source)) => return Err(io_error(source)),
        }
        // For an operator wondering who holds it; the lock, not the content, is what counts.
        file.set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(io_error)?;
        Ok(Self { path, _file: file })
    }
}

/// `<database file>.lock`.
pub(crate) fn lock_path(database: &Path) -> PathBuf {
    let mut name = OsString::from(database.as_os_str());
    name.push(".lock");
    PathBuf::from(name)
}
