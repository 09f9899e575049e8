//! `account_activity`: an audit view kept by an asynchronous projection. Per account, how many
//! events its contacts' streams hold, how many contacts were added, and the latest change.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use contactd_domain::{AccountId, ContactEvent};

use crate::port::{RecordedEvent, StoreError};
use crate::projection::Projection;

/// The projection; it has no state of its own.
#[derive(Debug, Default, Clone, Copy)]
pub struct AccountActivity;

impl AccountActivity {
    pub const NAME: &'static str = "account_activity";
}

/// One account's part of a batch, to be added to what the read model holds for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityTally {
    pub account_id: AccountId,
    /// Events of the batch, of any stream of the account.
    pub events: i64,
    /// `MessageContactAdded` events among them.
    pub contacts_added: i64,
    /// The largest global position among them; the row keeps the larger of its own and this.
    pub last_global_position: i64,
    /// The latest time one of them was recorded; the row keeps the later of its own and this.
    pub last_recorded_at: DateTime<Utc>,
}

/// The `account_activity` read model, as its projection writes it inside a unit of work.
pub trait ActivityModel: Send {
    /// Adds each tally to its account's row (creating the row for an account new to it).
    fn add_activity(
        &mut self,
        tallies: &[ActivityTally],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Empties the read model, before a rebuild.
    fn clear_activity(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One tally per account for the whole batch, so that the store writes one row per account
/// per batch.
fn tally(events: &[RecordedEvent]) -> Vec<ActivityTally> {
    let mut tallies: BTreeMap<&AccountId, ActivityTally> = BTreeMap::new();
    for event in events {
        let tally = tallies
            .entry(&event.metadata.account_id)
            .or_insert_with(|| ActivityTally {
                account_id: event.metadata.account_id.clone(),
                events: 0,
                contacts_added: 0,
                last_global_position: 0,
                last_recorded_at: event.metadata.recorded_at,
            });
        tally.events += 1;
        if matches!(
            event.contact_event(),
            Some(ContactEvent::MessageContactAdded { .. })
        ) {
            tally.contacts_added += 1;
        }
        tally.last_global_position = tally.last_global_position.max(event.global_position);
        tally.last_recorded_at = tally.last_recorded_at.max(event.metadata.recorded_at);
    }
    tallies.into_values().collect()
}

impl<W: ActivityModel> Projection<W> for AccountActivity {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn apply(&self, work: &mut W, events: &[RecordedEvent]) -> Result<(), StoreError> {
        let tallies = tally(events);
        if tallies.is_empty() {
            return Ok(());
        }
        work.add_activity(&tallies).await
    }

    fn clear(&self, work: &mut W) -> Option<impl Future<Output = Result<(), StoreError>> + Send> {
        Some(work.clear_activity())
    }
}
