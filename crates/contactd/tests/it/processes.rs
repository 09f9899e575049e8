//! Several `contactd` processes on one database: each projection is active in exactly one of
//! them, and when that one dies another takes over; the database projection still counts every
//! event exactly once.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;

use crate::support::*;

/// The test database's URL: the server of DATABASE_URL, the database of the test's pool.
async fn database_url(pool: &PgPool) -> String {
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let (server, _) = base.rsplit_once('/').expect("a database in DATABASE_URL");
    format!("{server}/{database}")
}

/// A `contactd serve` process on a free port; killed when dropped.
struct Process {
    child: Child,
    port: u16,
}

impl Process {
    fn start(database_url: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_contactd"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--http-listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
                "--code-secret",
                TEST_CODE_SECRET,
            ])
            .arg("--data-dir")
            .arg(std::env::temp_dir().join(format!("contactd-process-{port}")))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start contactd");
        Self { child, port }
    }

    fn holder_name(&self) -> String {
        format!(
            "contactd pid {} on 127.0.0.1:{}",
            self.child.id(),
            self.port
        )
    }

    async fn client(&self) -> Client {
        let endpoint = format!("http://127.0.0.1:{}", self.port);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tonic::transport::Channel::from_shared(endpoint.clone())
                .unwrap()
                .connect()
                .await
            {
                Ok(channel) => return Client::new(channel),
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(error) => panic!("contactd did not start: {error}"),
            }
        }
    }

    /// Dies at once, as on `kill -9`: no shutdown, its connections simply drop.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn holder(pool: &PgPool) -> Option<String> {
    sqlx::query_scalar("SELECT holder FROM projection_checkpoints WHERE name = 'account_activity'")
        .fetch_optional(pool)
        .await
        .unwrap()
        .flatten()
}

/// Waits for a condition, checking every 50 ms, failing after `limit`.
async fn until<T>(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn counted_and_logged(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT (SELECT coalesce(sum(events), 0)::bigint FROM account_activity), (SELECT count(*) FROM events)")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "contactd_store::MIGRATOR")]
async fn a_projection_runs_in_one_process_and_moves_to_another_when_that_one_dies(pool: PgPool) {
    let url = database_url(&pool).await;
    let mut processes = [Process::start(&url), Process::start(&url)];
    let mut clients = [processes[0].client().await, processes[1].client().await];

    let first_holder = until(
        "one process holds the projection",
        Duration::from_secs(30),
        async || holder(&pool).await,
    )
    .await;
    let active = processes
        .iter()
        .position(|p| p.holder_name() == first_holder)
        .expect("the holder is one of ours");
    let survivor = 1 - active;
    // One lock per projection (account_activity, verification_outbox), each granted once
    // although both processes keep trying to take it.
    let granted = async || -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    until(
        "both projections are held",
        Duration::from_secs(30),
        async || (granted().await >= 2).then_some(()),
    )
    .await;
    assert_eq!(granted().await, 2, "each projection's lock is held once");

    // Both processes take writes; the active one projects them.
    for (i, name) in ["Ann", "Bob", "Cid", "Dan"].into_iter().enumerate() {
        add(&mut clients[i % 2], ACCOUNT, name).await;
    }
    until(
        "the projection has counted the first events",
        Duration::from_secs(30),
        async || {
            let (counted, logged) = counted_and_logged(&pool).await;
            (counted == logged).then_some(())
        },
    )
    .await;

    processes[active].kill();
    for name in ["Eve", "Fay", "Gus"] {
        add(&mut clients[survivor], OTHER_ACCOUNT, name).await;
    }
    let new_holder = until(
        "the survivor takes the projection over",
        Duration::from_secs(30),
        async || {
            holder(&pool)
                .await
                .filter(|h| *h == processes[survivor].holder_name())
        },
    )
    .await;
    assert_ne!(new_holder, first_holder);
    let (counted, logged) = until(
        "the survivor has caught up",
        Duration::from_secs(30),
        async || {
            let (counted, logged) = counted_and_logged(&pool).await;
            (counted == logged).then_some((counted, logged))
        },
    )
    .await;
    assert_eq!(
        (counted, logged),
        (7, 7),
        "every event counted exactly once across the takeover"
    );
    let per_account: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT account_id, events, contacts_added FROM account_activity ORDER BY account_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        per_account,
        [(ACCOUNT.to_owned(), 4, 4), (OTHER_ACCOUNT.to_owned(), 3, 3)]
    );
}
