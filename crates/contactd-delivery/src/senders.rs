//! `Senders`, the application's `Notifier`: each notification goes the way its channel is
//! configured, by SMTP or to the SMS gateway, or else into the development sink.

use std::sync::Arc;

use contactd_app::{Delivered, DeliveryError, Notification, Notifier};
use contactd_domain::VerificationTarget;
use lettre::message::Mailbox;

use crate::compose::{self, SmsRequest};
use crate::settings::{DeliveryConfigError, DeliverySettings, parse_mail_from};
use crate::sink::FileSink;
use crate::sms::SmsWebhook;
use crate::smtp::SmtpSender;

/// Sends verification messages as the settings say. Cheap to clone: the SMTP pool and the
/// HTTP client are shared.
#[derive(Debug, Clone)]
pub struct Senders {
    mail_from: Mailbox,
    email: Option<Arc<SmtpSender>>,
    sms: Option<SmsWebhook>,
    sink: FileSink,
}

impl Senders {
    /// Checks the settings and builds the senders. Nothing is connected, and no runtime is
    /// needed, until the first message.
    pub fn new(settings: DeliverySettings) -> Result<Self, DeliveryConfigError> {
        if settings.timeout.is_zero() {
            return Err(DeliveryConfigError::ZeroTimeout);
        }
        let mail_from = parse_mail_from(&settings.mail_from)?;
        let email = settings
            .smtp_url
            .as_deref()
            .map(|url| {
                SmtpSender::new(url, settings.timeout, settings.smtp_connections).map(Arc::new)
            })
            .transpose()?;
        let sms = settings
            .sms_webhook_url
            .as_deref()
            .map(|url| SmsWebhook::new(url, settings.timeout))
            .transpose()?;
        Ok(Self {
            mail_from,
            email,
            sms,
            sink: FileSink::new(settings.sink_dir),
        })
    }

    /// For the start-up log: "email by SMTP to 127.0.0.1:2525, SMS into ./data/messages".
    /// Names hosts and ports only, never a user, a password or a webhook's path.
    pub fn describe(&self) -> String {
        let sink = self.sink.dir().display();
        let email = match &self.email {
            Some(smtp) => format!("email by SMTP to {}", smtp.describe()),
            None => format!("email into {sink}"),
        };
        let sms = match &self.sms {
            Some(webhook) => format!("SMS by webhook to {}", webhook.describe()),
            None => format!("SMS into {sink}"),
        };
        format!("{email}, {sms}")
    }
}

impl Notifier for Senders {
    async fn deliver(&self, notification: &Notification) -> Result<Delivered, DeliveryError> {
        match &notification.recipient {
            VerificationTarget::Email(address) => {
                let message = compose::email(&self.mail_from, address, notification)?;
                match &self.email {
                    Some(smtp) => smtp.send(message).await,
                    None => {
                        let name = format!("{}.eml", notification.message_id);
                        self.sink.write(name, message.formatted()).await
                    }
                }
            }
            VerificationTarget::Phone(phone) => {
                let request = SmsRequest::new(phone, notification);
                match &self.sms {
                    Some(webhook) => webhook.send(&request).await,
                    None => {
                        let name = format!("{}.sms.json", notification.message_id);
                        self.sink.write(name, request.to_json()?).await
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    fn settings() -> DeliverySettings {
        DeliverySettings {
            smtp_url: None,
            mail_from: "noreply@example.com".to_owned(),
            sms_webhook_url: None,
            sink_dir: PathBuf::from("./data/messages"),
            timeout: Duration::from_secs(10),
            smtp_connections: 4,
        }
    }

    #[test]
    fn describe_and_debug_name_each_channels_way_without_secrets() {
        assert_eq!(
            Senders::new(settings()).unwrap().describe(),
            "email into ./data/messages, SMS into ./data/messages"
        );
        let configured = Senders::new(DeliverySettings {
            smtp_url: Some("smtp://mailer:hunter2@127.0.0.1:2525".to_owned()),
            sms_webhook_url: Some("https://sms.example.com/hook?token=s3cr3t".to_owned()),
            ..settings()
        })
        .unwrap();
        assert_eq!(
            configured.describe(),
            "email by SMTP to 127.0.0.1:2525, SMS by webhook to https://sms.example.com:443"
        );
        let debug = format!("{configured:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        let only_smtp = Senders::new(DeliverySettings {
            smtp_url: Some("smtps://mailer:hunter2@mail.example.com".to_owned()),
            ..settings()
        })
        .unwrap();
        assert_eq!(
            only_smtp.describe(),
            "email by SMTP to mail.example.com:465 (implicit TLS), SMS into ./data/messages"
        );
    }

    #[test]
    fn each_malformed_setting_is_refused_with_its_own_error() {
        let bad_smtp = DeliverySettings {
            smtp_url: Some("smtp//127.0.0.1:2525".to_owned()),
            ..settings()
        };
        assert!(matches!(
            Senders::new(bad_smtp),
            Err(DeliveryConfigError::SmtpUrl(_))
        ));
        let bad_from = DeliverySettings {
            mail_from: "contactd".to_owned(),
            ..settings()
        };
        assert!(matches!(
            Senders::new(bad_from),
            Err(DeliveryConfigError::MailFrom(_))
        ));
        let bad_webhook = DeliverySettings {
            sms_webhook_url: Some("sms.example.com/hook".to_owned()),
            ..settings()
        };
        assert!(matches!(
            Senders::new(bad_webhook),
            Err(DeliveryConfigError::SmsWebhookUrl(_))
        ));
        let no_time = DeliverySettings {
            timeout: Duration::ZERO,
            ..settings()
        };
        assert!(matches!(
            Senders::new(no_time),
            Err(DeliveryConfigError::ZeroTimeout)
        ));
    }
}
