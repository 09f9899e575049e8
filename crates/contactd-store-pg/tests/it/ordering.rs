//! No skipped event: concurrent writers whose transactions commit out of position order, and a
//! checkpointed consumer that must see every committed event exactly once, in one consistent
//! order, even when it is killed halfway and resumes from its checkpoint.

use std::sync::Arc;
use std::time::Duration;

use contactd_app::{
    EventLog, Projection, ProjectionMetrics, RecordedEvent, RunnerSettings, StoreError,
    run_projection,
};
use contactd_store_pg::{PgStore, PgWork};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinSet;

const WRITERS: usize = 8;
const EVENTS: usize = 20_000;

/// Records the events' positions in `seen`, in the order given, in the batch's transaction.
async fn record_seen(
    work: &mut PgWork<'_>,
    events: impl Iterator<Item = &RecordedEvent>,
) -> Result<(), StoreError> {
    let positions: Vec<i64> = events.map(|e| e.global_position).collect();
    sqlx::query("INSERT INTO seen (global_position) SELECT position FROM UNNEST($1::bigint[]) WITH ORDINALITY AS p(position, n) ORDER BY n")
        .bind(positions)
        .execute(work.connection())
        .await
        .map_err(|e| StoreError::internal("recording what was seen failed", Some(Box::new(e))))?;
    Ok(())
}

/// Records every event it is given, in the order given, in the batch's transaction.
struct Recorder;

impl Projection<PgWork<'_>> for Recorder {
    fn name(&self) -> &'static str {
        "test_recorder"
    }

    async fn apply(
        &self,
        work: &mut PgWork<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), StoreError> {
        record_seen(work, events.iter()).await
    }

    fn clear(
        &self,
        work: &mut PgWork<'_>,
    ) -> Option<impl Future<Output = Result<(), StoreError>> + Send> {
        Some(async move {
            sqlx::query("DELETE FROM seen")
                .execute(work.connection())
                .await
                .map(|_| ())
                .map_err(|e| {
                    StoreError::internal("emptying what was seen failed", Some(Box::new(e)))
                })
        })
    }
}

/// Concerned only by every 50th event of each stream: most batches concern it not at all, so
/// the runner passes them without a transaction and moves the checkpoint past them later.
struct Picky;

impl Picky {
    fn picks(event: &RecordedEvent) -> bool {
        event.stream_version.is_multiple_of(50)
    }
}

impl Projection<PgWork<'_>> for Picky {
    fn name(&self) -> &'static str {
        "test_picky"
    }

    async fn apply(
        &self,
        work: &mut PgWork<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), StoreError> {
        record_seen(work, events.iter().filter(|e| Self::picks(e))).await
    }

    fn clear(
        &self,
        _: &mut PgWork<'_>,
    ) -> Option<impl Future<Output = Result<(), StoreError>> + Send> {
        None::<std::future::Ready<Result<(), StoreError>>>
    }

    fn concerns(&self, event: &RecordedEvent) -> bool {
        Self::picks(event)
    }
}

/// Appends `count` events in transactions of 1 to 4 events that sleep a little before they
/// commit, so that positions drawn early often commit late.
async fn write(pool: PgPool, writer: usize, count: usize) {
    let stream = format!("c-writer{writer:010}");
    let mut version = 0_i64;
    let mut step = writer as u64;
    while (version as usize) < count {
        // A small deterministic scramble: batch sizes 1..=4, sleeps 0..=2 ms.
        step = step
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let batch = (1 + (step >> 33) % 4).min((count - version as usize) as u64) as i64;
        let sleep_ms = ((step >> 40) % 3) as f64 / 1000.0;
        let mut tx = pool.begin().await.unwrap();
        for _ in 0..batch {
            version += 1;
            sqlx::query(
                "INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, schema_version, payload, \
                 request_id, caller, correlation_id, causation_id, recorded_at) \
                 VALUES (gen_random_uuid(), '1', $1, $2, 'TitleChanged', 1, '{\"title\":\"CEO\"}', 'r', 'c', 'c', 'c', now())",
            )
            .bind(&stream)
            .bind(version)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        sqlx::query("SELECT pg_sleep($1)")
            .bind(sleep_ms)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

/// How many events were seen at another rank than the log's order gives them: by writing
/// transaction, then position.
async fn seen_out_of_log_order(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT s.n, row_number() OVER (ORDER BY e.transaction_id, e.global_position) AS log_rank, \
                row_number() OVER (ORDER BY s.n) AS seen_rank \
         FROM seen s JOIN events e USING (global_position)) ranks WHERE log_rank <> seen_rank",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn seen(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM seen")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits for a condition on the database, checking every 20 ms, failing after a minute.
async fn until(pool: &PgPool, what: &str, condition: impl AsyncFn(&PgPool) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !condition(pool).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn settings() -> RunnerSettings {
    RunnerSettings {
        batch_size: 500,
        poll_interval: Duration::from_millis(20),
        takeover_interval: Duration::from_millis(50),
        gather_interval: Duration::from_millis(5),
        holder: "test".into(),
    }
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_consumer_sees_every_event_of_concurrent_writers_once_and_in_one_order_across_a_kill(
    pool: PgPool,
) {
    sqlx::query("CREATE TABLE seen (n bigserial PRIMARY KEY, global_position bigint NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let store = PgStore::new(pool.clone(), contactd_store_pg::Keyring::for_tests());
    let (_stop, stopping) = watch::channel(false);
    let first = tokio::spawn(run_projection(
        store.clone(),
        Arc::new(Recorder),
        settings(),
        ProjectionMetrics::default(),
        stopping.clone(),
    ));

    let mut writers = JoinSet::new();
    for writer in 0..WRITERS {
        writers.spawn(write(pool.clone(), writer, EVENTS / WRITERS));
    }

    // Kill the consumer halfway: its task and its connection are dropped mid-flight.
    until(&pool, "the consumer is halfway", async |pool| {
        seen(pool).await >= (EVENTS / 2) as i64
    })
    .await;
    first.abort();
    let _ = first.await;
    let after_kill = seen(&pool).await;
    let second = tokio::spawn(run_projection(
        store.clone(),
        Arc::new(Recorder),
        settings(),
        ProjectionMetrics::default(),
        stopping,
    ));

    writers.join_all().await;
    until(&pool, "the consumer has caught up", async |pool| {
        seen(pool).await >= EVENTS as i64
    })
    .await;
    second.abort();

    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(total, EVENTS as i64);
    assert!(after_kill < total, "the kill happened before the end");
    let duplicates: i64 =
        sqlx::query_scalar("SELECT count(*) - count(DISTINCT global_position) FROM seen")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(duplicates, 0, "no event is seen twice");
    let missing: i64 = sqlx::query_scalar("SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM seen s WHERE s.global_position = e.global_position)")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(missing, 0, "no event is skipped");
    // The order seen is the log's order: by writing transaction, then position.
    let out_of_order = seen_out_of_log_order(&pool).await;
    assert_eq!(out_of_order, 0, "events are seen in log order");
    // And that order really differs from position order: commits did come out of order.
    let reordered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT global_position, lag(global_position) OVER (ORDER BY n) AS previous FROM seen) s \
         WHERE previous > global_position",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        reordered > 0,
        "the writers committed out of position order at least once"
    );
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_projection_passing_what_does_not_concern_it_still_sees_all_that_does_once(pool: PgPool) {
    sqlx::query("CREATE TABLE seen (n bigserial PRIMARY KEY, global_position bigint NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let store = PgStore::new(pool.clone(), contactd_store_pg::Keyring::for_tests());
    let (_stop, stopping) = watch::channel(false);
    let run = || {
        tokio::spawn(run_projection(
            store.clone(),
            Arc::new(Picky),
            settings(),
            ProjectionMetrics::default(),
            stopping.clone(),
        ))
    };
    let first = run();
    let mut writers = JoinSet::new();
    for writer in 0..WRITERS {
        writers.spawn(write(pool.clone(), writer, 2_000));
    }
    until(&pool, "the projection has seen some", async |pool| {
        seen(pool).await >= 100
    })
    .await;
    first.abort();
    let _ = first.await;
    let second = run();
    writers.join_all().await;
    let expected = (WRITERS * 2_000 / 50) as i64;
    until(&pool, "the projection has seen every one", async |pool| {
        seen(pool).await >= expected
    })
    .await;
    // Once the log is quiet, the checkpoint passes the events that did not concern it too.
    // The log's end is its last event in log order (by transaction, then position), which is
    // not always the highest position: a transaction that drew positions early may hold it.
    until(
        &pool,
        "the checkpoint reaches the log's end",
        async |pool| {
            sqlx::query_scalar::<_, bool>(
                "SELECT (c.transaction_id, c.global_position) = \
                        (SELECT e.transaction_id, e.global_position FROM events e \
                         ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1) \
                 FROM projection_checkpoints c WHERE c.name = 'test_picky'",
            )
            .fetch_one(pool)
            .await
            .unwrap()
        },
    )
    .await;
    second.abort();

    let (count, distinct, wrong): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT s.global_position), \
                count(*) FILTER (WHERE e.stream_version % 50 <> 0) \
         FROM seen s JOIN events e USING (global_position)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (count, distinct, wrong),
        (expected, expected, 0),
        "each concerning event once, and no other"
    );
    let out_of_order = seen_out_of_log_order(&pool).await;
    assert_eq!(out_of_order, 0, "in log order");
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn a_running_transaction_holds_back_later_events_until_it_ends(pool: PgPool) {
    let store = PgStore::new(pool.clone(), contactd_store_pg::Keyring::for_tests());
    let insert = "INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, schema_version, payload, \
                  request_id, caller, correlation_id, causation_id, recorded_at) \
                  VALUES (gen_random_uuid(), '1', $1, 1, 'TitleChanged', 1, '{\"title\":\"CEO\"}', 'r', 'c', 'c', 'c', now())";
    // An early transaction draws its position first and stays open...
    let mut early = pool.begin().await.unwrap();
    sqlx::query(insert)
        .bind("c-early00000000000")
        .execute(&mut *early)
        .await
        .unwrap();
    // ...while a later one commits.
    sqlx::query(insert)
        .bind("c-late000000000000")
        .execute(&pool)
        .await
        .unwrap();
    let visible = store
        .read_log(contactd_app::LogPosition::START, None, 100)
        .await
        .unwrap();
    assert!(
        visible.is_empty(),
        "the committed later event waits behind the running earlier one"
    );
    let end = store.log_end().await.unwrap();
    assert!(
        !store.readable_to(end).await.unwrap(),
        "the log is not readable to its end while the earlier transaction runs"
    );

    early.commit().await.unwrap();
    // Once it ends, both come, in its order: as soon as no other transaction of the server
    // (another test's) holds the log back either.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !store.readable_to(end).await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the log stays held back"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let visible = store
        .read_log(contactd_app::LogPosition::START, None, 100)
        .await
        .unwrap();
    let streams: Vec<&str> = visible.iter().map(|e| e.stream_id.as_str()).collect();
    assert_eq!(streams, ["c-early00000000000", "c-late000000000000"]);
}
