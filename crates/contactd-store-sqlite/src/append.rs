//! The appends: a contact's events at the expected version with everything that commits with
//! them (the read-model row, the name claims, the quota counter, the remembered call, a send's
//! code and limits), and a directory's. Each runs on the writer's connection inside a
//! transaction or savepoint that its caller opens: a refused rule leaves nothing behind.
//!
//! SQLite has one writer, so the statements of an append run one after the other with nothing
//! in between; the order they run in is the contract's ranking of refusals: the version first,
//! then the name, then the quota.

use chrono::TimeDelta;
use contactd_app::{
    Append, AppendError, DirectoryAppend, EventMetadata, IDEMPOTENCY_WINDOW, NameClaim,
    RememberedCall,
};
use contactd_domain::{ContactStatus, DirectoryEvent};
use contactd_store_core::documents::{StoredContact, StoredDirectory, outcome_to_json};
use contactd_store_core::events::{encode_directory_event, encode_sealed_contact_event};
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::error::append_error;
use crate::keys::{Keys, UsedKey, sealing_key, store_new_key};

/// An event as stored.
pub(crate) struct EncodedEvent {
    pub event_id: Uuid,
    pub event_type: &'static str,
    pub schema_version: i32,
    pub payload: String,
}

/// Inserts a stream's events at the versions after `expected_version`. The unique
/// `(stream_id, stream_version)` is the conflict guard: versions are dense, so an append
/// decided on a stale version always collides with the event that moved the stream on.
pub(crate) async fn insert_events(
    conn: &mut SqliteConnection,
    account_id: &str,
    stream_id: &str,
    expected_version: u64,
    events: &[EncodedEvent],
    metadata: &EventMetadata,
) -> Result<(), sqlx::Error> {
    let first = version(expected_version) + 1;
    for (offset, event) in (0_i64..).zip(events) {
        sqlx::query(
            "INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, \
                 schema_version, payload, request_id, caller, correlation_id, causation_id, recorded_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .bind(event.event_id)
        .bind(account_id)
        .bind(stream_id)
        .bind(first + offset)
        .bind(event.event_type)
        .bind(event.schema_version)
        .bind(&event.payload)
        .bind(&metadata.request_id)
        .bind(&metadata.caller)
        .bind(&metadata.correlation_id)
        .bind(&metadata.causation_id)
        .bind(metadata.recorded_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A version as the database's `INTEGER` holds it.
pub(crate) fn version(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A limit as the database holds it.
fn limit(value: u32) -> i64 {
    i64::from(value)
}

/// A contact's append, its events sealed (ADR 13): the key it sealed with, for the caller to
/// cache once the transaction has committed.
pub(crate) async fn append(
    conn: &mut SqliteConnection,
    keys: &Keys,
    append: &Append<'_>,
) -> Result<UsedKey, AppendError> {
    let metadata = append.metadata;
    let account = metadata.account_id.as_str();
    let contact_id = append.contact.contact_id.as_str();
    let (key, new_key) = sealing_key(conn, keys, append)
        .await?
        .map_or((None, None), |(key, new)| (Some(key), new));
    let encoded = append
        .events
        .iter()
        .map(|new| {
            let (event_type, schema_version, payload) =
                encode_sealed_contact_event(&new.event, new.event_id, key.as_ref())?;
            Ok(EncodedEvent {
                event_id: new.event_id,
                event_type,
                schema_version,
                payload: payload.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(AppendError::Store)?;
    insert_events(
        conn,
        account,
        contact_id,
        append.expected_version,
        &encoded,
        metadata,
    )
    .await
    .map_err(append_error)?;
    if let Some(wrapped) = &new_key {
        store_new_key(conn, append, wrapped).await?;
    }

    let row = StoredContact::from(append.contact);
    let state = row.state_json().to_string();
    let expected = version(append.expected_version);
    let deleted = append.contact.status == ContactStatus::Deleted;
    let projected = if append.expected_version == 0 {
        sqlx::query(
            "INSERT INTO contacts (contact_id, account_id, created_at, version, state) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(contact_id)
        .bind(account)
        .bind(row.created_at)
        .bind(row.version)
        .bind(&state)
        .execute(&mut *conn)
        .await
    } else if deleted {
        sqlx::query(
            "DELETE FROM contacts WHERE contact_id = ?1 AND account_id = ?2 AND version = ?3",
        )
        .bind(contact_id)
        .bind(account)
        .bind(expected)
        .execute(&mut *conn)
        .await
    } else {
        sqlx::query(
            "UPDATE contacts SET state = ?1, version = ?2 \
             WHERE contact_id = ?3 AND account_id = ?4 AND version = ?5",
        )
        .bind(&state)
        .bind(row.version)
        .bind(contact_id)
        .bind(account)
        .bind(expected)
        .execute(&mut *conn)
        .await
    }
    .map_err(append_error)?;
    if projected.rows_affected() != 1 {
        // The read-model row was not at the expected version although the log was: only a
        // write behind the service's back does that. Refuse rather than diverge.
        return Err(AppendError::VersionConflict);
    }
    if deleted {
        sqlx::query(
            "UPDATE contact_quotas SET contacts = contacts - 1 WHERE account_id = ?1 AND contacts > 0",
        )
        .bind(account)
        .execute(&mut *conn)
        .await
        .map_err(append_error)?;
    }

    let (release, claim) = match &append.name_claim {
        NameClaim::Keep => (None, None),
        NameClaim::Claim { key } => (None, Some(key)),
        NameClaim::Move { from, to } => (Some(from), Some(to)),
        NameClaim::Release { key } => (Some(key), None),
    };
    if let Some(key) = release {
        sqlx::query(
            "DELETE FROM contact_names WHERE account_id = ?1 AND name_key = ?2 AND contact_id = ?3",
        )
        .bind(account)
        .bind(key)
        .bind(contact_id)
        .execute(&mut *conn)
        .await
        .map_err(append_error)?;
    }
    if let Some(key) = claim {
        sqlx::query(
            "INSERT INTO contact_names (account_id, name_key, contact_id) VALUES (?1, ?2, ?3)",
        )
        .bind(account)
        .bind(key)
        .bind(contact_id)
        .execute(&mut *conn)
        .await
        .map_err(append_error)?;
    }

    if let Some(max) = append.quota_limit {
        sqlx::query(
            "INSERT INTO contact_quotas (account_id, contacts, max_contacts) VALUES (?1, 1, ?2) \
             ON CONFLICT (account_id) DO UPDATE \
                 SET contacts = contacts + 1, max_contacts = excluded.max_contacts",
        )
        .bind(account)
        .bind(limit(max))
        .execute(&mut *conn)
        .await
        .map_err(append_error)?;
    }

    if let Some(call) = append.remember {
        sqlx::query(
            "INSERT INTO idempotency_records \
                 (account_id, operation, client_token, fingerprint, outcome, recorded_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(account)
        .bind(call.key.operation.as_str())
        .bind(call.key.token.as_str().as_bytes())
        .bind(call.fingerprint.as_slice())
        .bind(outcome_to_json(&call.outcome).to_string())
        .bind(metadata.recorded_at)
        .execute(&mut *conn)
        .await
        .map_err(append_error)?;
    }

    if let Some(code) = append.code {
        issue_code(conn, append, code).await.map_err(append_error)?;
    }
    Ok(key.map(|key| (contact_id.to_owned(), key)))
}

/// A send: the code's row and the two send limits, each a row whose `CHECK` refuses the send
/// past it. The rows of the target's older codes stay for a day after they expired, so that
/// their links can say they were replaced, then go. The per-target window keeps the times of
/// the last minute's sends, so the limit holds over any minute, not per calendar minute; a
/// clock running behind counts into the later day rather than starting the day again.
async fn issue_code(
    conn: &mut SqliteConnection,
    append: &Append<'_>,
    code: &contactd_app::CodeIssue,
) -> Result<(), sqlx::Error> {
    let account = append.metadata.account_id.as_str();
    let contact_id = append.contact.contact_id.as_str();
    let now = append.metadata.recorded_at;
    sqlx::query(
        "DELETE FROM verification_codes \
         WHERE account_id = ?1 AND contact_id = ?2 AND channel = ?3 AND expires_at < ?4",
    )
    .bind(account)
    .bind(contact_id)
    .bind(code.channel.as_str())
    .bind(now - TimeDelta::days(1))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO verification_codes \
             (verification_id, account_id, contact_id, channel, link_hash, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(code.verification_id.as_uuid())
    .bind(account)
    .bind(contact_id)
    .bind(code.channel.as_str())
    .bind(code.link_hash.as_slice())
    .bind(code.expires_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO verification_send_days AS d (account_id, day, sends, max_sends) \
         VALUES (?1, ?2, 1, ?3) \
         ON CONFLICT (account_id) DO UPDATE SET \
             sends = CASE WHEN excluded.day <= d.day THEN d.sends + 1 ELSE 1 END, \
             day = max(d.day, excluded.day), max_sends = excluded.max_sends",
    )
    .bind(account)
    .bind(code.limits.day)
    .bind(limit(code.limits.per_account_day))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO verification_send_windows AS w (account_id, target_digest, sent_at, max_sends) \
         VALUES (?1, ?2, json_array(?3), ?4) \
         ON CONFLICT (account_id, target_digest) DO UPDATE SET \
             sent_at = (SELECT json_group_array(t) FROM ( \
                 SELECT value AS t FROM json_each(w.sent_at) WHERE value > ?5 \
                 UNION ALL SELECT ?3)), \
             max_sends = excluded.max_sends",
    )
    .bind(account)
    .bind(code.limits.target_digest.as_slice())
    .bind(now)
    .bind(limit(code.limits.per_target_minute))
    .bind(now - TimeDelta::minutes(1))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Remembers a successful call that appended nothing. An expired record under the same token
/// is replaced; a live one means another call holds the token.
pub(crate) async fn remember(
    conn: &mut SqliteConnection,
    call: &RememberedCall,
) -> Result<(), AppendError> {
    let stored: Option<i64> = sqlx::query_scalar(
        "INSERT INTO idempotency_records \
             (account_id, operation, client_token, fingerprint, outcome, recorded_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (account_id, operation, client_token) DO UPDATE SET \
             fingerprint = excluded.fingerprint, outcome = excluded.outcome, \
             recorded_at = excluded.recorded_at \
         WHERE idempotency_records.recorded_at < ?7 \
         RETURNING 1",
    )
    .bind(call.key.account_id.as_str())
    .bind(call.key.operation.as_str())
    .bind(call.key.token.as_str().as_bytes())
    .bind(call.fingerprint.as_slice())
    .bind(outcome_to_json(&call.outcome).to_string())
    .bind(call.recorded_at)
    .bind(call.recorded_at - IDEMPOTENCY_WINDOW)
    .fetch_optional(&mut *conn)
    .await
    .map_err(append_error)?;
    stored.map(|_| ()).ok_or(AppendError::ClientTokenTaken)
}

/// A directory's append: its events at the expected version and its row. The row's version
/// is the second guard: a first use finds no row, a later change the version it was decided
/// on.
pub(crate) async fn append_directory(
    conn: &mut SqliteConnection,
    append: &DirectoryAppend<'_>,
) -> Result<(), AppendError> {
    let metadata = append.metadata;
    let encoded: Vec<EncodedEvent> = append
        .events
        .iter()
        .map(|new| {
            let (event_type, schema_version, payload) = encode_directory_event(&new.event);
            EncodedEvent {
                event_id: new.event_id,
                event_type,
                schema_version,
                payload: payload.to_string(),
            }
        })
        .collect();
    insert_events(
        conn,
        metadata.account_id.as_str(),
        &DirectoryEvent::stream_id(&metadata.account_id),
        append.expected_version,
        &encoded,
        metadata,
    )
    .await
    .map_err(append_error)?;
    let row = StoredDirectory::from(append.directory);
    let projected = sqlx::query(
        "INSERT INTO directories AS d (account_id, resource_directory_id, version, state) \
         VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (account_id) DO UPDATE SET version = excluded.version, state = excluded.state \
         WHERE d.version = ?5",
    )
    .bind(metadata.account_id.as_str())
    .bind(&row.resource_directory_id)
    .bind(row.version)
    .bind(row.state_json().to_string())
    .bind(version(append.expected_version))
    .execute(&mut *conn)
    .await
    .map_err(append_error)?;
    if projected.rows_affected() != 1 {
        return Err(AppendError::VersionConflict);
    }
    Ok(())
}
