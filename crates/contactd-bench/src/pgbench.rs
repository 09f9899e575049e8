//! The database's limit, measured with `pgbench` on the same PostgreSQL server: the committed
//! scripts of `bench/pgbench/` (the SQL work of one update, naively and as a single statement)
//! on the seeded tables, and the built-in select-only workload (`-S`) on its own database.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::postgres::PgConnectOptions;

use crate::dbstats::DbCost;
use crate::procfs::{CpuSnapshot, PostgresSampler, waited_children_cpu_seconds};

/// What pgbench runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `bench/pgbench/update_naive.sql`: BEGIN; SELECT … FOR UPDATE; INSERT event; UPDATE row;
    /// COMMIT — one statement per round trip.
    UpdateNaive,
    /// `bench/pgbench/update_single.sql`: the same work in one statement.
    UpdateSingle,
    /// `bench/pgbench/update_as_service.sql`: contactd's own two statements for an update.
    UpdateAsService,
    /// `pgbench -S`: one primary-key SELECT per transaction, on `pgbench -i` tables.
    SelectOnly,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::UpdateNaive => "update, naive (5 round trips)",
            Workload::UpdateSingle => "update, single statement",
            Workload::UpdateAsService => "update, contactd's SQL (2 round trips)",
            Workload::SelectOnly => "select-only (-S)",
        }
    }

    fn script(self) -> Option<&'static str> {
        match self {
            Workload::UpdateNaive => Some("update_naive.sql"),
            Workload::UpdateSingle => Some("update_single.sql"),
            Workload::UpdateAsService => Some("update_as_service.sql"),
            Workload::SelectOnly => None,
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The committed scripts' folder, `bench/pgbench/` at the repository's root.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/pgbench")
}

/// How to run pgbench.
#[derive(Debug, Clone)]
pub struct Pgbench {
    pub program: PathBuf,
    /// pgbench's own threads (`-j`), at most the clients.
    pub threads: u32,
    pub duration: Duration,
}

/// One pgbench run's figures.
#[derive(Debug, Clone)]
pub struct PgbenchReport {
    pub workload: Workload,
    pub clients: u32,
    pub tps: f64,
    pub latency_average_ms: f64,
    pub transactions: u64,
    pub failed: u64,
    /// CPU used by every PostgreSQL process, and by pgbench itself, in cores.
    pub postgres_cores: f64,
    pub pgbench_cores: f64,
    /// The rest of the machine's busy time (a noisy neighbour), in cores.
    pub other_cores: f64,
    /// What the database did per transaction (filled in by the caller, who holds a pool).
    pub db: Option<DbCost>,
    pub command: String,
}

fn connection_args(database: &PgConnectOptions) -> Vec<String> {
    vec![
        "-h".into(),
        database.get_host().to_owned(),
        "-p".into(),
        database.get_port().to_string(),
        "-U".into(),
        database.get_username().to_owned(),
    ]
}

fn database_name(database: &PgConnectOptions) -> anyhow::Result<String> {
    database
        .get_database()
        .map(str::to_owned)
        .context("the database URL names no database")
}

fn show(program: &Path, args: &[String]) -> String {
    std::iter::once(program.display().to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Pgbench {
    /// Whether the program runs at all.
    pub fn available(&self) -> bool {
        Command::new(&self.program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// `pgbench -i -s scale` into `database` (which must exist).
    pub fn initialise(&self, database: &PgConnectOptions, scale: u32) -> anyhow::Result<()> {
        let mut args = connection_args(database);
        args.extend(["-i".into(), "-q".into(), "-s".into(), scale.to_string()]);
        args.push(database_name(database)?);
        let output = Command::new(&self.program)
            .args(&args)
            .output()
            .with_context(|| format!("running {}", show(&self.program, &args)))?;
        if !output.status.success() {
            bail!(
                "{} failed: {}",
                show(&self.program, &args),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Runs `workload` with `clients` on `database`; `contacts` is how many rows
    /// `bench_contacts` holds (for the update scripts).
    pub fn run(
        &self,
        database: &PgConnectOptions,
        workload: Workload,
        clients: u32,
        contacts: usize,
    ) -> anyhow::Result<PgbenchReport> {
        let mut args = connection_args(database);
        args.extend([
            "-n".into(),
            "-M".into(),
            "prepared".into(),
            "-c".into(),
            clients.to_string(),
            "-j".into(),
            self.threads.clamp(1, clients.max(1)).to_string(),
            "-T".into(),
            self.duration.as_secs().max(1).to_string(),
        ]);
        match workload.script() {
            Some(script) => args.extend([
                "-D".into(),
                format!("contacts={contacts}"),
                "-D".into(),
                format!("clients={clients}"),
                "-f".into(),
                scripts_dir().join(script).display().to_string(),
            ]),
            None => args.push("-S".into()),
        }
        args.push(database_name(database)?);
        let command = show(&self.program, &args);

        let databases = [database_name(database)?];
        let machine_before = CpuSnapshot::take(None, Some(&databases));
        let sampler = PostgresSampler::start(&databases);
        let children_before = waited_children_cpu_seconds();
        let output = Command::new(&self.program)
            .args(&args)
            .output()
            .with_context(|| format!("running {command}"));
        let postgres_cores = sampler.stop();
        let machine = CpuSnapshot::take(None, Some(&databases))
            .since(&machine_before)
            .machine;
        let output = output?;
        let pgbench_seconds = waited_children_cpu_seconds() - children_before;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "{command} failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let number_after = |prefix: &str| -> Option<f64> {
            stdout
                .lines()
                .find_map(|line| line.trim().strip_prefix(prefix))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        };
        let tps = number_after("tps =").context("pgbench printed no tps")?;
        let pgbench_cores = pgbench_seconds / self.duration.as_secs_f64().max(1e-9);
        Ok(PgbenchReport {
            workload,
            clients,
            tps,
            latency_average_ms: number_after("latency average =").unwrap_or(f64::NAN),
            transactions: number_after("number of transactions actually processed:").unwrap_or(0.0)
                as u64,
            failed: number_after("number of failed transactions:").unwrap_or(0.0) as u64,
            postgres_cores,
            pgbench_cores,
            other_cores: (machine - postgres_cores - pgbench_cores).max(0.0),
            db: None,
            command,
        })
    }
}
