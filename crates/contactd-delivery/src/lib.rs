//! The notifier adapter: verification messages by SMTP, to the SMS gateway's webhook, or into a
//! development sink of files. The only crate that knows SMTP, the gateway's HTTP and the texts
//! of the messages; the application knows it only as its `Notifier` port.

mod compose;
mod senders;
mod settings;
mod sink;
mod sms;
mod smtp;

pub use senders::Senders;
pub use settings::{DeliveryConfigError, DeliverySettings};
