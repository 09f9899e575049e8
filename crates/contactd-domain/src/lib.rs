//! The message-contact domain: value types that parse once at the edge, and the contact aggregate
//! that decides on commands and applies past-tense events. Nothing here does IO: time, ids and
//! "is this name taken" are looked up by the application layer and handed in.

mod contact;
mod delivery;
mod directory;
mod email;
mod error;
mod ids;
mod message_types;
mod name;
mod phone;
mod title;
mod verification;

pub use contact::{
    AddMessageContact, Binding, CancelMessageContactUpdate, Contact, ContactEvent,
    ContactRejection, ContactStatus, DeleteStatus, Deletion, FailReason, MAX_BOUND_TARGETS,
    PhoneChange, UpdateMessageContact,
};
pub use delivery::{DeliveryEvent, DeliveryOutcome, DomainEvent};
pub use directory::{Directory, DirectoryEvent, DirectoryRejection};
pub use email::EmailAddress;
pub use error::{Field, ParameterError};
pub use ids::{
    AccountId, ClientToken, ContactId, FolderId, InvalidAccountId, MemberAccountId, MemberId,
    ResourceDirectoryId,
};
pub use message_types::{MessageType, MessageTypes};
pub use name::ContactName;
pub use phone::{CountryCodes, PhoneNumber};
pub use title::Title;
pub use verification::{
    Channel, IssuedCode, MAX_CODE_TRIES, VerificationCode, VerificationId, VerificationTarget,
    masked,
};
