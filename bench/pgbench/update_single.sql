-- The SQL work of one UpdateMessageContact as a single statement (data-modifying CTEs, as
-- crates/contactd-store/src/append.rs does): bump the read-model row's version, which locks it,
-- and append the event at that version. 1 round trip, 1 commit. Run with -M prepared
-- -D contacts=<seeded contacts>; bench_contacts maps 1..contacts to contact ids.
\set n random(1, :contacts)
\set r random(1, 1000000000)
WITH bumped AS (
    UPDATE contacts
       SET state = jsonb_set(jsonb_set(state, '{email_address}', to_jsonb('pgb' || :r || '@bench.example')),
                             '{updated_at}', to_jsonb(now())),
           version = version + 1
     WHERE contact_id = (SELECT contact_id FROM bench_contacts WHERE n = :n)
 RETURNING contact_id, account_id, version, state->>'email_address' AS email_address
), call AS (
    SELECT upper(gen_random_uuid()::text) AS request_id
)
INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, schema_version,
                    payload, request_id, caller, correlation_id, causation_id, recorded_at)
SELECT gen_random_uuid(), b.account_id, b.contact_id, b.version, 'EmailAddressChangeRequested', 1,
       jsonb_build_object('email_address', b.email_address),
       c.request_id, 'account:' || b.account_id, c.request_id, c.request_id, now()
  FROM bumped b, call c;
