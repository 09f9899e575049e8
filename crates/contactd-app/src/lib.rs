//! Use cases of the message-contact service: load a contact's state through the store port,
//! let the aggregate decide, append the events with their metadata. No SQL and no wire format
//! here: the store and the front end are adapters plugged in by the binary.

mod audit;
mod context;
mod error;
mod paging;
mod port;
mod service;

pub use audit::{AuditService, EventPage};
pub use context::{CallContext, RequestId};
pub use error::AppError;
pub use paging::{Page, PageRequest};
pub use port::{
    Append, AppendError, AsOf, AuditLog, ContactStore, EventMetadata, IDEMPOTENCY_WINDOW,
    IdempotencyKey, LogPosition, LogSubscription, NameClaim, NewEvent, Operation, Outcome,
    RecordedEvent, RememberedCall, StoreError,
};
pub use service::{
    ContactService, DEFAULT_DECIDED_CONTACTS, Idempotency, ListQuery, NewContact, Policy,
};
