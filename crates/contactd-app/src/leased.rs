//! The loop every worker of leased work shares (the dispatcher's messages, the lifecycle
//! worker's jobs): claim what is due up to the free slots, carry each out in a task of its
//! own, and sleep until one finishes, new work is recorded in this process, the next item falls
//! due, or shutdown; then let the work in flight finish.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::port::StoreError;

/// Work claimed with a lease and carried out item by item.
pub(crate) trait LeasedWork: Send + Sync + 'static {
    type Item: Send + 'static;

    /// What the logs call the work.
    const WHAT: &'static str;

    /// Items carried out at once.
    fn concurrency(&self) -> usize;

    /// How often to look when nothing woke the worker.
    fn poll_interval(&self) -> Duration;

    /// Up to `limit` due items, leased to this worker.
    fn claim(&self, limit: u32)
    -> impl Future<Output = Result<Vec<Self::Item>, StoreError>> + Send;

    /// Carries one item out and records how it went.
    fn attempt(self: Arc<Self>, item: Self::Item) -> impl Future<Output = ()> + Send;

    /// When the next pending item falls due, if any is pending.
    fn next_due(&self) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;

    /// Changes whenever this process records new work.
    fn recorded(&self) -> watch::Receiver<u64>;
}

/// Runs `work` until `shutdown` turns true, then waits for the items in flight.
pub(crate) async fn run<W: LeasedWork>(work: Arc<W>, mut shutdown: watch::Receiver<bool>) {
    let mut recorded = work.recorded();
    let mut in_flight = JoinSet::new();
    while !*shutdown.borrow() {
        let free = work.concurrency().saturating_sub(in_flight.len());
        let mut full = free == 0;
        if free > 0 {
            match work.claim(free as u32).await {
                Ok(items) => {
                    full = items.len() == free;
                    for item in items {
                        in_flight.spawn(work.clone().attempt(item));
                    }
                }
                Err(error) => warn!(%error, "claiming {} failed", W::WHAT),
            }
        }
        let wait = if full {
            // More may be due; a slot must free first.
            work.poll_interval()
        } else {
            until_next_due(work.as_ref()).await
        };
        tokio::select! {
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            changed = recorded.changed() => {
                if changed.is_err() {
                    // Nobody records work in this process any more: poll only.
                    recorded = watch::channel(0).1;
                }
            }
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
    if !in_flight.is_empty() {
        info!(
            in_flight = in_flight.len(),
            "waiting for the {} in flight",
            W::WHAT
        );
    }
    in_flight.join_all().await;
}

/// How long to wait before the next item may fall due, within the poll interval.
async fn until_next_due<W: LeasedWork>(work: &W) -> Duration {
    let poll = work.poll_interval();
    match work.next_due().await {
        Ok(Some(at)) => (at - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .clamp(Duration::from_millis(10), poll),
        Ok(None) => poll,
        Err(error) => {
            warn!(%error, "reading the {} failed", W::WHAT);
            poll
        }
    }
}
