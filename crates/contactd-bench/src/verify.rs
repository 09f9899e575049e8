//! The end-of-run check that the log and the read model agree: for every contact, its row's
//! version = the number of events in its stream = the stream's highest version; no contact
//! stream without a row (a verification message's delivery stream has none); every contact's
//! name claimed by it; every quota counter equal to the count; and the same for each
//! resource directory's row and its stream (`directory-<account>`). One check, in each
//! store's dialect.

use anyhow::Context;

use crate::db::Db;

/// What the check found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Agreement {
    pub contacts: i64,
    pub events: i64,
    /// Contacts whose version differs from their stream's count or highest version.
    pub version_mismatches: i64,
    /// Streams in the log without a read-model row.
    pub orphan_streams: i64,
    /// Contacts whose name is not claimed by them, and claims of no contact.
    pub name_mismatches: i64,
    /// Accounts whose quota counter differs from their number of contacts.
    pub quota_mismatches: i64,
    /// Directories whose row's version differs from their stream's count or highest version,
    /// and directory streams without a row.
    pub directory_mismatches: i64,
}

impl Agreement {
    pub fn holds(&self) -> bool {
        self.version_mismatches == 0
            && self.orphan_streams == 0
            && self.name_mismatches == 0
            && self.quota_mismatches == 0
            && self.directory_mismatches == 0
    }

    /// The findings of two checks together (of two servers' databases).
    pub fn plus(&self, other: &Agreement) -> Agreement {
        Agreement {
            contacts: self.contacts + other.contacts,
            events: self.events + other.events,
            version_mismatches: self.version_mismatches + other.version_mismatches,
            orphan_streams: self.orphan_streams + other.orphan_streams,
            name_mismatches: self.name_mismatches + other.name_mismatches,
            quota_mismatches: self.quota_mismatches + other.quota_mismatches,
            directory_mismatches: self.directory_mismatches + other.directory_mismatches,
        }
    }
}

const POSTGRES: &str = r#"
WITH streams AS (
    SELECT stream_id, count(*) AS events, max(stream_version) AS last_version
    FROM events WHERE event_type NOT LIKE 'VerificationMessage%' AND stream_id NOT LIKE 'directory-%'
    GROUP BY stream_id
),
directory_streams AS (
    SELECT stream_id, count(*) AS events, max(stream_version) AS last_version
    FROM events WHERE stream_id LIKE 'directory-%' GROUP BY stream_id
),
per_account AS (
    SELECT account_id, count(*) AS contacts FROM contacts GROUP BY account_id
)
SELECT
    (SELECT count(*) FROM contacts) AS contacts,
    (SELECT coalesce(sum(events), 0)::bigint FROM streams) AS events,
    (SELECT count(*) FROM contacts c LEFT JOIN streams s ON s.stream_id = c.contact_id
      WHERE s.events IS DISTINCT FROM c.version OR s.last_version IS DISTINCT FROM c.version)
        AS version_mismatches,
    (SELECT count(*) FROM streams s WHERE NOT EXISTS
        (SELECT 1 FROM contacts c WHERE c.contact_id = s.stream_id)) AS orphan_streams,
    (SELECT count(*) FROM contacts c WHERE NOT EXISTS
        (SELECT 1 FROM contact_names n WHERE n.account_id = c.account_id
            AND n.name_key = lower(c.state->>'name') AND n.contact_id = c.contact_id))
     + (SELECT count(*) FROM contact_names n WHERE NOT EXISTS
        (SELECT 1 FROM contacts c WHERE c.contact_id = n.contact_id)) AS name_mismatches,
    (SELECT count(*) FROM per_account p FULL JOIN contact_quotas q ON q.account_id = p.account_id
      WHERE q.contacts IS DISTINCT FROM p.contacts) AS quota_mismatches,
    (SELECT count(*) FROM directories d FULL JOIN directory_streams s
        ON s.stream_id = 'directory-' || d.account_id
      WHERE s.events IS DISTINCT FROM d.version OR s.last_version IS DISTINCT FROM d.version)
        AS directory_mismatches
"#;

/// The same on SQLite: no casts (its integers are 64-bit already), `GLOB` for `LIKE` (which
/// is case-sensitive on PostgreSQL, not on SQLite), and `IS NOT` for `IS DISTINCT FROM`.
/// SQLite's `lower` folds ASCII letters only, PostgreSQL's every letter: the benchmark's names
/// are ASCII (`letters_name`), on which the two agree.
const SQLITE: &str = r#"
WITH streams AS (
    SELECT stream_id, count(*) AS events, max(stream_version) AS last_version
    FROM events WHERE event_type NOT GLOB 'VerificationMessage*' AND stream_id NOT GLOB 'directory-*'
    GROUP BY stream_id
),
directory_streams AS (
    SELECT stream_id, count(*) AS events, max(stream_version) AS last_version
    FROM events WHERE stream_id GLOB 'directory-*' GROUP BY stream_id
),
per_account AS (
    SELECT account_id, count(*) AS contacts FROM contacts GROUP BY account_id
)
SELECT
    (SELECT count(*) FROM contacts) AS contacts,
    (SELECT coalesce(sum(events), 0) FROM streams) AS events,
    (SELECT count(*) FROM contacts c LEFT JOIN streams s ON s.stream_id = c.contact_id
      WHERE s.events IS NOT c.version OR s.last_version IS NOT c.version)
        AS version_mismatches,
    (SELECT count(*) FROM streams s WHERE NOT EXISTS
        (SELECT 1 FROM contacts c WHERE c.contact_id = s.stream_id)) AS orphan_streams,
    (SELECT count(*) FROM contacts c WHERE NOT EXISTS
        (SELECT 1 FROM contact_names n WHERE n.account_id = c.account_id
            AND n.name_key = lower(c.state->>'name') AND n.contact_id = c.contact_id))
     + (SELECT count(*) FROM contact_names n WHERE NOT EXISTS
        (SELECT 1 FROM contacts c WHERE c.contact_id = n.contact_id)) AS name_mismatches,
    (SELECT count(*) FROM per_account p FULL JOIN contact_quotas q ON q.account_id = p.account_id
      WHERE q.contacts IS NOT p.contacts) AS quota_mismatches,
    (SELECT count(*) FROM directories d FULL JOIN directory_streams s
        ON s.stream_id = 'directory-' || d.account_id
      WHERE s.events IS NOT d.version OR s.last_version IS NOT d.version)
        AS directory_mismatches
"#;

pub async fn check(db: &Db) -> anyhow::Result<Agreement> {
    let checked = match db {
        Db::Postgres(pool) => sqlx::query_as(POSTGRES).fetch_one(pool).await,
        Db::Sqlite(pool) => sqlx::query_as(SQLITE).fetch_one(pool).await,
    };
    checked.context("checking that the log and the read model agree")
}
