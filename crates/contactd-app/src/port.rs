//! The store port: what the use cases need from persistence. The PostgreSQL adapter (and later
//! the embedded one) implements it; conformance tests hold every implementation to it.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use contactd_domain::{AccountId, ClientToken, Contact, ContactEvent, ContactId};
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
pub struct NewEvent {
    pub event_id: Uuid,
    pub event: ContactEvent,
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
}

/// The RPCs whose calls can be made idempotent with a client token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    AddMessageContact,
    UpdateMessageContact,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::AddMessageContact => "AddMessageContact",
            Operation::UpdateMessageContact => "UpdateMessageContact",
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
    Updated {
        request_id: String,
    },
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
    /// The contact's state after the events: the inline read model's row.
    pub contact: &'a Contact,
    /// The stream's version the events were decided on (0 for a new stream).
    pub expected_version: u64,
    pub events: &'a [NewEvent],
    pub metadata: &'a EventMetadata,
    pub name_claim: NameClaim,
    /// For a new contact: the account's quota of contacts not deleted.
    pub quota_limit: Option<u32>,
    pub remember: Option<&'a RememberedCall>,
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

/// A place in the global log. The log's order is `(transaction_id, global_position)`: positions
/// are drawn before commit and commit out of order, so readers order and checkpoint by the
/// writing transaction first (see ADR 4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    pub transaction_id: i64,
    pub global_position: i64,
}

impl LogPosition {
    /// Before the first event.
    pub const START: LogPosition = LogPosition {
        transaction_id: 0,
        global_position: 0,
    };
}

/// An event as read back from the log: where it is, what it says (decoded through the
/// upcasters, and as stored), and who caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: LogPosition,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: i32,
    /// The payload exactly as stored, in its own schema version.
    pub payload_json: String,
    pub event: ContactEvent,
    pub metadata: EventMetadata,
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

    /// A page of the account's contacts (optionally only one), ordered by creation time then id.
    fn list_contacts(
        &self,
        account_id: &AccountId,
        only: Option<&ContactId>,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<Contact>, StoreError>> + Send;

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
}
