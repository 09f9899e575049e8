//! The contact aggregate: commands are decided against the current state into past-tense
//! events, and events are applied to the state. Both are pure and synchronous.

use chrono::{DateTime, Utc};

use crate::{AccountId, ContactId, ContactName, EmailAddress, MessageTypes, PhoneNumber, Title};

/// Where a contact is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContactStatus {
    /// Until the contact's first email address is verified.
    Verifying,
    /// Once an email address has been verified.
    Active,
    /// While an asynchronous delete runs; no change is allowed.
    Deleting,
}

impl ContactStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ContactStatus::Verifying => "Verifying",
            ContactStatus::Active => "Active",
            ContactStatus::Deleting => "Deleting",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            ContactStatus::Verifying,
            ContactStatus::Active,
            ContactStatus::Deleting,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// Add a contact. The id is drawn by the application; uniqueness of the name and the quota are
/// enforced where the event is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddMessageContact {
    pub contact_id: ContactId,
    pub account_id: AccountId,
    pub name: ContactName,
    pub email_address: EmailAddress,
    pub phone_number: Option<PhoneNumber>,
    pub title: Title,
    pub message_types: MessageTypes,
}

/// What to do with the phone number in an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneChange {
    Set(PhoneNumber),
    /// Sent as `""`: the phone number goes entirely (requested, pending and active).
    Remove,
}

/// Change some of a contact's fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateMessageContact {
    pub name: Option<ContactName>,
    pub email_address: Option<EmailAddress>,
    pub phone_number: Option<PhoneChange>,
    pub title: Option<Title>,
    pub message_types: Option<MessageTypes>,
}

/// Everything that can happen to a contact, in the past tense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactEvent {
    MessageContactAdded {
        contact_id: ContactId,
        account_id: AccountId,
        name: ContactName,
        email_address: EmailAddress,
        phone_number: Option<PhoneNumber>,
        title: Title,
        message_types: MessageTypes,
    },
    MessageContactRenamed {
        name: ContactName,
    },
    /// A new email address waits for verification; until then the verified one stays active.
    EmailAddressChangeRequested {
        email_address: EmailAddress,
    },
    /// A new phone number waits for verification.
    PhoneNumberChangeRequested {
        phone_number: PhoneNumber,
    },
    PhoneNumberRemoved,
    TitleChanged {
        title: Title,
    },
    MessageTypesChanged {
        message_types: MessageTypes,
    },
}

impl ContactEvent {
    /// The event's type name, as stored in the log.
    pub fn event_type(&self) -> &'static str {
        match self {
            ContactEvent::MessageContactAdded { .. } => "MessageContactAdded",
            ContactEvent::MessageContactRenamed { .. } => "MessageContactRenamed",
            ContactEvent::EmailAddressChangeRequested { .. } => "EmailAddressChangeRequested",
            ContactEvent::PhoneNumberChangeRequested { .. } => "PhoneNumberChangeRequested",
            ContactEvent::PhoneNumberRemoved => "PhoneNumberRemoved",
            ContactEvent::TitleChanged { .. } => "TitleChanged",
            ContactEvent::MessageTypesChanged { .. } => "MessageTypesChanged",
        }
    }
}

/// A command the contact's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContactRejection {
    /// `ContactStatusMismatchAction`
    #[error("the contact's status does not allow this change")]
    StatusMismatch,
}

/// The state of one contact: the fold of its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub contact_id: ContactId,
    pub account_id: AccountId,
    pub name: ContactName,
    /// The latest email address asked for.
    pub email_address: EmailAddress,
    /// The verified email address in effect.
    pub active_email_address: Option<EmailAddress>,
    /// The latest phone number asked for.
    pub phone_number: Option<PhoneNumber>,
    /// The verified phone number in effect.
    pub active_phone_number: Option<PhoneNumber>,
    pub title: Title,
    pub message_types: MessageTypes,
    pub status: ContactStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The number of events in the contact's stream.
    pub version: u64,
}

impl Contact {
    /// Deciding an add cannot fail on the state (there is none yet): it always yields the one
    /// event that starts the stream.
    pub fn add(command: AddMessageContact) -> ContactEvent {
        ContactEvent::MessageContactAdded {
            contact_id: command.contact_id,
            account_id: command.account_id,
            name: command.name,
            email_address: command.email_address,
            phone_number: command.phone_number,
            title: command.title,
            message_types: command.message_types,
        }
    }

    /// The state after the stream's first event, or `None` if it is not a creation event.
    pub fn created(event: &ContactEvent, at: DateTime<Utc>) -> Option<Self> {
        let ContactEvent::MessageContactAdded {
            contact_id,
            account_id,
            name,
            email_address,
            phone_number,
            title,
            message_types,
        } = event
        else {
            return None;
        };
        Some(Self {
            contact_id: contact_id.clone(),
            account_id: account_id.clone(),
            name: name.clone(),
            email_address: email_address.clone(),
            active_email_address: None,
            phone_number: phone_number.clone(),
            active_phone_number: None,
            title: *title,
            message_types: *message_types,
            status: ContactStatus::Verifying,
            created_at: at,
            updated_at: at,
            version: 1,
        })
    }

    /// Decides an update: one event per field that really changes, none when nothing does.
    pub fn update(
        &self,
        command: &UpdateMessageContact,
    ) -> Result<Vec<ContactEvent>, ContactRejection> {
        if self.status == ContactStatus::Deleting {
            return Err(ContactRejection::StatusMismatch);
        }
        let mut events = Vec::new();
        if let Some(name) = command.name.as_ref().filter(|name| **name != self.name) {
            events.push(ContactEvent::MessageContactRenamed { name: name.clone() });
        }
        if let Some(email) = command
            .email_address
            .as_ref()
            .filter(|email| **email != self.email_address)
        {
            events.push(ContactEvent::EmailAddressChangeRequested {
                email_address: email.clone(),
            });
        }
        match &command.phone_number {
            Some(PhoneChange::Set(phone)) if self.phone_number.as_ref() != Some(phone) => {
                events.push(ContactEvent::PhoneNumberChangeRequested {
                    phone_number: phone.clone(),
                });
            }
            Some(PhoneChange::Remove)
                if self.phone_number.is_some() || self.active_phone_number.is_some() =>
            {
                events.push(ContactEvent::PhoneNumberRemoved);
            }
            _ => {}
        }
        if let Some(title) = command.title.filter(|title| *title != self.title) {
            events.push(ContactEvent::TitleChanged { title });
        }
        if let Some(types) = command
            .message_types
            .filter(|types| *types != self.message_types)
        {
            events.push(ContactEvent::MessageTypesChanged {
                message_types: types,
            });
        }
        Ok(events)
    }

    /// Applies one event recorded at `at`; it only assigns.
    pub fn apply(&mut self, event: &ContactEvent, at: DateTime<Utc>) {
        match event {
            ContactEvent::MessageContactAdded { .. } => {}
            ContactEvent::MessageContactRenamed { name } => self.name = name.clone(),
            ContactEvent::EmailAddressChangeRequested { email_address } => {
                self.email_address = email_address.clone()
            }
            ContactEvent::PhoneNumberChangeRequested { phone_number } => {
                self.phone_number = Some(phone_number.clone())
            }
            ContactEvent::PhoneNumberRemoved => {
                self.phone_number = None;
                self.active_phone_number = None;
            }
            ContactEvent::TitleChanged { title } => self.title = *title,
            ContactEvent::MessageTypesChanged { message_types } => {
                self.message_types = *message_types
            }
        }
        self.updated_at = at;
        self.version += 1;
    }

    /// Folds a whole stream; `None` if it is empty or does not start with a creation event.
    pub fn fold<'a>(
        events: impl IntoIterator<Item = (&'a ContactEvent, DateTime<Utc>)>,
    ) -> Option<Self> {
        let mut events = events.into_iter();
        let (first, at) = events.next()?;
        let mut contact = Self::created(first, at)?;
        for (event, at) in events {
            contact.apply(event, at);
        }
        Some(contact)
    }

    /// The email address waiting for verification, if the latest one asked for is not the
    /// verified one.
    pub fn pending_email_address(&self) -> Option<&EmailAddress> {
        Some(&self.email_address).filter(|email| self.active_email_address.as_ref() != Some(*email))
    }

    /// The phone number waiting for verification, if any.
    pub fn pending_phone_number(&self) -> Option<&PhoneNumber> {
        self.phone_number
            .as_ref()
            .filter(|phone| self.active_phone_number.as_ref() != Some(*phone))
    }
}

#[cfg(test)]
mod tests {
    //! Given the events so far, when a command is decided, then these events (or this rejection).

    use chrono::TimeZone;

    use super::*;
    use crate::CountryCodes;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, second).unwrap()
    }

    fn name(raw: &str) -> ContactName {
        ContactName::parse(raw).unwrap()
    }

    fn email(raw: &str) -> EmailAddress {
        EmailAddress::parse(raw).unwrap()
    }

    fn phone(raw: &str) -> PhoneNumber {
        PhoneNumber::parse(raw, &CountryCodes::default()).unwrap()
    }

    fn types(raw: &[&str]) -> MessageTypes {
        MessageTypes::parse(raw.iter().copied()).unwrap().unwrap()
    }

    fn added() -> ContactEvent {
        Contact::add(AddMessageContact {
            contact_id: ContactId::parse("c-0123456789abcdef").unwrap(),
            account_id: AccountId::parse("1234567890123456").unwrap(),
            name: name("Tom"),
            email_address: email("tom@example.com"),
            phone_number: Some(phone("86-13912345678")),
            title: Title::TechnicalDirector,
            message_types: types(&["AccountExpenses"]),
        })
    }

    fn given(events: &[ContactEvent]) -> Contact {
        Contact::fold(events.iter().zip(0..).map(|(e, s)| (e, at(s)))).unwrap()
    }

    fn when(
        state: &Contact,
        command: UpdateMessageContact,
    ) -> Result<Vec<ContactEvent>, ContactRejection> {
        state.update(&command)
    }

    #[test]
    fn adding_starts_a_stream_of_version_one_that_is_verifying_with_everything_pending() {
        let contact = given(&[added()]);
        assert_eq!(contact.version, 1);
        assert_eq!(contact.status, ContactStatus::Verifying);
        assert_eq!(contact.created_at, contact.updated_at);
        assert_eq!(
            contact.pending_email_address(),
            Some(&email("tom@example.com"))
        );
        assert_eq!(
            contact.pending_phone_number(),
            Some(&phone("86-13912345678"))
        );
        assert_eq!(contact.active_email_address, None);
    }

    #[test]
    fn an_update_that_changes_nothing_yields_no_event() {
        let contact = given(&[added()]);
        let same = UpdateMessageContact {
            name: Some(name("Tom")),
            email_address: Some(email("tom@example.com")),
            phone_number: Some(PhoneChange::Set(phone("86-13912345678"))),
            title: Some(Title::TechnicalDirector),
            message_types: Some(types(&["AccountExpenses", "AccountExpenses"])),
        };
        assert_eq!(when(&contact, same), Ok(vec![]));
        assert_eq!(when(&contact, UpdateMessageContact::default()), Ok(vec![]));
    }

    #[test]
    fn a_rename_that_changes_only_letter_case_is_a_change() {
        let contact = given(&[added()]);
        let events = when(
            &contact,
            UpdateMessageContact {
                name: Some(name("TOM")),
                ..Default::default()
            },
        );
        assert_eq!(
            events,
            Ok(vec![ContactEvent::MessageContactRenamed {
                name: name("TOM")
            }])
        );
    }

    #[test]
    fn each_changed_field_yields_its_own_event_in_field_order() {
        let contact = given(&[added()]);
        let events = when(
            &contact,
            UpdateMessageContact {
                name: Some(name("Jerry")),
                email_address: Some(email("jerry@example.com")),
                phone_number: Some(PhoneChange::Set(phone("86-18612345678"))),
                title: Some(Title::Ceo),
                message_types: Some(types(&["FaultMessage"])),
            },
        )
        .unwrap();
        let kinds: Vec<_> = events.iter().map(ContactEvent::event_type).collect();
        assert_eq!(
            kinds,
            [
                "MessageContactRenamed",
                "EmailAddressChangeRequested",
                "PhoneNumberChangeRequested",
                "TitleChanged",
                "MessageTypesChanged"
            ]
        );
    }

    #[test]
    fn an_email_change_is_pending_and_shown_as_the_latest_value() {
        let change = ContactEvent::EmailAddressChangeRequested {
            email_address: email("new@example.com"),
        };
        let contact = given(&[added(), change]);
        assert_eq!(contact.email_address, email("new@example.com"));
        assert_eq!(
            contact.pending_email_address(),
            Some(&email("new@example.com"))
        );
        assert_eq!(contact.version, 2);
        assert_eq!(contact.updated_at, at(1));
        assert_eq!(contact.created_at, at(0));
    }

    #[test]
    fn removing_the_phone_number_removes_it_entirely() {
        let contact = given(&[added()]);
        let events = when(
            &contact,
            UpdateMessageContact {
                phone_number: Some(PhoneChange::Remove),
                ..Default::default()
            },
        );
        assert_eq!(events, Ok(vec![ContactEvent::PhoneNumberRemoved]));
        let contact = given(&[added(), ContactEvent::PhoneNumberRemoved]);
        assert_eq!(
            (contact.phone_number, contact.active_phone_number),
            (None, None)
        );
    }

    #[test]
    fn removing_a_phone_number_that_is_not_there_changes_nothing() {
        let contact = given(&[added(), ContactEvent::PhoneNumberRemoved]);
        let events = when(
            &contact,
            UpdateMessageContact {
                phone_number: Some(PhoneChange::Remove),
                ..Default::default()
            },
        );
        assert_eq!(events, Ok(vec![]));
    }

    #[test]
    fn a_deleting_contact_refuses_every_change() {
        let mut contact = given(&[added()]);
        contact.status = ContactStatus::Deleting;
        let events = when(
            &contact,
            UpdateMessageContact {
                title: Some(Title::Other),
                ..Default::default()
            },
        );
        assert_eq!(events, Err(ContactRejection::StatusMismatch));
        assert_eq!(
            when(&contact, UpdateMessageContact::default()),
            Err(ContactRejection::StatusMismatch)
        );
    }

    #[test]
    fn folding_needs_a_creation_event_first() {
        assert_eq!(Contact::fold(std::iter::empty()), None);
        let renamed = ContactEvent::MessageContactRenamed { name: name("Tom") };
        assert_eq!(Contact::fold([(&renamed, at(0))]), None);
    }

    #[test]
    fn the_version_counts_every_applied_event() {
        let title = ContactEvent::TitleChanged {
            title: Title::Other,
        };
        let contact = given(&[added(), title.clone(), title.clone(), title]);
        assert_eq!(contact.version, 4);
    }
}
