//! The `account_activity` read model on PostgreSQL: the statements its projection
//! ([`contactd_app::AccountActivity`]) writes with.

use contactd_app::{ActivityModel, ActivityTally, StoreError};

use crate::error::store_error;
use crate::work::PgWork;

impl ActivityModel for PgWork<'_> {
    async fn add_activity(&mut self, tallies: &[ActivityTally]) -> Result<(), StoreError> {
        // One statement for the batch, one row per account.
        sqlx::query(
            "INSERT INTO account_activity AS a (account_id, events, contacts_added, last_position, last_recorded_at) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::timestamptz[]) \
             ON CONFLICT (account_id) DO UPDATE SET \
                 events = a.events + EXCLUDED.events, \
                 contacts_added = a.contacts_added + EXCLUDED.contacts_added, \
                 last_position = GREATEST(a.last_position, EXCLUDED.last_position), \
                 last_recorded_at = GREATEST(a.last_recorded_at, EXCLUDED.last_recorded_at)",
        )
        .bind(tallies.iter().map(|t| t.account_id.as_str()).collect::<Vec<_>>())
        .bind(tallies.iter().map(|t| t.events).collect::<Vec<_>>())
        .bind(tallies.iter().map(|t| t.contacts_added).collect::<Vec<_>>())
        .bind(tallies.iter().map(|t| t.last_global_position).collect::<Vec<_>>())
        .bind(tallies.iter().map(|t| t.last_recorded_at).collect::<Vec<_>>())
        .execute(self.connection())
        .await
        .map_err(|e| store_error("adding to the account activity failed", e))?;
        Ok(())
    }

    async fn clear_activity(&mut self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM account_activity")
            .execute(self.connection())
            .await
            .map_err(|e| store_error("emptying the account activity failed", e))?;
        Ok(())
    }
}
