//! Crypto-shredding on SQLite (ADR 13): the append-only guard lets through exactly the sealing
//! moves; a forgotten contact leaves none of its bytes in the database file or its WAL; a
//! tampered sealed field is refused, naming its event; rotations keep every key readable; and
//! events stored in clear before encryption are sealed in place once.

use std::collections::BTreeSet;
use std::path::Path;

use contactd_app::{
    AppendError, AuditLog, ContactStore, EventLog, Forget, Idempotency, LogPosition, NewEvent,
    Outcome, RecordedEvent,
};
use contactd_domain::{
    ClientToken, Contact, ContactEvent, ContactName, EmailAddress, MessageTypes, PhoneChange,
    PhoneNumber, Title, UpdateMessageContact,
};
use contactd_store_conformance::fixtures::{ctx, service, stored_contact};
use contactd_store_core::encode_contact_event;
use contactd_store_core::sealing::{REDACTED, sealing_moves};
use contactd_store_sqlite::{Keyring, MasterKey, SqliteSettings, SqliteStore};
use uuid::Uuid;

use crate::support::*;

/// Inserts an event as a tool writing to the file would: any type, version and payload.
async fn insert_raw(
    store: &SqliteStore,
    stream_id: &str,
    stream_version: i64,
    event_type: &str,
    schema_version: i32,
    payload: &str,
) -> Uuid {
    let event_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, \
         schema_version, payload, request_id, caller, correlation_id, causation_id, recorded_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'req', 'caller', 'corr', 'cause', ?8)",
    )
    .bind(event_id)
    .bind(ACCOUNT)
    .bind(stream_id)
    .bind(stream_version)
    .bind(event_type)
    .bind(schema_version)
    .bind(payload)
    .bind(chrono::Utc::now())
    .execute(store.write_pool())
    .await
    .unwrap();
    event_id
}

/// The database's refusal of an update of one event, as its message says it.
async fn try_update(store: &SqliteStore, set: &str, event_id: Uuid) -> Result<(), String> {
    sqlx::query(&format!("UPDATE events SET {set} WHERE event_id = ?1"))
        .bind(event_id)
        .execute(store.write_pool())
        .await
        .map(|_| ())
        .map_err(|e| {
            e.as_database_error()
                .map_or_else(|| e.to_string(), |e| e.message().to_owned())
        })
}

/// The schema versions the guard is tried between: the clear ones of today, the sealed twins
/// (clear + 100) and the versions around both.
const VERSIONS: [i32; 8] = [1, 2, 3, 99, 100, 101, 102, 103];

#[tokio::test]
async fn the_guard_lets_exactly_the_sealing_moves_through_and_refuses_every_other_change() {
    let (store, _dir) = fresh().await;
    let moves: BTreeSet<(String, i32, i32)> = sealing_moves()
        .map(|(t, from, to)| (t.to_owned(), from, to))
        .collect();
    let mut stream = 0;
    let mut raw = async |event_type: &str, version: i32| {
        stream += 1;
        insert_raw(
            &store,
            &format!("guard-{stream}"),
            1,
            event_type,
            version,
            "{}",
        )
        .await
    };
    for (event_type, from, to) in &moves {
        let event_id = raw(event_type, *from).await;
        assert_eq!(
            try_update(
                &store,
                &format!(r#"schema_version = {to}, payload = '{{"sealed":1}}'"#),
                event_id
            )
            .await,
            Ok(()),
            "{event_type} {from} -> {to} is a sealing move"
        );
        // Sealed once: never again, nor back.
        for again in VERSIONS {
            let refused = try_update(&store, &format!("schema_version = {again}"), event_id).await;
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|m| m.contains("the event log is append-only")),
                "{event_type} sealed at {to}, then moved to {again}: {refused:?}"
            );
        }
    }
    // Every other move between the versions around them (a clear version, its sealed twin and
    // their neighbours), and a type that names no one.
    let types: BTreeSet<&str> = moves.iter().map(|(t, ..)| t.as_str()).collect();
    for event_type in types.iter().copied().chain(["MessageContactTitleChanged"]) {
        for from in VERSIONS {
            for to in VERSIONS {
                if moves.contains(&(event_type.to_owned(), from, to)) {
                    continue;
                }
                let event_id = raw(event_type, from).await;
                let refused = try_update(
                    &store,
                    &format!(r#"schema_version = {to}, payload = '{{"changed":1}}'"#),
                    event_id,
                )
                .await;
                assert!(
                    refused
                        .as_ref()
                        .is_err_and(|m| m.contains("the event log is append-only")),
                    "{event_type} {from} -> {to} is no sealing move: {refused:?}"
                );
            }
        }
    }
    // A sealing move that changes anything else too.
    let (event_type, from, to) = moves.iter().next().unwrap();
    for other in [
        "stream_version = 2",
        "caller = 'someone else'",
        "recorded_at = '2020-01-01T00:00:00+00:00'",
        "account_id = '6543210987654321'",
        "event_id = randomblob(16)",
    ] {
        let event_id = raw(event_type, *from).await;
        let refused =
            try_update(&store, &format!("schema_version = {to}, {other}"), event_id).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|m| m.contains("the event log is append-only")),
            "a move with {other}: {refused:?}"
        );
    }
}

const NAME: &str = "Xanthippeqz";
const RENAMED: &str = "Zebulonwqmb";
const EMAIL: &str = "xanthippe.quux@plughmail.example";
const NEW_EMAIL: &str = "zebulon.wombat@plughmail.example";
const PHONE: &str = "49-15199887766";
const NEW_PHONE: &str = "49-17655443322";
const OLD_NAME: &str = "Opheliagrnt";
const OLD_EMAIL: &str = "ophelia.grint@plughmail.example";

/// The database file and its WAL, as the disk holds them, lowercased.
fn file_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let wal = path.with_file_name("contactd.db-wal");
    if wal.exists() {
        bytes.extend(std::fs::read(wal).unwrap());
    }
    bytes.to_ascii_lowercase()
}

fn holds(bytes: &[u8], what: &str) -> bool {
    let what = what.to_ascii_lowercase();
    bytes.windows(what.len()).any(|w| w == what.as_bytes())
}

/// The personal values of both contacts of the test, and parts of some (an address's local
/// part, a number without its country code: what an index or a split record could keep).
fn personal_values() -> Vec<&'static str> {
    vec![
        NAME,
        RENAMED,
        EMAIL,
        "xanthippe.quux",
        NEW_EMAIL,
        "zebulon.wombat",
        PHONE,
        "15199887766",
        NEW_PHONE,
        "17655443322",
        OLD_NAME,
        OLD_EMAIL,
        "ophelia.grint",
    ]
}

/// A contact as stored before encryption: its events in clear, at the versions they were
/// written at then, and no key.
async fn stored_in_clear(store: &SqliteStore) -> Contact {
    let metadata = metadata();
    let (added, contact) = created(OLD_NAME, &metadata);
    let mut contact = contact;
    let (event_type, version, payload) = encode_contact_event(&added.event);
    insert_raw(
        store,
        contact.contact_id.as_str(),
        1,
        event_type,
        version,
        &payload.to_string(),
    )
    .await;
    let change = ContactEvent::EmailAddressChangeRequested {
        email_address: EmailAddress::parse(OLD_EMAIL).unwrap(),
    };
    let (event_type, version, payload) = encode_contact_event(&change);
    insert_raw(
        store,
        contact.contact_id.as_str(),
        2,
        event_type,
        version,
        &payload.to_string(),
    )
    .await;
    contact.apply(&change, metadata.recorded_at);
    contact.version = 2;
    contact
}

#[tokio::test]
async fn after_forgetting_neither_the_database_file_nor_its_wal_holds_the_persons_bytes() {
    let (store, dir) = fresh().await;
    let path = dir.path().join("contactd.db");
    let contacts = service(store.clone(), 100);
    let new = contactd_app::NewContact {
        name: ContactName::parse(NAME).unwrap(),
        email_address: EmailAddress::parse(EMAIL).unwrap(),
        phone_number: Some(PhoneNumber::restore(PHONE).unwrap()),
        title: Title::Other,
        message_types: MessageTypes::parse(["FaultMessage"]).unwrap().unwrap(),
    };
    let token = Idempotency {
        token: ClientToken::parse("forget-me-token").unwrap().unwrap(),
        fingerprint: vec![1, 2, 3],
    };
    let Outcome::Added { contact, .. } = contacts
        .add_contact(&ctx(), new, Some(token))
        .await
        .unwrap()
    else {
        panic!("an add answers the contact")
    };
    let update = UpdateMessageContact {
        name: Some(ContactName::parse(RENAMED).unwrap()),
        email_address: Some(EmailAddress::parse(NEW_EMAIL).unwrap()),
        phone_number: Some(PhoneChange::Set(PhoneNumber::restore(NEW_PHONE).unwrap())),
        title: None,
        message_types: None,
    };
    contacts
        .update_contact(&ctx(), &contact.contact_id, &update, None)
        .await
        .unwrap();
    let old = stored_in_clear(&store).await;
    let before = file_bytes(&path);
    for value in [NAME, RENAMED, NEW_EMAIL, OLD_NAME, OLD_EMAIL] {
        // The read model and the remembered add hold the live contact in clear, and the
        // events of before encryption their values: what forgetting has to remove.
        assert!(holds(&before, value), "{value} is stored before forgetting");
    }

    contacts
        .forget_contact(&ctx(), &contact.contact_id)
        .await
        .unwrap();
    let events: Vec<NewEvent> = old
        .forget()
        .into_iter()
        .map(|event| NewEvent {
            event_id: Uuid::now_v7(),
            event,
        })
        .collect();
    store
        .forget(Forget {
            contact_id: &old.contact_id,
            expected_version: old.version,
            live_name_key: None,
            events: &events,
            metadata: &metadata(),
        })
        .await
        .unwrap();

    let after = file_bytes(&path);
    for value in personal_values() {
        assert!(!holds(&after, value), "{value} is still in the files");
    }
    // The events are all there, and read with every personal field redacted.
    for stream in [&contact.contact_id, &old.contact_id] {
        let history = store
            .stream_page(&account(), stream.as_str(), 0, 100)
            .await
            .unwrap();
        assert!(history.len() >= 3, "{history:?}");
        assert!(
            history.iter().any(|e| e.payload_json.contains(REDACTED)),
            "{history:?}"
        );
        for value in personal_values() {
            assert!(
                history.iter().all(|e| !e.payload_json.contains(value)),
                "{value} reads back"
            );
        }
    }
    for table in [
        "SELECT count(*) FROM contacts",
        "SELECT count(*) FROM contact_names",
        "SELECT count(*) FROM idempotency_records",
        "SELECT count(*) FROM contact_keys WHERE wrapped_key IS NOT NULL OR forgotten_at IS NULL",
    ] {
        let left: i64 = sqlx::query_scalar(table)
            .fetch_one(store.read_pool())
            .await
            .unwrap();
        assert_eq!(left, 0, "{table}");
    }
}

#[tokio::test]
async fn a_forgotten_contact_takes_no_more_events() {
    let (store, _dir) = fresh().await;
    let metadata = metadata();
    let (_, contact) = stored_contact(&store, "Forgettable", &metadata).await;
    let forgotten: Vec<NewEvent> = contact
        .forget()
        .into_iter()
        .map(|event| NewEvent {
            event_id: Uuid::now_v7(),
            event,
        })
        .collect();
    store
        .forget(Forget {
            contact_id: &contact.contact_id,
            expected_version: 1,
            live_name_key: Some(contact.name.uniqueness_key()),
            events: &forgotten,
            metadata: &metadata,
        })
        .await
        .unwrap();
    let rename = ContactEvent::MessageContactRenamed {
        name: ContactName::parse("Another").unwrap(),
    };
    let (events, after) = decided(&contact, vec![rename], &metadata);

    let stale = store.append(update(&after, 1, &events, &metadata)).await;
    let current = store
        .append(update(
            &after,
            1 + forgotten.len() as u64,
            &events,
            &metadata,
        ))
        .await;

    assert!(
        matches!(stale, Err(AppendError::VersionConflict)),
        "{stale:?}"
    );
    assert!(
        matches!(&current, Err(AppendError::Store(e)) if e.to_string().contains("forgotten")),
        "{current:?}"
    );
    // Forgetting again at a stale version clashes like any append.
    let again = store
        .forget(Forget {
            contact_id: &contact.contact_id,
            expected_version: 1,
            live_name_key: None,
            events: &forgotten[1..],
            metadata: &metadata,
        })
        .await;
    assert!(
        matches!(again, Err(AppendError::VersionConflict)),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_byte_changed_in_a_sealed_field_makes_its_event_unreadable_naming_it() {
    let (store, _dir) = fresh().await;
    let metadata = metadata();
    let (added, contact) = stored_contact(&store, "Tamperedwith", &metadata).await;
    let payload: String = sqlx::query_scalar("SELECT payload FROM events WHERE event_id = ?1")
        .bind(added.event_id)
        .fetch_one(store.read_pool())
        .await
        .unwrap();
    let mut payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
    let sealed = payload["name"].as_str().unwrap().to_owned();
    assert!(!sealed.contains("Tamperedwith"), "the name is sealed");
    // One base64 digit changed in the middle: one byte of the ciphertext differs.
    let mut digits: Vec<char> = sealed.chars().collect();
    let middle = digits.len() / 2;
    digits[middle] = if digits[middle] == 'A' { 'B' } else { 'A' };
    payload["name"] = digits.into_iter().collect::<String>().into();
    // Behind the service's back: the guard has to go first.
    sqlx::query("DROP TRIGGER events_append_only")
        .execute(store.write_pool())
        .await
        .unwrap();
    sqlx::query("UPDATE events SET payload = ?1 WHERE event_id = ?2")
        .bind(payload.to_string())
        .bind(added.event_id)
        .execute(store.write_pool())
        .await
        .unwrap();

    let stream = store
        .stream_page(&account(), contact.contact_id.as_str(), 0, 10)
        .await;
    let log = store.read_log(LogPosition::START, None, 10).await;

    for read in [stream, log] {
        let error = read.expect_err("a tampered event is refused, never read");
        let message = error.to_string();
        assert!(
            message.contains(&added.event_id.to_string()) && message.contains("name"),
            "{message}"
        );
    }
}

/// The whole log as read, for comparing reads across keyrings.
async fn everything(store: &SqliteStore) -> Vec<RecordedEvent> {
    store
        .read_log(LogPosition::START, None, 1000)
        .await
        .unwrap()
}

fn payloads(events: &[RecordedEvent]) -> Vec<(Uuid, i32, String)> {
    events
        .iter()
        .map(|e| (e.event_id, e.schema_version, e.payload_json.clone()))
        .collect()
}

#[tokio::test]
async fn two_rotations_rewrap_every_key_and_everything_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contactd.db");
    let (a, _) = MasterKey::generate();
    let (b, _) = MasterKey::generate();
    let (c, _) = MasterKey::generate();
    let settings = SqliteSettings::default();
    let open = async |keyring: Keyring| SqliteStore::open(&path, &settings, keyring).await.unwrap();

    let store = open(Keyring::new(a.clone(), Vec::new())).await;
    let contacts = stored_contacts(&store, 5).await;
    let (_, renamed) = stored_contact(&store, "Rotated", &metadata()).await;
    let rename = ContactEvent::MessageContactRenamed {
        name: ContactName::parse("Rotatedagain").unwrap(),
    };
    let (events, after) = decided(&renamed, vec![rename], &metadata());
    store
        .append(update(&after, 1, &events, &metadata()))
        .await
        .unwrap();
    let written = payloads(&everything(&store).await);
    assert_eq!(written.len(), contacts.len() + 2);
    drop(store);

    let store = open(Keyring::new(b.clone(), vec![a.clone()])).await;
    let first = store.rotate_keys().await.unwrap();
    assert_eq!((first.rewrapped, first.current), (6, 0));
    assert_eq!(payloads(&everything(&store).await), written);
    drop(store);

    let store = open(Keyring::new(c.clone(), vec![b.clone()])).await;
    let second = store.rotate_keys().await.unwrap();
    assert_eq!((second.rewrapped, second.current), (6, 0));
    drop(store);

    // Under C alone: every key is C's now, and a rotation finds nothing left to do.
    let store = open(Keyring::new(c, Vec::new())).await;
    assert_eq!(payloads(&everything(&store).await), written);
    let third = store.rotate_keys().await.unwrap();
    assert_eq!((third.rewrapped, third.current), (0, 6));
    drop(store);

    // A is gone from every row: a process given only A reads nothing sealed.
    let store = open(Keyring::new(a, Vec::new())).await;
    let refused = store.read_log(LogPosition::START, None, 1000).await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn sealing_the_clear_events_seals_each_in_place_once_and_they_read_the_same() {
    let (store, _dir) = fresh().await;
    let old = stored_in_clear(&store).await;
    // A contact of today beside it: its events are sealed already.
    let (_, today) = stored_contact(&store, "Sealedtoday", &metadata()).await;
    let before = payloads(&everything(&store).await);
    assert!(before.iter().any(|(_, _, p)| p.contains(OLD_EMAIL)));

    let first = store.seal_clear_events().await.unwrap();
    let second = store.seal_clear_events().await.unwrap();

    assert_eq!(first.sealed, 2);
    assert_eq!(second.sealed, 0);
    assert_eq!(payloads(&everything(&store).await), before);
    let stored: Vec<(String, i32, String)> = sqlx::query_as(
        "SELECT event_type, schema_version, payload FROM events WHERE stream_id = ?1 \
         ORDER BY stream_version",
    )
    .bind(old.contact_id.as_str())
    .fetch_all(store.read_pool())
    .await
    .unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|(t, v, _)| (t.as_str(), *v))
            .collect::<Vec<_>>(),
        [
            ("MessageContactAdded", 102),
            ("EmailAddressChangeRequested", 101)
        ]
    );
    for (_, _, payload) in &stored {
        assert!(!payload.contains(OLD_NAME) && !payload.contains(OLD_EMAIL));
    }
    // Its key was created for it, and the contact of today kept its own.
    let keys: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contact_keys WHERE contact_id IN (?1, ?2) AND wrapped_key IS NOT NULL",
    )
    .bind(old.contact_id.as_str())
    .bind(today.contact_id.as_str())
    .fetch_one(store.read_pool())
    .await
    .unwrap();
    assert_eq!(keys, 2);
}

#[tokio::test]
async fn a_contact_stored_before_encryption_gets_its_key_with_its_next_personal_event() {
    let (store, _dir) = fresh().await;
    let old = stored_in_clear(&store).await;
    // Its row, as the rebuild folds it from the clear events.
    contactd_store_sqlite::rebuild_contacts(&store)
        .await
        .unwrap();
    let rename = ContactEvent::MessageContactRenamed {
        name: ContactName::parse("Renamedlater").unwrap(),
    };
    let (events, after) = decided(&old, vec![rename], &metadata());

    store
        .append(update(&after, old.version, &events, &metadata()))
        .await
        .unwrap();

    let (version, payload): (i32, String) =
        sqlx::query_as("SELECT schema_version, payload FROM events WHERE event_id = ?1")
            .bind(events[0].event_id)
            .fetch_one(store.read_pool())
            .await
            .unwrap();
    assert_eq!(version, 101);
    assert!(!payload.contains("Renamedlater"), "{payload}");
    let history = store
        .read_stream(&account(), old.contact_id.as_str())
        .await
        .unwrap();
    let folded = Contact::fold(contactd_app::contact_history(&history)).unwrap();
    assert_eq!(folded.name.as_str(), "Renamedlater");
    assert_eq!(folded.email_address.as_str(), OLD_EMAIL);
}

#[tokio::test]
async fn a_forgotten_contacts_clear_events_are_sealed_under_a_key_that_is_never_stored() {
    let (store, _dir) = fresh().await;
    let old = stored_in_clear(&store).await;
    // Its key destroyed, as a forgetting leaves it, while its events are still in clear (a
    // copy restored from before encryption, say).
    sqlx::query(
        "INSERT INTO contact_keys (contact_id, account_id, created_at, forgotten_at) \
         VALUES (?1, ?2, ?3, ?3)",
    )
    .bind(old.contact_id.as_str())
    .bind(ACCOUNT)
    .bind(chrono::Utc::now())
    .execute(store.write_pool())
    .await
    .unwrap();

    let sealed = store.seal_clear_events().await.unwrap();

    assert_eq!(sealed.sealed, 2);
    let history = store
        .read_stream(&account(), old.contact_id.as_str())
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    for event in &history {
        assert!(
            event.payload_json.contains(REDACTED)
                && !event.payload_json.contains(OLD_NAME)
                && !event.payload_json.contains(OLD_EMAIL),
            "{}",
            event.payload_json
        );
    }
    let destroyed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT wrapped_key FROM contact_keys WHERE contact_id = ?1")
            .bind(old.contact_id.as_str())
            .fetch_one(store.read_pool())
            .await
            .unwrap();
    assert_eq!(destroyed, None, "the key stays destroyed");
}
