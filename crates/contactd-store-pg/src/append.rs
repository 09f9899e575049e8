//! The append: one SQL statement, so one transaction and one round trip, that writes the events
//! at the expected version, the read-model row, the name claims, the quota counter, the
//! remembered call and a send's code with its limits. Any rule the database refuses aborts all
//! of it.

use std::sync::LazyLock;

use contactd_app::{
    Append, AppendError, DirectoryAppend, IDEMPOTENCY_WINDOW, NameClaim, RememberedCall,
};
use contactd_domain::DirectoryEvent;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use contactd_domain::{Contact, ContactStatus};

use crate::deadline::{Budget, Stopped, bounded, passed};
use crate::error::{append_error, store_error};
use crate::keys::Sealing;
use contactd_store_core::DataKey;
use contactd_store_core::documents::{StoredContact, StoredDirectory, outcome_to_json};
use contactd_store_core::events::{encode_directory_event, encode_sealed_contact_event};

/// The statement is composed of the parts an append needs: an update carries no quota and
/// usually no name claim or remembered call, and every part left out is work PostgreSQL does
/// not plan or run. The composed texts are few, and each is prepared once per connection.
///
/// The data-modifying CTEs all run, whatever the final SELECT reads. The conflict guard is the
/// events' unique `(stream_id, stream_version)`: versions are dense, so an append decided on a
/// stale version always collides with the event that moved the stream on. Parameters keep
/// their numbers in every variant (the ones a variant leaves out are bound but unused).
const APPEND_EVENTS: &str = r#"
appended AS (
    INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, schema_version,
                        payload, request_id, caller, correlation_id, causation_id, recorded_at)
    SELECT e.event_id, $1, $2, e.stream_version, e.event_type, e.schema_version,
           e.payload, $3, $4, $5, $6, $7
    FROM UNNEST($8::uuid[], $9::bigint[], $10::text[], $11::int[], $12::jsonb[])
         AS e(event_id, stream_version, event_type, schema_version, payload)
    RETURNING 1
)"#;

const INSERT_CONTACT: &str = r#"
projected AS (
    INSERT INTO contacts (contact_id, account_id, created_at, version, state)
    VALUES ($2, $1, $13, $14, $15)
    RETURNING 1
)"#;

const UPDATE_CONTACT: &str = r#"
projected AS (
    UPDATE contacts SET state = $15, version = $14
    WHERE contact_id = $2 AND account_id = $1 AND version = $16::bigint
    RETURNING 1
)"#;

/// A deleted contact: its row goes (at the expected version) and it leaves the quota.
const DELETE_CONTACT: &str = r#"
projected AS (
    DELETE FROM contacts WHERE contact_id = $2 AND account_id = $1 AND version = $16::bigint
    RETURNING 1
),
uncounted AS (
    UPDATE contact_quotas SET contacts = contacts - 1 WHERE account_id = $1 AND contacts > 0
)"#;

const RELEASE_NAME: &str = r#"
released AS (
    DELETE FROM contact_names WHERE account_id = $1 AND name_key = $17::text AND contact_id = $2
)"#;

const CLAIM_NAME: &str = r#"
claimed AS (
    INSERT INTO contact_names (account_id, name_key, contact_id) VALUES ($1, $18::text, $2)
)"#;

const COUNT_CONTACT: &str = r#"
counted AS (
    INSERT INTO contact_quotas (account_id, contacts, max_contacts) VALUES ($1, 1, $19::int)
    ON CONFLICT (account_id) DO UPDATE
        SET contacts = contact_quotas.contacts + 1, max_contacts = EXCLUDED.max_contacts
)"#;

const REMEMBER_CALL: &str = r#"
remembered AS (
    INSERT INTO idempotency_records (account_id, operation, client_token, fingerprint, outcome, recorded_at)
    VALUES ($1, $20::text, $21::bytea, $22::bytea, $23::jsonb, $7)
)"#;

/// A send: the code's row and the two send limits, each a row that concurrent sends lock in
/// turn and whose `CHECK` refuses the send past it. The rows of the target's older codes stay
/// for a day after they expired, so that their links can say they were replaced, then go.
/// The per-target window keeps the times of the last minute's sends, so the limit holds over
/// any minute, not per calendar minute; a clock running behind another process's counts into
/// the later day rather than starting the day again.
const ISSUE_CODE: &str = r#"
forgotten AS (
    DELETE FROM verification_codes WHERE account_id = $1 AND contact_id = $2 AND channel = $25::text
        AND expires_at < $7::timestamptz - interval '1 day'
),
issued AS (
    INSERT INTO verification_codes (verification_id, account_id, contact_id, channel, link_hash, expires_at)
    VALUES ($24::uuid, $1, $2, $25::text, $26::bytea, $27::timestamptz)
),
counted_day AS (
    INSERT INTO verification_send_days AS d (account_id, day, sends, max_sends)
    VALUES ($1, $28::date, 1, $29::int)
    ON CONFLICT (account_id) DO UPDATE SET
        sends = CASE WHEN EXCLUDED.day <= d.day THEN d.sends + 1 ELSE 1 END,
        day = GREATEST(d.day, EXCLUDED.day), max_sends = EXCLUDED.max_sends
),
counted_target AS (
    INSERT INTO verification_send_windows AS w (account_id, target_digest, sent_at, max_sends)
    VALUES ($1, $30::bytea, ARRAY[$7::timestamptz], $31::int)
    ON CONFLICT (account_id, target_digest) DO UPDATE SET
        sent_at = array_append(
            ARRAY(SELECT t FROM unnest(w.sent_at) AS t WHERE t > $7::timestamptz - interval '1 minute'),
            $7::timestamptz),
        max_sends = EXCLUDED.max_sends
)"#;

/// A new contact's data key, stored with its first events (ADR 13).
const STORE_KEY: &str = r#"
keyed AS (
    INSERT INTO contact_keys (contact_id, account_id, master_key_id, wrapped_key, created_at)
    VALUES ($2, $1, $32::text, $33::bytea, $7)
)"#;

const COUNTS: &str = "\nSELECT (SELECT count(*) FROM appended), (SELECT count(*) FROM projected)";

/// The parts an append needs, as bits: a new contact (1), the name claim kept, claimed, moved
/// or released (0, 2, 4 or 6), the quota counted (8), the call remembered (16), a code issued
/// (32), the contact deleted (64), a new data key stored (128).
fn shape(append: &Append<'_>, sealing: Option<&Sealing>) -> usize {
    let claim = match append.name_claim {
        NameClaim::Keep => 0,
        NameClaim::Claim { .. } => 2,
        NameClaim::Move { .. } => 4,
        NameClaim::Release { .. } => 6,
    };
    let deleted = append.contact.status == ContactStatus::Deleted;
    usize::from(append.expected_version == 0)
        | if deleted { 64 } else { 0 }
        | claim
        | if append.quota_limit.is_some() { 8 } else { 0 }
        | if append.remember.is_some() { 16 } else { 0 }
        | if append.code.is_some() { 32 } else { 0 }
        | if sealing.is_some_and(|s| s.new.is_some()) {
            128
        } else {
            0
        }
}

fn compose(shape: usize) -> String {
    let mut parts = vec![APPEND_EVENTS];
    parts.push(if shape & 1 != 0 {
        INSERT_CONTACT
    } else if shape & 64 != 0 {
        DELETE_CONTACT
    } else {
        UPDATE_CONTACT
    });
    match shape & 6 {
        2 => parts.push(CLAIM_NAME),
        4 => parts.extend([RELEASE_NAME, CLAIM_NAME]),
        6 => parts.push(RELEASE_NAME),
        _ => {}
    }
    if shape & 8 != 0 {
        parts.push(COUNT_CONTACT);
    }
    if shape & 16 != 0 {
        parts.push(REMEMBER_CALL);
    }
    if shape & 32 != 0 {
        parts.push(ISSUE_CODE);
    }
    if shape & 128 != 0 {
        parts.push(STORE_KEY);
    }
    format!("WITH{}{COUNTS}", parts.join(","))
}

/// Every composed text, built once: the hot path only picks one.
static STATEMENTS: LazyLock<Vec<String>> = LazyLock::new(|| (0..256).map(compose).collect());

/// The append statement for this kind of append.
fn append_sql(append: &Append<'_>, sealing: Option<&Sealing>) -> &'static str {
    &STATEMENTS[shape(append, sealing)]
}

/// An event as stored: its id, its version in the stream and its persisted payload.
pub(crate) struct EncodedEvent {
    pub event_id: Uuid,
    pub stream_version: i64,
    pub event_type: &'static str,
    pub schema_version: i32,
    pub payload: Value,
}

/// The append's events as stored, numbered on from the expected version, their personal
/// fields sealed with `key`.
pub(crate) fn encode_events(
    append: &Append<'_>,
    key: Option<&DataKey>,
) -> Result<Vec<EncodedEvent>, AppendError> {
    let first_version = append.expected_version as i64 + 1;
    (0_i64..)
        .zip(append.events)
        .map(|(offset, new)| {
            let (event_type, schema_version, payload) =
                encode_sealed_contact_event(&new.event, new.event_id, key)
                    .map_err(AppendError::Store)?;
            Ok(EncodedEvent {
                event_id: new.event_id,
                stream_version: first_version + offset,
                event_type,
                schema_version,
                payload,
            })
        })
        .collect()
}

/// Appends within `budget`: a statement cancelled by its timeout rolls back whole, and is
/// answered as the transient failure it is (SQLSTATE 57014, see `error::out_of_reach`).
pub(crate) async fn append(
    pool: &PgPool,
    budget: Budget,
    append: Append<'_>,
    sealing: Option<&Sealing>,
) -> Result<(), AppendError> {
    let sql = append_sql(&append, sealing);
    let metadata = append.metadata;
    let encoded = encode_events(&append, sealing.map(|s| &s.key))?;
    let new_key = sealing.and_then(|s| s.new.as_ref());
    let event_ids: Vec<_> = encoded.iter().map(|e| e.event_id).collect();
    let versions: Vec<_> = encoded.iter().map(|e| e.stream_version).collect();
    let types: Vec<_> = encoded.iter().map(|e| e.event_type).collect();
    let schema_versions: Vec<_> = encoded.iter().map(|e| e.schema_version).collect();
    let payloads: Vec<_> = encoded.iter().map(|e| &e.payload).collect();
    let row = StoredContact::from(append.contact);
    let (release, claim) = match append.name_claim {
        NameClaim::Keep => (None, None),
        NameClaim::Claim { key } => (None, Some(key)),
        NameClaim::Move { from, to } => (Some(from), Some(to)),
        NameClaim::Release { key } => (Some(key), None),
    };
    let remember = append.remember;
    let code = append.code;

    let claimed_key = claim.clone();
    let statement = sqlx::query_as(sql)
        .bind(metadata.account_id.as_str())
        .bind(append.contact.contact_id.as_str())
        .bind(&metadata.request_id)
        .bind(&metadata.caller)
        .bind(&metadata.correlation_id)
        .bind(&metadata.causation_id)
        .bind(metadata.recorded_at)
        .bind(&event_ids)
        .bind(&versions)
        .bind(&types)
        .bind(&schema_versions)
        .bind(&payloads)
        .bind(row.created_at)
        .bind(row.version)
        .bind(row.state_json())
        .bind(append.expected_version as i64)
        .bind(release)
        .bind(claim)
        .bind(append.quota_limit.map(limit))
        .bind(remember.map(|call| call.key.operation.as_str()))
        .bind(remember.map(|call| call.key.token.as_str().as_bytes()))
        .bind(remember.map(|call| call.fingerprint.as_slice()))
        .bind(remember.map(|call| outcome_to_json(&call.outcome)))
        .bind(code.map(|c| c.verification_id.as_uuid()))
        .bind(code.map(|c| c.channel.as_str()))
        .bind(code.map(|c| c.link_hash.as_slice()))
        .bind(code.map(|c| c.expires_at))
        .bind(code.map(|c| c.limits.day))
        .bind(code.map(|c| limit(c.limits.per_account_day)))
        .bind(code.map(|c| c.limits.target_digest.as_slice()))
        .bind(code.map(|c| limit(c.limits.per_target_minute)))
        .bind(new_key.map(|k| k.master_key_id.as_str()))
        .bind(new_key.map(|k| k.bytes.as_slice()));
    let outcome: Result<(i64, i64), AppendError> =
        bounded(pool, budget, true, async |connection| {
            statement.fetch_one(&mut *connection).await
        })
        .await
        .map_err(append_stopped);
    let (appended, projected) = match outcome {
        Ok(counts) => counts,
        Err(AppendError::QuotaExceeded) if claimed_key.is_some() => {
            return Err(rank_quota_after_name(pool, append.contact, claimed_key).await);
        }
        Err(error) => return Err(error),
    };
    if appended != append.events.len() as i64 || projected != 1 {
        // The read-model row was not at the expected version although the log was: only a
        // write behind the service's back does that. Refuse rather than diverge.
        return Err(AppendError::VersionConflict);
    }
    Ok(())
}

/// An append run within a deadline that stopped.
fn append_stopped(stopped: Stopped) -> AppendError {
    match stopped {
        Stopped::Database(error) => append_error(error),
        Stopped::Spent => AppendError::Store(passed("appending events failed")),
    }
}

/// A limit as the database's `integer` holds it.
fn limit(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// The database reports one broken rule; the contract ranks uniqueness before quota. When the
/// quota refused an add, look whether the name was taken too (both were true at that moment).
async fn rank_quota_after_name(
    pool: &PgPool,
    contact: &Contact,
    key: Option<String>,
) -> AppendError {
    let taken = sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM contact_names WHERE account_id = $1 AND name_key = $2)",
    )
    .bind(contact.account_id.as_str())
    .bind(key)
    .fetch_one(pool)
    .await;
    match taken {
        Ok(true) => AppendError::NameAlreadyUsed,
        Ok(false) => AppendError::QuotaExceeded,
        Err(error) => AppendError::Store(store_error("ranking a refused add failed", error)),
    }
}

/// Remembers a successful call that appended nothing. An expired record under the same token
/// is replaced; a live one means another call holds the token.
pub(crate) async fn remember(
    pool: &PgPool,
    budget: Budget,
    call: &RememberedCall,
) -> Result<(), AppendError> {
    let statement = sqlx::query_scalar::<_, i32>(
        r#"
        INSERT INTO idempotency_records (account_id, operation, client_token, fingerprint, outcome, recorded_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (account_id, operation, client_token) DO UPDATE
            SET fingerprint = EXCLUDED.fingerprint, outcome = EXCLUDED.outcome, recorded_at = EXCLUDED.recorded_at
            WHERE idempotency_records.recorded_at < $7
        RETURNING 1
        "#,
    )
    .bind(call.key.account_id.as_str())
    .bind(call.key.operation.as_str())
    .bind(call.key.token.as_str().as_bytes())
    .bind(&call.fingerprint)
    .bind(outcome_to_json(&call.outcome))
    .bind(call.recorded_at)
    .bind(call.recorded_at - IDEMPOTENCY_WINDOW);
    let stored = bounded(pool, budget, true, async |connection| {
        statement.fetch_optional(&mut *connection).await
    })
    .await
    .map_err(append_stopped)?;
    stored.map(|_| ()).ok_or(AppendError::ClientTokenTaken)
}

/// A directory's append: its events at the expected version and its row, in one statement.
/// The row's version is the guard: two first uses race on its key, later changes on its
/// version, and the events' `(stream_id, stream_version)` catch the rest.
pub(crate) async fn append_directory(
    pool: &PgPool,
    budget: Budget,
    append: DirectoryAppend<'_>,
) -> Result<(), AppendError> {
    let metadata = append.metadata;
    let first_version = append.expected_version as i64 + 1;
    let encoded: Vec<_> = append
        .events
        .iter()
        .map(|new| encode_directory_event(&new.event))
        .collect();
    let row = StoredDirectory::from(append.directory);
    let statement = sqlx::query_as(
        r#"
        WITH appended AS (
            INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type,
                                schema_version, payload, request_id, caller, correlation_id,
                                causation_id, recorded_at)
            SELECT e.event_id, $1, $2, $3 + e.ordinal - 1, e.event_type, e.schema_version,
                   e.payload, $4, $5, $6, $7, $8
            FROM UNNEST($9::uuid[], $10::text[], $11::int[], $12::jsonb[]) WITH ORDINALITY
                 AS e(event_id, event_type, schema_version, payload, ordinal)
            RETURNING 1
        ),
        projected AS (
            INSERT INTO directories AS d (account_id, resource_directory_id, version, state)
            VALUES ($1, $13, $14, $15)
            ON CONFLICT (account_id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state
                WHERE d.version = $3 - 1
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM appended), (SELECT count(*) FROM projected)
        "#,
    )
    .bind(metadata.account_id.as_str())
    .bind(DirectoryEvent::stream_id(&metadata.account_id))
    .bind(first_version)
    .bind(&metadata.request_id)
    .bind(&metadata.caller)
    .bind(&metadata.correlation_id)
    .bind(&metadata.causation_id)
    .bind(metadata.recorded_at)
    .bind(append.events.iter().map(|e| e.event_id).collect::<Vec<_>>())
    .bind(encoded.iter().map(|e| e.0).collect::<Vec<_>>())
    .bind(encoded.iter().map(|e| e.1).collect::<Vec<_>>())
    .bind(encoded.iter().map(|e| &e.2).collect::<Vec<_>>())
    .bind(&row.resource_directory_id)
    .bind(row.version)
    .bind(row.state_json());
    let (appended, projected): (i64, i64) = bounded(pool, budget, true, async |connection| {
        statement.fetch_one(&mut *connection).await
    })
    .await
    .map_err(append_stopped)?;
    if appended != append.events.len() as i64 || projected != 1 {
        return Err(AppendError::VersionConflict);
    }
    Ok(())
}
