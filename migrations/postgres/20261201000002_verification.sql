-- Verification: the codes issued (their tries, and the hash of their confirmation link), the
-- send limits, and the outbox of the messages that carry the codes. No code and no link token
-- is stored: both are derived from the verification id under a secret kept outside the
-- database (ADR 8).

-- One row per code issued, written by the send's append; the contact's state says which one
-- is live. A send removes the rows of the target's codes that expired more than a day ago.
CREATE TABLE verification_codes (
    verification_id uuid        PRIMARY KEY,
    account_id      text        NOT NULL,
    contact_id      text        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('email', 'phone')),
    -- SHA-256 of the link's token: finds the code from its link.
    link_hash       bytea       NOT NULL UNIQUE,
    expires_at      timestamptz NOT NULL,
    -- Every try counts, right or wrong, before the code is compared: the row is the lock that
    -- holds concurrent tries of several processes to the limit.
    tries           integer     NOT NULL DEFAULT 0 CHECK (tries >= 0)
);

CREATE INDEX verification_codes_by_contact ON verification_codes (account_id, contact_id, channel);

-- Sends per account per UTC day: a counter row that concurrent sends lock in turn. The limit
-- in force is written with each send, so that the CHECK refuses the send that would exceed it.
CREATE TABLE verification_send_days (
    account_id text    PRIMARY KEY,
    day        date    NOT NULL,
    sends      integer NOT NULL CHECK (sends >= 0),
    max_sends  integer NOT NULL,
    CONSTRAINT verification_send_days_within_limit CHECK (sends <= max_sends)
);

-- Sends per target in any minute: the times of the target's sends in the last minute. The
-- target is kept as a keyed digest, never as the address itself.
CREATE TABLE verification_send_windows (
    account_id    text          NOT NULL,
    target_digest bytea         NOT NULL,
    sent_at       timestamptz[] NOT NULL,
    max_sends     integer       NOT NULL,
    PRIMARY KEY (account_id, target_digest),
    CONSTRAINT verification_send_windows_within_limit CHECK (cardinality(sent_at) <= max_sends)
);

-- The messages to send, recorded by the verification_outbox projection from the log (in its
-- own transaction, never in the command's) and claimed by the dispatchers of every process
-- with a lease committed before the message is sent.
CREATE TABLE outbox_messages (
    -- The id of the event that asked for the message: its idempotency key.
    message_id      uuid        PRIMARY KEY,
    account_id      text        NOT NULL,
    contact_id      text        NOT NULL,
    contact_name    text        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('email', 'phone')),
    recipient       text        NOT NULL,
    verification_id uuid        NOT NULL,
    expires_at      timestamptz NOT NULL,
    correlation_id  text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
    -- Attempts claimed, and outcomes recorded (the version of the message's delivery stream):
    -- an attempt whose process died is claimed again but never recorded.
    attempts        integer     NOT NULL DEFAULT 0,
    recorded        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_owner     text,
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The pending messages in the order they fall due: what every claim and every wait reads.
CREATE INDEX outbox_messages_due ON outbox_messages (next_attempt_at) WHERE state = 'pending';
