//! Several `contactd` processes on one database: each projection is active in exactly one of
//! them, and when that one dies another takes over; the database projection still counts every
//! event exactly once.

use std::time::Duration;

use sqlx::PgPool;

use crate::support::*;

async fn holder(pool: &PgPool) -> Option<String> {
    sqlx::query_scalar("SELECT holder FROM projection_checkpoints WHERE name = 'account_activity'")
        .fetch_optional(pool)
        .await
        .unwrap()
        .flatten()
}

async fn counted_and_logged(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT (SELECT coalesce(sum(events), 0)::bigint FROM account_activity), (SELECT count(*) FROM events)")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_projection_runs_in_one_process_and_moves_to_another_when_that_one_dies(pool: PgPool) {
    let url = database_url(&pool).await;
    let mut processes = [Process::start(&url), Process::start(&url)];
    let mut clients = [processes[0].client().await, processes[1].client().await];

    let first_holder = until(
        "one process holds the projection",
        Duration::from_secs(30),
        async || holder(&pool).await,
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
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
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
    until(
        "the projection has counted the first events",
        Duration::from_secs(30),
        async || {
            let (counted, logged) = counted_and_logged(&pool).await;
            (counted == logged).then_some(())
        },
    )
    .await;

    processes[active].kill();
    for name in ["Eve", "Fay", "Gus"] {
        add(&mut clients[survivor], OTHER_ACCOUNT, name).await;
    }
    let new_holder = until(
        "the survivor takes the projection over",
        Duration::from_secs(30),
        async || {
            holder(&pool)
                .await
                .filter(|h| *h == processes[survivor].holder_name())
        },
    )
    .await;
    assert_ne!(new_holder, first_holder);
    let (counted, logged) = until(
        "the survivor has caught up",
        Duration::from_secs(30),
        async || {
            let (counted, logged) = counted_and_logged(&pool).await;
            (counted == logged).then_some((counted, logged))
        },
    )
    .await;
    assert_eq!(
        (counted, logged),
        (7, 7),
        "every event counted exactly once across the takeover"
    );
    let per_account: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT account_id, events, contacts_added FROM account_activity ORDER BY account_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        per_account,
        [(ACCOUNT.to_owned(), 4, 4), (OTHER_ACCOUNT.to_owned(), 3, 3)]
    );
}

/// The event that asked for the contact's last SMS: its id is the message's idempotency key.
async fn phone_request(pool: &PgPool, contact_id: &str) -> String {
    let id: uuid::Uuid = sqlx::query_scalar(
        "SELECT event_id FROM events WHERE stream_id = $1 AND event_type = 'PhoneVerificationRequested'",
    )
    .bind(contact_id)
    .fetch_one(pool)
    .await
    .unwrap();
    id.to_string()
}

/// Waits until the outbox has recorded the message as sent; the caller of its `Sent` event.
async fn sent_by(pool: &PgPool, message_id: &str) -> String {
    until("the message is recorded as sent", Duration::from_secs(30), async || {
        sqlx::query_scalar(
            "SELECT caller FROM events WHERE stream_id = $1 AND event_type = 'VerificationMessageSent'",
        )
        .bind(format!("delivery-{message_id}"))
        .fetch_optional(pool)
        .await
        .unwrap()
    })
    .await
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_process_killed_right_after_a_send_committed_has_it_delivered_after_restart(
    pool: PgPool,
) {
    let url = database_url(&pool).await;
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
    let mut first = Process::start_with(&url, &args, "warn");
    let mut client = first.client().await;
    let id = add(&mut client, ACCOUNT, "Tom").await.contact_id;
    send_phone(&mut client, ACCOUNT, &id, "86-13912345678")
        .await
        .unwrap();
    first.kill();

    let second = Process::start_with(&url, &args, "warn");
    let message_id = phone_request(&pool, &id).await;
    sent_by(&pool, &message_id).await;
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

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_process_killed_during_a_send_leaves_it_to_the_other_with_the_same_key(pool: PgPool) {
    let url = database_url(&pool).await;
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
        Process::start_with(&url, &args, "warn"),
        Process::start_with(&url, &args, "warn"),
    ];
    let mut client = processes[0].client().await;
    processes[1].client().await;
    let id = add(&mut client, ACCOUNT, "Tom").await.contact_id;
    send_phone(&mut client, ACCOUNT, &id, "86-13912345678")
        .await
        .unwrap();
    gateway.wait_for(1, Duration::from_secs(30)).await;
    let owner: String = sqlx::query_scalar("SELECT lease_owner FROM outbox_messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    let sender = processes
        .iter()
        .position(|p| owner.contains(&format!("pid {} ", p.pid())))
        .unwrap_or_else(|| panic!("the lease {owner:?} is one of ours"));
    processes[sender].kill();

    let message_id = phone_request(&pool, &id).await;
    let caller = sent_by(&pool, &message_id).await;
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
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM outbox_messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(attempts, 2);
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn sigterm_lets_the_send_in_flight_end_and_record_its_outcome_then_exits_cleanly(
    pool: PgPool,
) {
    let url = database_url(&pool).await;
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
    let mut process = Process::start_with(&url, &args, "info");
    let mut client = process.client().await;
    let id = add(&mut client, ACCOUNT, "Tom").await.contact_id;
    send_email(&mut client, ACCOUNT, &id, "tom@example.com")
        .await
        .unwrap();
    until(
        "the message is being sent",
        Duration::from_secs(30),
        async || {
            let leased: Option<String> =
                sqlx::query_scalar("SELECT lease_owner FROM outbox_messages WHERE recorded = 0")
                    .fetch_optional(&pool)
                    .await
                    .unwrap()
                    .flatten();
            leased
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
    let (state, recorded, lease): (String, i32, Option<String>) =
        sqlx::query_as("SELECT state, recorded, lease_owner FROM outbox_messages")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), recorded, lease),
        ("pending", 1, None),
        "the attempt's failure is recorded and the message waits for the next start"
    );
}
