//! The lifecycle jobs that the `member_contacts` projection records: claimed by the workers of
//! every process with a lease that commits at once (so nothing is published inside a
//! transaction), settled one by one. A member's messages about one contact are claimed in the
//! order they were recorded, one at a time, so that its notification center sees them in order.

use std::time::Duration;

use chrono::{DateTime, Utc};
use contactd_app::{DeletionProgress, JobOutcome, LifecycleJob, StoreError};
use contactd_domain::{AccountId, FailReason, MemberAccountId};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::store_error;
use contactd_store_core::events::message_types;
use contactd_store_core::jobs::StoredJob;

#[derive(sqlx::FromRow)]
struct JobRow {
    job_id: String,
    account_id: String,
    kind: String,
    contact_id: Option<String>,
    target: Option<String>,
    subject: Option<String>,
    message_id: Option<String>,
    payload: Option<serde_json::Value>,
    message_types: Option<Vec<String>>,
    deletion_id: Option<Uuid>,
    causation_id: String,
    correlation_id: String,
    attempts: i32,
}

impl From<JobRow> for StoredJob {
    fn from(row: JobRow) -> Self {
        Self {
            job_id: row.job_id,
            account_id: row.account_id,
            kind: row.kind,
            contact_id: row.contact_id,
            target: row.target,
            subject: row.subject,
            message_id: row.message_id,
            payload: row.payload,
            message_types: row.message_types,
            deletion_id: row.deletion_id,
            causation_id: row.causation_id,
            correlation_id: row.correlation_id,
            attempts: i64::from(row.attempts),
        }
    }
}

/// Leases due jobs to `owner`. A publish waits while an earlier one for the same member and
/// contact is pending, so that a member's notification center sees a contact's messages in
/// order. A contact's messages not yet sent when an asynchronous delete of it began are
/// dropped first: its removal supersedes them, and must not wait behind them (nor be
/// overtaken by them later).
pub(crate) async fn claim_jobs(
    pool: &PgPool,
    owner: &str,
    lease: Duration,
    limit: u32,
) -> Result<Vec<LifecycleJob>, StoreError> {
    sqlx::query(
        "DELETE FROM lifecycle_jobs j \
         WHERE j.kind = 'publish' AND j.deletion_id IS NULL AND j.state = 'pending' \
           AND (j.leased_until IS NULL OR j.leased_until <= now()) \
           AND EXISTS (SELECT 1 FROM lifecycle_jobs d \
               WHERE d.deletion_id IS NOT NULL AND d.contact_id = j.contact_id \
                 AND d.account_id = j.account_id AND d.recorded > j.recorded)",
    )
    .execute(pool)
    .await
    .map_err(|e| store_error("dropping superseded lifecycle jobs failed", e))?;
    // The head of each queue (a member's messages about a contact; any other job alone), in
    // one sort of the pending jobs rather than a look back from each. The lease is checked
    // again on the row itself: a claim that waited for another's lock then finds it leased.
    let rows: Vec<JobRow> = sqlx::query_as(
        "UPDATE lifecycle_jobs AS j SET lease_owner = $1, \
             leased_until = now() + make_interval(secs => $2), attempts = j.attempts + 1 \
         FROM (SELECT job_id FROM ( \
                   SELECT DISTINCT ON (coalesce(subject, job_id), coalesce(contact_id, '')) \
                          job_id, recorded, next_attempt_at, leased_until \
                   FROM lifecycle_jobs WHERE state = 'pending' \
                   ORDER BY coalesce(subject, job_id), coalesce(contact_id, ''), recorded) AS heads \
               WHERE next_attempt_at <= now() AND (leased_until IS NULL OR leased_until <= now()) \
               ORDER BY recorded LIMIT $3) AS due \
         WHERE j.job_id = due.job_id AND j.state = 'pending' \
           AND (j.leased_until IS NULL OR j.leased_until <= now()) \
         RETURNING j.job_id, j.account_id, j.kind, j.contact_id, j.target, j.subject, j.message_id, \
                   j.payload, j.message_types, j.deletion_id, j.causation_id, j.correlation_id, j.attempts",
    )
    .bind(owner)
    .bind(lease.as_secs_f64())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(|e| store_error("claiming lifecycle jobs failed", e))?;
    rows.into_iter()
        .map(|row| StoredJob::from(row).into_job())
        .collect()
}

/// Settles an attempt while `owner` holds the lease. A removal of a delete that settles makes
/// the job that ends the delete due; the end of a delete takes its removals with it.
pub(crate) async fn settle_job(
    pool: &PgPool,
    owner: &str,
    job: &LifecycleJob,
    outcome: JobOutcome,
) -> Result<bool, StoreError> {
    let (state, retry_at, reason) = match &outcome {
        JobOutcome::Done => (None, None, None),
        JobOutcome::Retry { at, reason } => (Some("pending"), Some(*at), Some(reason.as_str())),
        JobOutcome::Failed { reason } => (Some("failed"), None, Some(reason.as_str())),
    };
    let settled: i64 = sqlx::query_scalar(
        "WITH done AS ( \
             DELETE FROM lifecycle_jobs WHERE job_id = $1 AND lease_owner = $2 AND $3::text IS NULL \
             RETURNING kind, deletion_id \
         ), kept AS ( \
             UPDATE lifecycle_jobs SET state = $3::text, next_attempt_at = coalesce($4, next_attempt_at), \
                 last_error = $5, lease_owner = NULL, leased_until = NULL \
             WHERE job_id = $1 AND lease_owner = $2 AND $3::text IS NOT NULL \
             RETURNING kind, deletion_id, state \
         ), woken AS ( \
             UPDATE lifecycle_jobs f SET next_attempt_at = now() \
             WHERE f.kind = 'finish_deletion' AND f.deletion_id IN ( \
                 SELECT deletion_id FROM done WHERE kind = 'publish' \
                 UNION SELECT deletion_id FROM kept WHERE kind = 'publish' AND state = 'failed') \
         ), cleared AS ( \
             DELETE FROM lifecycle_jobs r \
             WHERE r.job_id <> $1 \
               AND r.deletion_id IN (SELECT deletion_id FROM done WHERE kind = 'finish_deletion') \
         ) \
         SELECT (SELECT count(*) FROM done) + (SELECT count(*) FROM kept)",
    )
    .bind(&job.job_id)
    .bind(owner)
    .bind(state)
    .bind(retry_at)
    .bind(reason)
    .fetch_one(pool)
    .await
    .map_err(|e| store_error("settling a lifecycle job failed", e))?;
    Ok(settled == 1)
}

/// How an asynchronous delete's removals stand.
pub(crate) async fn deletion_progress(
    pool: &PgPool,
    account_id: &AccountId,
    deletion_id: Uuid,
) -> Result<DeletionProgress, StoreError> {
    let rows: Vec<(String, Option<String>, Option<Vec<String>>)> = sqlx::query_as(
        "SELECT state, target, message_types FROM lifecycle_jobs \
         WHERE deletion_id = $1 AND account_id = $2 AND kind = 'publish' ORDER BY target",
    )
    .bind(deletion_id)
    .bind(account_id.as_str())
    .fetch_all(pool)
    .await
    .map_err(|e| store_error("reading a delete's removals failed", e))?;
    let mut progress = DeletionProgress::default();
    for (state, target, types) in rows {
        if state == "pending" {
            progress.pending += 1;
            continue;
        }
        let corrupt = || StoreError::internal("a failed removal is unreadable", None);
        progress.failed.push(FailReason {
            account_id: target
                .as_deref()
                .and_then(|t| MemberAccountId::parse(t).ok())
                .ok_or_else(corrupt)?,
            message_types: message_types(types.as_deref().unwrap_or_default())
                .map_err(|_| corrupt())?,
        });
    }
    Ok(progress)
}

/// When the next pending job can be claimed.
pub(crate) async fn next_job_due(pool: &PgPool) -> Result<Option<DateTime<Utc>>, StoreError> {
    sqlx::query_scalar(
        "SELECT min(GREATEST(next_attempt_at, coalesce(leased_until, next_attempt_at))) \
         FROM lifecycle_jobs WHERE state = 'pending'",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| store_error("reading the lifecycle jobs failed", e))
}
