//! The dispatcher's and the lifecycle worker's statements on SQLite: leases that commit at
//! once, outcomes recorded only under the lease, due times. The rows are written here as the
//! projections record them, so that these statements are tested on their own.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use contactd_app::{JobOutcome, LifecycleJobs, LifecycleTask, Outbox};
use contactd_domain::{Channel, ContactId, DeliveryEvent, DeliveryOutcome};
use contactd_store_sqlite::SqliteStore;
use uuid::Uuid;

use crate::support::*;

async fn record_message(store: &SqliteStore, message_id: Uuid, due: DateTime<Utc>) {
    sqlx::query(
        "INSERT INTO outbox_messages (message_id, account_id, contact_id, contact_name, channel, \
             recipient, verification_id, expires_at, correlation_id, next_attempt_at, created_at, \
             updated_at) \
         VALUES (?1, ?2, ?3, 'Tom', 'email', 'tom@example.com', ?4, ?5, 'corr', ?6, ?6, ?6)",
    )
    .bind(message_id)
    .bind(ACCOUNT)
    .bind(ContactId::generate().as_str())
    .bind(Uuid::new_v4())
    .bind(due + TimeDelta::minutes(10))
    .bind(due)
    .execute(store.write_pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn a_message_is_leased_once_and_its_outcome_recorded_only_under_the_lease() {
    let (store, _dir) = fresh().await;
    let due = Utc::now().trunc_subsecs(6) - TimeDelta::seconds(1);
    let message_id = Uuid::new_v4();
    record_message(&store, message_id, due).await;
    record_message(&store, Uuid::new_v4(), due + TimeDelta::hours(1)).await;
    assert_eq!(store.next_due().await.unwrap(), Some(due));

    let claimed = store
        .claim_due("a", Duration::from_secs(30), 10)
        .await
        .unwrap();
    let again = store
        .claim_due("b", Duration::from_secs(30), 10)
        .await
        .unwrap();

    assert_eq!(claimed.len(), 1, "only the due message");
    let message = &claimed[0];
    assert_eq!(
        (message.message_id, message.attempt, message.recorded),
        (message_id, 1, 0)
    );
    assert!(again.is_empty(), "leased");
    let sent = DeliveryEvent {
        message_id,
        contact_id: message.contact_id.clone(),
        channel: Channel::Email,
        attempt: 1,
        outcome: DeliveryOutcome::Sent,
    };
    let at = metadata();
    assert!(
        !store
            .record("b", message, &sent, Uuid::new_v4(), &at)
            .await
            .unwrap()
    );
    assert!(
        store
            .record("a", message, &sent, Uuid::new_v4(), &at)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record("a", message, &sent, Uuid::new_v4(), &at)
            .await
            .unwrap(),
        "one outcome per claim"
    );
    let stream = store
        .read_stream(&account(), &DeliveryEvent::stream_id(message_id))
        .await
        .unwrap();
    assert_eq!(stream.len(), 1);
    assert_eq!(stream[0].event_type, "VerificationMessageSent");
    let recipient: String =
        sqlx::query_scalar("SELECT recipient FROM outbox_messages WHERE message_id = ?1")
            .bind(message_id)
            .fetch_one(store.read_pool())
            .await
            .unwrap();
    assert_eq!(recipient, "", "a finished message keeps no personal data");
    assert_eq!(
        store.next_due().await.unwrap(),
        Some(due + TimeDelta::hours(1)),
        "the other message"
    );
}

const MEMBER: &str = "9999999999999999";

/// Records a job as the member-contacts projection does.
async fn record_job(
    store: &SqliteStore,
    job_id: &str,
    kind: &str,
    contact: &ContactId,
    deletion_id: Option<Uuid>,
    due: DateTime<Utc>,
) {
    let (target, subject, message_id, payload, types) = match kind {
        "publish" => (
            Some(MEMBER),
            Some("contactd.x.member.y.contacts"),
            Some(format!("{job_id}.{MEMBER}")),
            Some(r#"{"b":1,"a":2}"#),
            Some(r#"["FaultMessage"]"#),
        ),
        "unbind" => (Some(MEMBER), None, None, None, None),
        _ => (None, None, None, None, None),
    };
    sqlx::query(
        "INSERT INTO lifecycle_jobs (job_id, account_id, kind, contact_id, target, subject, \
             message_id, payload, message_types, deletion_id, causation_id, correlation_id, \
             next_attempt_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'cause', 'corr', ?11)",
    )
    .bind(job_id)
    .bind(ACCOUNT)
    .bind(kind)
    .bind(contact.as_str())
    .bind(target)
    .bind(subject)
    .bind(message_id)
    .bind(payload)
    .bind(types)
    .bind(deletion_id)
    .bind(due)
    .execute(store.write_pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn a_deletes_removals_supersede_older_messages_and_settling_them_wakes_its_end() {
    let (store, _dir) = fresh().await;
    let now = Utc::now().trunc_subsecs(6) - TimeDelta::seconds(1);
    let (deleted, other) = (ContactId::generate(), ContactId::generate());
    let deletion = Uuid::new_v4();
    record_job(&store, "older", "publish", &deleted, None, now).await;
    record_job(&store, "removal", "publish", &deleted, Some(deletion), now).await;
    let later = now + TimeDelta::days(1);
    record_job(
        &store,
        "finish",
        "finish_deletion",
        &deleted,
        Some(deletion),
        later,
    )
    .await;
    record_job(&store, "unbind", "unbind", &other, None, now).await;
    let lease = Duration::from_secs(30);

    let claimed = store.claim_jobs("w", lease, 10).await.unwrap();

    let ids: Vec<_> = claimed.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(
        ids,
        ["removal", "unbind"],
        "the older message dropped, the end not due"
    );
    let LifecycleTask::Publish { message, .. } = &claimed[0].task else {
        panic!("{:?}", claimed[0].task);
    };
    assert_eq!(
        message.payload, br#"{"a":2,"b":1}"#,
        "rendered as every store renders it"
    );
    let progress = store.deletion_progress(&account(), deletion).await.unwrap();
    assert_eq!((progress.pending, progress.failed.len()), (1, 0));

    let failed = JobOutcome::Failed {
        reason: "broker down".into(),
    };
    assert!(
        !store
            .settle_job("x", &claimed[0], failed.clone())
            .await
            .unwrap()
    );
    assert!(store.settle_job("w", &claimed[0], failed).await.unwrap());
    let progress = store.deletion_progress(&account(), deletion).await.unwrap();
    assert_eq!(progress.pending, 0);
    assert_eq!(progress.failed[0].account_id.as_str(), MEMBER);
    let retry_at = now + TimeDelta::hours(2);
    let retry = JobOutcome::Retry {
        at: retry_at,
        reason: "later".into(),
    };
    assert!(store.settle_job("w", &claimed[1], retry).await.unwrap());

    let finish = store.claim_jobs("w", lease, 10).await.unwrap();
    assert_eq!(finish.len(), 1, "the end of the delete is due at once");
    assert!(
        matches!(finish[0].task, LifecycleTask::FinishDeletion { deletion_id, .. } if deletion_id == deletion)
    );
    assert!(
        store
            .settle_job("w", &finish[0], JobOutcome::Done)
            .await
            .unwrap()
    );
    let progress = store.deletion_progress(&account(), deletion).await.unwrap();
    assert_eq!(progress, Default::default(), "its removals went with it");
    assert_eq!(
        store.next_job_due().await.unwrap(),
        Some(retry_at),
        "the unbinding's retry"
    );
}
