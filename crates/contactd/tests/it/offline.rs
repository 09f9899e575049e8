//! The operator's offline commands, run as the real binary against the test's database:
//! `contactd events replay` and `contactd projections rebuild`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value as JsonValue;

use crate::support::*;

/// Runs `contactd <args>` to its end.
async fn contactd(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_contactd"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .env("CONTACTD_MASTER_KEY_FILE", test_master_key_file())
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
fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "contactd failed ({}): stdout {:?}, stderr {:?}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// Waits until every transaction that may have written an event of this database has ended.
/// On PostgreSQL the log is read only below the oldest transaction still running anywhere on
/// the cluster (transaction ids are cluster-wide), so a transaction open in another database —
/// another test, a benchmark — holds back what a replay prints until it ends. On SQLite, with
/// its one writer, what is committed is readable.
async fn log_settled(db: &TestDb) {
    if db.backend() == Backend::Sqlite {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let settled: bool = db
            .scalar(
                "SELECT coalesce(max(transaction_id) < pg_snapshot_xmin(pg_current_snapshot()), \
                 true) FROM events",
                &[],
            )
            .await;
        if settled {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a transaction elsewhere on the cluster held the log back for 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `contactd events replay <args> --database-url <url>`, each line parsed, once every event
/// written so far can be read.
async fn replay(db: &TestDb, args: &[&str]) -> Vec<JsonValue> {
    log_settled(db).await;
    let url = db.url();
    let mut all = vec!["events", "replay"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--database-url", &url]);
    let output = contactd(&all).await;
    assert_success(&output);
    text(&output.stdout)
        .lines()
        .map(|line| {
            line.parse::<JsonValue>()
                .unwrap_or_else(|e| panic!("{line:?} is one JSON value: {e}"))
        })
        .collect()
}

fn positions(lines: &[JsonValue]) -> Vec<i64> {
    lines
        .iter()
        .map(|line| line["global_position"].as_i64().expect("global_position"))
        .collect()
}

/// A change made to an update request.
type Change = fn(&mut contactd_grpc::proto::UpdateMessageContactRequest);

/// Adds and updates contacts of three accounts; returns the ids of the contacts added.
async fn populate(client: &mut Client) -> Vec<String> {
    let mut ids = Vec::new();
    for (account, name) in [
        (ACCOUNT, "Tom"),
        (ACCOUNT, "Ann"),
        (OTHER_ACCOUNT, "Tom"),
        (ACCOUNT, "Bob"),
        ("42", "Eve"),
    ] {
        ids.push(add(client, account, name).await.contact_id);
    }
    let changes: [(&str, usize, Change); 5] = [
        (ACCOUNT, 0, |u| {
            u.name = Some("Thomas".into());
            u.email_address = Some("thomas@example.com".into());
        }),
        (ACCOUNT, 1, |u| u.phone_number = Some(String::new())),
        (OTHER_ACCOUNT, 2, |u| u.title = Some("CEO".into())),
        (ACCOUNT, 3, |u| {
            u.message_types = vec!["ServiceMessage".into(), "FaultMessage".into()]
        }),
        (ACCOUNT, 0, |u| u.title = Some("Other".into())),
    ];
    for (account, index, change) in changes {
        let mut request = update_request(&ids[index]);
        change(&mut request);
        client
            .update_message_contact(as_account(account, request))
            .await
            .expect("update");
    }
    ids
}

/// Verifies, changes and cancels on some of `populate`'s contacts, so that the log holds every
/// kind of verification event, then waits until the dispatcher has recorded every message's
/// outcome (the server writes no more after that).
async fn verify_some(client: &mut Client, db: &TestDb, ids: &[String]) {
    verify_email(client, db, &ids[0], "thomas@example.com").await;
    let mut change = update_request(&ids[0]);
    change.email_address = Some("tom2@example.com".into());
    client
        .update_message_contact(as_account(ACCOUNT, change))
        .await
        .expect("update");
    let cancel = contactd_grpc::proto::CancelMessageContactUpdateRequest {
        contact_id: ids[0].clone(),
        email_address: Some("tom2@example.com".into()),
        ..Default::default()
    };
    client
        .cancel_message_contact_update(as_account(ACCOUNT, cancel))
        .await
        .expect("cancel");
    send_phone(client, ACCOUNT, &ids[3], "86-13912345678")
        .await
        .expect("send");
    let code = issued_code(db, &ids[3], "PhoneVerificationRequested").await;
    confirm(client, ACCOUNT, &ids[3], "86-13912345678", &code)
        .await
        .expect("confirm");
    until_every_message_is_sent(db).await;
}

async fn event_count(db: &TestDb) -> i64 {
    db.count("SELECT count(*) FROM events", &[]).await
}

/// Waits until the `account_activity` projection has counted every event of the log.
async fn projection_caught_up(db: &TestDb) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let events = event_count(db).await;
    loop {
        let counted = db
            .count(
                "SELECT CAST(coalesce(sum(events), 0) AS BIGINT) FROM account_activity",
                &[],
            )
            .await;
        if counted == events {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "account_activity counted {counted} of {events} events in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every row of each read-model table in a fixed order, every column.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checksums {
    contacts: Vec<JsonValue>,
    contact_names: Vec<JsonValue>,
    contact_quotas: Vec<JsonValue>,
    account_activity: Vec<JsonValue>,
    directories: Vec<JsonValue>,
    directory_nodes: Vec<JsonValue>,
    contact_bindings: Vec<JsonValue>,
    effective_contacts: Vec<JsonValue>,
}

async fn checksums(db: &TestDb) -> Checksums {
    Checksums {
        contacts: db.rows_as_json("contacts", "contact_id").await,
        contact_names: db
            .rows_as_json("contact_names", "account_id, name_key")
            .await,
        contact_quotas: db.rows_as_json("contact_quotas", "account_id").await,
        account_activity: db.rows_as_json("account_activity", "account_id").await,
        directories: db.rows_as_json("directories", "account_id").await,
        directory_nodes: db
            .rows_as_json("directory_nodes", "account_id, node_id")
            .await,
        contact_bindings: db
            .rows_as_json("contact_bindings", "account_id, contact_id, node_id")
            .await,
        effective_contacts: db
            .rows_as_json("effective_contacts", "account_id, node_id, contact_id")
            .await,
    }
}

/// The events `member_contacts` projects.
const MEMBER_CONTACT_EVENTS: [&str; 11] = [
    "ResourceDirectoryCreated",
    "FolderRegistered",
    "FolderRemoved",
    "MemberRegistered",
    "MemberMoved",
    "MemberRemoved",
    "MembersAssociated",
    "MembersDisassociated",
    "ContactDeletionStarted",
    "MessageContactDeleted",
    "MessageTypesChanged",
];

/// A directory with two folder levels, contacts bound at each level, a member moved, a folder
/// removed (unbinding it), one contact deleted at once and one in the background; waits until
/// the background delete is done and `member_contacts` has projected every event.
async fn populate_lifecycle(server: &mut TestServer, db: &TestDb) {
    use crate::lifecycle_support::*;
    let mut directory = directory_client(server).await;
    let root = two_levels(&mut directory, ACCOUNT).await;
    two_levels(&mut directory, OTHER_ACCOUNT).await;
    register_folder(&mut directory, ACCOUNT, &folder("E"), &folder("B"))
        .await
        .unwrap();
    let client = &mut server.client;
    let mut ids = Vec::new();
    for (account, name, targets) in [
        (ACCOUNT, "Root", vec![root.clone(), folder("E")]),
        (ACCOUNT, "Alpha", vec![folder("A"), MEMBER_ROOT.to_owned()]),
        (ACCOUNT, "Gone", vec![folder("B")]),
        (ACCOUNT, "Later", vec![folder("A")]),
        (OTHER_ACCOUNT, "Other", vec![folder("B")]),
    ] {
        let id = add(client, account, name).await.contact_id;
        let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
        associate(client, account, &id, &targets).await.unwrap();
        ids.push(id);
    }
    move_member(&mut directory, ACCOUNT, MEMBER_DEEP, &folder("A"))
        .await
        .unwrap();
    let remove = contactd_grpc::proto::RemoveFolderRequest {
        folder_id: folder("E"),
    };
    directory
        .remove_folder(as_account(ACCOUNT, remove))
        .await
        .unwrap();
    delete(client, ACCOUNT, &ids[2], None).await.unwrap();
    delete(client, ACCOUNT, &ids[3], Some(false)).await.unwrap();
    until(
        "the background delete is done",
        Duration::from_secs(30),
        async || get(client, ACCOUNT, &ids[3]).await.err().map(drop),
    )
    .await;
    until("folder E is unbound", Duration::from_secs(30), async || {
        let root = get(client, ACCOUNT, &ids[0]).await.unwrap();
        (root.members.len() == 1).then_some(())
    })
    .await;
    let events = MEMBER_CONTACT_EVENTS.map(|e| format!("'{e}'")).join(", ");
    let newer = db.pick(
        "(e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)",
        "e.global_position > c.global_position",
    );
    let caught_up = format!(
        "SELECT NOT EXISTS (SELECT 1 FROM events e, projection_checkpoints c \
                            WHERE c.name = 'member_contacts' AND e.event_type IN ({events}) \
                              AND {newer}) \
            AND EXISTS (SELECT 1 FROM projection_checkpoints WHERE name = 'member_contacts') \
            AND NOT EXISTS (SELECT 1 FROM lifecycle_jobs)"
    );
    until(
        "member_contacts has projected every event",
        Duration::from_secs(60),
        async || db.scalar::<bool>(&caught_up, &[]).await.then_some(()),
    )
    .await;
}

/// Spoils the inline read model so that only a real rebuild gives it back.
async fn spoil_contacts(db: &TestDb) {
    for statement in [
        db.pick(
            "UPDATE contacts SET version = version + 10, \
             state = jsonb_set(jsonb_set(state, '{title}', '\"Other\"'), '{name}', \
                               to_jsonb(upper(state->>'name')))",
            "UPDATE contacts SET version = version + 10, \
             state = json_set(state, '$.title', 'Other', '$.name', upper(state->>'name'))",
        ),
        "DELETE FROM contact_names WHERE account_id = '6543210987654321'",
        "UPDATE contact_quotas SET contacts = 0",
        "DELETE FROM contacts WHERE account_id = '42'",
    ] {
        db.execute(statement).await;
    }
}

/// Spoils the `member_contacts` projection's tables and the directories' inline read model.
async fn spoil_member_contacts(db: &TestDb) {
    for statement in [
        "DELETE FROM effective_contacts WHERE node_id LIKE 'fd-%'",
        db.pick(
            "UPDATE contact_bindings SET bound_at = now()",
            "UPDATE contact_bindings SET bound_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        ),
        "DELETE FROM directory_nodes WHERE is_member",
        db.pick(
            "UPDATE directories SET state = '{}'::jsonb",
            "UPDATE directories SET state = '{}'",
        ),
    ] {
        db.execute(statement).await;
    }
}

/// Spoils the `account_activity` projection's table.
async fn spoil_activity(db: &TestDb) {
    for statement in [
        "DELETE FROM account_activity WHERE account_id = '42'",
        "UPDATE account_activity SET events = events * 2, last_position = 0",
    ] {
        db.execute(statement).await;
    }
}

/// A live server's read models over several accounts, caught up; the server then stopped so
/// that nothing writes any more. Returns the checksums of the live read models.
async fn live_read_models(db: &TestDb) -> Checksums {
    let mut server = TestServer::start(db).await;
    let ids = populate(&mut server.client).await;
    verify_some(&mut server.client, db, &ids).await;
    populate_lifecycle(&mut server, db).await;
    projection_caught_up(db).await;
    server.stop().await;
    let live = checksums(db).await;
    for sum in [
        &live.contacts,
        &live.contact_names,
        &live.contact_quotas,
        &live.account_activity,
        &live.directories,
        &live.directory_nodes,
        &live.contact_bindings,
        &live.effective_contacts,
    ] {
        assert!(!sum.is_empty(), "{live:?}");
    }
    live
}

/// `contactd projections rebuild [name] --database-url <url>`, once every event written so
/// far can be read (an asynchronous projection is rebuilt up to there).
async fn rebuild(db: &TestDb, name: Option<&str>) -> Output {
    log_settled(db).await;
    let url = db.url();
    let mut args = vec!["projections", "rebuild"];
    args.extend(name);
    args.extend_from_slice(&["--database-url", &url]);
    contactd(&args).await
}

// ---------------------------------------------------------------- events replay

async fn replay_prints_every_event_as_a_json_line_in_log_order(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    populate(&mut server.client).await;
    server.stop().await;

    let lines = replay(&db, &[]).await;
    assert_eq!(lines.len() as i64, event_count(&db).await);
    let in_log_order: Vec<(i64, String, i64, String, i64, String)> = db
        .fetch_all(
            &format!(
                "SELECT global_position, stream_id, stream_version, event_type, \
                        CAST(schema_version AS BIGINT), CAST(payload AS TEXT) \
                 FROM events ORDER BY {}",
                db.log_order()
            ),
            &[],
        )
        .await;
    assert_eq!(
        positions(&lines),
        in_log_order.iter().map(|row| row.0).collect::<Vec<_>>()
    );
    for (line, (position, stream_id, version, event_type, schema_version, payload)) in
        lines.iter().zip(&in_log_order)
    {
        assert_eq!(
            line["stream_id"].as_str(),
            Some(stream_id.as_str()),
            "{line}"
        );
        assert_eq!(line["stream_version"].as_i64(), Some(*version), "{line}");
        assert_eq!(
            line["event_type"].as_str(),
            Some(event_type.as_str()),
            "{line}"
        );
        let stored: JsonValue = payload.parse().unwrap();
        if *schema_version > 100 {
            // Sealed (ADR 13): stored at v + 100 with its personal fields sealed, read as v
            // with them opened; every other field as stored.
            assert_eq!(
                line["schema_version"].as_i64(),
                Some(schema_version - 100),
                "{line}"
            );
            let (read, stored) = (
                line["payload"].as_object().unwrap(),
                stored.as_object().unwrap(),
            );
            assert_eq!(
                read.keys().collect::<Vec<_>>(),
                stored.keys().collect::<Vec<_>>()
            );
            for (field, value) in stored {
                if ["name", "email_address", "phone_number"].contains(&field.as_str())
                    && value.is_string()
                {
                    assert_ne!(
                        &read[field], value,
                        "event {position}: {field} stored sealed"
                    );
                } else {
                    assert_eq!(&read[field], value, "event {position}: {field} as stored");
                }
            }
        } else {
            assert_eq!(
                line["schema_version"].as_i64(),
                Some(*schema_version),
                "{line}"
            );
            assert_eq!(
                line["payload"], stored,
                "event {position}: the payload as stored"
            );
        }
    }
    let accounts: std::collections::BTreeSet<&str> = lines
        .iter()
        .filter_map(|line| line["account_id"].as_str())
        .collect();
    assert_eq!(
        accounts,
        ["1234567890123456", "42", "6543210987654321"].into(),
        "offline, every account's events"
    );
}

async fn replay_of_one_contact_prints_only_its_events(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let ids = populate(&mut server.client).await;
    server.stop().await;

    let tom = &ids[0];
    let lines = replay(&db, &["--contact", tom]).await;
    let expected: Vec<i64> = db
        .scalars(
            "SELECT global_position FROM events WHERE stream_id = $1 ORDER BY stream_version",
            &[tom],
        )
        .await;
    assert_eq!(expected.len(), 4);
    assert_eq!(positions(&lines), expected);
    assert!(lines.iter().all(|line| line["stream_id"] == tom.as_str()));
    assert_eq!(
        lines
            .iter()
            .map(|line| line["stream_version"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );

    let nobody = replay(&db, &["--contact", "c-0000000000000000"]).await;
    assert!(nobody.is_empty(), "{nobody:?}");
}

async fn replay_from_a_position_starts_at_that_event(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let ids = populate(&mut server.client).await;
    server.stop().await;

    let all = positions(&replay(&db, &[]).await);
    let third = all[2].to_string();
    assert_eq!(positions(&replay(&db, &["--from", &third]).await), all[2..]);
    let last = all[all.len() - 1].to_string();
    assert_eq!(
        positions(&replay(&db, &["--from", &last]).await),
        all[all.len() - 1..]
    );

    // Both at once: that contact's events from the position on.
    let tom = &ids[0];
    let toms: Vec<i64> = db
        .scalars(
            "SELECT global_position FROM events WHERE stream_id = $1 ORDER BY stream_version",
            &[tom],
        )
        .await;
    let from = toms[1].to_string();
    assert_eq!(
        positions(&replay(&db, &["--contact", tom, "--from", &from]).await),
        toms[1..]
    );
}

async fn replay_from_past_the_last_event_prints_nothing(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    populate(&mut server.client).await;
    server.stop().await;

    let newest = db
        .count("SELECT max(global_position) FROM events", &[])
        .await;
    let past = (newest + 1).to_string();
    let lines = replay(&db, &["--from", &past]).await;
    assert_eq!(
        positions(&lines),
        Vec::<i64>::new(),
        "no event has a position at or after {past}"
    );
}

// ---------------------------------------------------------------- projections rebuild

async fn rebuilding_every_read_model_gives_back_the_live_ones_exactly(db: TestDb) {
    let live = live_read_models(&db).await;

    // Unchanged by a rebuild of intact models...
    let output = rebuild(&db, None).await;
    assert_success(&output);
    assert_eq!(checksums(&db).await, live);
    let stdout = text(&output.stdout);
    let events = event_count(&db).await;
    assert!(
        stdout.contains(&format!("rebuilt contacts: {events} events")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("rebuilt account_activity: {events} events")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("rebuilt member_contacts: {events} events")),
        "{stdout}"
    );

    // ...and restored from the log once spoiled.
    spoil_contacts(&db).await;
    spoil_activity(&db).await;
    spoil_member_contacts(&db).await;
    assert_ne!(checksums(&db).await, live);
    assert_success(&rebuild(&db, None).await);
    assert_eq!(checksums(&db).await, live);
}

async fn rebuilding_contacts_restores_the_inline_read_model_and_nothing_else(db: TestDb) {
    let live = live_read_models(&db).await;

    assert_success(&rebuild(&db, Some("contacts")).await);
    assert_eq!(checksums(&db).await, live);

    spoil_contacts(&db).await;
    spoil_activity(&db).await;
    let spoiled = checksums(&db).await;
    assert_ne!(spoiled.contacts, live.contacts);
    assert_ne!(spoiled.contact_names, live.contact_names);
    assert_ne!(spoiled.contact_quotas, live.contact_quotas);
    let output = rebuild(&db, Some("contacts")).await;
    assert_success(&output);
    assert!(
        !text(&output.stdout).contains("account_activity"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(
        checksums(&db).await,
        Checksums {
            account_activity: spoiled.account_activity,
            ..live
        },
        "the inline read model is back; account_activity was left alone"
    );
}

async fn rebuilding_account_activity_restores_it_and_nothing_else(db: TestDb) {
    let live = live_read_models(&db).await;

    assert_success(&rebuild(&db, Some("account_activity")).await);
    assert_eq!(checksums(&db).await, live);

    spoil_contacts(&db).await;
    spoil_activity(&db).await;
    let spoiled = checksums(&db).await;
    assert_ne!(spoiled.account_activity, live.account_activity);
    assert_success(&rebuild(&db, Some("account_activity")).await);
    assert_eq!(
        checksums(&db).await,
        Checksums {
            account_activity: live.account_activity,
            ..spoiled
        },
        "account_activity is back; the inline read model was left alone"
    );

    // A server started after the rebuild goes on from the rebuilt checkpoint: it neither
    // counts the log again nor misses what comes next.
    let mut server = TestServer::start(&db).await;
    add(&mut server.client, ACCOUNT, "Zed").await;
    projection_caught_up(&db).await;
    server.stop().await;
}

/// The outbox and the delivery outcomes: what a rebuild must never touch.
async fn deliveries(db: &TestDb) -> (Vec<JsonValue>, i64) {
    let outbox = db.rows_as_json("outbox_messages", "message_id").await;
    let outcomes = db
        .count(
            "SELECT count(*) FROM events WHERE event_type LIKE 'VerificationMessage%'",
            &[],
        )
        .await;
    (outbox, outcomes)
}

async fn the_verification_outbox_is_never_rebuilt_and_no_rebuild_sends_anything(db: TestDb) {
    let live = live_read_models(&db).await;
    let sent = deliveries(&db).await;
    assert!(sent.1 > 0, "the messages were sent: {sent:?}");

    let output = rebuild(&db, Some("verification_outbox")).await;
    assert!(!output.status.success(), "exit status {}", output.status);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("never rebuilt"), "{stderr}");

    assert_success(&rebuild(&db, None).await);
    assert_eq!(checksums(&db).await, live);
    assert_eq!(
        deliveries(&db).await,
        sent,
        "nothing was recorded or sent again"
    );
}

async fn rebuilding_an_unknown_read_model_fails_and_names_the_valid_ones(db: TestDb) {
    let live = live_read_models(&db).await;

    let output = rebuild(&db, Some("nope")).await;
    assert!(!output.status.success(), "exit status {}", output.status);
    let stderr = text(&output.stderr);
    for word in ["nope", "contacts", "account_activity"] {
        assert!(stderr.contains(word), "{word:?} in {stderr:?}");
    }
    assert_eq!(checksums(&db).await, live, "nothing was touched");
}

both_backends!(
    replay_prints_every_event_as_a_json_line_in_log_order,
    replay_of_one_contact_prints_only_its_events,
    replay_from_a_position_starts_at_that_event,
    replay_from_past_the_last_event_prints_nothing,
    rebuilding_every_read_model_gives_back_the_live_ones_exactly,
    rebuilding_contacts_restores_the_inline_read_model_and_nothing_else,
    rebuilding_account_activity_restores_it_and_nothing_else,
    the_verification_outbox_is_never_rebuilt_and_no_rebuild_sends_anything,
    rebuilding_an_unknown_read_model_fails_and_names_the_valid_ones,
);
