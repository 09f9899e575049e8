//! The contact aggregate: commands are decided against the current state into past-tense
//! events, and events are applied to the state. Both are pure and synchronous.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::verification::{Channel, IssuedCode, VerificationId, VerificationTarget};
use crate::{
    AccountId, ContactId, ContactName, Directory, EmailAddress, MemberAccountId, MemberId,
    MessageTypes, PhoneNumber, Title,
};

/// A contact is bound to at most this many targets (`LimitExceeded.ContactMembers`).
pub const MAX_BOUND_TARGETS: usize = 10;

/// Where a contact is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContactStatus {
    /// Until the contact's first email address is verified.
    Verifying,
    /// Once an email address has been verified.
    Active,
    /// While an asynchronous delete runs, or after it failed; no change is allowed.
    Deleting,
    /// Gone: the last state of a deleted contact's stream, which only its history shows.
    Deleted,
}

impl ContactStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ContactStatus::Verifying => "Verifying",
            ContactStatus::Active => "Active",
            ContactStatus::Deleting => "Deleting",
            ContactStatus::Deleted => "Deleted",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            ContactStatus::Verifying,
            ContactStatus::Active,
            ContactStatus::Deleting,
            ContactStatus::Deleted,
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

/// Cancel pending changes of the email address and/or the phone number, named by their
/// pending values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancelMessageContactUpdate {
    pub email_address: Option<EmailAddress>,
    pub phone_number: Option<PhoneNumber>,
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
    /// A code was issued for the pending email address; it replaces any earlier one. The
    /// message that carries it is sent by the dispatcher, after commit.
    EmailVerificationRequested {
        verification_id: VerificationId,
        email_address: EmailAddress,
        expires_at: DateTime<Utc>,
    },
    /// A code was issued for the pending phone number.
    PhoneVerificationRequested {
        verification_id: VerificationId,
        phone_number: PhoneNumber,
        expires_at: DateTime<Utc>,
    },
    /// The pending email address was proven and is now the one in effect.
    EmailAddressVerified {
        verification_id: VerificationId,
        email_address: EmailAddress,
    },
    /// The pending phone number was proven and is now the one in effect.
    PhoneNumberVerified {
        verification_id: VerificationId,
        phone_number: PhoneNumber,
    },
    /// The pending email address was given up; the verified one is asked for again.
    EmailAddressChangeCancelled {
        email_address: EmailAddress,
    },
    /// The pending phone number was given up; the verified one (or none) is asked for again.
    PhoneNumberChangeCancelled {
        phone_number: PhoneNumber,
    },
    /// Targets newly bound, in the order asked for.
    MembersAssociated {
        members: Vec<MemberId>,
    },
    /// Targets unbound: by a caller, or because the directory no longer holds them.
    MembersDisassociated {
        members: Vec<MemberId>,
    },
    /// An asynchronous delete began: the contact is removed from every member it applied to,
    /// then deleted.
    ContactDeletionStarted {
        deletion_id: Uuid,
    },
    /// The asynchronous delete could not remove the contact from these members.
    ContactDeletionFailed {
        deletion_id: Uuid,
        fail_reasons: Vec<FailReason>,
    },
    /// The contact is gone: its name is free and it leaves the quota. The last event of its
    /// stream, unless it is forgotten afterwards.
    MessageContactDeleted,
    /// The key that protected the contact's personal data was destroyed: every personal field
    /// of its stream reads as redacted from now on. It names no one (who asked and when are
    /// the event's metadata). Always the last event of a stream, after its deletion.
    MessageContactForgotten,
}

/// A member the contact could not be removed from, and the message types it still gets there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailReason {
    pub account_id: MemberAccountId,
    pub message_types: MessageTypes,
}

/// A target the contact is bound to, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub target: MemberId,
    pub bound_at: DateTime<Utc>,
}

/// An asynchronous delete of the contact: running, or failed with its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub deletion_id: Uuid,
    /// `None` while it runs.
    pub failures: Option<Vec<FailReason>>,
}

/// What a delete answered: deleted at once, or deleting in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteStatus {
    Deleted,
    Deleting,
}

impl DeleteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteStatus::Deleted => "Deleted",
            DeleteStatus::Deleting => "Deleting",
        }
    }
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
            ContactEvent::EmailVerificationRequested { .. } => "EmailVerificationRequested",
            ContactEvent::PhoneVerificationRequested { .. } => "PhoneVerificationRequested",
            ContactEvent::EmailAddressVerified { .. } => "EmailAddressVerified",
            ContactEvent::PhoneNumberVerified { .. } => "PhoneNumberVerified",
            ContactEvent::EmailAddressChangeCancelled { .. } => "EmailAddressChangeCancelled",
            ContactEvent::PhoneNumberChangeCancelled { .. } => "PhoneNumberChangeCancelled",
            ContactEvent::MembersAssociated { .. } => "MembersAssociated",
            ContactEvent::MembersDisassociated { .. } => "MembersDisassociated",
            ContactEvent::ContactDeletionStarted { .. } => "ContactDeletionStarted",
            ContactEvent::ContactDeletionFailed { .. } => "ContactDeletionFailed",
            ContactEvent::MessageContactDeleted => "MessageContactDeleted",
            ContactEvent::MessageContactForgotten => "MessageContactForgotten",
        }
    }
}

/// A command the contact's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContactRejection {
    /// `ContactStatusMismatchAction`
    #[error("the contact's status does not allow this change")]
    StatusMismatch,
    /// `EntityNotExists.Contact.Verification`: the target is not waiting for verification.
    #[error("the target is not pending verification on this contact")]
    NotPending,
    /// `InvalidParameter.VerificationCode`: no code was sent for the target, or it expired, or
    /// a newer one replaced it.
    #[error("the target holds no live code")]
    NoLiveCode,
    /// `InvalidMember`: a target is not the directory's root, folder or member.
    #[error("a target is not in the resource directory")]
    InvalidMember,
    /// `LimitExceeded.ContactMembers`
    #[error("the contact would be bound to more than {MAX_BOUND_TARGETS} targets")]
    TooManyMembers,
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
    /// The code issued for the pending email address, if one was sent since it was asked for.
    pub email_code: Option<IssuedCode>,
    /// The code issued for the pending phone number.
    pub phone_code: Option<IssuedCode>,
    /// The targets the contact is bound to, in the order they were bound.
    pub members: Vec<Binding>,
    /// The asynchronous delete, while it runs or after it failed.
    pub deletion: Option<Deletion>,
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
            email_code: None,
            phone_code: None,
            members: Vec::new(),
            deletion: None,
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
        self.changeable()?;
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

    /// Decides a send: a new code for a pending target, replacing any earlier one. The id and
    /// the expiry are drawn by the application.
    pub fn request_verification(
        &self,
        target: &VerificationTarget,
        verification_id: VerificationId,
        expires_at: DateTime<Utc>,
    ) -> Result<ContactEvent, ContactRejection> {
        self.changeable()?;
        self.pending(target)?;
        Ok(match target {
            VerificationTarget::Email(email_address) => ContactEvent::EmailVerificationRequested {
                verification_id,
                email_address: email_address.clone(),
                expires_at,
            },
            VerificationTarget::Phone(phone_number) => ContactEvent::PhoneVerificationRequested {
                verification_id,
                phone_number: phone_number.clone(),
                expires_at,
            },
        })
    }

    /// The code a pending target holds at `now`, against which a caller's code is checked.
    pub fn live_code(
        &self,
        target: &VerificationTarget,
        now: DateTime<Utc>,
    ) -> Result<IssuedCode, ContactRejection> {
        self.changeable()?;
        self.pending(target)?;
        let code = match target {
            VerificationTarget::Email(_) => self.email_code,
            VerificationTarget::Phone(_) => self.phone_code,
        };
        code.filter(|code| code.is_live_at(now))
            .ok_or(ContactRejection::NoLiveCode)
    }

    /// Decides a confirmation: `verification_id` names the code the caller proved to hold.
    /// The pending target becomes the one in effect; the first verified email address makes
    /// the contact `Active`.
    pub fn confirm(
        &self,
        target: &VerificationTarget,
        verification_id: VerificationId,
        now: DateTime<Utc>,
    ) -> Result<ContactEvent, ContactRejection> {
        let code = self.live_code(target, now)?;
        if code.verification_id != verification_id {
            return Err(ContactRejection::NoLiveCode);
        }
        Ok(match target {
            VerificationTarget::Email(email_address) => ContactEvent::EmailAddressVerified {
                verification_id,
                email_address: email_address.clone(),
            },
            VerificationTarget::Phone(phone_number) => ContactEvent::PhoneNumberVerified {
                verification_id,
                phone_number: phone_number.clone(),
            },
        })
    }

    /// Decides a cancellation: each named target must be the pending one, and an email
    /// address can only fall back to a verified one. All named targets or none.
    pub fn cancel(
        &self,
        command: &CancelMessageContactUpdate,
    ) -> Result<Vec<ContactEvent>, ContactRejection> {
        self.changeable()?;
        let mut events = Vec::new();
        if let Some(email) = &command.email_address {
            if self.pending_email_address() != Some(email) || self.active_email_address.is_none() {
                return Err(ContactRejection::StatusMismatch);
            }
            events.push(ContactEvent::EmailAddressChangeCancelled {
                email_address: email.clone(),
            });
        }
        if let Some(phone) = &command.phone_number {
            if self.pending_phone_number() != Some(phone) {
                return Err(ContactRejection::StatusMismatch);
            }
            events.push(ContactEvent::PhoneNumberChangeCancelled {
                phone_number: phone.clone(),
            });
        }
        if events.is_empty() {
            // Nothing named, so nothing pending for it.
            return Err(ContactRejection::StatusMismatch);
        }
        Ok(events)
    }

    /// Decides a binding: every target must be in the directory (`None`: the account has no
    /// directory yet), and at most [`MAX_BOUND_TARGETS`] may be bound. Targets bound already
    /// change nothing.
    pub fn associate(
        &self,
        targets: &[MemberId],
        directory: Option<&Directory>,
    ) -> Result<Vec<ContactEvent>, ContactRejection> {
        self.changeable()?;
        if !targets
            .iter()
            .all(|t| directory.is_some_and(|d| d.contains(t)))
        {
            return Err(ContactRejection::InvalidMember);
        }
        let new: Vec<MemberId> = targets
            .iter()
            .filter(|t| !self.is_bound(t))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(Vec::new());
        }
        if self.members.len() + new.len() > MAX_BOUND_TARGETS {
            return Err(ContactRejection::TooManyMembers);
        }
        Ok(vec![ContactEvent::MembersAssociated { members: new }])
    }

    /// Decides an unbinding: a target must be bound or in the directory (one the directory
    /// dropped may still be bound until it is unbound for it). Unbound targets change nothing.
    pub fn disassociate(
        &self,
        targets: &[MemberId],
        directory: Option<&Directory>,
    ) -> Result<Vec<ContactEvent>, ContactRejection> {
        self.changeable()?;
        let known = |t: &MemberId| self.is_bound(t) || directory.is_some_and(|d| d.contains(t));
        if !targets.iter().all(known) {
            return Err(ContactRejection::InvalidMember);
        }
        let bound: Vec<MemberId> = targets
            .iter()
            .filter(|t| self.is_bound(t))
            .cloned()
            .collect();
        Ok(if bound.is_empty() {
            Vec::new()
        } else {
            vec![ContactEvent::MembersDisassociated { members: bound }]
        })
    }

    /// Unbinds a target the directory no longer holds, whatever the contact's status: the
    /// directory's truth is not the caller's to refuse.
    pub fn unbind_removed(&self, target: &MemberId) -> Vec<ContactEvent> {
        if self.is_bound(target) && self.status != ContactStatus::Deleted {
            vec![ContactEvent::MembersDisassociated {
                members: vec![target.clone()],
            }]
        } else {
            Vec::new()
        }
    }

    /// Decides a delete. Keeping the contact in the members deletes it at once; otherwise an
    /// asynchronous delete starts (`deletion_id` drawn by the application). A delete that is
    /// running answers `Deleting` again; a failed one starts over.
    pub fn delete(
        &self,
        retain_in_members: bool,
        deletion_id: Uuid,
    ) -> Result<(Vec<ContactEvent>, DeleteStatus), ContactRejection> {
        match (&self.status, &self.deletion) {
            (ContactStatus::Deleted, _) => Err(ContactRejection::StatusMismatch),
            (ContactStatus::Deleting, Some(Deletion { failures: None, .. })) => {
                Ok((Vec::new(), DeleteStatus::Deleting))
            }
            _ if retain_in_members => Ok((
                vec![ContactEvent::MessageContactDeleted],
                DeleteStatus::Deleted,
            )),
            _ => Ok((
                vec![ContactEvent::ContactDeletionStarted { deletion_id }],
                DeleteStatus::Deleting,
            )),
        }
    }

    /// Decides the end of the asynchronous delete `deletion_id`: deleted, or failed for the
    /// members it could not be removed from. Nothing if that delete is no longer the one
    /// running (it ended, or a newer one replaced it).
    pub fn finish_deletion(
        &self,
        deletion_id: Uuid,
        failures: Vec<FailReason>,
    ) -> Vec<ContactEvent> {
        let running = matches!(
            &self.deletion,
            Some(Deletion { deletion_id: id, failures: None }) if *id == deletion_id
        );
        if !running || self.status != ContactStatus::Deleting {
            Vec::new()
        } else if failures.is_empty() {
            vec![ContactEvent::MessageContactDeleted]
        } else {
            vec![ContactEvent::ContactDeletionFailed {
                deletion_id,
                fail_reasons: failures,
            }]
        }
    }

    /// Decides forgetting the contact: a contact not yet deleted is deleted first (at once,
    /// whatever delete may be running), then forgotten. One forgotten already needs nothing.
    pub fn forget(&self) -> Vec<ContactEvent> {
        if self.is_forgotten() {
            Vec::new()
        } else if self.status == ContactStatus::Deleted {
            vec![ContactEvent::MessageContactForgotten]
        } else {
            vec![
                ContactEvent::MessageContactDeleted,
                ContactEvent::MessageContactForgotten,
            ]
        }
    }

    /// Whether the contact's personal data is gone: forgotten, or read from events whose key
    /// was destroyed.
    pub fn is_forgotten(&self) -> bool {
        self.name.is_redacted()
    }

    /// Every personal field as redacted (what a destroyed key leaves).
    fn redact(&mut self) {
        self.name = ContactName::redacted();
        self.email_address = EmailAddress::redacted();
        let redacted =
            |phone: &Option<PhoneNumber>| phone.as_ref().map(|_| PhoneNumber::redacted());
        self.active_email_address = self
            .active_email_address
            .as_ref()
            .map(|_| EmailAddress::redacted());
        self.phone_number = redacted(&self.phone_number);
        self.active_phone_number = redacted(&self.active_phone_number);
    }

    /// Whether the contact is bound to `target` directly.
    pub fn is_bound(&self, target: &MemberId) -> bool {
        self.members.iter().any(|b| b.target == *target)
    }

    /// When the contact's current bindings were last added to; `None` while it has none.
    pub fn associated_at(&self) -> Option<DateTime<Utc>> {
        self.members.iter().map(|b| b.bound_at).max()
    }

    /// Applies one event recorded at `at`; it only assigns.
    pub fn apply(&mut self, event: &ContactEvent, at: DateTime<Utc>) {
        match event {
            ContactEvent::MessageContactAdded { .. } => {}
            ContactEvent::MessageContactRenamed { name } => self.name = name.clone(),
            ContactEvent::EmailAddressChangeRequested { email_address } => {
                self.email_address = email_address.clone();
                self.email_code = None;
            }
            ContactEvent::PhoneNumberChangeRequested { phone_number } => {
                self.phone_number = Some(phone_number.clone());
                self.phone_code = None;
            }
            ContactEvent::PhoneNumberRemoved => {
                self.phone_number = None;
                self.active_phone_number = None;
                self.phone_code = None;
            }
            ContactEvent::TitleChanged { title } => self.title = *title,
            ContactEvent::MessageTypesChanged { message_types } => {
                self.message_types = *message_types
            }
            ContactEvent::EmailVerificationRequested {
                verification_id,
                expires_at,
                ..
            } => {
                self.email_code = Some(IssuedCode {
                    verification_id: *verification_id,
                    expires_at: *expires_at,
                })
            }
            ContactEvent::PhoneVerificationRequested {
                verification_id,
                expires_at,
                ..
            } => {
                self.phone_code = Some(IssuedCode {
                    verification_id: *verification_id,
                    expires_at: *expires_at,
                })
            }
            ContactEvent::EmailAddressVerified { email_address, .. } => {
                self.active_email_address = Some(email_address.clone());
                self.email_code = None;
                if self.status == ContactStatus::Verifying {
                    self.status = ContactStatus::Active;
                }
            }
            ContactEvent::PhoneNumberVerified { phone_number, .. } => {
                self.active_phone_number = Some(phone_number.clone());
                self.phone_code = None;
            }
            ContactEvent::EmailAddressChangeCancelled { .. } => {
                if let Some(active) = &self.active_email_address {
                    self.email_address = active.clone();
                }
                self.email_code = None;
            }
            ContactEvent::PhoneNumberChangeCancelled { .. } => {
                self.phone_number = self.active_phone_number.clone();
                self.phone_code = None;
            }
            ContactEvent::MembersAssociated { members } => {
                self.members.extend(members.iter().map(|target| Binding {
                    target: target.clone(),
                    bound_at: at,
                }));
            }
            ContactEvent::MembersDisassociated { members } => {
                self.members.retain(|b| !members.contains(&b.target));
            }
            ContactEvent::ContactDeletionStarted { deletion_id } => {
                self.status = ContactStatus::Deleting;
                self.deletion = Some(Deletion {
                    deletion_id: *deletion_id,
                    failures: None,
                });
            }
            ContactEvent::ContactDeletionFailed { fail_reasons, .. } => {
                if let Some(deletion) = &mut self.deletion {
                    deletion.failures = Some(fail_reasons.clone());
                }
            }
            ContactEvent::MessageContactDeleted => {
                self.status = ContactStatus::Deleted;
                self.deletion = None;
            }
            ContactEvent::MessageContactForgotten => self.redact(),
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

    /// Every target waiting for verification: the email address first, then the phone number.
    pub fn pending_targets(&self) -> Vec<VerificationTarget> {
        let email = self
            .pending_email_address()
            .cloned()
            .map(VerificationTarget::Email);
        let phone = self
            .pending_phone_number()
            .cloned()
            .map(VerificationTarget::Phone);
        email.into_iter().chain(phone).collect()
    }

    /// The pending target of a channel, if any.
    pub fn pending_target(&self, channel: Channel) -> Option<VerificationTarget> {
        match channel {
            Channel::Email => self
                .pending_email_address()
                .cloned()
                .map(VerificationTarget::Email),
            Channel::Phone => self
                .pending_phone_number()
                .cloned()
                .map(VerificationTarget::Phone),
        }
    }

    /// A `Deleting` (or deleted) contact refuses every change.
    fn changeable(&self) -> Result<(), ContactRejection> {
        if matches!(
            self.status,
            ContactStatus::Deleting | ContactStatus::Deleted
        ) {
            Err(ContactRejection::StatusMismatch)
        } else {
            Ok(())
        }
    }

    fn pending(&self, target: &VerificationTarget) -> Result<(), ContactRejection> {
        let pending = match target {
            VerificationTarget::Email(email) => self.pending_email_address() == Some(email),
            VerificationTarget::Phone(phone) => self.pending_phone_number() == Some(phone),
        };
        if pending {
            Ok(())
        } else {
            Err(ContactRejection::NotPending)
        }
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
    fn forgetting_deletes_a_live_contact_first_then_redacts_it_and_needs_nothing_more() {
        let live = given(&[added()]);
        let decided = live.forget();
        assert_eq!(
            decided,
            [
                ContactEvent::MessageContactDeleted,
                ContactEvent::MessageContactForgotten
            ]
        );
        let mut events = vec![added()];
        events.extend(decided);
        let forgotten = given(&events);
        assert_eq!(forgotten.status, ContactStatus::Deleted);
        assert!(forgotten.is_forgotten());
        assert!(forgotten.name.is_redacted() && forgotten.email_address.is_redacted());
        assert!(
            forgotten
                .phone_number
                .as_ref()
                .is_some_and(PhoneNumber::is_redacted)
        );
        assert_eq!(
            forgotten.title,
            Title::TechnicalDirector,
            "what names no one stays"
        );
        assert_eq!(forgotten.forget(), []);

        let deleted = given(&[added(), ContactEvent::MessageContactDeleted]);
        assert_eq!(deleted.forget(), [ContactEvent::MessageContactForgotten]);
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

    fn minutes(m: i64) -> chrono::TimeDelta {
        chrono::TimeDelta::minutes(m)
    }

    fn email_target(raw: &str) -> VerificationTarget {
        VerificationTarget::Email(email(raw))
    }

    fn phone_target(raw: &str) -> VerificationTarget {
        VerificationTarget::Phone(phone(raw))
    }

    /// Decides and applies a send for `target`, expiring 15 minutes after `at(0)`.
    fn sent(contact: &Contact, target: &VerificationTarget) -> (Contact, VerificationId) {
        let id = VerificationId::generate();
        let event = contact
            .request_verification(target, id, at(0) + minutes(15))
            .unwrap();
        let mut after = contact.clone();
        after.apply(&event, at(1));
        (after, id)
    }

    fn confirmed(contact: &Contact, target: &VerificationTarget, id: VerificationId) -> Contact {
        let event = contact.confirm(target, id, at(2)).unwrap();
        let mut after = contact.clone();
        after.apply(&event, at(2));
        after
    }

    #[test]
    fn a_send_for_the_pending_email_issues_a_code_that_a_newer_send_replaces() {
        let contact = given(&[added()]);
        let target = email_target("tom@example.com");
        let (contact, first) = sent(&contact, &target);
        assert_eq!(
            contact.live_code(&target, at(3)).unwrap().verification_id,
            first
        );
        let (contact, second) = sent(&contact, &target);
        assert_eq!(
            contact.live_code(&target, at(3)).unwrap().verification_id,
            second
        );
        assert_eq!(
            contact.confirm(&target, first, at(3)),
            Err(ContactRejection::NoLiveCode),
            "the replaced code no longer confirms"
        );
        assert!(contact.confirm(&target, second, at(3)).is_ok());
    }

    #[test]
    fn a_send_for_a_value_that_is_not_pending_is_refused() {
        let contact = given(&[added()]);
        for target in [
            email_target("other@example.com"),
            phone_target("86-18612345678"),
        ] {
            assert_eq!(
                contact.request_verification(&target, VerificationId::generate(), at(9)),
                Err(ContactRejection::NotPending),
                "{target:?}"
            );
        }
        let target = email_target("tom@example.com");
        let (contact, id) = sent(&contact, &target);
        let verified = confirmed(&contact, &target, id);
        assert_eq!(
            verified.request_verification(&target, VerificationId::generate(), at(9)),
            Err(ContactRejection::NotPending),
            "a verified address is no longer pending"
        );
    }

    #[test]
    fn confirming_the_first_email_address_puts_it_in_effect_and_makes_the_contact_active() {
        let target = email_target("tom@example.com");
        let (contact, id) = sent(&given(&[added()]), &target);
        let event = contact.confirm(&target, id, at(2)).unwrap();
        assert_eq!(
            event,
            ContactEvent::EmailAddressVerified {
                verification_id: id,
                email_address: email("tom@example.com")
            }
        );
        let contact = confirmed(&contact, &target, id);
        assert_eq!(contact.status, ContactStatus::Active);
        assert_eq!(contact.active_email_address, Some(email("tom@example.com")));
        assert_eq!(contact.pending_email_address(), None);
        assert_eq!(contact.email_code, None);
    }

    #[test]
    fn a_code_is_single_use() {
        let target = email_target("tom@example.com");
        let (contact, id) = sent(&given(&[added()]), &target);
        let contact = confirmed(&contact, &target, id);
        assert_eq!(
            contact.confirm(&target, id, at(3)),
            Err(ContactRejection::NotPending)
        );
    }

    #[test]
    fn an_expired_code_is_refused_and_no_code_at_all_likewise() {
        let target = email_target("tom@example.com");
        let contact = given(&[added()]);
        assert_eq!(
            contact.live_code(&target, at(1)),
            Err(ContactRejection::NoLiveCode),
            "nothing was sent yet"
        );
        let (contact, id) = sent(&contact, &target);
        let expiry = at(0) + minutes(15);
        assert!(
            contact
                .confirm(&target, id, expiry - chrono::TimeDelta::seconds(1))
                .is_ok()
        );
        assert_eq!(
            contact.confirm(&target, id, expiry),
            Err(ContactRejection::NoLiveCode)
        );
    }

    #[test]
    fn a_new_value_asked_for_voids_the_code_of_the_previous_one() {
        let target = email_target("tom@example.com");
        let (contact, id) = sent(&given(&[added()]), &target);
        let mut changed = contact.clone();
        changed.apply(
            &ContactEvent::EmailAddressChangeRequested {
                email_address: email("new@example.com"),
            },
            at(2),
        );
        assert_eq!(changed.email_code, None);
        assert_eq!(
            changed.confirm(&target, id, at(3)),
            Err(ContactRejection::NotPending)
        );
        assert_eq!(
            changed.live_code(&email_target("new@example.com"), at(3)),
            Err(ContactRejection::NoLiveCode)
        );
    }

    #[test]
    fn a_verified_phone_number_is_in_effect_but_does_not_activate_the_contact() {
        let target = phone_target("86-13912345678");
        let (contact, id) = sent(&given(&[added()]), &target);
        let contact = confirmed(&contact, &target, id);
        assert_eq!(contact.active_phone_number, Some(phone("86-13912345678")));
        assert_eq!(contact.status, ContactStatus::Verifying);
        assert_eq!(
            contact.pending_targets(),
            vec![email_target("tom@example.com")]
        );
    }

    #[test]
    fn pending_targets_list_the_email_address_then_the_phone_number() {
        let contact = given(&[added()]);
        assert_eq!(
            contact.pending_targets(),
            vec![
                email_target("tom@example.com"),
                phone_target("86-13912345678")
            ]
        );
    }

    /// A contact whose first email address is verified, with a new one pending.
    fn active_with_pending_email() -> Contact {
        let target = email_target("tom@example.com");
        let (contact, id) = sent(&given(&[added()]), &target);
        let mut contact = confirmed(&contact, &target, id);
        contact.apply(
            &ContactEvent::EmailAddressChangeRequested {
                email_address: email("new@example.com"),
            },
            at(3),
        );
        contact
    }

    #[test]
    fn a_change_of_a_verified_email_address_keeps_the_contact_active() {
        let contact = active_with_pending_email();
        assert_eq!(contact.status, ContactStatus::Active);
        assert_eq!(contact.email_address, email("new@example.com"));
        assert_eq!(contact.active_email_address, Some(email("tom@example.com")));
    }

    #[test]
    fn cancelling_a_pending_email_address_restores_the_verified_one() {
        let contact = active_with_pending_email();
        let command = CancelMessageContactUpdate {
            email_address: Some(email("new@example.com")),
            phone_number: None,
        };
        let events = contact.cancel(&command).unwrap();
        assert_eq!(
            events,
            vec![ContactEvent::EmailAddressChangeCancelled {
                email_address: email("new@example.com")
            }]
        );
        let mut after = contact.clone();
        after.apply(&events[0], at(4));
        assert_eq!(after.email_address, email("tom@example.com"));
        assert_eq!(after.pending_email_address(), None);
    }

    #[test]
    fn the_first_email_address_cannot_be_cancelled() {
        let contact = given(&[added()]);
        let command = CancelMessageContactUpdate {
            email_address: Some(email("tom@example.com")),
            phone_number: None,
        };
        assert_eq!(
            contact.cancel(&command),
            Err(ContactRejection::StatusMismatch)
        );
    }

    #[test]
    fn cancelling_what_is_not_pending_or_nothing_at_all_is_refused_and_changes_nothing() {
        let contact = active_with_pending_email();
        for command in [
            CancelMessageContactUpdate::default(),
            CancelMessageContactUpdate {
                email_address: Some(email("tom@example.com")),
                phone_number: None,
            },
            // The phone is pending, but the email named with it is not: all or nothing.
            CancelMessageContactUpdate {
                email_address: Some(email("other@example.com")),
                phone_number: Some(phone("86-13912345678")),
            },
        ] {
            assert_eq!(
                contact.cancel(&command),
                Err(ContactRejection::StatusMismatch),
                "{command:?}"
            );
        }
    }

    #[test]
    fn cancelling_a_first_phone_number_leaves_none_and_a_changed_one_the_verified_one() {
        let contact = given(&[added()]);
        let command = CancelMessageContactUpdate {
            email_address: None,
            phone_number: Some(phone("86-13912345678")),
        };
        let mut after = contact.clone();
        for event in contact.cancel(&command).unwrap() {
            after.apply(&event, at(1));
        }
        assert_eq!((after.phone_number, after.phone_code), (None, None));

        let target = phone_target("86-13912345678");
        let (contact, id) = sent(&contact, &target);
        let mut contact = confirmed(&contact, &target, id);
        contact.apply(
            &ContactEvent::PhoneNumberChangeRequested {
                phone_number: phone("86-18612345678"),
            },
            at(3),
        );
        let command = CancelMessageContactUpdate {
            email_address: None,
            phone_number: Some(phone("86-18612345678")),
        };
        for event in contact.clone().cancel(&command).unwrap() {
            contact.apply(&event, at(4));
        }
        assert_eq!(contact.phone_number, Some(phone("86-13912345678")));
        assert_eq!(contact.pending_phone_number(), None);
    }

    #[test]
    fn an_update_back_to_the_verified_value_ends_the_pending_change() {
        let contact = active_with_pending_email();
        let events = when(
            &contact,
            UpdateMessageContact {
                email_address: Some(email("tom@example.com")),
                ..Default::default()
            },
        )
        .unwrap();
        let mut after = contact.clone();
        for event in &events {
            after.apply(event, at(5));
        }
        assert_eq!(after.pending_email_address(), None);
        assert!(
            after
                .pending_targets()
                .iter()
                .all(|t| t.channel() != Channel::Email)
        );
    }

    #[test]
    fn a_deleting_contact_refuses_sends_confirmations_and_cancellations() {
        let target = email_target("tom@example.com");
        let (mut contact, id) = sent(&given(&[added()]), &target);
        contact.status = ContactStatus::Deleting;
        assert_eq!(
            contact.request_verification(&target, VerificationId::generate(), at(9)),
            Err(ContactRejection::StatusMismatch)
        );
        assert_eq!(
            contact.confirm(&target, id, at(2)),
            Err(ContactRejection::StatusMismatch)
        );
        let command = CancelMessageContactUpdate {
            email_address: None,
            phone_number: Some(phone("86-13912345678")),
        };
        assert_eq!(
            contact.cancel(&command),
            Err(ContactRejection::StatusMismatch)
        );
    }

    mod lifecycle {
        //! Bindings and deletes.

        use super::*;
        use crate::{DirectoryEvent, FolderId, ResourceDirectoryId};

        fn root() -> ResourceDirectoryId {
            ResourceDirectoryId::parse("rd-0123456789").unwrap()
        }

        fn folder(n: usize) -> FolderId {
            FolderId::parse(&format!("fd-{n:010}")).unwrap()
        }

        /// A directory with twelve folders at the root and one member.
        fn directory() -> Directory {
            let account = AccountId::parse("1234567890123456").unwrap();
            let mut events = vec![Directory::create(root())];
            events.extend((0..12).map(|n| DirectoryEvent::FolderRegistered {
                folder_id: folder(n),
                parent_id: None,
            }));
            events.push(DirectoryEvent::MemberRegistered {
                account_id: MemberAccountId::parse("1000000000000001").unwrap(),
                folder_id: Some(folder(0)),
            });
            Directory::fold(account, events.iter().map(|e| (e, at(0)))).unwrap()
        }

        fn targets(range: std::ops::Range<usize>) -> Vec<MemberId> {
            range.map(|n| MemberId::Folder(folder(n))).collect()
        }

        fn bound(contact: &Contact, targets: &[MemberId], second: u32) -> Contact {
            let mut contact = contact.clone();
            for event in contact.associate(targets, Some(&directory())).unwrap() {
                contact.apply(&event, at(second));
            }
            contact
        }

        #[test]
        fn only_targets_of_the_directory_are_bound_and_bound_ones_change_nothing() {
            let contact = given(&[added()]);
            let directory = directory();
            let stranger = MemberId::Folder(FolderId::parse("fd-zzzzzzzzzz").unwrap());
            assert_eq!(
                contact.associate(std::slice::from_ref(&stranger), Some(&directory)),
                Err(ContactRejection::InvalidMember)
            );
            assert_eq!(
                contact.associate(&[MemberId::Directory(root())], None),
                Err(ContactRejection::InvalidMember)
            );
            let member = MemberId::Account(MemberAccountId::parse("1000000000000001").unwrap());
            let first = vec![MemberId::Directory(root()), member.clone()];
            assert_eq!(
                contact.associate(&first, Some(&directory)),
                Ok(vec![ContactEvent::MembersAssociated {
                    members: first.clone()
                }])
            );
            let contact = bound(&contact, &first, 3);
            assert_eq!(contact.associate(&first, Some(&directory)), Ok(vec![]));
            assert_eq!(contact.members[1].bound_at, at(3));
            assert_eq!(contact.associated_at(), Some(at(3)));
            assert_eq!(contact.version, 2);
        }

        #[test]
        fn at_most_ten_targets_are_bound() {
            let contact = bound(&given(&[added()]), &targets(0..9), 1);
            let directory = directory();
            assert_eq!(
                contact.associate(&targets(9..11), Some(&directory)),
                Err(ContactRejection::TooManyMembers)
            );
            // Targets already bound do not count twice.
            let contact = bound(&contact, &targets(8..10), 2);
            assert_eq!(contact.members.len(), 10);
            assert_eq!(
                contact.associate(&targets(10..11), Some(&directory)),
                Err(ContactRejection::TooManyMembers)
            );
        }

        #[test]
        fn unbinding_an_unbound_target_changes_nothing_and_a_stranger_is_invalid() {
            let contact = bound(&given(&[added()]), &targets(0..2), 1);
            let directory = directory();
            assert_eq!(
                contact.disassociate(&targets(2..3), Some(&directory)),
                Ok(vec![])
            );
            assert_eq!(
                contact.disassociate(
                    &[MemberId::Folder(FolderId::parse("fd-zzzzzzzzzz").unwrap())],
                    Some(&directory)
                ),
                Err(ContactRejection::InvalidMember)
            );
            let events = contact
                .disassociate(&targets(0..3), Some(&directory))
                .unwrap();
            assert_eq!(
                events,
                vec![ContactEvent::MembersDisassociated {
                    members: targets(0..2)
                }]
            );
            // A target the directory dropped can still be unbound.
            assert_eq!(contact.disassociate(&targets(1..2), None).unwrap().len(), 1);
            assert_eq!(contact.unbind_removed(&targets(0..1)[0]).len(), 1);
            assert_eq!(contact.unbind_removed(&targets(5..6)[0]), vec![]);
        }

        #[test]
        fn a_delete_that_retains_the_contact_in_members_deletes_it_at_once() {
            let contact = given(&[added()]);
            let (events, status) = contact.delete(true, Uuid::nil()).unwrap();
            assert_eq!(events, vec![ContactEvent::MessageContactDeleted]);
            assert_eq!(status, DeleteStatus::Deleted);
            let mut deleted = contact.clone();
            deleted.apply(&events[0], at(1));
            assert_eq!(deleted.status, ContactStatus::Deleted);
            assert_eq!(
                deleted.update(&UpdateMessageContact::default()),
                Err(ContactRejection::StatusMismatch)
            );
            assert_eq!(
                deleted.delete(true, Uuid::nil()),
                Err(ContactRejection::StatusMismatch)
            );
            assert_eq!(deleted.unbind_removed(&targets(0..1)[0]), vec![]);
        }

        #[test]
        fn an_asynchronous_delete_runs_answers_deleting_again_and_ends_once() {
            let contact = bound(&given(&[added()]), &targets(0..1), 1);
            let first = Uuid::now_v7();
            let (events, status) = contact.delete(false, first).unwrap();
            assert_eq!(status, DeleteStatus::Deleting);
            let mut deleting = contact.clone();
            deleting.apply(&events[0], at(2));
            assert_eq!(deleting.status, ContactStatus::Deleting);
            // Running: deleting again answers Deleting, whatever is asked, and changes nothing.
            for retain in [true, false] {
                assert_eq!(
                    deleting.delete(retain, Uuid::now_v7()),
                    Ok((vec![], DeleteStatus::Deleting))
                );
            }
            for refused in [
                deleting.update(&UpdateMessageContact::default()).err(),
                deleting.associate(&targets(1..2), Some(&directory())).err(),
                deleting
                    .disassociate(&targets(0..1), Some(&directory()))
                    .err(),
            ] {
                assert_eq!(refused, Some(ContactRejection::StatusMismatch));
            }
            // Another delete's end changes nothing; its own deletes the contact.
            assert_eq!(deleting.finish_deletion(Uuid::now_v7(), vec![]), vec![]);
            assert_eq!(
                deleting.finish_deletion(first, vec![]),
                vec![ContactEvent::MessageContactDeleted]
            );
        }

        #[test]
        fn a_failed_delete_keeps_its_reasons_and_a_new_delete_starts_over() {
            let contact = given(&[added()]);
            let first = Uuid::now_v7();
            let (events, _) = contact.delete(false, first).unwrap();
            let mut failed = contact.clone();
            failed.apply(&events[0], at(1));
            let reasons = vec![FailReason {
                account_id: MemberAccountId::parse("1000000000000001").unwrap(),
                message_types: types(&["AccountExpenses"]),
            }];
            let ended = failed.finish_deletion(first, reasons.clone());
            assert_eq!(
                ended,
                vec![ContactEvent::ContactDeletionFailed {
                    deletion_id: first,
                    fail_reasons: reasons.clone()
                }]
            );
            failed.apply(&ended[0], at(2));
            assert_eq!(failed.status, ContactStatus::Deleting);
            assert_eq!(
                failed.deletion.as_ref().and_then(|d| d.failures.clone()),
                Some(reasons)
            );
            // The failed delete is over: ending it again changes nothing.
            assert_eq!(failed.finish_deletion(first, vec![]), vec![]);
            let second = Uuid::now_v7();
            assert_eq!(
                failed.delete(false, second),
                Ok((
                    vec![ContactEvent::ContactDeletionStarted {
                        deletion_id: second
                    }],
                    DeleteStatus::Deleting
                ))
            );
            assert_eq!(
                failed.delete(true, second),
                Ok((
                    vec![ContactEvent::MessageContactDeleted],
                    DeleteStatus::Deleted
                ))
            );
        }
    }
}
