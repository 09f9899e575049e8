//! The scenarios and the runner: C tasks, each looping one call at a time, so C calls are in
//! flight; a warm-up, then a fixed-time measurement of every call that starts inside it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::ValueEnum;
use contactd_grpc::proto::{
    AssociateMembersRequest, DisassociateMembersRequest, GetMessageContactRequest,
    ListMessageContactsRequest,
};
use tokio::task::JoinSet;
use tonic::Status;

use crate::client::{Account, Client, ContactRef, Fleet, add_request, letters_name};
use crate::db::Db;
use crate::dbstats::{self, DbCost};
use crate::procfs::{CpuSnapshot, CpuSplit, Memory};
use crate::seed::{
    self, ADDED_FAMILY, DIRECTORY_PAGE_SIZE, Directories, Seeded, fresh_email_update,
};
use crate::smtp::SmtpReceiver;
use crate::stats::{Latencies, Rng};

/// What the calls of a run do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Scenario {
    /// `UpdateMessageContact` on a random seeded contact; each call a new email address, so
    /// each appends exactly one event.
    Update,
    /// `AddMessageContact` on fresh accounts (never more than the quota of 20 per account).
    Add,
    /// `GetMessageContact` of a random seeded contact.
    Get,
    /// `ListMessageContacts` of a random seeded account (page of 10).
    List,
    /// `UpdateMessageContact`, every call on the one contact whose stream already holds the
    /// long history (10,000 events).
    UpdateLong,
    /// The same on a contact with a short history (10 events at the start of the run): the
    /// comparison for `update-long`.
    UpdateShort,
    /// `ListMessageContacts(member=…)` of one member account four folders deep in a directory
    /// of 1,000 members (`--directory-members`), a page of 20: the contacts that apply to it,
    /// bound to it, to a folder above it or to the root (read from the `member_contacts`
    /// projection). Every answer's count is checked.
    ListMember,
    /// `AssociateMembers` and `DisassociateMembers` by turns, one target a call (a folder of
    /// two members, or a member at the root), each task on an account and contacts of its
    /// own; each call binds or unbinds one target, so each appends exactly one event.
    Associate,
    /// `SendEmailVerificationForMessageContact` at steady open-loop rates (`--dispatch-rates`,
    /// not `--concurrency`), each send's message followed to the SMTP receiver
    /// (`dispatch.rs`); it runs after every closed-loop scenario.
    Dispatch,
}

impl Scenario {
    pub const ALL: [Scenario; 9] = [
        Scenario::Update,
        Scenario::Add,
        Scenario::Get,
        Scenario::List,
        Scenario::UpdateLong,
        Scenario::UpdateShort,
        Scenario::ListMember,
        Scenario::Associate,
        Scenario::Dispatch,
    ];

    /// The scenarios of C tasks with one call in flight each, run by [`run`].
    pub const CLOSED_LOOP: [Scenario; 8] = [
        Scenario::Update,
        Scenario::Add,
        Scenario::Get,
        Scenario::List,
        Scenario::UpdateLong,
        Scenario::UpdateShort,
        Scenario::ListMember,
        Scenario::Associate,
    ];

    pub fn is_closed_loop(self) -> bool {
        Self::CLOSED_LOOP.contains(&self)
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Update => "update",
            Scenario::Add => "add",
            Scenario::Get => "get",
            Scenario::List => "list",
            Scenario::UpdateLong => "update-long",
            Scenario::UpdateShort => "update-short",
            Scenario::ListMember => "list-member",
            Scenario::Associate => "associate",
            Scenario::Dispatch => "dispatch",
        }
    }

    pub fn rpc(self) -> &'static str {
        match self {
            Scenario::Update | Scenario::UpdateLong | Scenario::UpdateShort => {
                "UpdateMessageContact"
            }
            Scenario::Add => "AddMessageContact",
            Scenario::Get => "GetMessageContact",
            Scenario::List => "ListMessageContacts",
            Scenario::ListMember => "ListMessageContacts, member=…",
            Scenario::Associate => "AssociateMembers / DisassociateMembers",
            Scenario::Dispatch => "SendEmailVerificationForMessageContact",
        }
    }

    /// Whether each successful call appends exactly one event.
    fn appends_one_event(self) -> bool {
        !matches!(self, Scenario::Get | Scenario::List | Scenario::ListMember)
    }

    /// Errors the contract allows for this call under load (anything else is a failure):
    /// only the conflict answer of a racing update.
    fn is_expected(self, status: &Status, error_code: &str) -> bool {
        matches!(
            self,
            Scenario::Update | Scenario::UpdateLong | Scenario::UpdateShort
        ) && status.code() == tonic::Code::Aborted
            && error_code == "ConcurrentCallNotSupported"
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Accounts per block of the add scenario: consecutive adds go to different accounts, so that
/// they do not queue on one account's quota row; each account gets at most `ADDS_PER_ACCOUNT`.
const ADD_BLOCK_ACCOUNTS: u64 = 512;
const ADDS_PER_ACCOUNT: u64 = 20;

/// The state the runs share: the seeded data and the counters that keep every call fresh.
#[derive(Debug)]
pub struct Workload {
    pub seeded: Seeded,
    email_serial: AtomicU64,
    add_serial: AtomicU64,
    /// The directories of `list-member` and `associate`, seeded before the first run that
    /// needs them.
    directories: OnceLock<SeededDirectories>,
}

#[derive(Debug)]
struct SeededDirectories {
    seeded: Directories,
    /// Per `associate` slot, its successful calls so far: where it stands in its turns
    /// ([`seed::BindingSlot::call`]). Only the slot's task of the current run calls on it.
    binding_calls: Vec<AtomicU64>,
}

impl Workload {
    pub fn new(seeded: Seeded) -> Self {
        Self {
            seeded,
            email_serial: AtomicU64::new(0),
            add_serial: AtomicU64::new(0),
            directories: OnceLock::new(),
        }
    }

    /// The seeded directories, once [`Workload::set_directories`] has been given them.
    pub fn directories(&self) -> Option<&Directories> {
        self.directories.get().map(|d| &d.seeded)
    }

    /// Gives the runs the seeded directories; they are seeded once.
    pub fn set_directories(&self, seeded: Directories) -> anyhow::Result<()> {
        let binding_calls = seeded.bindings.iter().map(|_| AtomicU64::new(0)).collect();
        self.directories
            .set(SeededDirectories {
                seeded,
                binding_calls,
            })
            .map_err(|_| anyhow::anyhow!("the directories were seeded already"))
    }
}

/// One run's settings.
#[derive(Debug, Clone, Copy)]
pub struct RunSettings {
    pub scenario: Scenario,
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Which short-history contact `update-short` uses (one per run, so each starts short).
    pub short_stream: usize,
    pub seed: u64,
    /// Checkpoint before the run and leave the database idle for [`dbstats::SETTLE`] after it,
    /// so that runs do not pay for each other and the statistics are complete. Off for a
    /// quick smoke run (whose database figures are then approximate).
    pub settle: bool,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub scenario: Scenario,
    pub concurrency: usize,
    pub measured: Duration,
    /// The warm-up before it (its calls count in the events appended, not in the rate).
    pub warmup: Duration,
    /// Successful calls that started within the measured time.
    pub ok: u64,
    pub latencies: Latencies,
    /// Failed calls of the whole run (warm-up included) by `gRPC code / x-acs-error-code`.
    pub errors: BTreeMap<String, u64>,
    pub unexpected_errors: u64,
    /// Server memory after the run (peak since the server started), when it is a child.
    pub server_memory: Option<Memory>,
    pub cpu: CpuSplit,
    /// For writes: events appended during the run (warm-up included) and successful calls;
    /// they are equal when every call appended exactly one event and none was lost.
    pub events_appended: Option<(i64, u64)>,
    /// Events in the stream of the contact a single-contact run updated, at its start.
    pub stream_events_at_start: Option<i64>,
    /// For `associate`: the lifecycle jobs recorded during the run (warm-up included).
    pub lifecycle_jobs: Option<i64>,
    /// For `associate`: how many events the `member_contacts` projection had still to read
    /// when the calls ended, and how long it then took to read them (`None`: more than the
    /// patience).
    pub projection_lag: Option<(i64, Option<Duration>)>,
    /// What the database did per call (warm-up included); `None` where the store keeps no
    /// statistics (SQLite).
    pub db: Option<DbCost>,
}

impl RunReport {
    pub fn calls_per_second(&self) -> f64 {
        self.ok as f64 / self.measured.as_secs_f64().max(1e-9)
    }

    /// Every write appended exactly one event.
    pub fn writes_add_up(&self) -> bool {
        self.events_appended
            .is_none_or(|(events, ok)| u64::try_from(events).is_ok_and(|e| e == ok))
    }
}

/// What one task saw.
#[derive(Debug, Default)]
struct TaskOutcome {
    latencies: Vec<u64>,
    ok_measured: u64,
    ok_total: u64,
    errors: BTreeMap<String, u64>,
    unexpected: u64,
}

/// The server as a runner sees it.
#[derive(Debug, Clone)]
pub struct Target {
    pub fleet: Fleet,
    /// The server's database, for the benchmark's own reads.
    pub db: Db,
    /// The server's pid when it runs as a child process (for its CPU and memory).
    pub server_pid: Option<u32>,
    /// The SMTP receiver the server sends its emails to (`--smtp-url`), for `dispatch`.
    pub smtp: Option<SmtpReceiver>,
}

/// Runs one scenario at one concurrency: warm-up, then the measured time.
pub async fn run(
    target: &Target,
    workload: &Arc<Workload>,
    settings: RunSettings,
) -> anyhow::Result<RunReport> {
    let scenario = settings.scenario;
    if !scenario.is_closed_loop() {
        anyhow::bail!("{scenario} is not a scenario of calls in flight; see dispatch.rs");
    }
    let single_contact = match scenario {
        Scenario::UpdateLong => Some(workload.seeded.long_stream.clone()),
        Scenario::UpdateShort => Some(
            workload
                .seeded
                .short_streams
                .get(settings.short_stream)
                .context("no short-history contact left for this run")?
                .clone(),
        ),
        _ => None,
    };
    match scenario {
        Scenario::ListMember => {
            // Once per run, the whole answer: exactly the contacts that apply to the member.
            let directory = workload
                .directories()
                .and_then(|d| d.directory.as_ref())
                .context("list-member needs the seeded directory")?;
            let listed =
                seed::list_member(&target.fleet, &directory.account, &directory.deep_member)
                    .await?;
            anyhow::ensure!(
                listed == directory.applying,
                "ListMessageContacts(member={}) lists {listed:?}, not the contacts that apply: {:?}",
                directory.deep_member,
                directory.applying
            );
        }
        Scenario::Associate => {
            let slots = workload.directories().map_or(0, |d| d.bindings.len());
            anyhow::ensure!(
                slots >= settings.concurrency,
                "associate at C={} needs as many seeded accounts, not {slots}",
                settings.concurrency,
            );
        }
        _ => {}
    }
    let stream_events_at_start = match &single_contact {
        Some(contact) => Some(target.db.count_events(Some(&contact.contact_id)).await?),
        None => None,
    };
    if settings.settle {
        // Start each run from a clean slate of dirty pages, so no run pays for another's.
        target.db.checkpoint().await?;
    }
    let events_before = if scenario.appends_one_event() {
        Some(target.db.count_events(None).await?)
    } else {
        None
    };
    let databases = target.db.postgres_databases();
    let db_before = target.db.stats().await?;
    let jobs_before = if scenario == Scenario::Associate {
        Some(target.db.lifecycle_jobs_recorded().await?)
    } else {
        None
    };

    let start = Instant::now();
    let measure_from = start + settings.warmup;
    let end = measure_from + settings.duration;
    let mut tasks = JoinSet::new();
    for task in 0..settings.concurrency {
        let client = target.fleet.client(task);
        let workload = workload.clone();
        let contact = single_contact.clone();
        let rng = Rng::new(settings.seed ^ ((task as u64 + 1) << 32) ^ scenario as u64);
        tasks.spawn(drive(
            client,
            workload,
            scenario,
            Assignment { task, contact },
            rng,
            measure_from,
            end,
        ));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_at_measure_start = CpuSnapshot::take(target.server_pid, databases.as_deref());
    tokio::time::sleep_until(end.into()).await;
    let cpu =
        CpuSnapshot::take(target.server_pid, databases.as_deref()).since(&cpu_at_measure_start);

    let mut all = TaskOutcome::default();
    let mut calls = 0;
    while let Some(task) = tasks.join_next().await {
        let outcome = task.context("a load task panicked")?;
        all.latencies.extend(outcome.latencies);
        all.ok_measured += outcome.ok_measured;
        all.ok_total += outcome.ok_total;
        all.unexpected += outcome.unexpected;
        calls += outcome.ok_total;
        for (key, n) in outcome.errors {
            calls += n;
            *all.errors.entry(key).or_default() += n;
        }
    }
    let mut projection_lag = None;
    if scenario == Scenario::Associate {
        // The projection of the bindings may fall behind the calls: how far, and how long it
        // takes to catch up (its work is part of the calls' cost, and must not fall on the
        // next run).
        let behind = target.db.projection_behind(seed::MEMBER_CONTACTS).await?;
        let caught_up =
            seed::wait_for_projection(&target.db, seed::MEMBER_CONTACTS, Duration::from_secs(900))
                .await?;
        projection_lag = Some((behind, caught_up));
        // Its bindings change no member's contacts, so they record no lifecycle job; should
        // one be recorded all the same, it is carried out before the next run.
        seed::wait_for_lifecycle_jobs(&target.db, Duration::from_secs(60)).await?;
    }
    let lifecycle_jobs = match jobs_before {
        Some(before) => Some(target.db.lifecycle_jobs_recorded().await? - before),
        None => None,
    };
    // The idle lets every PostgreSQL backend publish its counters; SQLite keeps none.
    if settings.settle && db_before.is_some() {
        tokio::time::sleep(dbstats::SETTLE).await;
    }
    let db = match db_before {
        Some(before) => target
            .db
            .stats()
            .await?
            .map(|after| after.per(&before, calls)),
        None => None,
    };
    let events_appended = match events_before {
        Some(before) => Some((target.db.count_events(None).await? - before, all.ok_total)),
        None => None,
    };
    Ok(RunReport {
        scenario,
        concurrency: settings.concurrency,
        measured: settings.duration,
        warmup: settings.warmup,
        ok: all.ok_measured,
        latencies: Latencies::new(all.latencies),
        errors: all.errors,
        unexpected_errors: all.unexpected,
        server_memory: target.server_pid.and_then(Memory::of),
        cpu,
        events_appended,
        stream_events_at_start,
        lifecycle_jobs,
        projection_lag,
        db,
    })
}

/// What one task calls on: its number (its `associate` slot), and the one contact of a
/// single-contact run.
#[derive(Debug, Clone)]
struct Assignment {
    task: usize,
    contact: Option<ContactRef>,
}

/// One task: one call at a time until `end`; calls that start at or after `measure_from`
/// are measured.
async fn drive(
    mut client: Client,
    workload: Arc<Workload>,
    scenario: Scenario,
    assignment: Assignment,
    mut rng: Rng,
    measure_from: Instant,
    end: Instant,
) -> TaskOutcome {
    let mut outcome = TaskOutcome {
        latencies: Vec::with_capacity(16 * 1024),
        ..TaskOutcome::default()
    };
    loop {
        let started = Instant::now();
        if started >= end {
            return outcome;
        }
        let result = call(&mut client, &workload, scenario, &assignment, &mut rng).await;
        let took = started.elapsed();
        let measured = started >= measure_from;
        match result {
            Ok(()) => {
                outcome.ok_total += 1;
                if measured {
                    outcome.ok_measured += 1;
                    outcome.latencies.push(took.as_nanos() as u64);
                }
            }
            Err(status) => {
                let error_code = status
                    .metadata()
                    .get("x-acs-error-code")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned();
                if !scenario.is_expected(&status, &error_code) {
                    outcome.unexpected += 1;
                }
                let key = format!("{:?} / {error_code}", status.code());
                *outcome.errors.entry(key).or_default() += 1;
            }
        }
    }
}

/// One call of `scenario`.
async fn call(
    client: &mut Client,
    workload: &Workload,
    scenario: Scenario,
    assignment: &Assignment,
    rng: &mut Rng,
) -> Result<(), Status> {
    let seeded = &workload.seeded;
    let contact = assignment.contact.as_ref();
    let random_contact = |rng: &mut Rng| &seeded.contacts[rng.below(seeded.contacts.len())];
    match scenario {
        Scenario::Update | Scenario::UpdateLong | Scenario::UpdateShort => {
            let contact = contact.unwrap_or_else(|| random_contact(rng));
            let serial = workload.email_serial.fetch_add(1, Ordering::Relaxed);
            client
                .update_message_contact(
                    contact.account.request(fresh_email_update(contact, serial)),
                )
                .await?;
        }
        Scenario::Add => {
            let n = workload.add_serial.fetch_add(1, Ordering::Relaxed);
            let block = n / (ADD_BLOCK_ACCOUNTS * ADDS_PER_ACCOUNT);
            let within = n % (ADD_BLOCK_ACCOUNTS * ADDS_PER_ACCOUNT);
            let account = Account::numbered(
                ADDED_FAMILY,
                block * ADD_BLOCK_ACCOUNTS + within % ADD_BLOCK_ACCOUNTS + 1,
            );
            let slot = (within / ADD_BLOCK_ACCOUNTS) as usize;
            let request = add_request(letters_name("Add", slot), format!("a{n}@bench.example"));
            client.add_message_contact(account.request(request)).await?;
        }
        Scenario::Get => {
            let contact = random_contact(rng);
            let request = GetMessageContactRequest {
                contact_id: contact.contact_id.clone(),
            };
            client
                .get_message_contact(contact.account.request(request))
                .await?;
        }
        Scenario::List => {
            let account = &seeded.accounts[rng.below(seeded.accounts.len())];
            let request = ListMessageContactsRequest {
                page_size: 10,
                ..Default::default()
            };
            client
                .list_message_contacts(account.request(request))
                .await?;
        }
        Scenario::ListMember => {
            let directory = workload
                .directories()
                .and_then(|d| d.directory.as_ref())
                .ok_or_else(|| Status::failed_precondition("no seeded directory"))?;
            let request = ListMessageContactsRequest {
                member: directory.deep_member.clone(),
                page_size: DIRECTORY_PAGE_SIZE,
                ..Default::default()
            };
            let page = client
                .list_message_contacts(directory.account.request(request))
                .await?
                .into_inner();
            let expected = directory.applying.len();
            if page.total_count != expected as i64 || page.contacts.len() != expected {
                // A wrong answer counts as a failed call, with an unexpected code.
                return Err(Status::data_loss(format!(
                    "listed {} of {} contacts, {expected} apply",
                    page.contacts.len(),
                    page.total_count
                )));
            }
        }
        Scenario::Associate => {
            let seeded = workload
                .directories
                .get()
                .ok_or_else(|| Status::failed_precondition("no seeded directories"))?;
            let (Some(slot), Some(done)) = (
                seeded.seeded.bindings.get(assignment.task),
                seeded.binding_calls.get(assignment.task),
            ) else {
                return Err(Status::failed_precondition(
                    "no associate slot for the task",
                ));
            };
            let n = done.load(Ordering::Relaxed);
            let (contact_id, target, bind) = slot.call(n);
            let answered = if bind {
                let request = AssociateMembersRequest {
                    contact_id: contact_id.to_owned(),
                    members: vec![target.to_owned()],
                    client_token: String::new(),
                };
                client
                    .associate_members(slot.account.request(request))
                    .await?
                    .into_inner()
                    .members
            } else {
                let request = DisassociateMembersRequest {
                    contact_id: contact_id.to_owned(),
                    members: vec![target.to_owned()],
                    client_token: String::new(),
                };
                client
                    .disassociate_members(slot.account.request(request))
                    .await?
                    .into_inner()
                    .members
            };
            done.store(n + 1, Ordering::Relaxed);
            if answered.len() != 1 || answered[0].member_id != target {
                return Err(Status::data_loss(format!(
                    "the answer names {answered:?}, not {target}"
                )));
            }
        }
        // `run` refuses it before any task starts.
        Scenario::Dispatch => {
            return Err(Status::failed_precondition(
                "dispatch is not a closed-loop scenario",
            ));
        }
    }
    Ok(())
}
