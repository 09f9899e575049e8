-- The inline read model keeps a contact's fold as one JSON document beside the columns that
-- are looked up, ordered or compared: a field the aggregate gains is then written in one place
-- (the store's stored-state type), not in every statement that writes the row (ADR 7).

ALTER TABLE contacts ADD COLUMN state jsonb;

UPDATE contacts SET state = jsonb_strip_nulls(jsonb_build_object(
    'name', name,
    'email_address', email_address,
    'active_email_address', active_email_address,
    'phone_number', phone_number,
    'active_phone_number', active_phone_number,
    'title', title,
    'message_types', to_jsonb(message_types),
    'status', status,
    'updated_at', updated_at
));

ALTER TABLE contacts
    ALTER COLUMN state SET NOT NULL,
    DROP COLUMN name,
    DROP COLUMN email_address,
    DROP COLUMN active_email_address,
    DROP COLUMN phone_number,
    DROP COLUMN active_phone_number,
    DROP COLUMN title,
    DROP COLUMN message_types,
    DROP COLUMN status,
    DROP COLUMN updated_at;
