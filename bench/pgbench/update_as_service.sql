-- The SQL of one UpdateMessageContact exactly as contactd sends it (crates/contactd-store:
-- read.rs's load of the contact's row, then append.rs's single append statement, both
-- prepared), with the service's CPU taken out: 2 round trips, 1 commit. The append is the
-- variant an update that keeps its name and carries no client token is composed of: the events
-- and the read-model row. The difference from update_single.sql is what the service's
-- statements cost the database beyond the minimum (chiefly the SELECT's round trip). Run with
-- -M prepared -D contacts=<seeded contacts> -D clients=<-c>; bench_contacts maps 1..contacts to
-- contact ids. Like the service, which serialises the commands on one contact, no two clients
-- race on one contact: each picks from its own share (a race would abort the client on the
-- version check, where the service decides again).
\set n 1 + :client_id + :clients * random(0, :contacts / :clients - 1)
\set r random(1, 1000000000)
SELECT contact_id AS cid, account_id AS aid, created_at, version AS v, state::text AS st,
       upper(gen_random_uuid()::text) AS rid
  FROM contacts
 WHERE contact_id = (SELECT contact_id FROM bench_contacts WHERE n = :n) AND account_id <> '' \gset
WITH appended AS (
    INSERT INTO events (event_id, account_id, stream_id, stream_version, event_type, schema_version,
                        payload, request_id, caller, correlation_id, causation_id, recorded_at)
    SELECT e.event_id, :aid, :cid, e.stream_version, e.event_type, e.schema_version,
           e.payload, :rid, 'account:' || :aid, :rid, :rid, now()
    FROM UNNEST(ARRAY[gen_random_uuid()]::uuid[], ARRAY[:v::bigint + 1]::bigint[],
                ARRAY['EmailAddressChangeRequested']::text[], ARRAY[1]::int[],
                ARRAY[jsonb_build_object('email_address', 'pgb' || :r || '@bench.example')]::jsonb[])
         AS e(event_id, stream_version, event_type, schema_version, payload)
    RETURNING 1
),
projected AS (
    UPDATE contacts SET
        state = jsonb_set(jsonb_set(:st::jsonb, '{email_address}', to_jsonb('pgb' || :r || '@bench.example')),
                          '{updated_at}', to_jsonb(now())),
        version = :v::bigint + 1
    WHERE contact_id = :cid AND account_id = :aid AND version = :v::bigint
    RETURNING 1
)
SELECT (SELECT count(*) FROM appended) AS appended, (SELECT count(*) FROM projected) AS projected;
