//! Following the log, on either store: catch up from a position, then wait for new events.
//! The store wakes its readers when the log may have grown (its own appends at once, another
//! process's through whatever the store has for it); a poll is the fallback for a wake-up that
//! was missed or never sent (a write made outside the service, a transaction that rolled back
//! in front of committed ones).

use std::time::Duration;

use contactd_app::{EventLog, LogPosition, LogSubscription, RecordedEvent, StartPoint, StoreError};
use contactd_domain::AccountId;
use tokio::sync::watch;

/// How often a waiting reader looks at the log when nothing woke it.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Events per batch of a client's live stream (`AuditLog::follow`): small, because a batch
/// waits in memory while the client is slow to read it.
pub const FOLLOW_BATCH: u32 = 16;

/// A reader that follows the log (or one account's part of it) from a position on, in batches.
#[derive(Debug)]
pub struct Subscription<S> {
    store: S,
    account: Option<AccountId>,
    after: LogPosition,
    min_global_position: i64,
    batch_size: u32,
    poll_interval: Duration,
    changes: watch::Receiver<u64>,
}

impl<S: EventLog> Subscription<S> {
    /// From `start` on; `changes` is the store's signal that the log may have grown.
    pub fn new(
        store: S,
        changes: watch::Receiver<u64>,
        account: Option<AccountId>,
        start: StartPoint,
    ) -> Self {
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
            let mut batch = self
                .store
                .read_log(self.after, self.account.as_ref(), self.batch_size)
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

impl<S: EventLog> LogSubscription for Subscription<S> {
    async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, StoreError> {
        Subscription::next_batch(self).await
    }
}
