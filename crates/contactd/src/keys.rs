//! The master keys (ADR 13): the current one from `--master-key-file`, else the data
//! directory's `master.key`, which `serve` generates on its first start (and warns about: the
//! personal data of the log is readable only with it), and the previous ones of a rotation.
//! The keys' bytes never leave this module but inside a `Keyring`: no message names them.

use std::path::Path;

use anyhow::Context;
use contactd_store_core::{Keyring, MasterKey};
use tracing::{info, warn};

use crate::settings::DatabaseSettings;

/// The master key file of the data directory, when no `--master-key-file` names one.
pub const FILE_NAME: &str = "master.key";

/// What a command does when no master key file is named and the data directory has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenMissing {
    /// `serve`: generate one into the data directory (a local start), with a warning.
    Generate,
    /// The offline commands that read or change the log: refuse, since a new key could open
    /// nothing sealed so far.
    Refuse,
    /// `migrate`: no personal field is sealed or opened, so a key of the moment will do and
    /// nothing is written.
    Ephemeral,
}

/// A master key file's key, or why it is not one (the path and the reason, never its text).
pub fn read_master_key(path: &Path) -> Result<MasterKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    MasterKey::from_file_text(&text).map_err(|why| format!("{}: {why}", path.display()))
}

/// The keyring the settings name: the current master key and the previous ones.
pub fn keyring(settings: &DatabaseSettings, missing: WhenMissing) -> anyhow::Result<Keyring> {
    let current = match &settings.master_key_file {
        Some(path) => read_master_key(path)
            .map_err(anyhow::Error::msg)
            .context("--master-key-file")?,
        None => from_data_dir(&settings.data_dir, missing)?,
    };
    let previous = settings
        .previous_master_key_files
        .iter()
        .map(|path| {
            read_master_key(path)
                .map_err(anyhow::Error::msg)
                .context("--previous-master-key-file")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Keyring::new(current, previous))
}

fn from_data_dir(data_dir: &Path, missing: WhenMissing) -> anyhow::Result<MasterKey> {
    let path = data_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            info!(path = %path.display(), "master key read from the data directory");
            MasterKey::from_file_text(&text)
                .map_err(|why| anyhow::anyhow!("the master key {}: {why}", path.display()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => match missing {
            WhenMissing::Generate => generate(&path),
            WhenMissing::Ephemeral => Ok(MasterKey::generate().0),
            WhenMissing::Refuse => anyhow::bail!(
                "no master key: give the server's --master-key-file, or the --data-dir that \
                 holds its {FILE_NAME} ({} does not exist)",
                path.display()
            ),
        },
        Err(error) => {
            Err(error).with_context(|| format!("reading the master key {}", path.display()))
        }
    }
}

/// Generates the data directory's key, readable by its owner alone; if another process
/// created it first, that one's key is the one to use.
fn generate(path: &Path) -> anyhow::Result<MasterKey> {
    let (key, text) = MasterKey::generate();
    match crate::secret::write_new(path, text.trim()) {
        Ok(()) => {
            warn!(
                path = %path.display(),
                key_id = key.id(),
                "generated a master key into the data directory: keep it and back it up, \
                 without it no personal data of the log can be read; every process of this \
                 database must use the same one (--master-key-file)"
            );
            Ok(key)
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            from_data_dir(path.parent().unwrap_or(Path::new(".")), WhenMissing::Refuse)
        }
        Err(error) => {
            Err(error).with_context(|| format!("writing a new master key to {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("contactd-keys-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn a_generated_key_is_kept_private_and_read_back_the_same() {
        let dir = temp_dir();
        let settings = DatabaseSettings::new(None, dir.clone());
        let refused = keyring(&settings, WhenMissing::Refuse).unwrap_err();
        assert!(
            format!("{refused:#}").contains("no master key"),
            "{refused:#}"
        );
        assert!(!dir.exists(), "a refusal writes nothing");
        let first = keyring(&settings, WhenMissing::Generate).unwrap();
        let second = keyring(&settings, WhenMissing::Refuse).unwrap();
        assert_eq!(first.current_id(), second.current_id());
        let text = std::fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        assert_eq!(text.trim().len(), 64, "64 hexadecimal digits");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "readable by its owner alone");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn named_files_win_and_bad_ones_are_named_without_their_text() {
        let dir = temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let (current, current_text) = MasterKey::generate();
        let (old, old_text) = MasterKey::generate();
        std::fs::write(dir.join("current.key"), &current_text).unwrap();
        std::fs::write(dir.join("old.key"), &old_text).unwrap();
        let bad = "not a key but a secret-looking text";
        std::fs::write(dir.join("bad.key"), bad).unwrap();
        let mut settings = DatabaseSettings::new(None, dir.join("data"));
        settings.master_key_file = Some(dir.join("current.key"));
        settings.previous_master_key_files = vec![dir.join("old.key")];
        let ring = keyring(&settings, WhenMissing::Refuse).unwrap();
        assert_eq!(ring.current_id(), current.id());
        assert!(settings.key_problems().is_empty());
        assert_ne!(old.id(), current.id());

        settings.previous_master_key_files = vec![dir.join("bad.key"), dir.join("absent.key")];
        let problems = settings.key_problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("--previous-master-key-file: "),
            "{problems:?}"
        );
        assert!(problems[0].contains("bad.key"), "{problems:?}");
        assert!(problems[1].contains("cannot read"), "{problems:?}");
        for problem in &problems {
            assert!(!problem.contains(bad), "{problem}");
            assert!(!problem.contains('\n'), "one line: {problem}");
        }
        assert!(keyring(&settings, WhenMissing::Refuse).is_err());
        assert!(!dir.join("data").exists(), "nothing generated");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
