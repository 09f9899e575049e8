//! The code secret: from the settings, else from the data directory's `code-secret` file,
//! which a local start without one generates once (and says so). Codes and links are derived
//! under it, so every process of a database must use the same one.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use contactd_app::CodeSecret;
use tracing::{info, warn};

const FILE_NAME: &str = "code-secret";

pub fn code_secret(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<CodeSecret> {
    if let Some(text) = configured {
        return CodeSecret::new(text.trim().as_bytes().to_vec())
            .context("--code-secret / CONTACTD_CODE_SECRET is too short");
    }
    let path = data_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            info!(path = %path.display(), "verification code secret read from the data directory");
            CodeSecret::new(text.trim().as_bytes().to_vec())
                .with_context(|| format!("the code secret in {} is too short", path.display()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            // The secret is the file's text, exactly as a `--code-secret` copied from it.
            let text = CodeSecret::generate().to_hex();
            write_new(&path, &text)
                .with_context(|| format!("writing a new code secret to {}", path.display()))?;
            let secret = CodeSecret::new(text.into_bytes())
                .context("a generated code secret is too short")?;
            warn!(
                path = %path.display(),
                "generated a verification code secret into the data directory; every process \
                 that shares this database must use the same one (--code-secret)"
            );
            Ok(secret)
        }
        Err(error) => {
            Err(error).with_context(|| format!("reading the code secret {}", path.display()))
        }
    }
}

/// Creates the file readable by its owner alone (the code secret's, the master key's), failing
/// with `AlreadyExists` if another process created it first: that one's is the one to use.
pub(crate) fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_kept_and_read_back_the_same() {
        let dir = std::env::temp_dir().join(format!("contactd-secret-{}", uuid::Uuid::new_v4()));
        let first = code_secret(None, &dir).unwrap();
        let second = code_secret(None, &dir).unwrap();
        assert_eq!(first.to_hex(), second.to_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner alone");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_configured_secret_wins_and_must_be_long_enough() {
        let dir = std::env::temp_dir().join("contactd-secret-never-created");
        assert!(code_secret(Some("short"), &dir).is_err());
        assert!(code_secret(Some("a secret long enough"), &dir).is_ok());
        assert!(!dir.exists());
    }
}
