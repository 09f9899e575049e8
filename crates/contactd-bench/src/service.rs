//! The service half of the benchmark: seed, then every scenario at every concurrency, then the
//! dispatch benchmark at every rate, and the verdict on what the calls left behind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::dispatch::{self, DispatchPlan, DispatchReport, RateReport};
use crate::load::{self, RunReport, RunSettings, Scenario, Target, Workload};
use crate::seed::{self, Directories, DirectoryPlan, SeedPlan};
use crate::verify::{self, Agreement};

/// What to run against the server.
#[derive(Debug, Clone)]
pub struct ServicePlan {
    pub seed: SeedPlan,
    /// Member accounts in the directory of `list-member`.
    pub directory_members: usize,
    pub scenarios: Vec<Scenario>,
    pub concurrency: Vec<usize>,
    pub warmup: Duration,
    pub duration: Duration,
    pub rng_seed: u64,
    /// See [`RunSettings::settle`].
    pub settle: bool,
    /// The rates and rule of `dispatch`, when it is one of the scenarios.
    pub dispatch: DispatchPlan,
}

/// What the service half measured.
#[derive(Debug, Clone)]
pub struct ServiceReport {
    pub seeding: Duration,
    /// The directories of `list-member` and `associate`, if they were seeded.
    pub directories: Option<Directories>,
    pub runs: Vec<RunReport>,
    pub dispatch: Option<DispatchReport>,
}

impl ServiceReport {
    pub fn run(&self, scenario: Scenario, concurrency: usize) -> Option<&RunReport> {
        self.runs
            .iter()
            .find(|r| r.scenario == scenario && r.concurrency == concurrency)
    }

    pub fn unexpected_errors(&self) -> u64 {
        self.runs.iter().map(|r| r.unexpected_errors).sum()
    }

    /// Runs in which the events appended differ from the successful writes.
    pub fn writes_not_adding_up(&self) -> Vec<&RunReport> {
        self.runs.iter().filter(|r| !r.writes_add_up()).collect()
    }

    /// The runs of several servers (one per group of scenarios) as one report, for what looks
    /// across scenarios (the ratios, the targets): the runs in order, the first `dispatch`,
    /// the seeding times added up. The directories stay with their own group's report.
    pub fn combined(reports: &[ServiceReport]) -> ServiceReport {
        ServiceReport {
            seeding: reports.iter().map(|r| r.seeding).sum(),
            directories: None,
            runs: reports
                .iter()
                .flat_map(|r| r.runs.iter().cloned())
                .collect(),
            dispatch: reports.iter().find_map(|r| r.dispatch.clone()),
        }
    }
}

/// Seeds, then runs every closed-loop scenario at every concurrency (`progress` sees each run
/// as it ends), then `dispatch` at every rate (`dispatch_progress` likewise): last, so that
/// the dispatcher's own events never fall into a closed-loop run's count of events appended.
pub async fn run(
    target: &Target,
    plan: &ServicePlan,
    mut progress: impl FnMut(&RunReport),
    dispatch_progress: impl FnMut(&RateReport),
) -> anyhow::Result<ServiceReport> {
    let mut closed = ClosedLoop::default();
    if plan.scenarios.iter().any(|s| s.is_closed_loop()) {
        closed = run_closed_loop(target, plan, &mut progress).await?;
    }
    let dispatch = if plan.scenarios.contains(&Scenario::Dispatch) {
        let receiver = target
            .smtp
            .as_ref()
            .context("dispatch needs the SMTP receiver that the server sends to")?;
        Some(dispatch::run(target, receiver, &plan.dispatch, dispatch_progress).await?)
    } else {
        None
    };
    Ok(ServiceReport {
        seeding: closed.seeding,
        directories: closed.directories,
        runs: closed.runs,
        dispatch,
    })
}

/// What the closed-loop half seeded and measured.
#[derive(Debug, Default)]
struct ClosedLoop {
    seeding: Duration,
    directories: Option<Directories>,
    runs: Vec<RunReport>,
}

async fn run_closed_loop(
    target: &Target,
    plan: &ServicePlan,
    progress: &mut impl FnMut(&RunReport),
) -> anyhow::Result<ClosedLoop> {
    let mut seed_plan = plan.seed.clone();
    seed_plan.short_streams = if plan.scenarios.contains(&Scenario::UpdateShort) {
        plan.concurrency.len()
    } else {
        0
    };
    if !plan.scenarios.contains(&Scenario::UpdateLong) {
        // The long history only `update-long` updates: its add alone, so that a server that
        // runs other scenarios does not spend the seeding's time growing it.
        seed_plan.long_stream_events = 1;
    }
    let directory_plan = DirectoryPlan {
        members: if plan.scenarios.contains(&Scenario::ListMember) {
            plan.directory_members
        } else {
            0
        },
        binding_accounts: if plan.scenarios.contains(&Scenario::Associate) {
            plan.concurrency.iter().copied().max().unwrap_or(0)
        } else {
            0
        },
        concurrency: plan.seed.concurrency,
        jobs_patience: Duration::from_secs(600),
    };
    let started = Instant::now();
    let seeded = seed::seed(&target.fleet, &target.db, &seed_plan).await?;
    let seeding = started.elapsed();
    let workload = Arc::new(Workload::new(seeded));

    let mut runs = Vec::new();
    for (scenario, level) in order(plan) {
        if matches!(scenario, Scenario::ListMember | Scenario::Associate)
            && workload.directories().is_none()
        {
            // Seeded here, before the first run that needs them: where other scenarios run
            // first on the same server (the smoke test's), they run on the data they have on
            // a server of their own, without the lifecycle jobs of these bindings.
            let directories =
                seed::seed_directories(&target.fleet, &target.db, &directory_plan).await?;
            workload.set_directories(directories)?;
        }
        let settings = RunSettings {
            scenario,
            concurrency: plan.concurrency[level],
            warmup: plan.warmup,
            duration: plan.duration,
            short_stream: level,
            seed: plan.rng_seed,
            settle: plan.settle,
        };
        let report = load::run(target, &workload, settings).await?;
        progress(&report);
        runs.push(report);
    }
    Ok(ClosedLoop {
        seeding,
        directories: workload.directories().cloned(),
        runs,
    })
}

/// The runs in order: each scenario at each concurrency (as an index into the plan's), except
/// that `update-long` and `update-short` alternate at each concurrency, so that a change of the
/// machine's load during the benchmark does not fall on one side of their comparison.
fn order(plan: &ServicePlan) -> Vec<(Scenario, usize)> {
    let levels = 0..plan.concurrency.len();
    let paired = plan.scenarios.contains(&Scenario::UpdateLong)
        && plan.scenarios.contains(&Scenario::UpdateShort);
    let mut order = Vec::new();
    for &scenario in &plan.scenarios {
        match scenario {
            Scenario::UpdateLong | Scenario::UpdateShort if paired => {
                if order.iter().any(|(s, _)| *s == Scenario::UpdateLong) {
                    continue;
                }
                for level in levels.clone() {
                    order.push((Scenario::UpdateLong, level));
                    order.push((Scenario::UpdateShort, level));
                }
            }
            Scenario::Dispatch => {}
            _ => order.extend(levels.clone().map(|level| (scenario, level))),
        }
    }
    order
}

/// The end-of-run verdict: the log and the read model agree, no call failed with an
/// unexpected code, every write appended exactly one event, and every send of `dispatch` had
/// its message accepted exactly once.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub agreement: Agreement,
    pub unexpected_errors: u64,
    pub runs_not_adding_up: Vec<String>,
    pub dispatch_problems: Vec<String>,
    /// Servers that did not finish their scenarios or did not stop cleanly (filled in by the
    /// whole benchmark, which starts them).
    pub server_problems: Vec<String>,
}

impl Verdict {
    /// The verdicts of several servers as one: everything each found, together.
    pub fn combined(verdicts: &[Verdict]) -> Verdict {
        Verdict {
            agreement: verdicts
                .iter()
                .fold(Agreement::default(), |all, v| all.plus(&v.agreement)),
            unexpected_errors: verdicts.iter().map(|v| v.unexpected_errors).sum(),
            runs_not_adding_up: verdicts
                .iter()
                .flat_map(|v| v.runs_not_adding_up.iter().cloned())
                .collect(),
            dispatch_problems: verdicts
                .iter()
                .flat_map(|v| v.dispatch_problems.iter().cloned())
                .collect(),
            server_problems: verdicts
                .iter()
                .flat_map(|v| v.server_problems.iter().cloned())
                .collect(),
        }
    }

    pub fn passed(&self) -> bool {
        self.agreement.holds()
            && self.unexpected_errors == 0
            && self.runs_not_adding_up.is_empty()
            && self.dispatch_problems.is_empty()
            && self.server_problems.is_empty()
    }
}

pub async fn verdict(target: &Target, report: &ServiceReport) -> anyhow::Result<Verdict> {
    Ok(Verdict {
        agreement: verify::check(&target.db).await?,
        unexpected_errors: report.unexpected_errors(),
        runs_not_adding_up: report
            .writes_not_adding_up()
            .iter()
            .map(|r| {
                let (events, ok) = r.events_appended.unwrap_or_default();
                format!(
                    "{} at C={}: {ok} successful calls appended {events} events",
                    r.scenario, r.concurrency
                )
            })
            .collect(),
        dispatch_problems: report
            .dispatch
            .as_ref()
            .map(DispatchReport::problems)
            .unwrap_or_default(),
        server_problems: Vec::new(),
    })
}
