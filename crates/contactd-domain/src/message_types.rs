//! The kinds of message a contact receives, as a set kept in the contract's order.

use crate::{Field, ParameterError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    ServiceMessage,
    FaultMessage,
    AccountExpenses,
    SecurityMessage,
    ActivityMessage,
    ProductMessage,
}

impl MessageType {
    /// In the contract's order, which is also the order in which sets are returned.
    pub const ALL: [MessageType; 6] = [
        MessageType::ServiceMessage,
        MessageType::FaultMessage,
        MessageType::AccountExpenses,
        MessageType::SecurityMessage,
        MessageType::ActivityMessage,
        MessageType::ProductMessage,
    ];

    pub fn parse(raw: &str) -> Result<Self, ParameterError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or(ParameterError::Invalid(Field::MessageTypes))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::ServiceMessage => "ServiceMessage",
            MessageType::FaultMessage => "FaultMessage",
            MessageType::AccountExpenses => "AccountExpenses",
            MessageType::SecurityMessage => "SecurityMessage",
            MessageType::ActivityMessage => "ActivityMessage",
            MessageType::ProductMessage => "ProductMessage",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A non-empty set of message types; duplicates fold, order is the contract's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageTypes(u8);

impl MessageTypes {
    /// `Ok(None)` when none is given (the caller decides whether that is missing or
    /// "unchanged"); any unknown value is `InvalidParameter.MessageTypes`.
    pub fn parse<'a>(
        raw: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<Self>, ParameterError> {
        let mut bits = 0;
        for value in raw {
            bits |= MessageType::parse(value)?.bit();
        }
        Ok((bits != 0).then_some(Self(bits)))
    }

    pub fn contains(self, message_type: MessageType) -> bool {
        self.0 & message_type.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = MessageType> {
        MessageType::ALL
            .into_iter()
            .filter(move |t| self.contains(*t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_fold_and_the_contract_order_is_kept() {
        let types = MessageTypes::parse(["ProductMessage", "ServiceMessage", "ProductMessage"])
            .unwrap()
            .unwrap();
        assert_eq!(
            types.iter().collect::<Vec<_>>(),
            [MessageType::ServiceMessage, MessageType::ProductMessage]
        );
    }

    #[test]
    fn none_given_is_left_to_the_caller() {
        assert_eq!(MessageTypes::parse([]), Ok(None));
    }

    #[test]
    fn one_unknown_value_spoils_the_set() {
        assert_eq!(
            MessageTypes::parse(["ServiceMessage", "servicemessage"]),
            Err(ParameterError::Invalid(Field::MessageTypes))
        );
        assert_eq!(
            MessageTypes::parse([""]),
            Err(ParameterError::Invalid(Field::MessageTypes))
        );
    }
}
