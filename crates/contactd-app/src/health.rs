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
pub struct DatabaseHealth {
    answer: watch::Receiver<bool>,
    /// The sender of an answer that never changes, held so that `changed` waits rather than
    /// ending.
    _fixed: Option<std::sync::Arc<watch::Sender<bool>>>,
}

impl DatabaseHealth {
    /// Always up: for servers run without a monitor (tests that drive the gRPC server alone).
    pub fn always_up() -> Self {
        let (sender, answer) = watch::channel(true);
        Self {
            answer,
            _fixed: Some(std::sync::Arc::new(sender)),
        }
    }

    pub fn is_up(&self) -> bool {
        *self.answer.borrow()
    }

    /// The answer as it changes.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.answer.clone()
    }
}

/// Checks `store` once (so that the first answer is known before serving starts), then
/// spawns the monitor, which runs until `shutdown` turns true.
pub async fn monitor_database<S: EventLog + Clone>(
    store: S,
    settings: HealthSettings,
    mut shutdown: watch::Receiver<bool>,
) -> (DatabaseHealth, tokio::task::JoinHandle<()>) {
    let first = check(&store, settings.timeout).await;
    if let Err(reason) = &first {
        warn!(%reason, "the database does not answer");
    }
    let (sender, receiver) = watch::channel(first.is_ok());
    let monitor = tokio::spawn(async move {
        loop {
            let wait = if *sender.borrow() {
                settings.interval
            } else {
                settings.retry_interval
            };
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                () = tokio::time::sleep(wait) => {}
            }
            let answer = check(&store, settings.timeout).await;
            let was_up = *sender.borrow();
            match (&answer, was_up) {
                (Err(reason), true) => warn!(%reason, "the database stopped answering"),
                (Ok(()), false) => info!("the database answers again"),
                _ => {}
            }
            sender.send_if_modified(|up| std::mem::replace(up, answer.is_ok()) != answer.is_ok());
        }
    });
    let health = DatabaseHealth {
        answer: receiver,
        _fixed: None,
    };
    (health, monitor)
}

async fn check<S: EventLog>(store: &S, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, store.readiness()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}
