//! Following the log: catch up from a position, then wait for new events. A process wakes its
//! readers as soon as its own appends end; other processes learn of appends by a debounced
//! `NOTIFY`, and a poll is the fallback when a notification is missed or not sent (an append
//! made outside the service, a transaction that rolled back in front of committed ones).

use std::time::Duration;

use contactd_app::{LogPosition, RecordedEvent, StoreError};
use contactd_domain::AccountId;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::PgStore;
use crate::log::read_log;
use contactd_app::StartPoint;

/// The `LISTEN`/`NOTIFY` channel on which processes announce appends.
pub(crate) const CHANNEL: &str = "contactd_events";

/// How often a waiting reader looks at the log when nothing woke it.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The shortest time between two `NOTIFY`s of one process: appends in between share one. (A
/// notifying transaction takes an xid and commits with an fsync of its own.)
const NOTIFY_DEBOUNCE: Duration = Duration::from_millis(25);

/// A reader that follows the log (or one account's part of it) from a position on, in batches.
#[derive(Debug)]
pub struct Subscription {
    store: PgStore,
    account: Option<AccountId>,
    after: LogPosition,
    min_global_position: i64,
    batch_size: u32,
    poll_interval: Duration,
    changes: watch::Receiver<u64>,
}

impl Subscription {
    pub(crate) fn new(store: PgStore, account: Option<AccountId>, start: StartPoint) -> Self {
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
                self.store.pool(),
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

/// Carries appends between processes until `shutdown`: announces this process's appends with a
/// debounced `NOTIFY`, and wakes this process's readers on other processes' notifications.
/// Readers still poll without it; it only shortens their wait.
pub async fn relay_log_notifications(store: PgStore, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            result = relay(&store) => {
                if let Err(error) = result {
                    warn!(%error, "log notifications interrupted; readers fall back to polling until they resume");
                }
            }
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn relay(store: &PgStore) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(store.pool()).await?;
    listener.listen(CHANNEL).await?;
    let mut local = store.local_appends.subscribe();
    debug!("relaying log notifications");
    loop {
        tokio::select! {
            notification = listener.try_recv() => {
                // `None`: the connection was lost and re-established; a notification may have
                // been missed in between, so wake the readers anyway.
                let _ = notification?;
                store.log_changes.send_modify(|n| *n = n.wrapping_add(1));
            }
            changed = local.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(store.pool()).await?;
                tokio::time::sleep(NOTIFY_DEBOUNCE).await;
            }
        }
    }
}
