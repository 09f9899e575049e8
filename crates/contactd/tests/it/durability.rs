//! Nothing acknowledged is lost: a `contactd` process killed (SIGKILL) in the middle of a burst
//! of updates from many clients, then started again on the same database, has every update it
//! answered with success, and at most the one in flight per contact beyond them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::support::*;

/// Contacts updated at once, each by a client of its own, one update after the other.
const WRITERS: usize = 8;

async fn a_kill_during_a_burst_of_updates_loses_no_acknowledged_update(db: TestDb) {
    let mut first = Process::start(&db);
    let mut client = first.client().await;
    let mut contacts = Vec::new();
    for i in 0..WRITERS {
        let name = format!("Writer{}", char::from(b'a' + i as u8));
        contacts.push(add(&mut client, ACCOUNT, &name).await.contact_id);
    }
    let acknowledged: Arc<Vec<AtomicU64>> =
        Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let mut writers = Vec::new();
    for (i, contact_id) in contacts.iter().cloned().enumerate() {
        let mut client = first.client().await;
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for serial in 1_u64.. {
                let mut request = update_request(&contact_id);
                request.email_address = Some(format!("w{i}.{serial}@example.com"));
                let answer = client
                    .update_message_contact(as_account(ACCOUNT, request))
                    .await;
                if answer.is_err() {
                    // The process is gone: this update may or may not have committed.
                    return;
                }
                acknowledged[i].store(serial, Ordering::SeqCst);
            }
        }));
    }
    until(
        "every writer has had some updates acknowledged",
        Duration::from_secs(30),
        async || {
            acknowledged
                .iter()
                .all(|n| n.load(Ordering::SeqCst) >= 5)
                .then_some(())
        },
    )
    .await;

    first.kill();
    for writer in writers {
        writer.await.expect("a writer task");
    }

    let second = Process::start(&db);
    let mut client = second.client().await;
    for (i, contact_id) in contacts.iter().enumerate() {
        let acked = acknowledged[i].load(Ordering::SeqCst);
        let contact = get(&mut client, ACCOUNT, contact_id)
            .await
            .expect("the contact is there after the restart");
        // Version 1 is the add; each update adds one. The update in flight at the kill may
        // have committed without its answer arriving.
        let updates = u64::try_from(contact.version - 1).expect("a version after the add");
        assert!(
            updates == acked || updates == acked + 1,
            "contact {i}: {acked} updates acknowledged, {updates} kept"
        );
        let last_kept = contact.email_address;
        assert!(
            last_kept == format!("w{i}.{acked}@example.com")
                || last_kept == format!("w{i}.{}@example.com", acked + 1),
            "contact {i}: the last acknowledged address (or the one in flight) is the pending \
             one, not {last_kept}"
        );
    }
}

both_backends!(a_kill_during_a_burst_of_updates_loses_no_acknowledged_update);
