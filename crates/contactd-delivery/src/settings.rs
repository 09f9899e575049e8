//! What the delivery adapter is configured with, the checks that refuse a bad configuration at
//! start-up rather than at the first message, and how an endpoint is shown without its secrets.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use lettre::message::Mailbox;
use url::Url;

/// Where verification messages go. A channel without a server configured writes its messages
/// into `sink_dir`, so that a developer can read them.
#[derive(Clone)]
pub struct DeliverySettings {
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS required),
    /// `smtp://host:port?tls=opportunistic` or `smtps://host:port` (implicit TLS), with
    /// `user:password@` before the host to authenticate. `None`: email goes into the sink.
    pub smtp_url: Option<String>,
    /// The sender of the emails, `noreply@example.com` or `contactd <noreply@example.com>`;
    /// its domain also names the emails' `Message-ID`s.
    pub mail_from: String,
    /// The SMS gateway's `http(s)://` address that messages are POSTed to. `None`: SMS go into
    /// the sink.
    pub sms_webhook_url: Option<String>,
    pub sink_dir: PathBuf,
    /// How long one delivery may take, from connecting to the server's last answer.
    pub timeout: Duration,
    /// SMTP connections kept open for reuse: as many as messages are sent at once, or each
    /// message beyond them opens (and closes) a connection of its own.
    pub smtp_connections: u32,
}

// By hand, because the URLs may carry a password or a token that must not reach a log.
impl fmt::Debug for DeliverySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |url: &Option<String>| url.as_deref().map(redacted);
        f.debug_struct("DeliverySettings")
            .field("smtp_url", &shown(&self.smtp_url))
            .field("mail_from", &self.mail_from)
            .field("sms_webhook_url", &shown(&self.sms_webhook_url))
            .field("sink_dir", &self.sink_dir)
            .field("timeout", &self.timeout)
            .field("smtp_connections", &self.smtp_connections)
            .finish()
    }
}

/// Why the delivery settings were refused. No message repeats a URL: it may hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryConfigError {
    #[error("the SMTP URL is malformed: {0}")]
    SmtpUrl(String),
    #[error(
        "the sender {0:?} is not an email address (noreply@example.com, or Name <noreply@example.com>)"
    )]
    MailFrom(String),
    #[error("the SMS webhook URL is malformed: {0}")]
    SmsWebhookUrl(String),
    #[error("the delivery timeout must be longer than zero")]
    ZeroTimeout,
    #[error("the HTTP client of the SMS gateway could not be built: {0}")]
    HttpClient(String),
}

/// How an SMTP connection is secured, as the URL asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SmtpSecurity {
    Plain,
    StartTlsRequired,
    StartTlsOpportunistic,
    ImplicitTls,
}

/// An SMTP URL that lettre will accept, and what of it may be shown.
#[derive(Debug, Clone)]
pub(crate) struct SmtpEndpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) security: SmtpSecurity,
}

// The ports lettre assumes when the URL names none.
const SMTP_PORT: u16 = 25;
const SUBMISSION_PORT: u16 = 587;
const SUBMISSIONS_PORT: u16 = 465;

impl SmtpEndpoint {
    /// Checks what lettre's `from_url` would reject, so that the error can say what is wrong
    /// (lettre's own would not), and without repeating the URL.
    pub(crate) fn parse(raw: &str) -> Result<Self, DeliveryConfigError> {
        let bad = |reason: &str| DeliveryConfigError::SmtpUrl(reason.to_owned());
        let url = Url::parse(raw).map_err(|error| bad(&error.to_string()))?;
        let tls = url
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.into_owned());
        let security = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => SmtpSecurity::Plain,
            ("smtp", Some("required")) => SmtpSecurity::StartTlsRequired,
            ("smtp", Some("opportunistic")) => SmtpSecurity::StartTlsOpportunistic,
            ("smtp", Some(_)) => return Err(bad("tls= must be \"required\" or \"opportunistic\"")),
            ("smtps", _) => SmtpSecurity::ImplicitTls,
            _ => return Err(bad("the scheme must be smtp:// or smtps://")),
        };
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => return Err(bad("it names no host")),
        };
        let port = url.port().unwrap_or(match security {
            SmtpSecurity::Plain => SMTP_PORT,
            SmtpSecurity::StartTlsRequired | SmtpSecurity::StartTlsOpportunistic => SUBMISSION_PORT,
            SmtpSecurity::ImplicitTls => SUBMISSIONS_PORT,
        });
        Ok(Self {
            host,
            port,
            security,
        })
    }

    /// `127.0.0.1:2525 (STARTTLS required)`: no user, no password.
    pub(crate) fn describe(&self) -> String {
        let security = match self.security {
            SmtpSecurity::Plain => "",
            SmtpSecurity::StartTlsRequired => " (STARTTLS required)",
            SmtpSecurity::StartTlsOpportunistic => " (STARTTLS if offered)",
            SmtpSecurity::ImplicitTls => " (implicit TLS)",
        };
        format!("{}:{}{security}", self.host, self.port)
    }
}

/// The SMS gateway's address, checked.
#[derive(Clone)]
pub(crate) struct WebhookEndpoint {
    pub(crate) url: Url,
}

// By hand: the path and query may hold the gateway's token.
impl fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WebhookEndpoint")
            .field(&self.describe())
            .finish()
    }
}

impl WebhookEndpoint {
    pub(crate) fn parse(raw: &str) -> Result<Self, DeliveryConfigError> {
        let bad = |reason: &str| DeliveryConfigError::SmsWebhookUrl(reason.to_owned());
        let url = Url::parse(raw).map_err(|error| bad(&error.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http:// or https://"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("it names no host"));
        }
        Ok(Self { url })
    }

    /// `https://sms.example.com:443`: the path and query are left out, as they often carry
    /// the gateway's token.
    pub(crate) fn describe(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port_or_known_default() {
            Some(port) => format!("{}://{host}:{port}", self.url.scheme()),
            None => format!("{}://{host}", self.url.scheme()),
        }
    }
}

/// The sender, parsed as lettre will write it.
pub(crate) fn parse_mail_from(raw: &str) -> Result<Mailbox, DeliveryConfigError> {
    Mailbox::from_str(raw.trim()).map_err(|_| DeliveryConfigError::MailFrom(raw.to_owned()))
}

/// A URL with its password (and, for good measure, its query) hidden, for `Debug`.
fn redacted(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                // Cannot fail: a URL that holds a password can hold another one.
                let _ = url.set_password(Some("***"));
            }
            if url.query().is_some() && url.scheme().starts_with("http") {
                url.set_query(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "<malformed>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_name_their_security_and_default_port_as_lettre_does() {
        let cases = [
            ("smtp://mail.example.com", "mail.example.com:25"),
            ("smtp://127.0.0.1:2525", "127.0.0.1:2525"),
            (
                "smtp://mail.example.com?tls=required",
                "mail.example.com:587 (STARTTLS required)",
            ),
            (
                "smtp://u:p@mail.example.com:2587?tls=opportunistic",
                "mail.example.com:2587 (STARTTLS if offered)",
            ),
            (
                "smtps://mail.example.com",
                "mail.example.com:465 (implicit TLS)",
            ),
        ];
        for (url, shown) in cases {
            assert_eq!(SmtpEndpoint::parse(url).unwrap().describe(), shown, "{url}");
        }
    }

    #[test]
    fn malformed_smtp_urls_are_refused_without_repeating_them() {
        for url in [
            "mail.example.com:25",
            "http://mail.example.com",
            "smtp://:secret@/",
            "smtp://mail.example.com?tls=maybe",
            "smtp://user:hunter2@mail.example.com:99999",
        ] {
            let error = SmtpEndpoint::parse(url).unwrap_err();
            assert!(matches!(error, DeliveryConfigError::SmtpUrl(_)), "{url}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
            assert!(!error.to_string().contains("secret"), "{error}");
        }
    }

    #[test]
    fn webhook_urls_must_be_http_with_a_host_and_are_shown_without_path_or_query() {
        let endpoint = WebhookEndpoint::parse("https://sms.example.com/v1/send?token=abc").unwrap();
        assert_eq!(endpoint.describe(), "https://sms.example.com:443");
        for url in ["ftp://sms.example.com", "sms.example.com/send", "http://"] {
            assert!(
                matches!(
                    WebhookEndpoint::parse(url),
                    Err(DeliveryConfigError::SmsWebhookUrl(_))
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn the_sender_is_an_address_with_or_without_a_name() {
        assert_eq!(
            parse_mail_from("noreply@example.com")
                .unwrap()
                .email
                .domain(),
            "example.com"
        );
        assert_eq!(
            parse_mail_from("contactd <noreply@mail.example.com>")
                .unwrap()
                .email
                .domain(),
            "mail.example.com"
        );
        for bad in ["", "noreply", "noreply@", "<@example.com>"] {
            assert_eq!(
                parse_mail_from(bad),
                Err(DeliveryConfigError::MailFrom(bad.to_owned()))
            );
        }
    }

    #[test]
    fn debug_hides_the_smtp_password_and_the_webhook_query() {
        let settings = DeliverySettings {
            smtp_url: Some("smtp://user:hunter2@mail.example.com:587?tls=required".to_owned()),
            mail_from: "noreply@example.com".to_owned(),
            sms_webhook_url: Some("https://sms.example.com/send?token=s3cr3t".to_owned()),
            sink_dir: PathBuf::from("./data/messages"),
            timeout: Duration::from_secs(10),
            smtp_connections: 8,
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("mail.example.com"), "{shown}");
    }
}
