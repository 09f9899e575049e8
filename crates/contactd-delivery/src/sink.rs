//! The development sink: each message becomes a file named after its id, written atomically, so
//! that a developer can read the code and a retry replaces the file instead of adding one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use contactd_app::{Delivered, DeliveryError};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub(crate) struct FileSink {
    dir: PathBuf,
}

impl FileSink {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `contents` as `{dir}/{file_name}`, creating the directory if need be.
    pub(crate) async fn write(
        &self,
        file_name: String,
        contents: Vec<u8>,
    ) -> Result<Delivered, DeliveryError> {
        let dir = self.dir.clone();
        let path =
            tokio::task::spawn_blocking(move || write_atomically(&dir, &file_name, &contents))
                .await
                .map_err(|_| DeliveryError::Transient("file sink task failed".to_owned()))?
                .map_err(|error| {
                    DeliveryError::Transient(format!("file sink write failed: {}", error.kind()))
                })?;
        Ok(Delivered {
            via: "file",
            detail: Some(path.display().to_string()),
        })
    }
}

/// A reader sees the old file or the new one, never half of one: the contents go to a temporary
/// file of a name of their own (two writers of one message do not share it) that is renamed
/// over the target.
fn write_atomically(dir: &Path, file_name: &str, contents: &[u8]) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let target = dir.join(file_name);
    let temporary = dir.join(format!(".{file_name}.{}.tmp", Uuid::new_v4().simple()));
    let written = write_synced(&temporary, contents).and_then(|()| fs::rename(&temporary, &target));
    if written.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = fs::remove_file(&temporary);
    }
    written.map(|()| target)
}

/// Synced before the rename, so that a crash cannot leave an empty file under the final name.
fn write_synced(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create_new(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_write_replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let messages = dir.path().join("messages");
        let first = write_atomically(&messages, "m.eml", b"first").unwrap();
        let second = write_atomically(&messages, "m.eml", b"second").unwrap();
        assert_eq!(first, second);
        assert_eq!(fs::read(&second).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(&messages)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["m.eml"]);
    }
}
