//! Group commit of updates: concurrent appends that only move a contact's stream and its row on
//! (no name claim, quota or client token) are written together, in one statement and one
//! transaction, so that they share one round trip, one plan, one commit and one WAL flush.
//!
//! Every guarantee of a single append holds for each one of a group: the events and the row of
//! an update commit together or not at all, and each is written only at the version it was
//! decided on. The version check is the row's: the `UPDATE` of `contacts` names the expected
//! version, so an update decided on a stale version changes nothing and is answered
//! `VersionConflict` on its own, while the others of its group commit. Anything else the
//! database refuses (a write behind the service's back, a deadlock with another process's
//! group) aborts the group; each of its updates is then appended on its own, which answers it
//! exactly as if it had never been grouped.
//!
//! There is no timer: a group is whatever arrived while the previous ones were being written,
//! so a lone call goes straight through and a busy server writes larger groups.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use contactd_app::{Append, AppendError, NameClaim, StoreError};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tracing::debug;
use uuid::Uuid;

use crate::error::append_error;
use crate::rows::StoredContact;
use crate::schema::encode_event;

/// The most updates written by one statement.
const MAX_GROUP: usize = 128;

/// `input` has one row per update: the row's new values, the version it was decided on and the
/// metadata its events carry. Rows are locked in `contact_id` order (the input is sorted) so
/// that two processes' groups do not deadlock in the usual case.
const UPDATE_GROUP: &str = r#"
WITH input AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                         $12::timestamptz[], $13::bigint[], $14::text[], $15::text[], $16::text[],
                         $17::text[], $18::timestamptz[])
        AS i(contact_id, account_id, expected_version, name, email_address, active_email_address,
             phone_number, active_phone_number, title, message_types, status, updated_at, version,
             request_id, caller, correlation_id, causation_id, recorded_at)
),
projected AS (
    UPDATE contacts AS c SET
        name = i.name, email_address = i.email_address,
        active_email_address = i.active_email_address, phone_number = i.phone_number,
        active_phone_number = i.active_phone_number, title = i.title,
        message_types = string_to_array(i.message_types, ','), status = i.status,
        updated_at = i.updated_at, version = i.version
    FROM input AS i
    WHERE c.contact_id = i.contact_id AND c.account_id = i.account_id
      AND c.version = i.expected_version
    RETURNING c.contact_id
),
appended AS (
    INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, schema_version,
                        payload, request_id, caller, correlation_id, causation_id, recorded_at)
    SELECT e.event_id, i.account_id, e.stream_id, e.stream_version, e.event_type, e.schema_version,
           e.payload, i.request_id, i.caller, i.correlation_id, i.causation_id, i.recorded_at
    FROM UNNEST($19::text[], $20::uuid[], $21::bigint[], $22::text[], $23::int[], $24::jsonb[])
             WITH ORDINALITY AS e(stream_id, event_id, stream_version, event_type, schema_version,
                                  payload, ordinal)
    JOIN projected AS p ON p.contact_id = e.stream_id
    JOIN input AS i ON i.contact_id = e.stream_id
    ORDER BY e.ordinal
)
SELECT contact_id FROM projected
"#;

/// Whether an append can join a group: an update that claims no name, counts no quota and
/// remembers no call. The rest are rarer and take the single statement.
pub(crate) fn groupable(append: &Append<'_>) -> bool {
    append.expected_version > 0
        && matches!(append.name_claim, NameClaim::Keep)
        && append.quota_limit.is_none()
        && append.remember.is_none()
        && !append.events.is_empty()
}

/// An update copied out of its call, so that a group outlives any one caller: a client that
/// hangs up does not cancel the writes of the others.
struct Update {
    row: StoredContact,
    expected_version: i64,
    events: Vec<(Uuid, i64, &'static str, i32, Value)>,
    request_id: String,
    caller: String,
    correlation_id: String,
    causation_id: String,
    recorded_at: DateTime<Utc>,
}

impl Update {
    fn copy(append: &Append<'_>) -> Self {
        let first_version = append.expected_version as i64 + 1;
        let metadata = append.metadata;
        Self {
            row: StoredContact::from(append.contact),
            expected_version: append.expected_version as i64,
            events: (0_i64..)
                .zip(append.events)
                .map(|(offset, new)| {
                    let (event_type, schema_version, payload) = encode_event(&new.event);
                    (
                        new.event_id,
                        first_version + offset,
                        event_type,
                        schema_version,
                        payload,
                    )
                })
                .collect(),
            request_id: metadata.request_id.clone(),
            caller: metadata.caller.clone(),
            correlation_id: metadata.correlation_id.clone(),
            causation_id: metadata.causation_id.clone(),
            recorded_at: metadata.recorded_at,
        }
    }
}

struct Waiting {
    update: Update,
    answer: oneshot::Sender<Result<(), AppendError>>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    writers: usize,
}

/// The queue of updates waiting for a group, and the writers draining it.
pub(crate) struct GroupCommit {
    pool: PgPool,
    /// How many groups may be written at once (each on its own connection).
    max_writers: usize,
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("max_writers", &self.max_writers)
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    pub(crate) fn new(pool: PgPool, max_writers: usize) -> Arc<Self> {
        Arc::new(Self {
            pool,
            max_writers: max_writers.max(1),
            queue: Mutex::new(Queue::default()),
        })
    }

    /// Appends the update with the next group, and answers when that group has committed.
    pub(crate) async fn append(self: &Arc<Self>, append: &Append<'_>) -> Result<(), AppendError> {
        let (answer, answered) = oneshot::channel();
        let start_writer = {
            let mut queue = self.lock();
            queue.waiting.push(Waiting {
                update: Update::copy(append),
                answer,
            });
            let start = queue.writers < self.max_writers;
            if start {
                queue.writers += 1;
            }
            start
        };
        if start_writer {
            tokio::spawn(Arc::clone(self).write_groups());
        }
        answered.await.unwrap_or_else(|_| {
            Err(AppendError::Store(StoreError::internal(
                "the group writing an update was lost before it answered",
                None,
            )))
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The queue is left consistent at every point a panic could occur.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes groups while updates are waiting, then retires.
    async fn write_groups(self: Arc<Self>) {
        loop {
            let group = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.writers -= 1;
                    return;
                }
                take_group(&mut queue.waiting)
            };
            self.write(group).await;
        }
    }

    async fn write(&self, mut group: Vec<Waiting>) {
        group.sort_by(|a, b| a.update.row.contact_id.cmp(&b.update.row.contact_id));
        debug!(updates = group.len(), "writing a group of updates");
        let outcomes = match write_group(&self.pool, &group).await {
            Ok(written) => group.iter().map(|w| answer(&written, w)).collect(),
            Err(error) if group.len() == 1 => vec![Err(append_error(error))],
            Err(error) => {
                debug!(%error, "a group of updates was refused; writing each on its own");
                let mut outcomes = Vec::with_capacity(group.len());
                for waiting in &group {
                    outcomes.push(
                        match write_group(&self.pool, std::slice::from_ref(waiting)).await {
                            Ok(written) => answer(&written, waiting),
                            Err(error) => Err(append_error(error)),
                        },
                    );
                }
                outcomes
            }
        };
        for (waiting, outcome) in group.into_iter().zip(outcomes) {
            // A caller that has gone away no longer needs its answer.
            let _ = waiting.answer.send(outcome);
        }
    }
}

/// An update of a group that committed is written unless its row had moved on.
fn answer(written: &[String], waiting: &Waiting) -> Result<(), AppendError> {
    if written.contains(&waiting.update.row.contact_id) {
        Ok(())
    } else {
        Err(AppendError::VersionConflict)
    }
}

/// Takes the next group off the queue, oldest first. A second update of a stream already in the
/// group waits for the next one: one statement cannot move a row twice.
fn take_group(waiting: &mut Vec<Waiting>) -> Vec<Waiting> {
    let mut group: Vec<Waiting> = Vec::with_capacity(waiting.len().min(MAX_GROUP));
    let mut left = Vec::new();
    for next in waiting.drain(..) {
        let taken = group.len() < MAX_GROUP
            && !group
                .iter()
                .any(|w| w.update.row.contact_id == next.update.row.contact_id);
        if taken {
            group.push(next);
        } else {
            left.push(next);
        }
    }
    *waiting = left;
    group
}

/// Writes the group in one statement; answers the contacts whose update committed.
async fn write_group(pool: &PgPool, group: &[Waiting]) -> Result<Vec<String>, sqlx::Error> {
    let n = group.len();
    let events = group.iter().map(|w| w.update.events.len()).sum();
    let mut contact_ids = Vec::with_capacity(n);
    let mut account_ids = Vec::with_capacity(n);
    let mut expected = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut emails = Vec::with_capacity(n);
    let mut active_emails = Vec::with_capacity(n);
    let mut phones = Vec::with_capacity(n);
    let mut active_phones = Vec::with_capacity(n);
    let mut titles = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut updated = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut request_ids = Vec::with_capacity(n);
    let mut callers = Vec::with_capacity(n);
    let mut correlation_ids = Vec::with_capacity(n);
    let mut causation_ids = Vec::with_capacity(n);
    let mut recorded = Vec::with_capacity(n);
    let mut stream_ids = Vec::with_capacity(events);
    let mut event_ids = Vec::with_capacity(events);
    let mut stream_versions = Vec::with_capacity(events);
    let mut event_types = Vec::with_capacity(events);
    let mut schema_versions = Vec::with_capacity(events);
    let mut payloads = Vec::with_capacity(events);
    for Waiting { update: u, .. } in group {
        let row = &u.row;
        contact_ids.push(row.contact_id.as_str());
        account_ids.push(row.account_id.as_str());
        expected.push(u.expected_version);
        names.push(row.name.as_str());
        emails.push(row.email_address.as_str());
        active_emails.push(row.active_email_address.as_deref());
        phones.push(row.phone_number.as_deref());
        active_phones.push(row.active_phone_number.as_deref());
        titles.push(row.title.as_str());
        // Message type names are identifiers, never containing a comma.
        types.push(row.message_types.join(","));
        statuses.push(row.status.as_str());
        updated.push(row.updated_at);
        versions.push(row.version);
        request_ids.push(u.request_id.as_str());
        callers.push(u.caller.as_str());
        correlation_ids.push(u.correlation_id.as_str());
        causation_ids.push(u.causation_id.as_str());
        recorded.push(u.recorded_at);
        for (event_id, version, event_type, schema_version, payload) in &u.events {
            stream_ids.push(row.contact_id.as_str());
            event_ids.push(*event_id);
            stream_versions.push(*version);
            event_types.push(*event_type);
            schema_versions.push(*schema_version);
            payloads.push(payload);
        }
    }
    sqlx::query_scalar(UPDATE_GROUP)
        .bind(contact_ids)
        .bind(account_ids)
        .bind(expected)
        .bind(names)
        .bind(emails)
        .bind(active_emails)
        .bind(phones)
        .bind(active_phones)
        .bind(titles)
        .bind(types)
        .bind(statuses)
        .bind(updated)
        .bind(versions)
        .bind(request_ids)
        .bind(callers)
        .bind(correlation_ids)
        .bind(causation_ids)
        .bind(recorded)
        .bind(stream_ids)
        .bind(event_ids)
        .bind(stream_versions)
        .bind(event_types)
        .bind(schema_versions)
        .bind(payloads)
        .fetch_all(pool)
        .await
}
