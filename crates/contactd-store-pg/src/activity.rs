//! `account_activity`: an audit view kept by an asynchronous projection. Per account, how many
//! events its contacts' streams hold, how many contacts were added, and the latest change.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use contactd_app::RecordedEvent;
use contactd_domain::ContactEvent;
use sqlx::PgConnection;

use crate::projection::Projection;

#[derive(Debug, Default)]
pub struct AccountActivity;

#[derive(Default)]
struct Tally {
    events: i64,
    contacts_added: i64,
    last_position: i64,
    last_recorded_at: Option<DateTime<Utc>>,
}

impl Projection for AccountActivity {
    fn name(&self) -> &'static str {
        "account_activity"
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), sqlx::Error> {
        // One row per account per batch: the batch is summed here, then added in one statement.
        let mut tallies: HashMap<&str, Tally> = HashMap::new();
        for event in events {
            let tally = tallies
                .entry(event.metadata.account_id.as_str())
                .or_default();
            tally.events += 1;
            if matches!(
                event.contact_event(),
                Some(ContactEvent::MessageContactAdded { .. })
            ) {
                tally.contacts_added += 1;
            }
            tally.last_position = tally.last_position.max(event.global_position);
            tally.last_recorded_at = tally.last_recorded_at.max(Some(event.metadata.recorded_at));
        }
        let mut accounts = Vec::with_capacity(tallies.len());
        let mut counts = Vec::with_capacity(tallies.len());
        let mut added = Vec::with_capacity(tallies.len());
        let mut positions = Vec::with_capacity(tallies.len());
        let mut times = Vec::with_capacity(tallies.len());
        for (account, tally) in tallies {
            accounts.push(account);
            counts.push(tally.events);
            added.push(tally.contacts_added);
            positions.push(tally.last_position);
            times.push(tally.last_recorded_at.unwrap_or_default());
        }
        sqlx::query(
            "INSERT INTO account_activity AS a (account_id, events, contacts_added, last_position, last_recorded_at) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::timestamptz[]) \
             ON CONFLICT (account_id) DO UPDATE SET \
                 events = a.events + EXCLUDED.events, \
                 contacts_added = a.contacts_added + EXCLUDED.contacts_added, \
                 last_position = GREATEST(a.last_position, EXCLUDED.last_position), \
                 last_recorded_at = GREATEST(a.last_recorded_at, EXCLUDED.last_recorded_at)",
        )
        .bind(accounts)
        .bind(counts)
        .bind(added)
        .bind(positions)
        .bind(times)
        .execute(tx)
        .await?;
        Ok(())
    }

    fn clear(
        &self,
        tx: &mut PgConnection,
    ) -> Option<impl Future<Output = Result<(), sqlx::Error>> + Send> {
        Some(async move {
            sqlx::query("DELETE FROM account_activity")
                .execute(tx)
                .await?;
            Ok(())
        })
    }
}
