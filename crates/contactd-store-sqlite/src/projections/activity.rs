//! The `account_activity` read model on SQLite: the statements its projection
//! ([`contactd_app::AccountActivity`]) writes with.

use contactd_app::{ActivityModel, ActivityTally, StoreError};

use super::work::SqliteWork;
use crate::error::failed;

impl ActivityModel for SqliteWork<'_> {
    async fn add_activity(&mut self, tallies: &[ActivityTally]) -> Result<(), StoreError> {
        // A row per account of the batch; times are text that orders as they do, so `max`
        // keeps the later one.
        for tally in tallies {
            sqlx::query(
                "INSERT INTO account_activity AS a \
                     (account_id, events, contacts_added, last_position, last_recorded_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (account_id) DO UPDATE SET \
                     events = a.events + excluded.events, \
                     contacts_added = a.contacts_added + excluded.contacts_added, \
                     last_position = max(a.last_position, excluded.last_position), \
                     last_recorded_at = max(a.last_recorded_at, excluded.last_recorded_at)",
            )
            .bind(tally.account_id.as_str())
            .bind(tally.events)
            .bind(tally.contacts_added)
            .bind(tally.last_global_position)
            .bind(tally.last_recorded_at)
            .execute(&mut *self.connection())
            .await
            .map_err(failed("adding to the account activity failed"))?;
        }
        Ok(())
    }

    async fn clear_activity(&mut self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM account_activity")
            .execute(self.connection())
            .await
            .map_err(failed("emptying the account activity failed"))?;
        Ok(())
    }
}
