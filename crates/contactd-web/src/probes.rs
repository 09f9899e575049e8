//! The probes orchestrators ask on the HTTP port: `/livez` answers 200 while the process
//! serves (it reads nothing), `/readyz` 200 only while the database answers and the process
//! is not shutting down, else 503 with the reason in one line of text.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use contactd_app::DatabaseHealth;
use tokio::sync::watch;

/// What readiness depends on.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub database: DatabaseHealth,
    /// True once shutdown has begun.
    pub stopping: watch::Receiver<bool>,
}

pub(crate) fn routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/livez", get(|| async { "live\n" }))
        .route("/readyz", get(ready))
        .with_state(readiness)
}

async fn ready(State(readiness): State<Readiness>) -> (StatusCode, &'static str) {
    if *readiness.stopping.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else if !readiness.database.is_up() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the database does not answer\n",
        )
    } else {
        (StatusCode::OK, "ready\n")
    }
}
