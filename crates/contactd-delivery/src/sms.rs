//! SMS through the gateway's webhook: one JSON POST per attempt, carrying the message's id as
//! its idempotency key, and the mapping of the gateway's answers to transient or permanent.

use std::time::Duration;

use contactd_app::{Delivered, DeliveryError};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, redirect};

use crate::compose::SmsRequest;
use crate::settings::{DeliveryConfigError, WebhookEndpoint};

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

#[derive(Debug, Clone)]
pub(crate) struct SmsWebhook {
    client: reqwest::Client,
    endpoint: WebhookEndpoint,
}

impl SmsWebhook {
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Self, DeliveryConfigError> {
        let endpoint = WebhookEndpoint::parse(url)?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A gateway that redirects is misconfigured; following it would send a phone
            // number and a code somewhere nobody configured.
            .redirect(redirect::Policy::none())
            .user_agent(concat!("contactd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| DeliveryConfigError::HttpClient(error.to_string()))?;
        Ok(Self { client, endpoint })
    }

    pub(crate) fn describe(&self) -> String {
        self.endpoint.describe()
    }

    pub(crate) async fn send(&self, request: &SmsRequest<'_>) -> Result<Delivered, DeliveryError> {
        let key = HeaderValue::from_str(&request.idempotency_key)
            .map_err(|_| DeliveryError::Permanent("sms idempotency key not a header".into()))?;
        let response = self
            .client
            .post(self.endpoint.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(IDEMPOTENCY_KEY, key)
            .body(request.to_json()?)
            .send()
            .await
            .map_err(|error| DeliveryError::Transient(failed_request(&error).to_owned()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Delivered {
                via: "sms-webhook",
                detail: None,
            });
        }
        let reason = format!("sms gateway answered {}", status.as_u16());
        if is_worth_retrying(status) {
            Err(DeliveryError::Transient(reason))
        } else {
            Err(DeliveryError::Permanent(reason))
        }
    }
}

/// Timeouts, "too early", throttling and the gateway's own failures may pass later; any other
/// refusal would be repeated.
fn is_worth_retrying(status: StatusCode) -> bool {
    status.is_server_error()
        || matches!(
            status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_EARLY | StatusCode::TOO_MANY_REQUESTS
        )
}

/// reqwest's own text names the URL, which may hold the gateway's token: only the kind is kept.
fn failed_request(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "sms gateway timed out"
    } else if error.is_connect() {
        "sms gateway unreachable"
    } else {
        "sms gateway request failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_timeouts_and_server_errors_are_worth_retrying_and_nothing_else() {
        for status in [408, 425, 429, 500, 502, 503, 504, 599] {
            assert!(
                is_worth_retrying(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
        for status in [300, 301, 400, 401, 403, 404, 409, 410, 413, 422] {
            assert!(
                !is_worth_retrying(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
    }
}
