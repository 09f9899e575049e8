//! Building contacts, appends, services and reads for the suite's properties.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use contactd_app::{
    AccountActivity, Append, AuditLog, CallContext, ContactService, ContactStore, EventLog,
    EventMetadata, LogPosition, MemberContacts, NameClaim, NewContact, NewEvent, Outcome, Policy,
    ProjectionMetrics, RecordedEvent, RunnerSettings, VerificationOutbox,
};
use contactd_domain::{
    AccountId, AddMessageContact, Contact, ContactEvent, ContactId, ContactName, EmailAddress,
    MessageTypes, Title,
};
use tokio::sync::watch;

use crate::Backend;

pub const ACCOUNT: &str = "1234567890123456";
pub const OTHER_ACCOUNT: &str = "6543210987654321";

pub fn account() -> AccountId {
    AccountId::parse(ACCOUNT).unwrap()
}

pub fn other_account() -> AccountId {
    AccountId::parse(OTHER_ACCOUNT).unwrap()
}

pub fn ctx() -> CallContext {
    CallContext::new(account(), None)
}

pub fn ctx_of(account: &AccountId) -> CallContext {
    CallContext::new(account.clone(), None)
}

/// Now, at the precision stores keep (microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub fn email(address: &str) -> EmailAddress {
    EmailAddress::parse(address).unwrap()
}

pub fn new_contact(name: &str) -> NewContact {
    new_contact_at(name, "someone@example.com")
}

pub fn new_contact_at(name: &str, address: &str) -> NewContact {
    NewContact {
        name: ContactName::parse(name).unwrap(),
        email_address: email(address),
        phone_number: None,
        title: Title::Other,
        message_types: MessageTypes::parse(["FaultMessage"]).unwrap().unwrap(),
    }
}

/// A name made of letters only, distinct for each `i` below 676.
pub fn letters(i: usize) -> String {
    let a = char::from(b'a' + (i / 26) as u8);
    let b = char::from(b'a' + (i % 26) as u8);
    format!("Name{a}{b}")
}

pub fn metadata() -> EventMetadata {
    metadata_of(&account(), now())
}

pub fn metadata_of(account: &AccountId, recorded_at: DateTime<Utc>) -> EventMetadata {
    EventMetadata {
        request_id: uuid::Uuid::new_v4().to_string().to_uppercase(),
        account_id: account.clone(),
        caller: format!("account:{account}"),
        correlation_id: "corr".into(),
        causation_id: "cause".into(),
        recorded_at,
    }
}

/// A contact's first event and the state it creates, recorded at the metadata's time, in the
/// metadata's account.
pub fn created(name: &str, metadata: &EventMetadata) -> (NewEvent, Contact) {
    let event = Contact::add(AddMessageContact {
        contact_id: ContactId::generate(),
        account_id: metadata.account_id.clone(),
        name: ContactName::parse(name).unwrap(),
        email_address: email("someone@example.com"),
        phone_number: None,
        title: Title::Other,
        message_types: MessageTypes::parse(["FaultMessage"]).unwrap().unwrap(),
    });
    let contact = Contact::created(&event, metadata.recorded_at).unwrap();
    (
        NewEvent {
            event_id: uuid::Uuid::new_v4(),
            event,
        },
        contact,
    )
}

/// The append that stores a new contact, with a quota of 20.
pub fn creation<'a>(
    contact: &'a Contact,
    events: &'a [NewEvent],
    metadata: &'a EventMetadata,
) -> Append<'a> {
    Append {
        contact,
        expected_version: 0,
        events,
        metadata,
        name_claim: NameClaim::Claim {
            key: contact.name.uniqueness_key(),
        },
        quota_limit: Some(20),
        remember: None,
        code: None,
    }
}

/// The append of events decided on a stored contact at `expected_version`, keeping its name.
pub fn change<'a>(
    after: &'a Contact,
    expected_version: u64,
    events: &'a [NewEvent],
    metadata: &'a EventMetadata,
) -> Append<'a> {
    Append {
        expected_version,
        name_claim: NameClaim::Keep,
        quota_limit: None,
        ..creation(after, events, metadata)
    }
}

/// A title change decided on `state`, and the state after it.
pub fn retitled(state: &Contact, title: Title, metadata: &EventMetadata) -> (NewEvent, Contact) {
    let event = ContactEvent::TitleChanged { title };
    let mut after = state.clone();
    after.apply(&event, metadata.recorded_at);
    (
        NewEvent {
            event_id: uuid::Uuid::new_v4(),
            event,
        },
        after,
    )
}

/// Stores a new contact of the metadata's account (version 1).
/// Stores `n` new contacts (each at version 1), one append each.
pub async fn stored_contacts<S: ContactStore>(store: &S, n: usize) -> Vec<Contact> {
    let metadata = metadata();
    let mut contacts = Vec::with_capacity(n);
    for i in 0..n {
        let (added, contact) = created(&letters(i), &metadata);
        store
            .append(creation(&contact, std::slice::from_ref(&added), &metadata))
            .await
            .unwrap();
        contacts.push(contact);
    }
    contacts
}

pub async fn stored_contact(
    store: &impl ContactStore,
    name: &str,
    metadata: &EventMetadata,
) -> (NewEvent, Contact) {
    let (added, contact) = created(name, metadata);
    store
        .append(creation(&contact, std::slice::from_ref(&added), metadata))
        .await
        .unwrap();
    (added, contact)
}

/// Retitles a stored contact, one append; the state after it.
pub async fn stored_retitle(
    store: &impl ContactStore,
    state: &Contact,
    title: Title,
    metadata: &EventMetadata,
) -> (NewEvent, Contact) {
    let (changed, after) = retitled(state, title, metadata);
    store
        .append(change(
            &after,
            state.version,
            std::slice::from_ref(&changed),
            metadata,
        ))
        .await
        .unwrap();
    (changed, after)
}

/// The service on `store` with the default policy but for the quota: what a process runs.
pub fn service<S: ContactStore>(store: S, max_contacts: u32) -> Arc<ContactService<S>> {
    with_policy(
        store,
        Policy {
            max_contacts,
            ..Policy::default()
        },
    )
}

pub fn with_policy<S: ContactStore>(store: S, policy: Policy) -> Arc<ContactService<S>> {
    Arc::new(ContactService::new(store, policy))
}

/// The contact an add answered.
pub fn added(outcome: Outcome) -> Contact {
    match outcome {
        Outcome::Added { contact, .. } => *contact,
        other => panic!("an add answers the contact, not {other:?}"),
    }
}

/// Waits until every event committed before the call can be read (see [`whole_log`]); the
/// log's end at the call.
pub async fn settled(store: &impl EventLog) -> LogPosition {
    let end = store.log_end().await.unwrap();
    within("the log is readable to its end", async {
        while !store.readable_to(end).await.unwrap() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    end
}

/// Every event committed before the call, in log order, read in batches as a projection
/// reads them. A store may hold events back while an earlier write can still commit before
/// them (PostgreSQL does, for any transaction of the server, another test's too): the read
/// waits until nothing can commit before the log's end any more, as a replay does.
pub async fn whole_log(store: &impl EventLog) -> Vec<RecordedEvent> {
    let end = settled(store).await;
    let mut events = Vec::new();
    let mut after = LogPosition::START;
    loop {
        let batch = store.read_log(after, None, 500).await.unwrap();
        let Some(last) = batch.last() else {
            return events;
        };
        after = last.position;
        events.extend(batch.into_iter().take_while(|e| e.position < end));
        if after >= end {
            return events;
        }
    }
}

/// A whole stream of the account, in version order.
pub async fn history(
    store: &impl AuditLog,
    account: &AccountId,
    stream_id: &str,
) -> Vec<RecordedEvent> {
    store
        .stream_page(account, stream_id, 0, 100_000)
        .await
        .unwrap()
}

/// How many contacts the account has in the read model.
pub async fn contacts_listed(store: &impl ContactStore, account: &AccountId) -> u64 {
    let page = contactd_app::PageRequest { number: 1, size: 1 };
    store
        .list_contacts(account, None, None, page)
        .await
        .unwrap()
        .total_count
}

/// Waits for `future`, failing the test after a minute rather than hanging it.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(60), future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting until {what}"),
    }
}

/// A runner for tests: batches of `batch_size`, and no wait longer than a few milliseconds.
pub fn runner(holder: &str, batch_size: u32) -> RunnerSettings {
    RunnerSettings {
        batch_size,
        poll_interval: Duration::from_millis(10),
        takeover_interval: Duration::from_millis(10),
        gather_interval: Duration::ZERO,
        holder: holder.to_owned(),
    }
}

/// Waits until the runner reporting to `metrics` holds projection `name` and has applied the
/// log up to `until`.
pub async fn until_caught_up(metrics: &ProjectionMetrics, name: &str, until: LogPosition) {
    within(&format!("{name} has caught up with the log"), async {
        while !metrics
            .snapshot()
            .get(name)
            .is_some_and(|status| status.active && status.position >= until)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Runs projection `name` until it has applied every event committed before the call, then
/// stops it as a shutdown does (so that it saves its checkpoint).
pub async fn run_projection_to_end<B: Backend>(backend: &B, name: &'static str) {
    let Some(until) = whole_log(backend.store()).await.last().map(|e| e.position) else {
        return;
    };
    let metrics = ProjectionMetrics::default();
    let (stop, stopping) = watch::channel(false);
    let task = backend.spawn_projection(name, runner("catch-up", 500), metrics.clone(), stopping);
    until_caught_up(&metrics, name, until).await;
    stop.send(true).unwrap();
    within(&format!("{name} stops"), task).await.unwrap();
}

/// Runs the store's projections until they have applied every event committed before the
/// call: what the running service does in the background, done when a test is ready for it.
pub async fn catch_up_projections<B: Backend>(backend: &B) {
    for name in [
        AccountActivity::NAME,
        VerificationOutbox::NAME,
        MemberContacts::NAME,
    ] {
        run_projection_to_end(backend, name).await;
    }
}
