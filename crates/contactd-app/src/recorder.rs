//! What the service reports as it works, for an exporter of metrics: a port, so that the use
//! cases, the workers, the front end and the stores say what they already know, in their own
//! terms, and none of them names a metrics library (ADR 12). Every method does nothing unless
//! an exporter is plugged in.

use std::sync::Arc;
use std::time::Duration;

use contactd_domain::Channel;

/// How one attempt at a verification message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Sent,
    /// Failed, and will be tried again.
    Failed,
    DeadLettered,
}

/// A store's database connections at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUsage {
    pub in_use: u32,
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// The receiver of what the service reports. The defaults ignore it all.
pub trait Recorder: Send + Sync + std::fmt::Debug + 'static {
    /// A call of `rpc` answered with the gRPC code named `code` (`OK`, `INVALID_ARGUMENT`, …)
    /// after `took`; a stream once it ended.
    fn call_answered(&self, _rpc: &'static str, _code: &'static str, _took: Duration) {}

    /// A command's append committed `count` events.
    fn events_appended(&self, _count: usize) {}

    /// An append was refused because the stream had moved on.
    fn version_conflict(&self) {}

    /// After a conflict, a command is decided again on the fresh state.
    fn decided_again(&self) {}

    /// A group commit wrote `appends` appends in one transaction.
    fn group_committed(&self, _appends: usize) {}

    /// An attempt at a verification message on `channel` ended; `retry` when an earlier
    /// attempt had been made.
    fn delivery_attempted(&self, _channel: Channel, _retry: bool, _outcome: AttemptOutcome) {}

    /// The verification messages waiting in the outbox, as last read.
    fn outbox_depth(&self, _pending: u64) {}

    /// An integration event was acknowledged by the broker `lag` after its event committed.
    fn integration_published(&self, _lag: Duration) {}

    /// A store waited `waited` for a database connection.
    fn connection_acquired(&self, _waited: Duration) {}
}

/// The recorder in use, shared by everyone that reports; [`Recording::none`] ignores it all.
#[derive(Debug, Clone)]
pub struct Recording(Arc<dyn Recorder>);

#[derive(Debug)]
struct Ignored;

impl Recorder for Ignored {}

impl Recording {
    pub fn new(recorder: impl Recorder) -> Self {
        Self(Arc::new(recorder))
    }

    pub fn none() -> Self {
        Self(Arc::new(Ignored))
    }
}

impl Default for Recording {
    fn default() -> Self {
        Self::none()
    }
}

impl std::ops::Deref for Recording {
    type Target = dyn Recorder;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}
