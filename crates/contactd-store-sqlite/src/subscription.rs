//! Following the log: catch up from a position, then wait for new events. The store's writes
//! wake its readers as soon as they commit (one process holds the database, so there is no
//! one else to hear from); a poll is the fallback for writes made outside the service.

use std::time::Duration;

use contactd_app::{LogPosition, RecordedEvent, StartPoint, StoreError};
use contactd_domain::AccountId;
use tokio::sync::watch;

use crate::SqliteStore;
use crate::log::read_log;

/// How often a waiting reader looks at the log when nothing woke it.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// A reader that follows the log (or one account's part of it) from a position on, in batches.
#[derive(Debug)]
pub struct Subscription {
    store: SqliteStore,
    account: Option<AccountId>,
    after: LogPosition,
    min_global_position: i64,
    batch_size: u32,
    poll_interval: Duration,
    changes: watch::Receiver<u64>,
}

impl Subscription {
    pub(crate) fn new(store: SqliteStore, account: Option<AccountId>, start: StartPoint) -> Self {
        let changes = store.log_changes.subscribe();
        Self {
            store,
            account,
            after: start.after,
            min_global_position: start.min_global_position,
            batch_size: 1000,
            poll_interval: DEFAULT_POLL_INTERVAL,
            changes,
        }
    }

    /// At most this many events per batch.
    pub fn with_batch_size(mut self, batch_size: u32) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    pub fn with_poll_interval(mut self, poll_interval: Duration) -> Self {
        self.poll_interval = poll_interval;
        self
    }

    /// Where the subscription is: the last event it returned.
    pub fn position(&self) -> LogPosition {
        self.after
    }

    /// The next batch, waiting until there is one. The caller consumes a batch before asking
    /// for the next, which is the back-pressure: nothing is read ahead.
    pub async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, StoreError> {
        loop {
            // Mark the changes seen before reading, so that one arriving during the read wakes
            // the next wait instead of being lost.
            self.changes.borrow_and_update();
            let mut batch = read_log(
                self.store.read_pool(),
                self.after,
                self.account.as_ref(),
                self.batch_size,
            )
            .await?;
            if let Some(last) = batch.last() {
                self.after = last.position;
                let min = self.min_global_position;
                batch.retain(|event| event.global_position >= min);
                if batch.is_empty() {
                    continue;
                }
                return Ok(batch);
            }
            tokio::select! {
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(self.poll_interval).await;
                    }
                }
                () = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }
}
