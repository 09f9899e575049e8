//! Benchmark of the event-store engine over a large log: seeds N events (default 1,000,000:
//! 100,000 contacts of 10 events in 5,000 accounts) into a fresh database, then measures
//! reading the log in order, a projection catching up from the start, and the rebuilds of the
//! inline read model and of the projection.
//!
//! `cargo run --release -p contactd-store-pg --example log_throughput -- [EVENTS]`
//! (DATABASE_URL names the server; the database `contactd_log_bench` is dropped and recreated).

use std::sync::Arc;
use std::time::{Duration, Instant};

use contactd_app::{AccountActivity, EventLog, LogPosition, ProjectionMetrics, RunnerSettings};
use contactd_store_pg::{PgStore, PoolSettings};
use sqlx::migrate::MigrateDatabase;
use tokio::sync::watch;

const EVENTS_PER_CONTACT: i64 = 10;
const ACCOUNTS: i64 = 5000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: i64 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let contacts = events / EVENTS_PER_CONTACT;
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (server, _) = server
        .rsplit_once('/')
        .ok_or("DATABASE_URL needs a database")?;
    let url = format!("{server}/contactd_log_bench");
    if sqlx::Postgres::database_exists(&url).await? {
        sqlx::Postgres::drop_database(&url).await?;
    }
    sqlx::Postgres::create_database(&url).await?;
    let pool = contactd_store_pg::connect(&url, &PoolSettings::default()).await?;
    contactd_store_pg::migrate(&pool).await?;
    let store = PgStore::new(pool.clone(), contactd_store_pg::Keyring::for_tests());

    let started = Instant::now();
    seed(&pool, contacts).await?;
    sqlx::query("VACUUM ANALYZE events").execute(&pool).await?;
    let seeded: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await?;
    report(
        "seed (SQL, one statement per 100,000 events)",
        seeded,
        started.elapsed(),
    );

    let started = Instant::now();
    let mut after = LogPosition::START;
    let mut read = 0;
    loop {
        let batch = store.read_log(after, None, 5000).await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        read += batch.len() as i64;
    }
    report(
        "read the log in order (decoded, batches of 5,000)",
        read,
        started.elapsed(),
    );

    let started = Instant::now();
    let rebuilt = contactd_store_pg::rebuild_contacts(&store).await?;
    report(
        "rebuild of the inline read model (contacts, names, quotas)",
        rebuilt.events as i64,
        started.elapsed(),
    );

    let started = Instant::now();
    let (stop, stopping) = watch::channel(false);
    let settings = RunnerSettings {
        batch_size: 5000,
        poll_interval: Duration::from_millis(10),
        ..RunnerSettings::default()
    };
    let runner = tokio::spawn(contactd_app::run_projection(
        store.clone(),
        Arc::new(AccountActivity),
        settings,
        ProjectionMetrics::default(),
        stopping,
    ));
    let last_position: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(&pool)
        .await?;
    loop {
        let position: Option<i64> = sqlx::query_scalar(
            "SELECT global_position FROM projection_checkpoints WHERE name = 'account_activity'",
        )
        .fetch_optional(&pool)
        .await?;
        if position == Some(last_position) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report(
        "catch-up of the account_activity projection from the start",
        seeded,
        started.elapsed(),
    );
    let _ = stop.send(true);
    runner.await?;

    let started = Instant::now();
    let rebuilt = contactd_store_pg::rebuild_projection(&store, &AccountActivity, 5000).await?;
    report(
        "rebuild of the account_activity projection",
        rebuilt.events as i64,
        started.elapsed(),
    );
    Ok(())
}

fn report(what: &str, events: i64, took: Duration) {
    let seconds = took.as_secs_f64();
    println!(
        "{what}: {events} events in {seconds:.2} s = {:.0} events/s",
        events as f64 / seconds
    );
}

/// Each contact: one `MessageContactAdded` (schema 2), then title changes.
async fn seed(pool: &sqlx::PgPool, contacts: i64) -> Result<(), sqlx::Error> {
    const CHUNK: i64 = 10_000;
    let mut first = 0;
    while first < contacts {
        let last = (first + CHUNK).min(contacts) - 1;
        sqlx::query(
            "INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, schema_version, payload, \
                                 request_id, caller, correlation_id, causation_id, recorded_at) \
             SELECT gen_random_uuid(), (c % $3)::text, 'c-' || lpad(c::text, 16, '0'), v, \
                    CASE WHEN v = 1 THEN 'MessageContactAdded' ELSE 'TitleChanged' END, \
                    CASE WHEN v = 1 THEN 2 ELSE 1 END, \
                    CASE WHEN v = 1 THEN jsonb_build_object( \
                        'contact_id', 'c-' || lpad(c::text, 16, '0'), \
                        'name', 'Nm' || chr(97 + (c / $3)::int / 26) || chr(97 + (c / $3)::int % 26), \
                        'email_address', 'someone' || c || '@example.com', \
                        'phone_number', NULL, \
                        'title', 'Other', \
                        'message_types', jsonb_build_array('AccountExpenses')) \
                    ELSE jsonb_build_object('title', (ARRAY['CEO', 'Other', 'FinanceDirector'])[1 + v % 3]) END, \
                    'B0000000-0000-4000-8000-000000000000', 'account:' || (c % $3), 'bench', 'bench', \
                    now() + make_interval(secs => v) \
             FROM generate_series($1::bigint, $2::bigint) AS c, generate_series(1, $4::int) AS v \
             ORDER BY c, v",
        )
        .bind(first)
        .bind(last)
        .bind(ACCOUNTS)
        .bind(EVENTS_PER_CONTACT as i32)
        .execute(pool)
        .await?;
        first = last + 1;
    }
    Ok(())
}
