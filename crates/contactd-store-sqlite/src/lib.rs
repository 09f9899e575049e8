//! The SQLite event store: the application's store ports on one database file, for one process.
//! The same tables and guarantees as the PostgreSQL store where they apply to a single process:
//! an append-only log whose positions commit in order, each append all or nothing with its
//! read-model row, name claims, quota, client token and a send's code and limits; the outbox
//! and the lifecycle jobs claimed with committed leases.
//!
//! SQLite has one writer at a time, so the store has one: a pool of one connection that every
//! write goes through, beside a pool of readers that WAL mode lets read while it writes.
//! Concurrent appends are written by it in groups, one transaction and one fsync per group
//! (`group_commit.rs`). A lock file held for the store's life keeps a second process (or a
//! second store of this one) off the database, which is what makes "one writer" true and lets
//! the store wake its readers itself instead of through `LISTEN`/`NOTIFY`.
//!
//! Personal fields are stored sealed under a data key per contact, wrapped by the master keys
//! the store is opened with (ADR 13, `keys.rs`); forgetting a contact destroys its key and
//! scrubs the file of what the read models kept of it (`forget.rs`).

mod append;
mod codes;
mod error;
mod forget;
mod group_commit;
mod jobs;
mod keys;
mod lock;
mod log;
mod outbox;
mod projections;
mod read;
mod rebuild;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use contactd_app::{
    Append, AppendError, AsOf, AuditLog, ContactStore, DeletionProgress, DirectoryAppend,
    DirectoryStore, EventLog, EventMetadata, Forget, IdempotencyKey, JobOutcome, LifecycleJob,
    LifecycleJobs, LinkedCode, ListedContact, LogPosition, Outbox, OutboxMessage, Page,
    PageRequest, PoolUsage, RecordedEvent, Recording, RememberedCall, StartPoint, StoreError,
};
use contactd_domain::{
    AccountId, Contact, ContactId, DeliveryEvent, Directory, MemberId, VerificationId,
};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::group_commit::{WriteGroups, WriteRef};
use crate::keys::Keys;
use crate::lock::LockFile;
use contactd_store_core::grouping::Grouped;

pub use contactd_store_core::DEFAULT_POLL_INTERVAL;
pub use contactd_store_core::{
    EventSealing, INLINE_READ_MODEL, KeyRotation, Keyring, MasterKey, RebuildReport,
};
pub use contactd_store_core::{canonical_payload, decode_event, encode_event, event_json_line};
pub use projections::{SqliteLease, SqliteWork, rebuild_projection};
pub use rebuild::rebuild_contacts;

/// A reader following this store's log: woken by the store's own writes (one process holds
/// the database, so there is no one else to hear from).
pub type Subscription = contactd_store_core::Subscription<SqliteStore>;

/// The schema migrations, embedded at build time from the repository's `migrations/sqlite`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How the store connects.
#[derive(Debug, Clone)]
pub struct SqliteSettings {
    /// Connections of the read pool. Readers never wait for the writer (WAL), only for each
    /// other's connections.
    pub read_connections: u32,
    /// How long a call waits for a connection: a reader, or the writer's one connection.
    pub acquire_timeout: Duration,
    /// How long a statement waits for a lock another connection holds (SQLite's
    /// `busy_timeout`) before it fails as transient: a checkpoint, or a tool writing to the
    /// file from outside.
    pub busy_timeout: Duration,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        Self {
            read_connections: 4,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the store did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("creating the database's directory {path} failed")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the lock file {path} could not be opened or locked")]
    LockFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another contactd is using this data directory: {lock_file} is locked (by another \
         process, or by a store this process opened already)"
    )]
    Locked { lock_file: PathBuf },
    #[error("opening the SQLite database {path} failed")]
    Connect {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("applying the migrations to the SQLite database {path} failed")]
    Migrate {
        path: PathBuf,
        #[source]
        source: MigrateError,
    },
}

/// The database file a `sqlite:` URL names: `sqlite://path`, `sqlite:path` (a query string
/// such as `?mode=rwc` is dropped: the store chooses its own options). `None` for another
/// scheme, and for an in-memory database, which a store with a writer and readers on
/// separate connections cannot share.
pub fn database_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

/// The lock file that [`SqliteStore::open`] holds for `database`: `<database file>.lock`.
pub fn lock_file_path(database: &Path) -> PathBuf {
    lock::lock_path(database)
}

/// The event store on a SQLite database file. Clones share the connections, the signals, the
/// group commit and the lock file, which is released when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    reads: SqlitePool,
    /// One connection: SQLite's one writer, taken by every write in turn.
    writes: SqlitePool,
    /// Concurrent writes committed together; `None` commits each on its own.
    write_groups: Option<Arc<Grouped<WriteGroups>>>,
    /// Bumped when this store's writes have added to the log: wakes its readers.
    pub(crate) log_changes: Arc<watch::Sender<u64>>,
    /// Bumped when this store's outbox projection recorded messages: wakes its dispatcher.
    pub(crate) outbox_recorded: Arc<watch::Sender<u64>>,
    /// Bumped when this store's member-contacts projection recorded lifecycle jobs: wakes its
    /// lifecycle worker.
    pub(crate) jobs_recorded: Arc<watch::Sender<u64>>,
    /// `None` for a store opened only to read (see [`SqliteStore::open_to_read`]).
    lock: Option<Arc<LockFile>>,
    /// Where the group commit reports its sizes and its waits for the writer.
    recording: Recording,
    /// The master keys that wrap the contacts' data keys, and the data keys this store sealed
    /// with lately (ADR 13).
    keys: Arc<Keys>,
}

impl SqliteStore {
    /// Opens (creating it and its directory if need be) the database at `path`, applies the
    /// migrations not yet applied, and holds `<path>.lock` until the last clone is dropped.
    /// Fails at once if another store, in this process or another, holds the lock.
    ///
    /// Every connection runs in WAL mode with `synchronous=FULL` (a write acknowledged is on
    /// disk, power loss included), foreign keys enforced and a busy timeout. Readers are
    /// `query_only`: only the writer's connection can change the file. The writer runs with
    /// `secure_delete`, so that what a forgetting deletes is overwritten in the file rather
    /// than left in its free space.
    ///
    /// Personal data is sealed under data keys that `keyring` wraps (ADR 13).
    pub async fn open(
        path: &Path,
        settings: &SqliteSettings,
        keyring: Keyring,
    ) -> Result<Self, OpenError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| OpenError::Directory {
                path: parent.to_owned(),
                source,
            })?;
        }
        // Before the database is touched: a second process must not migrate under the first.
        let lock = LockFile::acquire(path)?;
        let connect = |source| OpenError::Connect {
            path: path.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(settings.busy_timeout)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Full);
        // Never closed for idleness or age: the one writer is always there, and keeping a
        // connection open keeps the WAL and its index from being torn down and rebuilt.
        let writes = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(settings.acquire_timeout)
            .test_before_acquire(false)
            .connect_with(
                options
                    .clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .pragma("secure_delete", "ON"),
            )
            .await
            .map_err(connect)?;
        MIGRATOR
            .run(&writes)
            .await
            .map_err(|source| OpenError::Migrate {
                path: path.to_owned(),
                source,
            })?;
        // The journal mode is the file's, set by the writer: readers leave it alone.
        let reads = SqlitePoolOptions::new()
            .max_connections(settings.read_connections.max(1))
            .acquire_timeout(settings.acquire_timeout)
            .test_before_acquire(false)
            .connect_with(options.pragma("query_only", "ON"))
            .await
            .map_err(connect)?;
        let keys = Arc::new(Keys::new(keyring));
        Ok(Self {
            write_groups: Some(WriteGroups::new(
                writes.clone(),
                keys.clone(),
                Recording::none(),
            )),
            keys,
            reads,
            writes,
            log_changes: Arc::new(watch::Sender::new(0)),
            outbox_recorded: Arc::new(watch::Sender::new(0)),
            jobs_recorded: Arc::new(watch::Sender::new(0)),
            lock: Some(Arc::new(lock)),
            recording: Recording::none(),
        })
    }

    /// Opens an existing database to read it only, beside the process that holds it: no lock
    /// is taken and nothing is migrated, and every connection is `query_only`, so that an
    /// auditor's replay can run while the service serves (WAL readers never block the writer).
    /// Any write through this store fails.
    pub async fn open_to_read(
        path: &Path,
        settings: &SqliteSettings,
        keyring: Keyring,
    ) -> Result<Self, OpenError> {
        let connect = |source| OpenError::Connect {
            path: path.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(settings.busy_timeout)
            .pragma("query_only", "ON");
        let pool = |connections: u32| {
            SqlitePoolOptions::new()
                .max_connections(connections)
                .acquire_timeout(settings.acquire_timeout)
                .test_before_acquire(false)
                .connect_with(options.clone())
        };
        let reads = pool(settings.read_connections.max(1))
            .await
            .map_err(connect)?;
        let writes = pool(1).await.map_err(connect)?;
        Ok(Self {
            keys: Arc::new(Keys::new(keyring)),
            write_groups: None,
            reads,
            writes,
            log_changes: Arc::new(watch::Sender::new(0)),
            outbox_recorded: Arc::new(watch::Sender::new(0)),
            jobs_recorded: Arc::new(watch::Sender::new(0)),
            lock: None,
            recording: Recording::none(),
        })
    }

    /// Commits concurrent appends together (`writers > 0`, the default), one transaction for
    /// each group, or each append on its own (0). SQLite has one writer, so any number above
    /// zero means the one group writer; the count is taken for the PostgreSQL store's sake.
    pub fn group_commit(mut self, writers: usize) -> Self {
        self.write_groups = (writers > 0).then(|| {
            WriteGroups::new(
                self.writes.clone(),
                self.keys.clone(),
                self.recording.clone(),
            )
        });
        self
    }

    /// Reports the group commit's sizes and its waits for the writer to `recording`.
    pub fn recording(mut self, recording: Recording) -> Self {
        self.recording = recording;
        let writers = usize::from(self.write_groups.is_some());
        self.group_commit(writers)
    }

    /// The connections of both pools (the readers' and the one writer's) now, for a gauge
    /// read at scrape time.
    pub fn pool_usage(&self) -> PoolUsage {
        let usage = |pool: &SqlitePool| {
            let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
            PoolUsage {
                in_use: pool.size().saturating_sub(idle),
                idle,
                max: pool.options().get_max_connections(),
            }
        };
        let (reads, writes) = (usage(&self.reads), usage(&self.writes));
        PoolUsage {
            in_use: reads.in_use + writes.in_use,
            idle: reads.idle + writes.idle,
            max: reads.max + writes.max,
        }
    }

    /// The lock file this store holds (`None` when opened only to read).
    pub fn lock_file(&self) -> Option<&Path> {
        self.lock.as_deref().map(LockFile::path)
    }

    /// The readers' pool (`query_only` connections).
    pub fn read_pool(&self) -> &SqlitePool {
        &self.reads
    }

    /// The writer's pool: one connection, which every write of the store takes in turn. A
    /// transaction on it holds every other write back until it ends.
    pub fn write_pool(&self) -> &SqlitePool {
        &self.writes
    }

    /// Closes every connection of the store (and of its clones), so that SQLite checkpoints
    /// the WAL into the database file before the process exits. The lock is still held until
    /// the last clone is dropped.
    pub async fn close(&self) {
        self.reads.close().await;
        self.writes.close().await;
    }

    /// Follows the log (or one account's part of it) from `start`.
    pub fn subscribe(&self, account: Option<AccountId>, start: StartPoint) -> Subscription {
        Subscription::new(self.clone(), self.log_changes.subscribe(), account, start)
    }

    /// Up to `limit` events of a stream with versions after `after_version`, in version order.
    pub async fn read_stream_page(
        &self,
        account: &AccountId,
        stream_id: &str,
        after_version: u64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        log::read_stream(
            &self.reads,
            self.keyring(),
            account,
            stream_id,
            after_version,
            u64::MAX,
            limit,
        )
        .await
    }

    /// A stream's events up to a version, or up to a time.
    pub async fn read_stream_as_of(
        &self,
        account: &AccountId,
        stream_id: &str,
        as_of: AsOf,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        match as_of {
            AsOf::Version(version) => {
                log::read_stream(
                    &self.reads,
                    self.keyring(),
                    account,
                    stream_id,
                    0,
                    version,
                    u32::MAX,
                )
                .await
            }
            AsOf::Time(time) => {
                log::read_stream_until(&self.reads, self.keyring(), account, stream_id, time).await
            }
        }
    }

    /// A whole stream in version order, scoped to the account like every read.
    pub async fn read_stream(
        &self,
        account: &AccountId,
        stream_id: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        log::read_stream(
            &self.reads,
            self.keyring(),
            account,
            stream_id,
            0,
            u64::MAX,
            u32::MAX,
        )
        .await
    }

    /// The master keys this store opens and seals with.
    pub(crate) fn keyring(&self) -> &Keyring {
        &self.keys.keyring
    }

    /// Rewraps every data key under the keyring's current master key (ADR 13), a batch per
    /// transaction; no event is touched.
    pub async fn rotate_keys(&self) -> Result<KeyRotation, StoreError> {
        keys::rotate(&self.writes, self.keyring()).await
    }

    /// Seals in place the personal fields of the events stored in clear before encryption
    /// (ADR 13), a batch per transaction. A second run finds nothing to seal.
    pub async fn seal_clear_events(&self) -> Result<EventSealing, StoreError> {
        let sealed = forget::seal_clear_events(&self.writes, self.keyring()).await;
        // The clear pages are still in the WAL until a checkpoint copies the sealed ones over.
        self.checkpoint().await;
        sealed
    }

    /// Copies the WAL into the database file and empties it, so that the old images of the
    /// pages a forgetting (or a sealing in place) changed go from the disk too. Best effort:
    /// a reader still in an old snapshot holds it back (past the busy timeout), and SQLite's
    /// own checkpoints overwrite the WAL as it is reused.
    async fn checkpoint(&self) {
        let done: Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.writes)
                .await;
        match done {
            Ok((0, _, _)) => {}
            Ok((_, wal, copied)) => tracing::warn!(
                wal,
                copied,
                "a checkpoint after removing personal data was held back by a reader; the WAL \
                 keeps old pages until the next one"
            ),
            Err(error) => {
                tracing::warn!(%error, "a checkpoint after removing personal data failed")
            }
        }
    }

    /// Wakes this store's readers of the log.
    pub(crate) fn appended(&self) {
        self.log_changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    async fn write(&self, write: WriteRef<'_>) -> Result<(), AppendError> {
        let result = match &self.write_groups {
            Some(groups) => groups.submit(write.to_owned()).await,
            None => group_commit::write_alone(&self.writes, &self.keys, write).await,
        };
        // A refusal wrote nothing; anything else may have (a failed commit's outcome is not
        // always known), and a reader woken for nothing only reads nothing.
        let refused = matches!(&result, Err(error) if !matches!(error, AppendError::Store(_)));
        if !refused {
            self.appended();
        }
        result
    }
}

/// `now + lease`, for a lease's end. A lease too long for the calendar ends at the last time
/// the stored format orders correctly.
pub(crate) fn later(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(lease)
        .ok()
        .and_then(|lease| now.checked_add_signed(lease))
        .filter(|end| end.timestamp() < LAST_ORDERED_SECOND)
        .or_else(|| DateTime::from_timestamp(LAST_ORDERED_SECOND, 0))
        .unwrap_or(now)
}

/// 9999-12-31T23:59:59Z: times are stored as text, which orders as time only for four-digit
/// years.
const LAST_ORDERED_SECOND: i64 = 253_402_300_799;

impl ContactStore for SqliteStore {
    async fn load_contact(
        &self,
        account_id: &AccountId,
        contact_id: &ContactId,
    ) -> Result<Option<Contact>, StoreError> {
        read::load_contact(&self.reads, account_id, contact_id).await
    }

    #[tracing::instrument(name = "append", level = "debug", skip_all, fields(contact_id = %append.contact.contact_id, events = append.events.len(), expected_version = append.expected_version))]
    async fn append(&self, append: Append<'_>) -> Result<(), AppendError> {
        self.write(WriteRef::Contact(append)).await
    }

    #[tracing::instrument(name = "forget", level = "debug", skip_all, fields(contact_id = %forget.contact_id))]
    async fn forget(&self, forget: Forget<'_>) -> Result<(), AppendError> {
        let contact_id = forget.contact_id.clone();
        let result = forget::forget(&self.writes, self.keyring(), forget).await;
        // Whatever the outcome: a key that may be destroyed is never sealed with again.
        self.keys.cache.evict(contact_id.as_str());
        let refused = matches!(&result, Err(error) if !matches!(error, AppendError::Store(_)));
        if !refused {
            self.appended();
        }
        if result.is_ok() {
            self.checkpoint().await;
        }
        result
    }

    async fn list_contacts(
        &self,
        account_id: &AccountId,
        only: Option<&ContactId>,
        member: Option<&MemberId>,
        page: PageRequest,
    ) -> Result<Page<ListedContact>, StoreError> {
        read::list_contacts(&self.reads, account_id, only, member, page).await
    }

    async fn recall(
        &self,
        key: &IdempotencyKey,
        since: DateTime<Utc>,
    ) -> Result<Option<RememberedCall>, StoreError> {
        read::recall(&self.reads, &self.writes, key, since).await
    }

    async fn remember(&self, call: &RememberedCall) -> Result<(), AppendError> {
        self.write(WriteRef::Remember(call)).await
    }

    async fn claim_code_try(
        &self,
        account_id: &AccountId,
        verification_id: VerificationId,
        max_tries: u32,
    ) -> Result<bool, StoreError> {
        codes::claim_code_try(&self.writes, account_id, verification_id, max_tries).await
    }

    async fn find_link(&self, link_hash: &[u8; 32]) -> Result<Option<LinkedCode>, StoreError> {
        codes::find_link(&self.reads, link_hash).await
    }
}

impl DirectoryStore for SqliteStore {
    async fn load_directory(
        &self,
        account_id: &AccountId,
    ) -> Result<Option<Directory>, StoreError> {
        read::load_directory(&self.reads, account_id).await
    }

    async fn append_directory(&self, append: DirectoryAppend<'_>) -> Result<(), AppendError> {
        self.write(WriteRef::Directory(append)).await
    }
}

impl LifecycleJobs for SqliteStore {
    async fn claim_jobs(
        &self,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<LifecycleJob>, StoreError> {
        jobs::claim_jobs(&self.writes, owner, lease, limit).await
    }

    async fn settle_job(
        &self,
        owner: &str,
        job: &LifecycleJob,
        outcome: JobOutcome,
    ) -> Result<bool, StoreError> {
        jobs::settle_job(&self.writes, owner, job, outcome).await
    }

    async fn deletion_progress(
        &self,
        account_id: &AccountId,
        deletion_id: Uuid,
    ) -> Result<DeletionProgress, StoreError> {
        jobs::deletion_progress(&self.reads, account_id, deletion_id).await
    }

    async fn next_job_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        jobs::next_job_due(&self.reads).await
    }

    fn recorded_jobs(&self) -> watch::Receiver<u64> {
        self.jobs_recorded.subscribe()
    }
}

impl Outbox for SqliteStore {
    async fn claim_due(
        &self,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        outbox::claim_due(&self.writes, owner, lease, limit).await
    }

    async fn record(
        &self,
        owner: &str,
        message: &OutboxMessage,
        event: &DeliveryEvent,
        event_id: Uuid,
        metadata: &EventMetadata,
    ) -> Result<bool, StoreError> {
        let recorded =
            outbox::record(&self.writes, owner, message, event, event_id, metadata).await;
        if matches!(recorded, Ok(true)) {
            self.appended();
        }
        recorded
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        outbox::next_due(&self.reads).await
    }

    async fn pending(&self) -> Result<u64, StoreError> {
        outbox::pending(&self.reads).await
    }

    fn recorded_messages(&self) -> watch::Receiver<u64> {
        self.outbox_recorded.subscribe()
    }
}

impl EventLog for SqliteStore {
    async fn read_log(
        &self,
        after: LogPosition,
        account: Option<&AccountId>,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        log::read_log(
            &self.reads,
            self.keyring(),
            after,
            account,
            limit,
            contactd_app::Opened::All,
        )
        .await
    }

    async fn read_stream_log(
        &self,
        stream_id: &str,
        after: LogPosition,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        log::read_stream_log(&self.reads, self.keyring(), stream_id, after, limit).await
    }

    async fn start_at(&self, global_position: i64) -> Result<StartPoint, StoreError> {
        log::start_at(&self.reads, global_position).await
    }

    async fn log_end(&self) -> Result<LogPosition, StoreError> {
        log::log_end(&self.reads).await
    }

    async fn readable_to(&self, end: LogPosition) -> Result<bool, StoreError> {
        log::readable_to(&self.reads, end).await
    }

    async fn readiness(&self) -> Result<(), StoreError> {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.reads)
                .await
                .map_err(crate::error::failed("checking the schema"))?;
        contactd_store_core::schema_ready(applied, MIGRATOR.iter().map(|m| m.version))
    }
}

impl AuditLog for SqliteStore {
    type Subscription = Subscription;

    async fn stream_page(
        &self,
        account_id: &AccountId,
        stream_id: &str,
        after_version: u64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_page(account_id, stream_id, after_version, limit)
            .await
    }

    async fn stream_as_of(
        &self,
        account_id: &AccountId,
        stream_id: &str,
        as_of: AsOf,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_as_of(account_id, stream_id, as_of).await
    }

    async fn follow(
        &self,
        account_id: &AccountId,
        from_position: i64,
    ) -> Result<Subscription, StoreError> {
        let start = self.start_at(from_position).await?;
        Ok(self
            .subscribe(Some(account_id.clone()), start)
            .with_batch_size(contactd_store_core::FOLLOW_BATCH))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::database_path;

    #[test]
    fn a_sqlite_url_names_its_file_and_other_urls_none() {
        let path = |p: &str| Some(PathBuf::from(p));
        assert_eq!(
            database_path("sqlite:///var/lib/contactd/contactd.db"),
            path("/var/lib/contactd/contactd.db")
        );
        assert_eq!(
            database_path("sqlite://data/contactd.db"),
            path("data/contactd.db")
        );
        assert_eq!(
            database_path("sqlite:contactd.db?mode=rwc"),
            path("contactd.db")
        );
        assert_eq!(database_path("sqlite::memory:"), None);
        assert_eq!(database_path("sqlite://"), None);
        assert_eq!(database_path("postgres://localhost/contactd"), None);
    }
}
