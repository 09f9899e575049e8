-- The SQL work of one UpdateMessageContact done naively: one statement per round trip.
-- Lock the stream's version row, insert the event at the next version, update the read-model
-- row, commit: 5 round trips, 1 commit. Run with -M prepared -D contacts=<seeded contacts>;
-- bench_contacts (filled by contactd-bench after seeding) maps 1..contacts to contact ids.
\set n random(1, :contacts)
\set r random(1, 1000000000)
BEGIN;
SELECT contact_id AS cid, account_id AS aid, version AS v, upper(gen_random_uuid()::text) AS rid
  FROM contacts
 WHERE contact_id = (SELECT contact_id FROM bench_contacts WHERE n = :n)
   FOR UPDATE \gset
INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, schema_version,
                    payload, request_id, caller, correlation_id, causation_id, recorded_at)
VALUES (gen_random_uuid(), :aid, :cid, :v::bigint + 1, 'EmailAddressChangeRequested', 1,
        jsonb_build_object('email_address', 'pgb' || :r || '@bench.example'),
        :rid, 'account:' || :aid, :rid, :rid, now());
UPDATE contacts
   SET state = jsonb_set(jsonb_set(state, '{email_address}', to_jsonb('pgb' || :r || '@bench.example')),
                         '{updated_at}', to_jsonb(now())),
       version = :v::bigint + 1
 WHERE contact_id = :cid;
COMMIT;
