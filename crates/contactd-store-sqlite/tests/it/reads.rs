//! The reads on SQLite: pages of contacts (all of an account's, or those that apply to a
//! member, as the member-contacts projection's rows say), a code's tries and link, a stream
//! as of a time.

use chrono::TimeDelta;
use contactd_app::{Append, AsOf, AuditLog, CodeIssue, ContactStore, PageRequest, SendLimits};
use contactd_domain::{Channel, ContactEvent, MemberId, Title, VerificationId, VerificationTarget};

use crate::support::*;

#[tokio::test]
async fn pages_of_contacts_list_them_in_creation_order_with_their_count() {
    let (store, _dir) = fresh().await;
    let contacts = stored_contacts(&store, 5).await;
    let page = |number, size| PageRequest { number, size };

    let second = store
        .list_contacts(&account(), None, None, page(2, 2))
        .await
        .unwrap();
    let past_the_end = store
        .list_contacts(&account(), None, None, page(9, 2))
        .await
        .unwrap();
    let one = store
        .list_contacts(&account(), Some(&contacts[4].contact_id), None, page(1, 2))
        .await
        .unwrap();

    let mut in_order: Vec<_> = contacts
        .iter()
        .map(|c| (c.created_at, c.contact_id.clone()))
        .collect();
    in_order.sort();
    let ids: Vec<_> = second.items.iter().map(|l| &l.contact.contact_id).collect();
    assert_eq!(
        ids,
        [&in_order[2].1, &in_order[3].1],
        "created together: by id"
    );
    assert_eq!(second.total_count, 5);
    assert_eq!((past_the_end.items.len(), past_the_end.total_count), (0, 5));
    assert_eq!((one.items.len(), one.total_count), (1, 1));

    // What the member-contacts projection records: the third contact applies to a member.
    let member = "1111111111111111";
    let associated_at = metadata().recorded_at;
    sqlx::query(
        "INSERT INTO effective_contacts (account_id, node_id, contact_id, created_at, associated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(ACCOUNT)
    .bind(member)
    .bind(contacts[2].contact_id.as_str())
    .bind(contacts[2].created_at)
    .bind(associated_at)
    .execute(store.write_pool())
    .await
    .unwrap();
    let member = MemberId::parse(member).unwrap();
    let applying = store
        .list_contacts(&account(), None, Some(&member), page(1, 10))
        .await
        .unwrap();
    assert_eq!(applying.total_count, 1);
    assert_eq!(applying.items[0].contact, contacts[2]);
    assert_eq!(applying.items[0].associated_at, Some(associated_at));
}

#[tokio::test]
async fn a_codes_tries_are_counted_to_its_limit_and_its_link_finds_it() {
    let (store, _dir) = fresh().await;
    let contact = stored_contacts(&store, 1).await.remove(0);
    let at = metadata();
    let verification_id = VerificationId::generate();
    let expires_at = at.recorded_at + TimeDelta::minutes(10);
    let target = VerificationTarget::Email(contact.email_address.clone());
    let event = contact
        .request_verification(&target, verification_id, expires_at)
        .unwrap();
    let (events, after) = decided(&contact, vec![event], &at);
    let code = CodeIssue {
        verification_id,
        channel: Channel::Email,
        link_hash: [3; 32],
        expires_at,
        limits: SendLimits {
            day: at.recorded_at.date_naive(),
            per_account_day: 10,
            target_digest: [4; 32],
            per_target_minute: 10,
        },
    };
    store
        .append(Append {
            code: Some(&code),
            ..update(&after, 1, &events, &at)
        })
        .await
        .unwrap();

    let linked = store.find_link(&[3; 32]).await.unwrap().unwrap();
    assert_eq!(linked.verification_id, verification_id);
    assert_eq!(linked.contact_id, contact.contact_id);
    assert_eq!(store.find_link(&[5; 32]).await.unwrap(), None);
    let mut tries = Vec::new();
    for _ in 0..3 {
        tries.push(
            store
                .claim_code_try(&account(), verification_id, 2)
                .await
                .unwrap(),
        );
    }
    assert_eq!(tries, [true, true, false]);
}

#[tokio::test]
async fn a_stream_reads_as_of_a_time_and_an_account_is_followed_from_a_position() {
    let (store, _dir) = fresh().await;
    let contact = stored_contacts(&store, 1).await.remove(0);
    let mut at = metadata();
    at.recorded_at = contact.created_at + TimeDelta::seconds(10);
    let (events, after) = decided(
        &contact,
        vec![ContactEvent::TitleChanged { title: Title::Ceo }],
        &at,
    );
    store.append(update(&after, 1, &events, &at)).await.unwrap();
    let stream = contact.contact_id.as_str();

    let before = store
        .stream_as_of(
            &account(),
            stream,
            AsOf::Time(contact.created_at + TimeDelta::seconds(5)),
        )
        .await
        .unwrap();
    let page = store.stream_page(&account(), stream, 1, 10).await.unwrap();
    let mut followed = store.follow(&account(), 2).await.unwrap();

    assert_eq!(before.len(), 1);
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].stream_version, 2);
    let batch = followed.next_batch().await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].global_position, 2);
}
