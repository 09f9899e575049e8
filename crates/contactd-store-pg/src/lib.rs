//! The PostgreSQL event store: the only crate that knows SQL and the persisted event format.
//! It implements the application's [`ContactStore`] port: events appended at an expected
//! version together with the inline read model, name claims, quota and client-token memory, in
//! one statement and so in one transaction.

mod activity;
mod append;
mod codes;
mod deadline;
mod error;
mod forget;
mod group_commit;
mod group_read;
mod jobs;
mod keys;
mod log;
mod member_contacts;
mod outbox;
mod projection;
mod read;
mod rebuild;
mod subscription;
mod work;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use contactd_app::{
    Append, AppendError, AsOf, AuditLog, ContactStore, DeletionProgress, DirectoryAppend,
    DirectoryStore, EventLog, EventMetadata, Forget, IdempotencyKey, JobOutcome, LifecycleJob,
    LifecycleJobs, LinkedCode, ListedContact, LogPosition, MemberContacts, Opened, Outbox,
    OutboxMessage, Page, PageRequest, PoolUsage, RecordedEvent, Recording, RememberedCall,
    StartPoint, StoreError, VerificationOutbox,
};
use contactd_domain::{
    AccountId, Contact, ContactId, DeliveryEvent, Directory, MemberId, VerificationId,
};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::watch;
use uuid::Uuid;

use crate::deadline::Budget;
use crate::group_commit::{Update, UpdateGroups};
use crate::group_read::{Load, LoadGroups};
use contactd_store_core::KeyCache;
use contactd_store_core::grouping::Grouped;

pub use contactd_store_core::{
    EventSealing, INLINE_READ_MODEL, KeyRotation, Keyring, MasterKey, RebuildReport,
};
pub use contactd_store_core::{canonical_payload, decode_event, encode_event, event_json_line};
pub use projection::PgLease;
pub use rebuild::{rebuild_contacts, rebuild_projection};

pub use contactd_store_core::DEFAULT_POLL_INTERVAL;
pub use subscription::{Subscription, relay_log_notifications};
pub use work::PgWork;

/// The schema migrations, embedded at build time from the repository's `migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Connection settings of the store.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Opens a pool on `database_url`. Connections are not pinged on checkout: a broken one fails
/// its statement, which the caller sees as a transient error, and the pool replaces it.
///
/// Prepared statements always run their generic plan. Every statement of this crate finds its
/// rows by key or key range, so the best plan does not depend on the values; but the grouped
/// statements take arrays whose length changes with every call, which made PostgreSQL plan
/// them afresh each time (about a millisecond each) instead of reusing the plan.
pub async fn connect(database_url: &str, settings: &PoolSettings) -> Result<PgPool, sqlx::Error> {
    connect_capped(database_url, settings, None).await
}

/// [`connect`], with every connection's session `statement_timeout` set to `statement_timeout`
/// (the server's longest call; `None` or zero: no limit), so that no statement of a call outlives
/// the longest call. It is a startup parameter of the connection: it costs no round trip. Give
/// the store the same cap ([`PgStore::statement_timeout`]) so that it shortens only the
/// statements of calls with less time left.
pub async fn connect_capped(
    database_url: &str,
    settings: &PoolSettings,
    statement_timeout: Option<Duration>,
) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = database_url.parse()?;
    let statement_timeout = statement_timeout.map_or(0, |cap| cap.as_millis().max(1));
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .connect_with(options.application_name("contactd").options([
            ("plan_cache_mode", "force_generic_plan".to_owned()),
            ("statement_timeout", statement_timeout.to_string()),
        ]))
        .await
}

/// Applies the migrations not yet applied.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// How many groups of updates are written at once, by default (see [`PgStore::group_commit`]).
/// One: while a group commits the next one gathers, and a larger group costs PostgreSQL less
/// per update than two smaller ones written side by side (BENCHMARKS.md).
pub const DEFAULT_GROUP_WRITERS: usize = 1;

/// How many groups of reads run at once, by default (see [`PgStore::group_reads`]). One, for
/// the same reason as [`DEFAULT_GROUP_WRITERS`].
pub const DEFAULT_GROUP_READERS: usize = 1;

/// The event store on a PostgreSQL pool. Clones share the pool, the signals and the groups.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Concurrent updates written together; `None` writes each append on its own.
    update_groups: Option<Arc<Grouped<UpdateGroups>>>,
    /// Concurrent reads of contacts answered together; `None` reads each on its own.
    load_groups: Option<Arc<Grouped<LoadGroups>>>,
    /// Bumped when this process's appends end: the relay announces them to other processes.
    local_appends: Arc<watch::Sender<u64>>,
    /// Bumped when the log may have grown, here or elsewhere: wakes this process's readers.
    log_changes: Arc<watch::Sender<u64>>,
    /// Bumped when this process's outbox projection recorded messages: wakes its dispatcher.
    outbox_recorded: Arc<watch::Sender<u64>>,
    /// Bumped when this process's member-contacts projection recorded lifecycle jobs: wakes
    /// its lifecycle worker.
    jobs_recorded: Arc<watch::Sender<u64>>,
    /// The pool's session `statement_timeout`: a call with less time left than this lowers
    /// its statement's timeout; `None` when the pool has none.
    statement_cap: Option<Duration>,
    /// How many groups of updates and of reads run at once, kept to rebuild the groups when
    /// the cap changes.
    group_writers: usize,
    group_readers: usize,
    /// Where the groups report their sizes and their waits for a connection.
    recording: Recording,
    /// The master keys that wrap the contacts' data keys (ADR 13).
    keyring: Arc<Keyring>,
    /// The data keys this process sealed with lately (writes only).
    keys: Arc<KeyCache>,
}

/// How many data keys a process keeps to seal with, beyond the contacts it remembers.
const CACHED_KEYS: usize = 16_384;

impl PgStore {
    /// The store on `pool`, sealing personal data under data keys that `keyring` wraps.
    pub fn new(pool: PgPool, keyring: Keyring) -> Self {
        Self {
            keyring: Arc::new(keyring),
            keys: Arc::new(KeyCache::new(CACHED_KEYS)),
            update_groups: Some(UpdateGroups::new(
                pool.clone(),
                None,
                DEFAULT_GROUP_WRITERS,
                Recording::none(),
            )),
            load_groups: Some(LoadGroups::new(
                pool.clone(),
                None,
                DEFAULT_GROUP_READERS,
                Recording::none(),
            )),
            pool,
            local_appends: Arc::new(watch::Sender::new(0)),
            log_changes: Arc::new(watch::Sender::new(0)),
            outbox_recorded: Arc::new(watch::Sender::new(0)),
            jobs_recorded: Arc::new(watch::Sender::new(0)),
            statement_cap: None,
            group_writers: DEFAULT_GROUP_WRITERS,
            group_readers: DEFAULT_GROUP_READERS,
            recording: Recording::none(),
        }
    }

    /// Reports the groups' sizes and their waits for a connection to `recording`.
    pub fn recording(mut self, recording: Recording) -> Self {
        self.recording = recording;
        let (writers, readers) = (self.group_writers, self.group_readers);
        self.group_commit(writers).group_reads(readers)
    }

    /// The pool's connections now, for a gauge read at scrape time.
    pub fn pool_usage(&self) -> PoolUsage {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        PoolUsage {
            in_use: self.pool.size().saturating_sub(idle),
            idle,
            max: self.pool.options().get_max_connections(),
        }
    }

    /// The session `statement_timeout` the pool was opened with ([`connect_capped`]; `None` or
    /// zero: none). A call whose deadline ([`contactd_app::deadline`]) leaves less than this
    /// runs its statements with `SET LOCAL statement_timeout` to what is left, in the same round
    /// trip as their `BEGIN`; other calls send nothing more. A call whose deadline has passed
    /// starts no statement.
    pub fn statement_timeout(mut self, cap: Option<Duration>) -> Self {
        self.statement_cap = cap.filter(|cap| !cap.is_zero());
        let (writers, readers) = (self.group_writers, self.group_readers);
        self.group_commit(writers).group_reads(readers)
    }

    /// The live member-contacts projection, recording lifecycle jobs and waking this store's
    /// lifecycle worker.
    pub fn member_contacts(&self) -> MemberContacts {
        MemberContacts::live(self.jobs_recorded.clone())
    }

    /// The projection that records verification messages in this store's outbox, waking this
    /// store's dispatcher.
    pub fn verification_outbox(&self) -> VerificationOutbox {
        VerificationOutbox::new(self.outbox_recorded.clone())
    }

    /// Writes concurrent updates in groups, at most `writers` groups at once, each in one
    /// statement and one transaction; 0 writes every append on its own.
    pub fn group_commit(mut self, writers: usize) -> Self {
        self.group_writers = writers;
        self.update_groups = (writers > 0).then(|| {
            UpdateGroups::new(
                self.pool.clone(),
                self.statement_cap,
                writers,
                self.recording.clone(),
            )
        });
        self
    }

    /// Answers concurrent reads of contacts together, at most `readers` groups at once, each
    /// with one `SELECT`; 0 reads every contact on its own.
    pub fn group_reads(mut self, readers: usize) -> Self {
        self.group_readers = readers;
        self.load_groups = (readers > 0).then(|| {
            LoadGroups::new(
                self.pool.clone(),
                self.statement_cap,
                readers,
                self.recording.clone(),
            )
        });
        self
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
            &self.pool,
            &self.keyring,
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
                    &self.pool,
                    &self.keyring,
                    account,
                    stream_id,
                    0,
                    version,
                    u32::MAX,
                )
                .await
            }
            AsOf::Time(time) => {
                log::read_stream_until(&self.pool, &self.keyring, account, stream_id, time).await
            }
        }
    }

    /// What the current call's statements may take.
    fn budget(&self) -> Budget {
        Budget::now(self.statement_cap)
    }

    fn appended(&self) {
        self.local_appends.send_modify(|n| *n = n.wrapping_add(1));
        self.log_changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A whole stream in version order, scoped to the account like every read.
    pub async fn read_stream(
        &self,
        account: &AccountId,
        stream_id: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        log::read_stream(
            &self.pool,
            &self.keyring,
            account,
            stream_id,
            0,
            u64::MAX,
            u32::MAX,
        )
        .await
    }

    pub(crate) fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Rewraps every data key under the keyring's current master key (ADR 13); no event is
    /// touched.
    pub async fn rotate_keys(&self) -> Result<KeyRotation, StoreError> {
        keys::rotate(&self.pool, &self.keyring).await
    }

    /// Seals in place the personal fields of the events stored in clear before encryption
    /// (ADR 13). A second run finds nothing to seal.
    pub async fn seal_clear_events(&self) -> Result<EventSealing, StoreError> {
        forget::seal_clear_events(&self.pool, &self.keyring).await
    }
}

impl ContactStore for PgStore {
    async fn load_contact(
        &self,
        account_id: &AccountId,
        contact_id: &ContactId,
    ) -> Result<Option<Contact>, StoreError> {
        match &self.load_groups {
            Some(groups) => {
                groups
                    .submit(Load {
                        account_id: account_id.clone(),
                        contact_id: contact_id.clone(),
                        deadline: contactd_app::deadline::current(),
                    })
                    .await
            }
            None => read::load_contact(&self.pool, self.budget(), account_id, contact_id).await,
        }
    }

    #[tracing::instrument(name = "append", level = "debug", skip_all, fields(contact_id = %append.contact.contact_id, events = append.events.len(), expected_version = append.expected_version))]
    async fn append(&self, append: Append<'_>) -> Result<(), AppendError> {
        let sealing = keys::sealing_key(&self.pool, &self.keyring, &self.keys, &append).await?;
        let sealed_for = sealing.as_ref().map(|_| append.contact.contact_id.clone());
        let result = match &self.update_groups {
            Some(groups)
                if group_commit::groupable(&append)
                    && sealing.as_ref().is_none_or(|s| s.new.is_none()) =>
            {
                match Update::copy(&append, sealing.as_ref().map(|s| &s.key)) {
                    Ok(update) => groups.submit(update).await,
                    Err(error) => Err(error),
                }
            }
            _ => append::append(&self.pool, self.budget(), append, sealing.as_ref()).await,
        };
        if let (Ok(()), Some(sealing), Some(contact_id)) = (&result, sealing, sealed_for) {
            self.keys.insert(contact_id.as_str(), sealing.key);
        }
        // Failed appends wake readers too: a transaction that ended, even by rolling back, may
        // have been what held back other transactions' events.
        self.appended();
        result
    }

    #[tracing::instrument(name = "forget", level = "debug", skip_all, fields(contact_id = %forget.contact_id))]
    async fn forget(&self, forget: Forget<'_>) -> Result<(), AppendError> {
        let contact_id = forget.contact_id.clone();
        let result = forget::forget(&self.pool, &self.keyring, forget).await;
        // Whatever the outcome: a key that may be destroyed is not sealed with again.
        self.keys.evict(contact_id.as_str());
        self.appended();
        result
    }

    async fn list_contacts(
        &self,
        account_id: &AccountId,
        only: Option<&ContactId>,
        member: Option<&MemberId>,
        page: PageRequest,
    ) -> Result<Page<ListedContact>, StoreError> {
        read::list_contacts(&self.pool, account_id, only, member, page).await
    }

    async fn recall(
        &self,
        key: &IdempotencyKey,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<RememberedCall>, StoreError> {
        read::recall(&self.pool, key, since).await
    }

    async fn remember(&self, call: &RememberedCall) -> Result<(), AppendError> {
        append::remember(&self.pool, self.budget(), call).await
    }

    async fn claim_code_try(
        &self,
        account_id: &AccountId,
        verification_id: VerificationId,
        max_tries: u32,
    ) -> Result<bool, StoreError> {
        codes::claim_code_try(
            &self.pool,
            self.budget(),
            account_id,
            verification_id,
            max_tries,
        )
        .await
    }

    async fn find_link(&self, link_hash: &[u8; 32]) -> Result<Option<LinkedCode>, StoreError> {
        codes::find_link(&self.pool, self.budget(), link_hash).await
    }
}

impl DirectoryStore for PgStore {
    async fn load_directory(
        &self,
        account_id: &AccountId,
    ) -> Result<Option<Directory>, StoreError> {
        read::load_directory(&self.pool, self.budget(), account_id).await
    }

    async fn append_directory(&self, append: DirectoryAppend<'_>) -> Result<(), AppendError> {
        let result = append::append_directory(&self.pool, self.budget(), append).await;
        self.appended();
        result
    }
}

impl LifecycleJobs for PgStore {
    async fn claim_jobs(
        &self,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<LifecycleJob>, StoreError> {
        jobs::claim_jobs(&self.pool, owner, lease, limit).await
    }

    async fn settle_job(
        &self,
        owner: &str,
        job: &LifecycleJob,
        outcome: JobOutcome,
    ) -> Result<bool, StoreError> {
        jobs::settle_job(&self.pool, owner, job, outcome).await
    }

    async fn deletion_progress(
        &self,
        account_id: &AccountId,
        deletion_id: Uuid,
    ) -> Result<DeletionProgress, StoreError> {
        jobs::deletion_progress(&self.pool, account_id, deletion_id).await
    }

    async fn next_job_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        jobs::next_job_due(&self.pool).await
    }

    fn recorded_jobs(&self) -> watch::Receiver<u64> {
        self.jobs_recorded.subscribe()
    }
}

impl Outbox for PgStore {
    async fn claim_due(
        &self,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        outbox::claim_due(&self.pool, owner, lease, limit).await
    }

    async fn record(
        &self,
        owner: &str,
        message: &OutboxMessage,
        event: &DeliveryEvent,
        event_id: Uuid,
        metadata: &EventMetadata,
    ) -> Result<bool, StoreError> {
        let recorded = outbox::record(&self.pool, owner, message, event, event_id, metadata).await;
        self.appended();
        recorded
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        outbox::next_due(&self.pool).await
    }

    async fn pending(&self) -> Result<u64, StoreError> {
        outbox::pending(&self.pool).await
    }

    fn recorded_messages(&self) -> watch::Receiver<u64> {
        self.outbox_recorded.subscribe()
    }
}

impl EventLog for PgStore {
    async fn read_log(
        &self,
        after: LogPosition,
        account: Option<&AccountId>,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut connection = self
            .pool
            .acquire()
            .await
            .map_err(crate::error::failed("reading the log failed"))?;
        log::read_log(
            &mut connection,
            &self.keyring,
            after,
            account,
            limit,
            Opened::All,
        )
        .await
    }

    async fn read_stream_log(
        &self,
        stream_id: &str,
        after: LogPosition,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        log::read_stream_log(&self.pool, &self.keyring, stream_id, after, limit).await
    }

    async fn start_at(&self, global_position: i64) -> Result<StartPoint, StoreError> {
        log::start_at(&self.pool, global_position).await
    }

    /// Before the first transaction that had not started yet: its events, and those of every
    /// later one, sort at or after it.
    async fn log_end(&self) -> Result<LogPosition, StoreError> {
        let (_, xmax) = log::snapshot_bounds(&self.pool).await?;
        Ok(LogPosition::from_parts(xmax, i64::MIN))
    }

    /// Once every transaction below the end has ended.
    async fn readable_to(&self, end: LogPosition) -> Result<bool, StoreError> {
        let (xmin, _) = log::snapshot_bounds(&self.pool).await?;
        Ok(xmin >= end.parts().0)
    }

    /// On a connection of its own, so that a pool busy with calls is not taken for a
    /// database out of reach.
    async fn readiness(&self) -> Result<(), StoreError> {
        use sqlx::Connection;
        let checking = crate::error::failed("checking the schema");
        let mut connection = sqlx::PgConnection::connect_with(&self.pool.connect_options())
            .await
            .map_err(&checking)?;
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&mut connection)
                .await
                .map_err(&checking)?;
        let _ = connection.close().await;
        contactd_store_core::schema_ready(applied, MIGRATOR.iter().map(|m| m.version))
    }
}

impl AuditLog for PgStore {
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
