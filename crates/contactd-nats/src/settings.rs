//! [`NatsSettings`]: where the broker is, the stream the messages go to, and the time allowed.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// The stream's name unless configured otherwise.
pub const DEFAULT_STREAM: &str = "CONTACTD_CONTACTS";

/// The subjects the stream takes unless configured otherwise: a member's contacts,
/// `contactd.<account>.member.<member>.contacts`.
pub const DEFAULT_SUBJECT: &str = "contactd.*.member.*.contacts";

/// How the [`NatsPublisher`](crate::NatsPublisher) reaches the broker and which stream it
/// ensures. Its `Debug` hides the credentials of the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsSettings {
    /// `nats://host:port`, credentials as `nats://user:password@host:port`; several servers of
    /// one cluster separated by commas. `tls://` requires TLS.
    pub url: String,
    /// The JetStream stream, created if missing (an existing one is used as it is).
    pub stream: String,
    /// The subjects the stream is created with; every message's subject must be among them.
    pub subjects: Vec<String>,
    /// How long one publish may take, from the first attempt to reach the broker to its
    /// acknowledgement; also the time allowed for connecting and for each request.
    pub timeout: Duration,
    /// How long the stream remembers a message id to store a message published twice once.
    pub duplicate_window: Duration,
}

impl NatsSettings {
    /// The settings for the broker at `url`, everything else the default: stream
    /// [`DEFAULT_STREAM`] on [`DEFAULT_SUBJECT`], 5 s per publish, a 2 min duplicate window.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: DEFAULT_STREAM.to_owned(),
            subjects: vec![DEFAULT_SUBJECT.to_owned()],
            timeout: Duration::from_secs(5),
            duplicate_window: Duration::from_secs(120),
        }
    }

    /// The URLs of [`url`](Self::url), each trimmed.
    pub(crate) fn urls(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect()
    }
}

impl fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<_> = self.urls().into_iter().map(without_credentials).collect();
        f.debug_struct("NatsSettings")
            .field("url", &urls.join(","))
            .field("stream", &self.stream)
            .field("subjects", &self.subjects)
            .field("timeout", &self.timeout)
            .field("duplicate_window", &self.duplicate_window)
            .finish()
    }
}

/// `url` with the user and password, or the token, before the host replaced by `***`.
fn without_credentials(url: &str) -> Cow<'_, str> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => {
            let scheme = scheme
                .map(|scheme| format!("{scheme}://"))
                .unwrap_or_default();
            Cow::Owned(format!("{scheme}***@{}", &rest[at + 1..]))
        }
        None => Cow::Borrowed(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_contracts() {
        let settings = NatsSettings::new("nats://127.0.0.1:4222");
        assert_eq!(settings.stream, "CONTACTD_CONTACTS");
        assert_eq!(settings.subjects, ["contactd.*.member.*.contacts"]);
        assert_eq!(settings.timeout, Duration::from_secs(5));
        assert_eq!(settings.duplicate_window, Duration::from_secs(120));
    }

    #[test]
    fn several_urls_are_separated_by_commas() {
        let settings = NatsSettings::new("nats://a:4222, nats://b:4222,");
        assert_eq!(settings.urls(), ["nats://a:4222", "nats://b:4222"]);
    }

    #[test]
    fn debug_hides_the_credentials() {
        let settings = NatsSettings::new("nats://contactd:s3cret@a:4222,tls://token@b:4222,c:4222");
        let debug = format!("{settings:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(!debug.contains("token"), "{debug}");
        assert!(
            debug.contains(r#"url: "nats://***@a:4222,tls://***@b:4222,c:4222""#),
            "{debug}"
        );
    }
}
