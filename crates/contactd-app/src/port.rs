//! The ports: what the use cases need from persistence (the store, the audit log, the outbox
//! of verification messages) and from the world outside (the notifier that sends them). The
//! PostgreSQL adapter implements the store's; the delivery adapter the notifier.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use contactd_domain::{
    AccountId, Channel, ClientToken, Contact, ContactEvent, ContactId, DeleteStatus, DeliveryEvent,
    Directory, DirectoryEvent, DomainEvent, MemberId, VerificationCode, VerificationId,
    VerificationTarget,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::paging::{Page, PageRequest};

/// Who caused an event and why; stored beside every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMetadata {
    pub request_id: String,
    pub account_id: AccountId,
    pub caller: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub recorded_at: DateTime<Utc>,
}

/// An event about to be appended, with the id that makes it unique everywhere (and later the
/// idempotency key of the side effects it triggers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent<E = ContactEvent> {
    pub event_id: Uuid,
    pub event: E,
}

/// How an append moves the account's name claims (names are unique per account, ignoring case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameClaim {
    /// The name's key is unchanged.
    Keep,
    /// A new contact claims its name's key.
    Claim { key: String },
    /// A rename gives up one key and claims another.
    Move { from: String, to: String },
    /// A deleted contact gives its name up.
    Release { key: String },
}

/// The RPCs whose calls can be made idempotent with a client token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    AddMessageContact,
    UpdateMessageContact,
    SendEmailVerificationForMessageContact,
    SendPhoneVerificationForMessageContact,
    CancelMessageContactUpdate,
    ConfirmMessageContactVerification,
    DeleteMessageContact,
    AssociateMembers,
    DisassociateMembers,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::AddMessageContact => "AddMessageContact",
            Operation::UpdateMessageContact => "UpdateMessageContact",
            Operation::SendEmailVerificationForMessageContact => {
                "SendEmailVerificationForMessageContact"
            }
            Operation::SendPhoneVerificationForMessageContact => {
                "SendPhoneVerificationForMessageContact"
            }
            Operation::CancelMessageContactUpdate => "CancelMessageContactUpdate",
            Operation::ConfirmMessageContactVerification => "ConfirmMessageContactVerification",
            Operation::DeleteMessageContact => "DeleteMessageContact",
            Operation::AssociateMembers => "AssociateMembers",
            Operation::DisassociateMembers => "DisassociateMembers",
        }
    }
}

/// A client token's scope: the account and the RPC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    pub account_id: AccountId,
    pub operation: Operation,
    pub token: ClientToken,
}

/// What a successful call answered, kept so that a retry answers the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Added {
        request_id: String,
        contact: Box<Contact>,
    },
    /// A call whose response is only its request id (Update, the sends, Cancel, Confirm).
    Acknowledged { request_id: String },
    /// A delete: deleted at once, or deleting in the background.
    Deleted {
        request_id: String,
        status: DeleteStatus,
    },
    /// A binding or unbinding: each target named, and when it was bound or unbound.
    Bindings {
        request_id: String,
        members: Vec<BindingChange>,
    },
}

/// One target of an Associate or Disassociate call, as answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingChange {
    pub member_id: MemberId,
    pub modify_date: DateTime<Utc>,
}

/// How long a client token keeps its call's response.
pub const IDEMPOTENCY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A successful call remembered under its client token: the request's fingerprint (its fields
/// apart from the token, as the front end encodes them) and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberedCall {
    pub key: IdempotencyKey,
    pub fingerprint: Vec<u8>,
    pub outcome: Outcome,
    pub recorded_at: DateTime<Utc>,
}

/// One atomic append to a contact's stream, with everything that must commit with it.
#[derive(Debug, Clone)]
pub struct Append<'a> {
    /// The contact's state after the events: the inline read model's row. A contact whose
    /// status is then `Deleted` leaves the read model: its row goes and its quota counts down.
    pub contact: &'a Contact,
    /// The stream's version the events were decided on (0 for a new stream).
    pub expected_version: u64,
    pub events: &'a [NewEvent],
    pub metadata: &'a EventMetadata,
    pub name_claim: NameClaim,
    /// For a new contact: the account's quota of contacts not deleted.
    pub quota_limit: Option<u32>,
    pub remember: Option<&'a RememberedCall>,
    /// For a send: the code issued, and the limits its send counts against.
    pub code: Option<&'a CodeIssue>,
}

/// Which events a reader of the log needs with their personal fields readable (ADR 13). The
/// others read them as redacted and cost the store no key and no decryption: a projection that
/// keeps no personal data opens none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// Every event: the audit service, replays, the rebuild of the inline read models.
    All,
    /// Only the events of these types.
    Only(&'static [&'static str]),
}

impl Opened {
    pub fn opens(self, event_type: &str) -> bool {
        match self {
            Opened::All => true,
            Opened::Only(types) => types.contains(&event_type),
        }
    }
}

/// Forgetting a contact (ADR 13), all of it or nothing: its events at the expected version;
/// its row, name claim and place in the quota gone if it was not deleted yet; its data key
/// destroyed; what its stream still held in clear (events stored before encryption) sealed
/// in place under a key destroyed with it; and what the read models kept of the person
/// dropped: remembered calls naming the contact, its verification messages, the
/// integration events not yet published about it.
#[derive(Debug, Clone)]
pub struct Forget<'a> {
    pub contact_id: &'a ContactId,
    /// The stream's version the events were decided on.
    pub expected_version: u64,
    /// The name's uniqueness key while the contact still has its row (not deleted yet).
    pub live_name_key: Option<String>,
    pub events: &'a [NewEvent],
    pub metadata: &'a EventMetadata,
}

/// A code issued by a send, with what commits with its event: the row that counts its tries
/// and finds it by its link, and the send limits it counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeIssue {
    pub verification_id: VerificationId,
    pub channel: Channel,
    /// The SHA-256 of the confirmation link's token: the token itself is never stored.
    pub link_hash: [u8; 32],
    pub expires_at: DateTime<Utc>,
    pub limits: SendLimits,
}

/// The limits a send counts against, enforced by the database in the append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendLimits {
    /// The UTC day the send counts in, for the account.
    pub day: NaiveDate,
    pub per_account_day: u32,
    /// A keyed digest of the target: the window of its sends is kept without the address.
    pub target_digest: [u8; 32],
    pub per_target_minute: u32,
}

/// Why an append did not commit. Nothing of it is stored in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the stream moved past the expected version")]
    VersionConflict,
    #[error("another contact of the account holds the name")]
    NameAlreadyUsed,
    #[error("the account's contact quota is exhausted")]
    QuotaExceeded,
    #[error("another call already used the client token")]
    ClientTokenTaken,
    #[error("the send exceeds the account's or the target's limit")]
    SendLimitExceeded,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A technical failure of the store, with its cause kept for the logs (never for clients).
/// Cloning shares the cause: one failed statement may answer several grouped calls.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    message: String,
    transient: bool,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// A failure that may pass: a lost connection, an exhausted pool, a timeout.
    pub fn transient(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            transient: true,
            source: Some(Arc::new(source)),
        }
    }

    /// A failure that retrying will not mend: bad data, a bug, a broken schema.
    pub fn internal(
        message: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            message: message.into(),
            transient: false,
            source: source.map(Arc::from),
        }
    }

    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

/// A place in the global log, ordered as the log is read. Opaque outside the store that made
/// it: each store encodes its own order in the two numbers (PostgreSQL: the writing
/// transaction, then the position, since positions commit out of order (ADR 4); SQLite, whose
/// positions commit in order: the position twice). Everyone else only compares positions, keeps
/// them and hands them back to the store they came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    major: i64,
    minor: i64,
}

impl LogPosition {
    /// Before the first event.
    pub const START: LogPosition = LogPosition { major: 0, minor: 0 };

    /// For a store: the position it orders by these two numbers, the first one first.
    pub const fn from_parts(major: i64, minor: i64) -> Self {
        Self { major, minor }
    }

    /// For a store: the two numbers it encoded.
    pub const fn parts(self) -> (i64, i64) {
        (self.major, self.minor)
    }
}

/// An event as read back from the log: where it is, what it says (decoded through the
/// upcasters, and as stored), and who caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Where it is in the store's log order.
    pub position: LogPosition,
    /// Its number in the log, as clients see it: unique and increasing in the order the events
    /// were appended (not always in the order they committed).
    pub global_position: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: i32,
    /// The payload as stored, in its own schema version, rendered compactly with its keys in
    /// order (the same text whichever store holds it).
    pub payload_json: String,
    pub event: DomainEvent,
    pub metadata: EventMetadata,
}

impl RecordedEvent {
    /// The contact event, if this is one (and not, say, a delivery's).
    pub fn contact_event(&self) -> Option<&ContactEvent> {
        self.event.as_contact()
    }
}

/// A stream's contact events with the times they were recorded: what `Contact::fold` takes.
pub fn contact_history(
    events: &[RecordedEvent],
) -> impl Iterator<Item = (&ContactEvent, DateTime<Utc>)> {
    events
        .iter()
        .filter_map(|e| Some((e.contact_event()?, e.metadata.recorded_at)))
}

/// Where a reader asked to start "from global position P" begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartPoint {
    /// Read after this place in log order.
    pub after: LogPosition,
    /// Skip events with a smaller global position (only when P lies beyond the log's end).
    pub min_global_position: i64,
}

/// The global log, read in order with no skipped event: what projections, rebuilds and
/// replays read, on any store.
pub trait EventLog: Send + Sync + 'static {
    /// Up to `limit` events after `after` in log order (`account` narrows it to one account's),
    /// only those before which no event can still commit: an event is never passed over while
    /// it is invisible.
    fn read_log(
        &self,
        after: LogPosition,
        account: Option<&AccountId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// The same for one stream.
    fn read_stream_log(
        &self,
        stream_id: &str,
        after: LogPosition,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// From the event at `global_position` (or the first one after it) on, in log order; past
    /// the log's end, what commits from now on, keeping only events at that position or beyond.
    fn start_at(
        &self,
        global_position: i64,
    ) -> impl Future<Output = Result<StartPoint, StoreError>> + Send;

    /// The log's end now: every event committed so far lies before it, every event of a write
    /// that starts from now on at or after it.
    fn log_end(&self) -> impl Future<Output = Result<LogPosition, StoreError>> + Send;

    /// Whether every event before `end` can be read: no write that may still commit one
    /// before it is running.
    fn readable_to(
        &self,
        end: LogPosition,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Whether the database answers and holds every migration this build needs: what health
    /// and readiness report.
    fn readiness(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A point in a stream's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// Up to and including this stream version.
    Version(u64),
    /// Everything recorded at or before this time.
    Time(DateTime<Utc>),
}

/// The log as auditors read it: a stream's history, and the log followed live.
pub trait AuditLog: Send + Sync + 'static {
    type Subscription: LogSubscription;

    /// Up to `limit` events of a stream after `after_version`, in version order.
    fn stream_page(
        &self,
        account_id: &AccountId,
        stream_id: &str,
        after_version: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// A stream's events up to a point of its history.
    fn stream_as_of(
        &self,
        account_id: &AccountId,
        stream_id: &str,
        as_of: AsOf,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// The account's events in log order from the event at `from_position` on (or the first
    /// after it), then live ones as they commit.
    fn follow(
        &self,
        account_id: &AccountId,
        from_position: i64,
    ) -> impl Future<Output = Result<Self::Subscription, StoreError>> + Send;
}

/// A reader following the log.
pub trait LogSubscription: Send + 'static {
    /// The next batch, waiting until there is one.
    fn next_batch(&mut self)
    -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;
}

/// Persistence of contacts: an event log with its inline read model.
pub trait ContactStore: Send + Sync + 'static {
    /// The contact's current state, if it exists in the account (another account's contact is
    /// not found).
    fn load_contact(
        &self,
        account_id: &AccountId,
        contact_id: &ContactId,
    ) -> impl Future<Output = Result<Option<Contact>, StoreError>> + Send;

    /// Appends atomically: the events at the expected version, the read model row, the name
    /// claims, the quota and the remembered call; all of it or nothing.
    fn append(&self, append: Append<'_>) -> impl Future<Output = Result<(), AppendError>> + Send;

    /// Forgets a contact: see [`Forget`]. `VersionConflict` if the stream moved on.
    fn forget(&self, forget: Forget<'_>) -> impl Future<Output = Result<(), AppendError>> + Send;

    /// A page of the account's contacts (optionally only one, optionally only those that
    /// apply to a member of its directory, bound to it or above it), ordered by creation time
    /// then id.
    fn list_contacts(
        &self,
        account_id: &AccountId,
        only: Option<&ContactId>,
        member: Option<&MemberId>,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<ListedContact>, StoreError>> + Send;

    /// The call remembered under a client token, if one succeeded within `since`.
    fn recall(
        &self,
        key: &IdempotencyKey,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<RememberedCall>, StoreError>> + Send;

    /// Remembers a successful call that appended nothing. `ClientTokenTaken` if another call
    /// holds the token and is younger than [`IDEMPOTENCY_WINDOW`].
    fn remember(
        &self,
        call: &RememberedCall,
    ) -> impl Future<Output = Result<(), AppendError>> + Send;

    /// Counts one try of a code against `max_tries`, whichever process makes it: `false` when
    /// the code has been tried that often already (it is burned).
    fn claim_code_try(
        &self,
        account_id: &AccountId,
        verification_id: VerificationId,
        max_tries: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The code a confirmation link was issued for, found by the hash of its token.
    fn find_link(
        &self,
        link_hash: &[u8; 32],
    ) -> impl Future<Output = Result<Option<LinkedCode>, StoreError>> + Send;
}

/// A contact in a list, with when it came to apply: to the member filtered by (bound to it or
/// above it, or the member joined there), else when its current bindings were last added to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedContact {
    pub contact: Contact,
    pub associated_at: Option<DateTime<Utc>>,
}

/// An append to an account's directory stream, with its inline read model.
#[derive(Debug, Clone)]
pub struct DirectoryAppend<'a> {
    /// The directory after the events.
    pub directory: &'a Directory,
    /// 0 for the directory's first use.
    pub expected_version: u64,
    pub events: &'a [NewEvent<DirectoryEvent>],
    pub metadata: &'a EventMetadata,
}

/// Persistence of the resource directory mirror: a stream per account and its inline model.
pub trait DirectoryStore: Send + Sync + 'static {
    fn load_directory(
        &self,
        account_id: &AccountId,
    ) -> impl Future<Output = Result<Option<Directory>, StoreError>> + Send;

    /// `VersionConflict` if the directory moved past the expected version.
    fn append_directory(
        &self,
        append: DirectoryAppend<'_>,
    ) -> impl Future<Output = Result<(), AppendError>> + Send;
}

/// What a confirmation link confirms: a code of a contact's pending target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedCode {
    pub account_id: AccountId,
    pub contact_id: ContactId,
    pub channel: Channel,
    pub verification_id: VerificationId,
}

/// A verification message waiting in the outbox, claimed by one dispatcher for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// The id of the event that asked for it: the idempotency key of its send.
    pub message_id: Uuid,
    pub account_id: AccountId,
    pub contact_id: ContactId,
    /// The contact's name when the message was recorded, for the greeting.
    pub contact_name: String,
    pub recipient: VerificationTarget,
    pub verification_id: VerificationId,
    pub expires_at: DateTime<Utc>,
    /// This attempt's number: 1 for the first.
    pub attempt: u32,
    /// Outcomes recorded so far: the version of the message's delivery stream.
    pub recorded: u64,
    /// The correlation id of the request that asked for it, carried on to its outcomes.
    pub correlation_id: String,
}

/// The messages the dispatcher sends: recorded by a projection, claimed with a lease that is
/// committed at once, so that no transaction is open while a message is sent.
pub trait Outbox: Send + Sync + 'static {
    /// Up to `limit` messages that are due, each leased to `owner` for `lease`.
    fn claim_due(
        &self,
        owner: &str,
        lease: std::time::Duration,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OutboxMessage>, StoreError>> + Send;

    /// Records an attempt's outcome and appends its event, in one transaction, if `owner`
    /// still holds the message's lease; `false` if another dispatcher took it over meanwhile.
    fn record(
        &self,
        owner: &str,
        message: &OutboxMessage,
        event: &DeliveryEvent,
        event_id: Uuid,
        metadata: &EventMetadata,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// When the next pending message falls due, if any is pending.
    fn next_due(&self) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;

    /// How many messages wait to be sent: pending, due or not, leased or not.
    fn pending(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Changes whenever this process records new messages in the outbox.
    fn recorded_messages(&self) -> watch::Receiver<u64>;
}

/// A verification message ready to send: everything its text needs.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The idempotency key of the send: the same on every attempt.
    pub message_id: Uuid,
    pub contact_id: ContactId,
    pub contact_name: String,
    pub recipient: VerificationTarget,
    pub code: VerificationCode,
    pub expires_at: DateTime<Utc>,
    /// The confirmation page's address (email messages carry it).
    pub link: String,
}

/// How a notification left: which way, and for the logs a detail such as a file's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub via: &'static str,
    pub detail: Option<String>,
}

/// Why a notification did not leave. The reason names the failure (an SMTP reply code, a
/// status, a timeout) and never the recipient or the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help (a refused recipient, a rejected request).
    #[error("{0}")]
    Permanent(String),
}

/// Sends notifications: by SMTP, to the SMS gateway, or into the development sink.
pub trait Notifier: Send + Sync + 'static {
    fn deliver(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = Result<Delivered, DeliveryError>> + Send;
}

/// An integration event for the services outside that consume them (a member account's
/// notification center), ready to publish: the application decides subject and payload, the
/// adapter only carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationMessage {
    /// Unique per message and the same on every attempt: the broker de-duplicates on it.
    pub message_id: String,
    pub subject: String,
    /// JSON, with its schema version inside.
    pub payload: Vec<u8>,
}

/// Why a message was not published; the reason names the failure, never the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PublishError(pub String);

/// Publishes integration events to the broker (NATS JetStream).
pub trait IntegrationPublisher: Send + Sync + 'static {
    /// Publishes one message and waits until the broker has stored it; a message published
    /// twice under one id is stored once.
    fn publish(
        &self,
        message: &IntegrationMessage,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// A step of a contact's lifecycle that leaves the database (a publish) or issues commands
/// (an unbinding, the end of a delete): recorded by the member-contacts projection in the
/// transaction of its batch, carried out afterwards by the lifecycle worker with no
/// transaction open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleJob {
    /// Derived from the causing event, so that recording it twice records it once.
    pub job_id: String,
    pub account_id: AccountId,
    pub task: LifecycleTask,
    /// The id of the event that caused the job: the causation id of what it appends.
    pub causation_id: String,
    pub correlation_id: String,
    /// This attempt's number: 1 for the first.
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleTask {
    /// Publish an integration event; one of an asynchronous delete's removals when
    /// `deletion_id` is set.
    Publish {
        message: IntegrationMessage,
        deletion_id: Option<Uuid>,
        member: contactd_domain::MemberAccountId,
        message_types: contactd_domain::MessageTypes,
    },
    /// Unbind from a contact a target that its directory no longer holds.
    Unbind {
        contact_id: ContactId,
        target: MemberId,
    },
    /// End an asynchronous delete once every removal it published has settled.
    FinishDeletion {
        contact_id: ContactId,
        deletion_id: Uuid,
    },
}

/// How an attempt at a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Done: the job goes (with, for the end of a delete, the removals it waited for).
    Done,
    /// Try again at that time.
    Retry { at: DateTime<Utc>, reason: String },
    /// Given up: kept, so that the delete it belongs to can say which members failed.
    Failed { reason: String },
}

/// Where an asynchronous delete's removals are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletionProgress {
    /// Removals not yet published nor given up.
    pub pending: u64,
    /// Removals given up: the members and the message types they still get.
    pub failed: Vec<contactd_domain::FailReason>,
}

/// The lifecycle jobs: claimed with a lease committed at once, settled one by one.
pub trait LifecycleJobs: Send + Sync + 'static {
    /// Up to `limit` jobs that are due, each leased to `owner` for `lease`.
    fn claim_jobs(
        &self,
        owner: &str,
        lease: std::time::Duration,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<LifecycleJob>, StoreError>> + Send;

    /// Records how an attempt ended, if `owner` still holds the job's lease. Settling a
    /// delete's removal makes the job that ends it due at once.
    fn settle_job(
        &self,
        owner: &str,
        job: &LifecycleJob,
        outcome: JobOutcome,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn deletion_progress(
        &self,
        account_id: &AccountId,
        deletion_id: Uuid,
    ) -> impl Future<Output = Result<DeletionProgress, StoreError>> + Send;

    /// When the next pending job falls due, if any is pending.
    fn next_job_due(
        &self,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;

    /// Changes whenever this process records new jobs.
    fn recorded_jobs(&self) -> watch::Receiver<u64>;
}
