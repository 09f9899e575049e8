-- The event log: the truth from which every other table can be rebuilt.

CREATE TABLE events (
    -- Total order of the log. Sequence values commit out of order: readers of the global log
    -- order and checkpoint by (transaction_id, global_position) below the oldest running
    -- transaction, never by global_position alone.
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL UNIQUE,
    account_id      text        NOT NULL,
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version > 0),
    payload         jsonb       NOT NULL,
    request_id      text        NOT NULL,
    caller          text        NOT NULL,
    correlation_id  text        NOT NULL,
    causation_id    text        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    -- Optimistic concurrency: an append decided on a stale version collides here.
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_by_transaction ON events (transaction_id, global_position);
-- An account's events in log order (audit streams).
CREATE INDEX events_by_account ON events (account_id, transaction_id, global_position);

-- Append-only, enforced by the database itself (superusers included; only
-- session_replication_role = replica skips triggers).
CREATE FUNCTION refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on events is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_event_change();

CREATE TRIGGER events_never_truncated
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_event_change();

-- The inline read model: one row per contact, the fold of its stream, written in the append's
-- transaction. It is also the snapshot commands are decided on, so an update costs the same
-- whatever the length of the stream.
CREATE TABLE contacts (
    contact_id           text        PRIMARY KEY,
    account_id           text        NOT NULL,
    name                 text        NOT NULL,
    email_address        text        NOT NULL,
    active_email_address text,
    phone_number         text,
    active_phone_number  text,
    title                text        NOT NULL,
    message_types        text[]      NOT NULL,
    status               text        NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    version              bigint      NOT NULL
);

CREATE INDEX contacts_by_account ON contacts (account_id, created_at, contact_id);

-- Name uniqueness per account, ignoring case: a claim row per name key.
CREATE TABLE contact_names (
    account_id text NOT NULL,
    name_key   text NOT NULL,
    contact_id text NOT NULL,
    CONSTRAINT contact_names_pkey PRIMARY KEY (account_id, name_key)
);

-- The contact quota per account: a counter row that concurrent adds lock in turn. The limit in
-- force is written with each add, so the CHECK refuses the add that would exceed it.
CREATE TABLE contact_quotas (
    account_id   text    PRIMARY KEY,
    contacts     integer NOT NULL CHECK (contacts >= 0),
    max_contacts integer NOT NULL,
    CONSTRAINT contact_quotas_within_limit CHECK (contacts <= max_contacts)
);

-- Successful calls remembered under their client token for 24 hours.
CREATE TABLE idempotency_records (
    account_id   text        NOT NULL,
    operation    text        NOT NULL,
    -- Bytes, not text: a token may hold any character, NUL included.
    client_token bytea       NOT NULL,
    fingerprint  bytea       NOT NULL,
    outcome      jsonb       NOT NULL,
    recorded_at  timestamptz NOT NULL,
    CONSTRAINT idempotency_records_pkey PRIMARY KEY (account_id, operation, client_token)
);
