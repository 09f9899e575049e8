//! The texts of the verification messages, and the email and the SMS request they travel in:
//! the same bytes whether they go to a server or into the development sink.

use chrono::{DateTime, Utc};
use contactd_app::{DeliveryError, Notification};
use contactd_domain::{EmailAddress, PhoneNumber};
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, SinglePart};
use serde::Serialize;

pub(crate) const EMAIL_SUBJECT: &str = "Your verification code";

/// The email of a notification. Its `Message-ID` is made of the message id, which is the same
/// on every attempt, so that a receiver can recognise a re-sent duplicate.
pub(crate) fn email(
    from: &Mailbox,
    to: &EmailAddress,
    notification: &Notification,
) -> Result<Message, DeliveryError> {
    // The domain's parser is stricter than lettre's, so a parsed address always passes here;
    // should it not, retrying would not help.
    let to = to
        .as_str()
        .parse()
        .map_err(|_| DeliveryError::Permanent("email address refused by the composer".into()))?;
    Message::builder()
        .message_id(Some(format!(
            "<{}@{}>",
            notification.message_id,
            from.email.domain()
        )))
        .date_now()
        .from(from.clone())
        .to(Mailbox::new(None, to))
        .subject(EMAIL_SUBJECT)
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(email_text(notification)),
        )
        .map_err(|_| DeliveryError::Permanent("email could not be composed".into()))
}

fn email_text(notification: &Notification) -> String {
    let greeting = match notification.contact_name.trim() {
        "" => "Hello,".to_owned(),
        name => format!("Hello {name},"),
    };
    format!(
        "{greeting}\n\
         \n\
         Your verification code is {code}.\n\
         It expires at {expiry}.\n\
         \n\
         Type the code where you were asked for it, or confirm by opening this link:\n\
         {link}\n\
         \n\
         If you did not expect this message, ignore it: nothing changes unless the code or the\n\
         link is used.\n",
        code = notification.code.expose(),
        expiry = long_time(notification.expires_at),
        link = notification.link,
    )
}

/// What the SMS gateway's webhook receives; the field names are fixed by its contract. No
/// `Debug`: it holds the code.
#[derive(Serialize)]
pub(crate) struct SmsRequest<'a> {
    pub(crate) phone_number: &'a str,
    pub(crate) message: String,
    pub(crate) contact_id: &'a str,
    pub(crate) idempotency_key: String,
}

impl<'a> SmsRequest<'a> {
    pub(crate) fn new(to: &'a PhoneNumber, notification: &'a Notification) -> Self {
        Self {
            phone_number: to.as_str(),
            message: sms_text(notification),
            contact_id: notification.contact_id.as_str(),
            idempotency_key: notification.message_id.hyphenated().to_string(),
        }
    }

    /// The request's body, for the gateway and for the sink alike.
    pub(crate) fn to_json(&self) -> Result<Vec<u8>, DeliveryError> {
        serde_json::to_vec(self)
            .map_err(|_| DeliveryError::Permanent("sms request could not be encoded".into()))
    }
}

/// Short, so that it fits one SMS (160 GSM characters): the code first, then the expiry.
fn sms_text(notification: &Notification) -> String {
    format!(
        "Your contactd verification code is {}. It expires at {} UTC.",
        notification.code.expose(),
        notification.expires_at.format("%H:%M"),
    )
}

/// `2026-12-01 22:15 UTC`. Minutes are cut, not rounded, so that the time shown is never past
/// the real expiry.
fn long_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use contactd_domain::{ContactId, VerificationCode, VerificationTarget};
    use uuid::Uuid;

    use super::*;

    fn notification(name: &str) -> Notification {
        Notification {
            message_id: Uuid::new_v4(),
            contact_id: ContactId::generate(),
            contact_name: name.to_owned(),
            recipient: VerificationTarget::Phone(PhoneNumber::restore("86-13912345678").unwrap()),
            code: VerificationCode::from_number(42),
            expires_at: Utc.with_ymd_and_hms(2026, 12, 1, 22, 15, 59).unwrap(),
            link: "https://contacts.example.com/verify?t=abc".to_owned(),
        }
    }

    #[test]
    fn the_sms_text_holds_the_code_and_the_expiry_and_fits_one_message() {
        let text = sms_text(&notification("张三"));
        assert_eq!(
            text,
            "Your contactd verification code is 000042. It expires at 22:15 UTC."
        );
        assert!(text.len() <= 160);
    }

    #[test]
    fn the_email_text_greets_by_name_and_holds_code_expiry_link_and_a_way_out() {
        let text = email_text(&notification("张三"));
        assert!(text.starts_with("Hello 张三,\n"), "{text}");
        assert!(text.contains("000042"), "{text}");
        assert!(text.contains("2026-12-01 22:15 UTC"), "{text}");
        assert!(
            text.contains("https://contacts.example.com/verify?t=abc"),
            "{text}"
        );
        assert!(text.contains("If you did not expect this message, ignore it"));
        assert!(email_text(&notification("  ")).starts_with("Hello,\n"));
    }

    #[test]
    fn the_sms_request_has_exactly_the_contracts_four_fields() {
        let notification = notification("Tom");
        let phone = PhoneNumber::restore("86-13912345678").unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&SmsRequest::new(&phone, &notification).to_json().unwrap())
                .unwrap();
        let object = json.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["contact_id", "idempotency_key", "message", "phone_number"]
        );
        assert_eq!(object["phone_number"], "86-13912345678");
        assert_eq!(object["contact_id"], notification.contact_id.as_str());
        assert_eq!(
            object["idempotency_key"],
            notification.message_id.to_string()
        );
    }
}
