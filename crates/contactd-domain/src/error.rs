//! The vocabulary of rejected input: which field, and what is wrong with it.

use std::fmt;

/// A request field, as the contract names it (`ContactId`, `EmailAddress`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    ContactId,
    Name,
    EmailAddress,
    PhoneNumber,
    Title,
    MessageTypes,
    PageNumber,
    PageSize,
    ClientToken,
    Member,
    PageToken,
    AsOf,
    FromPosition,
    Target,
    VerificationCode,
    Members,
    FolderId,
    ParentId,
    AccountId,
}

impl Field {
    /// The contract's name of the field, as it appears in error codes.
    pub fn contract_name(self) -> &'static str {
        match self {
            Field::ContactId => "ContactId",
            Field::Name => "Name",
            Field::EmailAddress => "EmailAddress",
            Field::PhoneNumber => "PhoneNumber",
            Field::Title => "Title",
            Field::MessageTypes => "MessageTypes",
            Field::PageNumber => "PageNumber",
            Field::PageSize => "PageSize",
            Field::ClientToken => "ClientToken",
            Field::Member => "Member",
            Field::PageToken => "PageToken",
            Field::AsOf => "AsOf",
            Field::FromPosition => "FromPosition",
            Field::Target => "Target",
            Field::VerificationCode => "VerificationCode",
            Field::Members => "Members",
            Field::FolderId => "FolderId",
            Field::ParentId => "ParentId",
            Field::AccountId => "AccountId",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.contract_name())
    }
}

/// Why a request's parameters were refused before anything was looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParameterError {
    /// `MissingParameter.<Field>`
    #[error("{0} is missing")]
    Missing(Field),
    /// `InvalidParameter.<Field>`
    #[error("{0} is invalid")]
    Invalid(Field),
    /// `InvalidParameter.<Field>.Length`
    #[error("{0} has a length outside its limits")]
    Length(Field),
    /// `InvalidParameter.<Field>.Duplicate`
    #[error("{0} contains duplicate values")]
    Duplicate(Field),
    /// `InvalidParameter.MobileCountryCode`
    #[error("the phone number's country code is not supported")]
    UnsupportedCountryCode,
}

impl ParameterError {
    /// The field the error is about.
    pub fn field(self) -> Field {
        match self {
            ParameterError::Missing(field)
            | ParameterError::Invalid(field)
            | ParameterError::Length(field)
            | ParameterError::Duplicate(field) => field,
            ParameterError::UnsupportedCountryCode => Field::PhoneNumber,
        }
    }
}
