-- The event log and the inline read model on SQLite: the same tables and guarantees as the
-- PostgreSQL schema (migrations/postgres), for one process. Conventions of every table here:
-- STRICT, so a value of the wrong type is refused rather than kept; times are TEXT as sqlx
-- writes a DateTime<Utc> (RFC 3339, "+00:00"), which sorts as the times do, and are always
-- bound by the service, never defaulted with SQLite's own clock (its format differs); ids are
-- 16-byte BLOBs as sqlx writes a Uuid; documents and arrays are JSON TEXT.

CREATE TABLE events (
    -- The log's order. SQLite has one writer at a time, so positions commit in the order they
    -- are drawn: reading "after the last position seen" skips nothing. AUTOINCREMENT: a
    -- position that was committed is never handed out again, whatever becomes of its row.
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        BLOB    NOT NULL UNIQUE CHECK (length(event_id) = 16),
    account_id      TEXT    NOT NULL,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL CHECK (schema_version > 0),
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    request_id      TEXT    NOT NULL,
    caller          TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL,
    causation_id    TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    -- Optimistic concurrency: an append decided on a stale version collides here.
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
) STRICT;

-- An account's events in log order (audit streams).
CREATE INDEX events_by_account ON events (account_id, global_position);

-- Append-only, enforced by the database itself. SQLite has no TRUNCATE: a DELETE without WHERE
-- runs these triggers too (their presence turns the truncate optimisation off).
CREATE TRIGGER events_append_only BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: UPDATE on events is refused');
END;

CREATE TRIGGER events_never_deleted BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: DELETE on events is refused');
END;

-- The inline read model: one row per contact, the fold of its stream, written in the append's
-- transaction, and the snapshot commands are decided on. The keys are columns, the rest of
-- the fold one document (ADR 7).
CREATE TABLE contacts (
    contact_id TEXT    PRIMARY KEY,
    account_id TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    state      TEXT    NOT NULL CHECK (json_valid(state))
) STRICT;

CREATE INDEX contacts_by_account ON contacts (account_id, created_at, contact_id);

-- Name uniqueness per account, ignoring case: a claim row per name key.
CREATE TABLE contact_names (
    account_id TEXT NOT NULL,
    name_key   TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    CONSTRAINT contact_names_pkey PRIMARY KEY (account_id, name_key)
) STRICT;

-- The contact quota per account: a counter row. The limit in force is written with each add,
-- so the CHECK refuses the add that would exceed it.
CREATE TABLE contact_quotas (
    account_id   TEXT    PRIMARY KEY,
    contacts     INTEGER NOT NULL CHECK (contacts >= 0),
    max_contacts INTEGER NOT NULL,
    CONSTRAINT contact_quotas_within_limit CHECK (contacts <= max_contacts)
) STRICT;

-- Successful calls remembered under their client token for 24 hours.
CREATE TABLE idempotency_records (
    account_id   TEXT NOT NULL,
    operation    TEXT NOT NULL,
    -- Bytes, not text: a token may hold any character, NUL included.
    client_token BLOB NOT NULL,
    fingerprint  BLOB NOT NULL,
    outcome      TEXT NOT NULL CHECK (json_valid(outcome)),
    recorded_at  TEXT NOT NULL,
    CONSTRAINT idempotency_records_pkey PRIMARY KEY (account_id, operation, client_token)
) STRICT;

-- Where each projection is in the log: the two parts of its LogPosition (on SQLite the
-- position twice, see LogPosition). One process holds the database (its lock file), so there
-- is no advisory lock; `holder` still names it for operators.
CREATE TABLE projection_checkpoints (
    name            TEXT    PRIMARY KEY,
    log_order       INTEGER NOT NULL DEFAULT 0,
    global_position INTEGER NOT NULL DEFAULT 0,
    holder          TEXT,
    updated_at      TEXT
) STRICT;

-- An audit view, kept by the `account_activity` projection.
CREATE TABLE account_activity (
    account_id       TEXT    PRIMARY KEY,
    events           INTEGER NOT NULL,
    contacts_added   INTEGER NOT NULL,
    last_position    INTEGER NOT NULL,
    last_recorded_at TEXT    NOT NULL
) STRICT;
