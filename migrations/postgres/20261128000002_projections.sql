-- Asynchronous projections: named consumers of the global log, each with a checkpoint.

-- Where each projection is in the log, in log order: (transaction_id, global_position).
-- Database projections update their checkpoint in the transaction that writes their read
-- model; external ones after their side effects (at least once).
CREATE TABLE projection_checkpoints (
    name            text        PRIMARY KEY,
    transaction_id  xid8        NOT NULL DEFAULT '0',
    global_position bigint      NOT NULL DEFAULT 0,
    -- The process that holds the projection's advisory lock, for operators and tests.
    holder          text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- An audit view, kept by the `account_activity` projection: how much each account's contacts
-- changed and when last.
CREATE TABLE account_activity (
    account_id       text        PRIMARY KEY,
    events           bigint      NOT NULL,
    contacts_added   bigint      NOT NULL,
    last_position    bigint      NOT NULL,
    last_recorded_at timestamptz NOT NULL
);
