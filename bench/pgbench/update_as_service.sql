-- The SQL of one UpdateMessageContact exactly as contactd sends it (crates/contactd-store:
-- read.rs's load of the contact's row, then append.rs's single append statement, both
-- prepared), with the service's CPU taken out: 2 round trips, 1 commit. The difference from
-- update_single.sql is what the service's statements cost the database beyond the minimum
-- (the SELECT's round trip, the upsert, the name, quota and client-token parts). Run with
-- -M prepared -D contacts=<seeded contacts> -D clients=<-c>; bench_contacts maps 1..contacts to
-- contact ids. Like the service, which serialises the commands on one contact, no two clients
-- race on one contact: each picks from its own share (a race would abort the client on the
-- version check, where the service decides again).
\set n 1 + :client_id + :clients * random(0, :contacts / :clients - 1)
\set r random(1, 1000000000)
SELECT contact_id AS cid, account_id AS aid, name AS cname, email_address, active_email_address,
       phone_number AS phone, active_phone_number, title, message_types AS types, status,
       created_at, updated_at, version AS v, upper(gen_random_uuid()::text) AS rid
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
    INSERT INTO contacts (contact_id, account_id, name, email_address, active_email_address,
                          phone_number, active_phone_number, title, message_types, status,
                          created_at, updated_at, version)
    VALUES (:cid, :aid, :cname, 'pgb' || :r || '@bench.example', NULL, :phone, NULL, :title,
            :types, :status, :created_at, now(), :v::bigint + 1)
    ON CONFLICT (contact_id) DO UPDATE SET
        name = EXCLUDED.name,
        email_address = EXCLUDED.email_address,
        active_email_address = EXCLUDED.active_email_address,
        phone_number = EXCLUDED.phone_number,
        active_phone_number = EXCLUDED.active_phone_number,
        title = EXCLUDED.title,
        message_types = EXCLUDED.message_types,
        status = EXCLUDED.status,
        updated_at = EXCLUDED.updated_at,
        version = EXCLUDED.version
    WHERE contacts.version = :v::bigint AND contacts.account_id = EXCLUDED.account_id
    RETURNING 1
),
released AS (
    DELETE FROM contact_names
    WHERE account_id = :aid AND name_key = NULL::text AND contact_id = :cid
),
claimed AS (
    INSERT INTO contact_names (account_id, name_key, contact_id)
    SELECT :aid, NULL::text, :cid WHERE NULL::text IS NOT NULL
),
counted AS (
    INSERT INTO contact_quotas (account_id, contacts, max_contacts)
    SELECT :aid, 1, NULL::int WHERE NULL::int IS NOT NULL
    ON CONFLICT (account_id) DO UPDATE
        SET contacts = contact_quotas.contacts + 1, max_contacts = EXCLUDED.max_contacts
),
remembered AS (
    INSERT INTO idempotency_records (account_id, operation, client_token, fingerprint, outcome, recorded_at)
    SELECT :aid, NULL::text, NULL::bytea, NULL::bytea, NULL::jsonb, now() WHERE NULL::text IS NOT NULL
)
SELECT (SELECT count(*) FROM appended) AS appended, (SELECT count(*) FROM projected) AS projected;
