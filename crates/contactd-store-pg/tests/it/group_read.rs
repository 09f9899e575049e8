//! Grouped reads: concurrent reads of contacts answered by one statement, each caller getting
//! exactly what a read of its own would have given it.

use contactd_app::ContactStore;
use contactd_domain::{AccountId, ContactId};
use contactd_store_pg::PgStore;
use sqlx::PgPool;
use tokio::task::JoinSet;

use crate::support::*;

/// Reads every `(account, contact)` at once, each from its own task; answers in the order given.
/// On the test's single-threaded runtime they all queue before the first group is taken.
async fn load_together(
    store: &PgStore,
    loads: Vec<(AccountId, ContactId)>,
) -> Vec<Result<Option<contactd_domain::Contact>, contactd_app::StoreError>> {
    let mut tasks = JoinSet::new();
    for (index, (account, contact)) in loads.into_iter().enumerate() {
        let store = store.clone();
        tasks.spawn(async move { (index, store.load_contact(&account, &contact).await) });
    }
    let mut answers = tasks.join_all().await;
    answers.sort_by_key(|(index, _)| *index);
    answers.into_iter().map(|(_, answer)| answer).collect()
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn each_read_of_a_group_gets_its_own_contact_and_only_in_its_own_account(pool: PgPool) {
    let store = PgStore::new(pool, contactd_store_pg::Keyring::for_tests()).group_reads(1);
    let contacts = stored_contacts(&store, 6).await;
    let stranger = AccountId::parse("999").unwrap();
    let mut loads: Vec<_> = contacts
        .iter()
        .map(|c| (account(), c.contact_id.clone()))
        .collect();
    // The same contact twice, another account's view of one, and one that does not exist.
    loads.push((account(), contacts[2].contact_id.clone()));
    loads.push((stranger, contacts[3].contact_id.clone()));
    loads.push((account(), ContactId::generate()));

    let answers = load_together(&store, loads).await;

    for (contact, answer) in contacts.iter().zip(&answers) {
        assert_eq!(answer.as_ref().unwrap().as_ref(), Some(contact));
    }
    assert_eq!(answers[6].as_ref().unwrap().as_ref(), Some(&contacts[2]));
    assert_eq!(
        answers[7].as_ref().unwrap(),
        &None,
        "another account's contact is not found"
    );
    assert_eq!(answers[8].as_ref().unwrap(), &None);
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_group_that_fails_fails_each_of_its_reads_as_transient(pool: PgPool) {
    let store = PgStore::new(pool.clone(), contactd_store_pg::Keyring::for_tests()).group_reads(1);
    pool.close().await;
    let loads = (0..5).map(|_| (account(), ContactId::generate())).collect();

    let answers = load_together(&store, loads).await;

    assert_eq!(answers.len(), 5);
    for answer in answers {
        let error = answer.unwrap_err();
        assert!(error.is_transient(), "{error}");
    }
}
