//! Use cases of the message-contact service: load a contact's state through the store port,
//! let the aggregate decide, append the events with their metadata. No SQL and no wire format
//! here: the store and the front end are adapters plugged in by the binary.

mod audit;
mod codes;
mod context;
pub mod deadline;
mod directory;
mod dispatch;
mod error;
mod health;
mod integration;
mod leased;
mod lifecycle;
mod lifecycle_worker;
mod paging;
mod port;
mod privacy;
mod projection;
mod projections;
mod recorder;
mod service;
mod verification;

pub use audit::{AuditService, EventPage};
pub use codes::{CodeSecret, LinkToken, MIN_SECRET_BYTES, ShortSecret};
pub use context::{CallContext, Principal, Proof, RequestId};
pub use dispatch::{DispatchCounts, DispatchMetrics, DispatchSettings, Dispatcher};
pub use error::AppError;
pub use health::{DatabaseHealth, HealthSettings, monitor_database};
pub use integration::{
    INTEGRATION_SCHEMA_VERSION, MemberContactChange, member_contact_message, member_subject,
};
pub use lifecycle::DeletionStatus;
pub use lifecycle_worker::{LifecycleSettings, LifecycleWorker};
pub use paging::{Page, PageRequest};
pub use port::{
    Append, AppendError, AsOf, AuditLog, BindingChange, CodeIssue, ContactStore, DeletionProgress,
    Delivered, DeliveryError, DirectoryAppend, DirectoryStore, EventLog, EventMetadata, Forget,
    IDEMPOTENCY_WINDOW, IdempotencyKey, IntegrationMessage, IntegrationPublisher, JobOutcome,
    LifecycleJob, LifecycleJobs, LifecycleTask, LinkedCode, ListedContact, LogPosition,
    LogSubscription, NameClaim, NewEvent, Notification, Notifier, Opened, Operation, Outbox,
    OutboxMessage, Outcome, PublishError, RecordedEvent, RememberedCall, SendLimits, StartPoint,
    StoreError, contact_history,
};
pub use projection::{
    Projection, ProjectionMetrics, ProjectionStatus, ProjectionStore, RunnerSettings,
    SKIPPED_CHECKPOINT, TakenProjection, run_projection,
};
pub use projections::activity::{AccountActivity, ActivityModel, ActivityTally};
pub use projections::member_contacts::{
    MemberContactPair, MemberContacts, MemberContactsModel, NewJobTask, NewLifecycleJob,
};
pub use projections::outbox::{OutboxModel, RequestedMessage, VerificationOutbox};
pub use recorder::{AttemptOutcome, PoolUsage, Recorder, Recording};
pub use service::{
    ContactService, DEFAULT_DECIDED_CONTACTS, Idempotency, ListQuery, NewContact, Policy,
};
pub use verification::{LinkStatus, VerificationPolicy};
