//! The lifecycle worker: carries out the jobs the member-contacts projection records (publish
//! an integration event, unbind a target the directory dropped, end an asynchronous delete).
//! Each process runs one; they share the jobs by claiming them with a lease committed before
//! the work, so that no database transaction is open while a message is published, and the
//! commands it issues name the causing event as their causation id.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use tokio::sync::watch;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::context::CallContext;
use crate::error::AppError;
use crate::leased::{self, LeasedWork};
use crate::port::{
    ContactStore, DirectoryStore, IntegrationPublisher, JobOutcome, LifecycleJob, LifecycleJobs,
    LifecycleTask, StoreError,
};
use crate::service::ContactService;

/// How the worker paces and bounds its work.
#[derive(Debug, Clone)]
pub struct LifecycleSettings {
    /// Names this process in the leases it takes.
    pub owner: String,
    /// How long a claimed job is this process's alone: longer than a publish may take.
    pub lease: Duration,
    /// Attempts at publishing one of an asynchronous delete's removals before the delete
    /// fails for its member. Other messages are tried until they are published.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles with each further one up to `retry_max`,
    /// jittered.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// The longest one publish may take before it counts as failed.
    pub publish_timeout: Duration,
    /// Jobs carried out at once.
    pub concurrency: usize,
    /// How often to look at the jobs when nothing woke the worker.
    pub poll_interval: Duration,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            owner: format!("pid {}", std::process::id()),
            lease: Duration::from_secs(60),
            max_attempts: 5,
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            publish_timeout: Duration::from_secs(5),
            concurrency: 8,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Carries out lifecycle jobs through the service (commands) and the publisher (NATS; none:
/// nothing is published and every publish counts as done).
#[derive(Debug)]
pub struct LifecycleWorker<S, P> {
    service: Arc<ContactService<S>>,
    publisher: Option<P>,
    settings: LifecycleSettings,
}

impl<S, P> LifecycleWorker<S, P>
where
    S: ContactStore + DirectoryStore + LifecycleJobs,
    P: IntegrationPublisher,
{
    pub fn new(
        service: Arc<ContactService<S>>,
        publisher: Option<P>,
        mut settings: LifecycleSettings,
    ) -> Self {
        settings.owner = format!("{} #{}", settings.owner, Uuid::new_v4().simple());
        Self {
            service,
            publisher,
            settings,
        }
    }

    /// Works until `shutdown` turns true, then lets the jobs in flight finish.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        leased::run(self, shutdown).await;
        info!("lifecycle worker stopped");
    }

    async fn attempt_job(self: Arc<Self>, job: LifecycleJob) {
        let outcome = match self.carry_out(&job).await {
            Ok(()) => JobOutcome::Done,
            Err(Failure::Retry(reason)) => self.retry_or_give_up(&job, reason),
            Err(Failure::Later) => JobOutcome::Retry {
                at: Utc::now() + to_delta(self.settings.poll_interval),
                reason: "waiting for the delete's removals".to_owned(),
            },
        };
        match self
            .service
            .store()
            .settle_job(&self.settings.owner, &job, outcome)
            .await
        {
            Ok(true) => {}
            Ok(false) => warn!(job_id = %job.job_id, "another worker took the job over"),
            // The lease runs out and the job is attempted again, by this process or another.
            Err(error) => warn!(job_id = %job.job_id, %error, "settling a lifecycle job failed"),
        }
    }

    fn retry_or_give_up(&self, job: &LifecycleJob, reason: String) -> JobOutcome {
        let part_of_delete = matches!(
            job.task,
            LifecycleTask::Publish {
                deletion_id: Some(_),
                ..
            }
        );
        if part_of_delete && job.attempt >= self.settings.max_attempts {
            warn!(job_id = %job.job_id, %reason, attempts = job.attempt, "a removal was given up");
            return JobOutcome::Failed {
                reason: format!("{reason}; {} attempts made", job.attempt),
            };
        }
        debug!(job_id = %job.job_id, %reason, attempt = job.attempt, "a lifecycle job failed; trying again");
        JobOutcome::Retry {
            at: Utc::now() + self.backoff(job.attempt),
            reason,
        }
    }

    async fn carry_out(&self, job: &LifecycleJob) -> Result<(), Failure> {
        let ctx = CallContext::reacting(
            job.account_id.clone(),
            job.correlation_id.clone(),
            job.causation_id.clone(),
        );
        match &job.task {
            LifecycleTask::Publish { message, .. } => {
                let Some(publisher) = &self.publisher else {
                    return Ok(());
                };
                match tokio::time::timeout(
                    self.settings.publish_timeout,
                    publisher.publish(message),
                )
                .await
                {
                    Ok(Ok(())) => {
                        if let Some(at) = crate::integration::occurred_at(&message.payload) {
                            let lag = (Utc::now() - at).to_std().unwrap_or_default();
                            self.service.recording().integration_published(lag);
                        }
                        debug!(subject = %message.subject, message_id = %message.message_id, "integration event published");
                        Ok(())
                    }
                    Ok(Err(error)) => Err(Failure::Retry(error.0)),
                    Err(_) => Err(Failure::Retry(format!(
                        "no acknowledgement within {} s",
                        self.settings.publish_timeout.as_secs()
                    ))),
                }
            }
            LifecycleTask::Unbind { contact_id, target } => self
                .service
                .unbind_removed(&ctx, contact_id, target)
                .await
                .map_err(command_failure),
            LifecycleTask::FinishDeletion {
                contact_id,
                deletion_id,
            } => {
                let progress = self
                    .service
                    .store()
                    .deletion_progress(&job.account_id, *deletion_id)
                    .await
                    .map_err(|e| Failure::Retry(e.to_string()))?;
                if progress.pending > 0 {
                    return Err(Failure::Later);
                }
                self.service
                    .finish_deletion(&ctx, contact_id, *deletion_id, progress.failed)
                    .await
                    .map_err(command_failure)
            }
        }
    }

    fn backoff(&self, attempt: u32) -> TimeDelta {
        let full = self
            .settings
            .retry_base
            .saturating_mul(2_u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.settings.retry_max);
        to_delta(full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0)))
    }
}

impl<S, P> LeasedWork for LifecycleWorker<S, P>
where
    S: ContactStore + DirectoryStore + LifecycleJobs,
    P: IntegrationPublisher,
{
    type Item = LifecycleJob;
    const WHAT: &'static str = "lifecycle jobs";

    fn concurrency(&self) -> usize {
        self.settings.concurrency
    }

    fn poll_interval(&self) -> Duration {
        self.settings.poll_interval
    }

    async fn claim(&self, limit: u32) -> Result<Vec<LifecycleJob>, StoreError> {
        let settings = &self.settings;
        self.service
            .store()
            .claim_jobs(&settings.owner, settings.lease, limit)
            .await
    }

    async fn attempt(self: Arc<Self>, job: LifecycleJob) {
        self.attempt_job(job).await
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.service.store().next_job_due().await
    }

    fn recorded(&self) -> watch::Receiver<u64> {
        self.service.store().recorded_jobs()
    }
}

/// Why an attempt did not finish its job.
enum Failure {
    /// It failed; try again after a back-off.
    Retry(String),
    /// It waits for other jobs; look again soon.
    Later,
}

fn command_failure(error: AppError) -> Failure {
    Failure::Retry(error.to_string())
}

fn to_delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}
