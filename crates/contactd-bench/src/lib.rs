//! `contactd-bench`: a load benchmark of contactd over real gRPC, beside the database's own
//! limit measured with pgbench in the same run, ending with a check that the log and the read
//! model still agree. `run_all` is the whole benchmark (what the binary runs); `service::run`
//! is the scenario runner against any server (what the smoke test runs); `dispatch` follows
//! verification emails from the send to the benchmark's own SMTP receiver (`smtp`).

pub mod client;
pub mod dbstats;
pub mod dispatch;
pub mod load;
pub mod pgbench;
pub mod procfs;
pub mod report;
pub mod seed;
pub mod server;
pub mod service;
pub mod smtp;
pub mod stats;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::client::Fleet;
use crate::dbstats::DbStats;
use crate::dispatch::DispatchPlan;
use crate::load::{Scenario, Target};
use crate::pgbench::{Pgbench, PgbenchReport, Workload};
use crate::seed::SeedPlan;
use crate::server::ServerProcess;
use crate::service::ServicePlan;
use crate::smtp::SmtpReceiver;

/// The benchmark's settings; the defaults are the committed benchmark.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "contactd-bench",
    about = "Load benchmark of contactd over gRPC, with pgbench's limit on the same database"
)]
pub struct Options {
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
    /// The concurrency at which the service is compared with pgbench and the targets.
    #[arg(long, default_value_t = 32)]
    pub compare_at: usize,
    /// The benchmark's database (dropped and created afresh) on the PostgreSQL server to use.
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
    /// Skip pgbench.
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
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

impl Options {
    pub fn service_plan(&self) -> ServicePlan {
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
            scenarios: self.scenarios.clone(),
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

/// The machine and the PostgreSQL settings that bound the figures.
pub async fn machine(pool: &PgPool) -> anyhow::Result<report::Machine> {
    let mut postgres = Vec::new();
    for name in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "wal_sync_method",
        "full_page_writes",
        "commit_delay",
        "shared_buffers",
        "max_wal_size",
        "max_connections",
        "autovacuum",
    ] {
        let value: String = sqlx::query_scalar(&format!("SHOW {name}"))
            .fetch_one(pool)
            .await?;
        postgres.push((name.to_owned(), value));
    }
    Ok(report::Machine {
        cores: procfs::cores(),
        memory_mib: procfs::memory_total_kib().unwrap_or(0) / 1024,
        postgres,
    })
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

/// The whole benchmark; returns whether the verdict passed.
pub async fn run_all(options: Options) -> anyhow::Result<bool> {
    if cfg!(debug_assertions) {
        eprintln!("warning: the load generator is a debug build; run it with --release");
    }
    let database: PgConnectOptions = options.database_url.parse().context("--database-url")?;
    let database_name = database
        .get_database()
        .context("--database-url names no database")?
        .to_owned();

    eprintln!("creating the database {database_name} afresh");
    recreate_database(&database, &database_name).await?;
    let server_bin = match &options.server_bin {
        Some(path) => path.clone(),
        None => {
            eprintln!("building the release server (cargo build --release -p contactd)");
            tokio::task::spawn_blocking(server::build_release_server).await??
        }
    };
    let log = server::target_dir().join("contactd-bench/server.log");
    let smtp = SmtpReceiver::start().await?;
    let server_args = options.server_args(&smtp);
    let mut server = ServerProcess::start(&server_bin, &options.database_url, &server_args, log)?;
    eprintln!(
        "started {} (pid {}) on {}, its emails to the SMTP receiver on {}; log in {}",
        server_bin.display(),
        server.pid(),
        server.endpoint,
        smtp.address(),
        server.log.display()
    );
    client::wait_until_serving(&server.endpoint, Duration::from_secs(60))
        .await
        .or_else(|error| {
            server.check_running()?;
            Err(error)
        })?;

    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(database.clone().application_name("contactd-bench"))
        .await
        .context("connecting to the benchmark's database")?;
    let machine = machine(&pool).await?;
    let target = Target {
        fleet: Fleet::connect(&server.endpoint, options.connections).await?,
        pool: pool.clone(),
        server_pid: Some(server.pid()),
        smtp: Some(smtp.clone()),
    };
    let plan = options.service_plan();
    if options.scenarios.iter().any(|s| s.is_closed_loop()) {
        eprintln!(
            "seeding {} accounts × {} contacts, a {}-event stream, and the short streams",
            options.accounts, options.contacts_per_account, options.long_stream_events
        );
    }
    let service = service::run(
        &target,
        &plan,
        |run| {
            eprintln!(
                "{:>12} C={:<3} {:>8.0} calls/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}",
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
                "    dispatch {:>5}/s offered {:>8.1}/s accepted  p50 {:>7.2} ms  p99 {} ms  failed {}  lost {}",
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
    let service = service?;
    let verdict = service::verdict(&target, &service).await?;
    let stopped_cleanly = server.stop(Duration::from_secs(30))?;
    drop(target);

    let mut pgbench_runs = Vec::new();
    let pgbench = Pgbench {
        program: options.pgbench.clone(),
        threads: options.pgbench_threads,
        duration: Duration::from_secs(options.duration),
    };
    if options.no_pgbench {
        eprintln!("skipping pgbench (--no-pgbench)");
    } else if service.runs.is_empty() {
        eprintln!("skipping pgbench: no scenario of calls in flight to compare it with");
    } else if !pgbench.available() {
        eprintln!(
            "skipping pgbench: {} does not run",
            options.pgbench.display()
        );
    } else {
        recreate_database(&database, &options.pgbench_database).await?;
        let select_only = database.clone().database(&options.pgbench_database);
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
            database: &database,
            select_only_database: Some(&select_only),
            clients: &options.pgbench_clients,
            contacts: options.accounts * options.contacts_per_account,
            warmup: Duration::from_secs(options.warmup),
        };
        pgbench_runs = run_pgbench(&pgbench, &pool, &plan, |run| {
            eprintln!(
                "pgbench {:>30} {:>3} clients {:>8.0} tps  avg {:.2} ms",
                run.workload.name(),
                run.clients,
                run.tps,
                run.latency_average_ms
            )
        })
        .await?;
    }
    // pgbench wrote to the same tables: the log and the read model must still agree.
    let agreement_after_pgbench = verify::check(&pool).await?;
    let verdict = service::Verdict {
        agreement: agreement_after_pgbench,
        ..verdict
    };

    let mut out = String::from("# contactd-bench report\n\n");
    out.push_str(&format!(
        "Command: `contactd-bench {}`; each run: {} s warm-up, {} s measured; the generator uses {} HTTP/2 connection(s).\n\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        options.warmup,
        options.duration,
        options.connections
    ));
    out.push_str(&report::machine(&machine));
    out.push('\n');
    if !service.runs.is_empty() {
        out.push_str(&report::service(&service, machine.cores));
        out.push('\n');
    }
    if let Some(dispatch) = &service.dispatch {
        out.push_str(&report::dispatch(dispatch));
        out.push('\n');
    }
    if !pgbench_runs.is_empty() {
        out.push_str(&report::pgbench(&pgbench_runs));
        out.push('\n');
    }
    out.push_str(&report::targets_table(&report::targets(
        &service,
        &pgbench_runs,
        options.compare_at,
    )));
    out.push('\n');
    out.push_str(&report::verdict(&verdict));
    if !stopped_cleanly {
        out.push_str("- the server did not stop cleanly on SIGTERM\n");
    }
    println!("{out}");
    if let Some(path) = &options.report {
        std::fs::write(path, &out).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(verdict.passed() && stopped_cleanly)
}
