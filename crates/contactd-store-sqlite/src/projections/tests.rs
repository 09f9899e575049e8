//! The projections' statements on a real SQLite file: the member-contacts model's tree,
//! bindings and effective view, the jobs and outbox messages it records read back by the
//! claims that use them, and the runner's checkpoints, takeover and rebuild.

// A failed setup step is a failed test, loudly.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use contactd_app::{
    AccountActivity, ActivityModel, ActivityTally, IntegrationMessage, LifecycleJobs,
    LifecycleTask, LogPosition, MemberContactPair, MemberContactsModel, NewJobTask,
    NewLifecycleJob, Outbox, OutboxModel, ProjectionMetrics, ProjectionStore, RequestedMessage,
    RunnerSettings, run_projection,
};
use contactd_domain::{AccountId, Channel, MemberAccountId, MessageTypes, VerificationId};
use sqlx::Row;
use tokio::sync::watch;
use uuid::Uuid;

use super::{SqliteWork, rebuild_projection};
use crate::{Keyring, SqliteSettings, SqliteStore};

const ACCOUNT: &str = "1234567890123456";
const MEMBER: &str = "1111222233334444";
const ROOT: &str = "rd-0123456789";
const FOLDER: &str = "fd-0123456789";
const CONTACT: &str = "c-0123456789abcdef";

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        &dir.path().join("test.db"),
        &SqliteSettings::default(),
        Keyring::for_tests(),
    )
    .await
    .unwrap();
    (dir, store)
}

fn account() -> AccountId {
    AccountId::parse(ACCOUNT).unwrap()
}

/// A time `seconds` after a fixed one, at the precision the store keeps.
fn at(seconds: i64) -> DateTime<Utc> {
    (DateTime::from_timestamp(1_790_000_000, 123_456_000).unwrap() + TimeDelta::seconds(seconds))
        .trunc_subsecs(6)
}

/// A contact's row as the inline read model holds it, with the fields a message needs.
async fn insert_contact(store: &SqliteStore, created_at: DateTime<Utc>) {
    let state = serde_json::json!({
        "name": "Tom", "email_address": "tom@example.com", "title": "CEO",
        "message_types": ["FaultMessage"], "status": "Active", "updated_at": created_at,
    });
    sqlx::query(
        "INSERT INTO contacts (contact_id, account_id, created_at, version, state) \
         VALUES (?1, ?2, ?3, 1, ?4)",
    )
    .bind(CONTACT)
    .bind(ACCOUNT)
    .bind(created_at)
    .bind(state.to_string())
    .execute(store.write_pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn a_contact_bound_to_the_root_applies_below_it_from_the_later_of_binding_and_joining() {
    let (_dir, store) = store().await;
    insert_contact(&store, at(0)).await;
    let account = account();
    let mut tx = store.write_pool().begin().await.unwrap();
    let mut work = SqliteWork::new(&mut tx);
    work.add_root(&account, ROOT, at(1)).await.unwrap();
    work.add_root(&account, ROOT, at(99)).await.unwrap();
    work.place_node(&account, FOLDER, None, false, at(2))
        .await
        .unwrap();
    work.place_node(&account, MEMBER, Some(FOLDER), true, at(5))
        .await
        .unwrap();
    assert!(work.node_exists(&account, MEMBER).await.unwrap());
    assert!(!work.node_exists(&account, "fd-9999999999").await.unwrap());
    work.insert_bindings(&account, CONTACT, &[ROOT.to_owned()], at(3))
        .await
        .unwrap();
    work.insert_bindings(&account, CONTACT, &[ROOT.to_owned()], at(50))
        .await
        .unwrap();
    work.recompute(&account, &[ROOT.to_owned()], Some(CONTACT))
        .await
        .unwrap();

    let pair = MemberContactPair {
        member: MEMBER.to_owned(),
        contact_id: CONTACT.to_owned(),
    };
    assert_eq!(
        work.applying(&account, None, Some(CONTACT)).await.unwrap(),
        std::slice::from_ref(&pair)
    );
    assert_eq!(
        work.applying(&account, Some(&[FOLDER.to_owned()]), None)
            .await
            .unwrap(),
        [pair]
    );
    // The root and the folder hold rows too, but are no members.
    let rows: Vec<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT node_id, associated_at FROM effective_contacts ORDER BY node_id")
            .fetch_all(work.connection())
            .await
            .unwrap();
    // Bound at 3 (the second binding kept the first); the member came under the root at 5.
    assert_eq!(
        rows,
        [
            (MEMBER.to_owned(), at(5)),
            (FOLDER.to_owned(), at(3)),
            (ROOT.to_owned(), at(3))
        ]
    );
    assert_eq!(
        work.bound_contacts(&[CONTACT, "c-ffffffffffffffff"])
            .await
            .unwrap(),
        [CONTACT]
    );
    let contacts = work.contacts(&account, &[CONTACT]).await.unwrap();
    assert_eq!(contacts[CONTACT].name.as_str(), "Tom");

    // Removing the root takes its binding along and says whose it was.
    assert_eq!(work.remove_node(&account, ROOT).await.unwrap(), [CONTACT]);
    assert!(work.bound_contacts(&[CONTACT]).await.unwrap().is_empty());
    work.insert_bindings(
        &account,
        CONTACT,
        &[FOLDER.to_owned(), MEMBER.to_owned()],
        at(6),
    )
    .await
    .unwrap();
    work.delete_bindings(&account, CONTACT, &[FOLDER.to_owned()])
        .await
        .unwrap();
    work.recompute(&account, &[FOLDER.to_owned()], None)
        .await
        .unwrap();
    let members = work.applying(&account, None, None).await.unwrap();
    assert_eq!(members.len(), 1, "bound to the member itself now");
    work.forget_contact(&account, CONTACT).await.unwrap();
    assert!(
        work.applying(&account, None, None)
            .await
            .unwrap()
            .is_empty()
    );
    work.clear_member_contacts().await.unwrap();
    assert!(!work.node_exists(&account, MEMBER).await.unwrap());
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn recorded_jobs_are_recorded_once_in_order_and_claimed_as_recorded() {
    let (_dir, store) = store().await;
    let account = account();
    let deletion_id = Uuid::new_v4();
    let job = |job_id: &str, task| NewLifecycleJob {
        job_id: job_id.to_owned(),
        account_id: account.clone(),
        contact_id: CONTACT.to_owned(),
        task,
        causation_id: "cause".to_owned(),
        correlation_id: "corr".to_owned(),
    };
    let message = IntegrationMessage {
        message_id: format!("e.{MEMBER}"),
        subject: "contactd.subject".to_owned(),
        payload: br#"{"b":1,"a":2}"#.to_vec(),
    };
    let types = MessageTypes::parse(["FaultMessage"]).unwrap().unwrap();
    let jobs = [
        job(
            "e.publish",
            NewJobTask::Publish {
                member: MemberAccountId::parse(MEMBER).unwrap(),
                message: message.clone(),
                message_types: types,
                deletion_id: Some(deletion_id),
            },
        ),
        job(
            "e.unbind",
            NewJobTask::Unbind {
                target: FOLDER.to_owned(),
            },
        ),
        job("e.finish", NewJobTask::FinishDeletion { deletion_id }),
    ];
    let mut tx = store.write_pool().begin().await.unwrap();
    let mut work = SqliteWork::new(&mut tx);
    work.record_jobs(&jobs).await.unwrap();
    // A batch applied again after a crash records nothing twice.
    work.record_jobs(&jobs).await.unwrap();
    tx.commit().await.unwrap();

    let claimed = store
        .claim_jobs("worker", Duration::from_secs(60), 10)
        .await
        .unwrap();
    let ids: Vec<&str> = claimed.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, ["e.publish", "e.unbind", "e.finish"]);
    match &claimed[0].task {
        LifecycleTask::Publish {
            message: claimed_message,
            deletion_id: claimed_deletion,
            member,
            message_types,
        } => {
            assert_eq!(claimed_message.message_id, message.message_id);
            assert_eq!(claimed_message.payload, br#"{"a":2,"b":1}"#);
            assert_eq!(*claimed_deletion, Some(deletion_id));
            assert_eq!(member.as_str(), MEMBER);
            assert_eq!(*message_types, types);
        }
        other => panic!("a publish, not {other:?}"),
    }
    assert!(matches!(
        &claimed[1].task,
        LifecycleTask::Unbind { target, .. } if target.as_str() == FOLDER
    ));
    assert!(matches!(
        &claimed[2].task,
        LifecycleTask::FinishDeletion { deletion_id: d, .. } if *d == deletion_id
    ));
    assert_eq!(claimed[0].causation_id, "cause");
}

#[tokio::test]
async fn a_requested_message_is_recorded_once_with_the_contacts_name_and_claimed() {
    let (_dir, store) = store().await;
    insert_contact(&store, at(0)).await;
    let requested = RequestedMessage {
        message_id: Uuid::new_v4(),
        account_id: account(),
        contact_id: CONTACT.to_owned(),
        channel: Channel::Email,
        recipient: "new@example.com".to_owned(),
        verification_id: VerificationId::from_uuid(Uuid::new_v4()),
        expires_at: at(600),
        correlation_id: "corr".to_owned(),
    };
    for _ in 0..2 {
        let mut tx = store.write_pool().begin().await.unwrap();
        SqliteWork::new(&mut tx)
            .record_requested(std::slice::from_ref(&requested))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let claimed = store
        .claim_due("dispatcher", Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].message_id, requested.message_id);
    assert_eq!(claimed[0].contact_name, "Tom");
    assert_eq!(claimed[0].expires_at, requested.expires_at);
    assert_eq!(claimed[0].attempt, 1);
}

#[tokio::test]
async fn activity_adds_up_and_keeps_the_latest() {
    let (_dir, store) = store().await;
    let tally = |events, position, seconds| ActivityTally {
        account_id: account(),
        events,
        contacts_added: 1,
        last_global_position: position,
        last_recorded_at: at(seconds),
    };
    let mut tx = store.write_pool().begin().await.unwrap();
    let mut work = SqliteWork::new(&mut tx);
    work.add_activity(&[tally(2, 7, 10)]).await.unwrap();
    work.add_activity(&[tally(3, 5, 20)]).await.unwrap();
    let row = sqlx::query(
        "SELECT events, contacts_added, last_position, last_recorded_at FROM account_activity",
    )
    .fetch_one(work.connection())
    .await
    .unwrap();
    assert_eq!(row.get::<i64, _>(0), 5);
    assert_eq!(row.get::<i64, _>(1), 2);
    assert_eq!(row.get::<i64, _>(2), 7);
    assert_eq!(row.get::<DateTime<Utc>, _>(3), at(20));
}

/// Appends `count` title changes to a stream of their own, as rows.
async fn insert_events(store: &SqliteStore, stream: &str, count: i64) {
    for version in 1..=count {
        sqlx::query(
            "INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, \
                 schema_version, payload, request_id, caller, correlation_id, causation_id, \
                 recorded_at) \
             VALUES (?1, ?2, ?3, ?4, 'TitleChanged', 1, '{\"title\":\"CEO\"}', 'r', 'c', 'c', 'c', ?5)",
        )
        .bind(Uuid::new_v4())
        .bind(ACCOUNT)
        .bind(stream)
        .bind(version)
        .bind(at(version))
        .execute(store.write_pool())
        .await
        .unwrap();
    }
    store.appended();
}

async fn counted(store: &SqliteStore) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(events), 0) FROM account_activity")
        .fetch_one(store.read_pool())
        .await
        .unwrap()
}

/// Runs `account_activity` until it has reached `until`, then stops it.
async fn run_activity(store: &SqliteStore, until: LogPosition) {
    let metrics = ProjectionMetrics::default();
    let (stop, stopping) = watch::channel(false);
    let runner = tokio::spawn(run_projection(
        store.clone(),
        Arc::new(AccountActivity),
        RunnerSettings {
            batch_size: 7,
            poll_interval: Duration::from_millis(10),
            takeover_interval: Duration::from_millis(10),
            gather_interval: Duration::ZERO,
            holder: "test".into(),
        },
        metrics.clone(),
        stopping,
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metrics
        .snapshot()
        .get(AccountActivity::NAME)
        .is_none_or(|status| !status.active || status.position < until)
    {
        assert!(tokio::time::Instant::now() < deadline, "caught up in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(true).unwrap();
    runner.await.unwrap();
}

#[tokio::test]
async fn the_runner_applies_each_event_once_across_restarts_and_a_rebuild_gives_the_same() {
    let (_dir, store) = store().await;
    insert_events(&store, "c-aaaaaaaaaaaaaaaa", 20).await;
    run_activity(&store, LogPosition::from_parts(20, 20)).await;
    assert_eq!(counted(&store).await, 20);
    insert_events(&store, "c-bbbbbbbbbbbbbbbb", 5).await;
    run_activity(&store, LogPosition::from_parts(25, 25)).await;
    assert_eq!(counted(&store).await, 25, "only what is new");

    let rebuilt = rebuild_projection(&store, &AccountActivity, 4)
        .await
        .unwrap();
    assert_eq!(rebuilt.events, 25);
    assert_eq!(counted(&store).await, 25);
    run_activity(&store, LogPosition::from_parts(25, 25)).await;
    assert_eq!(
        counted(&store).await,
        25,
        "the runner goes on from the rebuilt checkpoint"
    );
}

#[tokio::test]
async fn a_projection_is_held_by_one_runner_of_the_process_at_a_time() {
    let (_dir, store) = store().await;
    let first = store.take_projection("test", "a").await.unwrap().unwrap();
    assert_eq!(first.checkpoint, LogPosition::START);
    assert!(store.take_projection("test", "b").await.unwrap().is_none());
    assert!(store.take_projection("other", "b").await.unwrap().is_some());
    store.release(first.lease).await;
    assert!(store.take_projection("test", "b").await.unwrap().is_some());
}
