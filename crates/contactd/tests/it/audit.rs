//! `MessageContactAuditService` as a client sees it: a contact's history page by page, the
//! contact as of a version or a time, and the account's log streamed live; tenancy and errors
//! as everywhere else.

use std::time::Duration;

use contactd_grpc::proto::get_message_contact_as_of_request::AsOf;
use contactd_grpc::proto::{
    Contact, Event, GetMessageContactAsOfRequest, ListMessageContactEventsRequest,
    ListMessageContactEventsResponse, StreamEventsRequest, UpdateMessageContactRequest,
};
use prost_types::Timestamp;
use serde_json::Value as JsonValue;
use tonic::{Code, Status, Streaming};

use crate::support::*;

/// The longest a test waits for an event it expects on a stream.
const WAIT: Duration = Duration::from_secs(10);

/// Updates a contact as `account`; returns the call's request id.
async fn update(
    client: &mut Client,
    account: &str,
    request: UpdateMessageContactRequest,
) -> String {
    client
        .update_message_contact(as_account(account, request))
        .await
        .expect("update")
        .into_inner()
        .request_id
}

async fn retitle(client: &mut Client, account: &str, contact_id: &str, title: &str) -> String {
    let mut request = update_request(contact_id);
    request.title = Some(title.to_owned());
    update(client, account, request).await
}

async fn rename(client: &mut Client, account: &str, contact_id: &str, name: &str) -> String {
    let mut request = update_request(contact_id);
    request.name = Some(name.to_owned());
    update(client, account, request).await
}

fn page(contact_id: &str, page_size: i32, page_token: &str) -> ListMessageContactEventsRequest {
    ListMessageContactEventsRequest {
        contact_id: contact_id.to_owned(),
        page_size,
        page_token: page_token.to_owned(),
    }
}

async fn list(
    audit: &mut AuditClient,
    account: &str,
    request: ListMessageContactEventsRequest,
) -> Result<ListMessageContactEventsResponse, Status> {
    Ok(audit
        .list_message_contact_events(as_account(account, request))
        .await?
        .into_inner())
}

/// A contact's whole history in one page of the default size.
async fn history(audit: &mut AuditClient, account: &str, contact_id: &str) -> Vec<Event> {
    let response = list(audit, account, page(contact_id, 0, ""))
        .await
        .expect("list events");
    assert_eq!(response.next_page_token, "", "the history fits one page");
    response.events
}

async fn as_of(
    audit: &mut AuditClient,
    account: &str,
    contact_id: &str,
    as_of: Option<AsOf>,
) -> Result<Contact, Status> {
    let request = GetMessageContactAsOfRequest {
        contact_id: contact_id.to_owned(),
        as_of,
    };
    let response = audit
        .get_message_contact_as_of(as_account(account, request))
        .await?;
    let header = request_id_header(response.metadata());
    let body = response.into_inner();
    assert_eq!(header, body.request_id);
    Ok(body.contact.expect("contact"))
}

fn nanos(at: &Timestamp) -> i128 {
    i128::from(at.seconds) * 1_000_000_000 + i128::from(at.nanos)
}

fn timestamp(nanos: i128) -> Timestamp {
    Timestamp {
        seconds: i64::try_from(nanos.div_euclid(1_000_000_000)).expect("seconds in range"),
        nanos: i32::try_from(nanos.rem_euclid(1_000_000_000)).expect("nanos in range"),
    }
}

fn recorded_at(event: &Event) -> i128 {
    nanos(event.recorded_at.as_ref().expect("recorded_at"))
}

fn json(text: &str) -> JsonValue {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} is JSON: {e}"))
}

/// The stream's next event, waiting at most [`WAIT`] for it.
async fn next_event(stream: &mut Streaming<Event>) -> Event {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("an event arrives within the wait")
        .expect("the stream does not fail")
        .expect("the stream stays open")
}

/// The global positions of `account`'s events in log order, as the database orders them.
async fn account_log(db: &TestDb, account: &str) -> Vec<i64> {
    let sql = format!(
        "SELECT global_position FROM events WHERE account_id = $1 ORDER BY {}",
        db.log_order()
    );
    db.scalars(&sql, &[account]).await
}

const MISSING_CONTACT_ID: (&str, &str) =
    ("MissingParameter.ContactId", "You must specify ContactId.");
const NOT_FOUND: (&str, &str) = ("EntityNotExists.Contact", "This Contact does not exist.");
const INVALID_AS_OF: (&str, &str) = ("InvalidParameter.AsOf", "The AsOf is invalid.");

#[track_caller]
fn assert_not_found(status: &Status) {
    assert_error(status, Code::NotFound, NOT_FOUND.0, NOT_FOUND.1, None);
}

#[track_caller]
fn assert_invalid_as_of(status: &Status) {
    assert_error(
        status,
        Code::InvalidArgument,
        INVALID_AS_OF.0,
        INVALID_AS_OF.1,
        Some("as_of"),
    );
}

// ---------------------------------------------------------------- ListMessageContactEvents

async fn a_contacts_events_are_listed_in_stream_order_with_who_caused_them_and_why(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut audit = audit_client(&server).await;
    // A traced caller: its trace id is the correlation id of the events of its call.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut traced = as_account(ACCOUNT, add_request("Tom"));
    traced.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let added_response = server
        .client
        .add_message_contact(traced)
        .await
        .unwrap()
        .into_inner();
    let added = added_response.contact.unwrap();
    let mut change = update_request(&added.contact_id);
    change.name = Some("Thomas".into());
    change.email_address = Some("thomas@example.com".into());
    change.title = Some("CEO".into());
    let mut request = as_account(ACCOUNT, change);
    request
        .metadata_mut()
        .insert("x-acs-correlation-id", "order-42".parse().unwrap());
    let update_id = server
        .client
        .update_message_contact(request)
        .await
        .unwrap()
        .into_inner()
        .request_id;

    let response = audit
        .list_message_contact_events(as_account(ACCOUNT, page(&added.contact_id, 0, "")))
        .await
        .unwrap();
    let header = request_id_header(response.metadata());
    let body = response.into_inner();
    assert_request_id(&body.request_id);
    assert_eq!(header, body.request_id, "request id in body and metadata");
    assert_eq!(body.next_page_token, "", "one page holds it all");
    let events = body.events;

    let shape: Vec<(i64, &str, i32)> = events
        .iter()
        .map(|e| (e.stream_version, e.event_type.as_str(), e.schema_version))
        .collect();
    assert_eq!(
        shape,
        [
            (1, "MessageContactAdded", 2),
            (2, "MessageContactRenamed", 1),
            (3, "EmailAddressChangeRequested", 1),
            (4, "TitleChanged", 1),
        ]
    );
    let positions: Vec<i64> = events.iter().map(|e| e.global_position).collect();
    let stored: Vec<i64> = db
        .scalars(
            "SELECT global_position FROM events WHERE stream_id = $1 ORDER BY stream_version",
            &[&added.contact_id],
        )
        .await;
    assert_eq!(positions, stored, "global positions as stored");

    let caller = format!("account:{ACCOUNT}");
    for (event, (request_id, correlation_id)) in events.iter().zip([
        (&added_response.request_id, &trace_id.to_owned()),
        (&update_id, &"order-42".to_owned()),
        (&update_id, &"order-42".to_owned()),
        (&update_id, &"order-42".to_owned()),
    ]) {
        let what = &event.event_type;
        assert_eq!(event.stream_id, added.contact_id, "{what}");
        assert_eq!(&event.request_id, request_id, "{what}: request id");
        assert_eq!(event.caller, caller, "{what}: caller");
        assert_eq!(
            &event.correlation_id, correlation_id,
            "{what}: correlation id"
        );
        assert_eq!(&event.causation_id, request_id, "{what}: causation id");
        assert!(event.recorded_at.is_some(), "{what}: recorded_at");
    }
    assert_eq!(
        events[0].recorded_at, added.create_date,
        "the creation was recorded when the contact says it was created"
    );
    assert!(recorded_at(&events[1]) > recorded_at(&events[0]));
    assert_eq!(
        events[1].recorded_at, events[3].recorded_at,
        "one call's events share its time"
    );

    let payloads: Vec<JsonValue> = events.iter().map(|e| json(&e.payload_json)).collect();
    assert_eq!(
        payloads[0],
        json(&format!(
            r#"{{"contact_id": "{}", "name": "Tom", "email_address": "tom@example.com",
                "phone_number": "86-13912345678", "title": "TechnicalDirector",
                "message_types": ["AccountExpenses"]}}"#,
            added.contact_id
        )),
        "the version-2 creation payload, without the account id"
    );
    assert_eq!(payloads[1], json(r#"{"name": "Thomas"}"#));
    assert_eq!(
        payloads[2],
        json(r#"{"email_address": "thomas@example.com"}"#)
    );
    assert_eq!(payloads[3], json(r#"{"title": "CEO"}"#));
    server.stop().await;
}

async fn events_are_listed_page_by_page_until_the_token_comes_back_empty(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut audit = audit_client(&server).await;
    let tom = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    let mut change = update_request(&tom);
    change.name = Some("Thomas".into());
    change.title = Some("CEO".into());
    change.message_types = vec!["ProductMessage".into()];
    update(&mut server.client, ACCOUNT, change).await;
    let all = history(&mut audit, ACCOUNT, &tom).await;
    assert_eq!(all.len(), 4);

    let first = list(&mut audit, ACCOUNT, page(&tom, 2, "")).await.unwrap();
    assert_eq!(first.events, all[..2]);
    assert_ne!(first.next_page_token, "", "more events follow");
    let second = list(&mut audit, ACCOUNT, page(&tom, 2, &first.next_page_token))
        .await
        .unwrap();
    assert_eq!(second.events, all[2..]);
    assert_eq!(second.next_page_token, "", "the end");

    for size in [1, 3, 4, 1000] {
        let mut collected = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let response = list(&mut audit, ACCOUNT, page(&tom, size, &token))
                .await
                .unwrap();
            pages += 1;
            assert!(response.events.len() <= size as usize);
            collected.extend(response.events);
            if response.next_page_token.is_empty() {
                break;
            }
            token = response.next_page_token;
            assert!(pages < 10, "paging ends");
        }
        assert_eq!(collected, all, "pages of {size} cover the history once");
        assert_eq!(pages, 4_usize.div_ceil(size as usize), "pages of {size}");
    }
    server.stop().await;
}

async fn a_page_size_out_of_range_or_a_malformed_page_token_is_refused(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut audit = audit_client(&server).await;
    let tom = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;

    let default = list(&mut audit, ACCOUNT, page(&tom, 0, "")).await.unwrap();
    assert_eq!(default.events.len(), 1, "0 means the default size");
    for size in [1001, -1, i32::MIN] {
        let status = list(&mut audit, ACCOUNT, page(&tom, size, ""))
            .await
            .unwrap_err();
        assert_error(
            &status,
            Code::InvalidArgument,
            "InvalidParameter.PageSize",
            "The PageSize is invalid.",
            Some("page_size"),
        );
    }
    for token in ["abc", "v0", "v-1", "1", "v"] {
        let status = list(&mut audit, ACCOUNT, page(&tom, 10, token))
            .await
            .unwrap_err();
        assert_error(
            &status,
            Code::InvalidArgument,
            "InvalidParameter.PageToken",
            "The PageToken is invalid.",
            Some("page_token"),
        );
    }
    server.stop().await;
}

async fn listing_events_needs_a_contact_id_and_another_accounts_contact_is_not_found(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut audit = audit_client(&server).await;
    let theirs = add(&mut server.client, OTHER_ACCOUNT, "Tom")
        .await
        .contact_id;
    retitle(&mut server.client, OTHER_ACCOUNT, &theirs, "CEO").await;

    let status = list(&mut audit, ACCOUNT, page("", 0, ""))
        .await
        .unwrap_err();
    assert_error(
        &status,
        Code::InvalidArgument,
        MISSING_CONTACT_ID.0,
        MISSING_CONTACT_ID.1,
        Some("contact_id"),
    );
    assert_not_found(
        &list(&mut audit, ACCOUNT, page(&theirs, 0, ""))
            .await
            .unwrap_err(),
    );
    assert_not_found(
        &list(&mut audit, ACCOUNT, page("c-0000000000000000", 0, ""))
            .await
            .unwrap_err(),
    );
    let status = audit
        .list_message_contact_events(tonic::Request::new(page(&theirs, 0, "")))
        .await
        .unwrap_err();
    assert_error(
        &status,
        Code::Unauthenticated,
        "Unauthenticated",
        "The caller identity is missing or invalid.",
        None,
    );
    assert_eq!(
        history(&mut audit, OTHER_ACCOUNT, &theirs).await.len(),
        2,
        "its own account reads it"
    );
    server.stop().await;
}

async fn another_accounts_contact_is_not_found_on_a_later_page_either(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut audit = audit_client(&server).await;
    let theirs = add(&mut server.client, OTHER_ACCOUNT, "Tom")
        .await
        .contact_id;
    retitle(&mut server.client, OTHER_ACCOUNT, &theirs, "CEO").await;
    let next = list(&mut audit, OTHER_ACCOUNT, page(&theirs, 1, ""))
        .await
        .unwrap()
        .next_page_token;
    assert_ne!(next, "");

    // The token of the owner's first page, replayed by another account: the contact does not
    // exist for that account, whichever page it asks for.
    let answer = list(&mut audit, ACCOUNT, page(&theirs, 1, &next)).await;
    match answer {
        Err(status) => assert_not_found(&status),
        Ok(response) => panic!(
            "another account's contact answered a page: {} events, token {:?}",
            response.events.len(),
            response.next_page_token
        ),
    }
    server.stop().await;
}

// ---------------------------------------------------------------- GetMessageContactAsOf

async fn the_contact_as_of_a_version_is_the_fold_of_its_events_up_to_there(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut audit = audit_client(&server).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    let id = added.contact_id.clone();
    retitle(&mut server.client, ACCOUNT, &id, "CEO").await;
    rename(&mut server.client, ACCOUNT, &id, "Thomas").await;
    let now = get(&mut server.client, ACCOUNT, &id).await.unwrap();
    assert_eq!(now.version, 3);

    let v1 = as_of(&mut audit, ACCOUNT, &id, Some(AsOf::AsOfVersion(1)))
        .await
        .unwrap();
    assert_eq!(v1, added, "version 1 is the contact as added");
    assert_eq!(
        (v1.name.as_str(), v1.title.as_str()),
        ("Tom", "TechnicalDirector")
    );

    let v2 = as_of(&mut audit, ACCOUNT, &id, Some(AsOf::AsOfVersion(2)))
        .await
        .unwrap();
    assert_eq!(
        (v2.name.as_str(), v2.title.as_str(), v2.version),
        ("Tom", "CEO", 2)
    );
    assert_eq!(v2.create_date, added.create_date);
    assert!(nanos(v2.update_date.as_ref().unwrap()) > nanos(added.update_date.as_ref().unwrap()));

    let v3 = as_of(&mut audit, ACCOUNT, &id, Some(AsOf::AsOfVersion(3)))
        .await
        .unwrap();
    assert_eq!(v3, now, "the latest version is the contact as it is");
    let beyond = as_of(&mut audit, ACCOUNT, &id, Some(AsOf::AsOfVersion(99)))
        .await
        .unwrap();
    assert_eq!(beyond, now, "a version beyond the stream is its end");
    server.stop().await;
}

async fn the_contact_as_of_a_time_is_its_state_at_that_time(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut audit = audit_client(&server).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    let id = added.contact_id.clone();
    retitle(&mut server.client, ACCOUNT, &id, "CEO").await;
    rename(&mut server.client, ACCOUNT, &id, "Thomas").await;
    let events = history(&mut audit, ACCOUNT, &id).await;
    let (created, retitled, renamed) = (
        recorded_at(&events[0]),
        recorded_at(&events[1]),
        recorded_at(&events[2]),
    );
    assert!(created < retitled && retitled < renamed);
    let at = |nanos: i128| Some(AsOf::AsOfTime(timestamp(nanos)));

    let between = as_of(&mut audit, ACCOUNT, &id, at((retitled + renamed) / 2))
        .await
        .unwrap();
    assert_eq!(
        (
            between.name.as_str(),
            between.title.as_str(),
            between.version
        ),
        ("Tom", "CEO", 2),
        "between the two updates: after the first, before the second"
    );
    assert_eq!(between.update_date, events[1].recorded_at);

    let at_creation = as_of(&mut audit, ACCOUNT, &id, at(created)).await.unwrap();
    assert_eq!(
        at_creation, added,
        "an event recorded at that very time counts"
    );
    let just_before_rename = as_of(&mut audit, ACCOUNT, &id, at(renamed - 1000))
        .await
        .unwrap();
    assert_eq!(just_before_rename.version, 2);

    let later = as_of(&mut audit, ACCOUNT, &id, at(renamed + 3_600_000_000_000))
        .await
        .unwrap();
    assert_eq!(later, get(&mut server.client, ACCOUNT, &id).await.unwrap());

    let status = as_of(&mut audit, ACCOUNT, &id, at(created - 1_000_000_000))
        .await
        .unwrap_err();
    assert_not_found(&status);
    server.stop().await;
}

async fn as_of_must_be_given_and_valid_and_another_accounts_contact_is_not_found(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut audit = audit_client(&server).await;
    let mine = add(&mut server.client, ACCOUNT, "Tom").await;
    let theirs = add(&mut server.client, OTHER_ACCOUNT, "Tom").await;

    let status = as_of(&mut audit, ACCOUNT, &mine.contact_id, None)
        .await
        .unwrap_err();
    assert_error(
        &status,
        Code::InvalidArgument,
        "MissingParameter.AsOf",
        "You must specify AsOf.",
        Some("as_of"),
    );
    for version in [0, -1, i64::MIN] {
        let status = as_of(
            &mut audit,
            ACCOUNT,
            &mine.contact_id,
            Some(AsOf::AsOfVersion(version)),
        )
        .await
        .unwrap_err();
        assert_invalid_as_of(&status);
    }
    let bad_time = Timestamp {
        seconds: 1_700_000_000,
        nanos: -1,
    };
    let status = as_of(
        &mut audit,
        ACCOUNT,
        &mine.contact_id,
        Some(AsOf::AsOfTime(bad_time)),
    )
    .await
    .unwrap_err();
    assert_invalid_as_of(&status);

    let status = as_of(&mut audit, ACCOUNT, "", Some(AsOf::AsOfVersion(1)))
        .await
        .unwrap_err();
    assert_error(
        &status,
        Code::InvalidArgument,
        MISSING_CONTACT_ID.0,
        MISSING_CONTACT_ID.1,
        Some("contact_id"),
    );

    let their_time = theirs.create_date;
    for point in [AsOf::AsOfVersion(1), AsOf::AsOfTime(their_time.unwrap())] {
        let status = as_of(&mut audit, ACCOUNT, &theirs.contact_id, Some(point))
            .await
            .unwrap_err();
        assert_not_found(&status);
    }
    let status = as_of(
        &mut audit,
        ACCOUNT,
        "c-0000000000000000",
        Some(AsOf::AsOfVersion(1)),
    )
    .await
    .unwrap_err();
    assert_not_found(&status);
    assert_eq!(
        as_of(
            &mut audit,
            OTHER_ACCOUNT,
            &theirs.contact_id,
            Some(AsOf::AsOfVersion(1))
        )
        .await
        .unwrap(),
        theirs
    );
    server.stop().await;
}

// ---------------------------------------------------------------- StreamEvents

async fn the_stream_sends_the_callers_committed_events_in_log_order_then_live_ones(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut audit = audit_client(&server).await;
    let client = &mut server.client;
    let tom = add(client, ACCOUNT, "Tom").await.contact_id;
    let ann = add(client, OTHER_ACCOUNT, "Ann").await.contact_id;
    retitle(client, ACCOUNT, &tom, "CEO").await;
    retitle(client, OTHER_ACCOUNT, &ann, "CEO").await;
    let bob = add(client, ACCOUNT, "Bob").await.contact_id;
    let committed = account_log(&db, ACCOUNT).await;
    assert_eq!(committed.len(), 3);

    let mut stream = open_stream(&mut audit, ACCOUNT, 0).await.unwrap();
    let mut received = Vec::new();
    for _ in 0..committed.len() {
        received.push(next_event(&mut stream).await);
    }
    assert_eq!(
        received
            .iter()
            .map(|e| e.global_position)
            .collect::<Vec<_>>(),
        committed,
        "the caller's events, in log order"
    );
    assert_eq!(
        received
            .iter()
            .map(|e| (e.stream_id.as_str(), e.stream_version))
            .collect::<Vec<_>>(),
        [(tom.as_str(), 1), (tom.as_str(), 2), (bob.as_str(), 1)]
    );
    let listed = history(&mut audit, ACCOUNT, &tom).await;
    assert_eq!(
        received[..2],
        listed[..],
        "the same events as the audit list"
    );

    // Live: another account's change commits first, then the caller's; only the caller's
    // arrives.
    rename(&mut server.client, OTHER_ACCOUNT, &ann, "Anna").await;
    let request_id = rename(&mut server.client, ACCOUNT, &tom, "Thomas").await;
    let live = next_event(&mut stream).await;
    assert_eq!(
        (
            live.stream_id.as_str(),
            live.stream_version,
            live.event_type.as_str(),
            live.request_id.as_str()
        ),
        (
            tom.as_str(),
            3,
            "MessageContactRenamed",
            request_id.as_str()
        )
    );
    assert_eq!(json(&live.payload_json), json(r#"{"name": "Thomas"}"#));
    let newest = db
        .count("SELECT max(global_position) FROM events", &[])
        .await;
    assert_eq!(live.global_position, newest);

    let theirs = open_stream(&mut audit, OTHER_ACCOUNT, 0).await;
    let mut theirs = theirs.unwrap();
    let mut their_positions = Vec::new();
    for _ in 0..3 {
        their_positions.push(next_event(&mut theirs).await.global_position);
    }
    assert_eq!(their_positions, account_log(&db, OTHER_ACCOUNT).await);
    drop((stream, theirs));
    server.stop().await;
}

async fn a_stream_from_an_events_position_starts_with_exactly_that_event(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut audit = audit_client(&server).await;
    let client = &mut server.client;
    let tom = add(client, ACCOUNT, "Tom").await.contact_id;
    add(client, OTHER_ACCOUNT, "Ann").await;
    retitle(client, ACCOUNT, &tom, "CEO").await;
    add(client, ACCOUNT, "Bob").await;
    rename(client, ACCOUNT, &tom, "Thomas").await;

    let mut from_start = open_stream(&mut audit, ACCOUNT, 0).await.unwrap();
    let mut all = Vec::new();
    for _ in 0..4 {
        all.push(next_event(&mut from_start).await);
    }
    let second = all[1].global_position;
    let mut resumed = open_stream(&mut audit, ACCOUNT, second).await.unwrap();
    let first = next_event(&mut resumed).await;
    assert_eq!(first, all[1], "the event at from_position comes first");
    for expected in &all[2..] {
        assert_eq!(&next_event(&mut resumed).await, expected);
    }

    // The last event again (resuming after it), then live ones.
    let last = all[3].global_position;
    let mut at_end = open_stream(&mut audit, ACCOUNT, last).await.unwrap();
    assert_eq!(next_event(&mut at_end).await, all[3]);
    retitle(&mut server.client, ACCOUNT, &tom, "Other").await;
    let live = next_event(&mut at_end).await;
    assert_eq!(
        (
            live.stream_id.as_str(),
            live.stream_version,
            live.event_type.as_str()
        ),
        (tom.as_str(), 4, "TitleChanged")
    );
    drop((from_start, resumed, at_end));
    server.stop().await;
}

async fn a_stream_from_past_the_end_of_the_log_sends_no_older_event(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut audit = audit_client(&server).await;
    let tom = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    retitle(&mut server.client, ACCOUNT, &tom, "CEO").await;
    let newest = db
        .count("SELECT max(global_position) FROM events", &[])
        .await;

    // The next position the log will give: no event has it yet.
    let mut stream = open_stream(&mut audit, ACCOUNT, newest + 1).await.unwrap();
    rename(&mut server.client, ACCOUNT, &tom, "Thomas").await;
    let first = next_event(&mut stream).await;
    assert_eq!(
        (first.stream_version, first.event_type.as_str()),
        (3, "MessageContactRenamed"),
        "the first event sent is the one committed after the stream opened, not position {}",
        first.global_position
    );
    drop(stream);
    server.stop().await;
}

async fn a_stream_needs_an_account_and_a_position_that_is_not_negative(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut audit = audit_client(&server).await;
    add(&mut server.client, ACCOUNT, "Tom").await;

    let status = audit
        .stream_events(tonic::Request::new(StreamEventsRequest {
            from_position: 0,
        }))
        .await
        .unwrap_err();
    assert_error(
        &status,
        Code::Unauthenticated,
        "Unauthenticated",
        "The caller identity is missing or invalid.",
        None,
    );
    let status = audit
        .stream_events(as_account("not-digits", StreamEventsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    for from_position in [-1, i64::MIN] {
        let status = open_stream(&mut audit, ACCOUNT, from_position)
            .await
            .unwrap_err();
        assert_error(
            &status,
            Code::InvalidArgument,
            "InvalidParameter.FromPosition",
            "The FromPosition is invalid.",
            Some("from_position"),
        );
    }
    server.stop().await;
}

async fn the_server_stops_cleanly_while_streams_are_open_and_the_streams_end(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut audit = audit_client(&server).await;
    add(&mut server.client, ACCOUNT, "Tom").await;

    // One stream that has sent what there was and waits for more, one that never had anything.
    let mut busy = open_stream(&mut audit, ACCOUNT, 0).await.unwrap();
    next_event(&mut busy).await;
    let mut idle = open_stream(&mut audit, OTHER_ACCOUNT, 0).await.unwrap();

    let addr = server.addr;
    tokio::time::timeout(WAIT, server.stop())
        .await
        .expect("the server stops while streams are open");
    for stream in [&mut busy, &mut idle] {
        let end = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("the stream ends when the server stops");
        assert!(
            !matches!(end, Ok(Some(_))),
            "no event after shutdown: {end:?}"
        );
    }
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens after shutdown"
    );
}

both_backends!(
    a_contacts_events_are_listed_in_stream_order_with_who_caused_them_and_why,
    events_are_listed_page_by_page_until_the_token_comes_back_empty,
    a_page_size_out_of_range_or_a_malformed_page_token_is_refused,
    listing_events_needs_a_contact_id_and_another_accounts_contact_is_not_found,
    another_accounts_contact_is_not_found_on_a_later_page_either,
    the_contact_as_of_a_version_is_the_fold_of_its_events_up_to_there,
    the_contact_as_of_a_time_is_its_state_at_that_time,
    as_of_must_be_given_and_valid_and_another_accounts_contact_is_not_found,
    the_stream_sends_the_callers_committed_events_in_log_order_then_live_ones,
    a_stream_from_an_events_position_starts_with_exactly_that_event,
    a_stream_from_past_the_end_of_the_log_sends_no_older_event,
    a_stream_needs_an_account_and_a_position_that_is_not_negative,
    the_server_stops_cleanly_while_streams_are_open_and_the_streams_end,
);
