//! A short run of the benchmark's every scenario at C=4 against the real server (in-process on
//! port 0, its emails to the benchmark's SMTP receiver), on each store: on a fresh PostgreSQL
//! database, then the pgbench scripts for a second each; and on a fresh SQLite file. Calls are
//! made, none fails with an unexpected code, every write appends one event, every send's email
//! is accepted once, and the log and the read model agree. Then `update` and `get` briefly on
//! each security variant (TLS, bearer tokens, a policy file, all three), each on a fresh
//! PostgreSQL database, with a check that the variant's security is really on. No speed is
//! asserted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use contactd::backend::Store;
use contactd::settings::{Cli, Command, DatabaseSettings};
use contactd_bench::client::{
    Account, Credentials, Fleet, add_request, wait_until_serving, wait_until_serving_with,
};
use contactd_bench::db::{Db, StoreKind};
use contactd_bench::dispatch::DispatchPlan;
use contactd_bench::load::{Scenario, Target};
use contactd_bench::pgbench::{Pgbench, Workload};
use contactd_bench::security::{ClientSecurity, SecurityMaterial, Variant};
use contactd_bench::seed::{SEEDED_FAMILY, SeedPlan};
use contactd_bench::service::{self, ServicePlan};
use contactd_bench::smtp::SmtpReceiver;
use contactd_bench::verify;
use contactd_grpc::proto::{DeleteMessageContactRequest, ListMessageContactsRequest};
use contactd_store_pg::PgStore;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Seeded accounts and contacts per account: what the pgbench scripts pick from too.
const ACCOUNTS: usize = 20;
const CONTACTS_PER_ACCOUNT: usize = 10;

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn on_postgresql_every_scenario_runs_and_leaves_the_log_and_the_read_model_in_agreement(
    pool: PgPool,
) {
    let data_dir = fresh_dir("postgres");
    let store = Store::Postgres(PgStore::new(
        pool.clone(),
        contactd_store_pg::Keyring::for_tests(),
    ));
    every_scenario(store, Db::Postgres(pool.clone()), &data_dir).await;

    // The committed pgbench scripts run on the seeded tables and keep them in agreement.
    let pgbench = Pgbench {
        program: "pgbench".into(),
        threads: 1,
        duration: Duration::from_secs(1),
    };
    if pgbench.available() {
        let database = pool.connect_options().as_ref().clone();
        for workload in [
            Workload::UpdateNaive,
            Workload::UpdateSingle,
            Workload::UpdateAsService,
        ] {
            let pgbench = pgbench.clone();
            let database = database.clone();
            let run = tokio::task::spawn_blocking(move || {
                pgbench.run(&database, workload, 4, ACCOUNTS * CONTACTS_PER_ACCOUNT)
            })
            .await
            .expect("pgbench task")
            .expect("pgbench runs the script");
            assert!(run.transactions > 0 && run.failed == 0, "{run:?}");
        }
        let agreement = verify::check(&Db::Postgres(pool.clone()))
            .await
            .expect("check");
        assert!(agreement.holds(), "after pgbench: {agreement:?}");
    } else {
        eprintln!("pgbench is not installed: its scripts were not run");
    }
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn on_sqlite_every_scenario_runs_and_leaves_the_log_and_the_read_model_in_agreement() {
    let data_dir = fresh_dir("sqlite");
    let file = data_dir.join("contactd.db");
    let settings = DatabaseSettings {
        database_url: Some(format!("sqlite://{}", file.display())),
        data_dir: data_dir.clone(),
        db_max_connections: 16,
    };
    let store = Store::open(&settings, true)
        .await
        .expect("the embedded store opens");
    // Beside the store, as the benchmark reads the file of its server.
    let db = Db::sqlite(&file).await.expect("the store's file opens");
    every_scenario(store, db, &data_dir).await;
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// An empty directory of this test process for one store's test.
fn fresh_dir(store: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "contactd-bench-smoke-{}-{store}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory for the test");
    dir
}

/// Serves `store` in-process and runs every scenario against it, `db` reading its database.
async fn every_scenario(store: Store, db: Db, data_dir: &Path) {
    let smtp = SmtpReceiver::start().await.expect("the SMTP receiver");
    let smtp_url = smtp.url();
    let Command::Serve(settings) = Cli::parse_from([
        "contactd",
        "serve",
        "--data-dir",
        data_dir.to_str().expect("a UTF-8 path"),
        "--code-secret",
        "the code secret of the smoke test",
        "--smtp-url",
        &smtp_url,
        "--send-limit-per-account-day",
        "1000000",
        "--send-limit-per-target-minute",
        "10000",
    ])
    .command
    else {
        unreachable!("`serve` parses as the serve command")
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        contactd::startup::run(listener, http, store, &settings, async {
            let _ = stopped.await;
        })
        .await
    });
    wait_until_serving(&endpoint, Duration::from_secs(20))
        .await
        .expect("the server answers");

    let target = Target {
        fleet: Fleet::connect(&endpoint, 2).await.expect("connect"),
        db: db.clone(),
        server_pid: None,
        smtp: Some(smtp.clone()),
    };
    let plan = ServicePlan {
        seed: SeedPlan {
            accounts: ACCOUNTS,
            contacts_per_account: CONTACTS_PER_ACCOUNT,
            long_stream_events: 200,
            short_stream_events: 10,
            short_streams: 0,
            concurrency: 8,
        },
        directory_members: 100,
        scenarios: Scenario::ALL.to_vec(),
        concurrency: vec![4],
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(1),
        rng_seed: 7,
        settle: false,
        dispatch: DispatchPlan {
            rates: vec![20],
            warmup: Duration::from_millis(200),
            duration: Duration::from_secs(1),
            drain: Duration::from_secs(30),
            min_accepted_share: 0.95,
            max_p99: Duration::from_secs(2),
            settle: false,
        },
    };
    let report = service::run(&target, &plan, |_| {}, |_| {})
        .await
        .expect("the scenarios run");

    assert_eq!(report.runs.len(), Scenario::CLOSED_LOOP.len());
    for run in &report.runs {
        assert!(run.ok > 0, "{} made no successful call", run.scenario);
        assert_eq!(
            run.unexpected_errors, 0,
            "{} failed unexpectedly: {:?}",
            run.scenario, run.errors
        );
        assert!(
            run.writes_add_up(),
            "{}: {:?} (events appended, successful calls)",
            run.scenario,
            run.events_appended
        );
        assert!(run.latencies.percentile(99.0) > Duration::ZERO);
        // The database's own figures where it keeps them (PostgreSQL), none elsewhere.
        let on_postgres = db.kind() == StoreKind::Postgres;
        assert_eq!(run.db.is_some(), on_postgres, "{}", run.scenario);
        assert_eq!(run.cpu.postgres.is_some(), on_postgres, "{}", run.scenario);
    }
    let long = report
        .run(Scenario::UpdateLong, 4)
        .expect("update-long ran");
    assert_eq!(long.stream_events_at_start, Some(200));
    let short = report
        .run(Scenario::UpdateShort, 4)
        .expect("update-short ran");
    assert_eq!(short.stream_events_at_start, Some(10));
    // The member four folders deep: 9 of the directory account's 20 contacts apply to it,
    // every answer counted them (a wrong count is an unexpected error), `associate` had an
    // account per task, and the worker carried out the jobs of the seeding's bindings.
    let directories = report
        .directories
        .as_ref()
        .expect("the directories were seeded");
    let directory = directories
        .directory
        .as_ref()
        .expect("list-member's directory");
    assert_eq!((directory.members, directory.contacts), (100, 20));
    assert_eq!(directory.applying.len(), 9);
    assert!(
        report
            .run(Scenario::ListMember, 4)
            .is_some_and(|run| run.ok > 0)
    );
    assert_eq!(directories.bindings.len(), 4);
    assert!(
        directories.jobs > 0 && directories.jobs_done_in.is_some(),
        "{directories:?}"
    );
    let associate = report.run(Scenario::Associate, 4).expect("associate ran");
    assert!(
        associate
            .events_appended
            .is_some_and(|(events, _)| events > 0)
    );
    assert_eq!(
        associate.lifecycle_jobs,
        Some(0),
        "associate's bindings record no job"
    );
    // The projection read every binding before the next run.
    assert!(
        associate
            .projection_lag
            .is_some_and(|(_, caught_up)| caught_up.is_some()),
        "{:?}",
        associate.projection_lag
    );
    // Every send was answered, and its email accepted by the receiver exactly once.
    let dispatch = report.dispatch.as_ref().expect("dispatch ran");
    let [rate] = dispatch.runs.as_slice() else {
        panic!("one dispatch run: {:?}", dispatch.runs)
    };
    assert_eq!(rate.sends, 24, "20/s for 1.2 s");
    assert!(rate.window_ok > 0 && rate.failed() == 0, "{rate:?}");
    assert_eq!(rate.latencies.len(), rate.window_ok, "{rate:?}");
    assert!(rate.accepted_in_window > 0, "{rate:?}");
    assert!(dispatch.problems().is_empty(), "{:?}", dispatch.problems());
    assert!(dispatch.smtp_connections > 0);
    let verdict = service::verdict(&target, &report).await.expect("verdict");
    assert!(verdict.passed(), "{verdict:?}");
    let added = report
        .run(Scenario::Add, 4)
        .and_then(|run| run.events_appended)
        .map_or(0, |(events, _)| events);
    // The seeded contacts, the long and the short stream's, those the add scenario made, the
    // directory account's 20, two per associate account, and one per dispatch send.
    assert_eq!(
        verdict.agreement.contacts,
        (ACCOUNTS * CONTACTS_PER_ACCOUNT) as i64
            + 2
            + added
            + 20
            + 2 * 4
            + dispatch.contacts as i64
    );

    stop.send(()).expect("the server is running");
    server
        .await
        .expect("server task")
        .expect("the server ran cleanly");
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn the_tls_variant_runs_update_and_get(pool: PgPool) {
    security_variant(pool, Variant::Tls).await;
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn the_jwt_variant_runs_update_and_get(pool: PgPool) {
    security_variant(pool, Variant::Jwt).await;
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn the_policy_variant_runs_update_and_get(pool: PgPool) {
    security_variant(pool, Variant::Policy).await;
}

#[sqlx::test(migrator = "contactd_store_pg::MIGRATOR")]
async fn the_all_variant_runs_update_and_get(pool: PgPool) {
    security_variant(pool, Variant::All).await;
}

/// Serves a fresh PostgreSQL database in-process as `variant` says, checks that its security
/// is on (plaintext refused under TLS, the header alone refused under tokens, a deletion
/// denied by the policies), then runs `update` and `get` briefly through the variant's client.
async fn security_variant(pool: PgPool, variant: Variant) {
    let data_dir = fresh_dir(&format!("security-{variant}"));
    let material = SecurityMaterial::create(&data_dir.join("security")).expect("the files");
    let mut args: Vec<String> = [
        "contactd",
        "serve",
        "--data-dir",
        data_dir.to_str().expect("a UTF-8 path"),
        "--code-secret",
        "the code secret of the smoke test",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(material.server_args(variant));
    let Command::Serve(settings) = Cli::parse_from(args).command else {
        unreachable!("`serve` parses as the serve command")
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let addr = listener.local_addr().expect("address");
    let store = Store::Postgres(PgStore::new(
        pool.clone(),
        contactd_store_pg::Keyring::for_tests(),
    ));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        contactd::startup::run(listener, http, store, &settings, async {
            let _ = stopped.await;
        })
        .await
    });
    let client = material.client(variant);
    let endpoint = client.endpoint(addr);
    wait_until_serving_with(&endpoint, &client, Duration::from_secs(20))
        .await
        .expect("the server answers the variant's client");

    let outsider = Account::numbered(SEEDED_FAMILY, 999_999);
    let list = || outsider.request(ListMessageContactsRequest::default());
    if variant.uses_tls() {
        let refused = match Fleet::connect(&format!("http://{addr}"), 1).await {
            Ok(fleet) => fleet.client(0).list_message_contacts(list()).await.is_err(),
            Err(_) => true,
        };
        assert!(refused, "plaintext to a TLS port is refused");
    }
    if variant.uses_tokens() {
        let header_only = ClientSecurity {
            credentials: Credentials::trusted_header(),
            ..client.clone()
        };
        let fleet = Fleet::connect_with(&endpoint, 1, &header_only)
            .await
            .expect("connect");
        let refused = fleet
            .client(0)
            .list_message_contacts(list())
            .await
            .expect_err("the header alone names no one under tokens");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    }
    let fleet = Fleet::connect_with(&endpoint, 2, &client)
        .await
        .expect("connect");
    if variant.uses_policies() {
        let added = fleet
            .client(0)
            .add_message_contact(outsider.request(add_request(
                "Outsider".to_owned(),
                "outsider@bench.example".to_owned(),
            )))
            .await
            .expect("the policies allow adds")
            .into_inner()
            .contact
            .expect("the contact");
        let denied = fleet
            .client(0)
            .delete_message_contact(outsider.request(DeleteMessageContactRequest {
                contact_id: added.contact_id,
                ..Default::default()
            }))
            .await
            .expect_err("the policies deny deletions");
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    }

    let db = Db::Postgres(pool.clone());
    let target = Target {
        fleet,
        db: db.clone(),
        server_pid: None,
        smtp: None,
    };
    let quick = Duration::from_millis(500);
    let plan = ServicePlan {
        seed: SeedPlan {
            accounts: ACCOUNTS,
            contacts_per_account: CONTACTS_PER_ACCOUNT,
            long_stream_events: 1,
            short_stream_events: 10,
            short_streams: 0,
            concurrency: 8,
        },
        directory_members: 0,
        scenarios: vec![Scenario::Update, Scenario::Get],
        concurrency: vec![4],
        warmup: Duration::from_millis(200),
        duration: quick,
        rng_seed: 7,
        settle: false,
        dispatch: DispatchPlan {
            rates: Vec::new(),
            warmup: Duration::ZERO,
            duration: quick,
            drain: quick,
            min_accepted_share: 0.95,
            max_p99: Duration::from_secs(2),
            settle: false,
        },
    };
    let report = service::run(&target, &plan, |_| {}, |_| {})
        .await
        .expect("the scenarios run");
    assert_eq!(report.runs.len(), 2);
    for run in &report.runs {
        assert!(
            run.ok > 0,
            "{variant}: {} made no successful call",
            run.scenario
        );
        assert_eq!(
            run.unexpected_errors, 0,
            "{variant}: {} failed unexpectedly: {:?}",
            run.scenario, run.errors
        );
        assert!(run.writes_add_up(), "{variant}: {}", run.scenario);
    }
    if let Some(tokens) = client.tokens() {
        // The seeded accounts', the probe's, the outsider's and the histories' (one each).
        assert!(tokens.minted() > ACCOUNTS, "{}", tokens.minted());
    }
    let verdict = service::verdict(&target, &report).await.expect("verdict");
    assert!(verdict.passed(), "{variant}: {verdict:?}");

    stop.send(()).expect("the server is running");
    server
        .await
        .expect("server task")
        .expect("the server ran cleanly");
    let _ = std::fs::remove_dir_all(&data_dir);
}
