-- The contact's lifecycle: the resource directory mirror (an inline read model of each
-- account's directory stream), the member-contacts projection (its own copy of the tree, the
-- bindings, and the contacts that apply to each node), and the lifecycle jobs it records.

-- The inline read model of an account's directory stream, written in the append's
-- transaction at the expected version.
CREATE TABLE directories (
    account_id            TEXT    PRIMARY KEY,
    resource_directory_id TEXT    NOT NULL,
    version               INTEGER NOT NULL,
    state                 TEXT    NOT NULL CHECK (json_valid(state))
) STRICT;

-- The member_contacts projection, rebuildable from the log. Its tree: every node with its
-- parent, and when it came under that parent.
CREATE TABLE directory_nodes (
    account_id TEXT    NOT NULL,
    node_id    TEXT    NOT NULL,
    parent_id  TEXT,
    is_member  INTEGER NOT NULL CHECK (is_member IN (0, 1)),
    joined_at  TEXT    NOT NULL,
    PRIMARY KEY (account_id, node_id)
) STRICT;

CREATE INDEX directory_nodes_by_parent ON directory_nodes (account_id, parent_id);

-- Each contact's direct bindings, and since when.
CREATE TABLE contact_bindings (
    account_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    node_id    TEXT NOT NULL,
    bound_at   TEXT NOT NULL,
    PRIMARY KEY (account_id, contact_id, node_id)
) STRICT;

CREATE INDEX contact_bindings_by_node ON contact_bindings (account_id, node_id);

-- The contacts that apply to each node, and since when: what ListMessageContacts(member=…)
-- reads in one indexed range, in List order.
CREATE TABLE effective_contacts (
    account_id    TEXT NOT NULL,
    node_id       TEXT NOT NULL,
    contact_id    TEXT NOT NULL,
    -- The contact's own creation time: the list's order, held in the index.
    created_at    TEXT NOT NULL,
    associated_at TEXT NOT NULL,
    PRIMARY KEY (account_id, node_id, contact_id)
) STRICT;

CREATE INDEX effective_contacts_in_list_order ON effective_contacts (account_id, node_id, created_at, contact_id);
CREATE INDEX effective_contacts_by_contact ON effective_contacts (account_id, contact_id);

-- Jobs the member_contacts projection records in its batch's transaction (never in a
-- command's) and the lifecycle worker carries out with a lease committed first.
CREATE TABLE lifecycle_jobs (
    -- Jobs are carried out in the order they were recorded; the rowid is that order.
    recorded        INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Derived from the causing event, so that a batch recorded again records nothing twice.
    job_id          TEXT    NOT NULL UNIQUE,
    account_id      TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('publish', 'unbind', 'finish_deletion')),
    contact_id      TEXT,
    -- unbind: the target; publish: the member account it is for.
    target          TEXT,
    -- publish: the subject, the message id, the payload (JSON) and the message types (a JSON
    -- array of their names).
    subject         TEXT,
    message_id      TEXT,
    payload         TEXT CHECK (payload IS NULL OR json_valid(payload)),
    message_types   TEXT CHECK (message_types IS NULL OR json_valid(message_types)),
    -- The asynchronous delete the job belongs to, if any.
    deletion_id     BLOB,
    causation_id    TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    leased_until    TEXT,
    lease_owner     TEXT,
    last_error      TEXT
) STRICT;

CREATE INDEX lifecycle_jobs_due ON lifecycle_jobs (next_attempt_at) WHERE state = 'pending';
CREATE INDEX lifecycle_jobs_by_deletion ON lifecycle_jobs (deletion_id) WHERE deletion_id IS NOT NULL;
-- A member's messages about a contact go out in order.
CREATE INDEX lifecycle_jobs_in_order ON lifecycle_jobs (subject, contact_id, recorded) WHERE state = 'pending';
-- The removals of a contact's asynchronous delete supersede its messages recorded before.
CREATE INDEX lifecycle_jobs_deleting ON lifecycle_jobs (account_id, contact_id, recorded) WHERE deletion_id IS NOT NULL;
