-- Crypto-shredding (ADR 13) on SQLite: each contact's data key, wrapped by a master key, and
-- the one change of a stored event the log allows. The same rules as migrations/postgres.

-- A contact's data key: the personal fields of its events are sealed with it. Forgetting the
-- contact destroys it (both columns NULL); the row stays, saying when. Times are TEXT as sqlx
-- writes a DateTime<Utc>, like every table here.
CREATE TABLE contact_keys (
    contact_id    TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL,
    -- The master key that wraps it (a digest of the key, never the key), NULL once destroyed.
    master_key_id TEXT,
    wrapped_key   BLOB,
    created_at    TEXT NOT NULL,
    forgotten_at  TEXT,
    CONSTRAINT contact_keys_destroyed_whole CHECK ((master_key_id IS NULL) = (wrapped_key IS NULL))
) STRICT;

-- No index beside the key: a rotation reads the whole table (rare, in batches), while every
-- add would pay for one more index.

-- The log stays append-only, with one exception: sealing in place the personal fields of an
-- event stored in clear before this change (`contactd events encrypt`, or forgetting its
-- contact). Only the payload and the schema version change, and only from a clear version of
-- an event type that names a person to its sealed twin (the version plus 100): the list is
-- `contactd_store_core::sealing::sealing_moves()`, and the store's tests try every move and
-- the moves around them, so that the two cannot drift apart. An event is sealed at most once
-- and nothing else about it ever changes.
DROP TRIGGER events_append_only;

CREATE TRIGGER events_append_only BEFORE UPDATE ON events
WHEN NOT (
    NEW.global_position IS OLD.global_position
    AND NEW.event_id IS OLD.event_id
    AND NEW.account_id IS OLD.account_id
    AND NEW.stream_id IS OLD.stream_id
    AND NEW.stream_version IS OLD.stream_version
    AND NEW.event_type IS OLD.event_type
    AND NEW.request_id IS OLD.request_id
    AND NEW.caller IS OLD.caller
    AND NEW.correlation_id IS OLD.correlation_id
    AND NEW.causation_id IS OLD.causation_id
    AND NEW.recorded_at IS OLD.recorded_at
    AND (OLD.event_type, OLD.schema_version, NEW.schema_version) IN (VALUES
        ('MessageContactAdded', 1, 101),
        ('MessageContactAdded', 2, 102),
        ('MessageContactRenamed', 1, 101),
        ('EmailAddressChangeRequested', 1, 101),
        ('PhoneNumberChangeRequested', 1, 101),
        ('EmailVerificationRequested', 1, 101),
        ('PhoneVerificationRequested', 1, 101),
        ('EmailAddressVerified', 1, 101),
        ('PhoneNumberVerified', 1, 101),
        ('EmailAddressChangeCancelled', 1, 101),
        ('PhoneNumberChangeCancelled', 1, 101)
    )
)
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: UPDATE on events is refused');
END;
