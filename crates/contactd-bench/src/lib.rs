//! `contactd-bench`: a load benchmark of contactd over real gRPC, on each of its stores
//! (PostgreSQL and the embedded SQLite store, side by side), beside PostgreSQL's own limit
//! measured with pgbench in the same run, ending with a check on each store that the log and
//! the read model still agree. `run_all` is the whole benchmark (what the binary runs);
//! `service::run` is the scenario runner against any server (what the smoke test runs);
//! `dispatch` follows verification emails from the send to the benchmark's own SMTP receiver
//! (`smtp`); `db` is the benchmark's own SQL in each store's dialect; `security` makes what the
//! security variants of `update` and `get` need (TLS, bearer tokens, a policy file), whose
//! runs are compared with the plain run's.

pub mod chart;
pub mod client;
pub mod db;
pub mod dbstats;
pub mod dispatch;
pub mod load;
pub mod pgbench;
pub mod procfs;
pub mod report;
pub mod security;
pub mod seed;
pub mod server;
pub mod service;
pub mod smtp;
pub mod stats;
pub mod verify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};

use crate::client::{Account, Fleet};
use crate::db::{Db, StoreKind};
use crate::dbstats::DbStats;
use crate::dispatch::DispatchPlan;
use crate::load::{Scenario, Target};
use crate::pgbench::{Pgbench, PgbenchReport, Workload};
use crate::report::SecurityRun;
use crate::security::{ClientSecurity, SecurityChoice, SecurityMaterial, Variant};
use crate::seed::SeedPlan;
use crate::server::ServerProcess;
use crate::service::{ServicePlan, ServiceReport, Verdict};
use crate::smtp::SmtpReceiver;

/// The benchmark's settings; the defaults are the committed benchmark.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "contactd-bench",
    about = "Load benchmark of contactd over gRPC on each of its stores, with pgbench's limit on PostgreSQL"
)]
pub struct Options {
    /// The stores to run every scenario on, each scenario on a fresh server of each in turn:
    /// PostgreSQL (`--database-url`) and the embedded SQLite store (a fresh data directory
    /// under the target folder's `contactd-bench/`).
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "postgres,sqlite"
    )]
    pub stores: Vec<StoreKind>,
    /// Measured seconds of each run (each scenario at each concurrency, each pgbench run).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Warm-up seconds before each measured run.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Calls in flight, one run each.
    #[arg(long, value_delimiter = ',', default_value = "4,16,32,64")]
    pub concurrency: Vec<usize>,
    /// Scenarios to run, in order.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "update,add,get,list,update-long,update-short,list-member,associate,dispatch"
    )]
    pub scenarios: Vec<Scenario>,
    /// Offered verification sends per second for `dispatch`, one open-loop run each (with
    /// `--warmup` and `--duration`).
    #[arg(long, value_delimiter = ',', default_value = "20,50,100,200,400")]
    pub dispatch_rates: Vec<u32>,
    /// Seconds without a new message after a dispatch run's last send before the messages
    /// still awaited count as lost (and fail the verdict); a backlog that drains is waited for.
    #[arg(long, default_value_t = 60)]
    pub dispatch_drain: u64,
    /// A dispatch rate is kept up with when at least this share of it is accepted during the
    /// window, …
    #[arg(long, default_value_t = 0.95)]
    pub dispatch_min_accepted: f64,
    /// … and the p99 from answer to acceptance is below this many milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub dispatch_max_p99_ms: u64,
    /// The concurrency at which the service is compared with pgbench and the targets, and
    /// SQLite with PostgreSQL.
    #[arg(long, default_value_t = 32)]
    pub compare_at: usize,
    /// The benchmark's PostgreSQL database (dropped and created afresh for each server on
    /// PostgreSQL).
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/contactd_bench"
    )]
    pub database_url: String,
    /// The database for `pgbench -i` (dropped and created afresh on the same server).
    #[arg(long, default_value = "contactd_bench_pgbench")]
    pub pgbench_database: String,
    /// The `contactd` binary to run; by default `cargo build --release -p contactd` and its
    /// output.
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// An extra argument for `contactd serve` (repeat for several), e.g.
    /// `--server-arg=--db-max-connections=32`.
    #[arg(long, allow_hyphen_values = true)]
    pub server_arg: Vec<String>,
    /// HTTP/2 connections from the generator to the server; calls are spread over them.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Seeded accounts.
    #[arg(long, default_value_t = 1000)]
    pub accounts: usize,
    /// Seeded contacts per account (at most the server's quota, 20 by default).
    #[arg(long, default_value_t = 10)]
    pub contacts_per_account: usize,
    /// Events in the long stream of `update-long`.
    #[arg(long, default_value_t = 10_000)]
    pub long_stream_events: usize,
    /// Events in each short stream of `update-short`.
    #[arg(long, default_value_t = 10)]
    pub short_stream_events: usize,
    /// Member accounts in the resource directory of `list-member` (spread over 12 folders and
    /// the root; the member it lists for is four folders deep).
    #[arg(long, default_value_t = 1000)]
    pub directory_members: usize,
    /// The pgbench program.
    #[arg(long, default_value = "pgbench")]
    pub pgbench: PathBuf,
    /// Skip pgbench (it runs only when PostgreSQL is one of the stores).
    #[arg(long)]
    pub no_pgbench: bool,
    /// pgbench clients, one run each per workload.
    #[arg(long, value_delimiter = ',', default_value = "16,32")]
    pub pgbench_clients: Vec<u32>,
    /// pgbench threads (`-j`).
    #[arg(long, default_value_t = 2)]
    pub pgbench_threads: u32,
    /// Scale of `pgbench -i` for `-S`.
    #[arg(long, default_value_t = 10)]
    pub pgbench_scale: u32,
    /// Seed of the generator's random choices.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Security variants of `--security-scenarios` at `--compare-at` on PostgreSQL, each on a
    /// fresh server seeded alike, compared with `plain` (trusted header, no TLS): `tls` (the
    /// gRPC port over TLS), `jwt` (`--identity-mode token`, each account's own ES256 token),
    /// `policy` (`--policy-file`), `all` (the three together); `none` runs none.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "plain,tls,jwt,policy"
    )]
    pub security: Vec<SecurityChoice>,
    /// The scenarios the security variants run (calls in flight only).
    #[arg(long, value_delimiter = ',', value_enum, default_value = "update,get")]
    pub security_scenarios: Vec<Scenario>,
    /// Passes over the security variants (each pass every scenario and variant in turn, in
    /// a rotated order); the ratios are judged by their median over the passes.
    #[arg(long, default_value_t = 1)]
    pub security_rounds: usize,
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Also draw each scenario's calls/s and p99 against concurrency, per store and beside the
    /// pgbench limits, as `DIR/<scenario>.svg` (BENCHMARKS.md shows `bench/charts/`).
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,
}

impl Options {
    /// The plan of a server that runs every scenario of `--scenarios`.
    pub fn service_plan(&self) -> ServicePlan {
        self.service_plan_for(&self.scenarios)
    }

    /// The plan of a security variant's server: `scenario` at `--compare-at` only.
    pub fn security_plan(&self, scenario: Scenario) -> ServicePlan {
        ServicePlan {
            concurrency: vec![self.compare_at],
            ..self.service_plan_for(&[scenario])
        }
    }

    /// The plan of a server that runs `scenarios` only.
    pub fn service_plan_for(&self, scenarios: &[Scenario]) -> ServicePlan {
        ServicePlan {
            seed: SeedPlan {
                accounts: self.accounts,
                contacts_per_account: self.contacts_per_account,
                long_stream_events: self.long_stream_events,
                short_stream_events: self.short_stream_events,
                short_streams: 0,
                concurrency: 32,
            },
            directory_members: self.directory_members,
            scenarios: scenarios.to_vec(),
            concurrency: self.concurrency.clone(),
            warmup: Duration::from_secs(self.warmup),
            duration: Duration::from_secs(self.duration),
            rng_seed: self.seed,
            settle: true,
            dispatch: DispatchPlan {
                rates: self.dispatch_rates.clone(),
                warmup: Duration::from_secs(self.warmup),
                duration: Duration::from_secs(self.duration),
                drain: Duration::from_secs(self.dispatch_drain),
                min_accepted_share: self.dispatch_min_accepted,
                max_p99: Duration::from_millis(self.dispatch_max_p99_ms),
                settle: true,
            },
        }
    }

    /// The server's arguments: the benchmark's own, then `--server-arg`s. Sends must not meet
    /// the limits meant for people (a day's 100 per account, 10 a minute per address), and
    /// emails go to the benchmark's SMTP receiver; a setting given with `--server-arg` wins.
    pub fn server_args(&self, smtp: &SmtpReceiver) -> Vec<String> {
        let ours = [
            ("--smtp-url", smtp.url()),
            (
                "--code-secret",
                "the code secret of contactd-bench".to_owned(),
            ),
            ("--send-limit-per-account-day", "1000000".to_owned()),
            ("--send-limit-per-target-minute", "10000".to_owned()),
        ];
        let given = |flag: &str| {
            self.server_arg
                .iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        };
        let mut args = Vec::new();
        for (flag, value) in ours {
            if !given(flag) {
                args.push(format!("{flag}={value}"));
            }
        }
        args.extend(self.server_arg.iter().cloned());
        args
    }
}

/// Drops and creates `database` on the server of `admin`.
async fn recreate_database(admin: &PgConnectOptions, database: &str) -> anyhow::Result<()> {
    let mut connection = admin
        .clone()
        .database("postgres")
        .connect()
        .await
        .context("connecting to PostgreSQL's `postgres` database")?;
    let quoted = format!("\"{}\"", database.replace('"', "\"\""));
    sqlx::query(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .execute(&mut connection)
        .await
        .with_context(|| format!("dropping {database}"))?;
    sqlx::query(&format!("CREATE DATABASE {quoted}"))
        .execute(&mut connection)
        .await
        .with_context(|| format!("creating {database}"))?;
    Ok(())
}

/// What pgbench runs: each workload after a warm-up, at each client count.
#[derive(Debug, Clone)]
pub struct PgbenchPlan<'a> {
    /// The benchmark's database, seeded (for the update scripts).
    pub database: &'a PgConnectOptions,
    /// A `pgbench -i` database, for `-S`.
    pub select_only_database: Option<&'a PgConnectOptions>,
    pub clients: &'a [u32],
    /// Rows of `bench_contacts`.
    pub contacts: usize,
    pub warmup: Duration,
}

/// Runs pgbench's workloads on the benchmark's database (the update scripts) and on a fresh
/// `pgbench -i` database (`-S`); `pool` (any database of the server) reads the statistics.
pub async fn run_pgbench(
    pgbench: &Pgbench,
    pool: &PgPool,
    plan: &PgbenchPlan<'_>,
    mut progress: impl FnMut(&PgbenchReport),
) -> anyhow::Result<Vec<PgbenchReport>> {
    let PgbenchPlan {
        database,
        select_only_database,
        clients,
        contacts,
        warmup,
    } = *plan;
    let mut runs = Vec::new();
    let mut workloads = vec![
        (Workload::UpdateNaive, database),
        (Workload::UpdateSingle, database),
        (Workload::UpdateAsService, database),
    ];
    if let Some(select_only) = select_only_database {
        workloads.push((Workload::SelectOnly, select_only));
    }
    let blocking = |pgbench: Pgbench, database: PgConnectOptions, workload, clients| {
        tokio::task::spawn_blocking(move || pgbench.run(&database, workload, clients, contacts))
    };
    for (workload, database) in workloads {
        let name = database.get_database().unwrap_or("postgres").to_owned();
        if !warmup.is_zero() {
            let warm = Pgbench {
                duration: warmup,
                ..pgbench.clone()
            };
            let first = clients.first().copied().unwrap_or(16);
            blocking(warm, database.clone(), workload, first).await??;
        }
        for &n in clients {
            sqlx::query("CHECKPOINT").execute(pool).await?;
            tokio::time::sleep(dbstats::SETTLE).await;
            let before = DbStats::take(pool, &name).await?;
            let mut report = blocking(pgbench.clone(), database.clone(), workload, n).await??;
            tokio::time::sleep(dbstats::SETTLE).await;
            let after = DbStats::take(pool, &name).await?;
            report.db = Some(after.per(&before, report.transactions));
            progress(&report);
            runs.push(report);
        }
    }
    Ok(runs)
}

/// The groups of scenarios that each run on a fresh server, in order: each scenario alone,
/// except `update-long` and `update-short`, whose runs alternate at each concurrency on one
/// server (see `service::order`), and which share their group wherever the first stands.
pub fn scenario_groups(scenarios: &[Scenario]) -> Vec<Vec<Scenario>> {
    let paired = [Scenario::UpdateLong, Scenario::UpdateShort];
    let both = paired.iter().all(|s| scenarios.contains(s));
    let mut groups: Vec<Vec<Scenario>> = Vec::new();
    for &scenario in scenarios {
        if groups.iter().flatten().any(|s| *s == scenario) {
            continue;
        }
        if both && paired.contains(&scenario) {
            groups.push(paired.to_vec());
        } else {
            groups.push(vec![scenario]);
        }
    }
    groups
}

/// A group's name in paths: its scenarios' names joined.
fn group_slug(group: &[Scenario]) -> String {
    group.iter().map(|s| s.name()).collect::<Vec<_>>().join("+")
}

/// What every server of the run shares.
#[derive(Debug)]
struct Bench<'a> {
    options: &'a Options,
    /// `--database-url`, parsed.
    database: PgConnectOptions,
    database_name: String,
    server_bin: PathBuf,
    smtp: SmtpReceiver,
    server_args: Vec<String>,
}

/// What one server (one store, one group of scenarios) did.
#[derive(Debug)]
struct ServerRun {
    report: ServiceReport,
    verdict: Verdict,
    stopped_cleanly: bool,
    settings: Vec<(String, String)>,
    /// The connections to its database, still open: pgbench and the check after it use
    /// PostgreSQL's.
    db: Db,
}

/// Everything one store did, over its servers.
#[derive(Debug)]
struct StoreResults {
    store: StoreKind,
    /// One report per server, in order.
    reports: Vec<ServiceReport>,
    verdicts: Vec<Verdict>,
    /// Servers that did not finish their scenarios, and why.
    failures: Vec<String>,
    /// Servers that did not stop cleanly on SIGTERM.
    unclean_stops: Vec<String>,
    settings: Option<Vec<(String, String)>>,
}

impl StoreResults {
    fn new(store: StoreKind) -> Self {
        Self {
            store,
            reports: Vec::new(),
            verdicts: Vec::new(),
            failures: Vec::new(),
            unclean_stops: Vec::new(),
            settings: None,
        }
    }

    /// The store's verdict: what each server's check found, and the servers that did not
    /// finish or stop cleanly.
    fn verdict(&self) -> Verdict {
        let mut verdict = Verdict::combined(&self.verdicts);
        verdict.server_problems.extend(
            self.failures
                .iter()
                .map(|failure| format!("did not finish: {failure}")),
        );
        verdict.server_problems.extend(
            self.unclean_stops
                .iter()
                .map(|group| format!("the server of {group} did not stop cleanly on SIGTERM")),
        );
        verdict
    }
}

/// What one server is started for: its scenarios and their plan, what it runs with beyond the
/// benchmark's arguments, and how the generator reaches it.
#[derive(Debug)]
struct Launch {
    group: Vec<Scenario>,
    plan: ServicePlan,
    /// Its folder's name under `contactd-bench/` (the store's name is added).
    slug: String,
    /// What the progress lines call it beside the store.
    label: String,
    extra_args: Vec<String>,
    client: ClientSecurity,
}

impl Launch {
    /// A server of the main benchmark: plain, every concurrency.
    fn plain(options: &Options, group: &[Scenario]) -> Self {
        Self {
            group: group.to_vec(),
            plan: options.service_plan_for(group),
            slug: group_slug(group),
            label: String::new(),
            extra_args: Vec::new(),
            client: ClientSecurity::plain(),
        }
    }

    /// A security variant's server for `scenario`.
    fn secured(
        options: &Options,
        material: &SecurityMaterial,
        variant: Variant,
        scenario: Scenario,
    ) -> Self {
        Self {
            group: vec![scenario],
            plan: options.security_plan(scenario),
            slug: format!("security-{scenario}-{variant}"),
            label: format!(" {variant}"),
            extra_args: material.server_args(variant),
            client: material.client(variant),
        }
    }
}

/// Starts a fresh server on `store` for `launch`, runs its scenarios on it, checks what they
/// left behind, and stops it.
async fn run_server(
    bench: &Bench<'_>,
    store: StoreKind,
    launch: &Launch,
) -> anyhow::Result<ServerRun> {
    let options = bench.options;
    let group = launch.group.as_slice();
    let run_dir = server::target_dir()
        .join("contactd-bench")
        .join(format!("{}-{store}", launch.slug));
    server::fresh_run_dir(&run_dir)?;
    let url = match store {
        StoreKind::Postgres => {
            recreate_database(&bench.database, &bench.database_name).await?;
            options.database_url.clone()
        }
        StoreKind::Sqlite => format!("sqlite://{}", server::sqlite_file(&run_dir).display()),
    };
    let args: Vec<String> = bench
        .server_args
        .iter()
        .chain(&launch.extra_args)
        .cloned()
        .collect();
    let mut server = ServerProcess::start(&bench.server_bin, &url, &args, &run_dir)?;
    let endpoint = launch.client.endpoint(server.addr);
    let kind = store;
    // The progress lines name the variant beside the store.
    let store_label = format!("{store}{}", launch.label);
    let store = &store_label;
    eprintln!(
        "[{store}] started {} (pid {}) on {endpoint} for {}; log in {}",
        bench.server_bin.display(),
        server.pid(),
        group_slug(group),
        server.log.display()
    );
    if let Some(tokens) = launch.client.tokens() {
        // Each seeded account's token, signed once before any call: the calls only look
        // theirs up (the few other accounts, the probe's and the histories', mint theirs on
        // their first call, during the seeding).
        let accounts: Vec<Account> = (1..=options.accounts as u64)
            .map(|n| Account::numbered(seed::SEEDED_FAMILY, n))
            .collect();
        tokens.premint(accounts.iter().map(Account::id))?;
    }
    client::wait_until_serving_with(&endpoint, &launch.client, Duration::from_secs(60))
        .await
        .or_else(|error| {
            server.check_running()?;
            Err(error)
        })?;
    let db = match kind {
        StoreKind::Postgres => Db::postgres(&url).await?,
        StoreKind::Sqlite => Db::sqlite(&server::sqlite_file(&run_dir)).await?,
    };
    let settings = db.settings().await?;
    let target = Target {
        fleet: Fleet::connect_with(&endpoint, options.connections, &launch.client).await?,
        db: db.clone(),
        server_pid: Some(server.pid()),
        smtp: Some(bench.smtp.clone()),
    };
    let plan = &launch.plan;
    if group.iter().any(|s| s.is_closed_loop()) {
        eprintln!(
            "[{store}] seeding {} accounts × {} contacts{}",
            options.accounts,
            options.contacts_per_account,
            if group.contains(&Scenario::UpdateLong) {
                format!(", a {}-event stream", options.long_stream_events)
            } else {
                String::new()
            }
        );
    }
    let service = service::run(
        &target,
        plan,
        |run| {
            eprintln!(
                "[{store}] {:>12} C={:<3} {:>8.0} calls/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}",
                run.scenario.name(),
                run.concurrency,
                run.calls_per_second(),
                run.latencies.percentile(50.0).as_secs_f64() * 1000.0,
                run.latencies.percentile(99.0).as_secs_f64() * 1000.0,
                run.errors.values().sum::<u64>()
            );
        },
        |run| {
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            eprintln!(
                "[{store}]     dispatch {:>5}/s offered {:>8.1}/s accepted  p50 {:>7.2} ms  p99 {} ms  failed {}  lost {}",
                run.offered_rate,
                run.accepted_per_second(),
                ms(run.latencies.percentile(50.0)),
                run.p99().map_or("never".into(), |d| format!("{:.2}", ms(d))),
                run.failed(),
                run.lost
            );
        },
    )
    .await;
    server.check_running()?;
    let report = service?;
    let verdict = service::verdict(&target, &report).await?;
    let stopped_cleanly = server.stop(Duration::from_secs(30))?;
    Ok(ServerRun {
        report,
        verdict,
        stopped_cleanly,
        settings,
        db,
    })
}

/// Runs pgbench's workloads on the PostgreSQL database that `db` is connected to (seeded, its
/// server stopped) and on a fresh `pgbench -i` database.
async fn run_pgbench_on(bench: &Bench<'_>, pool: &PgPool) -> anyhow::Result<Vec<PgbenchReport>> {
    let options = bench.options;
    let pgbench = Pgbench {
        program: options.pgbench.clone(),
        threads: options.pgbench_threads,
        duration: Duration::from_secs(options.duration),
    };
    if !pgbench.available() {
        eprintln!(
            "skipping pgbench: {} does not run",
            options.pgbench.display()
        );
        return Ok(Vec::new());
    }
    recreate_database(&bench.database, &options.pgbench_database).await?;
    let select_only = bench.database.clone().database(&options.pgbench_database);
    eprintln!(
        "pgbench -i -s {} {}",
        options.pgbench_scale, options.pgbench_database
    );
    {
        let (pgbench, select_only) = (pgbench.clone(), select_only.clone());
        let scale = options.pgbench_scale;
        tokio::task::spawn_blocking(move || pgbench.initialise(&select_only, scale)).await??;
    }
    let plan = PgbenchPlan {
        database: &bench.database,
        select_only_database: Some(&select_only),
        clients: &options.pgbench_clients,
        contacts: options.accounts * options.contacts_per_account,
        warmup: Duration::from_secs(options.warmup),
    };
    run_pgbench(&pgbench, pool, &plan, |run| {
        eprintln!(
            "pgbench {:>30} {:>3} clients {:>8.0} tps  avg {:.2} ms",
            run.workload.name(),
            run.clients,
            run.tps,
            run.latency_average_ms
        )
    })
    .await
}

/// The whole benchmark; returns whether the verdict passed on every store.
pub async fn run_all(options: Options) -> anyhow::Result<bool> {
    if cfg!(debug_assertions) {
        eprintln!("warning: the load generator is a debug build; run it with --release");
    }
    let mut stores: Vec<StoreKind> = Vec::new();
    for &store in &options.stores {
        if !stores.contains(&store) {
            stores.push(store);
        }
    }
    anyhow::ensure!(!stores.is_empty(), "--stores names no store");
    let database: PgConnectOptions = options.database_url.parse().context("--database-url")?;
    let database_name = database
        .get_database()
        .context("--database-url names no database")?
        .to_owned();
    let server_bin = match &options.server_bin {
        Some(path) => path.clone(),
        None => {
            eprintln!("building the release server (cargo build --release -p contactd)");
            tokio::task::spawn_blocking(server::build_release_server).await??
        }
    };
    let smtp = SmtpReceiver::start().await?;
    eprintln!(
        "the servers send their emails to the SMTP receiver on {}",
        smtp.address()
    );
    let bench = Bench {
        options: &options,
        server_args: options.server_args(&smtp),
        database,
        database_name,
        server_bin,
        smtp,
    };

    let mut results: Vec<StoreResults> = stores.iter().map(|&s| StoreResults::new(s)).collect();
    let mut pgbench_runs = Vec::new();
    // pgbench runs once, on the PostgreSQL database of the first group of calls in flight
    // (seeded with the contacts its scripts update), after that group has run on every store
    // and before the next group's server drops the database.
    let mut pgbench_pending = !options.no_pgbench && stores.contains(&StoreKind::Postgres);
    if options.no_pgbench {
        eprintln!("skipping pgbench (--no-pgbench)");
    }
    for group in scenario_groups(&options.scenarios) {
        let mut for_pgbench = None;
        for store_results in &mut results {
            let store = store_results.store;
            match run_server(&bench, store, &Launch::plain(&options, &group)).await {
                Ok(run) => {
                    if !run.stopped_cleanly {
                        store_results.unclean_stops.push(group_slug(&group));
                    }
                    store_results.settings.get_or_insert(run.settings);
                    store_results.reports.push(run.report);
                    store_results.verdicts.push(run.verdict);
                    let seeded = group.iter().any(|s| s.is_closed_loop());
                    if store == StoreKind::Postgres && pgbench_pending && seeded {
                        for_pgbench = Some((store_results.verdicts.len() - 1, run.db));
                    } else {
                        run.db.close().await;
                    }
                }
                Err(error) => {
                    eprintln!("[{store}] {} failed: {error:#}", group_slug(&group));
                    store_results
                        .failures
                        .push(format!("{}: {error:#}", group_slug(&group)));
                }
            }
        }
        if let Some((verdict, db)) = for_pgbench {
            pgbench_pending = false;
            let pool = db.postgres_pool().context("pgbench's database")?;
            pgbench_runs = run_pgbench_on(&bench, pool).await?;
            // pgbench wrote to the same tables: the log and the read model must still agree.
            let agreement = verify::check(&db).await?;
            if let Some(postgres) = results.iter_mut().find(|r| r.store == StoreKind::Postgres) {
                postgres.verdicts[verdict].agreement = agreement;
            }
            db.close().await;
        }
    }
    if pgbench_pending {
        eprintln!("skipping pgbench: no scenario of calls in flight ran on PostgreSQL");
    }
    let security = run_security(&bench, &stores).await?;

    let machine = report::Machine {
        cores: procfs::cores(),
        memory_mib: procfs::memory_total_kib().unwrap_or(0) / 1024,
        stores: results
            .iter()
            .filter_map(|r| Some((r.store, r.settings.clone()?)))
            .collect(),
    };
    let out = report_text(&options, &machine, &results, &pgbench_runs, &security);
    println!("{out}");
    if let Some(path) = &options.report {
        write_report(path, &out)?;
    }
    if let Some(dir) = &options.charts {
        let combined: Vec<(StoreKind, ServiceReport)> = results
            .iter()
            .map(|r| (r.store, ServiceReport::combined(&r.reports)))
            .collect();
        for path in chart::write_all(dir, &combined, &pgbench_runs)? {
            eprintln!("chart: {}", path.display());
        }
    }
    let security_passed = security
        .as_ref()
        .is_none_or(|s| s.results.verdict().passed());
    Ok(results.iter().all(|r| r.verdict().passed()) && security_passed)
}

/// What the security variants did.
#[derive(Debug)]
struct SecurityResults {
    runs: Vec<SecurityRun>,
    /// Their servers' findings, as a store's (every server is on PostgreSQL).
    results: StoreResults,
    /// Calls the rate limits refused, over every variant's run.
    rate_limited: u64,
}

/// Runs each security variant of each `--security-scenarios` on a fresh PostgreSQL server,
/// `--security-rounds` times; `None` when no variant is asked for or PostgreSQL is not one of
/// the stores.
async fn run_security(
    bench: &Bench<'_>,
    stores: &[StoreKind],
) -> anyhow::Result<Option<SecurityResults>> {
    let options = bench.options;
    let variants = security::variants(&options.security);
    if variants.is_empty() {
        eprintln!("skipping the security variants (--security none)");
        return Ok(None);
    }
    if !stores.contains(&StoreKind::Postgres) {
        eprintln!("skipping the security variants: they run on PostgreSQL, not one of --stores");
        return Ok(None);
    }
    if let Some(scenario) = options
        .security_scenarios
        .iter()
        .find(|s| !s.is_closed_loop())
    {
        anyhow::bail!("--security-scenarios: {scenario} is not a scenario of calls in flight");
    }
    let material = SecurityMaterial::create(
        &server::target_dir()
            .join("contactd-bench")
            .join("security-files"),
    )?;
    let mut out = SecurityResults {
        runs: Vec::new(),
        results: StoreResults::new(StoreKind::Postgres),
        rate_limited: 0,
    };
    for round in 1..=options.security_rounds.max(1) {
        // Each round starts the order one variant later, so that no variant always follows
        // the same one (a server's leftovers in the page cache, a neighbour's rhythm).
        let mut order = variants.clone();
        order.rotate_left((round - 1) % variants.len());
        for &scenario in &options.security_scenarios {
            for &variant in &order {
                let launch = Launch::secured(options, &material, variant, scenario);
                match run_server(bench, StoreKind::Postgres, &launch).await {
                    Ok(run) => {
                        if !run.stopped_cleanly {
                            out.results.unclean_stops.push(launch.slug.clone());
                        }
                        match run.report.run(scenario, options.compare_at) {
                            Some(measured) => {
                                out.rate_limited += measured
                                    .errors
                                    .iter()
                                    .filter(|(key, _)| key.starts_with("ResourceExhausted"))
                                    .map(|(_, n)| n)
                                    .sum::<u64>();
                                out.runs.push(SecurityRun {
                                    round,
                                    variant,
                                    run: measured.clone(),
                                });
                            }
                            None => out.results.failures.push(format!(
                                "{}: no run at C={}",
                                launch.slug, options.compare_at
                            )),
                        }
                        out.results.reports.push(run.report);
                        out.results.verdicts.push(run.verdict);
                        run.db.close().await;
                    }
                    Err(error) => {
                        eprintln!("[postgres {variant}] {} failed: {error:#}", launch.slug);
                        out.results
                            .failures
                            .push(format!("{}: {error:#}", launch.slug));
                    }
                }
            }
        }
    }
    Ok(Some(out))
}

fn write_report(path: &Path, out: &str) -> anyhow::Result<()> {
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// The report of the whole run, in Markdown.
fn report_text(
    options: &Options,
    machine: &report::Machine,
    results: &[StoreResults],
    pgbench_runs: &[PgbenchReport],
    security: &Option<SecurityResults>,
) -> String {
    let mut out = String::from("# contactd-bench report\n\n");
    out.push_str(&format!(
        "Command: `contactd-bench {}`; stores: {}; each run: {} s warm-up, {} s measured; the generator uses {} HTTP/2 connection(s).\n\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        results
            .iter()
            .map(|r| r.store.title())
            .collect::<Vec<_>>()
            .join(", "),
        options.warmup,
        options.duration,
        options.connections
    ));
    out.push_str(&report::machine(machine));
    out.push('\n');
    let combined: Vec<(StoreKind, ServiceReport)> = results
        .iter()
        .map(|r| (r.store, ServiceReport::combined(&r.reports)))
        .collect();
    let of = |store: StoreKind| combined.iter().find(|(s, _)| *s == store).map(|(_, r)| r);
    if let (Some(postgres), Some(sqlite)) = (of(StoreKind::Postgres), of(StoreKind::Sqlite)) {
        out.push_str(&report::side_by_side(postgres, sqlite, options.compare_at));
        out.push('\n');
    }
    for r in results {
        if r.reports.iter().any(|g| !g.runs.is_empty()) {
            out.push_str(&report::service(r.store, &r.reports, machine.cores));
            out.push('\n');
        }
        if let Some(dispatch) = r.reports.iter().find_map(|g| g.dispatch.as_ref()) {
            out.push_str(&report::dispatch(r.store, dispatch));
            out.push('\n');
        }
    }
    if !pgbench_runs.is_empty() {
        out.push_str(&report::pgbench(pgbench_runs));
        out.push('\n');
    }
    for (store, service) in &combined {
        // pgbench measured PostgreSQL: its ratios are PostgreSQL's targets only.
        let pgbench = match store {
            StoreKind::Postgres => pgbench_runs,
            StoreKind::Sqlite => &[],
        };
        out.push_str(&report::targets_table(
            *store,
            &report::targets(service, pgbench, options.compare_at),
        ));
        out.push('\n');
    }
    if let Some(security) = security {
        out.push_str(&report::security(
            &security.runs,
            options.compare_at,
            &security_notes(options, security),
        ));
        out.push('\n');
    }
    for r in results {
        out.push_str(&report::verdict(r.store, &r.verdict()));
        out.push('\n');
    }
    if let Some(security) = security {
        out.push_str(
            &report::verdict(StoreKind::Postgres, &security.results.verdict()).replacen(
                "## Verdict on",
                "## Verdict of the security variants' servers on",
                1,
            ),
        );
        out.push('\n');
    }
    out
}

/// How the security variants' servers ran, for their section.
fn security_notes(options: &Options, security: &SecurityResults) -> String {
    let rate_limits = options
        .server_arg
        .iter()
        .filter(|a| a.contains("rate-limits"))
        .cloned()
        .collect::<Vec<_>>();
    format!(
        "Every variant ran with the same server arguments except its own: `tls` adds \
         `--tls-cert`/`--tls-key` (the generator connects over TLS to `localhost`, trusting the \
         run's own CA); `jwt` adds `--identity-mode token --token-keys <JWKS> --token-issuer \
         --token-audience`, and the generator sends each account's own ES256 token (`sub` \
         `acct-<account>`, minted once per account before its first call, the seeded accounts' \
         before the server answered: {} accounts) in place of the header; `policy` adds \
         `--policy-file` (6 policies, 16 attachments: one principal pattern per account family \
         under each proof, an explicit deny of deletions and a deny of everything from outside \
         loopback on every caller; each call is decided by them, and each is allowed). Rate \
         limits: {} in every variant alike; calls refused by them: {}. Seeding: {} accounts × \
         {} contacts; {} s warm-up, {} s measured; {} HTTP/2 connection(s).",
        options.accounts,
        if rate_limits.is_empty() {
            "the server's defaults (per account and per principal, read=20000:40000, \
             write=5000:10000 calls/s:burst, far above one account's share here)"
                .to_owned()
        } else {
            format!("`{}`", rate_limits.join(" "))
        },
        security.rate_limited,
        options.accounts,
        options.contacts_per_account,
        options.warmup,
        options.duration,
        options.connections,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scenario_has_a_server_of_its_own_but_the_long_and_short_histories_share_one() {
        use Scenario::*;
        assert_eq!(
            scenario_groups(&[Update, UpdateLong, Get, UpdateShort, Dispatch]),
            vec![
                vec![Update],
                vec![UpdateLong, UpdateShort],
                vec![Get],
                vec![Dispatch]
            ]
        );
        assert_eq!(
            scenario_groups(&[UpdateShort, Add]),
            vec![vec![UpdateShort], vec![Add]]
        );
    }

    #[test]
    fn both_stores_by_default() {
        let options = Options::parse_from(["contactd-bench"]);
        assert_eq!(options.stores, [StoreKind::Postgres, StoreKind::Sqlite]);
        let options = Options::parse_from(["contactd-bench", "--stores", "sqlite"]);
        assert_eq!(options.stores, [StoreKind::Sqlite]);
    }
}
