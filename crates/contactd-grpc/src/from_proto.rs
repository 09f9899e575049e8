//! From the wire to the application: requests are unvalidated proto3, so each conversion is
//! fallible and follows the contract's check order (missing parameters, then shapes in field
//! order).

use std::collections::HashSet;

use contactd_app::{ListQuery, NewContact, PageRequest};
use contactd_domain::{
    CancelMessageContactUpdate, ContactId, ContactName, CountryCodes, EmailAddress, Field,
    FolderId, MemberAccountId, MemberId, MessageTypes, ParameterError, PhoneChange, PhoneNumber,
    Title, UpdateMessageContact, VerificationCode, VerificationTarget,
};
use prost::Message;

use crate::proto::{
    AddMessageContactRequest, AssociateMembersRequest, CancelMessageContactUpdateRequest,
    ConfirmMessageContactVerificationRequest, DeleteMessageContactRequest,
    DisassociateMembersRequest, ForgetMessageContactRequest,
    GetMessageContactDeletionStatusRequest, GetMessageContactRequest,
    ListMessageContactVerificationsRequest, ListMessageContactsRequest, MoveMemberRequest,
    RegisterFolderRequest, RegisterMemberRequest, RemoveFolderRequest, RemoveMemberRequest,
    SendEmailVerificationForMessageContactRequest, SendPhoneVerificationForMessageContactRequest,
    UpdateMessageContactRequest,
};

const DEFAULT_PAGE_SIZE: u32 = 10;
const MAX_PAGE_SIZE: u32 = 100;
/// The most targets one AssociateMembers or DisassociateMembers call names.
const MAX_MEMBERS_PER_CALL: usize = 5;

/// The first required field sent empty, in field order: missing parameters are reported
/// before any field's shape.
fn require<const N: usize>(fields: [(bool, Field); N]) -> Result<(), ParameterError> {
    match fields.into_iter().find(|(missing, _)| *missing) {
        Some((_, field)) => Err(ParameterError::Missing(field)),
        None => Ok(()),
    }
}

pub(crate) fn new_contact(
    req: &AddMessageContactRequest,
    codes: &CountryCodes,
) -> Result<NewContact, ParameterError> {
    require([
        (req.name.is_empty(), Field::Name),
        (req.email_address.is_empty(), Field::EmailAddress),
        (req.title.is_empty(), Field::Title),
        (req.message_types.is_empty(), Field::MessageTypes),
    ])?;
    Ok(NewContact {
        name: ContactName::parse(&req.name)?,
        email_address: EmailAddress::parse(&req.email_address)?,
        phone_number: match req.phone_number.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(PhoneNumber::parse(raw, codes)?),
        },
        title: Title::parse(&req.title)?,
        message_types: message_types(&req.message_types)?
            .ok_or(ParameterError::Missing(Field::MessageTypes))?,
    })
}

pub(crate) fn update_command(
    req: &UpdateMessageContactRequest,
    codes: &CountryCodes,
) -> Result<(ContactId, UpdateMessageContact), ParameterError> {
    let contact_id = ContactId::parse(&req.contact_id)?;
    let command = UpdateMessageContact {
        name: req.name.as_deref().map(ContactName::parse).transpose()?,
        email_address: req
            .email_address
            .as_deref()
            .map(EmailAddress::parse)
            .transpose()?,
        phone_number: match req.phone_number.as_deref() {
            None => None,
            Some("") => Some(PhoneChange::Remove),
            Some(raw) => Some(PhoneChange::Set(PhoneNumber::parse(raw, codes)?)),
        },
        title: req.title.as_deref().map(Title::parse).transpose()?,
        message_types: message_types(&req.message_types)?,
    };
    Ok((contact_id, command))
}

pub(crate) fn contact_id(req: &GetMessageContactRequest) -> Result<ContactId, ParameterError> {
    ContactId::parse(&req.contact_id)
}

pub(crate) fn list_query(req: &ListMessageContactsRequest) -> Result<ListQuery, ParameterError> {
    let contact_id = Some(req.contact_id.as_str())
        .filter(|raw| !raw.is_empty())
        .map(ContactId::parse)
        .transpose()?;
    let member = Some(req.member.as_str())
        .filter(|raw| !raw.is_empty())
        .map(MemberId::parse)
        .transpose()?;
    let page = PageRequest::parse(
        req.page_number.into(),
        req.page_size.into(),
        DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
    )?;
    Ok(ListQuery {
        contact_id,
        member,
        page,
    })
}

pub(crate) fn send_email(
    req: &SendEmailVerificationForMessageContactRequest,
) -> Result<(ContactId, VerificationTarget), ParameterError> {
    require([
        (req.contact_id.is_empty(), Field::ContactId),
        (req.email_address.is_empty(), Field::EmailAddress),
    ])?;
    Ok((
        ContactId::parse(&req.contact_id)?,
        VerificationTarget::Email(EmailAddress::parse(&req.email_address)?),
    ))
}

pub(crate) fn send_phone(
    req: &SendPhoneVerificationForMessageContactRequest,
    codes: &CountryCodes,
) -> Result<(ContactId, VerificationTarget), ParameterError> {
    require([
        (req.contact_id.is_empty(), Field::ContactId),
        (req.phone_number.is_empty(), Field::PhoneNumber),
    ])?;
    Ok((
        ContactId::parse(&req.contact_id)?,
        VerificationTarget::Phone(PhoneNumber::parse(&req.phone_number, codes)?),
    ))
}

pub(crate) fn list_verifications(
    req: &ListMessageContactVerificationsRequest,
) -> Result<(ContactId, PageRequest), ParameterError> {
    let contact_id = ContactId::parse(&req.contact_id)?;
    let page = PageRequest::parse(
        req.page_number.into(),
        req.page_size.into(),
        DEFAULT_PAGE_SIZE,
        MAX_PAGE_SIZE,
    )?;
    Ok((contact_id, page))
}

/// A target named but sent empty is malformed, not "not named": unlike Update, Cancel has no
/// meaning for an empty phone number.
pub(crate) fn cancel_command(
    req: &CancelMessageContactUpdateRequest,
    codes: &CountryCodes,
) -> Result<(ContactId, CancelMessageContactUpdate), ParameterError> {
    let contact_id = ContactId::parse(&req.contact_id)?;
    let command = CancelMessageContactUpdate {
        email_address: req
            .email_address
            .as_deref()
            .map(EmailAddress::parse)
            .transpose()?,
        phone_number: req
            .phone_number
            .as_deref()
            .map(|raw| PhoneNumber::parse(raw, codes))
            .transpose()?,
    };
    Ok((contact_id, command))
}

pub(crate) fn confirm(
    req: &ConfirmMessageContactVerificationRequest,
    codes: &CountryCodes,
) -> Result<(ContactId, VerificationTarget, VerificationCode), ParameterError> {
    require([
        (req.contact_id.is_empty(), Field::ContactId),
        (req.target.is_empty(), Field::Target),
        (req.code.is_empty(), Field::VerificationCode),
    ])?;
    Ok((
        ContactId::parse(&req.contact_id)?,
        VerificationTarget::parse(&req.target, codes)?,
        VerificationCode::parse(&req.code)?,
    ))
}

/// A delete keeps the contact for its members unless told otherwise.
pub(crate) fn delete(
    req: &DeleteMessageContactRequest,
) -> Result<(ContactId, bool), ParameterError> {
    Ok((
        ContactId::parse(&req.contact_id)?,
        req.retain_contact_in_members.unwrap_or(true),
    ))
}

pub(crate) fn deletion_status(
    req: &GetMessageContactDeletionStatusRequest,
) -> Result<ContactId, ParameterError> {
    ContactId::parse(&req.contact_id)
}

/// The contact to forget: the same rule as DeleteMessageContact's `contact_id` (absent or
/// empty is missing, any other shape invalid).
pub(crate) fn forget(req: &ForgetMessageContactRequest) -> Result<ContactId, ParameterError> {
    ContactId::parse(&req.contact_id)
}

pub(crate) fn associate(
    req: &AssociateMembersRequest,
) -> Result<(ContactId, Vec<MemberId>), ParameterError> {
    Ok((ContactId::parse(&req.contact_id)?, members(&req.members)?))
}

pub(crate) fn disassociate(
    req: &DisassociateMembersRequest,
) -> Result<(ContactId, Vec<MemberId>), ParameterError> {
    Ok((ContactId::parse(&req.contact_id)?, members(&req.members)?))
}

/// The targets of a binding call: 1 to 5, each of a target's shape, then none twice (the same
/// string: ids are taken as given, so equal ids are equal strings).
fn members(raw: &[String]) -> Result<Vec<MemberId>, ParameterError> {
    if raw.is_empty() || raw.len() > MAX_MEMBERS_PER_CALL {
        return Err(ParameterError::Invalid(Field::Members));
    }
    let targets = raw
        .iter()
        .map(|member| MemberId::parse_as(member, Field::Members))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = HashSet::with_capacity(raw.len());
    if !raw.iter().all(|member| seen.insert(member.as_str())) {
        return Err(ParameterError::Duplicate(Field::Members));
    }
    Ok(targets)
}

pub(crate) fn register_folder(
    req: &RegisterFolderRequest,
) -> Result<(FolderId, Option<FolderId>), ParameterError> {
    require([(req.folder_id.is_empty(), Field::FolderId)])?;
    Ok((
        FolderId::parse(&req.folder_id)?,
        folder_or_root(&req.parent_id, Field::ParentId)?,
    ))
}

pub(crate) fn remove_folder(req: &RemoveFolderRequest) -> Result<FolderId, ParameterError> {
    require([(req.folder_id.is_empty(), Field::FolderId)])?;
    FolderId::parse(&req.folder_id)
}

pub(crate) fn register_member(
    req: &RegisterMemberRequest,
) -> Result<(MemberAccountId, Option<FolderId>), ParameterError> {
    member_in_folder(&req.account_id, &req.folder_id)
}

pub(crate) fn move_member(
    req: &MoveMemberRequest,
) -> Result<(MemberAccountId, Option<FolderId>), ParameterError> {
    member_in_folder(&req.account_id, &req.folder_id)
}

pub(crate) fn remove_member(req: &RemoveMemberRequest) -> Result<MemberAccountId, ParameterError> {
    require([(req.account_id.is_empty(), Field::AccountId)])?;
    MemberAccountId::parse(&req.account_id)
}

/// A member account and the folder it goes in (empty: the root).
fn member_in_folder(
    account_id: &str,
    folder_id: &str,
) -> Result<(MemberAccountId, Option<FolderId>), ParameterError> {
    require([(account_id.is_empty(), Field::AccountId)])?;
    Ok((
        MemberAccountId::parse(account_id)?,
        folder_or_root(folder_id, Field::FolderId)?,
    ))
}

/// A folder named in `field`, where empty means the directory's root.
fn folder_or_root(raw: &str, field: Field) -> Result<Option<FolderId>, ParameterError> {
    if raw.is_empty() {
        return Ok(None);
    }
    FolderId::parse(raw)
        .map(Some)
        .map_err(|_| ParameterError::Invalid(field))
}

fn message_types(raw: &[String]) -> Result<Option<MessageTypes>, ParameterError> {
    MessageTypes::parse(raw.iter().map(String::as_str))
}

/// What makes two requests "the same" for a client token: every field as sent, the token
/// aside. Re-encoding the decoded message keeps presence, order and duplicates.
pub(crate) fn fingerprint<M: Message + Clone>(
    req: &M,
    clear_token: impl FnOnce(&mut M),
) -> Vec<u8> {
    let mut without_token = req.clone();
    clear_token(&mut without_token);
    without_token.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn add_request() -> AddMessageContactRequest {
        AddMessageContactRequest {
            name: "Tom".into(),
            email_address: "tom@example.com".into(),
            phone_number: None,
            title: "CEO".into(),
            message_types: vec!["AccountExpenses".into()],
            client_token: String::new(),
        }
    }

    #[test]
    fn missing_parameters_come_before_shapes_in_field_order() {
        let req = AddMessageContactRequest {
            name: "1".into(),
            email_address: String::new(),
            title: String::new(),
            ..add_request()
        };
        assert_eq!(
            new_contact(&req, &CountryCodes::default()),
            Err(ParameterError::Missing(Field::EmailAddress))
        );
        let req = AddMessageContactRequest {
            name: "1".into(),
            title: "x".into(),
            ..add_request()
        };
        assert_eq!(
            new_contact(&req, &CountryCodes::default()),
            Err(ParameterError::Invalid(Field::Name))
        );
    }

    #[test]
    fn an_empty_phone_number_on_add_is_none() {
        let req = AddMessageContactRequest {
            phone_number: Some(String::new()),
            ..add_request()
        };
        assert_eq!(
            new_contact(&req, &CountryCodes::default())
                .unwrap()
                .phone_number,
            None
        );
    }

    #[test]
    fn fields_present_but_empty_on_update_follow_the_contract() {
        let codes = CountryCodes::default();
        let base = UpdateMessageContactRequest {
            contact_id: "c-0123456789abcdef".into(),
            ..Default::default()
        };
        let with = |f: fn(&mut UpdateMessageContactRequest)| {
            let mut req = base.clone();
            f(&mut req);
            update_command(&req, &codes).map(|(_, command)| command)
        };
        assert_eq!(
            with(|r| r.name = Some(String::new())),
            Err(ParameterError::Length(Field::Name))
        );
        assert_eq!(
            with(|r| r.email_address = Some(String::new())),
            Err(ParameterError::Invalid(Field::EmailAddress))
        );
        assert_eq!(
            with(|r| r.title = Some(String::new())),
            Err(ParameterError::Invalid(Field::Title))
        );
        assert_eq!(
            with(|r| r.phone_number = Some(String::new()))
                .unwrap()
                .phone_number,
            Some(PhoneChange::Remove)
        );
        assert_eq!(with(|_| {}), Ok(UpdateMessageContact::default()));
    }

    #[test]
    fn a_confirmation_reports_missing_fields_before_any_shape() {
        let codes = CountryCodes::default();
        let req = ConfirmMessageContactVerificationRequest {
            contact_id: "bad".into(),
            target: "tom@example.com".into(),
            code: String::new(),
            client_token: String::new(),
        };
        assert_eq!(
            confirm(&req, &codes).map(|_| ()),
            Err(ParameterError::Missing(Field::VerificationCode))
        );
        let req = ConfirmMessageContactVerificationRequest {
            code: "12345x".into(),
            ..req
        };
        assert_eq!(
            confirm(&req, &codes).map(|_| ()),
            Err(ParameterError::Invalid(Field::ContactId))
        );
        let req = ConfirmMessageContactVerificationRequest {
            contact_id: "c-0123456789abcdef".into(),
            ..req
        };
        assert_eq!(
            confirm(&req, &codes).map(|_| ()),
            Err(ParameterError::Invalid(Field::VerificationCode))
        );
    }

    #[test]
    fn a_cancellation_refuses_targets_sent_empty() {
        let codes = CountryCodes::default();
        let req = CancelMessageContactUpdateRequest {
            contact_id: "c-0123456789abcdef".into(),
            email_address: None,
            phone_number: Some(String::new()),
            client_token: String::new(),
        };
        assert_eq!(
            cancel_command(&req, &codes).map(|_| ()),
            Err(ParameterError::Invalid(Field::PhoneNumber))
        );
        let req = CancelMessageContactUpdateRequest {
            email_address: Some(String::new()),
            phone_number: None,
            ..req
        };
        assert_eq!(
            cancel_command(&req, &codes).map(|_| ()),
            Err(ParameterError::Invalid(Field::EmailAddress))
        );
    }

    #[test]
    fn the_fingerprint_ignores_the_token_but_not_presence_or_order() {
        let clear = |r: &mut UpdateMessageContactRequest| r.client_token.clear();
        let a = UpdateMessageContactRequest {
            contact_id: "c-0123456789abcdef".into(),
            client_token: "t1".into(),
            ..Default::default()
        };
        let b = UpdateMessageContactRequest {
            client_token: "t2".into(),
            ..a.clone()
        };
        assert_eq!(fingerprint(&a, clear), fingerprint(&b, clear));
        let empty_name = UpdateMessageContactRequest {
            name: Some(String::new()),
            ..a.clone()
        };
        assert_ne!(fingerprint(&a, clear), fingerprint(&empty_name, clear));
        let ab = UpdateMessageContactRequest {
            message_types: vec!["FaultMessage".into(), "ServiceMessage".into()],
            ..a.clone()
        };
        let ba = UpdateMessageContactRequest {
            message_types: vec!["ServiceMessage".into(), "FaultMessage".into()],
            ..a
        };
        assert_ne!(fingerprint(&ab, clear), fingerprint(&ba, clear));
    }

    fn targets(raw: &[&str]) -> Vec<String> {
        raw.iter().map(|m| (*m).to_owned()).collect()
    }

    fn associate_request(members: &[&str]) -> AssociateMembersRequest {
        AssociateMembersRequest {
            contact_id: "c-0123456789abcdef".into(),
            members: targets(members),
            client_token: String::new(),
        }
    }

    #[test]
    fn a_binding_call_names_one_to_five_targets() {
        let five = [
            "rd-abcDE12345",
            "fd-ZDNPiT1234",
            "fd-ZDNPiT1235",
            "1997968394351234",
            "1997968394351235",
        ];
        let (_, members) = associate(&associate_request(&five)).unwrap();
        assert_eq!(
            members.iter().map(MemberId::as_str).collect::<Vec<_>>(),
            five
        );
        let six = [&five[..], &["1997968394351236"]].concat();
        for count in [&[][..], &six[..]] {
            assert_eq!(
                associate(&associate_request(count)).map(|_| ()),
                Err(ParameterError::Invalid(Field::Members)),
                "{} targets",
                count.len()
            );
            let req = DisassociateMembersRequest {
                contact_id: "c-0123456789abcdef".into(),
                members: targets(count),
                client_token: String::new(),
            };
            assert_eq!(
                disassociate(&req).map(|_| ()),
                Err(ParameterError::Invalid(Field::Members))
            );
        }
    }

    #[test]
    fn binding_targets_must_have_a_target_shape_and_differ() {
        for bad in [
            "",
            "rd-abc",
            "fd-ZDNPiT12345",
            "199796839435123",
            "c-0123456789abcdef",
        ] {
            assert_eq!(
                associate(&associate_request(&["fd-ZDNPiT1234", bad])).map(|_| ()),
                Err(ParameterError::Invalid(Field::Members)),
                "{bad:?}"
            );
        }
        assert_eq!(
            associate(&associate_request(&[
                "fd-ZDNPiT1234",
                "1997968394351234",
                "fd-ZDNPiT1234"
            ]))
            .map(|_| ()),
            Err(ParameterError::Duplicate(Field::Members))
        );
        // Every target's shape is checked before any repetition.
        assert_eq!(
            associate(&associate_request(&[
                "fd-ZDNPiT1234",
                "fd-ZDNPiT1234",
                "bad"
            ]))
            .map(|_| ()),
            Err(ParameterError::Invalid(Field::Members))
        );
        // Ids are taken as given: another case is another id, not a repetition.
        assert!(associate(&associate_request(&["fd-ZDNPiT1234", "fd-zdnpit1234"])).is_ok());
    }

    #[test]
    fn a_binding_call_checks_the_contact_id_first() {
        let req = AssociateMembersRequest {
            contact_id: String::new(),
            ..associate_request(&[])
        };
        assert_eq!(
            associate(&req).map(|_| ()),
            Err(ParameterError::Missing(Field::ContactId))
        );
        let req = AssociateMembersRequest {
            contact_id: "c-short".into(),
            ..associate_request(&["bad", "bad"])
        };
        assert_eq!(
            associate(&req).map(|_| ()),
            Err(ParameterError::Invalid(Field::ContactId))
        );
    }

    #[test]
    fn a_delete_retains_the_contact_in_its_members_unless_told_not_to() {
        let req = |retain| DeleteMessageContactRequest {
            contact_id: "c-0123456789abcdef".into(),
            retain_contact_in_members: retain,
            client_token: "t".into(),
        };
        assert!(delete(&req(None)).unwrap().1);
        assert!(delete(&req(Some(true))).unwrap().1);
        assert!(!delete(&req(Some(false))).unwrap().1);
        assert_eq!(
            delete(&DeleteMessageContactRequest {
                contact_id: String::new(),
                ..req(None)
            }),
            Err(ParameterError::Missing(Field::ContactId))
        );
        let clear = |r: &mut DeleteMessageContactRequest| r.client_token.clear();
        let prints = [None, Some(true), Some(false)].map(|retain| fingerprint(&req(retain), clear));
        assert_ne!(prints[0], prints[1]);
        assert_ne!(prints[0], prints[2]);
        assert_ne!(prints[1], prints[2]);
    }

    #[test]
    fn a_forgetting_parses_its_contact_id_as_a_delete_does() {
        let forget = |raw: &str| {
            forget(&ForgetMessageContactRequest {
                contact_id: raw.into(),
            })
        };
        let delete = |raw: &str| {
            delete(&DeleteMessageContactRequest {
                contact_id: raw.into(),
                ..Default::default()
            })
            .map(|(id, _)| id)
        };
        for raw in [
            "",
            "c-0123456789abcdef",
            "c-0123456789abcde",
            "x",
            "c-0123456789abcdé",
        ] {
            assert_eq!(forget(raw), delete(raw), "{raw:?}");
        }
        assert_eq!(forget(""), Err(ParameterError::Missing(Field::ContactId)));
        assert_eq!(
            forget("c-01"),
            Err(ParameterError::Invalid(Field::ContactId))
        );
        assert!(forget("c-0123456789abcdef").is_ok());
    }

    #[test]
    fn folders_are_required_where_named_and_the_root_is_empty() {
        let req = |folder_id: &str, parent_id: &str| RegisterFolderRequest {
            folder_id: folder_id.into(),
            parent_id: parent_id.into(),
        };
        assert_eq!(
            register_folder(&req("", "bad")),
            Err(ParameterError::Missing(Field::FolderId))
        );
        assert_eq!(
            register_folder(&req("fd-ZDNPiT123", "bad")),
            Err(ParameterError::Invalid(Field::FolderId))
        );
        assert_eq!(
            register_folder(&req("fd-ZDNPiT1234", "rd-abcDE12345")),
            Err(ParameterError::Invalid(Field::ParentId))
        );
        assert_eq!(
            register_folder(&req("fd-ZDNPiT1234", "")),
            Ok((FolderId::parse("fd-ZDNPiT1234").unwrap(), None))
        );
        assert_eq!(
            register_folder(&req("fd-ZDNPiT1234", "fd-ZDNPiT0000"))
                .unwrap()
                .1
                .map(|p| p.to_string()),
            Some("fd-ZDNPiT0000".to_owned())
        );
        let remove = |folder_id: &str| {
            remove_folder(&RemoveFolderRequest {
                folder_id: folder_id.into(),
            })
        };
        assert_eq!(remove(""), Err(ParameterError::Missing(Field::FolderId)));
        assert_eq!(
            remove("fd-ZDNPiT12_4"),
            Err(ParameterError::Invalid(Field::FolderId))
        );
        assert!(remove("fd-ZDNPiT1234").is_ok());
    }

    #[test]
    fn member_accounts_are_sixteen_digits_in_a_folder_or_the_root() {
        let register = |account_id: &str, folder_id: &str| {
            register_member(&RegisterMemberRequest {
                account_id: account_id.into(),
                folder_id: folder_id.into(),
            })
        };
        let moved = |account_id: &str, folder_id: &str| {
            move_member(&MoveMemberRequest {
                account_id: account_id.into(),
                folder_id: folder_id.into(),
            })
        };
        for convert in [register, moved] {
            assert_eq!(
                convert("", "bad"),
                Err(ParameterError::Missing(Field::AccountId))
            );
            for bad in [
                "199796839435123",
                "19979683943512345",
                "199796839435123a",
                "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦",
            ] {
                assert_eq!(
                    convert(bad, "bad"),
                    Err(ParameterError::Invalid(Field::AccountId)),
                    "{bad}"
                );
            }
            assert_eq!(
                convert("1997968394351234", "bad"),
                Err(ParameterError::Invalid(Field::FolderId))
            );
            let (account, folder) = convert("1997968394351234", "").unwrap();
            assert_eq!(account.as_str(), "1997968394351234");
            assert_eq!(folder, None);
            assert!(
                convert("1997968394351234", "fd-ZDNPiT1234")
                    .unwrap()
                    .1
                    .is_some()
            );
        }
        let remove = |account_id: &str| {
            remove_member(&RemoveMemberRequest {
                account_id: account_id.into(),
            })
        };
        assert_eq!(remove(""), Err(ParameterError::Missing(Field::AccountId)));
        assert_eq!(
            remove("fd-ZDNPiT1234"),
            Err(ParameterError::Invalid(Field::AccountId))
        );
        assert!(remove("0000000000000000").is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_update_fields_yield_a_command_or_an_error_never_a_panic(
            contact_id in any::<String>(),
            name in proptest::option::of(any::<String>()),
            email in proptest::option::of(any::<String>()),
            phone in proptest::option::of("[0-9+-]{0,20}|.*"),
            title in proptest::option::of(any::<String>()),
            types in proptest::collection::vec(any::<String>(), 0..4),
        ) {
            let req = UpdateMessageContactRequest {
                contact_id, name, email_address: email, phone_number: phone, title, message_types: types, client_token: String::new(),
            };
            let _ = update_command(&req, &CountryCodes::new([1, 44, 86]));
        }

        #[test]
        fn arbitrary_verification_requests_yield_a_command_or_an_error_never_a_panic(
            contact_id in any::<String>(),
            target in "[0-9@a-z.+-]{0,24}|.*",
            code in "[0-9]{0,7}|.*",
            email in proptest::option::of(any::<String>()),
            phone in proptest::option::of("[0-9+-]{0,20}|.*"),
        ) {
            let codes = CountryCodes::new([1, 44, 86]);
            let _ = confirm(&ConfirmMessageContactVerificationRequest {
                contact_id: contact_id.clone(), target: target.clone(), code, client_token: String::new(),
            }, &codes);
            let _ = send_email(&SendEmailVerificationForMessageContactRequest {
                contact_id: contact_id.clone(), email_address: target.clone(), client_token: String::new(),
            });
            let _ = send_phone(&SendPhoneVerificationForMessageContactRequest {
                contact_id: contact_id.clone(), phone_number: target, client_token: String::new(),
            }, &codes);
            let _ = cancel_command(&CancelMessageContactUpdateRequest {
                contact_id, email_address: email, phone_number: phone, client_token: String::new(),
            }, &codes);
        }

        #[test]
        fn arbitrary_binding_and_directory_requests_never_panic(
            contact_id in any::<String>(),
            members in proptest::collection::vec("(rd-|fd-)?[A-Za-z0-9]{10}|[0-9]{16}|.*", 0..8),
            id in "(fd-)?[A-Za-z0-9]{10}|[0-9]{16}|.*",
            other in "(fd-)?[A-Za-z0-9]{10}|.*",
        ) {
            let _ = associate(&AssociateMembersRequest {
                contact_id: contact_id.clone(), members: members.clone(), client_token: String::new(),
            });
            let _ = disassociate(&DisassociateMembersRequest {
                contact_id, members, client_token: String::new(),
            });
            let _ = register_folder(&RegisterFolderRequest { folder_id: id.clone(), parent_id: other.clone() });
            let _ = remove_folder(&RemoveFolderRequest { folder_id: id.clone() });
            let _ = register_member(&RegisterMemberRequest { account_id: id.clone(), folder_id: other.clone() });
            let _ = move_member(&MoveMemberRequest { account_id: id.clone(), folder_id: other });
            let _ = remove_member(&RemoveMemberRequest { account_id: id });
        }

        #[test]
        fn arbitrary_list_requests_never_panic(contact_id in any::<String>(), member in any::<String>(), number in any::<i32>(), size in any::<i32>()) {
            let _ = list_query(&ListMessageContactsRequest { contact_id, member, page_number: number, page_size: size });
        }
    }
}
