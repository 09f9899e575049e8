//! The report, in Markdown: the machine, the stores side by side (calls/s and p99 of each, the
//! ratio SQLite / PostgreSQL), a table per scenario and store, pgbench's figures, the ratios
//! with the issue's targets, the cost of each security variant as a ratio to the plain run,
//! and the verdict of each store.

use std::fmt::Write as _;
use std::time::Duration;

use crate::db::StoreKind;
use crate::dbstats::DbCost;
use crate::dispatch::DispatchReport;
use crate::load::{RunReport, Scenario};
use crate::pgbench::{PgbenchReport, Workload};
use crate::security::Variant;
use crate::service::{ServiceReport, Verdict};

/// The machine and the stores' settings that bound the figures.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub cores: usize,
    pub memory_mib: u64,
    /// Per store that ran, `(name, value)` of the settings that matter (on PostgreSQL `SHOW`).
    pub stores: Vec<(StoreKind, Vec<(String, String)>)>,
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

pub fn machine(machine: &Machine) -> String {
    let mut out = String::from("## Machine\n\n");
    let _ = writeln!(out, "- cores: {}", machine.cores);
    let _ = writeln!(out, "- memory: {} MiB", machine.memory_mib);
    for (store, settings) in &machine.stores {
        for (name, value) in settings {
            let _ = writeln!(out, "- {} `{name}`: {value}", store.title());
        }
    }
    out
}

/// A figure that the store has, or "n/a" where it has none (PostgreSQL's on SQLite).
fn or_na<T>(value: Option<T>, show: impl FnOnce(T) -> String) -> String {
    value.map_or_else(|| "n/a".to_owned(), show)
}

/// The name of a group of scenarios that ran on one server.
fn group_name(report: &ServiceReport) -> String {
    let mut names: Vec<String> = Vec::new();
    for run in &report.runs {
        let name = format!("`{}`", run.scenario);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if report.dispatch.is_some() {
        names.push("`dispatch`".to_owned());
    }
    names.join(" + ")
}

fn db_cost(cost: &DbCost) -> String {
    format!(
        "{:.2} / {:.2} / {:.0} B",
        cost.transactions, cost.wal_syncs, cost.wal_bytes
    )
}

fn errors(run: &RunReport) -> String {
    if run.errors.is_empty() {
        return "0".into();
    }
    run.errors
        .iter()
        .map(|(key, n)| format!("{n} {key}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A table per scenario on one store, one row per concurrency; `groups` are the reports of
/// the store's servers, one per group of scenarios.
pub fn service(store: StoreKind, groups: &[ServiceReport], cores: usize) -> String {
    let seeding: Vec<String> = groups
        .iter()
        .filter(|g| !g.runs.is_empty())
        .map(|g| format!("{} {:.1} s", group_name(g), g.seeding.as_secs_f64()))
        .collect();
    let store_note = match store {
        StoreKind::Postgres => {
            "\"CPU per call\" is server / PostgreSQL microseconds per successful call; \"DB per \
             call\" is, from PostgreSQL's statistics, transactions of the database (each \
             autocommit statement is one; the asynchronous projection's batches count too) / WAL \
             syncs (fsyncs; group commit shares them) / WAL bytes, per call of the run (warm-up \
             included)."
        }
        StoreKind::Sqlite => {
            "The embedded store works inside the server, so its CPU is the server's, and \
             PostgreSQL's column is n/a (PostgreSQL's processes, idle or another user's, count as \
             other load); \"CPU per call\" is server microseconds per successful call. \"DB per \
             call\" is n/a: SQLite keeps no statistics of transactions or syncs."
        }
    };
    let mut out = format!(
        "## The service over gRPC on {}\n\nEach scenario (`update-long` with `update-short`) ran \
         on a fresh server and database of its own, seeded for it: {}. Latency is per \
         successful call, from the generator; CPU is in cores (1.0 = one core busy) during the \
         measured time; \"other\" is the rest of the machine's busy time (another user's work: \
         a noisy neighbour); the generator's share is of the whole machine ({cores} cores). \
         {store_note}\n",
        store.title(),
        if seeding.is_empty() {
            "nothing".to_owned()
        } else {
            seeding.join(", ")
        },
    );
    for report in groups {
        scenario_tables(&mut out, report, cores);
    }
    out
}

/// The tables of the scenarios of one server's report.
fn scenario_tables(out: &mut String, report: &ServiceReport, cores: usize) {
    let mut scenarios: Vec<Scenario> = Vec::new();
    for run in &report.runs {
        if !scenarios.contains(&run.scenario) {
            scenarios.push(run.scenario);
        }
    }
    for scenario in scenarios {
        let _ = write!(
            out,
            "\n### `{scenario}` ({})\n\n| C | calls/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | server RSS MiB (peak) | CPU server / postgres / generator / other | CPU per call µs | generator share | DB per call |\n| --: | --: | --: | --: | --: | --: | --: | --- | --: | --- | --- | --: | --- |\n",
            scenario.rpc()
        );
        for run in report.runs.iter().filter(|r| r.scenario == scenario) {
            let l = &run.latencies;
            let rate = run.calls_per_second().max(1e-9);
            let server = run.cpu.server;
            let per_call = |cores: f64| format!("{:.0}", cores * 1e6 / rate);
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {:.2} / {:.2} | {} / {} | {:.0}% | {} |",
                run.concurrency,
                run.calls_per_second(),
                ms(l.percentile(50.0)),
                ms(l.percentile(90.0)),
                ms(l.percentile(99.0)),
                ms(l.percentile(99.9)),
                ms(l.max()),
                errors(run),
                run.server_memory.map_or("-".into(), |m| format!(
                    "{} ({})",
                    mib(m.rss_kib),
                    mib(m.peak_kib)
                )),
                server.map_or("-".into(), |s| format!("{s:.2}")),
                or_na(run.cpu.postgres, |p| format!("{p:.2}")),
                run.cpu.generator,
                run.cpu.other(),
                server.map_or("-".into(), per_call),
                or_na(run.cpu.postgres, per_call),
                100.0 * run.cpu.generator / cores.max(1) as f64,
                or_na(run.db.as_ref(), db_cost),
            );
        }
        let starts: Vec<String> = report
            .runs
            .iter()
            .filter(|r| r.scenario == scenario)
            .filter_map(|r| {
                Some(format!(
                    "C={}: {}",
                    r.concurrency, r.stream_events_at_start?
                ))
            })
            .collect();
        if !starts.is_empty() {
            let _ = writeln!(
                out,
                "\nEvents in the updated contact's stream when each run started: {}.",
                starts.join(", ")
            );
        }
        let directories = report.directories.as_ref();
        if scenario == Scenario::ListMember
            && let Some(d) = directories.and_then(|d| d.directory.as_ref())
        {
            let _ = writeln!(
                out,
                "\nThe member `{}` is four folders deep (root → F1 → F2 → F3 → F4) in a directory of \
                 {} members and {} folders (seeded in {:.1} s); {} of the account's {} contacts apply to it (bound to it, to F1..F4 or \
                 to the root), and every answer counted exactly those (the whole list was checked \
                 at the start of each run). After the last binding, the projection listed them \
                 all within {} ms.",
                d.deep_member,
                d.members,
                d.folders,
                d.seeded_in.as_secs_f64(),
                d.applying.len(),
                d.contacts,
                ms(d.visible_after),
            );
        }
        if scenario == Scenario::Associate
            && let Some(d) = directories
        {
            let _ = writeln!(
                out,
                "\nEach task binds and unbinds on an account of its own ({} seeded): two contacts \
                 bound to the root for good, and two targets (a folder with a member in it, a \
                 member at the root), one target a call, each call changing one binding. Since \
                 the contacts apply to every member through the root already, no call changes \
                 which members they apply to, and none records a lifecycle job (recorded during \
                 the runs: {}).",
                d.bindings.len(),
                report
                    .runs
                    .iter()
                    .filter(|r| r.scenario == Scenario::Associate)
                    .map(|r| format!("C={}: {}", r.concurrency, r.lifecycle_jobs.unwrap_or(0)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let lags: Vec<String> = report
                .runs
                .iter()
                .filter(|r| r.scenario == Scenario::Associate)
                .filter_map(|r| {
                    let (behind, caught_up) = r.projection_lag?;
                    Some(match caught_up {
                        Some(t) => {
                            // Every binding of the run, over the run and the catch-up.
                            let (events, _) = r.events_appended.unwrap_or_default();
                            let span = r.measured + r.warmup + t;
                            format!(
                                "C={}: {behind} events behind, caught up in {:.1} s ({:.0} events/s \
                                 over the run and the catch-up)",
                                r.concurrency,
                                t.as_secs_f64(),
                                events as f64 / span.as_secs_f64().max(1e-9)
                            )
                        }
                        None => format!(
                            "C={}: {behind} events behind, not caught up within 15 min",
                            r.concurrency
                        ),
                    })
                })
                .collect();
            let _ = writeln!(
                out,
                "\nThe `member_contacts` projection (what `list-member` reads) and the calls, \
                 when each run ended (its catch-up is in the DB figures; the next run waited for \
                 it): {}.",
                lags.join("; ")
            );
        }
        if matches!(scenario, Scenario::ListMember | Scenario::Associate)
            && let Some(d) = directories
        {
            let _ = writeln!(
                out,
                "\nThe seeding's bindings left {} lifecycle jobs (one per member account a contact \
                 came to apply to); the lifecycle worker carried them out in {} before the runs.",
                d.jobs,
                d.jobs_done_in.map_or(
                    "more than the patience (the runs shared the machine with \
                 it)"
                    .into(),
                    |t| format!("{:.1} s", t.as_secs_f64())
                )
            );
        }
    }
}

/// The dispatch benchmark: a row per offered rate, then the highest rate kept up with.
pub fn dispatch(store: StoreKind, report: &DispatchReport) -> String {
    let plan = &report.plan;
    let mut out = format!(
        "## Verification dispatch on {store}: from the send's answer to the SMTP acceptance\n\n\
         `SendEmailVerificationForMessageContact` at steady open-loop rates (send n at \
         n / rate, whatever the others are doing), {warmup} s of warm-up then {duration} s \
         measured at each, every send to a contact of its own (`b<n>@bench.example`, {contacts} \
         seeded in {seeding:.1} s). Latency is from the send's answer, as the client saw it, to \
         the instant the benchmark's SMTP receiver answered 250 to its message's DATA, for the \
         sends scheduled in the window; \"RPC\" is the send call itself. The receiver accepts \
         at once (loopback, no TLS): it stands in for a fast mail server, so the latency is \
         the service's own. \"accepted/s\" counts messages accepted during the window. CPU is \
         in cores during the window, as above. The receiver saw {connections} SMTP \
         connection(s) over every run.\n\n\
         | offered/s | sends | RPC p50 / p99 ms | accepted/s | share | p50 ms | p90 ms | p99 ms | max ms | failed | lost | drained in s | issue lag p99 / max ms | CPU server / postgres / generator / other | kept up |\n\
         | --: | --: | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --- | --- | --- |\n",
        warmup = plan.warmup.as_secs_f64(),
        duration = plan.duration.as_secs_f64(),
        contacts = report.contacts,
        seeding = report.seeding.as_secs_f64(),
        connections = report.smtp_connections,
        store = store.title(),
    );
    for run in &report.runs {
        let l = &run.latencies;
        let _ = writeln!(
            out,
            "| {} | {} | {} / {} | {:.1} | {:.1}% | {} | {} | {} | {} | {} | {} | {:.2} | {} / {} | {} / {} / {:.2} / {:.2} | {} |",
            run.offered_rate,
            run.window_sends,
            ms(run.rpc_latencies.percentile(50.0)),
            ms(run.rpc_latencies.percentile(99.0)),
            run.accepted_per_second(),
            100.0 * run.accepted_share(),
            ms(l.percentile(50.0)),
            ms(l.percentile(90.0)),
            run.p99().map_or("never".into(), ms),
            ms(l.max()),
            run.failed(),
            run.lost,
            run.drained_in.as_secs_f64(),
            ms(run.issue_lag_p99),
            ms(run.issue_lag_max),
            run.cpu.server.map_or("-".into(), |s| format!("{s:.2}")),
            or_na(run.cpu.postgres, |p| format!("{p:.2}")),
            run.cpu.generator,
            run.cpu.other(),
            if run.kept_up(plan) { "yes" } else { "no" },
        );
    }
    out.push_str(
        "\nWhere the time goes, p50 / p99 ms of the window's accepted sends: from the answer to \
         the receiver's reading of `MAIL` (the commit's projection into the outbox, the \
         dispatcher's wake-up and claim, lettre's pool and its `NOOP`), from `MAIL` to the 250 \
         (the SMTP conversation), and of that from `DATA` to the 250 (the body).\n\n\
         | offered/s | answer → MAIL | MAIL → 250 | DATA → 250 |\n| --: | --- | --- | --- |\n",
    );
    let both = |l: &crate::stats::Latencies| {
        format!("{} / {}", ms(l.percentile(50.0)), ms(l.percentile(99.0)))
    };
    for run in &report.runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            run.offered_rate,
            both(&run.to_mail),
            both(&run.conversation),
            both(&run.body)
        );
    }
    let early: usize = report.runs.iter().map(|r| r.before_answer).sum();
    if early > 0 {
        let _ = writeln!(
            out,
            "\n{early} message(s) were accepted before the client saw their send's answer (counted as 0 ms)."
        );
    }
    let _ = writeln!(
        out,
        "\nKept up: {}. **Highest sustained rate: {}** (the highest offered rate kept up with, \
         every lower one kept up with too).",
        plan.rule(),
        report
            .highest_sustained()
            .map_or("none of the offered rates".into(), |r| format!(
                "{r} sends/s"
            ))
    );
    out
}

/// The stores side by side: for each scenario and concurrency, calls/s and p99 on each (each
/// from a server of its own, PostgreSQL's and SQLite's one after the other); then the ratios
/// SQLite / PostgreSQL at `at` calls in flight, and `dispatch`'s highest sustained rates.
pub fn side_by_side(postgres: &ServiceReport, sqlite: &ServiceReport, at: usize) -> String {
    let mut out = String::from(
        "## SQLite beside PostgreSQL\n\nThe same scenarios on a fresh server of each store, \
         one store after the other for each scenario (so that a change of the machine's load \
         falls on both sides of a ratio alike); the detail is in each store's section below. \
         p99 is of the successful calls, from the generator.\n\n\
         | scenario | C | PostgreSQL calls/s | PostgreSQL p99 ms | SQLite calls/s | SQLite p99 ms |\n\
         | --- | --: | --: | --: | --: | --: |\n",
    );
    // In the order the scenarios ran, each at its concurrencies in order.
    let mut scenarios: Vec<Scenario> = Vec::new();
    let mut rows: Vec<(Scenario, usize)> = Vec::new();
    for run in postgres.runs.iter().chain(&sqlite.runs) {
        if !scenarios.contains(&run.scenario) {
            scenarios.push(run.scenario);
        }
        if !rows.contains(&(run.scenario, run.concurrency)) {
            rows.push((run.scenario, run.concurrency));
        }
    }
    rows.sort_by_key(|(s, c)| (scenarios.iter().position(|f| f == s), *c));
    let rate = |run: Option<&RunReport>| {
        run.map_or("-".into(), |r| format!("{:.0}", r.calls_per_second()))
    };
    let p99 =
        |run: Option<&RunReport>| run.map_or("-".into(), |r| ms(r.latencies.percentile(99.0)));
    for &(scenario, c) in &rows {
        let (pg, lite) = (postgres.run(scenario, c), sqlite.run(scenario, c));
        let _ = writeln!(
            out,
            "| `{scenario}` | {c} | {} | {} | {} | {} |",
            rate(pg),
            p99(pg),
            rate(lite),
            p99(lite)
        );
    }
    let _ = write!(
        out,
        "\n### SQLite / PostgreSQL at C={at}\n\nAbove 1.00× SQLite made more calls per second, \
         or took longer at the p99.\n\n| scenario | calls/s | p99 |\n| --- | --: | --: |\n"
    );
    let mut compared = 0;
    for scenario in scenarios {
        let (Some(pg), Some(lite)) = (postgres.run(scenario, at), sqlite.run(scenario, at)) else {
            continue;
        };
        compared += 1;
        let ratio = |lite: f64, pg: f64| {
            if pg > 0.0 {
                format!("{:.2}×", lite / pg)
            } else {
                "-".to_owned()
            }
        };
        let _ = writeln!(
            out,
            "| `{scenario}` | {} ({:.0} / {:.0}) | {} ({} / {} ms) |",
            ratio(lite.calls_per_second(), pg.calls_per_second()),
            lite.calls_per_second(),
            pg.calls_per_second(),
            ratio(
                lite.latencies.percentile(99.0).as_secs_f64(),
                pg.latencies.percentile(99.0).as_secs_f64()
            ),
            ms(lite.latencies.percentile(99.0)),
            ms(pg.latencies.percentile(99.0)),
        );
    }
    if compared == 0 {
        let _ = writeln!(out, "| (no scenario ran at C={at} on both) | - | - |");
    }
    if let (Some(pg), Some(lite)) = (&postgres.dispatch, &sqlite.dispatch) {
        let sustained = |d: &DispatchReport| {
            d.highest_sustained()
                .map_or("none of the offered rates".into(), |r| {
                    format!("{r} sends/s")
                })
        };
        let _ = writeln!(
            out,
            "\n`dispatch`, the highest sustained rate: PostgreSQL {}, SQLite {}.",
            sustained(pg),
            sustained(lite)
        );
    }
    out
}

pub fn pgbench(runs: &[PgbenchReport]) -> String {
    let mut out = String::from(
        "## The database's limit: pgbench on the same server\n\nCPU is in cores; \"DB per transaction\" as above: transactions / WAL syncs / WAL bytes per \
         pgbench transaction.\n\n| workload | clients | tps | latency avg ms | failed | CPU postgres / pgbench / other | postgres CPU per transaction µs | DB per transaction |\n| --- | --: | --: | --: | --: | --- | --: | --- |\n",
    );
    for run in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.2} | {} | {:.2} / {:.2} / {:.2} | {:.0} | {} |",
            run.workload,
            run.clients,
            run.tps,
            run.latency_average_ms,
            run.failed,
            run.postgres_cores,
            run.pgbench_cores,
            run.other_cores,
            run.postgres_cores * 1e6 / run.tps.max(1e-9),
            run.db.as_ref().map_or("-".into(), db_cost),
        );
    }
    out.push_str("\nCommands:\n\n```sh\n");
    for run in runs {
        let _ = writeln!(out, "{}", run.command);
    }
    out.push_str("```\n");
    out
}

/// One of the issue's targets, judged.
#[derive(Debug, Clone)]
pub struct Target {
    pub what: String,
    pub measured: String,
    pub wanted: String,
    pub met: Option<bool>,
}

fn tps(runs: &[PgbenchReport], workload: Workload) -> Vec<(u32, f64)> {
    runs.iter()
        .filter(|r| r.workload == workload)
        .map(|r| (r.clients, r.tps))
        .collect()
}

/// The ratios of the service to pgbench and the issue's targets. Where pgbench ran at several
/// client counts, a target is judged against the highest figure (the strictest).
pub fn targets(service: &ServiceReport, pgbench: &[PgbenchReport], at: usize) -> Vec<Target> {
    let mut targets = Vec::new();
    let mut versus = |rpc: Scenario, workload: Workload, wanted: Option<f64>, label: &str| {
        let Some(run) = service.run(rpc, at) else {
            return;
        };
        let figures = tps(pgbench, workload);
        if figures.is_empty() {
            return;
        }
        let rate = run.calls_per_second();
        let parts: Vec<String> = figures
            .iter()
            .map(|(clients, tps)| format!("{:.2}× ({clients} clients: {tps:.0} tps)", rate / tps))
            .collect();
        let best = figures.iter().map(|(_, tps)| *tps).fold(0.0, f64::max);
        targets.push(Target {
            what: format!("`{rpc}` at C={at} ({rate:.0}/s) vs pgbench {workload}"),
            measured: parts.join("; "),
            wanted: wanted.map_or(label.to_owned(), |w| format!("≥ {w:.2}× {label}")),
            met: wanted.map(|w| rate >= w * best),
        });
    };
    versus(Scenario::Update, Workload::UpdateNaive, Some(1.3), "");
    versus(
        Scenario::Update,
        Workload::UpdateSingle,
        Some(1.0),
        "(stretch)",
    );
    versus(
        Scenario::Update,
        Workload::UpdateAsService,
        None,
        "none: the service's own SQL without the service, for the profile",
    );
    versus(Scenario::Get, Workload::SelectOnly, Some(0.35), "");

    for scenario in [Scenario::ListMember, Scenario::Associate] {
        if let Some(run) = service.run(scenario, at) {
            targets.push(Target {
                what: format!("`{scenario}` at C={at}"),
                measured: format!(
                    "{:.0}/s, p50 {} ms, p99 {} ms",
                    run.calls_per_second(),
                    ms(run.latencies.percentile(50.0)),
                    ms(run.latencies.percentile(99.0))
                ),
                wanted: "none: measured".into(),
                met: None,
            });
        }
    }

    if let Some(run) = service.run(Scenario::Update, at) {
        let p99 = run.latencies.percentile(99.0);
        targets.push(Target {
            what: format!("`update` p99 at C={at}"),
            measured: format!("{} ms", ms(p99)),
            wanted: "≤ 10 ms".into(),
            met: Some(p99 <= Duration::from_millis(10)),
        });
    }

    let pairs: Vec<(usize, f64, f64)> = service
        .runs
        .iter()
        .filter(|r| r.scenario == Scenario::UpdateLong)
        .filter_map(|long| {
            let short = service.run(Scenario::UpdateShort, long.concurrency)?;
            Some((
                long.concurrency,
                long.calls_per_second(),
                short.calls_per_second(),
            ))
        })
        .collect();
    if !pairs.is_empty() {
        let worst = pairs
            .iter()
            .map(|(_, long, short)| long / short.max(1e-9))
            .fold(f64::INFINITY, f64::min);
        targets.push(Target {
            what: "`update-long` (≥ 10,000 events) vs `update-short` (10 events), calls/s".into(),
            measured: pairs
                .iter()
                .map(|(c, long, short)| format!("C={c}: {:.2}×", long / short.max(1e-9)))
                .collect::<Vec<_>>()
                .join(", "),
            wanted: "within 10% (≥ 0.90×)".into(),
            met: Some(worst >= 0.9),
        });
    }

    if let Some(dispatch) = &service.dispatch {
        let rates: Vec<String> = dispatch
            .runs
            .iter()
            .map(|r| r.offered_rate.to_string())
            .collect();
        targets.push(Target {
            what: format!(
                "highest sustained verification dispatch rate (offered: {}/s)",
                rates.join(", ")
            ),
            measured: dispatch
                .highest_sustained()
                .map_or("none".into(), |r| format!("{r} sends/s")),
            wanted: "none: measured (rule in the dispatch section)".into(),
            met: None,
        });
    }

    let dispatch_runs = service.dispatch.iter().flat_map(|d| &d.runs);
    let peak = service
        .runs
        .iter()
        .filter_map(|r| r.server_memory)
        .chain(dispatch_runs.filter_map(|r| r.server_memory))
        .map(|m| m.peak_kib)
        .max();
    if let Some(peak) = peak {
        targets.push(Target {
            what: "server peak RSS over every scenario".into(),
            measured: format!("{} MiB", mib(peak)),
            wanted: "≤ 32 MiB".into(),
            met: Some(peak <= 32 * 1024),
        });
    }
    targets
}

pub fn targets_table(store: StoreKind, targets: &[Target]) -> String {
    let mut out = format!(
        "## Ratios and targets on {}\n\n| what | measured | target | met |\n| --- | --- | --- | --- |\n",
        store.title()
    );
    for t in targets {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {met} |",
            t.what, t.measured, t.wanted
        );
    }
    out
}

/// The aim of the security issue: each variant within 15% of the plain run's throughput.
pub const SECURITY_AIM: f64 = 0.15;

/// One security variant's run of one scenario, on a server of its own.
#[derive(Debug, Clone)]
pub struct SecurityRun {
    /// Which pass over the variants (1, 2, …): ratios are to the plain run of the same round.
    pub round: usize,
    pub variant: Variant,
    pub run: RunReport,
}

/// The median of `values` (the mean of the middle two when their number is even).
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// The cost of security at `at` calls in flight: each variant's calls/s, p50 and p99 beside
/// the plain run of the same scenario and round, as ratios; then, per scenario and variant,
/// the median ratio over the rounds judged against [`SECURITY_AIM`], and a verdict line.
/// `notes` says how the servers ran (the rate limits, the tokens).
pub fn security(runs: &[SecurityRun], at: usize, notes: &str) -> String {
    let mut out = format!(
        "## The cost of security at C={at} on PostgreSQL\n\nEach variant ran each scenario \
         on a fresh server and database of its own, seeded alike, the variants one after the \
         other for each scenario (so that a change of the machine's load falls on every \
         variant alike); a ratio is to the `plain` run of the same scenario and round (calls/s: \
         below 1.00× the variant is slower; p50/p99: above 1.00× it takes longer). CPU per \
         call is server / PostgreSQL / generator microseconds per successful call (the \
         generator shares the machine, so its own TLS and its tokens count against the \
         throughput too); \"DB per call\" is PostgreSQL's transactions / WAL syncs per call; \
         \"other\" is the rest of the machine's busy time, in cores. {notes}\n\n\
         | scenario | round | variant | calls/s | p50 ms | p99 ms | errors | CPU per call µs | DB per call | other load | calls/s vs plain | p50 vs plain | p99 vs plain |\n\
         | --- | --: | --- | --: | --: | --: | --- | --- | --- | --: | --: | --: | --: |\n"
    );
    let plain_of = |scenario: Scenario, round: usize| {
        runs.iter()
            .find(|r| r.variant == Variant::Plain && r.run.scenario == scenario && r.round == round)
            .map(|r| &r.run)
    };
    let ratio = |value: f64, base: f64| {
        if base > 0.0 {
            format!("{:.2}×", value / base)
        } else {
            "-".to_owned()
        }
    };
    let mut scenarios: Vec<Scenario> = Vec::new();
    let mut variants: Vec<Variant> = Vec::new();
    for r in runs {
        if !scenarios.contains(&r.run.scenario) {
            scenarios.push(r.run.scenario);
        }
        if !variants.contains(&r.variant) {
            variants.push(r.variant);
        }
    }
    variants.sort();
    for &scenario in &scenarios {
        let mut rows: Vec<&SecurityRun> =
            runs.iter().filter(|r| r.run.scenario == scenario).collect();
        rows.sort_by_key(|r| (r.round, r.variant));
        for r in rows {
            let run = &r.run;
            let l = &run.latencies;
            let rate = run.calls_per_second().max(1e-9);
            let per_call = |cores: f64| format!("{:.0}", cores * 1e6 / rate);
            let (vs_rate, vs_p50, vs_p99) = match plain_of(scenario, r.round) {
                Some(plain) if r.variant != Variant::Plain => (
                    ratio(run.calls_per_second(), plain.calls_per_second()),
                    ratio(
                        l.percentile(50.0).as_secs_f64(),
                        plain.latencies.percentile(50.0).as_secs_f64(),
                    ),
                    ratio(
                        l.percentile(99.0).as_secs_f64(),
                        plain.latencies.percentile(99.0).as_secs_f64(),
                    ),
                ),
                Some(_) => ("1.00×".into(), "1.00×".into(), "1.00×".into()),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let _ = writeln!(
                out,
                "| `{scenario}` | {} | `{}` | {:.0} | {} | {} | {} | {} / {} / {} | {} | {:.2} | {vs_rate} | {vs_p50} | {vs_p99} |",
                r.round,
                r.variant,
                run.calls_per_second(),
                ms(l.percentile(50.0)),
                ms(l.percentile(99.0)),
                errors(run),
                run.cpu.server.map_or("-".into(), per_call),
                or_na(run.cpu.postgres, per_call),
                per_call(run.cpu.generator),
                or_na(run.db.as_ref(), |db| format!(
                    "{:.2} / {:.2}",
                    db.transactions, db.wal_syncs
                )),
                run.cpu.other(),
            );
        }
    }
    let _ = write!(
        out,
        "\n### Each variant against `plain`: the median over the rounds\n\nThe aim: calls/s \
         within {:.0}% of `plain` (≥ {:.2}×).\n\n\
         | scenario | variant | what it runs with | calls/s vs plain | p50 vs plain | p99 vs plain | within {:.0}% |\n\
         | --- | --- | --- | --: | --: | --: | --- |\n",
        SECURITY_AIM * 100.0,
        1.0 - SECURITY_AIM,
        SECURITY_AIM * 100.0,
    );
    let mut judged = Vec::new();
    for &scenario in &scenarios {
        for &variant in variants.iter().filter(|v| **v != Variant::Plain) {
            let mut rates = Vec::new();
            let mut p50s = Vec::new();
            let mut p99s = Vec::new();
            for r in runs
                .iter()
                .filter(|r| r.variant == variant && r.run.scenario == scenario)
            {
                let Some(plain) = plain_of(scenario, r.round) else {
                    continue;
                };
                let of = |run: &RunReport, p: f64| run.latencies.percentile(p).as_secs_f64();
                rates.push(r.run.calls_per_second() / plain.calls_per_second().max(1e-9));
                p50s.push(of(&r.run, 50.0) / of(plain, 50.0).max(1e-12));
                p99s.push(of(&r.run, 99.0) / of(plain, 99.0).max(1e-12));
            }
            let Some(rate) = median(&mut rates) else {
                continue;
            };
            let met = rate >= 1.0 - SECURITY_AIM;
            let show = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}×"));
            let _ = writeln!(
                out,
                "| `{scenario}` | `{variant}` | {} | {rate:.2}× | {} | {} | {} |",
                variant.describe(),
                show(median(&mut p50s)),
                show(median(&mut p99s)),
                if met {
                    "yes".to_owned()
                } else {
                    format!("**no** ({:.0}% slower)", (1.0 - rate) * 100.0)
                },
            );
            judged.push((scenario, variant, rate, met));
        }
    }
    let missed: Vec<String> = judged
        .iter()
        .filter(|(_, _, _, met)| !met)
        .map(|(scenario, variant, rate, _)| format!("`{scenario}` `{variant}` {rate:.2}×"))
        .collect();
    let _ = writeln!(
        out,
        "
**Security cost: {}** ({} of {} scenario × variant medians within {:.0}% of `plain`{}).",
        if judged.is_empty() {
            "not measured (no variant beside plain)".to_owned()
        } else if missed.is_empty() {
            "within the aim".to_owned()
        } else {
            "the aim is missed".to_owned()
        },
        judged.len() - missed.len(),
        judged.len(),
        SECURITY_AIM * 100.0,
        if missed.is_empty() {
            String::new()
        } else {
            format!("; missed: {}", missed.join(", "))
        }
    );
    out
}

/// The verdict of one store, over every server that ran on it (their findings added up).
pub fn verdict(store: StoreKind, verdict: &Verdict) -> String {
    let a = &verdict.agreement;
    let mut out = format!(
        "## Verdict on {}: {}\n\n- log and read model: {} contacts, {} events; {} version mismatches, {} \
         streams without a row, {} name-claim mismatches, {} quota mismatches, {} directory \
         mismatches\n- calls failed with an unexpected code: {}\n",
        store.title(),
        if verdict.passed() { "PASS" } else { "FAIL" },
        a.contacts,
        a.events,
        a.version_mismatches,
        a.orphan_streams,
        a.name_mismatches,
        a.quota_mismatches,
        a.directory_mismatches,
        verdict.unexpected_errors
    );
    if verdict.runs_not_adding_up.is_empty() {
        out.push_str("- every successful write appended exactly one event\n");
    } else {
        for line in &verdict.runs_not_adding_up {
            let _ = writeln!(out, "- {line}");
        }
    }
    for line in &verdict.dispatch_problems {
        let _ = writeln!(out, "- {line}");
    }
    for line in &verdict.server_problems {
        let _ = writeln!(out, "- {line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::procfs::CpuSplit;
    use crate::stats::Latencies;

    /// A run of `scenario` at C=`c`: `ok` calls in one second, every one taking `ms`; with
    /// PostgreSQL's figures or without them.
    fn run(scenario: Scenario, c: usize, ok: u64, ms: u64, postgres: bool) -> RunReport {
        RunReport {
            scenario,
            concurrency: c,
            measured: Duration::from_secs(1),
            warmup: Duration::ZERO,
            ok,
            latencies: Latencies::new(vec![ms * 1_000_000; ok as usize]),
            errors: BTreeMap::new(),
            unexpected_errors: 0,
            server_memory: None,
            cpu: CpuSplit {
                generator: 0.1,
                server: Some(0.5),
                postgres: postgres.then_some(0.4),
                machine: 1.0,
            },
            events_appended: None,
            stream_events_at_start: None,
            lifecycle_jobs: None,
            projection_lag: None,
            db: postgres.then(DbCost::default),
        }
    }

    fn report(runs: Vec<RunReport>) -> ServiceReport {
        ServiceReport {
            seeding: Duration::from_secs(1),
            directories: None,
            runs,
            dispatch: None,
        }
    }

    #[test]
    fn the_stores_are_compared_at_the_chosen_concurrency() {
        let postgres = report(vec![
            run(Scenario::Update, 4, 1000, 2, true),
            run(Scenario::Update, 32, 4000, 8, true),
        ]);
        let sqlite = report(vec![
            run(Scenario::Update, 4, 1500, 1, false),
            run(Scenario::Update, 32, 2000, 12, false),
        ]);
        let out = side_by_side(&postgres, &sqlite, 32);
        assert!(
            out.contains("| `update` | 4 | 1000 | 2.00 | 1500 | 1.00 |"),
            "{out}"
        );
        assert!(
            out.contains("| `update` | 32 | 4000 | 8.00 | 2000 | 12.00 |"),
            "{out}"
        );
        assert!(
            out.contains("| `update` | 0.50× (2000 / 4000) | 1.50× (12.00 / 8.00 ms) |"),
            "{out}"
        );
    }

    #[test]
    fn each_variant_is_a_ratio_to_the_plain_run_of_its_round() {
        let secured = |round, variant, ok, ms| SecurityRun {
            round,
            variant,
            run: run(Scenario::Get, 32, ok, ms, true),
        };
        let runs = vec![
            secured(1, Variant::Plain, 1000, 2),
            secured(1, Variant::Tls, 900, 2),
            secured(1, Variant::Jwt, 800, 3),
            secured(2, Variant::Plain, 2000, 1),
            secured(2, Variant::Tls, 1900, 1),
            secured(2, Variant::Jwt, 1000, 2),
        ];
        let out = security(&runs, 32, "");
        assert!(
            out.contains("| `get` | 1 | `tls` | 900 | 2.00 | 2.00 | 0 | 556 / 444 / 111 | 0.00 / 0.00 | 0.00 | 0.90× | 1.00× | 1.00× |"),
            "{out}"
        );
        assert!(out.contains("| `get` | 2 | `plain` | 2000 |"), "{out}");
        // Medians: tls (0.90, 0.95) → 0.93; jwt (0.80, 0.50) → 0.65, 35% slower.
        assert!(out.contains("| `get` | `tls` |"), "{out}");
        assert!(out.contains("| 0.93× | 1.00× | 1.00× | yes |"), "{out}");
        assert!(
            out.contains("| 0.65× | 1.75× | 1.75× | **no** (35% slower) |"),
            "{out}"
        );
        assert!(
            out.contains("**Security cost: the aim is missed** (1 of 2 scenario × variant medians within 15% of `plain`; missed: `get` `jwt` 0.65×)"),
            "{out}"
        );
    }

    #[test]
    fn what_sqlite_does_not_measure_is_not_applicable() {
        let sqlite = report(vec![run(Scenario::Get, 4, 1000, 1, false)]);
        let out = service(StoreKind::Sqlite, &[sqlite], 2);
        assert!(
            out.contains("| 0.50 / n/a / 0.10 / 0.40 | 500 / n/a |"),
            "{out}"
        );
        assert!(out.trim_end().ends_with("| n/a |"), "{out}");
    }
}
