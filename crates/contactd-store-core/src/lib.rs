//! What both event stores share, so that an event reads and prints the same whichever one
//! stored it: the persisted event format with its upcasters ([`events`]), the stored documents
//! of the read models and remembered calls ([`documents`]), and a stored event's row turned
//! into a [`contactd_app::RecordedEvent`] ([`recorded`]), and the inline read models folded
//! from the log for a rebuild ([`fold`]); and the queue that groups concurrent writes and reads
//! ([`grouping`]); following the log ([`subscription`]); a claimed outbox message and a claimed
//! lifecycle job read back ([`outbox`], [`jobs`]); the sealing of personal fields under
//! each contact's data key ([`sealing`]). No SQL lives here: only the shapes a
//! row has once a store has selected it.

pub mod documents;
pub mod events;
pub mod fold;
pub mod grouping;
pub mod jobs;
pub mod outbox;
pub mod recorded;
pub mod sealing;
pub mod subscription;

pub use documents::{
    StoredBinding, StoredContact, StoredDirectory, StoredState, outcome_from_json, outcome_to_json,
};
pub use events::{
    decode_event, encode_contact_event, encode_delivery_event, encode_directory_event,
    encode_event, encode_sealed_contact_event, message_types, type_names,
};
pub use fold::{INLINE_READ_MODEL, InlineFold, RebuildReport};
pub use recorded::{StoredEvent, canonical_payload, event_json_line, needed_keys, sealed_in_place};
pub use sealing::{
    DataKey, EventSealing, KeyCache, KeyRotation, KeyRow, Keyring, MasterKey, OpenKeys, WrappedKey,
};
pub use subscription::{DEFAULT_POLL_INTERVAL, FOLLOW_BATCH, Subscription};

/// Whether a database whose newest applied migration is `applied` holds every one of `needed`
/// (the store's embedded migrations): what its readiness reports.
pub fn schema_ready(
    applied: Option<i64>,
    needed: impl Iterator<Item = i64>,
) -> Result<(), contactd_app::StoreError> {
    let needed = needed.max();
    if applied >= needed {
        Ok(())
    } else {
        Err(contactd_app::StoreError::internal(
            format!(
                "the schema is at migration {}; this build needs {}",
                applied.unwrap_or(0),
                needed.unwrap_or(0)
            ),
            None,
        ))
    }
}
