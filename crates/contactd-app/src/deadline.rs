//! The current call's deadline, in scope for the store without threading it through every
//! port method: the gRPC layer runs each call `within` its deadline, and a store asks how much
//! of it is `remaining` before it starts a statement.

use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `future` with the call's deadline in scope (the gRPC layer wraps every call with it).
/// Tasks spawned by `future` do not inherit it: work that outlives the call (a group commit's
/// runner, a worker) carries what it needs explicitly.
pub async fn within<F: Future>(deadline: Instant, future: F) -> F::Output {
    DEADLINE.scope(deadline, future).await
}

/// The current call's deadline; `None` outside a call (workers, projections).
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// The time left to the current call's deadline (zero once it passed); `None` outside a call.
pub fn remaining() -> Option<Duration> {
    current().map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_deadline_is_in_scope_only_within_the_call() {
        assert_eq!(remaining(), None, "outside a call");
        let deadline = Instant::now() + Duration::from_secs(60);
        let inside = within(deadline, async {
            let spawned = tokio::spawn(async { remaining() }).await.ok().flatten();
            (current(), remaining(), spawned)
        })
        .await;
        assert_eq!(inside.0, Some(deadline));
        assert!(inside.1.is_some_and(|left| left <= Duration::from_secs(60)));
        assert_eq!(inside.2, None, "a spawned task is not part of the call");
        assert_eq!(remaining(), None);
    }

    #[tokio::test]
    async fn a_passed_deadline_leaves_nothing() {
        let past = Instant::now();
        let left = within(past, async { remaining() }).await;
        assert_eq!(left, Some(Duration::ZERO));
    }
}
