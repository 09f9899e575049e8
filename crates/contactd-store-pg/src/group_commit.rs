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
//! exactly as if it had never been grouped. Only when the database is out of reach do all the
//! updates of a group fail together, as each would have alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use contactd_app::{Append, AppendError, NameClaim, Recording, StoreError};
use sqlx::{PgConnection, PgPool};
use tracing::debug;

use crate::append::{EncodedEvent, encode_events};
use crate::deadline::{Budget, Stopped, bounded_reporting, passed};
use crate::error::{append_error, out_of_reach, store_error};
use contactd_store_core::DataKey;
use contactd_store_core::documents::StoredContact;
use contactd_store_core::grouping::{GroupWork, Grouped};

/// `input` has one row per update: the row's new values, the version it was decided on and the
/// metadata its events carry. Rows are locked in `contact_id` order (the input is sorted) so
/// that two processes' groups do not deadlock in the usual case.
const UPDATE_GROUP: &str = r#"
WITH input AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::jsonb[],
                         $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[])
        AS i(contact_id, account_id, expected_version, version, state,
             request_id, caller, correlation_id, causation_id, recorded_at)
),
projected AS (
    UPDATE contacts AS c SET state = i.state, version = i.version
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
    FROM UNNEST($11::text[], $12::uuid[], $13::bigint[], $14::text[], $15::int[], $16::jsonb[])
             WITH ORDINALITY AS e(stream_id, event_id, stream_version, event_type, schema_version,
                                  payload, ordinal)
    JOIN projected AS p ON p.contact_id = e.stream_id
    JOIN input AS i ON i.contact_id = e.stream_id
    ORDER BY e.ordinal
)
SELECT contact_id FROM projected
"#;

/// Whether an append can join a group: an update that claims no name, counts no quota,
/// remembers no call and issues no code. The rest are rarer and take the single statement.
pub(crate) fn groupable(append: &Append<'_>) -> bool {
    append.expected_version > 0
        && matches!(append.name_claim, NameClaim::Keep)
        && append.quota_limit.is_none()
        && append.remember.is_none()
        && append.code.is_none()
        && !append.events.is_empty()
}

/// An update copied out of its call, so that a group outlives any one caller: a client that
/// hangs up does not cancel the writes of the others.
pub(crate) struct Update {
    row: StoredContact,
    state: serde_json::Value,
    expected_version: i64,
    events: Vec<EncodedEvent>,
    request_id: String,
    caller: String,
    correlation_id: String,
    causation_id: String,
    recorded_at: DateTime<Utc>,
    /// The caller's deadline, taken in its task: the group runs in the runner's.
    deadline: Option<Instant>,
}

impl Update {
    pub(crate) fn copy(append: &Append<'_>, key: Option<&DataKey>) -> Result<Self, AppendError> {
        let metadata = append.metadata;
        let row = StoredContact::from(append.contact);
        Ok(Self {
            state: row.state_json(),
            row,
            expected_version: append.expected_version as i64,
            events: encode_events(append, key)?,
            request_id: metadata.request_id.clone(),
            caller: metadata.caller.clone(),
            correlation_id: metadata.correlation_id.clone(),
            causation_id: metadata.causation_id.clone(),
            recorded_at: metadata.recorded_at,
            deadline: contactd_app::deadline::current(),
        })
    }
}

/// The group commit of updates, run by [`Grouped`].
#[derive(Debug)]
pub(crate) struct UpdateGroups {
    pool: PgPool,
    recording: Recording,
    /// The pool's session `statement_timeout` (see `PgStore::statement_timeout`).
    cap: Option<Duration>,
}

impl UpdateGroups {
    pub(crate) fn new(
        pool: PgPool,
        cap: Option<Duration>,
        writers: usize,
        recording: Recording,
    ) -> Arc<Grouped<Self>> {
        Grouped::new(
            Self {
                pool,
                recording,
                cap,
            },
            writers,
        )
    }

    /// Writes `group` within the longest deadline of its members.
    async fn write(&self, group: &[Update]) -> Result<Vec<String>, Stopped> {
        let budget = Budget::of_group(group.iter().map(|u| u.deadline), self.cap);
        bounded_reporting(
            &self.pool,
            budget,
            true,
            &self.recording,
            async |connection| write_group(connection, group).await,
        )
        .await
    }
}

impl GroupWork for UpdateGroups {
    type Request = Update;
    type Answer = Result<(), AppendError>;

    const MAX_GROUP: usize = 128;

    /// One statement cannot move a row twice: a second update of a stream waits for the next
    /// group.
    fn fits(group: &[Update], update: &Update) -> bool {
        !group
            .iter()
            .any(|other| other.row.contact_id == update.row.contact_id)
    }

    async fn run(&self, group: &[Update]) -> Vec<Self::Answer> {
        debug!(updates = group.len(), "writing a group of updates");
        match self.write(group).await {
            Ok(written) => {
                self.recording.group_committed(group.len());
                group.iter().map(|u| answer(&written, u)).collect()
            }
            // Every member's deadline passed while it queued: none is waiting any longer.
            Err(Stopped::Spent) => {
                let error = passed("writing a group of updates failed");
                group
                    .iter()
                    .map(|_| Err(AppendError::Store(error.clone())))
                    .collect()
            }
            Err(Stopped::Database(error)) if group.len() == 1 => vec![Err(append_error(error))],
            // Written one by one, each would wait for the database again: all fail alike,
            // and since the group's outcome is unknown, the callers read the rows afresh.
            // So does a group cancelled at its deadline (57014): it rolled back whole, and each
            // member retries (or its client does).
            Err(Stopped::Database(error)) if out_of_reach(&error) => {
                let error = store_error("writing a group of updates failed", error);
                group
                    .iter()
                    .map(|_| Err(AppendError::Store(error.clone())))
                    .collect()
            }
            Err(Stopped::Database(error)) => {
                debug!(%error, "a group of updates was refused; writing each on its own");
                let mut answers = Vec::with_capacity(group.len());
                for update in group {
                    answers.push(match self.write(std::slice::from_ref(update)).await {
                        Ok(written) => answer(&written, update),
                        Err(Stopped::Database(error)) => Err(append_error(error)),
                        Err(Stopped::Spent) => {
                            Err(AppendError::Store(passed("writing an update failed")))
                        }
                    });
                }
                answers
            }
        }
    }

    fn lost() -> Self::Answer {
        Err(AppendError::Store(StoreError::internal(
            "the group writing an update ended before it answered",
            None,
        )))
    }
}

/// An update of a group that committed is written unless its row had moved on.
fn answer(written: &[String], update: &Update) -> Result<(), AppendError> {
    if written.contains(&update.row.contact_id) {
        Ok(())
    } else {
        Err(AppendError::VersionConflict)
    }
}

/// Writes the group in one statement; answers the contacts whose update committed.
async fn write_group(
    connection: &mut PgConnection,
    group: &[Update],
) -> Result<Vec<String>, sqlx::Error> {
    let n = group.len();
    let events = group.iter().map(|u| u.events.len()).sum();
    let mut in_order: Vec<&Update> = group.iter().collect();
    in_order.sort_unstable_by(|a, b| a.row.contact_id.cmp(&b.row.contact_id));
    let mut contact_ids = Vec::with_capacity(n);
    let mut account_ids = Vec::with_capacity(n);
    let mut expected = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
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
    for u in in_order {
        let row = &u.row;
        contact_ids.push(row.contact_id.as_str());
        account_ids.push(row.account_id.as_str());
        expected.push(u.expected_version);
        versions.push(row.version);
        states.push(&u.state);
        request_ids.push(u.request_id.as_str());
        callers.push(u.caller.as_str());
        correlation_ids.push(u.correlation_id.as_str());
        causation_ids.push(u.causation_id.as_str());
        recorded.push(u.recorded_at);
        for event in &u.events {
            stream_ids.push(row.contact_id.as_str());
            event_ids.push(event.event_id);
            stream_versions.push(event.stream_version);
            event_types.push(event.event_type);
            schema_versions.push(event.schema_version);
            payloads.push(&event.payload);
        }
    }
    sqlx::query_scalar(UPDATE_GROUP)
        .bind(contact_ids)
        .bind(account_ids)
        .bind(expected)
        .bind(versions)
        .bind(states)
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
        .fetch_all(connection)
        .await
}
