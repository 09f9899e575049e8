-- The contact's lifecycle: the resource directory mirror (an inline read model of each
-- account's directory stream), the member-contacts projection (its own copy of the tree, the
-- bindings, and the contacts that apply to each node), and the lifecycle jobs it records.

-- The inline read model of an account's directory stream: written in the append's statement,
-- at the expected version, like a contact's row.
CREATE TABLE directories (
    account_id            text    PRIMARY KEY,
    resource_directory_id text    NOT NULL,
    version               bigint  NOT NULL,
    -- The folders and members with their parents (the fold of the stream).
    state                 jsonb   NOT NULL
);

-- The member_contacts projection, rebuildable from the log. Its tree: every node (the root,
-- each folder, each member account) with its parent, and when it came under that parent.
CREATE TABLE directory_nodes (
    account_id text        NOT NULL,
    node_id    text        NOT NULL,
    parent_id  text,
    is_member  boolean     NOT NULL,
    joined_at  timestamptz NOT NULL,
    PRIMARY KEY (account_id, node_id)
);

CREATE INDEX directory_nodes_by_parent ON directory_nodes (account_id, parent_id);

-- Each contact's direct bindings, and since when.
CREATE TABLE contact_bindings (
    account_id text        NOT NULL,
    contact_id text        NOT NULL,
    node_id    text        NOT NULL,
    bound_at   timestamptz NOT NULL,
    PRIMARY KEY (account_id, contact_id, node_id)
);

CREATE INDEX contact_bindings_by_node ON contact_bindings (account_id, node_id);

-- The contacts that apply to each node (bound to it or to a node above it, at any depth), and
-- since when: what ListMessageContacts(member=…) reads in one indexed query, in List order.
CREATE TABLE effective_contacts (
    account_id    text        NOT NULL,
    node_id       text        NOT NULL,
    contact_id    text        NOT NULL,
    -- The contact's own creation time: the list's order, held in the index.
    created_at    timestamptz NOT NULL,
    associated_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, node_id, contact_id)
);

CREATE INDEX effective_contacts_in_list_order ON effective_contacts (account_id, node_id, created_at, contact_id);
CREATE INDEX effective_contacts_by_contact ON effective_contacts (account_id, contact_id);

-- Jobs the member_contacts projection records in its batch's transaction (never in a
-- command's) and the lifecycle workers of every process carry out with a lease committed
-- first: publish an integration event, unbind a target the directory dropped, end an
-- asynchronous delete.
CREATE TABLE lifecycle_jobs (
    -- Derived from the causing event, so that a batch recorded again records nothing twice.
    job_id         text        PRIMARY KEY,
    account_id     text        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('publish', 'unbind', 'finish_deletion')),
    contact_id     text,
    -- unbind: the target; publish: the member account it is for.
    target         text,
    -- publish: the subject, the message id and the payload.
    subject        text,
    message_id     text,
    payload        jsonb,
    message_types  text[],
    -- The asynchronous delete the job belongs to, if any.
    deletion_id    uuid,
    causation_id   text        NOT NULL,
    correlation_id text        NOT NULL,
    state          text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
    attempts       integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    leased_until   timestamptz,
    lease_owner    text,
    last_error     text,
    -- Jobs are carried out in the order they were recorded.
    recorded       bigint      GENERATED ALWAYS AS IDENTITY
);

CREATE INDEX lifecycle_jobs_due ON lifecycle_jobs (next_attempt_at) WHERE state = 'pending';
CREATE INDEX lifecycle_jobs_by_deletion ON lifecycle_jobs (deletion_id) WHERE deletion_id IS NOT NULL;
-- A member's messages about a contact go out in order: a publish waits while an older one for
-- the same subject and contact is pending.
CREATE INDEX lifecycle_jobs_in_order ON lifecycle_jobs (subject, contact_id, recorded) WHERE state = 'pending';
-- The removals of a contact's asynchronous delete supersede its messages recorded before.
CREATE INDEX lifecycle_jobs_deleting ON lifecycle_jobs (account_id, contact_id, recorded) WHERE deletion_id IS NOT NULL;
