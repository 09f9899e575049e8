//! The codes sends issued: their tries, counted on the writer so that none gets past the limit,
//! and the confirmation links that find them again by the hash of their token.

use contactd_app::{LinkedCode, StoreError};
use contactd_domain::{AccountId, Channel, ContactId, VerificationId};
use sqlx::SqlitePool;
use uuid::Uuid;

use crate::error::failed;

pub(crate) async fn claim_code_try(
    writes: &SqlitePool,
    account_id: &AccountId,
    verification_id: VerificationId,
    max_tries: u32,
) -> Result<bool, StoreError> {
    // One statement on the one writer: concurrent tries are counted one after the other.
    let tries: Option<i64> = sqlx::query_scalar(
        "UPDATE verification_codes SET tries = tries + 1 \
         WHERE verification_id = ?1 AND account_id = ?2 AND tries < ?3 RETURNING tries",
    )
    .bind(verification_id.as_uuid())
    .bind(account_id.as_str())
    .bind(i64::from(max_tries))
    .fetch_optional(writes)
    .await
    .map_err(failed("counting a code's try failed"))?;
    Ok(tries.is_some())
}

pub(crate) async fn find_link(
    reads: &SqlitePool,
    link_hash: &[u8; 32],
) -> Result<Option<LinkedCode>, StoreError> {
    let row: Option<(String, String, String, Uuid)> = sqlx::query_as(
        "SELECT account_id, contact_id, channel, verification_id FROM verification_codes \
         WHERE link_hash = ?1",
    )
    .bind(link_hash.as_slice())
    .fetch_optional(reads)
    .await
    .map_err(failed("finding a confirmation link failed"))?;
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
