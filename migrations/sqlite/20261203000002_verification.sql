-- Verification: the codes issued (their tries, and the hash of their confirmation link), the
-- send limits, and the outbox of the messages that carry the codes. No code and no link token
-- is stored (ADR 8).

-- One row per code issued, written by the send's append. A send removes the rows of the
-- target's codes that expired more than a day ago.
CREATE TABLE verification_codes (
    verification_id BLOB    PRIMARY KEY CHECK (length(verification_id) = 16),
    account_id      TEXT    NOT NULL,
    contact_id      TEXT    NOT NULL,
    channel         TEXT    NOT NULL CHECK (channel IN ('email', 'phone')),
    -- SHA-256 of the link's token: finds the code from its link.
    link_hash       BLOB    NOT NULL UNIQUE,
    expires_at      TEXT    NOT NULL,
    -- Every try counts, right or wrong, before the code is compared.
    tries           INTEGER NOT NULL DEFAULT 0 CHECK (tries >= 0)
) STRICT;

CREATE INDEX verification_codes_by_contact ON verification_codes (account_id, contact_id, channel);

-- Sends per account per UTC day (the day as 'YYYY-MM-DD'): a counter row whose CHECK refuses
-- the send past the limit written with it.
CREATE TABLE verification_send_days (
    account_id TEXT    PRIMARY KEY,
    day        TEXT    NOT NULL,
    sends      INTEGER NOT NULL CHECK (sends >= 0),
    max_sends  INTEGER NOT NULL,
    CONSTRAINT verification_send_days_within_limit CHECK (sends <= max_sends)
) STRICT;

-- Sends per target in any minute: the times of the target's sends in the last minute, as a
-- JSON array. The target is kept as a keyed digest, never as the address itself.
CREATE TABLE verification_send_windows (
    account_id    TEXT    NOT NULL,
    target_digest BLOB    NOT NULL,
    sent_at       TEXT    NOT NULL CHECK (json_valid(sent_at)),
    max_sends     INTEGER NOT NULL,
    PRIMARY KEY (account_id, target_digest),
    CONSTRAINT verification_send_windows_within_limit CHECK (json_array_length(sent_at) <= max_sends)
) STRICT;

-- The messages to send, recorded by the verification_outbox projection from the log (in its
-- own transaction, never in the command's) and claimed by the dispatcher with a lease
-- committed before the message is sent.
CREATE TABLE outbox_messages (
    -- The id of the event that asked for the message: its idempotency key.
    message_id      BLOB    PRIMARY KEY CHECK (length(message_id) = 16),
    account_id      TEXT    NOT NULL,
    contact_id      TEXT    NOT NULL,
    contact_name    TEXT    NOT NULL,
    channel         TEXT    NOT NULL CHECK (channel IN ('email', 'phone')),
    recipient       TEXT    NOT NULL,
    verification_id BLOB    NOT NULL,
    expires_at      TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
    -- Attempts claimed, and outcomes recorded (the version of the message's delivery stream).
    attempts        INTEGER NOT NULL DEFAULT 0,
    recorded        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    lease_owner     TEXT,
    lease_until     TEXT,
    last_error      TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
) STRICT;

-- The pending messages in the order they fall due: what every claim and every wait reads.
CREATE INDEX outbox_messages_due ON outbox_messages (next_attempt_at) WHERE state = 'pending';
