//! Forgetting a person (issue 13, ADR 13), end to end on both stores: `ForgetMessageContact`
//! over gRPC and its contract; the audit service after it (every event still there, no
//! personal field readable); no name, address or number left in the database (`pg_dump`, the
//! SQLite file and its WAL), the replay, the server's log or a rebuild; a tampered ciphertext
//! refused; the master key rotated twice; old clear events sealed in place by
//! `events encrypt`; and `contactd contacts forget`.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use contactd::backend::Store;
use contactd::settings::DatabaseSettings;
use contactd_grpc::proto::get_message_contact_as_of_request::AsOf;
use contactd_grpc::proto::message_contact_privacy_service_client::MessageContactPrivacyServiceClient;
use contactd_grpc::proto::{
    DeleteMessageContactRequest, Event, ForgetMessageContactRequest, GetMessageContactAsOfRequest,
    ListMessageContactEventsRequest, ListMessageContactsRequest,
};
use contactd_store_core::{Keyring, MasterKey};
use serde_json::{Value as JsonValue, json};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

use crate::secrets::{dump, sqlite_bytes};
use crate::support::*;

type PrivacyClient = MessageContactPrivacyServiceClient<Channel>;

const WAIT: Duration = Duration::from_secs(30);
const NOT_FOUND: (&str, &str) = ("EntityNotExists.Contact", "This Contact does not exist.");

/// A person's data, each piece unlike anything else the tests write, so that finding one
/// anywhere is finding this person.
const NAME: &str = "Zebulon";
const RENAMED: &str = "Zebadiah";
const EMAIL: &str = "zebulon.quill@example.org";
const NEW_EMAIL: &str = "zq.second@example.net";
const PHONE: &str = "86-13987654321";

/// Every way the person may be written down: as given, and as the stores key or print them.
fn personal_data() -> Vec<String> {
    vec![
        NAME.to_owned(),
        NAME.to_lowercase(),
        RENAMED.to_owned(),
        RENAMED.to_lowercase(),
        EMAIL.to_owned(),
        "zebulon.quill".to_owned(),
        NEW_EMAIL.to_owned(),
        "zq.second".to_owned(),
        PHONE.to_owned(),
        "13987654321".to_owned(),
    ]
}

#[track_caller]
fn assert_no_personal_data(place: &str, text: &str) {
    for piece in personal_data() {
        if let Some(at) = text.find(&piece) {
            // The bytes around it, lossily: a cut may fall inside a character.
            let bytes = text.as_bytes();
            let around = &bytes[at.saturating_sub(200)..(at + piece.len() + 200).min(bytes.len())];
            panic!(
                "{place} holds {piece:?}: …{}…",
                String::from_utf8_lossy(around)
            );
        }
    }
}

fn privacy(channel: &Channel) -> PrivacyClient {
    PrivacyClient::new(channel.clone())
}

async fn forget(
    client: &mut PrivacyClient,
    account: &str,
    contact_id: &str,
) -> Result<String, tonic::Status> {
    let response = client
        .forget_message_contact(as_account(
            account,
            ForgetMessageContactRequest {
                contact_id: contact_id.to_owned(),
            },
        ))
        .await?;
    let header = request_id_header(response.metadata());
    let body = response.into_inner();
    assert_eq!(
        body.request_id, header,
        "the request id in body and metadata"
    );
    assert_request_id(&body.request_id);
    Ok(body.request_id)
}

/// The person, added with a client token, renamed, given a new address, and sent a code to
/// each of its targets (once the dispatcher has recorded both, nothing more is written).
async fn the_person(client: &mut Client, db: &TestDb) -> String {
    let mut request = add_request(NAME);
    request.email_address = EMAIL.to_owned();
    request.phone_number = Some(PHONE.to_owned());
    request.client_token = "add-the-person".to_owned();
    let id = client
        .add_message_contact(as_account(ACCOUNT, request))
        .await
        .expect("add")
        .into_inner()
        .contact
        .expect("the contact")
        .contact_id;
    let mut change = update_request(&id);
    change.name = Some(RENAMED.to_owned());
    change.email_address = Some(NEW_EMAIL.to_owned());
    client
        .update_message_contact(as_account(ACCOUNT, change))
        .await
        .expect("update");
    send_email(client, ACCOUNT, &id, NEW_EMAIL)
        .await
        .expect("send an email");
    send_phone(client, ACCOUNT, &id, PHONE)
        .await
        .expect("send an SMS");
    until_every_message_is_sent(db).await;
    id
}

/// Every event of the contact's stream, as the audit service lists it.
async fn history(audit: &mut AuditClient, contact_id: &str) -> Result<Vec<Event>, tonic::Status> {
    Ok(audit
        .list_message_contact_events(as_account(
            ACCOUNT,
            ListMessageContactEventsRequest {
                contact_id: contact_id.to_owned(),
                page_size: 1000,
                page_token: String::new(),
            },
        ))
        .await?
        .into_inner()
        .events)
}

async fn as_of_version(
    audit: &mut AuditClient,
    contact_id: &str,
    version: i64,
) -> Result<contactd_grpc::proto::Contact, tonic::Status> {
    Ok(audit
        .get_message_contact_as_of(as_account(
            ACCOUNT,
            GetMessageContactAsOfRequest {
                contact_id: contact_id.to_owned(),
                as_of: Some(AsOf::AsOfVersion(version)),
            },
        ))
        .await?
        .into_inner()
        .contact
        .expect("a contact"))
}

async fn listed_ids(client: &mut Client, account: &str) -> Vec<String> {
    client
        .list_message_contacts(as_account(
            account,
            ListMessageContactsRequest {
                page_size: 100,
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .contacts
        .into_iter()
        .map(|contact| contact.contact_id)
        .collect()
}

async fn events_of(db: &TestDb, stream_id: &str) -> i64 {
    db.count(
        "SELECT count(*) FROM events WHERE stream_id = $1",
        &[stream_id],
    )
    .await
}

async fn forgetting_follows_the_contract(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut forgetter = privacy(&server.channel);

    // A live contact: gone everywhere, and its name free again.
    let tom = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    let before = events_of(&db, &tom).await;
    forget(&mut forgetter, ACCOUNT, &tom).await.expect("forget");
    let gone = get(&mut server.client, ACCOUNT, &tom)
        .await
        .expect_err("forgotten");
    assert_error(&gone, Code::NotFound, NOT_FOUND.0, NOT_FOUND.1, None);
    assert!(!listed_ids(&mut server.client, ACCOUNT).await.contains(&tom));
    let again = add(&mut server.client, ACCOUNT, "Tom").await;
    assert_ne!(again.contact_id, tom, "a new contact of the freed name");
    let forgotten = events_of(&db, &tom).await;
    assert!(forgotten > before, "the forgetting is evented");

    // Twice: the second succeeds and changes nothing.
    forget(&mut forgetter, ACCOUNT, &tom)
        .await
        .expect("forget again");
    assert_eq!(events_of(&db, &tom).await, forgotten, "no new event");

    // A deleted contact: its history still names it, so it can be forgotten too.
    let ann = add(&mut server.client, ACCOUNT, "Ann").await.contact_id;
    server
        .client
        .delete_message_contact(as_account(
            ACCOUNT,
            DeleteMessageContactRequest {
                contact_id: ann.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("delete");
    let deleted = events_of(&db, &ann).await;
    forget(&mut forgetter, ACCOUNT, &ann)
        .await
        .expect("forget a deleted contact");
    assert!(events_of(&db, &ann).await > deleted);

    // Unknown, and another account's: as if it did not exist, and the other's is untouched.
    let unknown = forget(&mut forgetter, ACCOUNT, "c-0000000000000000")
        .await
        .expect_err("unknown");
    assert_error(&unknown, Code::NotFound, NOT_FOUND.0, NOT_FOUND.1, None);
    let bob = add(&mut server.client, OTHER_ACCOUNT, "Bob")
        .await
        .contact_id;
    let theirs = forget(&mut forgetter, ACCOUNT, &bob)
        .await
        .expect_err("another account's");
    assert_error(&theirs, Code::NotFound, NOT_FOUND.0, NOT_FOUND.1, None);
    assert_eq!(
        get(&mut server.client, OTHER_ACCOUNT, &bob)
            .await
            .expect("still there")
            .name,
        "Bob"
    );

    // Malformed ids: the contract's parameter errors, naming the field.
    let missing = forget(&mut forgetter, ACCOUNT, "")
        .await
        .expect_err("missing");
    assert_error(
        &missing,
        Code::InvalidArgument,
        "MissingParameter.ContactId",
        "You must specify ContactId.",
        Some("contact_id"),
    );
    for malformed in ["c-short", "x-0000000000000000", "c-00000000000000é0"] {
        let invalid = forget(&mut forgetter, ACCOUNT, malformed)
            .await
            .expect_err(malformed);
        assert_error(
            &invalid,
            Code::InvalidArgument,
            "InvalidParameter.ContactId",
            "The ContactId is invalid.",
            Some("contact_id"),
        );
    }
    server.stop().await;
}

async fn the_audit_service_keeps_the_history_with_no_personal_field_readable(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let id = the_person(&mut server.client, &db).await;
    let mut audit = audit_client(&server).await;
    let before = history(&mut audit, &id).await.expect("the history");
    let joined: String = before.iter().map(|e| e.payload_json.clone()).collect();
    assert!(joined.contains(RENAMED), "read back before: {joined}");
    let first = as_of_version(&mut audit, &id, 1).await.expect("as of 1");
    assert_eq!(first.name, NAME);

    forget(&mut privacy(&server.channel), ACCOUNT, &id)
        .await
        .expect("forget");

    let after = history(&mut audit, &id).await.expect("the history stays");
    assert!(
        after.len() > before.len(),
        "the forgetting is in the history"
    );
    for (was, is) in before.iter().zip(&after) {
        assert_eq!(
            (&was.event_type, was.stream_version, &was.request_id),
            (&is.event_type, is.stream_version, &is.request_id),
            "every event is still there, in order"
        );
    }
    assert_eq!(
        after.last().map(|e| e.event_type.as_str()),
        Some("MessageContactForgotten")
    );
    let payloads: Vec<&str> = after.iter().map(|e| e.payload_json.as_str()).collect();
    assert_no_personal_data("the audit's events", &payloads.join("\n"));
    let added: JsonValue = serde_json::from_str(&after[0].payload_json).expect("JSON");
    for field in ["name", "email_address", "phone_number"] {
        assert_eq!(added[field], json!("[redacted]"), "{field}: {added}");
    }

    for version in 1..=i64::try_from(before.len()).unwrap() {
        let then = as_of_version(&mut audit, &id, version)
            .await
            .expect("as of an earlier version");
        assert_eq!(
            (
                then.name.as_str(),
                then.email_address.as_str(),
                then.phone_number.as_str(),
                then.active_email_address.as_str()
            ),
            ("", "", "", ""),
            "version {version}: {then:?}"
        );
    }

    let total = db.count("SELECT count(*) FROM events", &[]).await;
    let mut stream = open_stream(&mut audit, ACCOUNT, 0).await.expect("stream");
    let mut streamed = String::new();
    let mut seen = 0;
    while seen < total {
        let event = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("the next event in time")
            .expect("the stream goes on")
            .expect("an event");
        streamed.push_str(&format!("{event:?}\n"));
        seen += 1;
        if event.event_type == "MessageContactForgotten" && event.stream_id == id {
            break;
        }
    }
    assert!(streamed.contains("MessageContactForgotten"), "{streamed}");
    assert_no_personal_data("the live stream", &streamed);
    drop(stream);
    server.stop().await;
}

/// Runs `contactd <args>` to its end, as the operator would, with the tests' master key and
/// `$USER` set to `operator`.
async fn contactd(args: &[&str], key_file: &Path) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let key_file = key_file.to_owned();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_contactd"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .env("CONTACTD_MASTER_KEY_FILE", key_file)
            .env_remove("CONTACTD_PREVIOUS_MASTER_KEY_FILES")
            .env("USER", "operator")
            .output()
    })
    .await
    .expect("the command's task")
    .expect("contactd runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "contactd failed ({}): stdout {:?}, stderr {:?}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Waits until nothing that may have written an event is still running, so that a replay
/// prints every event written so far (see `offline.rs`).
async fn log_settled(db: &TestDb) {
    if db.backend() == Backend::Sqlite {
        return;
    }
    until("the log settles", Duration::from_secs(60), async || {
        let settled: bool = db
            .scalar(
                "SELECT coalesce(max(transaction_id) < pg_snapshot_xmin(pg_current_snapshot()), \
                 true) FROM events",
                &[],
            )
            .await;
        settled.then_some(())
    })
    .await;
}

/// `contactd events replay` under `key_file`: its lines.
async fn replay(db: &TestDb, key_file: &Path) -> String {
    log_settled(db).await;
    succeeded(&contactd(&["events", "replay", "--database-url", &db.url()], key_file).await)
}

/// Waits until the audit view has counted every event of the log: the projections are done.
async fn projections_caught_up(db: &TestDb) {
    until(
        "the projections catch up",
        Duration::from_secs(60),
        async || {
            let events = db.count("SELECT count(*) FROM events", &[]).await;
            let counted = db
                .count(
                    "SELECT CAST(coalesce(sum(events), 0) AS BIGINT) FROM account_activity",
                    &[],
                )
                .await;
            (counted == events).then_some(())
        },
    )
    .await;
}

async fn after_forgetting_no_personal_data_is_left_anywhere(db: TestDb) {
    let key = test_master_key_file();
    let mut process = Process::start_with(&db, &[], "debug");
    let mut client = process.client().await;
    let id = the_person(&mut client, &db).await;
    // Before forgetting, the person is there to be found: the checks below can fail.
    assert!(replay(&db, key).await.contains(RENAMED));
    let before = dump(&db).await;
    assert!(
        personal_data().iter().any(|piece| before.contains(piece)),
        "the read models hold the person while it is not forgotten"
    );

    let channel = Channel::from_shared(process.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    forget(&mut privacy(&channel), ACCOUNT, &id)
        .await
        .expect("forget");
    projections_caught_up(&db).await;
    drop((client, channel));
    assert!(process.terminate().await.success());

    let dumped = dump(&db).await;
    assert!(
        dumped.contains("MessageContactForgotten"),
        "the dump holds the log"
    );
    assert_no_personal_data("the database", &dumped);
    if db.backend() == Backend::Sqlite {
        assert_no_personal_data("the database file and its WAL", &sqlite_bytes(&db));
    }
    let log = process.log();
    assert!(log.contains("DEBUG"), "the log is at debug");
    assert_no_personal_data("the server's log", &log);

    let replayed = replay(&db, key).await;
    assert!(replayed.contains("[redacted]"), "{replayed}");
    assert_no_personal_data("the replay", &replayed);
    succeeded(
        &contactd(
            &["projections", "rebuild", "--database-url", &db.url()],
            key,
        )
        .await,
    );
    assert_eq!(
        replay(&db, key).await,
        replayed,
        "a rebuild changes no event's line"
    );
    assert_no_personal_data("the database after a rebuild", &dump(&db).await);
}

/// The stored payload of an event, and a copy with one character of its sealed `name`
/// changed (in the middle: base64's last character may carry bits that decoding drops).
async fn tampered_name(db: &TestDb, event_id: &str) -> (String, String) {
    let sql = format!(
        "SELECT CAST(payload AS TEXT) FROM events WHERE {} = $1",
        db.uuid_text("event_id")
    );
    let stored: String = db.scalar(&sql, &[event_id]).await;
    let mut payload: JsonValue = serde_json::from_str(&stored).expect("a JSON payload");
    let sealed = payload["name"].as_str().expect("a sealed name").to_owned();
    assert!(!sealed.contains(NAME), "the name is sealed: {sealed}");
    let mut chars: Vec<char> = sealed.chars().collect();
    let middle = chars.len() / 2;
    chars[middle] = if chars[middle] == 'A' { 'B' } else { 'A' };
    payload["name"] = json!(chars.into_iter().collect::<String>());
    (stored, payload.to_string())
}

/// Writes `payload` over the event's, past the append-only guard as an attacker with the
/// database's keys would: on PostgreSQL with the triggers off for one transaction, on SQLite
/// with the guard dropped and made again.
async fn overwrite_payload(db: &TestDb, event_id: &str, payload: &str) {
    let quoted = payload.replace('\'', "''");
    match db.backend() {
        Backend::Postgres => {
            db.execute_script(&format!(
                "BEGIN; SET LOCAL session_replication_role = replica; \
                 UPDATE events SET payload = '{quoted}'::jsonb WHERE event_id = '{event_id}'; \
                 COMMIT;"
            ))
            .await;
        }
        Backend::Sqlite => {
            let guards: Vec<(String, String)> = db
                .fetch_all(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' \
                     AND tbl_name = 'events' AND sql LIKE '%UPDATE%'",
                    &[],
                )
                .await;
            assert!(!guards.is_empty(), "the log has an append-only guard");
            let drop_them: String = guards
                .iter()
                .map(|(name, _)| format!("DROP TRIGGER {name}; "))
                .collect();
            let make_them: String = guards.iter().map(|(_, sql)| format!("{sql}; ")).collect();
            let id = event_id.replace('-', "");
            db.execute_script(&format!(
                "BEGIN IMMEDIATE; {drop_them} \
                 UPDATE events SET payload = '{quoted}' WHERE event_id = x'{id}'; \
                 {make_them} COMMIT;"
            ))
            .await;
        }
    }
}

async fn a_tampered_ciphertext_is_refused_never_read_as_garbage(db: TestDb) {
    let mut process = Process::start_with(&db, &[], "info");
    let mut client = process.client().await;
    let id = add(&mut client, ACCOUNT, NAME).await.contact_id;
    let event_id = last_event_id(&db, &id, "MessageContactAdded")
        .await
        .to_string();
    let (stored, tampered) = tampered_name(&db, &event_id).await;
    overwrite_payload(&db, &event_id, &tampered).await;

    let channel = Channel::from_shared(process.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut audit = AuditClient::new(channel.clone());
    let refused = history(&mut audit, &id).await.expect_err("unreadable");
    assert_error(
        &refused,
        Code::Internal,
        "InternalError",
        "The request processing has failed due to some unknown error.",
        None,
    );
    let as_of = as_of_version(&mut audit, &id, 1)
        .await
        .expect_err("unreadable");
    assert_eq!(as_of.code(), Code::Internal, "{as_of:?}");
    assert!(
        !format!("{refused:?}{as_of:?}").contains(&event_id),
        "the client is told nothing of the cause"
    );
    let log = until("the log names the event", WAIT, async || {
        let log = process.log();
        log.lines()
            .any(|line| line.contains(&event_id) && line.contains("unreadable"))
            .then_some(log)
    })
    .await;
    assert!(
        !log.contains(NAME),
        "garbage or the name never reaches the log"
    );

    // Put back as it was, it reads again: the refusal was the tampering's alone.
    overwrite_payload(&db, &event_id, &stored).await;
    let events = history(&mut audit, &id).await.expect("readable again");
    assert!(events[0].payload_json.contains(NAME));
    drop((client, audit, channel));
    assert!(process.terminate().await.success());
}

/// A master key file of a fresh key in `dir`; its path and the key's id.
fn key_file(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let (key, text) = MasterKey::generate();
    let path = dir.join(name);
    std::fs::write(&path, text).expect("a key file");
    (path, key.id().to_owned())
}

fn keyring_of(current: &Path) -> Keyring {
    Keyring::new(
        contactd::keys::read_master_key(current).expect("a key"),
        Vec::new(),
    )
}

/// A server on the test's database whose store holds `keyring` alone.
async fn server_under(db: &TestDb, keyring: Keyring) -> TestServer {
    let data_dir = tempfile::tempdir().expect("a data directory");
    let settings = DatabaseSettings::new(Some(db.url()), data_dir.path().to_owned());
    let store = Store::open_keyed(&settings, false, None, keyring)
        .await
        .expect("the store opens");
    TestServer::start_on(store, |_| {}).await
}

/// What a server answers about the contacts: each one's history and its first version.
async fn everything_read(server: &TestServer, ids: &[String]) -> String {
    let mut audit = audit_client(server).await;
    let mut client = server.client.clone();
    let mut out = String::new();
    for id in ids {
        let events = history(&mut audit, id).await.expect("the history reads");
        let payloads: Vec<&str> = events.iter().map(|e| e.payload_json.as_str()).collect();
        out.push_str(&format!("{id}: {}\n", payloads.join(" ")));
        let first = as_of_version(&mut audit, id, 1).await.expect("as of 1");
        out.push_str(&format!("{first:?}\n"));
        if let Ok(contact) = get(&mut client, ACCOUNT, id).await {
            out.push_str(&format!("{contact:?}\n"));
        }
    }
    out
}

async fn the_master_key_rotates_twice_and_everything_reads_back(db: TestDb) {
    let keys = tempfile::tempdir().expect("a directory for the keys");
    let (a, _) = key_file(keys.path(), "a.key");
    let (b, b_id) = key_file(keys.path(), "b.key");
    let (c, c_id) = key_file(keys.path(), "c.key");

    let mut server = server_under(&db, keyring_of(&a)).await;
    let id = the_person(&mut server.client, &db).await;
    let other = add(&mut server.client, ACCOUNT, "Ann").await.contact_id;
    let ids = [id, other];
    let read = everything_read(&server, &ids).await;
    assert!(read.contains(RENAMED) && read.contains("Ann"), "{read}");
    server.stop().await;
    let replayed = replay(&db, &a).await;

    let url = db.url();
    let rotate = |current: &Path, previous: &Path| {
        let previous = previous.display().to_string();
        let url = url.clone();
        let current = current.to_owned();
        async move {
            succeeded(
                &contactd(
                    &[
                        "keys",
                        "rotate",
                        "--database-url",
                        &url,
                        "--previous-master-key-file",
                        &previous,
                    ],
                    &current,
                )
                .await,
            )
        }
    };
    assert_eq!(
        rotate(&b, &a).await.trim(),
        format!("rewrapped 2 data keys; 0 already under {b_id}")
    );
    let server = server_under(&db, keyring_of(&b)).await;
    assert_eq!(everything_read(&server, &ids).await, read, "under B alone");
    server.stop().await;
    // Key A opens nothing any more.
    let refused = contactd(&["events", "replay", "--database-url", &db.url()], &a).await;
    assert!(!refused.status.success(), "A is no key of the log now");

    assert_eq!(
        rotate(&c, &b).await.trim(),
        format!("rewrapped 2 data keys; 0 already under {c_id}")
    );
    assert_eq!(
        rotate(&c, &b).await.trim(),
        format!("rewrapped 0 data keys; 2 already under {c_id}"),
        "a second rotation to the same key has nothing to do"
    );
    let server = server_under(&db, keyring_of(&c)).await;
    assert_eq!(everything_read(&server, &ids).await, read, "under C alone");
    server.stop().await;
    assert_eq!(replay(&db, &c).await, replayed, "the replay reads the same");
}

/// The envelope of an event of `stream` as an older version of the service stored it.
fn clear_event_sql(
    db: &TestDb,
    stream: &str,
    version: i64,
    event_type: &str,
    schema_version: i32,
    payload: &JsonValue,
) -> String {
    let event_id = uuid::Uuid::new_v4();
    let id = match db.backend() {
        Backend::Postgres => format!("'{event_id}'"),
        Backend::Sqlite => format!("x'{}'", event_id.simple()),
    };
    // As sqlx writes a time on either store (RFC 3339, `+00:00`): a year before this test.
    let recorded_at = "'2025-12-01T09:30:00+00:00'";
    let payload = payload.to_string().replace('\'', "''");
    format!(
        "INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, \
         schema_version, payload, request_id, caller, correlation_id, causation_id, recorded_at) \
         VALUES ({id}, '{ACCOUNT}', '{stream}', {version}, '{event_type}', {schema_version}, \
         '{payload}', 'OLD-REQUEST', 'account:{ACCOUNT}', 'old', 'OLD-REQUEST', {recorded_at})"
    )
}

async fn events_encrypt_seals_the_old_clear_events_once(db: TestDb) {
    let stream = "c-Old0ClearEvent01";
    let added = json!({
        "contact_id": stream,
        "account_id": ACCOUNT,
        "name": NAME,
        "email_address": EMAIL,
        "phone_number": PHONE,
        "title": "CEO",
        "message_types": ["ServiceMessage"],
    });
    let rows = [
        clear_event_sql(&db, stream, 1, "MessageContactAdded", 1, &added),
        clear_event_sql(
            &db,
            stream,
            2,
            "MessageContactRenamed",
            1,
            &json!({"name": RENAMED}),
        ),
        clear_event_sql(
            &db,
            stream,
            3,
            "EmailAddressChangeRequested",
            1,
            &json!({"email_address": NEW_EMAIL}),
        ),
    ];
    for row in &rows {
        db.execute(row).await;
    }
    let key = test_master_key_file();
    let events_table = || async {
        let payloads: Vec<String> = db
            .scalars("SELECT CAST(payload AS TEXT) FROM events", &[])
            .await;
        payloads.join("\n")
    };
    assert!(events_table().await.contains(RENAMED), "stored in clear");
    let before = replay(&db, key).await;
    assert!(before.contains(RENAMED), "{before}");

    let url = db.url();
    let encrypt = async || contactd(&["events", "encrypt", "--database-url", &url], key).await;
    assert_eq!(succeeded(&encrypt().await).trim(), "sealed 3 events");
    assert_no_personal_data("the events table", &events_table().await);
    assert_eq!(replay(&db, key).await, before, "reading gives the same");
    assert_eq!(
        succeeded(&encrypt().await).trim(),
        "sealed 0 events",
        "a second run seals nothing"
    );
    assert_eq!(replay(&db, key).await, before);

    // Sealed, the old contact is forgotten like any other.
    succeeded(
        &contactd(
            &[
                "projections",
                "rebuild",
                "contacts",
                "--database-url",
                &db.url(),
            ],
            key,
        )
        .await,
    );
    let server = TestServer::start(&db).await;
    forget(&mut privacy(&server.channel), ACCOUNT, stream)
        .await
        .expect("forget the old contact");
    server.stop().await;
    assert_no_personal_data("the replay", &replay(&db, key).await);
}

async fn the_operator_forgets_a_contact_from_the_command_line(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let id = the_person(&mut server.client, &db).await;
    let bob = add(&mut server.client, OTHER_ACCOUNT, "Bob")
        .await
        .contact_id;
    // The embedded store is one process's: the command opens it once the server is gone.
    server.stop().await;

    let key = test_master_key_file();
    let url = db.url();
    let cli = |account: &str, contact: &str| {
        let (account, contact, url) = (account.to_owned(), contact.to_owned(), url.clone());
        async move {
            contactd(
                &[
                    "contacts",
                    "forget",
                    "--account",
                    &account,
                    "--contact",
                    &contact,
                    "--database-url",
                    &url,
                ],
                key,
            )
            .await
        }
    };
    let forgotten = cli(ACCOUNT, &id).await;
    let printed = succeeded(&forgotten);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {printed:?}");
    assert_request_id(lines[0]);

    for (account, contact) in [
        (ACCOUNT, "c-0000000000000000"),
        (ACCOUNT, bob.as_str()),
        (OTHER_ACCOUNT, id.as_str()),
    ] {
        let refused = cli(account, contact).await;
        assert_eq!(refused.status.code(), Some(1), "{account} {contact}");
        assert!(
            text(&refused.stderr).contains("This Contact does not exist."),
            "{}",
            text(&refused.stderr)
        );
        assert!(refused.stdout.is_empty());
    }
    let malformed = cli(ACCOUNT, "c-short").await;
    assert_eq!(malformed.status.code(), Some(1));
    assert!(text(&malformed.stderr).contains("The ContactId is invalid."));

    let mut server = TestServer::start(&db).await;
    let gone = get(&mut server.client, ACCOUNT, &id)
        .await
        .expect_err("forgotten");
    assert_error(&gone, Code::NotFound, NOT_FOUND.0, NOT_FOUND.1, None);
    get(&mut server.client, OTHER_ACCOUNT, &bob)
        .await
        .expect("another account's contact is untouched");
    let mut audit = audit_client(&server).await;
    let events = history(&mut audit, &id).await.expect("the history");
    let last = events.last().expect("events");
    assert_eq!(last.event_type, "MessageContactForgotten");
    assert_eq!(last.caller, "service:cli:operator", "the operator asked");
    assert_eq!(last.request_id, lines[0], "under the request id printed");
    assert_no_personal_data(
        "the audit's events",
        &events
            .iter()
            .map(|e| e.payload_json.clone())
            .collect::<String>(),
    );
    // Again: nothing more to do, and still a success.
    server.stop().await;
    succeeded(&cli(ACCOUNT, &id).await);
    assert_eq!(
        events_of(&db, &id).await,
        i64::try_from(events.len()).unwrap(),
        "no new event"
    );
}

/// `contactd serve` with no master key file named: the first start generates the data
/// directory's `master.key`, readable by its owner alone, and warns that it must be kept; the
/// next start reads the same key. No store but the data directory's embedded one is needed,
/// so it runs once, not per backend.
#[tokio::test]
async fn a_first_local_start_generates_the_master_key_and_says_to_keep_it() {
    let data_dir = tempfile::tempdir().expect("a data directory");
    let log = data_dir.path().join("contactd.log");
    let key = data_dir.path().join("master.key");
    let start = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_contactd"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("CONTACTD_MASTER_KEY_FILE")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log"))
            .spawn()
            .expect("start contactd")
    };
    let started = async |child: &mut std::process::Child| {
        until("the server listens", WAIT, async || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                child.try_wait().unwrap().is_none(),
                "contactd exited: {text}"
            );
            text.contains("contactd listening").then_some(text)
        })
        .await
    };

    let mut first = start();
    let said = started(&mut first).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let text = std::fs::read_to_string(&key).expect("the key was generated");
    let digits = text.trim();
    assert_eq!(digits.len(), 64, "{text:?}");
    assert!(digits.bytes().all(|b| b.is_ascii_hexdigit()), "{text:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "readable by its owner alone");
    }
    let warning = said
        .lines()
        .find(|line| line.contains("generated a master key"))
        .unwrap_or_else(|| panic!("no warning: {said}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("back it up"), "{warning}");
    assert!(!said.contains(digits), "the key itself is never logged");

    let mut second = start();
    let said = started(&mut second).await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert!(!said.contains("generated a master key"), "{said}");
    assert!(
        said.contains("master key read from the data directory"),
        "{said}"
    );
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text, "the same key");
}

both_backends!(
    forgetting_follows_the_contract,
    the_audit_service_keeps_the_history_with_no_personal_field_readable,
    after_forgetting_no_personal_data_is_left_anywhere,
    a_tampered_ciphertext_is_refused_never_read_as_garbage,
    the_master_key_rotates_twice_and_everything_reads_back,
    events_encrypt_seals_the_old_clear_events_once,
    the_operator_forgets_a_contact_from_the_command_line,
);
