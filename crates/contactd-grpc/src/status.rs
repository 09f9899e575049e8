//! Every error the service answers with, mapped variant by variant to the contract's code,
//! upstream message, gRPC code, HTTP status and error details. Technical causes are logged
//! here and never sent.

use std::collections::HashMap;

use contactd_app::AppError;
use contactd_domain::{Field, ParameterError};
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub(crate) const REQUEST_ID_HEADER: &str = "x-acs-request-id";
pub(crate) const ERROR_CODE_HEADER: &str = "x-acs-error-code";
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
        AppError::Unavailable(_) => ErrorCode::new(
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
            Code::Unavailable,
            503,
        ),
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

fn parameter(error: ParameterError) -> ErrorCode {
    let field = error.field();
    let name = field.contract_name();
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
        ParameterError::UnsupportedCountryCode => ErrorCode::new(
            "InvalidParameter.MobileCountryCode",
            "The current site does not support the country code.",
            Code::InvalidArgument,
            400,
        ),
    };
    code.about(field)
}

fn status(error: ErrorCode, request_id: &str) -> Status {
    let mut details = ErrorDetails::new();
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
    if let Ok(value) = MetadataValue::try_from(request_id) {
        metadata.insert(REQUEST_ID_HEADER, value);
    }
    status
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
