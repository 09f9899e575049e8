//! The lifecycle jobs: recorded by the store's member-contacts projection, claimed by one
//! worker at a time under a lease, settled only by the lease's holder, a member's messages
//! about a contact one at a time in order, and a delete's removals counted until they settle.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use contactd_app::{
    ContactService, ContactStore, DeletionProgress, JobOutcome, LifecycleJob, LifecycleJobs,
    LifecycleTask, Outcome,
};
use contactd_domain::{
    Contact, DeleteStatus, FailReason, MemberAccountId, MemberId, MessageTypes, Title,
    UpdateMessageContact,
};

use crate::Backend;
use crate::fixtures::*;

const LEASE: Duration = Duration::from_secs(60);
/// A lease that has run out by the time anyone looks: another worker takes the job over.
const LOST: Duration = Duration::ZERO;

fn member(n: u8) -> MemberAccountId {
    MemberAccountId::parse(&format!("{:0>16}", 1_000 + u32::from(n))).unwrap()
}

/// A directory with the members, and Tom bound to each of them; the service and Tom.
async fn bound<B: Backend>(
    backend: &B,
    members: &[MemberAccountId],
) -> (Arc<ContactService<B::Store>>, Contact) {
    let app = service(backend.store().clone(), 20);
    for member in members {
        app.register_member(&ctx(), member, None).await.unwrap();
    }
    let tom = added(
        app.add_contact(&ctx(), new_contact("Tom"), None)
            .await
            .unwrap(),
    );
    let targets: Vec<MemberId> = members.iter().cloned().map(MemberId::Account).collect();
    app.associate_members(&ctx(), &tom.contact_id, &targets, None)
        .await
        .unwrap();
    (app, tom)
}

/// The id of the stream's last event of the type.
async fn event_id_of<B: Backend>(backend: &B, stream_id: &str, event_type: &str) -> String {
    history(backend.store(), &account(), stream_id)
        .await
        .into_iter()
        .rfind(|e| e.event_type == event_type)
        .unwrap()
        .event_id
        .to_string()
}

fn published_to(job: &LifecycleJob) -> (&MemberAccountId, Option<uuid::Uuid>) {
    match &job.task {
        LifecycleTask::Publish {
            member,
            deletion_id,
            ..
        } => (member, *deletion_id),
        other => panic!("a publish, not {other:?}"),
    }
}

pub async fn a_binding_records_a_job_claimed_by_one_worker_while_its_lease_runs<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    assert_eq!(store.next_job_due().await.unwrap(), None);
    let (_, tom) = bound(&backend, &[member(1)]).await;
    catch_up_projections(&backend).await;
    let cause = event_id_of(&backend, tom.contact_id.as_str(), "MembersAssociated").await;

    let claimed = store.claim_jobs("worker-a", LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let job = &claimed[0];
    assert_eq!(published_to(job), (&member(1), None));
    assert_eq!(
        (
            job.account_id.clone(),
            job.causation_id.as_str(),
            job.attempt
        ),
        (account(), cause.as_str(), 1)
    );
    let LifecycleTask::Publish {
        message,
        message_types,
        ..
    } = &job.task
    else {
        unreachable!()
    };
    assert_eq!(*message_types, tom.message_types);
    let payload: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
    assert!(payload.is_object(), "a JSON payload: {payload}");
    assert!(
        message.subject.contains(member(1).as_str()),
        "{}",
        message.subject
    );

    let elsewhere = backend.another_process().await;
    for store in [store, &elsewhere] {
        assert!(
            store
                .claim_jobs("worker-b", LEASE, 10)
                .await
                .unwrap()
                .is_empty(),
            "the lease holds it"
        );
    }
    let due = elsewhere.next_job_due().await.unwrap().unwrap();
    assert!(
        due > now() + TimeDelta::seconds(50),
        "due again when its lease ends, not before: {due}"
    );
}

pub async fn a_job_is_settled_only_by_the_holder_of_its_lease<B: Backend>() {
    let backend = B::fresh().await;
    bound(&backend, &[member(1)]).await;
    catch_up_projections(&backend).await;
    let (first, second) = (backend.store(), backend.another_process().await);
    let lost = first
        .claim_jobs("worker-a", LOST, 10)
        .await
        .unwrap()
        .remove(0);
    let taken = second
        .claim_jobs("worker-b", LEASE, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (lost.job_id.as_str(), lost.attempt),
        (taken.job_id.as_str(), 1)
    );
    assert_eq!(taken.attempt, 2);

    assert!(
        !first
            .settle_job("worker-a", &lost, JobOutcome::Done)
            .await
            .unwrap(),
        "the lease was taken over: its settlement is refused"
    );
    let retry_at = now() + TimeDelta::hours(1);
    let retry = JobOutcome::Retry {
        at: retry_at,
        reason: "broker down".into(),
    };
    assert!(second.settle_job("worker-b", &taken, retry).await.unwrap());
    assert!(
        first
            .claim_jobs("worker-c", LOST, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(first.next_job_due().await.unwrap(), Some(retry_at));
    // Retried or not, a settled job's lease is over: its holder cannot settle it again.
    assert!(
        !second
            .settle_job("worker-b", &taken, JobOutcome::Done)
            .await
            .unwrap(),
        "settled once, it is no one's until claimed again"
    );
    assert_eq!(second.next_job_due().await.unwrap(), Some(retry_at));
}

pub async fn a_members_messages_about_a_contact_are_claimed_one_at_a_time_in_order<B: Backend>() {
    let backend = B::fresh().await;
    let (app, tom) = bound(&backend, &[member(1)]).await;
    let retitle = UpdateMessageContact {
        title: Some(Title::Ceo),
        ..UpdateMessageContact::default()
    };
    app.update_contact(&ctx(), &tom.contact_id, &retitle, None)
        .await
        .unwrap();
    catch_up_projections(&backend).await;
    let bound_by = event_id_of(&backend, tom.contact_id.as_str(), "MembersAssociated").await;
    let changed_by = event_id_of(&backend, tom.contact_id.as_str(), "TitleChanged").await;
    let store = backend.store();

    let first = store.claim_jobs("worker-a", LEASE, 10).await.unwrap();
    assert_eq!(
        first.len(),
        1,
        "the second waits behind the first: {first:?}"
    );
    assert_eq!(first[0].causation_id, bound_by);
    // Retried later, it still holds the second back.
    let later = JobOutcome::Retry {
        at: now(),
        reason: "broker down".into(),
    };
    assert!(
        store
            .settle_job("worker-a", &first[0], later)
            .await
            .unwrap()
    );
    let again = store.claim_jobs("worker-a", LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(
        (again[0].causation_id.as_str(), again[0].attempt),
        (bound_by.as_str(), 2)
    );
    assert!(
        store
            .settle_job("worker-a", &again[0], JobOutcome::Done)
            .await
            .unwrap()
    );
    let second = store.claim_jobs("worker-a", LEASE, 10).await.unwrap();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0].causation_id, changed_by);
    assert_eq!(published_to(&second[0]), (&member(1), None));
    assert!(
        store
            .settle_job("worker-a", &second[0], JobOutcome::Done)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_jobs("worker-a", LOST, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_job_due().await.unwrap(), None);
}

pub async fn an_asynchronous_deletes_removals_are_counted_until_they_settle<B: Backend>() {
    let backend = B::fresh().await;
    let (app, tom) = bound(&backend, &[member(1), member(2)]).await;
    catch_up_projections(&backend).await;
    let store = backend.store();
    // The bindings' messages are sent first.
    for job in store.claim_jobs("worker-a", LEASE, 10).await.unwrap() {
        assert!(
            store
                .settle_job("worker-a", &job, JobOutcome::Done)
                .await
                .unwrap()
        );
    }

    let deleted = app
        .delete_contact(&ctx(), &tom.contact_id, false, None)
        .await
        .unwrap();
    assert!(
        matches!(
            deleted,
            Outcome::Deleted {
                status: DeleteStatus::Deleting,
                ..
            }
        ),
        "{deleted:?}"
    );
    let deletion_id = store
        .load_contact(&account(), &tom.contact_id)
        .await
        .unwrap()
        .unwrap()
        .deletion
        .unwrap()
        .deletion_id;
    catch_up_projections(&backend).await;
    let progress = store
        .deletion_progress(&account(), deletion_id)
        .await
        .unwrap();
    assert_eq!(
        progress,
        DeletionProgress {
            pending: 2,
            failed: Vec::new()
        }
    );

    let claimed = store.claim_jobs("worker-a", LEASE, 10).await.unwrap();
    let started = event_id_of(&backend, tom.contact_id.as_str(), "ContactDeletionStarted").await;
    assert!(
        claimed.iter().all(|job| job.causation_id == started),
        "{claimed:?}"
    );
    let removal_of = |n: u8| {
        claimed
            .iter()
            .find(|job| {
                matches!(&job.task, LifecycleTask::Publish { member: m, deletion_id: Some(d), .. }
                    if *m == member(n) && *d == deletion_id)
            })
            .unwrap_or_else(|| panic!("a removal for member {n}: {claimed:?}"))
    };
    let (first, second) = (removal_of(1), removal_of(2));
    let finish = claimed
        .iter()
        .find(|job| {
            matches!(&job.task, LifecycleTask::FinishDeletion { contact_id, deletion_id: d }
                if *contact_id == tom.contact_id && *d == deletion_id)
        })
        .unwrap_or_else(|| panic!("the job that ends the delete: {claimed:?}"));

    assert!(
        store
            .settle_job("worker-a", first, JobOutcome::Done)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .deletion_progress(&account(), deletion_id)
            .await
            .unwrap(),
        DeletionProgress {
            pending: 1,
            failed: Vec::new()
        }
    );
    let gave_up = JobOutcome::Failed {
        reason: "attempts exhausted".into(),
    };
    assert!(store.settle_job("worker-a", second, gave_up).await.unwrap());
    let types = MessageTypes::parse(["FaultMessage"]).unwrap().unwrap();
    assert_eq!(
        store
            .deletion_progress(&account(), deletion_id)
            .await
            .unwrap(),
        DeletionProgress {
            pending: 0,
            failed: vec![FailReason {
                account_id: member(2),
                message_types: types,
            }]
        }
    );
    assert_eq!(
        store
            .deletion_progress(&other_account(), deletion_id)
            .await
            .unwrap(),
        DeletionProgress::default(),
        "another account's delete is not found"
    );
    // The end of the delete takes its removals with it.
    assert!(
        store
            .settle_job("worker-a", finish, JobOutcome::Done)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .deletion_progress(&account(), deletion_id)
            .await
            .unwrap(),
        DeletionProgress::default()
    );
    assert!(
        store
            .claim_jobs("worker-b", LOST, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
