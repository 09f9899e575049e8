//! The data the scenarios run on, made over gRPC like any client would: accounts × contacts,
//! one contact whose stream holds a long history, short-history contacts to compare it with,
//! and `bench_contacts`, which maps 1..n to the seeded contacts for the pgbench scripts.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use contactd_grpc::proto::UpdateMessageContactRequest;
use sqlx::PgPool;
use tokio::task::JoinSet;

use crate::client::{Account, ContactRef, Fleet, add_request, letters_name};

/// Account families (the first digit of their ids), so that no two uses share an account.
pub const SEEDED_FAMILY: u8 = 1;
pub const ADDED_FAMILY: u8 = 2;
pub const HISTORY_FAMILY: u8 = 3;
/// The dispatch benchmark's contacts, one per send (`dispatch.rs`).
pub const DISPATCH_FAMILY: u8 = 4;

/// How much to seed.
#[derive(Debug, Clone)]
pub struct SeedPlan {
    pub accounts: usize,
    pub contacts_per_account: usize,
    /// Events in the long stream (its add included).
    pub long_stream_events: usize,
    /// Events in each short stream (its add included).
    pub short_stream_events: usize,
    /// Short streams to make: one per run that updates one, so each starts short.
    pub short_streams: usize,
    /// Calls in flight while seeding.
    pub concurrency: usize,
}

/// What was seeded.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub accounts: Vec<Account>,
    pub contacts: Vec<ContactRef>,
    pub long_stream: ContactRef,
    pub short_streams: Vec<ContactRef>,
}

/// Runs `f(0..count)` with `concurrency` calls in flight and returns the results in order.
pub async fn parallel<T, F, Fut>(concurrency: usize, count: usize, f: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let f = Arc::new(f);
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let (next, f) = (next.clone(), f.clone());
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return anyhow::Ok(done);
                }
                done.push((index, f(index).await?));
            }
        });
    }
    let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
    while let Some(worker) = workers.join_next().await {
        for (index, value) in worker.context("a seeding task panicked")?? {
            results[index] = Some(value);
        }
    }
    results
        .into_iter()
        .map(|r| r.context("a seeding call did not run"))
        .collect()
}

async fn add(
    fleet: &Fleet,
    task: usize,
    account: &Account,
    name: String,
) -> anyhow::Result<ContactRef> {
    let email = format!("{}@seed.example", name.to_lowercase());
    let response = fleet
        .client(task)
        .add_message_contact(account.request(add_request(name, email)))
        .await
        .with_context(|| format!("seeding a contact of account {}", account.id()))?;
    let contact = response.into_inner().contact.context("the added contact")?;
    Ok(ContactRef {
        account: account.clone(),
        contact_id: contact.contact_id,
    })
}

/// One update that appends one event: a fresh email address.
pub fn fresh_email_update(contact: &ContactRef, serial: u64) -> UpdateMessageContactRequest {
    UpdateMessageContactRequest {
        contact_id: contact.contact_id.clone(),
        email_address: Some(format!("u{serial}@bench.example")),
        ..Default::default()
    }
}

/// Appends `events` events to `contact`'s stream with `concurrency` calls in flight.
async fn grow(
    fleet: &Fleet,
    contact: &ContactRef,
    events: usize,
    concurrency: usize,
    serial_base: u64,
) -> anyhow::Result<()> {
    let (fleet, contact) = (fleet.clone(), contact.clone());
    parallel(concurrency, events, move |i| {
        let (fleet, contact) = (fleet.clone(), contact.clone());
        async move {
            fleet
                .client(i)
                .update_message_contact(
                    contact
                        .account
                        .request(fresh_email_update(&contact, serial_base + i as u64)),
                )
                .await
                .context("growing a stream")?;
            anyhow::Ok(())
        }
    })
    .await?;
    Ok(())
}

/// Seeds everything in `plan` over gRPC, then writes `bench_contacts`.
pub async fn seed(fleet: &Fleet, pool: &PgPool, plan: &SeedPlan) -> anyhow::Result<Seeded> {
    let accounts: Vec<Account> = (0..plan.accounts)
        .map(|a| Account::numbered(SEEDED_FAMILY, a as u64 + 1))
        .collect();
    let per_account = plan.contacts_per_account.max(1);
    let contacts = {
        let (fleet, accounts) = (fleet.clone(), accounts.clone());
        parallel(plan.concurrency, plan.accounts * per_account, move |i| {
            let (fleet, account) = (fleet.clone(), accounts[i / per_account].clone());
            async move { add(&fleet, i, &account, letters_name("Seed", i % per_account)).await }
        })
        .await?
    };

    let history = |n: usize| Account::numbered(HISTORY_FAMILY, n as u64 + 1);
    let long_stream = add(fleet, 0, &history(0), "Longstream".to_owned()).await?;
    grow(
        fleet,
        &long_stream,
        plan.long_stream_events.saturating_sub(1),
        plan.concurrency,
        1_000_000_000,
    )
    .await?;
    let mut short_streams = Vec::with_capacity(plan.short_streams);
    for s in 0..plan.short_streams {
        let contact = add(fleet, 0, &history(s + 1), "Shortstream".to_owned()).await?;
        let serial_base = 2_000_000_000 + (s as u64) * 1_000_000;
        grow(
            fleet,
            &contact,
            plan.short_stream_events.saturating_sub(1),
            1,
            serial_base,
        )
        .await?;
        short_streams.push(contact);
    }

    write_bench_contacts(pool, &contacts).await?;
    Ok(Seeded {
        accounts,
        contacts,
        long_stream,
        short_streams,
    })
}

/// `bench_contacts (n, contact_id)`, n = 1..contacts: how the pgbench scripts pick a seeded
/// contact at random (`\set n random(1, :contacts)`).
async fn write_bench_contacts(pool: &PgPool, contacts: &[ContactRef]) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_contacts (n integer PRIMARY KEY, contact_id text NOT NULL)",
    )
    .execute(pool)
    .await?;
    sqlx::query("TRUNCATE bench_contacts").execute(pool).await?;
    let numbers: Vec<i32> = (1..).take(contacts.len()).collect();
    let ids: Vec<&str> = contacts.iter().map(|c| c.contact_id.as_str()).collect();
    sqlx::query(
        "INSERT INTO bench_contacts (n, contact_id) SELECT * FROM UNNEST($1::int[], $2::text[])",
    )
    .bind(&numbers)
    .bind(&ids)
    .execute(pool)
    .await
    .context("writing bench_contacts")?;
    sqlx::query("ANALYZE bench_contacts").execute(pool).await?;
    Ok(())
}
