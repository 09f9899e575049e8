//! Waking the log's followers across processes: a process wakes its readers as soon as its own
//! appends end; other processes learn of appends by a debounced `NOTIFY`. The followers
//! themselves are the shared [`contactd_store_core::Subscription`], which polls as the fallback.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tracing::{debug, warn};

use crate::PgStore;

/// The `LISTEN`/`NOTIFY` channel on which processes announce appends.
pub(crate) const CHANNEL: &str = "contactd_events";

/// The shortest time between two `NOTIFY`s of one process: appends in between share one. (A
/// notifying transaction takes an xid and commits with an fsync of its own.)
const NOTIFY_DEBOUNCE: Duration = Duration::from_millis(25);

/// A reader following this store's log.
pub type Subscription = contactd_store_core::Subscription<PgStore>;

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
