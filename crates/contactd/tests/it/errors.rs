//! One test per error code reachable in Add, Update, Get and List, and the contract's check
//! order.

use contactd_grpc::proto::{
    AddMessageContactRequest, GetMessageContactRequest, ListMessageContactsRequest,
    UpdateMessageContactRequest,
};
use tonic::{Code, Request, Status};

use crate::support::*;

/// A contract error: its code (`ErrorInfo.reason`) and its message, word for word.
type Error = (&'static str, &'static str);

const UNAUTHENTICATED: Error = (
    "Unauthenticated",
    "The caller identity is missing or invalid.",
);
const MISSING_CONTACT_ID: Error = ("MissingParameter.ContactId", "You must specify ContactId.");
const MISSING_NAME: Error = ("MissingParameter.Name", "You must specify Name.");
const MISSING_EMAIL: Error = (
    "MissingParameter.EmailAddress",
    "You must specify EmailAddress.",
);
const MISSING_TITLE: Error = ("MissingParameter.Title", "You must specify Title.");
const MISSING_TYPES: Error = (
    "MissingParameter.MessageTypes",
    "You must specify MessageTypes.",
);
const INVALID_CONTACT_ID: Error = ("InvalidParameter.ContactId", "The ContactId is invalid.");
const INVALID_NAME: Error = ("InvalidParameter.Name", "The Name is invalid.");
const NAME_LENGTH: Error = (
    "InvalidParameter.Name.Length",
    "The Name exceeds the length limit.",
);
const NAME_USED: Error = (
    "InvalidParameter.Name.AlreadyUsed",
    "The Name already exists. Please change to another name.",
);
const INVALID_EMAIL: Error = (
    "InvalidParameter.EmailAddress",
    "The EmailAddress is invalid.",
);
const EMAIL_LENGTH: Error = (
    "InvalidParameter.EmailAddress.Length",
    "The EmailAddress exceeds the length limit.",
);
const INVALID_PHONE: Error = (
    "InvalidParameter.PhoneNumber",
    "The PhoneNumber is invalid.",
);
const COUNTRY_CODE: Error = (
    "InvalidParameter.MobileCountryCode",
    "The current site does not support the country code.",
);
const INVALID_TITLE: Error = ("InvalidParameter.Title", "The Title is invalid.");
const INVALID_TYPES: Error = (
    "InvalidParameter.MessageTypes",
    "The MessageTypes is invalid.",
);
const INVALID_PAGE_NUMBER: Error = ("InvalidParameter.PageNumber", "The PageNumber is invalid.");
const INVALID_PAGE_SIZE: Error = ("InvalidParameter.PageSize", "The PageSize is invalid.");
const INVALID_MEMBER: Error = ("InvalidParameter.Member", "The Member is invalid.");
const INVALID_TOKEN: Error = (
    "InvalidParameter.ClientToken",
    "The ClientToken is invalid.",
);
const NO_CONTACT: Error = ("EntityNotExists.Contact", "This Contact does not exist.");
const NO_MEMBER: Error = ("EntityNotExists.Member", "This Member does not exist.");
const TOO_MANY: Error = (
    "LimitExceeded.Contacts",
    "The number of contacts exceeds the limit.",
);
const UNAVAILABLE: Error = (
    "ServiceUnavailable",
    "The request has failed due to a temporary failure of the server.",
);

/// A change to a good Add request.
type AddChange = fn(&mut AddMessageContactRequest);

/// Well-formed, and never generated for anyone in these tests.
const UNKNOWN_ID: &str = "c-0123456789abcdef";

/// Asserts a parameter error: INVALID_ARGUMENT with `BadRequest` naming `field`.
#[track_caller]
fn assert_invalid(status: &Status, (reason, message): Error, field: &str) {
    assert_error(status, Code::InvalidArgument, reason, message, Some(field));
}

/// Asserts an error that names no field.
#[track_caller]
fn assert_plain(status: &Status, code: Code, (reason, message): Error) {
    assert_error(status, code, reason, message, None);
}

fn add_with(change: impl FnOnce(&mut AddMessageContactRequest)) -> AddMessageContactRequest {
    let mut request = add_request("Tom");
    change(&mut request);
    request
}

fn update_with(
    contact_id: &str,
    change: impl FnOnce(&mut UpdateMessageContactRequest),
) -> UpdateMessageContactRequest {
    let mut request = update_request(contact_id);
    change(&mut request);
    request
}

fn list_with(change: impl FnOnce(&mut ListMessageContactsRequest)) -> ListMessageContactsRequest {
    let mut request = ListMessageContactsRequest::default();
    change(&mut request);
    request
}

async fn add_fails(client: &mut Client, request: AddMessageContactRequest) -> Status {
    client
        .add_message_contact(as_account(ACCOUNT, request))
        .await
        .expect_err("the add is refused")
}

async fn update_fails(client: &mut Client, request: UpdateMessageContactRequest) -> Status {
    client
        .update_message_contact(as_account(ACCOUNT, request))
        .await
        .expect_err("the update is refused")
}

/// Sends one bad field in an Add and in an Update of `contact_id` (`set` puts it in both
/// requests); both must be refused with `error` about `field`.
async fn assert_refused_on_add_and_update(
    client: &mut Client,
    contact_id: &str,
    set: impl FnOnce(&mut AddMessageContactRequest, &mut UpdateMessageContactRequest),
    error: Error,
    field: &str,
) {
    let mut add = add_with(|_| {});
    let mut update = update_with(contact_id, |_| {});
    set(&mut add, &mut update);
    assert_invalid(&add_fails(client, add).await, error, field);
    assert_invalid(&update_fails(client, update).await, error, field);
}

async fn update_succeeds(client: &mut Client, request: UpdateMessageContactRequest) {
    client
        .update_message_contact(as_account(ACCOUNT, request))
        .await
        .expect("the update succeeds");
}

async fn get_fails(client: &mut Client, contact_id: &str) -> Status {
    get(client, ACCOUNT, contact_id)
        .await
        .expect_err("the get is refused")
}

async fn list_fails(client: &mut Client, request: ListMessageContactsRequest) -> Status {
    client
        .list_message_contacts(as_account(ACCOUNT, request))
        .await
        .expect_err("the list is refused")
}

async fn events(db: &TestDb) -> i64 {
    db.count("SELECT count(*) FROM events", &[]).await
}

/// A Get whose account header is set by `headers`.
fn get_with_headers(
    headers: impl FnOnce(&mut Request<GetMessageContactRequest>),
) -> Request<GetMessageContactRequest> {
    let mut request = Request::new(GetMessageContactRequest {
        contact_id: UNKNOWN_ID.to_owned(),
    });
    headers(&mut request);
    request
}

/// An email address of exactly `len` characters (at least 76), well-formed in every other way.
fn email_of_length(len: usize) -> String {
    let local = "a".repeat(64);
    let domain = format!(
        "{}.{}.{}.com",
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(len - 64 - 1 - 63 - 1 - 63 - 1 - 4)
    );
    let email = format!("{local}@{domain}");
    assert_eq!(email.len(), len);
    email
}

// ---------------------------------------------------------------------------------------------
// Caller identity

async fn a_call_without_an_account_is_unauthenticated(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let status = server
        .client
        .add_message_contact(add_request("Tom"))
        .await
        .unwrap_err();
    assert_plain(&status, Code::Unauthenticated, UNAUTHENTICATED);
    let status = server
        .client
        .get_message_contact(get_with_headers(|_| {}))
        .await
        .unwrap_err();
    assert_plain(&status, Code::Unauthenticated, UNAUTHENTICATED);
    let c = &mut server.client;
    let anonymous = [
        c.send_email_verification_for_message_contact(Request::new(Default::default()))
            .await
            .map(|_| ()),
        c.send_phone_verification_for_message_contact(Request::new(Default::default()))
            .await
            .map(|_| ()),
        c.list_message_contact_verifications(Request::new(Default::default()))
            .await
            .map(|_| ()),
        c.cancel_message_contact_update(Request::new(Default::default()))
            .await
            .map(|_| ()),
        c.confirm_message_contact_verification(Request::new(Default::default()))
            .await
            .map(|_| ()),
        c.delete_message_contact(Request::new(Default::default()))
            .await
            .map(|_| ()),
        c.get_message_contact_deletion_status(Request::new(Default::default()))
            .await
            .map(|_| ()),
        c.associate_members(Request::new(Default::default()))
            .await
            .map(|_| ()),
        c.disassociate_members(Request::new(Default::default()))
            .await
            .map(|_| ()),
    ];
    for answer in anonymous {
        assert_plain(&answer.unwrap_err(), Code::Unauthenticated, UNAUTHENTICATED);
    }
    let mut directory = crate::lifecycle_support::directory_client(&server).await;
    let anonymous = [
        directory
            .get_resource_directory(Request::new(Default::default()))
            .await
            .map(|_| ()),
        directory
            .register_folder(Request::new(Default::default()))
            .await
            .map(|_| ()),
        directory
            .remove_folder(Request::new(Default::default()))
            .await
            .map(|_| ()),
        directory
            .register_member(Request::new(Default::default()))
            .await
            .map(|_| ()),
        directory
            .move_member(Request::new(Default::default()))
            .await
            .map(|_| ()),
        directory
            .remove_member(Request::new(Default::default()))
            .await
            .map(|_| ()),
    ];
    for answer in anonymous {
        assert_plain(&answer.unwrap_err(), Code::Unauthenticated, UNAUTHENTICATED);
    }
}

async fn a_malformed_account_is_unauthenticated(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let too_long = "9".repeat(33);
    for account in ["abc", "12a4", too_long.as_str(), "", " 123", "+123", "-1"] {
        let request = get_with_headers(|r| {
            r.metadata_mut()
                .insert("x-acs-account-id", account.parse().unwrap());
        });
        let status = server
            .client
            .get_message_contact(request)
            .await
            .unwrap_err();
        assert_plain(&status, Code::Unauthenticated, UNAUTHENTICATED);
    }
    // 32 digits are the longest account id: that call gets past identity.
    let longest = "9".repeat(32);
    let status = server
        .client
        .get_message_contact(as_account(&longest, GetMessageContactRequest::default()))
        .await
        .unwrap_err();
    assert_invalid(&status, MISSING_CONTACT_ID, "contact_id");
}

async fn an_account_given_twice_is_unauthenticated_even_when_both_agree(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    for second in [ACCOUNT, OTHER_ACCOUNT] {
        let request = get_with_headers(|r| {
            r.metadata_mut()
                .append("x-acs-account-id", ACCOUNT.parse().unwrap());
            r.metadata_mut()
                .append("x-acs-account-id", second.parse().unwrap());
        });
        let status = server
            .client
            .get_message_contact(request)
            .await
            .unwrap_err();
        assert_plain(&status, Code::Unauthenticated, UNAUTHENTICATED);
    }
}

async fn identity_is_checked_before_the_client_token(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let request = add_with(|r| r.client_token = "t".repeat(65));
    let status = server
        .client
        .add_message_contact(request)
        .await
        .unwrap_err();
    assert_plain(&status, Code::Unauthenticated, UNAUTHENTICATED);
}

// ---------------------------------------------------------------------------------------------
// Missing parameters

async fn an_add_without_a_required_field_names_it(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let cases: [(AddChange, Error, &str); 4] = [
        (|r| r.name.clear(), MISSING_NAME, "name"),
        (|r| r.email_address.clear(), MISSING_EMAIL, "email_address"),
        (|r| r.title.clear(), MISSING_TITLE, "title"),
        (|r| r.message_types.clear(), MISSING_TYPES, "message_types"),
    ];
    for (change, error, field) in cases {
        let status = add_fails(&mut server.client, add_with(change)).await;
        assert_invalid(&status, error, field);
    }
    assert_eq!(events(&db).await, 0);
}

async fn update_and_get_without_a_contact_id_are_missing_it(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let status = update_fails(
        &mut server.client,
        update_with("", |r| r.title = Some("CEO".into())),
    )
    .await;
    assert_invalid(&status, MISSING_CONTACT_ID, "contact_id");
    let status = get_fails(&mut server.client, "").await;
    assert_invalid(&status, MISSING_CONTACT_ID, "contact_id");
}

// ---------------------------------------------------------------------------------------------
// Contact ids

async fn a_malformed_contact_id_is_invalid_everywhere(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    for bad in [
        "c-0123456789abcde",
        "c-0123456789abcdef0",
        "d-0123456789abcdef",
        "c-0123456789abcde_",
        "c-0123456789abcdé",
        "0123456789abcdef",
    ] {
        let status = update_fails(
            &mut server.client,
            update_with(bad, |r| r.title = Some("CEO".into())),
        )
        .await;
        assert_invalid(&status, INVALID_CONTACT_ID, "contact_id");
        let status = get_fails(&mut server.client, bad).await;
        assert_invalid(&status, INVALID_CONTACT_ID, "contact_id");
        let status = list_fails(&mut server.client, list_with(|r| r.contact_id = bad.into())).await;
        assert_invalid(&status, INVALID_CONTACT_ID, "contact_id");
    }
}

async fn a_well_formed_unknown_contact_id_does_not_exist(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    add(&mut server.client, ACCOUNT, "Tom").await;
    let status = update_fails(
        &mut server.client,
        update_with(UNKNOWN_ID, |r| r.title = Some("CEO".into())),
    )
    .await;
    assert_plain(&status, Code::NotFound, NO_CONTACT);
    let status = get_fails(&mut server.client, UNKNOWN_ID).await;
    assert_plain(&status, Code::NotFound, NO_CONTACT);
    let status = list_fails(
        &mut server.client,
        list_with(|r| r.contact_id = UNKNOWN_ID.into()),
    )
    .await;
    assert_plain(&status, Code::NotFound, NO_CONTACT);
    assert_eq!(events(&db).await, 1);
}

// ---------------------------------------------------------------------------------------------
// Names

async fn a_name_with_a_character_outside_the_set_is_invalid(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    let too_long_and_wrong = "a1".repeat(20);
    for bad in [
        "tom1",
        "1",
        "Tom Smith",
        "tom_",
        "José",
        "Ｔom",
        too_long_and_wrong.as_str(),
    ] {
        assert_refused_on_add_and_update(
            &mut server.client,
            &added.contact_id,
            |add, update| {
                add.name = bad.into();
                update.name = Some(bad.into());
            },
            INVALID_NAME,
            "name",
        )
        .await;
    }
}

async fn a_name_of_the_wrong_length_exceeds_the_limit(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    let thirteen = "abcdefghijklm";
    let ideographs = "雷".repeat(13);
    for bad in ["a", "张", thirteen, ideographs.as_str()] {
        assert_refused_on_add_and_update(
            &mut server.client,
            &added.contact_id,
            |add, update| {
                add.name = bad.into();
                update.name = Some(bad.into());
            },
            NAME_LENGTH,
            "name",
        )
        .await;
    }
    // Present but empty on Update is a length error too.
    let status = update_fails(
        &mut server.client,
        update_with(&added.contact_id, |r| r.name = Some(String::new())),
    )
    .await;
    assert_invalid(&status, NAME_LENGTH, "name");
    // Twelve characters, ideographs included, are fine.
    add(&mut server.client, ACCOUNT, "abcdefghijkl").await;
    let request = add_with(|r| r.name = "雷".repeat(12));
    server
        .client
        .add_message_contact(as_account(ACCOUNT, request))
        .await
        .expect("twelve ideographs are a name");
}

async fn a_name_differing_only_in_case_is_already_used(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    add(&mut server.client, ACCOUNT, "Tom").await;
    for same in ["Tom", "tom", "TOM", "tOm"] {
        let status = add_fails(&mut server.client, add_request(same)).await;
        assert_error(
            &status,
            Code::AlreadyExists,
            NAME_USED.0,
            NAME_USED.1,
            Some("name"),
        );
    }
    assert_eq!(events(&db).await, 1);
}

async fn renaming_onto_another_contacts_name_is_already_used_but_onto_ones_own_is_not(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let tom = add(&mut server.client, ACCOUNT, "Tom").await;
    let ann = add(&mut server.client, ACCOUNT, "Ann").await;
    let status = update_fails(
        &mut server.client,
        update_with(&ann.contact_id, |r| r.name = Some("tOM".into())),
    )
    .await;
    assert_error(
        &status,
        Code::AlreadyExists,
        NAME_USED.0,
        NAME_USED.1,
        Some("name"),
    );
    assert_eq!(
        get(&mut server.client, ACCOUNT, &ann.contact_id)
            .await
            .unwrap(),
        ann
    );

    update_succeeds(
        &mut server.client,
        update_with(&tom.contact_id, |r| r.name = Some("TOM".into())),
    )
    .await;
    let renamed = get(&mut server.client, ACCOUNT, &tom.contact_id)
        .await
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.version), ("TOM", 2));
    // The old spelling stays taken by the renamed contact.
    let status = add_fails(&mut server.client, add_request("Tom")).await;
    assert_eq!(status.code(), Code::AlreadyExists);
}

// ---------------------------------------------------------------------------------------------
// Email addresses

async fn a_malformed_email_address_is_invalid(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    let long_local = format!("{}@example.com", "a".repeat(65));
    let long_label = format!("tom@{}.com", "b".repeat(64));
    for bad in [
        "tom",
        "tom@example",
        "@example.com",
        "tom@",
        "tom@@example.com",
        ".tom@example.com",
        "tom.@example.com",
        "to..m@example.com",
        "tom@-example.com",
        "tom@example-.com",
        "tom@exa_mple.com",
        "tóm@example.com",
        "tom@example.com ",
        "tom smith@example.com",
        long_local.as_str(),
        long_label.as_str(),
    ] {
        assert_refused_on_add_and_update(
            &mut server.client,
            &added.contact_id,
            |add, update| {
                add.email_address = bad.into();
                update.email_address = Some(bad.into());
            },
            INVALID_EMAIL,
            "email_address",
        )
        .await;
    }
    let status = update_fails(
        &mut server.client,
        update_with(&added.contact_id, |r| r.email_address = Some(String::new())),
    )
    .await;
    assert_invalid(&status, INVALID_EMAIL, "email_address");
}

async fn an_email_address_of_255_characters_exceeds_the_limit_and_254_do_not(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    let too_long = email_of_length(255);
    let status = add_fails(
        &mut server.client,
        add_with(|r| r.email_address = too_long.clone()),
    )
    .await;
    assert_invalid(&status, EMAIL_LENGTH, "email_address");
    let status = update_fails(
        &mut server.client,
        update_with(&added.contact_id, |r| r.email_address = Some(too_long)),
    )
    .await;
    assert_invalid(&status, EMAIL_LENGTH, "email_address");
    // The length is checked first: a long address that is also malformed is a length error.
    let long_and_wrong = format!("{}@", "é".repeat(300));
    let status = add_fails(
        &mut server.client,
        add_with(|r| r.email_address = long_and_wrong),
    )
    .await;
    assert_invalid(&status, EMAIL_LENGTH, "email_address");

    update_succeeds(
        &mut server.client,
        update_with(&added.contact_id, |r| {
            r.email_address = Some(email_of_length(254))
        }),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Phone numbers

async fn a_phone_number_of_the_wrong_shape_is_invalid(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    for bad in [
        "13912345678",
        "+86-13912345678",
        "086-13912345678",
        "86-",
        "-13912345678",
        "86 13912345678",
        "86-139-1234-5678",
        "86-1391234567x",
        "８６-13912345678",
    ] {
        assert_refused_on_add_and_update(
            &mut server.client,
            &added.contact_id,
            |add, update| {
                add.phone_number = Some(bad.into());
                update.phone_number = Some(bad.into());
            },
            INVALID_PHONE,
            "phone_number",
        )
        .await;
    }
}

async fn a_number_that_is_not_a_mobile_number_of_the_country_is_invalid(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    for bad in [
        "86-1391234567",
        "86-139123456789",
        "86-01391234567",
        "86-1012345678",
        "86-2012345678",
    ] {
        assert_refused_on_add_and_update(
            &mut server.client,
            &added.contact_id,
            |add, update| {
                add.phone_number = Some(bad.into());
                update.phone_number = Some(bad.into());
            },
            INVALID_PHONE,
            "phone_number",
        )
        .await;
    }
}

async fn a_country_code_outside_the_configured_list_is_not_supported(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    for bad in ["1-2025550123", "44-7911123456", "860-13912345678"] {
        assert_refused_on_add_and_update(
            &mut server.client,
            &added.contact_id,
            |add, update| {
                add.phone_number = Some(bad.into());
                update.phone_number = Some(bad.into());
            },
            COUNTRY_CODE,
            "phone_number",
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Titles and message types

async fn a_title_outside_the_list_is_invalid(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    for bad in ["Boss", "ceo", "CEO ", "Finance Director"] {
        assert_refused_on_add_and_update(
            &mut server.client,
            &added.contact_id,
            |add, update| {
                add.title = bad.into();
                update.title = Some(bad.into());
            },
            INVALID_TITLE,
            "title",
        )
        .await;
    }
    let status = update_fails(
        &mut server.client,
        update_with(&added.contact_id, |r| r.title = Some(String::new())),
    )
    .await;
    assert_invalid(&status, INVALID_TITLE, "title");
}

async fn a_message_type_outside_the_list_is_invalid(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    for bad in [
        vec!["Spam".to_owned()],
        vec!["ServiceMessage".to_owned(), "serviceMessage".to_owned()],
        vec![String::new()],
    ] {
        assert_refused_on_add_and_update(
            &mut server.client,
            &added.contact_id,
            |add, update| {
                add.message_types = bad.clone();
                update.message_types = bad;
            },
            INVALID_TYPES,
            "message_types",
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Listing

async fn a_negative_page_number_is_invalid(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    for bad in [-1, i32::MIN] {
        let status = list_fails(&mut server.client, list_with(|r| r.page_number = bad)).await;
        assert_invalid(&status, INVALID_PAGE_NUMBER, "page_number");
    }
}

async fn a_negative_page_size_or_one_above_100_is_invalid(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    for bad in [-1, 101, i32::MIN, i32::MAX] {
        let status = list_fails(&mut server.client, list_with(|r| r.page_size = bad)).await;
        assert_invalid(&status, INVALID_PAGE_SIZE, "page_size");
    }
    let page = server
        .client
        .list_message_contacts(as_account(ACCOUNT, list_with(|r| r.page_size = 100)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.page_size, 100);
}

async fn a_member_filter_of_the_wrong_shape_is_invalid(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    for bad in [
        "rd-abc",
        "fd-abcDE123456",
        "199796839435123",
        "xx-abcDE12345",
        "fd-abcDE1234_",
        "c-0123456789abcdef",
    ] {
        let status = list_fails(&mut server.client, list_with(|r| r.member = bad.into())).await;
        assert_invalid(&status, INVALID_MEMBER, "member");
    }
}

async fn a_well_formed_member_unknown_to_the_directory_does_not_exist(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    add(&mut server.client, ACCOUNT, "Tom").await;
    for member in ["fd-abcDE12345", "rd-abcDE12345", "1997968394351234"] {
        let status = list_fails(&mut server.client, list_with(|r| r.member = member.into())).await;
        assert_plain(&status, Code::NotFound, NO_MEMBER);
    }
}

// ---------------------------------------------------------------------------------------------
// Client tokens, quota and availability

async fn a_client_token_of_65_characters_is_invalid(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    for token in ["t".repeat(65), "é".repeat(65)] {
        let status = add_fails(
            &mut server.client,
            add_with(|r| {
                r.name = "Ann".into();
                r.client_token = token.clone();
            }),
        )
        .await;
        assert_invalid(&status, INVALID_TOKEN, "client_token");
        let status = update_fails(
            &mut server.client,
            update_with(&added.contact_id, |r| {
                r.title = Some("CEO".into());
                r.client_token = token;
            }),
        )
        .await;
        assert_invalid(&status, INVALID_TOKEN, "client_token");
    }
    assert_eq!(events(&db).await, 1);
    // 64 characters are a token.
    let request = add_with(|r| {
        r.name = "Ann".into();
        r.client_token = "é".repeat(64);
    });
    server
        .client
        .add_message_contact(as_account(ACCOUNT, request))
        .await
        .expect("a 64-character token is accepted");
}

async fn a_client_token_with_a_nul_character_is_a_token_like_any_other(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let request = add_with(|r| r.client_token = "retry\0me".into());
    let first = server
        .client
        .add_message_contact(as_account(ACCOUNT, request.clone()))
        .await
        .expect("a token of up to 64 characters is accepted")
        .into_inner();
    let again = server
        .client
        .add_message_contact(as_account(ACCOUNT, request))
        .await
        .expect("the retry is answered from memory")
        .into_inner();
    assert_eq!(again, first);
    assert_eq!(events(&db).await, 1);
}

async fn adding_beyond_the_quota_exceeds_the_limit(db: TestDb) {
    let mut server = TestServer::start_with(&db, |s| s.max_contacts = 2).await;
    add(&mut server.client, ACCOUNT, "Ann").await;
    add(&mut server.client, ACCOUNT, "Bob").await;
    let status = add_fails(&mut server.client, add_request("Cid")).await;
    assert_plain(&status, Code::ResourceExhausted, TOO_MANY);
    assert_eq!(events(&db).await, 2);
    // The quota is per account.
    add(&mut server.client, OTHER_ACCOUNT, "Cid").await;
}

async fn a_database_out_of_reach_makes_the_service_unavailable_without_saying_why(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    server.close_the_store().await;
    let status = get_fails(&mut server.client, &added.contact_id).await;
    assert_plain(&status, Code::Unavailable, UNAVAILABLE);
    let everything = format!(
        "{} {:?} {}",
        status.message(),
        status.metadata(),
        String::from_utf8_lossy(status.details())
    )
    .to_lowercase();
    for secret in [
        "pool", "select", "sqlx", "postgres", "sqlite", "contacts", "closed",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret:?} leaks in {everything}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Check order

async fn an_invalid_client_token_beats_missing_parameters(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let request = AddMessageContactRequest {
        client_token: "t".repeat(65),
        ..Default::default()
    };
    let status = add_fails(&mut server.client, request).await;
    assert_invalid(&status, INVALID_TOKEN, "client_token");
    let request = update_with("", |r| r.client_token = "t".repeat(65));
    let status = update_fails(&mut server.client, request).await;
    assert_invalid(&status, INVALID_TOKEN, "client_token");
}

async fn missing_parameters_beat_invalid_shapes(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let request = add_with(|r| {
        r.name = "1".into();
        r.email_address.clear();
    });
    let status = add_fails(&mut server.client, request).await;
    assert_invalid(&status, MISSING_EMAIL, "email_address");
    let request = add_with(|r| {
        r.name = "1".into();
        r.email_address = "bad".into();
        r.phone_number = Some("bad".into());
        r.title = "Boss".into();
        r.message_types.clear();
    });
    let status = add_fails(&mut server.client, request).await;
    assert_invalid(&status, MISSING_TYPES, "message_types");
    let status = update_fails(
        &mut server.client,
        update_with("", |r| r.title = Some("Boss".into())),
    )
    .await;
    assert_invalid(&status, MISSING_CONTACT_ID, "contact_id");
}

async fn shapes_are_checked_in_field_order(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let all_wrong = |r: &mut AddMessageContactRequest| {
        r.name = "1".into();
        r.email_address = "bad".into();
        r.phone_number = Some("1-2025550123".into());
        r.title = "Boss".into();
        r.message_types = vec!["Spam".into()];
    };
    let expected: [(AddChange, Error, &str); 5] = [
        (|_| {}, INVALID_NAME, "name"),
        (|r| r.name = "Tom".into(), INVALID_EMAIL, "email_address"),
        (
            |r| {
                r.name = "Tom".into();
                r.email_address = "tom@example.com".into();
            },
            COUNTRY_CODE,
            "phone_number",
        ),
        (
            |r| {
                r.name = "Tom".into();
                r.email_address = "tom@example.com".into();
                r.phone_number = None;
            },
            INVALID_TITLE,
            "title",
        ),
        (
            |r| {
                r.name = "Tom".into();
                r.email_address = "tom@example.com".into();
                r.phone_number = None;
                r.title = "CEO".into();
            },
            INVALID_TYPES,
            "message_types",
        ),
    ];
    for (fix, error, field) in expected {
        let request = add_with(|r| {
            all_wrong(r);
            fix(r);
        });
        let status = add_fails(&mut server.client, request).await;
        assert_invalid(&status, error, field);
    }

    let update = update_with("c-bad", |r| {
        r.name = Some("1".into());
        r.title = Some("Boss".into());
    });
    let status = update_fails(&mut server.client, update).await;
    assert_invalid(&status, INVALID_CONTACT_ID, "contact_id");
    let update = update_with("c-bad", |r| r.title = Some("Boss".into()));
    let status = update_fails(&mut server.client, update).await;
    assert_invalid(&status, INVALID_CONTACT_ID, "contact_id");
    let update = update_with(UNKNOWN_ID, |r| {
        r.email_address = Some("bad".into());
        r.title = Some("Boss".into());
    });
    let status = update_fails(&mut server.client, update).await;
    assert_invalid(&status, INVALID_EMAIL, "email_address");

    let list = list_with(|r| {
        r.contact_id = "c-bad".into();
        r.member = "bad".into();
        r.page_number = -1;
        r.page_size = -1;
    });
    let status = list_fails(&mut server.client, list).await;
    assert_invalid(&status, INVALID_CONTACT_ID, "contact_id");
    let list = list_with(|r| {
        r.member = "bad".into();
        r.page_number = -1;
        r.page_size = -1;
    });
    let status = list_fails(&mut server.client, list).await;
    assert_invalid(&status, INVALID_MEMBER, "member");
    let list = list_with(|r| {
        r.page_number = -1;
        r.page_size = -1;
    });
    let status = list_fails(&mut server.client, list).await;
    assert_invalid(&status, INVALID_PAGE_NUMBER, "page_number");
}

async fn shapes_beat_existence(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let update = update_with(UNKNOWN_ID, |r| r.title = Some("Boss".into()));
    let status = update_fails(&mut server.client, update).await;
    assert_invalid(&status, INVALID_TITLE, "title");
    let update = update_with(UNKNOWN_ID, |r| r.name = Some("a".into()));
    let status = update_fails(&mut server.client, update).await;
    assert_invalid(&status, NAME_LENGTH, "name");
    let list = list_with(|r| {
        r.contact_id = UNKNOWN_ID.into();
        r.page_size = 101;
    });
    let status = list_fails(&mut server.client, list).await;
    assert_invalid(&status, INVALID_PAGE_SIZE, "page_size");
    let list = list_with(|r| {
        r.contact_id = UNKNOWN_ID.into();
        r.member = "bad".into();
    });
    let status = list_fails(&mut server.client, list).await;
    assert_invalid(&status, INVALID_MEMBER, "member");
}

async fn existence_beats_uniqueness(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    add(&mut server.client, ACCOUNT, "Tom").await;
    let update = update_with(UNKNOWN_ID, |r| r.name = Some("Tom".into()));
    let status = update_fails(&mut server.client, update).await;
    assert_plain(&status, Code::NotFound, NO_CONTACT);
}

async fn uniqueness_beats_quota(db: TestDb) {
    let mut server = TestServer::start_with(&db, |s| s.max_contacts = 1).await;
    add(&mut server.client, ACCOUNT, "Tom").await;
    let status = add_fails(&mut server.client, add_request("tom")).await;
    assert_error(
        &status,
        Code::AlreadyExists,
        NAME_USED.0,
        NAME_USED.1,
        Some("name"),
    );
    let status = add_fails(&mut server.client, add_request("Ann")).await;
    assert_plain(&status, Code::ResourceExhausted, TOO_MANY);
    assert_eq!(events(&db).await, 1);
}

async fn a_rejected_call_changes_nothing(db: TestDb) {
    let mut server = TestServer::start_with(&db, |s| s.max_contacts = 2).await;
    let tom = add(&mut server.client, ACCOUNT, "Tom").await;
    let ann = add(&mut server.client, ACCOUNT, "Ann").await;

    // Each update is right in every field but one: none of its fields may stick.
    let all_good_but = |change: fn(&mut UpdateMessageContactRequest)| {
        update_with(&tom.contact_id, |r| {
            r.name = Some("Tommy".into());
            r.email_address = Some("tommy@example.com".into());
            r.phone_number = Some("86-13812345678".into());
            r.title = Some("CEO".into());
            r.message_types = vec!["FaultMessage".into()];
            change(r);
        })
    };
    let bad_updates: [fn(&mut UpdateMessageContactRequest); 7] = [
        |r| r.name = Some("Ann".into()),
        |r| r.name = Some("T".into()),
        |r| r.email_address = Some(String::new()),
        |r| r.phone_number = Some("86-1391234567".into()),
        |r| r.title = Some("Boss".into()),
        |r| r.message_types.push("Spam".into()),
        |r| r.client_token = "t".repeat(65),
    ];
    for change in bad_updates {
        update_fails(&mut server.client, all_good_but(change)).await;
    }
    add_fails(&mut server.client, add_request("Cid")).await;
    add_fails(&mut server.client, add_request("ann")).await;
    add_fails(&mut server.client, add_with(|r| r.title = "Boss".into())).await;

    assert_eq!(events(&db).await, 2);
    for before in [tom, ann] {
        let after = get(&mut server.client, ACCOUNT, &before.contact_id)
            .await
            .unwrap();
        assert_eq!(after, before);
    }
    let all = server
        .client
        .list_message_contacts(as_account(ACCOUNT, ListMessageContactsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.total_count, 2);
}

// ---------------------------------------------------------------------------------------------
// Hostile input

/// Strings no field accepts: each call carrying one in any field is refused as a bad argument.
/// The longest stay within the request size limit (64 KiB): past it, a request is refused
/// before it is decoded (`limits.rs`).
fn hostile_strings() -> Vec<String> {
    vec![
        "a".repeat(60_000),
        "雷".repeat(20_000),
        "\0".to_owned(),
        "Tom\0".to_owned(),
        "tom\0@example.com".to_owned(),
        "😀😀".to_owned(),
        "tom😀@example.com".to_owned(),
        "\u{202E}moT".to_owned(),
        "\u{200F}Tom\u{200F}".to_owned(),
        format!("86-{}", "1".repeat(5000)),
        "86-\u{0661}\u{0663}\u{0669}12345678".to_owned(),
        "'; DROP TABLE events; --".to_owned(),
        "%s%n%x{}".to_owned(),
        "\u{FEFF}CEO".to_owned(),
        "CEO\r\n".to_owned(),
    ]
}

/// `None` if the call was refused as a bad argument (never an internal or unknown failure, never
/// a success), else what went wrong.
fn not_a_bad_argument(result: Result<impl std::fmt::Debug, Status>, what: &str) -> Option<String> {
    match result {
        Err(status)
            if status.code() == Code::InvalidArgument
                && status.metadata().get("x-acs-error-code").is_some() =>
        {
            None
        }
        Err(status) => Some(format!(
            "{what}: {:?} {:?} {:?}",
            status.code(),
            status.message(),
            status.metadata().get("x-acs-error-code")
        )),
        Ok(response) => Some(format!("{what}: accepted: {response:?}")),
    }
}

async fn hostile_strings_in_any_field_are_refused_as_bad_arguments(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut directory = crate::lifecycle_support::directory_client(&server).await;
    let tom = add(&mut server.client, ACCOUNT, "Tom").await;
    type AddField = fn(&mut AddMessageContactRequest, String);
    type UpdateField = fn(&mut UpdateMessageContactRequest, String);
    let add_fields: [(&str, AddField); 6] = [
        ("name", |r, s| r.name = s),
        ("email_address", |r, s| r.email_address = s),
        ("phone_number", |r, s| r.phone_number = Some(s)),
        ("title", |r, s| r.title = s),
        ("message_types", |r, s| r.message_types.push(s)),
        // A short token is a good token: the invalid title makes the call a bad one.
        ("client_token", |r, s| {
            r.title = "Boss".into();
            r.client_token = s;
        }),
    ];
    let update_fields: [(&str, UpdateField); 7] = [
        ("contact_id", |r, s| r.contact_id = s),
        ("name", |r, s| r.name = Some(s)),
        ("email_address", |r, s| r.email_address = Some(s)),
        ("phone_number", |r, s| r.phone_number = Some(s)),
        ("title", |r, s| r.title = Some(s)),
        ("message_types", |r, s| r.message_types.push(s)),
        ("client_token", |r, s| {
            r.title = Some("Boss".into());
            r.client_token = s;
        }),
    ];
    let mut failures = Vec::new();
    for hostile in hostile_strings() {
        let shown: String = hostile.chars().take(20).collect();
        for (field, set) in add_fields {
            let request = add_with(|r| {
                r.name = "Ann".into();
                set(r, hostile.clone());
            });
            let result = server
                .client
                .add_message_contact(as_account(ACCOUNT, request))
                .await;
            failures.extend(not_a_bad_argument(
                result,
                &format!("Add with {field} = {shown:?}"),
            ));
        }
        for (field, set) in update_fields {
            let request = update_with(&tom.contact_id, |r| set(r, hostile.clone()));
            let result = server
                .client
                .update_message_contact(as_account(ACCOUNT, request))
                .await;
            failures.extend(not_a_bad_argument(
                result,
                &format!("Update with {field} = {shown:?}"),
            ));
        }
        let result = get(&mut server.client, ACCOUNT, &hostile).await;
        failures.extend(not_a_bad_argument(
            result,
            &format!("Get with contact_id = {shown:?}"),
        ));
        let client = &mut server.client;
        let members = [hostile.as_str()];
        let bound = crate::lifecycle_support::associate(client, ACCOUNT, &tom.contact_id, &members);
        failures.extend(not_a_bad_argument(
            bound.await,
            &format!("Associate with a member = {shown:?}"),
        ));
        let deleted = crate::lifecycle_support::delete(client, ACCOUNT, &hostile, Some(false));
        failures.extend(not_a_bad_argument(
            deleted.await,
            &format!("Delete with contact_id = {shown:?}"),
        ));
        let registered =
            crate::lifecycle_support::register_folder(&mut directory, ACCOUNT, &hostile, "");
        failures.extend(not_a_bad_argument(
            registered.await,
            &format!("RegisterFolder with folder_id = {shown:?}"),
        ));
        let joined =
            crate::lifecycle_support::register_member(&mut directory, ACCOUNT, &hostile, "");
        failures.extend(not_a_bad_argument(
            joined.await,
            &format!("RegisterMember with account_id = {shown:?}"),
        ));
    }
    assert_eq!(
        get(&mut server.client, ACCOUNT, &tom.contact_id)
            .await
            .expect("the server still answers"),
        tom
    );
    // The contact's creation alone: no refused call even created the directory.
    assert_eq!(events(&db).await, 1);
    assert!(failures.is_empty(), "{failures:#?}");
}

// The verification RPCs: each parameter error in the contract's order, and the entities.

const MISSING_PHONE: Error = (
    "MissingParameter.PhoneNumber",
    "You must specify PhoneNumber.",
);
const MISSING_TARGET: Error = ("MissingParameter.Target", "You must specify Target.");
const MISSING_CODE: Error = (
    "MissingParameter.VerificationCode",
    "You must specify VerificationCode.",
);
const INVALID_TARGET: Error = ("InvalidParameter.Target", "The Target is invalid.");
const INVALID_CODE: Error = (
    "InvalidParameter.VerificationCode",
    "The verification code is invalid.",
);

async fn send_email_fails(
    client: &mut Client,
    contact_id: &str,
    email: &str,
    token: &str,
) -> Status {
    let request = contactd_grpc::proto::SendEmailVerificationForMessageContactRequest {
        contact_id: contact_id.to_owned(),
        email_address: email.to_owned(),
        client_token: token.to_owned(),
    };
    client
        .send_email_verification_for_message_contact(as_account(ACCOUNT, request))
        .await
        .expect_err("the send is refused")
}

async fn send_phone_fails(client: &mut Client, contact_id: &str, phone: &str) -> Status {
    send_phone(client, ACCOUNT, contact_id, phone)
        .await
        .expect_err("the send is refused")
}

async fn confirm_fails(client: &mut Client, contact_id: &str, target: &str, code: &str) -> Status {
    confirm(client, ACCOUNT, contact_id, target, code)
        .await
        .expect_err("the confirmation is refused")
}

async fn cancel_fails(
    client: &mut Client,
    contact_id: &str,
    email: Option<&str>,
    phone: Option<&str>,
) -> Status {
    let request = contactd_grpc::proto::CancelMessageContactUpdateRequest {
        contact_id: contact_id.to_owned(),
        email_address: email.map(str::to_owned),
        phone_number: phone.map(str::to_owned),
        client_token: String::new(),
    };
    client
        .cancel_message_contact_update(as_account(ACCOUNT, request))
        .await
        .expect_err("the cancellation is refused")
}

async fn list_verifications_fails(
    client: &mut Client,
    contact_id: &str,
    page_number: i32,
    page_size: i32,
) -> Status {
    let request = contactd_grpc::proto::ListMessageContactVerificationsRequest {
        contact_id: contact_id.to_owned(),
        page_number,
        page_size,
    };
    client
        .list_message_contact_verifications(as_account(ACCOUNT, request))
        .await
        .expect_err("the list is refused")
}

async fn a_send_reports_missing_fields_then_shapes_then_the_contact(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let c = &mut server.client;
    let id = add(c, ACCOUNT, "Tom").await.contact_id;
    let cases = [
        ("", "", "", MISSING_CONTACT_ID, Some("contact_id")),
        ("bad", "", "", MISSING_EMAIL, Some("email_address")),
        (
            "bad",
            "tom@example.com",
            "",
            INVALID_CONTACT_ID,
            Some("contact_id"),
        ),
        (&id, "tom@", "", INVALID_EMAIL, Some("email_address")),
        (UNKNOWN_ID, "tom@example.com", "", NO_CONTACT, None),
    ];
    for (contact_id, email, token, error, field) in cases {
        let status = send_email_fails(c, contact_id, email, token).await;
        match field {
            Some(field) => assert_invalid(&status, error, field),
            None => assert_plain(&status, Code::NotFound, error),
        }
    }
    let long = format!("{}@example.com", "a".repeat(250));
    assert_invalid(
        &send_email_fails(c, &id, &long, "").await,
        EMAIL_LENGTH,
        "email_address",
    );
    // The token comes right after the caller's identity, before any other check.
    assert_invalid(
        &send_email_fails(c, "", "", &"t".repeat(65)).await,
        INVALID_TOKEN,
        "client_token",
    );

    assert_invalid(
        &send_phone_fails(c, &id, "").await,
        MISSING_PHONE,
        "phone_number",
    );
    assert_invalid(
        &send_phone_fails(c, &id, "86-1391234567x").await,
        INVALID_PHONE,
        "phone_number",
    );
    assert_invalid(
        &send_phone_fails(c, &id, "44-7912345678").await,
        COUNTRY_CODE,
        "phone_number",
    );
    assert_plain(
        &send_phone_fails(c, UNKNOWN_ID, "86-13912345678").await,
        Code::NotFound,
        NO_CONTACT,
    );
    server.stop().await;
}

async fn a_confirmation_reports_missing_fields_then_shapes_then_the_contact(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let c = &mut server.client;
    let id = add(c, ACCOUNT, "Tom").await.contact_id;
    let cases = [
        ("", "", "", MISSING_CONTACT_ID, "contact_id"),
        ("bad", "", "1", MISSING_TARGET, "target"),
        ("bad", "tom@example.com", "", MISSING_CODE, "code"),
        (
            "bad",
            "tom@example.com",
            "x",
            INVALID_CONTACT_ID,
            "contact_id",
        ),
        (&id, "tom@", "123456", INVALID_TARGET, "target"),
        (&id, "13912345678", "123456", INVALID_TARGET, "target"),
        (&id, "tom@example.com", "12345", INVALID_CODE, "code"),
        (&id, "tom@example.com", "1234567", INVALID_CODE, "code"),
    ];
    for (contact_id, target, code, error, field) in cases {
        let status = confirm_fails(c, contact_id, target, code).await;
        assert_invalid(&status, error, field);
    }
    assert_plain(
        &confirm_fails(c, UNKNOWN_ID, "tom@example.com", "123456").await,
        Code::NotFound,
        NO_CONTACT,
    );
    server.stop().await;
}

async fn a_cancellation_and_a_list_of_verifications_report_their_parameters(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let c = &mut server.client;
    let id = add(c, ACCOUNT, "Tom").await.contact_id;
    assert_invalid(
        &cancel_fails(c, "", None, None).await,
        MISSING_CONTACT_ID,
        "contact_id",
    );
    assert_invalid(
        &cancel_fails(c, "bad", Some("x@example.com"), None).await,
        INVALID_CONTACT_ID,
        "contact_id",
    );
    assert_invalid(
        &cancel_fails(c, &id, Some(""), None).await,
        INVALID_EMAIL,
        "email_address",
    );
    assert_invalid(
        &cancel_fails(c, &id, None, Some("86-1")).await,
        INVALID_PHONE,
        "phone_number",
    );
    assert_invalid(
        &cancel_fails(c, &id, None, Some("44-7912345678")).await,
        COUNTRY_CODE,
        "phone_number",
    );
    assert_plain(
        &cancel_fails(c, UNKNOWN_ID, None, Some("86-13912345678")).await,
        Code::NotFound,
        NO_CONTACT,
    );

    assert_invalid(
        &list_verifications_fails(c, "", 0, 0).await,
        MISSING_CONTACT_ID,
        "contact_id",
    );
    assert_invalid(
        &list_verifications_fails(c, "c-", 0, 0).await,
        INVALID_CONTACT_ID,
        "contact_id",
    );
    assert_invalid(
        &list_verifications_fails(c, &id, -1, 0).await,
        INVALID_PAGE_NUMBER,
        "page_number",
    );
    for size in [-1, 101] {
        assert_invalid(
            &list_verifications_fails(c, &id, 1, size).await,
            INVALID_PAGE_SIZE,
            "page_size",
        );
    }
    assert_plain(
        &list_verifications_fails(c, UNKNOWN_ID, 0, 0).await,
        Code::NotFound,
        NO_CONTACT,
    );
    server.stop().await;
}

both_backends!(
    a_database_out_of_reach_makes_the_service_unavailable_without_saying_why,
    a_call_without_an_account_is_unauthenticated,
    a_malformed_account_is_unauthenticated,
    an_account_given_twice_is_unauthenticated_even_when_both_agree,
    identity_is_checked_before_the_client_token,
    an_add_without_a_required_field_names_it,
    update_and_get_without_a_contact_id_are_missing_it,
    a_malformed_contact_id_is_invalid_everywhere,
    a_well_formed_unknown_contact_id_does_not_exist,
    a_name_with_a_character_outside_the_set_is_invalid,
    a_name_of_the_wrong_length_exceeds_the_limit,
    a_name_differing_only_in_case_is_already_used,
    renaming_onto_another_contacts_name_is_already_used_but_onto_ones_own_is_not,
    a_malformed_email_address_is_invalid,
    an_email_address_of_255_characters_exceeds_the_limit_and_254_do_not,
    a_phone_number_of_the_wrong_shape_is_invalid,
    a_number_that_is_not_a_mobile_number_of_the_country_is_invalid,
    a_country_code_outside_the_configured_list_is_not_supported,
    a_title_outside_the_list_is_invalid,
    a_message_type_outside_the_list_is_invalid,
    a_negative_page_number_is_invalid,
    a_negative_page_size_or_one_above_100_is_invalid,
    a_member_filter_of_the_wrong_shape_is_invalid,
    a_well_formed_member_unknown_to_the_directory_does_not_exist,
    a_client_token_of_65_characters_is_invalid,
    a_client_token_with_a_nul_character_is_a_token_like_any_other,
    adding_beyond_the_quota_exceeds_the_limit,
    an_invalid_client_token_beats_missing_parameters,
    missing_parameters_beat_invalid_shapes,
    shapes_are_checked_in_field_order,
    shapes_beat_existence,
    existence_beats_uniqueness,
    uniqueness_beats_quota,
    a_rejected_call_changes_nothing,
    hostile_strings_in_any_field_are_refused_as_bad_arguments,
    a_send_reports_missing_fields_then_shapes_then_the_contact,
    a_confirmation_reports_missing_fields_then_shapes_then_the_contact,
    a_cancellation_and_a_list_of_verifications_report_their_parameters,
);
