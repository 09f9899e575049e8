//! `/metrics`: the text Prometheus scrapes, rendered at each request by whoever keeps the
//! metrics (the binary hands over `contactd-metrics`' renderer), so that this crate knows no
//! metrics library.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// How the metrics page is made: its media type and the text now.
#[derive(Clone)]
pub struct Exposition {
    content_type: &'static str,
    render: Arc<dyn Fn() -> String + Send + Sync>,
}

impl std::fmt::Debug for Exposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exposition")
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

impl Exposition {
    pub fn new(
        content_type: &'static str,
        render: impl Fn() -> String + Send + Sync + 'static,
    ) -> Self {
        Self {
            content_type,
            render: Arc::new(render),
        }
    }
}

pub(crate) fn routes(exposition: Exposition) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(exposition)
}

async fn scrape(State(exposition): State<Exposition>) -> Response {
    let mut response = (exposition.render)().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(exposition.content_type),
    );
    response
}
