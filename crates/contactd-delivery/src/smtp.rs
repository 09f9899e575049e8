//! Email by SMTP: a pooled lettre transport built from the settings' URL, and the mapping of
//! its failures to transient or permanent ones with reasons that name only the failure.

use std::sync::OnceLock;
use std::time::Duration;

use contactd_app::{Delivered, DeliveryError};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::settings::{DeliveryConfigError, SmtpEndpoint};

#[derive(Debug)]
pub(crate) struct SmtpSender {
    builder: AsyncSmtpTransportBuilder,
    // Built at the first message: the pool spawns its cleanup task on the Tokio runtime, and
    // the settings may be read before one runs.
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
    endpoint: SmtpEndpoint,
    timeout: Duration,
}

impl SmtpSender {
    pub(crate) fn new(
        url: &str,
        timeout: Duration,
        connections: u32,
    ) -> Result<Self, DeliveryConfigError> {
        let endpoint = SmtpEndpoint::parse(url)?;
        // lettre reads the URL itself, so that every form it documents works as documented.
        let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|_| DeliveryConfigError::SmtpUrl("lettre cannot use it".to_owned()))?
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(connections.max(1)));
        Ok(Self {
            builder,
            transport: OnceLock::new(),
            endpoint,
            timeout,
        })
    }

    pub(crate) fn describe(&self) -> String {
        self.endpoint.describe()
    }

    pub(crate) async fn send(&self, message: Message) -> Result<Delivered, DeliveryError> {
        // lettre's timeout bounds the TCP connect only; a server that accepts and then stays
        // silent would hold the delivery forever, so the whole conversation is bounded too.
        let transport = self.transport.get_or_init(|| self.builder.clone().build());
        match tokio::time::timeout(self.timeout, transport.send(message)).await {
            Ok(Ok(_response)) => Ok(Delivered {
                via: "smtp",
                detail: None,
            }),
            Ok(Err(error)) => Err(classify(&error)),
            Err(_elapsed) => Err(DeliveryError::Transient("smtp timed out".to_owned())),
        }
    }
}

/// lettre's own classification: a 5xx reply is permanent, everything else may pass on a later
/// attempt. The server's text is left out: it may echo the recipient.
fn classify(error: &SmtpError) -> DeliveryError {
    if let Some(code) = error.status() {
        let reason = format!("smtp reply {code}");
        return if error.is_permanent() {
            DeliveryError::Permanent(reason)
        } else {
            DeliveryError::Transient(reason)
        };
    }
    let reason = if error.is_timeout() {
        "smtp timed out"
    } else if error.is_tls() || failed_handshake(error) || refused_starttls(error) {
        "smtp tls failed"
    } else if error.is_response() {
        "smtp reply malformed"
    } else if error.is_transport_shutdown() {
        "smtp transport shut down"
    } else if error.is_client() {
        "smtp client error"
    } else {
        "smtp connection failed"
    };
    DeliveryError::Transient(reason.to_owned())
}

/// lettre reports a failed TLS handshake (a plaintext server behind `smtps://`, a certificate
/// refused) as a connection error caused by the `InvalidData` that tokio-rustls raises.
fn failed_handshake(error: &SmtpError) -> bool {
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::InvalidData;
        }
        cause = current.source();
    }
    false
}

/// lettre reports a server that does not offer the STARTTLS that the URL requires as a client
/// error; its text is lettre's own, never the server's.
fn refused_starttls(error: &SmtpError) -> bool {
    error.is_client()
        && std::error::Error::source(error)
            .is_some_and(|cause| cause.to_string().contains("STARTTLS"))
}
