//! No code and no link token in clear anywhere: every code and token a real `contactd` process
//! sent is looked for in a dump of the database (`pg_dump`; on SQLite every row of every table,
//! and the link tokens in the file's very bytes), in everything the process logged at `debug`,
//! and in every answer of the audit service.

use std::time::Duration;

use contactd_grpc::proto::{ListMessageContactEventsRequest, StreamEventsRequest};
use contactd_testkit::{Gateway, verification_code};
use tokio_stream::StreamExt;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(30);

/// Columns whose values are counters, positions or transaction ids: numbers that may equal a
/// code by chance and say nothing about one.
const NUMERIC_COLUMNS: [&str; 16] = [
    "global_position",
    "transaction_id",
    "stream_version",
    "schema_version",
    "version",
    "tries",
    "attempts",
    "recorded",
    "sends",
    "max_sends",
    "contacts",
    "max_contacts",
    "events",
    "contacts_added",
    "last_position",
    "log_order",
];

/// The dump with the numeric columns of its `COPY` blocks blanked out.
fn without_numeric_columns(dump: &str) -> String {
    let mut out = String::with_capacity(dump.len());
    let mut blank: Option<Vec<usize>> = None;
    for line in dump.lines() {
        match &blank {
            Some(_) if line == "\\." => blank = None,
            Some(columns) => {
                let fields: Vec<&str> = line
                    .split('\t')
                    .enumerate()
                    .map(|(i, field)| if columns.contains(&i) { "#" } else { field })
                    .collect();
                out.push_str(&fields.join("\t"));
                out.push('\n');
                continue;
            }
            None => {
                if let Some(rest) = line.strip_prefix("COPY ") {
                    let names = &rest[rest.find('(').unwrap() + 1..rest.find(')').unwrap()];
                    blank = Some(
                        names
                            .split(", ")
                            .enumerate()
                            .filter(|(_, name)| NUMERIC_COLUMNS.contains(name))
                            .map(|(i, _)| i)
                            .collect(),
                    );
                }
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Blanks the spans made of digits that are not codes: UUIDs, timestamps, hex blobs, process
/// ids.
fn scrub(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i < bytes.len() {
        let span = uuid_at(bytes, i)
            .or_else(|| timestamp_at(bytes, i))
            .or_else(|| hex_at(bytes, i))
            .or_else(|| after_prefix(bytes, i, b"pid "));
        match span {
            Some(len) => {
                out[i..i + len].fill(b'#');
                i += len;
            }
            None => i += 1,
        }
    }
    // Only ASCII bytes were replaced, by an ASCII byte.
    String::from_utf8(out).unwrap()
}

fn run(bytes: &[u8], at: usize, len: usize, class: fn(u8) -> bool) -> bool {
    bytes
        .get(at..at + len)
        .is_some_and(|s| s.iter().all(|b| class(*b)))
}

fn uuid_at(bytes: &[u8], i: usize) -> Option<usize> {
    let mut at = i;
    for (n, len) in [8, 4, 4, 4, 12].into_iter().enumerate() {
        if n > 0 {
            (bytes.get(at) == Some(&b'-')).then_some(())?;
            at += 1;
        }
        run(bytes, at, len, |b| b.is_ascii_hexdigit()).then_some(())?;
        at += len;
    }
    Some(at - i)
}

fn timestamp_at(bytes: &[u8], i: usize) -> Option<usize> {
    let digits = |at, len| run(bytes, at, len, |b| b.is_ascii_digit());
    let is = |at: usize, c: &[u8]| bytes.get(at).is_some_and(|b| c.contains(b));
    let well_formed = digits(i, 4)
        && is(i + 4, b"-")
        && digits(i + 5, 2)
        && is(i + 7, b"-")
        && digits(i + 8, 2)
        && is(i + 10, b" T")
        && digits(i + 11, 2)
        && is(i + 13, b":")
        && digits(i + 14, 2)
        && is(i + 16, b":")
        && digits(i + 17, 2);
    if !well_formed {
        return None;
    }
    let mut end = i + 19;
    if is(end, b".") {
        end += 1;
        while is(end, b"0123456789") {
            end += 1;
        }
    }
    Some(end - i)
}

fn hex_at(bytes: &[u8], i: usize) -> Option<usize> {
    (bytes.get(i..i + 2) == Some(b"\\x")).then_some(())?;
    let len = bytes[i + 2..]
        .iter()
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    (len >= 2).then_some(len + 2)
}

fn after_prefix(bytes: &[u8], i: usize, prefix: &[u8]) -> Option<usize> {
    bytes.get(i..i + prefix.len()).filter(|s| *s == prefix)?;
    let len = bytes[i + prefix.len()..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    (len > 0).then_some(prefix.len() + len)
}

/// Whether `secret` stands in `text` as a whole word (not inside a longer run of its class).
fn holds(text: &str, secret: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let bytes = text.as_bytes();
    text.match_indices(secret).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + secret.len()).copied();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

#[track_caller]
fn assert_nowhere(place: &str, text: &str, secrets: &[String]) {
    let text = scrub(text);
    for secret in secrets {
        if let Some(at) = text.find(secret.as_str()).filter(|_| holds(&text, secret)) {
            let from = at.saturating_sub(120);
            panic!(
                "{place} holds {secret:?}: …{}…",
                &text[from..(at + 120).min(text.len())]
            );
        }
    }
}

#[test]
fn the_scrubber_blanks_what_is_not_a_code_and_finds_what_is() {
    let text = "at 2026-12-01 21:47:01.123456+00 pid 123456 id 01a233d9-b3f3-74d9-8fe7-19d6f518f5f7 \\x123456ab code 123456.";
    let scrubbed = scrub(text);
    assert_eq!(scrubbed.matches("123456").count(), 1, "{scrubbed}");
    assert!(holds(&scrubbed, "123456"));
    assert!(!holds("a1234567b", "123456"));
}

/// Every event of the account through the audit service, as text.
async fn audit_answers(server_addr: &str, db: &TestDb, contact_id: &str) -> String {
    let channel = tonic::transport::Channel::from_shared(server_addr.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut audit = AuditClient::new(channel);
    let mut text = String::new();
    let page = audit
        .list_message_contact_events(as_account(
            ACCOUNT,
            ListMessageContactEventsRequest {
                contact_id: contact_id.to_owned(),
                page_size: 1000,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    text.push_str(&format!("{page:?}\n"));
    let events = db.count("SELECT count(*) FROM events", &[]).await;
    let mut stream = audit
        .stream_events(as_account(
            ACCOUNT,
            StreamEventsRequest { from_position: 0 },
        ))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..events {
        let event = tokio::time::timeout(WAIT, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&format!("{event:?}\n"));
    }
    text
}

/// The database's data as text, the numeric columns left out: a `pg_dump --data-only` on
/// PostgreSQL, every row of every table as JSON on SQLite.
pub(crate) async fn dump(db: &TestDb) -> String {
    match db.backend() {
        Backend::Postgres => {
            let dump = std::process::Command::new("pg_dump")
                .args(["--data-only", "--no-owner", "--dbname", &db.url()])
                .output()
                .expect("pg_dump runs");
            assert!(
                dump.status.success(),
                "{}",
                String::from_utf8_lossy(&dump.stderr)
            );
            without_numeric_columns(&String::from_utf8(dump.stdout).unwrap())
        }
        Backend::Sqlite => {
            let mut text = String::new();
            for table in db.tables().await {
                for mut row in db.rows_as_json(&table, "1").await {
                    let columns = row.as_object_mut().expect("a row is an object");
                    columns.retain(|name, _| !NUMERIC_COLUMNS.contains(&name.as_str()));
                    text.push_str(&format!("{table}: {row}\n"));
                }
            }
            text
        }
    }
}

/// The SQLite file and its write-ahead log as they are on disk, free pages included.
pub(crate) fn sqlite_bytes(db: &TestDb) -> String {
    let path = db.sqlite_path();
    let mut bytes = std::fs::read(path).expect("read the database file");
    let wal = path.with_extension("db-wal");
    bytes.extend(std::fs::read(wal).unwrap_or_default());
    String::from_utf8_lossy(&bytes).into_owned()
}

fn token_of(link: &str) -> String {
    let (_, token) = link.split_once("/verify/").expect("a /verify/ link");
    token.to_owned()
}

async fn no_code_or_link_token_is_in_the_database_the_logs_or_the_audit_log(db: TestDb) {
    let gateway = Gateway::answering(200).await;
    let webhook = gateway.url("/sms");
    // Emails go into the development sink of the data directory; SMS to the gateway.
    let mut process = Process::start_with(&db, &["--sms-webhook-url", &webhook], "debug");
    let mut client = process.client().await;
    let id = add(&mut client, ACCOUNT, "Tom").await.contact_id;
    let mut secrets = Vec::new();

    send_email(&mut client, ACCOUNT, &id, "tom@example.com")
        .await
        .unwrap();
    let (first, first_link) = process.sent_email(&db, &id).await;
    secrets.push(first.clone());
    secrets.push(token_of(&first_link));
    confirm(&mut client, ACCOUNT, &id, "tom@example.com", &wrong(&first))
        .await
        .unwrap_err();
    confirm(&mut client, ACCOUNT, &id, "tom@example.com", &first)
        .await
        .unwrap();

    let mut change = update_request(&id);
    change.email_address = Some("new@example.com".into());
    client
        .update_message_contact(as_account(ACCOUNT, change))
        .await
        .unwrap();
    send_email(&mut client, ACCOUNT, &id, "new@example.com")
        .await
        .unwrap();
    let (second, link) = process.sent_email(&db, &id).await;
    secrets.push(second);
    let path = &link[link.find("/verify/").unwrap()..];
    secrets.push(token_of(&link));
    let pages = process.http_addr();
    assert_eq!(http(pages, "GET", path).await.status, 200);
    assert_eq!(http(pages, "POST", path).await.status, 200);

    send_phone(&mut client, ACCOUNT, &id, "86-13912345678")
        .await
        .unwrap();
    let sms = gateway.wait_for(1, WAIT).await.remove(0).json();
    let sms_code = verification_code(sms["message"].as_str().unwrap())
        .unwrap()
        .to_owned();
    secrets.push(sms_code.clone());
    confirm(&mut client, ACCOUNT, &id, "86-13912345678", &sms_code)
        .await
        .unwrap();
    until_every_message_is_sent(&db).await;

    let audit = audit_answers(&process.endpoint(), &db, &id).await;
    drop(client);
    assert!(process.terminate().await.success());

    let dump = dump(&db).await;
    assert!(
        dump.contains("EmailAddressVerified"),
        "the dump holds the log"
    );
    assert_nowhere("the database", &dump, &secrets);
    if db.backend() == Backend::Sqlite {
        let tokens = [secrets[1].clone(), secrets[3].clone()];
        assert_nowhere("the database file", &sqlite_bytes(&db), &tokens);
    }

    let log = process.log();
    assert!(log.contains(".eml"), "the sink's file is named in the log");
    assert!(
        log.contains("DEBUG"),
        "the log is at debug: {}",
        &log[..log.len().min(500)]
    );
    assert_nowhere("the log", &log, &secrets);

    assert!(audit.contains("VerificationMessageSent"));
    assert_nowhere("the audit service's answers", &audit, &secrets);
    assert!(
        secrets.iter().all(|s| !s.is_empty()) && secrets.len() == 5,
        "{secrets:?}"
    );
}

both_backends!(no_code_or_link_token_is_in_the_database_the_logs_or_the_audit_log,);
