//! Why a use case failed: a rejection the contract names, or a technical failure.

use contactd_domain::{ContactRejection, DirectoryRejection, Field, ParameterError};

use crate::port::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Parameter(#[from] ParameterError),
    #[error("the client token was used before for a different request")]
    IdempotentParameterMismatch,
    #[error("the contact does not exist")]
    ContactNotFound,
    #[error("the member does not exist in the caller's directory")]
    MemberNotFound,
    #[error("the contact's status does not allow this change")]
    StatusMismatch,
    #[error("a target is not in the caller's resource directory")]
    InvalidMember,
    #[error("the contact would be bound to too many targets")]
    ContactMembersExceeded,
    #[error("the folder does not exist in the caller's directory")]
    FolderNotFound,
    #[error("the folder exists already in the caller's directory")]
    FolderExists,
    #[error("the member exists already in the caller's directory")]
    MemberExists,
    #[error("the folder still holds folders or members")]
    FolderNotEmpty,
    #[error("the target is not pending verification on the contact")]
    VerificationNotFound,
    #[error(
        "the send limit of the account or the target is reached, or the code's tries are spent"
    )]
    SendLimitExceeded,
    #[error("the name is already used by another contact of the account")]
    NameAlreadyUsed,
    #[error("the account has reached its contact quota")]
    ContactQuotaExceeded,
    #[error("the contact kept changing under the call")]
    ConcurrentCall,
    #[error("the store is unavailable")]
    Unavailable(#[source] StoreError),
    #[error("internal failure")]
    Internal(#[source] StoreError),
}

impl From<ContactRejection> for AppError {
    fn from(rejection: ContactRejection) -> Self {
        match rejection {
            ContactRejection::StatusMismatch => AppError::StatusMismatch,
            ContactRejection::NotPending => AppError::VerificationNotFound,
            // No code, an expired one or a replaced one: the code given is not valid.
            ContactRejection::NoLiveCode => {
                AppError::Parameter(ParameterError::Invalid(Field::VerificationCode))
            }
            ContactRejection::InvalidMember => AppError::InvalidMember,
            ContactRejection::TooManyMembers => AppError::ContactMembersExceeded,
        }
    }
}

impl From<DirectoryRejection> for AppError {
    fn from(rejection: DirectoryRejection) -> Self {
        match rejection {
            DirectoryRejection::FolderNotFound => AppError::FolderNotFound,
            DirectoryRejection::MemberNotFound => AppError::MemberNotFound,
            DirectoryRejection::FolderExists => AppError::FolderExists,
            DirectoryRejection::MemberExists => AppError::MemberExists,
            DirectoryRejection::FolderNotEmpty => AppError::FolderNotEmpty,
        }
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        if error.is_transient() {
            AppError::Unavailable(error)
        } else {
            AppError::Internal(error)
        }
    }
}
