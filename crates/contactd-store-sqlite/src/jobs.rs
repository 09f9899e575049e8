//! The lifecycle jobs, as the lifecycle worker uses them: claimed with a lease that commits at
//! once (so nothing is published inside a transaction), settled one by one. A member's
//! messages about one contact are claimed in the order they were recorded, one at a time, so
//! that its notification center sees them in order. (Recording the jobs is the
//! `member_contacts` projection's.)

use std::time::Duration;

use chrono::{DateTime, Utc};
use contactd_app::{DeletionProgress, JobOutcome, LifecycleJob, StoreError};
use contactd_domain::{AccountId, FailReason, MemberAccountId};
use contactd_store_core::events::message_types;
use contactd_store_core::jobs::StoredJob;
use sqlx::SqlitePool;
use uuid::Uuid;

use crate::error::failed;
use crate::later;

#[derive(sqlx::FromRow)]
struct JobRow {
    recorded: i64,
    job_id: String,
    account_id: String,
    kind: String,
    contact_id: Option<String>,
    target: Option<String>,
    subject: Option<String>,
    message_id: Option<String>,
    payload: Option<String>,
    message_types: Option<String>,
    deletion_id: Option<Uuid>,
    causation_id: String,
    correlation_id: String,
    attempts: i64,
}

/// A job's message types: a JSON array of their names.
fn types_of(stored: Option<&str>) -> Option<contactd_domain::MessageTypes> {
    let names: Vec<String> = match stored {
        Some(json) => serde_json::from_str(json).ok()?,
        None => Vec::new(),
    };
    message_types(&names).ok()
}

impl JobRow {
    /// The row as every store reads a job back; its JSON columns parsed.
    fn into_stored(self) -> Result<StoredJob, StoreError> {
        let corrupt = |what: &str| {
            StoreError::internal(
                format!("lifecycle job {} has an unreadable {what}", self.job_id),
                None,
            )
        };
        let payload = self
            .payload
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|_| corrupt("payload"))?;
        let message_types = self
            .message_types
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|_| corrupt("message types"))?;
        Ok(StoredJob {
            job_id: self.job_id,
            account_id: self.account_id,
            kind: self.kind,
            contact_id: self.contact_id,
            target: self.target,
            subject: self.subject,
            message_id: self.message_id,
            payload,
            message_types,
            deletion_id: self.deletion_id,
            causation_id: self.causation_id,
            correlation_id: self.correlation_id,
            attempts: self.attempts,
        })
    }
}

/// Leases due jobs to `owner`. A publish waits while an earlier one for the same member and
/// contact is pending, so that a member's notification center sees a contact's messages in
/// order. A contact's messages not yet sent when an asynchronous delete of it began are
/// dropped first: its removal supersedes them, and must not wait behind them (nor be
/// overtaken by them later). Both in one transaction: one commit.
pub(crate) async fn claim_jobs(
    writes: &SqlitePool,
    owner: &str,
    lease: Duration,
    limit: u32,
) -> Result<Vec<LifecycleJob>, StoreError> {
    let failure = failed("claiming lifecycle jobs failed");
    let now = Utc::now();
    let mut tx = writes
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(&failure)?;
    sqlx::query(
        "DELETE FROM lifecycle_jobs AS j \
         WHERE j.kind = 'publish' AND j.deletion_id IS NULL AND j.state = 'pending' \
           AND (j.leased_until IS NULL OR j.leased_until <= ?1) \
           AND EXISTS (SELECT 1 FROM lifecycle_jobs d \
               WHERE d.deletion_id IS NOT NULL AND d.contact_id = j.contact_id \
                 AND d.account_id = j.account_id AND d.recorded > j.recorded)",
    )
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(failed("dropping superseded lifecycle jobs failed"))?;
    // The head of each queue (a member's messages about a contact; any other job alone), in
    // one sort of the pending jobs rather than a look back from each.
    let mut rows: Vec<JobRow> = sqlx::query_as(
        "UPDATE lifecycle_jobs SET lease_owner = ?1, leased_until = ?2, attempts = attempts + 1 \
         WHERE job_id IN (SELECT job_id FROM ( \
                   SELECT job_id, recorded, next_attempt_at, leased_until, \
                          row_number() OVER ( \
                              PARTITION BY coalesce(subject, job_id), coalesce(contact_id, '') \
                              ORDER BY recorded) AS place \
                   FROM lifecycle_jobs WHERE state = 'pending') \
               WHERE place = 1 AND next_attempt_at <= ?3 \
                 AND (leased_until IS NULL OR leased_until <= ?3) \
               ORDER BY recorded LIMIT ?4) \
         RETURNING recorded, job_id, account_id, kind, contact_id, target, subject, message_id, \
                   payload, message_types, deletion_id, causation_id, correlation_id, attempts",
    )
    .bind(owner)
    .bind(later(now, lease))
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await
    .map_err(&failure)?;
    tx.commit().await.map_err(&failure)?;
    // RETURNING keeps no order: hand the jobs out in the order they were recorded.
    rows.sort_by_key(|row| row.recorded);
    rows.into_iter()
        .map(|row| row.into_stored()?.into_job())
        .collect()
}

/// Settles an attempt while `owner` holds the lease. A removal of a delete that settles makes
/// the job that ends the delete due; the end of a delete takes its removals with it.
pub(crate) async fn settle_job(
    writes: &SqlitePool,
    owner: &str,
    job: &LifecycleJob,
    outcome: JobOutcome,
) -> Result<bool, StoreError> {
    let failure = failed("settling a lifecycle job failed");
    let now = Utc::now();
    let mut tx = writes
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(&failure)?;
    let kept = match &outcome {
        JobOutcome::Done => None,
        JobOutcome::Retry { at, reason } => Some(("pending", Some(*at), reason.as_str())),
        JobOutcome::Failed { reason } => Some(("failed", None, reason.as_str())),
    };
    let settled: Option<(String, Option<Uuid>, String)> = match kept {
        None => {
            sqlx::query_as(
                "DELETE FROM lifecycle_jobs WHERE job_id = ?1 AND lease_owner = ?2 \
                 RETURNING kind, deletion_id, 'done'",
            )
            .bind(&job.job_id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await
        }
        Some((state, retry_at, reason)) => {
            sqlx::query_as(
                "UPDATE lifecycle_jobs SET state = ?3, \
                     next_attempt_at = coalesce(?4, next_attempt_at), last_error = ?5, \
                     lease_owner = NULL, leased_until = NULL \
                 WHERE job_id = ?1 AND lease_owner = ?2 \
                 RETURNING kind, deletion_id, state",
            )
            .bind(&job.job_id)
            .bind(owner)
            .bind(state)
            .bind(retry_at)
            .bind(reason)
            .fetch_optional(&mut *tx)
            .await
        }
    }
    .map_err(&failure)?;
    let Some((kind, deletion_id, state)) = settled else {
        return Ok(false);
    };
    if let Some(deletion_id) = deletion_id {
        if kind == "publish" && (state == "done" || state == "failed") {
            sqlx::query(
                "UPDATE lifecycle_jobs SET next_attempt_at = ?1 \
                 WHERE kind = 'finish_deletion' AND deletion_id = ?2",
            )
            .bind(now)
            .bind(deletion_id)
            .execute(&mut *tx)
            .await
            .map_err(&failure)?;
        }
        if kind == "finish_deletion" && state == "done" {
            sqlx::query("DELETE FROM lifecycle_jobs WHERE job_id <> ?1 AND deletion_id = ?2")
                .bind(&job.job_id)
                .bind(deletion_id)
                .execute(&mut *tx)
                .await
                .map_err(&failure)?;
        }
    }
    tx.commit().await.map_err(&failure)?;
    Ok(true)
}

/// How an asynchronous delete's removals stand.
pub(crate) async fn deletion_progress(
    reads: &SqlitePool,
    account_id: &AccountId,
    deletion_id: Uuid,
) -> Result<DeletionProgress, StoreError> {
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT state, target, message_types FROM lifecycle_jobs \
         WHERE deletion_id = ?1 AND account_id = ?2 AND kind = 'publish' ORDER BY target",
    )
    .bind(deletion_id)
    .bind(account_id.as_str())
    .fetch_all(reads)
    .await
    .map_err(failed("reading a delete's removals failed"))?;
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
            message_types: types_of(types.as_deref()).ok_or_else(corrupt)?,
        });
    }
    Ok(progress)
}

/// When the next pending job can be claimed.
pub(crate) async fn next_job_due(reads: &SqlitePool) -> Result<Option<DateTime<Utc>>, StoreError> {
    sqlx::query_scalar(
        "SELECT min(max(next_attempt_at, coalesce(leased_until, next_attempt_at))) \
         FROM lifecycle_jobs WHERE state = 'pending'",
    )
    .fetch_one(reads)
    .await
    .map_err(failed("reading the lifecycle jobs failed"))
}
