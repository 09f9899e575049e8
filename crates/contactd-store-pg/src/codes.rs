//! The codes sends issued: their tries, counted by the database for every process at once,
//! and the confirmation links that find them again by the hash of their token.

use contactd_app::{LinkedCode, StoreError};
use contactd_domain::{AccountId, Channel, ContactId, VerificationId};
use sqlx::PgPool;
use uuid::Uuid;

use crate::deadline::{Budget, bounded};
use crate::error::stopped;

pub(crate) async fn claim_code_try(
    pool: &PgPool,
    budget: Budget,
    account_id: &AccountId,
    verification_id: VerificationId,
    max_tries: u32,
) -> Result<bool, StoreError> {
    // One statement: the row's lock orders concurrent tries, so none gets past the limit.
    let statement = sqlx::query_scalar(
        "UPDATE verification_codes SET tries = tries + 1 \
         WHERE verification_id = $1 AND account_id = $2 AND tries < $3 RETURNING tries",
    )
    .bind(verification_id.as_uuid())
    .bind(account_id.as_str())
    .bind(i32::try_from(max_tries).unwrap_or(i32::MAX));
    let tries: Option<i32> = bounded(pool, budget, true, async |connection| {
        statement.fetch_optional(&mut *connection).await
    })
    .await
    .map_err(stopped("counting a code's try failed"))?;
    Ok(tries.is_some())
}

pub(crate) async fn find_link(
    pool: &PgPool,
    budget: Budget,
    link_hash: &[u8; 32],
) -> Result<Option<LinkedCode>, StoreError> {
    let statement = sqlx::query_as(
        "SELECT account_id, contact_id, channel, verification_id FROM verification_codes \
         WHERE link_hash = $1",
    )
    .bind(link_hash.as_slice());
    let row: Option<(String, String, String, Uuid)> =
        bounded(pool, budget, false, async |connection| {
            statement.fetch_optional(&mut *connection).await
        })
        .await
        .map_err(stopped("finding a confirmation link failed"))?;
    let Some((account_id, contact_id, channel, verification_id)) = row else {
        return Ok(None);
    };
    let corrupt = |what: &str| {
        StoreError::internal(
            format!("verification {verification_id} has an unreadable {what}"),
            None,
        )
    };
    Ok(Some(LinkedCode {
        account_id: AccountId::parse(&account_id).map_err(|_| corrupt("account id"))?,
        contact_id: ContactId::parse(&contact_id).map_err(|_| corrupt("contact id"))?,
        channel: Channel::parse(&channel).ok_or_else(|| corrupt("channel"))?,
        verification_id: VerificationId::from_uuid(verification_id),
    }))
}
