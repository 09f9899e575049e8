//! `contactd` processes killed and stopped: several on one PostgreSQL database, each projection
//! active in exactly one of them and taken over when that one dies; one on a SQLite file, a
//! second refused and a restart after a kill going on where the dead one stopped. The database
//! projection counts every event exactly once, and a message interrupted is sent again under
//! its key.

use std::time::Duration;

use crate::support::*;

async fn holder(db: &TestDb) -> Option<String> {
    db.optional_scalar::<Option<String>>(
        "SELECT holder FROM projection_checkpoints WHERE name = 'account_activity'",
        &[],
    )
    .await
    .flatten()
}

async fn counted_and_logged(db: &TestDb) -> (i64, i64) {
    db.fetch_one(
        "SELECT (SELECT CAST(coalesce(sum(events), 0) AS BIGINT) FROM account_activity), \
                (SELECT count(*) FROM events)",
        &[],
    )
    .await
}

/// Waits until the projection has counted every event of the log; their number.
async fn until_counted(db: &TestDb, what: &str) -> i64 {
    until(what, Duration::from_secs(30), async || {
        let (counted, logged) = counted_and_logged(db).await;
        (counted == logged).then_some(counted)
    })
    .await
}

/// The events counted per account: (account, events, contacts added).
async fn per_account(db: &TestDb) -> Vec<(String, i64, i64)> {
    db.fetch_all(
        "SELECT account_id, events, contacts_added FROM account_activity ORDER BY account_id",
        &[],
    )
    .await
}

async fn a_projection_runs_in_one_process_and_moves_to_another_when_that_one_dies(db: TestDb) {
    let mut processes = [Process::start(&db), Process::start(&db)];
    let mut clients = [processes[0].client().await, processes[1].client().await];

    let first_holder = until(
        "one process holds the projection",
        Duration::from_secs(30),
        async || holder(&db).await,
    )
    .await;
    let active = processes
        .iter()
        .position(|p| p.holder_name() == first_holder)
        .expect("the holder is one of ours");
    let survivor = 1 - active;
    // One lock per projection (account_activity, verification_outbox, member_contacts), each
    // granted once although both processes keep trying to take it.
    let granted = async || -> i64 {
        db.count(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
    };
    until(
        "every projection is held",
        Duration::from_secs(30),
        async || (granted().await >= 3).then_some(()),
    )
    .await;
    assert_eq!(granted().await, 3, "each projection's lock is held once");

    // Both processes take writes; the active one projects them.
    for (i, name) in ["Ann", "Bob", "Cid", "Dan"].into_iter().enumerate() {
        add(&mut clients[i % 2], ACCOUNT, name).await;
    }
    until_counted(&db, "the projection has counted the first events").await;

    processes[active].kill();
    for name in ["Eve", "Fay", "Gus"] {
        add(&mut clients[survivor], OTHER_ACCOUNT, name).await;
    }
    let new_holder = until(
        "the survivor takes the projection over",
        Duration::from_secs(30),
        async || {
            holder(&db)
                .await
                .filter(|h| *h == processes[survivor].holder_name())
        },
    )
    .await;
    assert_ne!(new_holder, first_holder);
    let counted = until_counted(&db, "the survivor has caught up").await;
    assert_eq!(
        counted, 7,
        "every event counted exactly once across the takeover"
    );
    assert_eq!(
        per_account(&db).await,
        [(ACCOUNT.to_owned(), 4, 4), (OTHER_ACCOUNT.to_owned(), 3, 3)]
    );
}

async fn a_second_process_on_the_file_is_refused_and_a_restart_after_a_kill_goes_on(db: TestDb) {
    let mut first = Process::start(&db);
    let mut client = first.client().await;
    for name in ["Ann", "Bob", "Cid", "Dan"] {
        add(&mut client, ACCOUNT, name).await;
    }

    // A second process on the same file stops at once, saying why, and disturbs nothing.
    let mut second = Process::start(&db);
    let status = second.exited().await;
    assert!(!status.success(), "the second process exited with {status}");
    let refusal = second.log();
    assert!(
        refusal.to_lowercase().contains("lock") || refusal.contains("another"),
        "the refusal says the file is in use: {refusal}"
    );
    add(&mut client, OTHER_ACCOUNT, "Eve").await;
    until_counted(&db, "the first process counts every event").await;

    // Killed, it leaves its lock behind: that does not keep the next start out.
    first.kill();
    let third = Process::start(&db);
    let mut client = third.client().await;
    for name in ["Fay", "Gus"] {
        add(&mut client, OTHER_ACCOUNT, name).await;
    }
    let counted = until_counted(&db, "the restarted process has caught up").await;
    assert_eq!(
        counted, 7,
        "every event counted exactly once across the restart"
    );
    assert_eq!(
        per_account(&db).await,
        [(ACCOUNT.to_owned(), 4, 4), (OTHER_ACCOUNT.to_owned(), 3, 3)]
    );
}

/// The event that asked for the contact's last SMS: its id is the message's idempotency key.
async fn phone_request(db: &TestDb, contact_id: &str) -> String {
    last_event_id(db, contact_id, "PhoneVerificationRequested")
        .await
        .to_string()
}

/// Waits until the outbox has recorded the message as sent; the caller of its `Sent` event.
async fn sent_by(db: &TestDb, message_id: &str) -> String {
    let stream = format!("delivery-{message_id}");
    until(
        "the message is recorded as sent",
        Duration::from_secs(30),
        async || {
            db.optional_scalar(
                "SELECT caller FROM events \
                 WHERE stream_id = $1 AND event_type = 'VerificationMessageSent'",
                &[&stream],
            )
            .await
        },
    )
    .await
}

async fn a_process_killed_right_after_a_send_committed_has_it_delivered_after_restart(db: TestDb) {
    let gateway = contactd_testkit::Gateway::answering(200).await;
    let webhook = gateway.url("/sms");
    let args = [
        "--sms-webhook-url",
        &webhook,
        "--send-timeout-secs",
        "1",
        "--dispatch-lease-secs",
        "2",
    ];
    let mut first = Process::start_with(&db, &args, "warn");
    let mut client = first.client().await;
    let id = add(&mut client, ACCOUNT, "Tom").await.contact_id;
    send_phone(&mut client, ACCOUNT, &id, "86-13912345678")
        .await
        .unwrap();
    first.kill();

    let second = Process::start_with(&db, &args, "warn");
    let message_id = phone_request(&db, &id).await;
    sent_by(&db, &message_id).await;
    let requests = gateway.requests();
    assert!(!requests.is_empty(), "the message was delivered");
    for request in &requests {
        assert_eq!(
            request.json()["idempotency_key"],
            message_id,
            "one key for every attempt at one request"
        );
    }
    drop(second);
}

async fn a_process_killed_during_a_send_leaves_it_to_the_other_with_the_same_key(db: TestDb) {
    // The gateway takes the first request and never answers it: the sender is stuck in it.
    let gateway = contactd_testkit::Gateway::hanging_first(1, 200).await;
    let webhook = gateway.url("/sms");
    let args = [
        "--sms-webhook-url",
        &webhook,
        "--send-timeout-secs",
        "5",
        "--dispatch-lease-secs",
        "10",
    ];
    let mut processes = [
        Process::start_with(&db, &args, "warn"),
        Process::start_with(&db, &args, "warn"),
    ];
    let mut client = processes[0].client().await;
    processes[1].client().await;
    let id = add(&mut client, ACCOUNT, "Tom").await.contact_id;
    send_phone(&mut client, ACCOUNT, &id, "86-13912345678")
        .await
        .unwrap();
    gateway.wait_for(1, Duration::from_secs(30)).await;
    let owner: String = db
        .scalar("SELECT lease_owner FROM outbox_messages", &[])
        .await;
    let sender = processes
        .iter()
        .position(|p| owner.contains(&format!("pid {} ", p.pid())))
        .unwrap_or_else(|| panic!("the lease {owner:?} is one of ours"));
    processes[sender].kill();

    let message_id = phone_request(&db, &id).await;
    let caller = sent_by(&db, &message_id).await;
    let survivor = &processes[1 - sender];
    assert!(
        caller.contains(&format!("pid {} ", survivor.pid())),
        "the survivor sent it after the lease ran out: {caller}"
    );
    let requests = gateway.requests();
    assert_eq!(requests.len(), 2, "the hung attempt, then the survivor's");
    for request in &requests {
        assert_eq!(request.json()["idempotency_key"], message_id);
    }
    let attempts = db
        .count("SELECT CAST(attempts AS BIGINT) FROM outbox_messages", &[])
        .await;
    assert_eq!(attempts, 2);
}

async fn a_process_killed_during_a_send_has_it_sent_after_restart_with_the_same_key(db: TestDb) {
    // The gateway takes the first request and never answers it: the sender is stuck in it.
    let gateway = contactd_testkit::Gateway::hanging_first(1, 200).await;
    let webhook = gateway.url("/sms");
    let args = [
        "--sms-webhook-url",
        &webhook,
        "--send-timeout-secs",
        "2",
        "--dispatch-lease-secs",
        "4",
    ];
    let mut first = Process::start_with(&db, &args, "warn");
    let mut client = first.client().await;
    let id = add(&mut client, ACCOUNT, "Tom").await.contact_id;
    send_phone(&mut client, ACCOUNT, &id, "86-13912345678")
        .await
        .unwrap();
    gateway.wait_for(1, Duration::from_secs(30)).await;
    first.kill();

    let second = Process::start_with(&db, &args, "warn");
    let message_id = phone_request(&db, &id).await;
    let caller = sent_by(&db, &message_id).await;
    assert!(
        caller.contains(&format!("pid {} ", second.pid())),
        "the restarted process sent it after the lease ran out: {caller}"
    );
    let requests = gateway.requests();
    assert_eq!(requests.len(), 2, "the hung attempt, then the restart's");
    for request in &requests {
        assert_eq!(request.json()["idempotency_key"], message_id);
    }
    let attempts = db
        .count("SELECT CAST(attempts AS BIGINT) FROM outbox_messages", &[])
        .await;
    assert_eq!(attempts, 2);
}

async fn sigterm_lets_the_send_in_flight_end_and_record_its_outcome_then_exits_cleanly(db: TestDb) {
    let silent = contactd_testkit::SilentPeer::start().await;
    let smtp_url = format!("smtp://{}", silent.addr());
    let args = [
        "--smtp-url",
        &smtp_url,
        "--send-timeout-secs",
        "2",
        "--dispatch-lease-secs",
        "4",
    ];
    let mut process = Process::start_with(&db, &args, "info");
    let mut client = process.client().await;
    let id = add(&mut client, ACCOUNT, "Tom").await.contact_id;
    send_email(&mut client, ACCOUNT, &id, "tom@example.com")
        .await
        .unwrap();
    until(
        "the message is being sent",
        Duration::from_secs(30),
        async || {
            db.optional_scalar::<Option<String>>(
                "SELECT lease_owner FROM outbox_messages WHERE recorded = 0",
                &[],
            )
            .await
            .flatten()
        },
    )
    .await;

    let status = process.terminate().await;
    assert!(status.success(), "exit status {status}");
    let log = process.log();
    assert!(
        log.contains("waiting for the verification messages in flight"),
        "{log}"
    );
    assert!(log.contains("dispatcher stopped"), "{log}");
    let (state, recorded, lease): (String, i64, Option<String>) = db
        .fetch_one(
            "SELECT state, CAST(recorded AS BIGINT), lease_owner FROM outbox_messages",
            &[],
        )
        .await;
    assert_eq!(
        (state.as_str(), recorded, lease),
        ("pending", 1, None),
        "the attempt's failure is recorded and the message waits for the next start"
    );
}

both_backends!(
    a_process_killed_right_after_a_send_committed_has_it_delivered_after_restart,
    sigterm_lets_the_send_in_flight_end_and_record_its_outcome_then_exits_cleanly,
);

postgres_only!(
    // Several processes on one database, the projections led through advisory locks.
    a_projection_runs_in_one_process_and_moves_to_another_when_that_one_dies,
    // Two processes on one database; SQLite's restart after a kill is the test below.
    a_process_killed_during_a_send_leaves_it_to_the_other_with_the_same_key,
);

sqlite_only!(
    // The embedded store's lock file: one process per file, and no stale lock after a kill.
    a_second_process_on_the_file_is_refused_and_a_restart_after_a_kill_goes_on,
    // One process per file: the kill's successor is the next start, not a second process.
    a_process_killed_during_a_send_has_it_sent_after_restart_with_the_same_key,
);
