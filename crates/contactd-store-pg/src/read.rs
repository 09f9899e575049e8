//! Reads of the read model: a contact's state, pages of contacts, remembered calls.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use contactd_app::{IdempotencyKey, ListedContact, Page, PageRequest, RememberedCall, StoreError};
use contactd_domain::{AccountId, Contact, ContactId, Directory, MemberId};
use sqlx::PgPool;

use crate::deadline::{Budget, bounded};
use crate::error::{stopped, store_error};
use contactd_store_core::documents::{
    CONTACT_COLUMNS, StoredContact, StoredDirectory, outcome_from_json,
};

pub(crate) async fn load_contact(
    pool: &PgPool,
    budget: Budget,
    account_id: &AccountId,
    contact_id: &ContactId,
) -> Result<Option<Contact>, StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE contact_id = $1 AND account_id = $2")
    });
    let statement = sqlx::query_as::<_, StoredContact>(SQL.as_str())
        .bind(contact_id.as_str())
        .bind(account_id.as_str());
    bounded(pool, budget, false, async |connection| {
        statement.fetch_optional(&mut *connection).await
    })
    .await
    .map_err(stopped("loading a contact failed"))?
    .map(StoredContact::into_contact)
    .transpose()
}

/// A page's row with the count of every contact the filter matches, computed by the same
/// statement (a window over the filter, before `LIMIT`), so page and count agree.
#[derive(sqlx::FromRow)]
struct PageRow {
    #[sqlx(flatten)]
    contact: StoredContact,
    associated_at: Option<DateTime<Utc>>,
    total_count: i64,
}

pub(crate) async fn list_contacts(
    pool: &PgPool,
    account_id: &AccountId,
    only: Option<&ContactId>,
    member: Option<&MemberId>,
    page: PageRequest,
) -> Result<Page<ListedContact>, StoreError> {
    // Every contact of the account, or those that apply to a node of its directory: one
    // indexed range of `effective_contacts`, in list order, whatever the directory's depth.
    const ALL: &str = "FROM contacts c WHERE c.account_id = $1 AND ($2::text IS NULL OR c.contact_id = $2) \
                       AND $5::text IS NULL";
    const APPLYING: &str = "FROM effective_contacts e \
         JOIN contacts c ON c.contact_id = e.contact_id AND c.account_id = e.account_id \
         WHERE e.account_id = $1 AND ($2::text IS NULL OR e.contact_id = $2) AND e.node_id = $5";
    static PAGES: LazyLock<[(String, String); 2]> = LazyLock::new(|| {
        [
            (ALL, "NULL::timestamptz", "c"),
            (APPLYING, "e.associated_at", "e"),
        ]
        .map(|(filter, associated, order)| {
            (
                format!(
                    "SELECT c.contact_id, c.account_id, c.created_at, c.version, c.state, \
                         {associated} AS associated_at, count(*) OVER () AS total_count {filter} \
                         ORDER BY {order}.created_at, {order}.contact_id LIMIT $3 OFFSET $4"
                ),
                format!("SELECT count(*) {filter}"),
            )
        })
    });
    let (sql, count_sql) = &PAGES[usize::from(member.is_some())];
    let only = only.map(ContactId::as_str);
    let member = member.map(MemberId::as_str);
    let offset = i64::try_from(page.offset()).unwrap_or(i64::MAX);
    let rows = sqlx::query_as::<_, PageRow>(sql)
        .bind(account_id.as_str())
        .bind(only)
        .bind(i64::from(page.size))
        .bind(offset)
        .bind(member)
        .fetch_all(pool)
        .await
        .map_err(|e| store_error("listing contacts failed", e))?;
    let total_count = match rows.first() {
        Some(row) => row.total_count,
        None if offset == 0 => 0,
        // A page past the end has no row to carry the count: ask for it.
        None => sqlx::query_scalar(count_sql)
            .bind(account_id.as_str())
            .bind(only)
            .bind(0_i64)
            .bind(0_i64)
            .bind(member)
            .fetch_one(pool)
            .await
            .map_err(|e| store_error("counting contacts failed", e))?,
    };
    let items = rows
        .into_iter()
        .map(|row| {
            let contact = row.contact.into_contact()?;
            Ok(ListedContact {
                associated_at: row.associated_at.or_else(|| contact.associated_at()),
                contact,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Page {
        request: page,
        total_count: u64::try_from(total_count).unwrap_or(0),
        items,
    })
}

pub(crate) async fn load_directory(
    pool: &PgPool,
    budget: Budget,
    account_id: &AccountId,
) -> Result<Option<Directory>, StoreError> {
    let statement = sqlx::query_as::<_, StoredDirectory>(
        "SELECT account_id, resource_directory_id, version, state FROM directories WHERE account_id = $1",
    )
    .bind(account_id.as_str());
    bounded(pool, budget, false, async |connection| {
        statement.fetch_optional(&mut *connection).await
    })
    .await
    .map_err(stopped("loading a directory failed"))?
    .map(StoredDirectory::into_directory)
    .transpose()
}

pub(crate) async fn recall(
    pool: &PgPool,
    key: &IdempotencyKey,
    since: DateTime<Utc>,
) -> Result<Option<RememberedCall>, StoreError> {
    let row: Option<(Vec<u8>, serde_json::Value, DateTime<Utc>)> = sqlx::query_as(
        "SELECT fingerprint, outcome, recorded_at FROM idempotency_records \
         WHERE account_id = $1 AND operation = $2 AND client_token = $3",
    )
    .bind(key.account_id.as_str())
    .bind(key.operation.as_str())
    .bind(key.token.as_str().as_bytes())
    .fetch_optional(pool)
    .await
    .map_err(|e| store_error("recalling a client token failed", e))?;
    match row {
        None => Ok(None),
        Some((_, _, recorded_at)) if recorded_at < since => {
            // Expired: forget it now, so that the token is free for the call about to use it.
            sqlx::query(
                "DELETE FROM idempotency_records \
                 WHERE account_id = $1 AND operation = $2 AND client_token = $3 AND recorded_at < $4",
            )
            .bind(key.account_id.as_str())
            .bind(key.operation.as_str())
            .bind(key.token.as_str().as_bytes())
            .bind(since)
            .execute(pool)
            .await
            .map_err(|e| store_error("forgetting an expired client token failed", e))?;
            Ok(None)
        }
        Some((fingerprint, outcome, recorded_at)) => Ok(Some(RememberedCall {
            key: key.clone(),
            fingerprint,
            outcome: outcome_from_json(outcome)?,
            recorded_at,
        })),
    }
}
