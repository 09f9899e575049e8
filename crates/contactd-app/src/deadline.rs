//! The deadline of the call being served, in scope for everything the call runs in its task,
//! so that the stores can stop their statements when the caller stops waiting.

use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `future` with the call's deadline in scope (the gRPC layer wraps every call with it).
pub async fn within<F: Future>(deadline: Instant, future: F) -> F::Output {
    DEADLINE.scope(deadline, future).await
}

/// The time left to the current call's deadline; None outside a call (workers, projections).
pub fn remaining() -> Option<Duration> {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}
