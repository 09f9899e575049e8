//! The fuzz targets' way in (`fuzz/`, feature `fuzzing`): a request message decoded from bytes
//! and turned into its command exactly as the server does, with the properties every request
//! must keep. A broken property panics, which is how the fuzzer learns of it.

use std::fmt::Debug;

use contactd_access::Rpc;
use contactd_app::{AppError, EventPage};
use contactd_domain::{ClientToken, ContactId, CountryCodes, Field, ParameterError};
use prost::Message;

use crate::from_proto::{self, fingerprint};
use crate::proto::{
    AddMessageContactRequest, AssociateMembersRequest, CancelMessageContactUpdateRequest,
    ConfirmMessageContactVerificationRequest, DeleteMessageContactRequest,
    DisassociateMembersRequest, ForgetMessageContactRequest, GetMessageContactAsOfRequest,
    GetMessageContactDeletionStatusRequest, GetMessageContactRequest, GetResourceDirectoryRequest,
    ListMessageContactEventsRequest, ListMessageContactVerificationsRequest,
    ListMessageContactsRequest, MoveMemberRequest, RegisterFolderRequest, RegisterMemberRequest,
    RemoveFolderRequest, RemoveMemberRequest, SendEmailVerificationForMessageContactRequest,
    SendPhoneVerificationForMessageContactRequest, StreamEventsRequest,
    UpdateMessageContactRequest,
};
use crate::status;

/// The RPC whose request a selector picks, in the order of the services' RPCs (contact, audit,
/// directory, privacy): the committed corpus's first bytes depend on this order, so it only
/// grows.
pub const REQUEST_RPCS: [Rpc; 23] = [
    Rpc::AddMessageContact,
    Rpc::UpdateMessageContact,
    Rpc::GetMessageContact,
    Rpc::ListMessageContacts,
    Rpc::SendEmailVerificationForMessageContact,
    Rpc::SendPhoneVerificationForMessageContact,
    Rpc::ListMessageContactVerifications,
    Rpc::CancelMessageContactUpdate,
    Rpc::ConfirmMessageContactVerification,
    Rpc::DeleteMessageContact,
    Rpc::GetMessageContactDeletionStatus,
    Rpc::AssociateMembers,
    Rpc::DisassociateMembers,
    Rpc::ListMessageContactEvents,
    Rpc::StreamEvents,
    Rpc::GetMessageContactAsOf,
    Rpc::GetResourceDirectory,
    Rpc::RegisterFolder,
    Rpc::RemoveFolder,
    Rpc::RegisterMember,
    Rpc::MoveMember,
    Rpc::RemoveMember,
    Rpc::ForgetMessageContact,
];

/// How many request messages `decode_request` tells apart; a selector is taken modulo this.
pub const REQUEST_KINDS: u8 = REQUEST_RPCS.len() as u8;

/// Decodes `bytes` as the request `selector` picks (modulo `REQUEST_KINDS`) and, when that
/// succeeds, converts it under the default country codes and under every code, and takes its
/// client-token fingerprint; panics if a property breaks.
pub fn decode_request(selector: u8, bytes: &[u8]) {
    let codes = Codes {
        default: CountryCodes::default(),
        every: CountryCodes::new(1..=999),
    };
    match REQUEST_RPCS[usize::from(selector % REQUEST_KINDS)] {
        Rpc::AddMessageContact => exercise(
            bytes,
            &codes,
            |r: &AddMessageContactRequest, c| from_proto::new_contact(r, c),
            |r| {
                first_missing([
                    (r.name.is_empty(), Field::Name),
                    (r.email_address.is_empty(), Field::EmailAddress),
                    (r.title.is_empty(), Field::Title),
                    (r.message_types.is_empty(), Field::MessageTypes),
                ])
            },
            Some(|r: &mut AddMessageContactRequest| &mut r.client_token),
        ),
        Rpc::UpdateMessageContact => exercise(
            bytes,
            &codes,
            |r: &UpdateMessageContactRequest, c| from_proto::update_command(r, c),
            |r| missing_contact_id(&r.contact_id),
            Some(|r: &mut UpdateMessageContactRequest| &mut r.client_token),
        ),
        Rpc::GetMessageContact => exercise(
            bytes,
            &codes,
            |r: &GetMessageContactRequest, _| from_proto::contact_id(r),
            |r| missing_contact_id(&r.contact_id),
            None,
        ),
        // An empty contact id is no filter here, so nothing is ever missing.
        Rpc::ListMessageContacts => exercise(
            bytes,
            &codes,
            |r: &ListMessageContactsRequest, _| from_proto::list_query(r),
            |_| None,
            None,
        ),
        Rpc::SendEmailVerificationForMessageContact => exercise(
            bytes,
            &codes,
            |r: &SendEmailVerificationForMessageContactRequest, _| from_proto::send_email(r),
            |r| {
                first_missing([
                    (r.contact_id.is_empty(), Field::ContactId),
                    (r.email_address.is_empty(), Field::EmailAddress),
                ])
            },
            Some(|r: &mut SendEmailVerificationForMessageContactRequest| &mut r.client_token),
        ),
        Rpc::SendPhoneVerificationForMessageContact => exercise(
            bytes,
            &codes,
            |r: &SendPhoneVerificationForMessageContactRequest, c| from_proto::send_phone(r, c),
            |r| {
                first_missing([
                    (r.contact_id.is_empty(), Field::ContactId),
                    (r.phone_number.is_empty(), Field::PhoneNumber),
                ])
            },
            Some(|r: &mut SendPhoneVerificationForMessageContactRequest| &mut r.client_token),
        ),
        Rpc::ListMessageContactVerifications => exercise(
            bytes,
            &codes,
            |r: &ListMessageContactVerificationsRequest, _| from_proto::list_verifications(r),
            |r| missing_contact_id(&r.contact_id),
            None,
        ),
        Rpc::CancelMessageContactUpdate => exercise(
            bytes,
            &codes,
            |r: &CancelMessageContactUpdateRequest, c| from_proto::cancel_command(r, c),
            |r| missing_contact_id(&r.contact_id),
            Some(|r: &mut CancelMessageContactUpdateRequest| &mut r.client_token),
        ),
        Rpc::ConfirmMessageContactVerification => exercise(
            bytes,
            &codes,
            |r: &ConfirmMessageContactVerificationRequest, c| from_proto::confirm(r, c),
            |r| {
                first_missing([
                    (r.contact_id.is_empty(), Field::ContactId),
                    (r.target.is_empty(), Field::Target),
                    (r.code.is_empty(), Field::VerificationCode),
                ])
            },
            Some(|r: &mut ConfirmMessageContactVerificationRequest| &mut r.client_token),
        ),
        Rpc::DeleteMessageContact => exercise(
            bytes,
            &codes,
            |r: &DeleteMessageContactRequest, _| from_proto::delete(r),
            |r| missing_contact_id(&r.contact_id),
            Some(|r: &mut DeleteMessageContactRequest| &mut r.client_token),
        ),
        Rpc::GetMessageContactDeletionStatus => exercise(
            bytes,
            &codes,
            |r: &GetMessageContactDeletionStatusRequest, _| from_proto::deletion_status(r),
            |r| missing_contact_id(&r.contact_id),
            None,
        ),
        Rpc::AssociateMembers => exercise(
            bytes,
            &codes,
            |r: &AssociateMembersRequest, _| from_proto::associate(r),
            |r| missing_contact_id(&r.contact_id),
            Some(|r: &mut AssociateMembersRequest| &mut r.client_token),
        ),
        Rpc::DisassociateMembers => exercise(
            bytes,
            &codes,
            |r: &DisassociateMembersRequest, _| from_proto::disassociate(r),
            |r| missing_contact_id(&r.contact_id),
            Some(|r: &mut DisassociateMembersRequest| &mut r.client_token),
        ),
        // The audit service converts inline (`audit.rs`): the same calls, in the same order.
        Rpc::ListMessageContactEvents => exercise(
            bytes,
            &codes,
            |r: &ListMessageContactEventsRequest, _| {
                Ok::<_, ParameterError>((
                    ContactId::parse(&r.contact_id)?,
                    EventPage::parse(r.page_size.into(), &r.page_token)?,
                ))
            },
            |r| missing_contact_id(&r.contact_id),
            None,
        ),
        Rpc::StreamEvents => exercise(
            bytes,
            &codes,
            |r: &StreamEventsRequest, _| Ok::<_, ParameterError>(r.from_position),
            |_| None,
            None,
        ),
        Rpc::GetMessageContactAsOf => exercise(
            bytes,
            &codes,
            |r: &GetMessageContactAsOfRequest, _| {
                Ok::<_, ParameterError>((ContactId::parse(&r.contact_id)?, crate::audit::as_of(r)?))
            },
            |r| missing_contact_id(&r.contact_id),
            None,
        ),
        Rpc::GetResourceDirectory => exercise(
            bytes,
            &codes,
            |_: &GetResourceDirectoryRequest, _| Ok::<_, ParameterError>(()),
            |_| None,
            None,
        ),
        Rpc::RegisterFolder => exercise(
            bytes,
            &codes,
            |r: &RegisterFolderRequest, _| from_proto::register_folder(r),
            |r| first_missing([(r.folder_id.is_empty(), Field::FolderId)]),
            None,
        ),
        Rpc::RemoveFolder => exercise(
            bytes,
            &codes,
            |r: &RemoveFolderRequest, _| from_proto::remove_folder(r),
            |r| first_missing([(r.folder_id.is_empty(), Field::FolderId)]),
            None,
        ),
        Rpc::RegisterMember => exercise(
            bytes,
            &codes,
            |r: &RegisterMemberRequest, _| from_proto::register_member(r),
            |r| first_missing([(r.account_id.is_empty(), Field::AccountId)]),
            None,
        ),
        Rpc::MoveMember => exercise(
            bytes,
            &codes,
            |r: &MoveMemberRequest, _| from_proto::move_member(r),
            |r| first_missing([(r.account_id.is_empty(), Field::AccountId)]),
            None,
        ),
        Rpc::RemoveMember => exercise(
            bytes,
            &codes,
            |r: &RemoveMemberRequest, _| from_proto::remove_member(r),
            |r| first_missing([(r.account_id.is_empty(), Field::AccountId)]),
            None,
        ),
        Rpc::ForgetMessageContact => exercise(
            bytes,
            &codes,
            |r: &ForgetMessageContactRequest, _| from_proto::forget(r),
            |r| missing_contact_id(&r.contact_id),
            None,
        ),
    }
}

struct Codes {
    /// The contract's default: `86` only.
    default: CountryCodes,
    /// Every calling code, so that any country's numbering rules are reached.
    every: CountryCodes,
}

/// Where a request's client token lives, for the messages that carry one.
type TokenField<M> = fn(&mut M) -> &mut String;

/// One decoded request through the server's path, and the properties of that path:
/// - what decodes re-encodes to a message that decodes to the same (so the fingerprint, built
///   from the re-encoding, is a function of the request and not of its bytes);
/// - the conversion is deterministic, and anything valid under the default codes is valid,
///   and the same, under every code (more codes never refuse more);
/// - a required field sent empty is reported missing (the first one, in field order) before
///   any shape;
/// - the fingerprint ignores the token and is the request without it.
fn exercise<M, T>(
    bytes: &[u8],
    codes: &Codes,
    convert: impl Fn(&M, &CountryCodes) -> Result<T, ParameterError>,
    first_missing: impl Fn(&M) -> Option<Field>,
    token: Option<TokenField<M>>,
) where
    M: Message + Default + Clone + PartialEq,
    T: PartialEq + Debug,
{
    let Ok(request) = M::decode(bytes) else {
        return;
    };
    let reencoded = request.encode_to_vec();
    assert!(
        M::decode(reencoded.as_slice()).is_ok_and(|again| again == request),
        "a decoded request re-encodes to itself"
    );

    let narrow = convert(&request, &codes.default);
    assert_eq!(
        convert(&request, &codes.default),
        narrow,
        "conversion is deterministic"
    );
    if let Err(error) = narrow {
        parameter_status(error);
    }
    let wide = convert(&request, &codes.every);
    if narrow.is_ok() {
        assert_eq!(wide, narrow, "more country codes accept at least as much");
    }
    if let Some(field) = first_missing(&request) {
        assert_eq!(narrow, Err(ParameterError::Missing(field)), "missing first");
        assert_eq!(wide, Err(ParameterError::Missing(field)), "missing first");
    }

    if let Some(token_of) = token {
        let mut probe = request.clone();
        let token = token_of(&mut probe).clone();
        let parsed = ClientToken::parse(&token);
        assert_eq!(
            parsed.is_err(),
            token.chars().count() > 64,
            "tokens are refused only when longer than 64 characters"
        );
        let print = fingerprint(&request, |r| token_of(r).clear());
        *token_of(&mut probe) = "another token".to_owned();
        assert_eq!(
            fingerprint(&probe, |r| token_of(r).clear()),
            print,
            "the fingerprint ignores the token"
        );
        token_of(&mut probe).clear();
        assert!(
            M::decode(print.as_slice()).is_ok_and(|unprinted| unprinted == probe),
            "the fingerprint is the request without its token"
        );
    }
}

/// A refused request answers as the server does: `INVALID_ARGUMENT`, with a missing or
/// invalid parameter's error code in the trailers.
fn parameter_status(error: ParameterError) {
    let status = status::app_error(&AppError::Parameter(error), "fuzz");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{error:?}");
    let code = status
        .metadata()
        .get(status::ERROR_CODE_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    assert!(
        code.starts_with("MissingParameter.") || code.starts_with("InvalidParameter."),
        "{error:?}: {code}"
    );
}

fn first_missing<const N: usize>(fields: [(bool, Field); N]) -> Option<Field> {
    fields
        .into_iter()
        .find_map(|(missing, field)| missing.then_some(field))
}

fn missing_contact_id(raw: &str) -> Option<Field> {
    raw.is_empty().then_some(Field::ContactId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_has_exactly_one_selector() {
        for rpc in Rpc::ALL {
            let selectors = REQUEST_RPCS.iter().filter(|picked| *picked == rpc).count();
            assert_eq!(selectors, 1, "{rpc:?}");
        }
        assert_eq!(REQUEST_RPCS.len(), Rpc::ALL.len());
    }

    #[test]
    fn every_selector_takes_empty_and_garbage_input() {
        for selector in 0..=u8::MAX {
            decode_request(selector, &[]);
            decode_request(selector, &[0xff, 0x01, 0x02]);
            decode_request(selector, b"\x0a\x03abc\x12\x01x");
        }
    }

    #[test]
    fn a_valid_add_goes_all_the_way_through() {
        let request = AddMessageContactRequest {
            name: "Tom".into(),
            email_address: "tom@example.com".into(),
            phone_number: Some("86-13912345678".into()),
            title: "CEO".into(),
            message_types: vec!["AccountExpenses".into()],
            client_token: "t-1".into(),
        };
        decode_request(0, &request.encode_to_vec());
    }
}
