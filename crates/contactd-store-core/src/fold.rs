//! The inline read models folded from the log, for a rebuild: every contact and directory as
//! its stream's events make it, whichever store the events were read from.

use std::collections::HashMap;

use contactd_app::{RecordedEvent, StoreError};
use contactd_domain::{Contact, ContactStatus, Directory};

/// The name under which the inline read models are rebuilt, on either store.
pub const INLINE_READ_MODEL: &str = "contacts";

/// How a rebuild went, on either store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    /// Events replayed.
    pub events: u64,
    /// Rows of the rebuilt model, where one row stands for one stream (the contacts).
    pub rows: Option<u64>,
}

/// The contacts and directories of the events folded so far.
#[derive(Debug, Default)]
pub struct InlineFold {
    contacts: HashMap<String, Contact>,
    directories: HashMap<String, Directory>,
    events: u64,
}

impl InlineFold {
    /// Applies one event; a stream's events must come in version order.
    pub fn apply(&mut self, recorded: RecordedEvent) -> Result<(), StoreError> {
        self.events += 1;
        let at = recorded.metadata.recorded_at;
        let unborn = || {
            StoreError::internal(
                format!(
                    "stream {} does not start with its creation",
                    recorded.stream_id
                ),
                None,
            )
        };
        if let Some(event) = recorded.event.as_directory() {
            match self.directories.get_mut(&recorded.stream_id) {
                Some(directory) => directory.apply(event, at),
                None => {
                    let directory =
                        Directory::created(recorded.metadata.account_id.clone(), event, at)
                            .ok_or_else(unborn)?;
                    self.directories
                        .insert(recorded.stream_id.clone(), directory);
                }
            }
            return Ok(());
        }
        // Other streams (a message's delivery) are not a read model of their own.
        let Some(event) = recorded.contact_event() else {
            return Ok(());
        };
        match self.contacts.get_mut(&recorded.stream_id) {
            Some(contact) => contact.apply(event, at),
            None => {
                let contact = Contact::created(event, at).ok_or_else(unborn)?;
                self.contacts.insert(recorded.stream_id.clone(), contact);
            }
        }
        Ok(())
    }

    /// Events folded.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The contacts that have a row: every one not deleted.
    pub fn live_contacts(&self) -> Vec<&Contact> {
        self.contacts
            .values()
            .filter(|c| c.status != ContactStatus::Deleted)
            .collect()
    }

    pub fn directories(&self) -> impl Iterator<Item = &Directory> {
        self.directories.values()
    }
}
