//! Whether the database answers: a monitor asks the store's readiness at an interval (more
//! often while it does not answer) and publishes the answer, which gRPC health and the HTTP
//! readiness probe report. It logs each change once, never per call.

use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::port::EventLog;

/// How the monitor asks.
#[derive(Debug, Clone, Copy)]
pub struct HealthSettings {
    /// Between two checks while the database answers.
    pub interval: Duration,
    /// Between two checks while it does not, so that recovery is seen soon.
    pub retry_interval: Duration,
    /// The longest one check may take before the database counts as not answering.
    pub timeout: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            retry_interval: Duration::from_millis(250),
            timeout: Duration::from_secs(2),
        }
    }
}

/// The monitor's answer, read by whoever reports health: true while the database answers
/// and holds the migrations this build needs.
#[derive(Debug, Clone)]
pub struct DatabaseHealth(watch::Receiver<bool>);

impl DatabaseHealth {
    /// Always up: for servers run without a monitor (tests that drive the gRPC server alone).
    /// With no sender, the answer never changes.
    pub fn always_up() -> Self {
        Self(watch::channel(true).1)
    }

    pub fn is_up(&self) -> bool {
        *self.0.borrow()
    }

    /// The answer as it changes; `changed` fails once it can change no more.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.0.clone()
    }
}

/// Checks `store` once, so that the first answer is known before serving starts; the answer,
/// and the monitor that keeps it current until `shutdown` turns true, for the caller to run.
pub async fn monitor_database<S: EventLog>(
    store: S,
    settings: HealthSettings,
    mut shutdown: watch::Receiver<bool>,
) -> (DatabaseHealth, impl Future<Output = ()> + Send + 'static) {
    let first = check(&store, settings.timeout).await;
    if let Err(reason) = &first {
        warn!(%reason, "the database does not answer");
    }
    let (answer, health) = watch::channel(first.is_ok());
    let monitor = async move {
        loop {
            let up = *answer.borrow();
            let wait = if up {
                settings.interval
            } else {
                settings.retry_interval
            };
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                () = tokio::time::sleep(wait) => {}
            }
            match (check(&store, settings.timeout).await, up) {
                (Err(reason), true) => warn!(%reason, "the database stopped answering"),
                (Ok(()), false) => info!("the database answers again"),
                _ => continue,
            }
            answer.send_replace(!up);
        }
    };
    (DatabaseHealth(health), monitor)
}

async fn check<S: EventLog>(store: &S, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, store.readiness()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}
