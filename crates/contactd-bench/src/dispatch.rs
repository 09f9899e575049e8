//! The dispatch benchmark: `SendEmailVerificationForMessageContact` at steady open-loop rates,
//! and for each send the time from its answer, as the client sees it, to the SMTP receiver's
//! acceptance of its message (the 250 to the DATA). Between the two lie the commit, the
//! `verification_outbox` projection (after commit, in its own transaction), the dispatcher's
//! claim with a lease, the composition and the SMTP conversation.
//!
//! Each send goes to a contact of its own, seeded with a unique address (`b<n>@bench.example`),
//! so that the envelope's recipient names the send; every instant is a `std::time::Instant` of
//! this one process (the generator and the receiver), so that both ends are on one clock.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use contactd_grpc::proto::SendEmailVerificationForMessageContactRequest;
use tokio::task::JoinSet;

use crate::client::{Account, ContactRef, Fleet, add_request, letters_name};
use crate::dbstats;
use crate::load::Target;
use crate::procfs::{CpuSnapshot, CpuSplit, Memory};
use crate::seed::{DISPATCH_FAMILY, parallel};
use crate::smtp::{Acceptance, SmtpReceiver};
use crate::stats::Latencies;

/// Contacts per seeded account: the server's default quota.
const CONTACTS_PER_ACCOUNT: usize = 20;
/// How often the drain looks at the receiver.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// What the dispatch benchmark runs, and its rule for a rate that is kept up with.
#[derive(Debug, Clone)]
pub struct DispatchPlan {
    /// Offered sends per second, one run each, in order.
    pub rates: Vec<u32>,
    pub warmup: Duration,
    pub duration: Duration,
    /// After a run's last send, how long the receiver may see no new message of the run
    /// before the messages still awaited count as lost (a backlog that still drains is
    /// waited for, however long it takes).
    pub drain: Duration,
    /// A rate is kept up with when at least this share of the offered sends are accepted
    /// during the measured window…
    pub min_accepted_share: f64,
    /// …the p99 of the window's sends (a send never accepted ranking last) is below this…
    pub max_p99: Duration,
    /// …and no send failed. Checkpoint and idle between runs, as the closed-loop runs do.
    pub settle: bool,
}

impl DispatchPlan {
    /// Sends (so contacts) one run at `rate` makes: warm-up and window.
    pub fn sends_at(&self, rate: u32) -> usize {
        (f64::from(rate) * (self.warmup + self.duration).as_secs_f64()).ceil() as usize
    }

    pub fn contacts_needed(&self) -> usize {
        self.rates.iter().map(|&rate| self.sends_at(rate)).sum()
    }

    /// The rule, in words, for the report.
    pub fn rule(&self) -> String {
        format!(
            "at least {:.0}% of the offered sends accepted by the SMTP receiver within the \
             measured window, the p99 of the window's sends below {} ms (a send whose message \
             never came ranks above every other), and no send failed",
            self.min_accepted_share * 100.0,
            self.max_p99.as_millis(),
        )
    }
}

/// A seeded contact and the address that identifies its message.
#[derive(Debug, Clone)]
pub struct BenchContact {
    pub contact: ContactRef,
    pub email_address: String,
}

/// What one rate's run measured.
#[derive(Debug, Clone)]
pub struct RateReport {
    pub offered_rate: u32,
    pub measured: Duration,
    /// Sends of the whole run (warm-up included) and of the window (scheduled inside it).
    pub sends: usize,
    pub window_sends: usize,
    /// Sends of the window answered OK.
    pub window_ok: usize,
    /// Failed sends of the whole run by `gRPC code / x-acs-error-code`.
    pub errors: BTreeMap<String, u64>,
    /// Of the window's sends: from the call's start to its answer.
    pub rpc_latencies: Latencies,
    /// Of the window's sends answered OK and accepted: from the answer to the acceptance…
    pub latencies: Latencies,
    /// …in parts: from the answer to the receiver's reading of `MAIL` (the projection, the
    /// dispatcher's wake-up and claim, lettre's pool and `NOOP`); from `MAIL` to the 250
    /// (the SMTP conversation); and of that, from `DATA` to the 250 (the body).
    pub to_mail: Latencies,
    pub conversation: Latencies,
    pub body: Latencies,
    /// Messages accepted by the receiver during the window (of any send of the run).
    pub accepted_in_window: usize,
    /// Sends of the run answered OK whose message never came (see [`DispatchPlan::drain`]).
    pub lost: usize,
    /// Acceptances that came before the client saw its send's answer (counted as 0).
    pub before_answer: usize,
    /// Messages accepted twice or more for one send, and recipients of no send of the run.
    pub duplicates: usize,
    pub strangers: usize,
    /// How late the generator started a call after its scheduled instant: p99 and max.
    pub issue_lag_p99: Duration,
    pub issue_lag_max: Duration,
    /// From the window's end until the last message of the run was accepted.
    pub drained_in: Duration,
    pub cpu: CpuSplit,
    /// Server memory after the run (peak since the server started), when it is a child.
    pub server_memory: Option<Memory>,
}

impl RateReport {
    pub fn accepted_per_second(&self) -> f64 {
        self.accepted_in_window as f64 / self.measured.as_secs_f64().max(1e-9)
    }

    /// The accepted messages of the window against the offered rate.
    pub fn accepted_share(&self) -> f64 {
        self.accepted_per_second() / f64::from(self.offered_rate.max(1))
    }

    /// The p99 of the window's sends, those failed or never accepted ranking last; `None`
    /// when the rank falls among those.
    pub fn p99(&self) -> Option<Duration> {
        self.latencies.percentile_of(99.0, self.window_sends)
    }

    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Whether the service kept up with this rate, by the plan's rule.
    pub fn kept_up(&self, plan: &DispatchPlan) -> bool {
        self.failed() == 0
            && self.accepted_share() >= plan.min_accepted_share
            && self.p99().is_some_and(|p99| p99 < plan.max_p99)
    }
}

/// What the dispatch benchmark measured.
#[derive(Debug, Clone)]
pub struct DispatchReport {
    pub plan: DispatchPlan,
    pub contacts: usize,
    pub seeding: Duration,
    pub runs: Vec<RateReport>,
    /// The receiver's connections opened and commands refused over every run.
    pub smtp_connections: u64,
    pub smtp_refused: u64,
}

impl DispatchReport {
    /// The highest offered rate kept up with, every lower one kept up with too.
    pub fn highest_sustained(&self) -> Option<u32> {
        let mut runs: Vec<&RateReport> = self.runs.iter().collect();
        runs.sort_by_key(|r| r.offered_rate);
        runs.iter()
            .take_while(|r| r.kept_up(&self.plan))
            .last()
            .map(|r| r.offered_rate)
    }

    /// What went wrong, for the verdict: failed sends, lost, duplicated or unknown messages,
    /// refused SMTP commands. A rate not kept up with is a measurement, not a failure.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for run in &self.runs {
            let at = format!("dispatch at {}/s", run.offered_rate);
            if run.failed() > 0 {
                problems.push(format!("{at}: sends failed: {:?}", run.errors));
            }
            if run.lost > 0 {
                problems.push(format!(
                    "{at}: {} messages never accepted (none of the run's came for {} s)",
                    run.lost,
                    self.plan.drain.as_secs()
                ));
            }
            if run.duplicates > 0 {
                problems.push(format!("{at}: {} messages accepted twice", run.duplicates));
            }
            if run.strangers > 0 {
                problems.push(format!(
                    "{at}: {} messages to no send of the run",
                    run.strangers
                ));
            }
        }
        if self.smtp_refused > 0 {
            problems.push(format!(
                "the SMTP receiver refused {} commands",
                self.smtp_refused
            ));
        }
        problems
    }
}

/// Seeds `count` contacts over gRPC with addresses `b<n>@bench.example`; contact n is in
/// account `n mod accounts`, so that consecutive sends go to different accounts and do not
/// queue on one account's send counter.
pub async fn seed(fleet: &Fleet, count: usize) -> anyhow::Result<Vec<BenchContact>> {
    let accounts = count.div_ceil(CONTACTS_PER_ACCOUNT).max(1);
    let fleet = fleet.clone();
    parallel(32, count, move |n| {
        let fleet = fleet.clone();
        async move {
            let account = Account::numbered(DISPATCH_FAMILY, (n % accounts) as u64 + 1);
            let email_address = format!("b{n}@bench.example");
            let request = add_request(letters_name("Bench", n / accounts), email_address.clone());
            let response = fleet
                .client(n)
                .add_message_contact(account.request(request))
                .await
                .with_context(|| format!("seeding dispatch contact {n}"))?;
            let contact = response.into_inner().contact.context("the added contact")?;
            anyhow::Ok(BenchContact {
                contact: ContactRef {
                    account,
                    contact_id: contact.contact_id,
                },
                email_address,
            })
        }
    })
    .await
}

/// One send as the generator saw it.
#[derive(Debug)]
struct Sent {
    index: usize,
    scheduled: Instant,
    issued: Instant,
    /// The answer's instant, or the failure's `code / x-acs-error-code`.
    answered: Result<Instant, String>,
}

/// Seeds the contacts, then runs every rate of `plan`; `progress` sees each run as it ends.
pub async fn run(
    target: &Target,
    receiver: &SmtpReceiver,
    plan: &DispatchPlan,
    mut progress: impl FnMut(&RateReport),
) -> anyhow::Result<DispatchReport> {
    let started = Instant::now();
    let contacts = seed(&target.fleet, plan.contacts_needed()).await?;
    let seeding = started.elapsed();
    let connections_before = receiver.connections();
    let refused_before = receiver.refused();
    // Nothing of the seeding is sent, but a stray message must not count for the first run.
    let _ = receiver.take_accepted();
    let mut runs = Vec::new();
    let mut offset = 0;
    for &rate in &plan.rates {
        let count = plan.sends_at(rate);
        let ours = &contacts[offset..offset + count];
        offset += count;
        let report = run_rate(target, receiver, plan, rate, ours).await?;
        progress(&report);
        runs.push(report);
    }
    Ok(DispatchReport {
        plan: plan.clone(),
        contacts: contacts.len(),
        seeding,
        runs,
        smtp_connections: receiver.connections() - connections_before,
        smtp_refused: receiver.refused() - refused_before,
    })
}

/// One open-loop run: send n at `start + n / rate`, whatever the earlier sends are doing, one
/// contact per send; then wait for the answers and for the messages.
async fn run_rate(
    target: &Target,
    receiver: &SmtpReceiver,
    plan: &DispatchPlan,
    rate: u32,
    contacts: &[BenchContact],
) -> anyhow::Result<RateReport> {
    if plan.settle {
        target.db.checkpoint().await?;
    }
    let by_address: HashMap<String, usize> = contacts
        .iter()
        .enumerate()
        .map(|(n, c)| (c.email_address.to_ascii_lowercase(), n))
        .collect();
    let databases = target.db.postgres_databases();
    let databases = databases.as_deref();

    // A little lead, so that the first sends are not late for the spawning of the loop.
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut accepted: Vec<Option<Stamps>> = vec![None; contacts.len()];
    let mut tally = Tally::default();
    let mut calls = JoinSet::new();
    let mut cpu_at_measure_start = None;
    for (index, bench) in contacts.iter().enumerate() {
        let scheduled = start + interval.mul_f64(index as f64);
        if cpu_at_measure_start.is_none() && scheduled >= measure_from {
            tokio::time::sleep_until(measure_from.into()).await;
            cpu_at_measure_start = Some(CpuSnapshot::take(target.server_pid, databases));
        }
        tokio::time::sleep_until(scheduled.into()).await;
        let mut client = target.fleet.client(index);
        let request =
            bench
                .contact
                .account
                .request(SendEmailVerificationForMessageContactRequest {
                    contact_id: bench.contact.contact_id.clone(),
                    email_address: bench.email_address.clone(),
                    client_token: String::new(),
                });
        calls.spawn(async move {
            let issued = Instant::now();
            let answered = client
                .send_email_verification_for_message_contact(request)
                .await
                .map(|_| Instant::now())
                .map_err(|status| {
                    let code = status
                        .metadata()
                        .get("x-acs-error-code")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_owned();
                    format!("{:?} / {code}", status.code())
                });
            Sent {
                index,
                scheduled,
                issued,
                answered,
            }
        });
        // Match what has arrived as the run goes, so that the receiver's list stays short.
        if index % 64 == 0 {
            tally.take(receiver, &by_address, &mut accepted);
        }
    }
    let cpu_start =
        cpu_at_measure_start.unwrap_or_else(|| CpuSnapshot::take(target.server_pid, databases));
    tokio::time::sleep_until(end.into()).await;
    let cpu = CpuSnapshot::take(target.server_pid, databases).since(&cpu_start);

    let mut sent: Vec<Sent> = Vec::with_capacity(contacts.len());
    while let Some(call) = calls.join_next().await {
        sent.push(call.context("a send task panicked")?);
    }
    sent.sort_by_key(|s| s.index);
    let answered_ok: Vec<usize> = sent
        .iter()
        .filter(|s| s.answered.is_ok())
        .map(|s| s.index)
        .collect();
    let mut last_progress = Instant::now();
    let mut seen = 0;
    loop {
        tally.take(receiver, &by_address, &mut accepted);
        let now_seen = accepted.iter().flatten().count();
        if now_seen > seen {
            (seen, last_progress) = (now_seen, Instant::now());
        }
        let waiting = answered_ok.iter().any(|&i| accepted[i].is_none());
        if !waiting || last_progress.elapsed() >= plan.drain {
            break;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    let last_acceptance = accepted.iter().flatten().map(|s| s.at).max();
    if plan.settle {
        // Let the dispatcher record its last outcomes, and PostgreSQL publish its statistics,
        // before the next run.
        tokio::time::sleep(dbstats::SETTLE).await;
    }

    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut rpc_latencies = Vec::new();
    let mut latencies = Vec::new();
    let (mut to_mail, mut conversation, mut body) = (Vec::new(), Vec::new(), Vec::new());
    let mut issue_lags = Vec::with_capacity(sent.len());
    let (mut window_sends, mut window_ok, mut lost, mut before_answer) = (0, 0, 0, 0);
    for send in &sent {
        issue_lags.push(
            send.issued
                .saturating_duration_since(send.scheduled)
                .as_nanos() as u64,
        );
        let in_window = send.scheduled >= measure_from && send.scheduled < end;
        window_sends += usize::from(in_window);
        let answered = match &send.answered {
            Ok(at) => *at,
            Err(key) => {
                *errors.entry(key.clone()).or_default() += 1;
                continue;
            }
        };
        if in_window {
            window_ok += 1;
            rpc_latencies.push(answered.duration_since(send.issued).as_nanos() as u64);
        }
        let Some(stamps) = accepted[send.index] else {
            lost += 1;
            continue;
        };
        if stamps.at < answered {
            before_answer += 1;
        }
        if in_window {
            let nanos = |later: Instant, earlier: Instant| {
                later.saturating_duration_since(earlier).as_nanos() as u64
            };
            latencies.push(nanos(stamps.at, answered));
            to_mail.push(nanos(stamps.mail_at, answered));
            conversation.push(nanos(stamps.at, stamps.mail_at));
            body.push(nanos(stamps.at, stamps.data_at));
        }
    }
    let accepted_in_window = accepted
        .iter()
        .flatten()
        .filter(|s| s.at >= measure_from && s.at < end)
        .count();
    let issue_lags = Latencies::new(issue_lags);
    Ok(RateReport {
        offered_rate: rate,
        measured: plan.duration,
        sends: sent.len(),
        window_sends,
        window_ok,
        errors,
        rpc_latencies: Latencies::new(rpc_latencies),
        latencies: Latencies::new(latencies),
        to_mail: Latencies::new(to_mail),
        conversation: Latencies::new(conversation),
        body: Latencies::new(body),
        accepted_in_window,
        lost,
        before_answer,
        duplicates: tally.duplicates,
        strangers: tally.strangers,
        issue_lag_p99: issue_lags.percentile(99.0),
        issue_lag_max: issue_lags.max(),
        drained_in: last_acceptance.map_or(Duration::ZERO, |at| at.saturating_duration_since(end)),
        cpu,
        server_memory: target.server_pid.and_then(Memory::of),
    })
}

/// The receiver's instants for one message.
#[derive(Debug, Clone, Copy)]
struct Stamps {
    at: Instant,
    mail_at: Instant,
    data_at: Instant,
}

/// The receiver's acceptances matched to the run's sends as they are taken.
#[derive(Debug, Default)]
struct Tally {
    duplicates: usize,
    strangers: usize,
}

impl Tally {
    fn take(
        &mut self,
        receiver: &SmtpReceiver,
        by_address: &HashMap<String, usize>,
        accepted: &mut [Option<Stamps>],
    ) {
        for acceptance in receiver.take_accepted() {
            let Acceptance {
                at,
                mail_at,
                data_at,
                ..
            } = acceptance;
            let stamps = Stamps {
                at,
                mail_at,
                data_at,
            };
            for recipient in acceptance.recipients {
                match by_address.get(&recipient.to_ascii_lowercase()) {
                    Some(&n) if accepted[n].is_none() => accepted[n] = Some(stamps),
                    Some(_) => self.duplicates += 1,
                    None => self.strangers += 1,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> DispatchPlan {
        DispatchPlan {
            rates: vec![20, 50],
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            drain: Duration::from_secs(60),
            min_accepted_share: 0.95,
            max_p99: Duration::from_secs(2),
            settle: false,
        }
    }

    fn report(rate: u32, accepted_in_window: usize, latencies_ms: &[u64]) -> RateReport {
        RateReport {
            offered_rate: rate,
            measured: Duration::from_secs(10),
            sends: rate as usize * 12,
            window_sends: rate as usize * 10,
            window_ok: rate as usize * 10,
            errors: BTreeMap::new(),
            rpc_latencies: Latencies::default(),
            latencies: Latencies::new(latencies_ms.iter().map(|ms| ms * 1_000_000).collect()),
            to_mail: Latencies::default(),
            conversation: Latencies::default(),
            body: Latencies::default(),
            accepted_in_window,
            lost: 0,
            before_answer: 0,
            duplicates: 0,
            strangers: 0,
            issue_lag_p99: Duration::ZERO,
            issue_lag_max: Duration::ZERO,
            drained_in: Duration::ZERO,
            cpu: CpuSplit::default(),
            server_memory: None,
        }
    }

    #[test]
    fn a_run_needs_a_contact_per_send() {
        let plan = plan();
        assert_eq!(plan.sends_at(20), 240);
        assert_eq!(plan.contacts_needed(), 240 + 600);
    }

    #[test]
    fn the_rule_wants_the_rate_accepted_in_time_and_nothing_failed() {
        let plan = plan();
        let fast = vec![50; 200];
        assert!(report(20, 200, &fast).kept_up(&plan));
        // 94% of the offered rate accepted within the window.
        assert!(!report(20, 188, &fast).kept_up(&plan));
        // More than 1% of the window's sends slower than 2 s.
        let mut slow = vec![50; 197];
        slow.extend([2500, 2500, 2500]);
        assert!(!report(20, 200, &slow).kept_up(&plan));
        // Three sends never accepted rank last: the p99 is among them.
        assert!(!report(20, 200, &fast[..197]).kept_up(&plan));
        let mut failed = report(20, 200, &fast);
        failed.errors.insert("Internal / -".into(), 1);
        assert!(!failed.kept_up(&plan));
    }

    #[test]
    fn the_highest_sustained_rate_has_every_lower_one_kept_up_with() {
        let plan = plan();
        let fast = vec![50; 1000];
        let mut dispatch = DispatchReport {
            plan: plan.clone(),
            contacts: 0,
            seeding: Duration::ZERO,
            runs: vec![report(20, 200, &fast[..200]), report(50, 500, &fast[..500])],
            smtp_connections: 0,
            smtp_refused: 0,
        };
        assert_eq!(dispatch.highest_sustained(), Some(50));
        dispatch.runs[0].accepted_in_window = 100;
        assert_eq!(dispatch.highest_sustained(), None);
        assert!(dispatch.problems().is_empty());
        dispatch.runs[1].lost = 2;
        assert_eq!(dispatch.problems().len(), 1);
    }
}
