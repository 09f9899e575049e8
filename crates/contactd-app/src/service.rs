//! The contact use cases: add, update, get, list, and the client-token memory around them.

use std::hash::{BuildHasher, RandomState};

use chrono::{DateTime, Utc};
use contactd_domain::{
    AddMessageContact, ClientToken, Contact, ContactEvent, ContactId, ContactName, ContactStatus,
    CountryCodes, EmailAddress, MemberId, MessageTypes, PhoneNumber, Title, UpdateMessageContact,
};
use tokio::sync::Mutex;
use tracing::{debug, instrument};
use uuid::Uuid;

use crate::context::CallContext;
use crate::error::AppError;
use crate::paging::PageRequest;
use crate::port::{
    Append, AppendError, CodeIssue, ContactStore, EventMetadata, IDEMPOTENCY_WINDOW,
    IdempotencyKey, NameClaim, NewEvent, Operation, Outcome, RememberedCall,
};
use crate::recorder::Recording;
use crate::verification::VerificationPolicy;

/// The service's rules that are settings rather than code.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Contacts not deleted per account (`LimitExceeded.Contacts` beyond).
    pub max_contacts: u32,
    /// Country calling codes accepted in phone numbers.
    pub country_codes: CountryCodes,
    /// How many times an update is decided afresh when another process changed the contact
    /// under it, before `ConcurrentCallNotSupported`.
    pub max_attempts: u32,
    /// How many contacts this process keeps as it last wrote them, so that the next update of
    /// one is decided without reading it back (0: always read).
    pub decided_contacts: usize,
    /// Codes: their lifetime, the send limits, the secret they are derived under.
    pub verification: VerificationPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_contacts: 20,
            country_codes: CountryCodes::default(),
            max_attempts: 5,
            decided_contacts: DEFAULT_DECIDED_CONTACTS,
            verification: VerificationPolicy::default(),
        }
    }
}

/// A new contact's fields, parsed by the front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    pub name: ContactName,
    pub email_address: EmailAddress,
    pub phone_number: Option<PhoneNumber>,
    pub title: Title,
    pub message_types: MessageTypes,
}

/// A parsed `ListMessageContacts` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub contact_id: Option<ContactId>,
    pub member: Option<MemberId>,
    pub page: PageRequest,
}

/// How a command on a contact is carried out, beyond what it decides: the RPC it answers
/// (the scope of its client token), the token, and for a send the code it issues.
#[derive(Debug)]
pub(crate) struct Change<'a> {
    pub operation: Operation,
    pub idempotency: Option<Idempotency>,
    pub code: Option<&'a CodeIssue>,
}

/// A client token with the fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub token: ClientToken,
    pub fingerprint: Vec<u8>,
}

/// Serialises, within this process, the commands on one contact: they would only conflict in
/// the database and be decided again. Conflicts with other processes are still caught by the
/// store's version check and retried.
const LOCK_STRIPES: usize = 1024;

/// Enough for every contact of 800 full accounts, about 7 MiB (some 450 bytes a contact).
pub const DEFAULT_DECIDED_CONTACTS: usize = 16 * 1024;

/// The contacts of one lock stripe as this process last wrote them, least recently used first.
///
/// An update decides on the cached state instead of reading the row back. That is safe because
/// the cache is never the authority: the append carries the version the decision was made on,
/// and if any other process (or a rebuild, or a future workflow) moved the contact on, the
/// store refuses it and the update reads the row and decides again. Reads (`Get`, `List`)
/// never use it, so they always see what has committed, whichever process wrote it.
#[derive(Debug, Default)]
pub(crate) struct Stripe {
    decided: Vec<Contact>,
}

impl Stripe {
    pub(crate) fn take(&mut self, contact_id: &ContactId) -> Option<Contact> {
        let at = self
            .decided
            .iter()
            .position(|c| &c.contact_id == contact_id)?;
        Some(self.decided.remove(at))
    }

    fn keep(&mut self, contact: Contact, capacity: usize) {
        if capacity == 0 {
            return;
        }
        if self.decided.len() >= capacity {
            self.decided.remove(0);
        }
        self.decided.push(contact);
    }
}

#[derive(Debug)]
pub struct ContactService<S> {
    store: S,
    policy: Policy,
    stripes: Box<[Mutex<Stripe>]>,
    stripe_hasher: RandomState,
    decided_per_stripe: usize,
    recording: Recording,
}

impl<S: ContactStore> ContactService<S> {
    pub fn new(store: S, policy: Policy) -> Self {
        Self {
            store,
            decided_per_stripe: policy.decided_contacts.div_ceil(LOCK_STRIPES),
            policy,
            stripes: (0..LOCK_STRIPES)
                .map(|_| Mutex::new(Stripe::default()))
                .collect(),
            stripe_hasher: RandomState::new(),
            recording: Recording::none(),
        }
    }

    /// Reports appends, conflicts and retries to `recording`.
    pub fn with_recording(mut self, recording: Recording) -> Self {
        self.recording = recording;
        self
    }

    pub(crate) fn recording(&self) -> &Recording {
        &self.recording
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The response of an earlier successful call with the same token, if any; a different
    /// request under the same token is `IdempotentParameterMismatch`.
    #[instrument(level = "debug", skip_all, fields(operation = operation.as_str()))]
    pub async fn recall(
        &self,
        ctx: &CallContext,
        operation: Operation,
        idempotency: &Idempotency,
    ) -> Result<Option<Outcome>, AppError> {
        let key = IdempotencyKey {
            account_id: ctx.account_id.clone(),
            operation,
            token: idempotency.token.clone(),
        };
        match self
            .store
            .recall(&key, ctx.received_at - IDEMPOTENCY_WINDOW)
            .await?
        {
            None => Ok(None),
            Some(call) if call.fingerprint == idempotency.fingerprint => {
                debug!("answering a retried call from memory");
                Ok(Some(call.outcome))
            }
            Some(_) => Err(AppError::IdempotentParameterMismatch),
        }
    }

    #[instrument(name = "command", level = "debug", skip_all, fields(command = Operation::AddMessageContact.as_str(), request_id = %ctx.request_id, contact_id = tracing::field::Empty))]
    pub async fn add_contact(
        &self,
        ctx: &CallContext,
        new: NewContact,
        idempotency: Option<Idempotency>,
    ) -> Result<Outcome, AppError> {
        let contact_id = ContactId::generate();
        tracing::Span::current().record("contact_id", contact_id.as_str());
        let event = Contact::add(AddMessageContact {
            contact_id,
            account_id: ctx.account_id.clone(),
            name: new.name,
            email_address: new.email_address,
            phone_number: new.phone_number,
            title: new.title,
            message_types: new.message_types,
        });
        let contact = Contact::created(&event, ctx.received_at).ok_or_else(|| {
            AppError::Internal(crate::StoreError::internal(
                "add produced no creation event",
                None,
            ))
        })?;
        let outcome = Outcome::Added {
            request_id: ctx.request_id.to_string(),
            contact: Box::new(contact.clone()),
        };
        let remember = idempotency
            .map(|i| self.remembered(ctx, Operation::AddMessageContact, i, outcome.clone()));
        let events = [NewEvent {
            event_id: new_event_id(),
            event,
        }];
        let append = Append {
            contact: &contact,
            expected_version: 0,
            events: &events,
            metadata: &metadata(ctx, ctx.received_at),
            name_claim: NameClaim::Claim {
                key: contact.name.uniqueness_key(),
            },
            quota_limit: Some(self.policy.max_contacts),
            remember: remember.as_ref(),
            code: None,
        };
        match self.store.append(append).await {
            Ok(()) => {
                self.recording.events_appended(events.len());
                self.stripe(&contact.contact_id)
                    .lock()
                    .await
                    .keep(contact, self.decided_per_stripe);
                Ok(outcome)
            }
            Err(error) => self.answer_refused_append(ctx, remember, error).await,
        }
    }

    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id, contact_id = %contact_id))]
    pub async fn update_contact(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
        command: &UpdateMessageContact,
        idempotency: Option<Idempotency>,
    ) -> Result<Outcome, AppError> {
        let change = Change {
            operation: Operation::UpdateMessageContact,
            idempotency,
            code: None,
        };
        self.change(ctx, contact_id, change, |state| Ok(state.update(command)?))
            .await
    }

    /// Runs a command on a contact whose response is its request id alone.
    pub(crate) async fn change(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
        change: Change<'_>,
        decide: impl Fn(&Contact) -> Result<Vec<ContactEvent>, AppError>,
    ) -> Result<Outcome, AppError> {
        let request_id = ctx.request_id.to_string();
        self.change_answering(ctx, contact_id, change, decide, |_, _| {
            Outcome::Acknowledged {
                request_id: request_id.clone(),
            }
        })
        .await
    }

    /// Runs a command on a contact: decides it on the contact's state (as this process last
    /// wrote it, else as stored), appends what it decided at the version it decided on, and
    /// decides again on the stored state when another process moved the contact on. Every
    /// command that changes a contact's stream goes through here. `answer` makes the response
    /// from the state after the command and the time its events are recorded at.
    #[instrument(name = "command", level = "debug", skip_all, fields(command = change.operation.as_str(), contact_id = %contact_id))]
    pub(crate) async fn change_answering(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
        change: Change<'_>,
        decide: impl Fn(&Contact) -> Result<Vec<ContactEvent>, AppError>,
        answer: impl Fn(&Contact, DateTime<Utc>) -> Outcome,
    ) -> Result<Outcome, AppError> {
        let remembered_as = |outcome: &Outcome| {
            change
                .idempotency
                .clone()
                .map(|i| self.remembered(ctx, change.operation, i, outcome.clone()))
        };
        let mut stripe = self.stripe(contact_id).lock().await;
        let mut cached = stripe
            .take(contact_id)
            .filter(|state| state.account_id == ctx.account_id);
        let mut attempts = 0;
        loop {
            let (state, remembered) = match cached.take() {
                Some(state) => (state, true),
                None => (
                    self.store
                        .load_contact(&ctx.account_id, contact_id)
                        .await?
                        .ok_or(AppError::ContactNotFound)?,
                    false,
                ),
            };
            let decided = match decide(&state) {
                // Only an append checks the version it was decided on: an answer that writes
                // nothing is given on the stored state, never on the remembered one, lest a
                // change made meanwhile by another process be overlooked.
                Ok(decided) if decided.is_empty() && remembered => continue,
                Err(_) if remembered => continue,
                Ok(decided) => decided,
                Err(error) => {
                    stripe.keep(state, self.decided_per_stripe);
                    return Err(error);
                }
            };
            // Recorded times never go back within a stream, whatever the clocks of the processes.
            let now = crate::context::now().max(state.updated_at);
            if decided.is_empty() {
                let outcome = answer(&state, now);
                let remember = remembered_as(&outcome);
                stripe.keep(state, self.decided_per_stripe);
                return match &remember {
                    None => Ok(outcome),
                    Some(call) => match self.store.remember(call).await {
                        Ok(()) => Ok(outcome),
                        Err(error) => self.answer_refused_append(ctx, remember, error).await,
                    },
                };
            }
            let mut after = state.clone();
            let events: Vec<NewEvent> = decided
                .into_iter()
                .map(|event| {
                    after.apply(&event, now);
                    NewEvent {
                        event_id: new_event_id(),
                        event,
                    }
                })
                .collect();
            let outcome = answer(&after, now);
            let remember = remembered_as(&outcome);
            let (from, to) = (state.name.uniqueness_key(), after.name.uniqueness_key());
            let name_claim = if after.status == ContactStatus::Deleted {
                NameClaim::Release { key: from }
            } else if from == to {
                NameClaim::Keep
            } else {
                NameClaim::Move { from, to }
            };
            let append = Append {
                contact: &after,
                expected_version: state.version,
                events: &events,
                metadata: &metadata(ctx, now),
                name_claim,
                quota_limit: None,
                remember: remember.as_ref(),
                code: change.code,
            };
            match self.store.append(append).await {
                Ok(()) => {
                    self.recording.events_appended(events.len());
                    if after.status != ContactStatus::Deleted {
                        stripe.keep(after, self.decided_per_stripe);
                    }
                    return Ok(outcome);
                }
                Err(AppendError::VersionConflict) => {
                    self.recording.version_conflict();
                    attempts += 1;
                    if attempts >= self.policy.max_attempts {
                        return Err(AppError::ConcurrentCall);
                    }
                    self.recording.decided_again();
                    debug!(
                        attempts,
                        "the contact changed under the call; deciding again"
                    );
                }
                // A refusal is an answer that writes nothing: never given on remembered state.
                Err(
                    AppendError::NameAlreadyUsed
                    | AppendError::QuotaExceeded
                    | AppendError::SendLimitExceeded,
                ) if remembered => {}
                Err(
                    error @ (AppendError::NameAlreadyUsed
                    | AppendError::QuotaExceeded
                    | AppendError::SendLimitExceeded),
                ) => {
                    // Refused as a whole: the contact is still as it was read.
                    stripe.keep(state, self.decided_per_stripe);
                    return self.answer_refused_append(ctx, remember, error).await;
                }
                // Whether a failed store committed is unknown: read the row next time.
                Err(error) => return self.answer_refused_append(ctx, remember, error).await,
            }
        }
    }

    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id, contact_id = %contact_id))]
    pub async fn get_contact(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
    ) -> Result<Contact, AppError> {
        self.store
            .load_contact(&ctx.account_id, contact_id)
            .await?
            .ok_or(AppError::ContactNotFound)
    }

    pub(crate) fn remembered(
        &self,
        ctx: &CallContext,
        operation: Operation,
        idempotency: Idempotency,
        outcome: Outcome,
    ) -> RememberedCall {
        RememberedCall {
            key: IdempotencyKey {
                account_id: ctx.account_id.clone(),
                operation,
                token: idempotency.token,
            },
            fingerprint: idempotency.fingerprint,
            outcome,
            recorded_at: ctx.received_at,
        }
    }

    /// The store refused the append. If a call with the same token committed first (its name
    /// claim or token row is then what collided), answer as a retry of that call would.
    pub(crate) async fn answer_refused_append(
        &self,
        ctx: &CallContext,
        remember: Option<RememberedCall>,
        error: AppendError,
    ) -> Result<Outcome, AppError> {
        let Some(call) = remember.filter(|_| !matches!(error, AppendError::Store(_))) else {
            return Err(append_error(error));
        };
        let idempotency = Idempotency {
            token: call.key.token,
            fingerprint: call.fingerprint,
        };
        match self.recall(ctx, call.key.operation, &idempotency).await? {
            Some(outcome) => Ok(outcome),
            None => Err(append_error(error)),
        }
    }

    pub(crate) fn stripe(&self, contact_id: &ContactId) -> &Mutex<Stripe> {
        let index = self.stripe_hasher.hash_one(contact_id) as usize % self.stripes.len();
        &self.stripes[index]
    }
}

pub(crate) fn metadata(ctx: &CallContext, recorded_at: DateTime<Utc>) -> EventMetadata {
    let request_id = ctx.request_id.to_string();
    EventMetadata {
        causation_id: ctx
            .causation_id
            .clone()
            .unwrap_or_else(|| request_id.clone()),
        request_id,
        account_id: ctx.account_id.clone(),
        caller: ctx.principal.to_string(),
        correlation_id: ctx.correlation_id.clone(),
        recorded_at,
    }
}

/// Event ids are time-ordered (UUID v7): unique like any UUID, and inserted at the right edge of
/// their unique index instead of at random pages of it.
pub(crate) fn new_event_id() -> Uuid {
    Uuid::now_v7()
}

pub(crate) fn append_error(error: AppendError) -> AppError {
    match error {
        AppendError::NameAlreadyUsed => AppError::NameAlreadyUsed,
        AppendError::QuotaExceeded => AppError::ContactQuotaExceeded,
        AppendError::SendLimitExceeded => AppError::SendLimitExceeded,
        AppendError::VersionConflict | AppendError::ClientTokenTaken => AppError::ConcurrentCall,
        AppendError::Store(error) => error.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use chrono::DateTime;
    use contactd_domain::{AccountId, ContactStatus, Title};

    use super::*;
    use crate::port::StoreError;

    fn contact() -> Contact {
        let event = Contact::add(AddMessageContact {
            contact_id: ContactId::generate(),
            account_id: AccountId::parse("1").unwrap(),
            name: ContactName::parse("Tom").unwrap(),
            email_address: EmailAddress::parse("tom@example.com").unwrap(),
            phone_number: None,
            title: Title::Other,
            message_types: MessageTypes::parse(["FaultMessage"]).unwrap().unwrap(),
        });
        let contact = Contact::created(&event, Utc::now()).unwrap();
        assert_eq!(contact.status, ContactStatus::Verifying);
        contact
    }

    /// One contact that other processes may move on behind the service's back, or (`racing`)
    /// move on before every append lands.
    struct OneContact {
        contact: std::sync::Mutex<Contact>,
        racing: bool,
        loads: AtomicU32,
        appends: AtomicU32,
    }

    impl OneContact {
        fn current(&self) -> Contact {
            self.contact.lock().unwrap().clone()
        }

        /// Another process updates the contact.
        fn moved_on_elsewhere(&self, title: Title) {
            let mut contact = self.contact.lock().unwrap();
            contact.title = title;
            contact.version += 1;
        }
    }

    impl ContactStore for OneContact {
        async fn load_contact(
            &self,
            account_id: &AccountId,
            _: &ContactId,
        ) -> Result<Option<Contact>, StoreError> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            Ok(Some(self.current()).filter(|c| &c.account_id == account_id))
        }
        async fn append(&self, append: Append<'_>) -> Result<(), AppendError> {
            self.appends.fetch_add(1, Ordering::SeqCst);
            let mut contact = self.contact.lock().unwrap();
            if self.racing || contact.version != append.expected_version {
                return Err(AppendError::VersionConflict);
            }
            *contact = append.contact.clone();
            Ok(())
        }
        async fn forget(&self, _: crate::Forget<'_>) -> Result<(), AppendError> {
            // These tests never forget; a call here is a test gone wrong.
            Err(AppendError::Store(StoreError::internal(
                "not in this fake",
                None,
            )))
        }
        async fn list_contacts(
            &self,
            _: &AccountId,
            _: Option<&ContactId>,
            _: Option<&MemberId>,
            page: PageRequest,
        ) -> Result<crate::Page<crate::ListedContact>, StoreError> {
            Ok(crate::Page {
                request: page,
                total_count: 0,
                items: vec![],
            })
        }
        async fn recall(
            &self,
            _: &IdempotencyKey,
            _: DateTime<Utc>,
        ) -> Result<Option<RememberedCall>, StoreError> {
            Ok(None)
        }
        async fn remember(&self, _: &RememberedCall) -> Result<(), AppendError> {
            Ok(())
        }
        async fn claim_code_try(
            &self,
            _: &AccountId,
            _: contactd_domain::VerificationId,
            _: u32,
        ) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn find_link(
            &self,
            _: &[u8; 32],
        ) -> Result<Option<crate::port::LinkedCode>, StoreError> {
            Ok(None)
        }
    }

    fn service_of_one(policy: Policy, racing: bool) -> (ContactService<OneContact>, ContactId) {
        let contact = contact();
        let id = contact.contact_id.clone();
        let store = OneContact {
            contact: std::sync::Mutex::new(contact),
            racing,
            loads: AtomicU32::new(0),
            appends: AtomicU32::new(0),
        };
        (ContactService::new(store, policy), id)
    }

    fn remembering(decided_contacts: usize) -> (ContactService<OneContact>, ContactId) {
        let policy = Policy {
            decided_contacts,
            ..Policy::default()
        };
        service_of_one(policy, false)
    }

    fn retitle(title: Title) -> UpdateMessageContact {
        UpdateMessageContact {
            title: Some(title),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_conflict_that_persists_is_answered_with_concurrent_call_after_deciding_afresh_each_time()
     {
        let policy = Policy {
            max_attempts: 3,
            ..Policy::default()
        };
        let (service, id) = service_of_one(policy, true);
        let ctx = CallContext::new(AccountId::parse("1").unwrap(), None);
        let result = service
            .update_contact(&ctx, &id, &retitle(Title::Ceo), None)
            .await;
        assert!(
            matches!(result, Err(AppError::ConcurrentCall)),
            "{result:?}"
        );
        assert_eq!(
            service.store().loads.load(Ordering::SeqCst),
            3,
            "state read afresh for each attempt"
        );
        assert_eq!(service.store().appends.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn the_next_update_is_decided_on_the_state_this_process_wrote_without_reading_it() {
        let (service, id) = remembering(DEFAULT_DECIDED_CONTACTS);
        let ctx = CallContext::new(AccountId::parse("1").unwrap(), None);
        for title in [Title::Ceo, Title::ProjectDirector, Title::FinanceDirector] {
            service
                .update_contact(&ctx, &id, &retitle(title), None)
                .await
                .unwrap();
        }
        assert_eq!(service.store().loads.load(Ordering::SeqCst), 1);
        let contact = service.store().current();
        assert_eq!(
            (contact.title, contact.version),
            (Title::FinanceDirector, 4)
        );
    }

    #[tokio::test]
    async fn a_contact_moved_on_by_another_process_is_read_again_and_decided_afresh() {
        let (service, id) = remembering(DEFAULT_DECIDED_CONTACTS);
        let ctx = CallContext::new(AccountId::parse("1").unwrap(), None);
        service
            .update_contact(&ctx, &id, &retitle(Title::Ceo), None)
            .await
            .unwrap();
        service.store().moved_on_elsewhere(Title::ProjectDirector);

        // Back to CEO: on the stale cached state (CEO already) this would look like no change.
        service
            .update_contact(&ctx, &id, &retitle(Title::Ceo), None)
            .await
            .unwrap();

        assert_eq!(service.store().loads.load(Ordering::SeqCst), 2);
        let contact = service.store().current();
        assert_eq!((contact.title, contact.version), (Title::Ceo, 4));
    }

    #[tokio::test]
    async fn another_account_never_gets_a_remembered_contact() {
        let (service, id) = remembering(DEFAULT_DECIDED_CONTACTS);
        let owner = CallContext::new(AccountId::parse("1").unwrap(), None);
        service
            .update_contact(&owner, &id, &retitle(Title::Ceo), None)
            .await
            .unwrap();
        let stranger = CallContext::new(AccountId::parse("2").unwrap(), None);
        let answer = service
            .update_contact(&stranger, &id, &retitle(Title::Other), None)
            .await;
        assert!(
            matches!(answer, Err(AppError::ContactNotFound)),
            "{answer:?}"
        );
        assert_eq!(
            service.store().loads.load(Ordering::SeqCst),
            2,
            "the stranger's call read the store"
        );
    }

    #[tokio::test]
    async fn with_no_room_every_update_reads_the_contact() {
        let (service, id) = remembering(0);
        let ctx = CallContext::new(AccountId::parse("1").unwrap(), None);
        for title in [Title::Ceo, Title::ProjectDirector] {
            service
                .update_contact(&ctx, &id, &retitle(title), None)
                .await
                .unwrap();
        }
        assert_eq!(service.store().loads.load(Ordering::SeqCst), 2);
    }
}
