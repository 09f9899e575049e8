-- Crypto-shredding (ADR 13): each contact's data key, wrapped by a master key, and the one
-- change of a stored event the log allows.

-- A contact's data key: the personal fields of its events are sealed with it. Forgetting the
-- contact destroys it (both columns NULL); the row stays, saying when.
CREATE TABLE contact_keys (
    contact_id    text        PRIMARY KEY,
    account_id    text        NOT NULL,
    -- The master key that wraps it (a digest of the key, never the key), NULL once destroyed.
    master_key_id text,
    wrapped_key   bytea,
    created_at    timestamptz NOT NULL,
    forgotten_at  timestamptz,
    CONSTRAINT contact_keys_destroyed_whole CHECK ((master_key_id IS NULL) = (wrapped_key IS NULL))
);

-- No index beside the key: a rotation reads the whole table (rare, in batches), while every
-- add would pay for one more index.

-- The log stays append-only, with one exception: sealing in place the personal fields of an
-- event stored in clear before this change (`contactd events encrypt`, or forgetting its
-- contact). Only the payload and the schema version change, and only from a clear version of
-- an event type that names a person to its sealed twin (the version plus 100) (the list is
-- `contactd_store_core::sealing::sealing_moves`, and a test holds them equal), so an event
-- is sealed at most once and nothing else about it ever changes.
CREATE OR REPLACE FUNCTION refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (NEW.global_position, NEW.transaction_id, NEW.event_id, NEW.account_id, NEW.stream_id,
            NEW.stream_version, NEW.event_type, NEW.request_id, NEW.caller, NEW.correlation_id,
            NEW.causation_id, NEW.recorded_at)
           IS NOT DISTINCT FROM
           (OLD.global_position, OLD.transaction_id, OLD.event_id, OLD.account_id, OLD.stream_id,
            OLD.stream_version, OLD.event_type, OLD.request_id, OLD.caller, OLD.correlation_id,
            OLD.causation_id, OLD.recorded_at)
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
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the event log is append-only: % on events is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
