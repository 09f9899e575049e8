//! The HTTP front end, on `--http-listen`: the confirmation page that the links of
//! verification emails lead to (`/verify/{token}`). `GET` only shows what the link would
//! confirm and changes nothing, because mail scanners open links; the page's button `POST`s,
//! which confirms exactly as `ConfirmMessageContactVerification` with the right code would.
//! The pages load nothing from outside the service and forbid it by Content-Security-Policy.
//! Beside them, the probes `/livez` and `/readyz` for orchestrators, and `/metrics`.

mod metrics;
mod page;
mod probes;

use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use contactd_app::{AppError, ContactService, ContactStore, LinkStatus, LinkToken};
use contactd_net::{ConnectionInfo, Listener};
use tracing::{error, info};

pub use crate::metrics::Exposition;
use crate::page::Page;
pub use crate::probes::Readiness;

/// Serves the pages, the probes and the metrics on `listener` (plaintext or TLS, with its
/// connection limits) until `shutdown` completes.
pub async fn serve<S: ContactStore>(
    listener: Listener,
    app: Arc<ContactService<S>>,
    readiness: Readiness,
    exposition: Exposition,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        info!(%address, "confirmation pages listening");
    }
    let routes = router(app)
        .merge(probes::routes(readiness))
        .merge(metrics::routes(exposition))
        .layer(middleware::from_fn(mark_call));
    axum::serve(
        listener,
        routes.into_make_service_with_connect_info::<ConnectionInfo>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// The routes, for tests that drive them without a socket.
pub fn router<S: ContactStore>(app: Arc<ContactService<S>>) -> Router {
    Router::new()
        .route("/verify/{token}", get(show::<S>).post(confirm::<S>))
        .route("/static/page.css", get(stylesheet))
        .fallback(not_found)
        .with_state(app)
}

/// Keeps the request's connection from counting as idle while the request is served.
async fn mark_call(
    ConnectInfo(connection): ConnectInfo<ConnectionInfo>,
    request: Request,
    next: Next,
) -> Response {
    let _call = connection.begin_call();
    next.run(request).await
}

/// What a link leads to, changing nothing.
async fn show<S: ContactStore>(
    State(app): State<Arc<ContactService<S>>>,
    Path(raw): Path<String>,
) -> Response {
    let Some(token) = LinkToken::parse(&raw) else {
        return Page::unknown().into_response();
    };
    match app.inspect_link(&token).await {
        Ok(LinkStatus::Valid {
            target, expires_at, ..
        }) => Page::confirm(&target, expires_at).into_response(),
        Ok(status) => Page::for_status(&status).into_response(),
        Err(error) => failed(&error),
    }
}

/// Confirms what the link leads to.
async fn confirm<S: ContactStore>(
    State(app): State<Arc<ContactService<S>>>,
    Path(raw): Path<String>,
) -> Response {
    let Some(token) = LinkToken::parse(&raw) else {
        return Page::unknown().into_response();
    };
    match app.confirm_link(&token).await {
        Ok(LinkStatus::Valid {
            contact_id, target, ..
        }) => {
            info!(%contact_id, channel = target.channel().as_str(), "confirmed by link");
            Page::confirmed(&target).into_response()
        }
        Ok(status) => Page::for_status(&status).into_response(),
        Err(error) => failed(&error),
    }
}

async fn not_found() -> Response {
    Page::unknown().into_response()
}

async fn stylesheet() -> Response {
    let mut response = page::STYLESHEET.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// A failure of the service itself: a page that says so, never its cause.
fn failed(error: &AppError) -> Response {
    error!(error = %error, cause = ?std::error::Error::source(error), "a confirmation page failed");
    let unavailable = matches!(error, AppError::Unavailable(_));
    let status = if unavailable {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    Page::failure(status).into_response()
}
