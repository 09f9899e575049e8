//! A configuration file kept loaded: parsed at start, polled for changes, replaced when a
//! change parses and kept as it was when one does not.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// The largest file read: a bigger one is refused before it is read into memory.
const MAX_FILE_BYTES: u64 = 4 << 20;

type Fingerprint = [u8; 32];

/// The last good value parsed from a file, reloaded when the file changes.
pub struct Watched<T> {
    shared: Arc<Shared<T>>,
}

struct Shared<T> {
    path: PathBuf,
    current: RwLock<Arc<T>>,
    reloads: watch::Sender<u64>,
}

impl<T> Clone for Watched<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched")
            .field("path", &self.shared.path)
            .field("reloads", &*self.shared.reloads.borrow())
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Watched<T> {
    /// Loads the file now (an error here is fatal to the caller: bad config at start refuses to
    /// start) and spawns a tokio task that polls it every `interval`; a change that parses
    /// replaces the value, one that does not keeps the last good value and logs why (with the
    /// path, never the content).
    ///
    /// Changes are seen by the file's SHA-256, so an edit within the same mtime second and an
    /// atomic rename are both noticed. Must be called inside a tokio runtime; the polling task
    /// ends once every clone of the returned value is dropped.
    pub fn load(
        path: PathBuf,
        interval: Duration,
        parse: impl Fn(&[u8]) -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Self, String> {
        if interval.is_zero() {
            return Err(format!(
                "{}: the reload interval must not be zero",
                path.display()
            ));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| format!("{}: watching a file needs a tokio runtime", path.display()))?;
        let bytes = read_bounded(&path).map_err(|error| format!("{}: {error}", path.display()))?;
        let value = parse(&bytes).map_err(|error| format!("{}: {error}", path.display()))?;
        let fingerprint = fingerprint(&bytes);
        drop(bytes);
        let (reloads, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            path,
            current: RwLock::new(Arc::new(value)),
            reloads,
        });
        runtime.spawn(poll(Arc::downgrade(&shared), interval, parse, fingerprint));
        Ok(Self { shared })
    }

    /// The value now in force; cheap, meant to be called on every RPC.
    pub fn current(&self) -> Arc<T> {
        Arc::clone(
            &self
                .shared
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Counts the successful reloads since the start (for tests and metrics).
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.shared.reloads.subscribe()
    }

    /// The file watched.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }
}

/// What the polling task remembers between polls.
struct PollState {
    /// The content now in force.
    loaded: Fingerprint,
    /// The content seen last, good or not, so that one bad edit is reported once.
    seen: Option<Fingerprint>,
    missing_reported: bool,
}

async fn poll<T: Send + Sync + 'static>(
    shared: Weak<Shared<T>>,
    interval: Duration,
    parse: impl Fn(&[u8]) -> Result<T, String> + Send + Sync + 'static,
    loaded: Fingerprint,
) {
    let mut state = PollState {
        loaded,
        seen: Some(loaded),
        missing_reported: false,
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is immediate; the file was just read.
    ticker.tick().await;
    loop {
        ticker.tick().await;
        // Only a weak handle is kept while sleeping, so dropping the last `Watched` ends the task.
        let Some(path) = shared.upgrade().map(|shared| shared.path.clone()) else {
            return;
        };
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || read_bounded(&path)).await
        };
        let bytes = match read {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(error)) => {
                if !state.missing_reported {
                    tracing::warn!(
                        path = %path.display(),
                        %error,
                        "cannot read the watched file; keeping the last good version"
                    );
                    state.missing_reported = true;
                }
                state.seen = None;
                continue;
            }
            Err(join_error) => {
                tracing::warn!(path = %path.display(), %join_error, "reading the watched file failed");
                continue;
            }
        };
        state.missing_reported = false;
        let fingerprint = fingerprint(&bytes);
        if state.seen == Some(fingerprint) {
            continue;
        }
        state.seen = Some(fingerprint);
        if fingerprint == state.loaded {
            // Back to the content in force after a bad edit or a missing file.
            continue;
        }
        match parse(&bytes) {
            Ok(value) => {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                *shared
                    .current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
                state.loaded = fingerprint;
                shared.reloads.send_modify(|count| *count += 1);
                tracing::info!(path = %path.display(), "reloaded the watched file");
            }
            Err(error) => {
                tracing::warn!(
                    path = %path.display(),
                    %error,
                    "the watched file changed but does not parse; keeping the last good version"
                );
            }
        }
    }
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|error| error.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| error.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("the file is larger than {MAX_FILE_BYTES} bytes"));
    }
    Ok(bytes)
}

fn fingerprint(bytes: &[u8]) -> Fingerprint {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const INTERVAL: Duration = Duration::from_millis(10);
    const PATIENCE: Duration = Duration::from_secs(10);

    fn parse_number(bytes: &[u8]) -> Result<u64, String> {
        std::str::from_utf8(bytes)
            .map_err(|error| error.to_string())?
            .trim()
            .parse()
            .map_err(|error: std::num::ParseIntError| error.to_string())
    }

    /// Writes through a temporary file and a rename, as editors and config managers do.
    fn replace(path: &Path, content: &str) {
        let next = path.with_extension("next");
        fs::write(&next, content).unwrap();
        fs::rename(&next, path).unwrap();
    }

    async fn next_reload(reloads: &mut watch::Receiver<u64>) -> u64 {
        tokio::time::timeout(PATIENCE, reloads.changed())
            .await
            .expect("no reload in time")
            .unwrap();
        *reloads.borrow_and_update()
    }

    /// Polls are every 10 ms: waiting many of them shows a change was not picked up.
    async fn several_polls() {
        tokio::time::sleep(INTERVAL * 20).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_that_parses_replaces_the_value_and_one_that_does_not_is_ignored() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("value");
        fs::write(&path, "1").unwrap();
        let watched = Watched::load(path.clone(), INTERVAL, parse_number).unwrap();
        let mut reloads = watched.reloads();
        assert_eq!(*watched.current(), 1);

        // Same length, same second: only the content tells.
        fs::write(&path, "2").unwrap();
        assert_eq!(next_reload(&mut reloads).await, 1);
        assert_eq!(*watched.current(), 2);

        replace(&path, "not a number");
        several_polls().await;
        assert_eq!(*watched.current(), 2);
        assert!(!reloads.has_changed().unwrap());

        replace(&path, "3");
        assert_eq!(next_reload(&mut reloads).await, 2);
        assert_eq!(*watched.current(), 3);

        fs::remove_file(&path).unwrap();
        several_polls().await;
        assert_eq!(*watched.current(), 3);

        // The file comes back as it was: nothing to reload.
        fs::write(&path, "3").unwrap();
        several_polls().await;
        assert!(!reloads.has_changed().unwrap());
        fs::write(&path, "4\n").unwrap();
        assert_eq!(next_reload(&mut reloads).await, 3);
        assert_eq!(*watched.clone().current(), 4);
    }

    #[tokio::test]
    async fn a_bad_file_at_start_is_an_error_that_names_it() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("value");
        let missing = Watched::load(path.clone(), INTERVAL, parse_number).unwrap_err();
        assert!(
            missing.starts_with(&path.display().to_string()),
            "{missing}"
        );
        fs::write(&path, "x").unwrap();
        let malformed = Watched::load(path.clone(), INTERVAL, parse_number).unwrap_err();
        assert!(malformed.contains("invalid digit"), "{malformed}");
        assert!(Watched::load(path, Duration::ZERO, parse_number).is_err());
    }

    #[test]
    fn loading_outside_a_runtime_is_an_error() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("value");
        fs::write(&path, "1").unwrap();
        let error = Watched::load(path, INTERVAL, parse_number).unwrap_err();
        assert!(error.contains("tokio runtime"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_polling_task_ends_with_the_last_clone() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("value");
        fs::write(&path, "1").unwrap();
        let watched = Watched::load(path, INTERVAL, parse_number).unwrap();
        let mut reloads = watched.reloads();
        let weak = Arc::downgrade(&watched.shared);
        let clone = watched.clone();
        drop(watched);
        assert!(weak.upgrade().is_some());
        drop(clone);
        assert!(weak.upgrade().is_none());
        // The sender lived in the shared state, so the receiver sees it closed.
        tokio::time::timeout(PATIENCE, reloads.changed())
            .await
            .expect("the channel did not close")
            .unwrap_err();
    }
}
