//! Every error the service answers with, mapped variant by variant to the contract's code,
//! upstream message, gRPC code, HTTP status and error details. Technical causes are logged
//! here and never sent.

use std::collections::HashMap;
use std::time::Duration;

use contactd_app::AppError;
use contactd_domain::{Field, ParameterError};
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub(crate) const REQUEST_ID_HEADER: &str = "x-acs-request-id";
pub(crate) const ERROR_CODE_HEADER: &str = "x-acs-error-code";
pub(crate) const RETRY_AFTER_HEADER: &str = "retry-after";
/// Where an ended stream resumes: the `from_position` of the next `StreamEvents`.
pub(crate) const RESUME_FROM_HEADER: &str = "x-contactd-resume-from";
const ERROR_DOMAIN: &str = "resourcemanager";

/// One row of the contract's error table.
struct ErrorCode {
    reason: String,
    message: String,
    code: Code,
    http_status: u16,
    /// For parameter errors: the request field, as the proto names it.
    field: Option<&'static str>,
}

impl ErrorCode {
    fn new(reason: &str, message: &str, code: Code, http_status: u16) -> Self {
        Self {
            reason: reason.to_owned(),
            message: message.to_owned(),
            code,
            http_status,
            field: None,
        }
    }

    fn about(mut self, field: Field) -> Self {
        self.field = Some(proto_field_name(field));
        self
    }
}

/// The status for a failed call, with `ErrorInfo`, `RequestInfo`, `BadRequest` where a field
/// is at fault, and the code and request id in trailing metadata.
pub(crate) fn app_error(error: &AppError, request_id: &str) -> Status {
    log(error, request_id);
    let error_code = match error {
        AppError::Parameter(error) => parameter(*error),
        AppError::IdempotentParameterMismatch => ErrorCode::new(
            "IdempotentParameterMismatch",
            "The request uses the same client token as a previous, but non-identical request.",
            Code::InvalidArgument,
            400,
        ),
        AppError::ContactNotFound => ErrorCode::new(
            "EntityNotExists.Contact",
            "This Contact does not exist.",
            Code::NotFound,
            404,
        ),
        AppError::MemberNotFound => ErrorCode::new(
            "EntityNotExists.Member",
            "This Member does not exist.",
            Code::NotFound,
            404,
        ),
        AppError::InvalidMember => ErrorCode::new(
            "InvalidMember",
            "The member does not exist in the resource directory.",
            Code::FailedPrecondition,
            400,
        ),
        AppError::ContactMembersExceeded => ErrorCode::new(
            "LimitExceeded.ContactMembers",
            "The maximum number of contact members exceeds the limit.",
            Code::ResourceExhausted,
            400,
        ),
        // The directory's own errors: the contract names their codes, not their messages, so
        // these follow upstream's (DeleteFolder's `EntityNotExists.Folder` and conflicts).
        AppError::FolderNotFound => ErrorCode::new(
            "EntityNotExists.Folder",
            "The resource directory folder does not exist.",
            Code::NotFound,
            404,
        ),
        AppError::FolderExists => ErrorCode::new(
            "EntityAlreadyExists.Folder",
            "The resource directory folder already exists.",
            Code::AlreadyExists,
            409,
        ),
        AppError::MemberExists => ErrorCode::new(
            "EntityAlreadyExists.Member",
            "The member already exists in the resource directory.",
            Code::AlreadyExists,
            409,
        ),
        AppError::FolderNotEmpty => ErrorCode::new(
            "FolderNotEmpty",
            "This folder has sub folders or accounts.",
            Code::FailedPrecondition,
            409,
        ),
        AppError::StatusMismatch => ErrorCode::new(
            "ContactStatusMismatchAction",
            "The status of the contact does not allow the specified operation.",
            Code::FailedPrecondition,
            400,
        ),
        AppError::VerificationNotFound => ErrorCode::new(
            "EntityNotExists.Contact.Verification",
            "This contact verification does not exist.",
            Code::NotFound,
            404,
        ),
        AppError::SendLimitExceeded => ErrorCode::new(
            "SendValidateCodeExceedsLimitForAccount",
            "For the same account, the number of verification codes sent exceeds the limit.",
            Code::ResourceExhausted,
            409,
        ),
        AppError::NameAlreadyUsed => ErrorCode::new(
            "InvalidParameter.Name.AlreadyUsed",
            "The Name already exists. Please change to another name.",
            Code::AlreadyExists,
            400,
        )
        .about(Field::Name),
        AppError::ContactQuotaExceeded => ErrorCode::new(
            "LimitExceeded.Contacts",
            "The number of contacts exceeds the limit.",
            Code::ResourceExhausted,
            400,
        ),
        AppError::ConcurrentCall => ErrorCode::new(
            "ConcurrentCallNotSupported",
            "The operation conflicts with other operations. Please try again later.",
            Code::Aborted,
            429,
        ),
        AppError::Unavailable(_) => service_unavailable(),
        AppError::Internal(_) => ErrorCode::new(
            "InternalError",
            "The request processing has failed due to some unknown error.",
            Code::Internal,
            500,
        ),
    };
    status(error_code, request_id)
}

/// The caller's identity is missing or invalid.
pub(crate) fn unauthenticated(request_id: &str) -> Status {
    status(
        ErrorCode::new(
            "Unauthenticated",
            "The caller identity is missing or invalid.",
            Code::Unauthenticated,
            401,
        ),
        request_id,
    )
}

/// The caller may not do this action on this resource (or on anything).
pub(crate) fn no_permission(request_id: &str) -> Status {
    status(
        ErrorCode::new(
            "NoPermission",
            "You are not authorized to do this action.",
            Code::PermissionDenied,
            403,
        ),
        request_id,
    )
}

/// The caller's budget of calls (or of open streams) is spent for now: `RetryInfo` and a
/// trailing `retry-after` (whole seconds, rounded up) say when to try again.
pub(crate) fn throttled(request_id: &str, retry_after: Duration) -> Status {
    let mut status = status_with(
        ErrorCode::new(
            "Throttling.User",
            "Request was denied due to user flow control.",
            Code::ResourceExhausted,
            400,
        ),
        request_id,
        |details| {
            details.set_retry_info(Some(retry_after));
        },
    );
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    status
        .metadata_mut()
        .insert(RETRY_AFTER_HEADER, MetadataValue::from(seconds.max(1)));
    status
}

/// The request's bytes are not the RPC's message (or not a whole one). The contract asks for
/// no `ErrorInfo` reason here; the request id is there as on every answer.
pub(crate) fn undecodable(request_id: &str, what: &str) -> Status {
    let mut details = ErrorDetails::new();
    details.set_request_info(request_id, "");
    let status = Status::with_error_details(
        Code::InvalidArgument,
        format!("The request could not be decoded: {what}."),
        details,
    );
    with_request_id(status, request_id)
}

/// A status raised before the call reached its handler (tonic's own: an unknown method, a
/// deadline), with the request id added so that every answer carries one.
pub(crate) fn with_request_id(mut status: Status, request_id: &str) -> Status {
    if let Ok(value) = MetadataValue::try_from(request_id) {
        status.metadata_mut().insert(REQUEST_ID_HEADER, value);
    }
    status
}

/// A live stream whose client stopped reading was ended so that it holds no memory; it resumes
/// from `next_position` (`from_position` of a new `StreamEvents`), also in trailing metadata.
pub(crate) fn stream_fell_behind(request_id: &str, next_position: i64) -> Status {
    let status = status(
        ErrorCode::new(
            "Throttling.StreamFellBehind",
            &format!(
                "The stream was ended because its client stopped reading. Resume from \
                 from_position {next_position}."
            ),
            Code::ResourceExhausted,
            429,
        ),
        request_id,
    );
    with_resume_from(status, next_position)
}

/// A live stream ended because the server shuts down: `UNAVAILABLE`, so that its client
/// resumes from `next_position` (also in trailing metadata) on another server or this one
/// once it is back.
pub(crate) fn shutting_down(request_id: &str, next_position: i64) -> Status {
    with_resume_from(status(service_unavailable(), request_id), next_position)
}

/// The `from_position` an ended stream resumes from, in trailing metadata.
fn with_resume_from(mut status: Status, next_position: i64) -> Status {
    status
        .metadata_mut()
        .insert(RESUME_FROM_HEADER, MetadataValue::from(next_position));
    status
}

/// The database is known not to answer: the call is refused before it waits for it.
pub(crate) fn database_unavailable(request_id: &str) -> Status {
    status(service_unavailable(), request_id)
}

fn service_unavailable() -> ErrorCode {
    ErrorCode::new(
        "ServiceUnavailable",
        "The request has failed due to a temporary failure of the server.",
        Code::Unavailable,
        503,
    )
}

fn parameter(error: ParameterError) -> ErrorCode {
    let field = error.field();
    let name = code_name(field);
    let code = match error {
        ParameterError::Missing(_) => ErrorCode::new(
            &format!("MissingParameter.{name}"),
            &format!("You must specify {name}."),
            Code::InvalidArgument,
            400,
        ),
        // The one message of the table that does not follow the pattern.
        ParameterError::Invalid(Field::VerificationCode) => ErrorCode::new(
            "InvalidParameter.VerificationCode",
            "The verification code is invalid.",
            Code::InvalidArgument,
            400,
        ),
        ParameterError::Invalid(_) => ErrorCode::new(
            &format!("InvalidParameter.{name}"),
            &format!("The {name} is invalid."),
            Code::InvalidArgument,
            400,
        ),
        ParameterError::Length(_) => ErrorCode::new(
            &format!("InvalidParameter.{name}.Length"),
            &format!("The {name} exceeds the length limit."),
            Code::InvalidArgument,
            400,
        ),
        ParameterError::Duplicate(_) => ErrorCode::new(
            &format!("InvalidParameter.{name}.Duplicate"),
            &format!("The {name} contains duplicate values."),
            Code::InvalidArgument,
            400,
        ),
        ParameterError::UnsupportedCountryCode => ErrorCode::new(
            "InvalidParameter.MobileCountryCode",
            "The current site does not support the country code.",
            Code::InvalidArgument,
            400,
        ),
    };
    code.about(field)
}

/// The field's name in error codes and messages. A folder's parent is a folder id, and the
/// contract has one code for every malformed folder id (`InvalidParameter.FolderId`); the
/// `BadRequest` still names the field at fault (`parent_id`).
fn code_name(field: Field) -> &'static str {
    match field {
        Field::ParentId => Field::FolderId.contract_name(),
        other => other.contract_name(),
    }
}

fn status(error: ErrorCode, request_id: &str) -> Status {
    status_with(error, request_id, |_| {})
}

fn status_with(error: ErrorCode, request_id: &str, more: impl FnOnce(&mut ErrorDetails)) -> Status {
    let mut details = ErrorDetails::new();
    more(&mut details);
    details.set_error_info(
        error.reason.clone(),
        ERROR_DOMAIN,
        HashMap::from([("http_status".to_owned(), error.http_status.to_string())]),
    );
    details.set_request_info(request_id, "");
    if let Some(field) = error.field {
        details.add_bad_request_violation(field, error.message.clone());
    }
    let mut status = Status::with_error_details(error.code, error.message, details);
    let metadata = status.metadata_mut();
    if let Ok(value) = MetadataValue::try_from(error.reason.as_str()) {
        metadata.insert(ERROR_CODE_HEADER, value);
    }
    with_request_id(status, request_id)
}

fn proto_field_name(field: Field) -> &'static str {
    match field {
        Field::ContactId => "contact_id",
        Field::Name => "name",
        Field::EmailAddress => "email_address",
        Field::PhoneNumber => "phone_number",
        Field::Title => "title",
        Field::MessageTypes => "message_types",
        Field::PageNumber => "page_number",
        Field::PageSize => "page_size",
        Field::ClientToken => "client_token",
        Field::Member => "member",
        Field::PageToken => "page_token",
        Field::AsOf => "as_of",
        Field::FromPosition => "from_position",
        Field::Target => "target",
        Field::VerificationCode => "code",
        Field::Members => "members",
        Field::FolderId => "folder_id",
        Field::ParentId => "parent_id",
        Field::AccountId => "account_id",
    }
}

/// Technical failures are logged with their whole cause chain; rejections only at debug.
fn log(error: &AppError, request_id: &str) {
    match error {
        AppError::Unavailable(cause) | AppError::Internal(cause) => {
            let mut chain = cause.to_string();
            let mut source = std::error::Error::source(cause);
            while let Some(next) = source {
                chain.push_str(": ");
                chain.push_str(&next.to_string());
                source = next.source();
            }
            tracing::error!(request_id, error = %chain, "call failed");
        }
        rejection => tracing::debug!(request_id, %rejection, "call rejected"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The code, message, gRPC code, HTTP status and `BadRequest` field of an error's status.
    fn answer(error: AppError) -> (String, String, Code, String, Option<String>) {
        let status = app_error(&error, "9B34724D-54B0-4A51-B34D-4512372FE1BE");
        let details = status.get_error_details();
        let info = details.error_info().expect("every error carries ErrorInfo");
        let field = details
            .bad_request()
            .and_then(|bad| bad.field_violations.first())
            .map(|violation| violation.field.clone());
        (
            info.reason.clone(),
            status.message().to_owned(),
            status.code(),
            info.metadata["http_status"].clone(),
            field,
        )
    }

    #[test]
    fn binding_parameters_name_the_members_field() {
        assert_eq!(
            answer(ParameterError::Invalid(Field::Members).into()),
            (
                "InvalidParameter.Members".into(),
                "The Members is invalid.".into(),
                Code::InvalidArgument,
                "400".into(),
                Some("members".into())
            )
        );
        assert_eq!(
            answer(ParameterError::Duplicate(Field::Members).into()),
            (
                "InvalidParameter.Members.Duplicate".into(),
                "The Members contains duplicate values.".into(),
                Code::InvalidArgument,
                "400".into(),
                Some("members".into())
            )
        );
    }

    #[test]
    fn a_malformed_parent_is_a_malformed_folder_id_about_parent_id() {
        let (reason, message, code, _, field) =
            answer(ParameterError::Invalid(Field::ParentId).into());
        assert_eq!(reason, "InvalidParameter.FolderId");
        assert_eq!(message, "The FolderId is invalid.");
        assert_eq!(code, Code::InvalidArgument);
        assert_eq!(field.as_deref(), Some("parent_id"));
        let (reason, message, _, _, field) =
            answer(ParameterError::Missing(Field::AccountId).into());
        assert_eq!(reason, "MissingParameter.AccountId");
        assert_eq!(message, "You must specify AccountId.");
        assert_eq!(field.as_deref(), Some("account_id"));
    }

    #[test]
    fn directory_and_binding_rejections_carry_the_contract_codes() {
        for (error, reason, code, http) in [
            (
                AppError::InvalidMember,
                "InvalidMember",
                Code::FailedPrecondition,
                "400",
            ),
            (
                AppError::ContactMembersExceeded,
                "LimitExceeded.ContactMembers",
                Code::ResourceExhausted,
                "400",
            ),
            (
                AppError::FolderNotFound,
                "EntityNotExists.Folder",
                Code::NotFound,
                "404",
            ),
            (
                AppError::MemberNotFound,
                "EntityNotExists.Member",
                Code::NotFound,
                "404",
            ),
            (
                AppError::FolderExists,
                "EntityAlreadyExists.Folder",
                Code::AlreadyExists,
                "409",
            ),
            (
                AppError::MemberExists,
                "EntityAlreadyExists.Member",
                Code::AlreadyExists,
                "409",
            ),
            (
                AppError::FolderNotEmpty,
                "FolderNotEmpty",
                Code::FailedPrecondition,
                "409",
            ),
        ] {
            let answered = answer(error);
            assert_eq!(
                (
                    answered.0.as_str(),
                    answered.2,
                    answered.3.as_str(),
                    answered.4
                ),
                (reason, code, http, None)
            );
            assert!(answered.1.ends_with('.'), "{reason}: {}", answered.1);
        }
    }
}
