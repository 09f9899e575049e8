//! Projections on the store: a checkpoint that moves with each batch's effects, so that a
//! projection killed mid-run (or stopped and started again) resumes where its effects end,
//! applying each event once; and rebuilds that give back exactly the read models the live
//! projections and appends wrote.

use std::collections::BTreeMap;

use contactd_app::{AccountActivity, ContactStore, LogPosition, ProjectionMetrics};
use contactd_domain::{
    FolderId, MemberAccountId, MemberId, Title, UpdateMessageContact, VerificationTarget,
};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Backend;
use crate::fixtures::*;

const WRITERS: usize = 6;
const EVENTS_PER_WRITER: usize = 200;

/// Appends a creation and retitles, one append each, to a stream of the writer's account
/// (three accounts among the writers).
async fn write(store: impl ContactStore, writer: usize) {
    let account = [
        account(),
        other_account(),
        contactd_domain::AccountId::parse("42").unwrap(),
    ][writer % 3]
        .clone();
    let metadata = metadata_of(&account, now());
    let (_, mut state) = stored_contact(&store, &letters(writer), &metadata).await;
    let titles = [Title::Ceo, Title::ProjectDirector, Title::FinanceDirector];
    for n in 1..EVENTS_PER_WRITER {
        state = stored_retitle(&store, &state, titles[n % titles.len()], &metadata)
            .await
            .1;
    }
}

/// The `account_activity` rows, and the events they count in all.
async fn activity<B: Backend>(backend: &B) -> (Vec<Value>, i64) {
    let rows = backend
        .read_models()
        .await
        .remove(AccountActivity::NAME)
        .expect("the account_activity read model");
    let counted = rows.iter().map(|row| row["events"].as_i64().unwrap()).sum();
    (rows, counted)
}

/// Where the runner reporting to `metrics` stands.
fn position(metrics: &ProjectionMetrics) -> LogPosition {
    metrics
        .snapshot()
        .get(AccountActivity::NAME)
        .map_or(LogPosition::START, |status| status.position)
}

pub async fn a_projection_killed_mid_run_resumes_from_its_checkpoint_applying_each_event_once<
    B: Backend,
>() {
    let backend = B::fresh().await;
    let name = AccountActivity::NAME;
    let mut writers = JoinSet::new();
    for writer in 0..WRITERS {
        writers.spawn(write(backend.store().clone(), writer));
    }
    // Small batches, so that the kill lands with many still to come.
    let (_stop, stopping) = watch::channel(false);
    let first_metrics = ProjectionMetrics::default();
    let first = backend.spawn_projection(
        name,
        runner("first", 10),
        first_metrics.clone(),
        stopping.clone(),
    );
    within("the first runner has applied a batch", async {
        while position(&first_metrics) == LogPosition::START {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    })
    .await;
    // Killed: its task, its connection and whatever batch it had open are dropped mid-flight.
    first.abort();
    let _ = first.await;
    let killed_at = position(&first_metrics);

    let second_metrics = ProjectionMetrics::default();
    let second =
        backend.spawn_projection(name, runner("second", 10), second_metrics.clone(), stopping);
    within("the writers are done", writers.join_all()).await;
    let log = whole_log(backend.store()).await;
    let end = log.last().unwrap().position;
    until_caught_up(&second_metrics, name, end).await;
    second.abort();
    let _ = second.await;
    assert!(
        killed_at < end,
        "the kill happened before the end: at {killed_at:?} of {end:?}"
    );

    let (live, counted) = activity(&backend).await;
    assert_eq!(
        counted,
        log.len() as i64,
        "every event counted once: none twice across the kill, none skipped"
    );
    backend.rebuild_read_models().await;
    let (rebuilt, _) = activity(&backend).await;
    assert_eq!(live, rebuilt, "the live model is the replay of the log");
}

pub async fn a_projection_stopped_and_started_again_applies_only_what_is_new<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.store();
    let metadata = metadata();
    let (_, tom) = stored_contact(store, "Tom", &metadata).await;
    stored_contact(store, "Ann", &metadata_of(&other_account(), now())).await;
    run_projection_to_end(&backend, AccountActivity::NAME).await;
    let (_, first) = activity(&backend).await;
    assert_eq!(first, 2);

    stored_retitle(store, &tom, Title::Ceo, &metadata).await;
    run_projection_to_end(&backend, AccountActivity::NAME).await;
    // And once more with nothing new: nothing is applied again.
    run_projection_to_end(&backend, AccountActivity::NAME).await;
    let (live, counted) = activity(&backend).await;
    assert_eq!(counted, 3, "{live:?}");
    backend.rebuild_read_models().await;
    assert_eq!(activity(&backend).await.0, live);
}

fn folder(name: &str) -> FolderId {
    FolderId::parse(&format!("fd-{name:0>10}")).unwrap()
}

fn member(n: u32) -> MemberAccountId {
    MemberAccountId::parse(&format!("{:0>16}", 2_000 + n)).unwrap()
}

/// A history that touches every read model: contacts added, changed, verified, deleted at once
/// and in the background; directories with two folder levels, members moved and removed, and
/// contacts bound at each level; in two accounts.
async fn populate<B: Backend>(backend: &B) {
    let app = service(backend.store().clone(), 20);
    for account in [account(), other_account()] {
        let ctx = ctx_of(&account);
        app.register_folder(&ctx, &folder("A"), None).await.unwrap();
        app.register_folder(&ctx, &folder("B"), Some(&folder("A")))
            .await
            .unwrap();
        app.register_member(&ctx, &member(1), None).await.unwrap();
        app.register_member(&ctx, &member(2), Some(&folder("B")))
            .await
            .unwrap();
        app.register_member(&ctx, &member(3), Some(&folder("A")))
            .await
            .unwrap();
        let mut ids = Vec::new();
        for (name, targets) in [
            (
                "Tom",
                vec![MemberId::Folder(folder("A")), MemberId::Account(member(1))],
            ),
            ("Ann", vec![MemberId::Folder(folder("B"))]),
            ("Bob", vec![MemberId::Account(member(3))]),
            ("Cid", vec![]),
        ] {
            let address = format!("{}@example.com", name.to_lowercase());
            let contact = added(
                app.add_contact(&ctx, new_contact_at(name, &address), None)
                    .await
                    .unwrap(),
            );
            if !targets.is_empty() {
                app.associate_members(&ctx, &contact.contact_id, &targets, None)
                    .await
                    .unwrap();
            }
            ids.push((contact.contact_id, address));
        }
        let update = UpdateMessageContact {
            title: Some(Title::Ceo),
            ..UpdateMessageContact::default()
        };
        app.update_contact(&ctx, &ids[0].0, &update, None)
            .await
            .unwrap();
        // Bob is verified by the code a send issued.
        let bob = VerificationTarget::Email(email(&ids[2].1));
        app.send_verification(&ctx, &ids[2].0, &bob, None)
            .await
            .unwrap();
        let code = app
            .get_contact(&ctx, &ids[2].0)
            .await
            .unwrap()
            .email_code
            .unwrap();
        let right = app.policy().verification.secret.code(code.verification_id);
        app.confirm_verification(&ctx, &ids[2].0, &bob, &right, None)
            .await
            .unwrap();
        app.move_member(&ctx, &member(2), Some(&folder("A")))
            .await
            .unwrap();
        app.remove_member(&ctx, &member(3)).await.unwrap();
        app.delete_contact(&ctx, &ids[3].0, true, None)
            .await
            .unwrap();
        app.delete_contact(&ctx, &ids[1].0, false, None)
            .await
            .unwrap();
    }
}

pub async fn rebuilding_every_read_model_gives_back_the_live_ones_exactly<B: Backend>() {
    let backend = B::fresh().await;
    populate(&backend).await;
    catch_up_projections(&backend).await;
    let live = backend.read_models().await;
    for (table, rows) in &live {
        assert!(!rows.is_empty(), "{table} has rows to rebuild: {live:?}");
    }

    backend.spoil_read_models().await;
    let spoiled = backend.read_models().await;
    let untouched: Vec<_> = live
        .iter()
        .filter(|(table, rows)| spoiled.get(*table) == Some(rows))
        .map(|(table, _)| *table)
        .collect();
    assert!(
        untouched.is_empty(),
        "the spoiling left {untouched:?} alone"
    );

    backend.rebuild_read_models().await;
    let rebuilt = backend.read_models().await;
    let differ: BTreeMap<_, _> = live
        .iter()
        .filter(|(table, rows)| rebuilt.get(*table) != Some(rows))
        .map(|(table, rows)| (*table, (rows, rebuilt.get(*table))))
        .collect();
    assert!(
        differ.is_empty(),
        "rebuilt differently (live, rebuilt): {differ:#?}"
    );
    assert_eq!(rebuilt.len(), live.len());
}
