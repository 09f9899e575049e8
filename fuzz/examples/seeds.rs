//! Writes the hand-made seed inputs of every target into `corpus/<target>/seed-<n>`: valid and
//! invalid values of each parser, and real encoded messages for `requests`. Run it once when a
//! parser or a message changes (`cargo run --example seeds` in `fuzz/`), then minimise.

use std::path::Path;

use contactd_grpc::fuzzing::REQUEST_KINDS;
use contactd_grpc::proto::{
    AddMessageContactRequest, AssociateMembersRequest, CancelMessageContactUpdateRequest,
    ConfirmMessageContactVerificationRequest, DeleteMessageContactRequest,
    DisassociateMembersRequest, ForgetMessageContactRequest, GetMessageContactAsOfRequest,
    GetMessageContactDeletionStatusRequest, GetMessageContactRequest, GetResourceDirectoryRequest,
    ListMessageContactEventsRequest, ListMessageContactVerificationsRequest,
    ListMessageContactsRequest, MoveMemberRequest, RegisterFolderRequest, RegisterMemberRequest,
    RemoveFolderRequest, RemoveMemberRequest, SendEmailVerificationForMessageContactRequest,
    SendPhoneVerificationForMessageContactRequest, StreamEventsRequest,
    UpdateMessageContactRequest, get_message_contact_as_of_request::AsOf,
};
use prost::Message;

const CONTACT: &str = "c-qL4HqKONzOM7abcd";

fn selected(selector: u8, text: &str) -> Vec<u8> {
    let mut input = vec![selector];
    input.extend_from_slice(text.as_bytes());
    input
}

fn texts(values: &[&str]) -> Vec<Vec<u8>> {
    values.iter().map(|v| v.as_bytes().to_vec()).collect()
}

fn ids() -> Vec<Vec<u8>> {
    let by_selector: [&[&str]; 8] = [
        &[
            CONTACT,
            "",
            "c-qL4HqKONzOM7abc",
            "c-qL4HqKONzOM7abcé",
            "d-qL4HqKONzOM7abcd",
        ],
        &[
            "1",
            "01",
            "12345678901234567890123456789012",
            "123456789012345678901234567890123",
            "١٢",
            "",
        ],
        &["", "t-1", &"é".repeat(64), &"a".repeat(65)],
        &[
            "fd-ZDNPiT1234",
            "fd-ZDNPiT123",
            "fd-ZDNPiT123_",
            "rd-abcDE12345",
        ],
        &["rd-abcDE12345", "rd-abc", "rd-abcDE1234é"],
        &["1997968394351234", "199796839435123", "１997968394351234"],
        &[
            "rd-abcDE12345",
            "fd-ZDNPiT1234",
            "1997968394351234",
            "xx-abcDE12345",
            "",
        ],
        &[
            "rd-abcDE12345",
            "fd-ZDNPiT12345",
            "1997968394351234",
            "c-qL4HqKONzOM7abcd",
        ],
    ];
    by_selector
        .iter()
        .zip(0u8..)
        .flat_map(|(values, selector)| values.iter().map(move |v| selected(selector, v)))
        .collect()
}

fn choices() -> Vec<Vec<u8>> {
    let by_selector: [&[&str]; 4] = [
        &["CEO", "ceo", "FinanceDirector", "Other ", ""],
        &["ServiceMessage", "servicemessage", "ProductMessage", ""],
        &[
            "ProductMessage,ServiceMessage,ProductMessage",
            "ServiceMessage,",
            "",
            "FaultMessage,AccountExpenses,SecurityMessage,ActivityMessage",
        ],
        &["email", "phone", "Email", ""],
    ];
    by_selector
        .iter()
        .zip(0u8..)
        .flat_map(|(values, selector)| values.iter().map(move |v| selected(selector, v)))
        .collect()
}

fn codes() -> Vec<Vec<u8>> {
    let token = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJK-_0123";
    vec![
        selected(0, "123456"),
        selected(0, "000000"),
        selected(0, "12345"),
        selected(0, "12345a"),
        selected(0, ""),
        selected(1, token),
        selected(1, &token[1..]),
        selected(1, &format!("{}!", &token[1..])),
    ]
}

fn paging(number: i64, size: i64, token: &str) -> Vec<u8> {
    let mut input = number.to_le_bytes().to_vec();
    input.extend_from_slice(&size.to_le_bytes());
    input.extend_from_slice(token.as_bytes());
    input
}

fn request(selector: u8, message: &impl Message) -> Vec<u8> {
    let mut input = vec![selector];
    input.extend_from_slice(&message.encode_to_vec());
    input
}

fn requests() -> Vec<Vec<u8>> {
    let add = AddMessageContactRequest {
        name: "Tom".into(),
        email_address: "tom@example.com".into(),
        phone_number: Some("86-13912345678".into()),
        title: "CEO".into(),
        message_types: vec!["AccountExpenses".into(), "ServiceMessage".into()],
        client_token: "token-1".into(),
    };
    let seeds = vec![
        request(0, &add),
        request(
            0,
            &AddMessageContactRequest {
                phone_number: Some(String::new()),
                name: "1".into(),
                ..add.clone()
            },
        ),
        request(
            1,
            &UpdateMessageContactRequest {
                contact_id: CONTACT.into(),
                name: Some("Jerry".into()),
                email_address: Some("jerry@example.org".into()),
                phone_number: Some(String::new()),
                title: Some("Other".into()),
                message_types: vec!["FaultMessage".into()],
                client_token: String::new(),
            },
        ),
        request(
            2,
            &GetMessageContactRequest {
                contact_id: CONTACT.into(),
            },
        ),
        request(
            3,
            &ListMessageContactsRequest {
                contact_id: String::new(),
                member: "fd-ZDNPiT1234".into(),
                page_number: 2,
                page_size: 50,
            },
        ),
        request(
            4,
            &SendEmailVerificationForMessageContactRequest {
                contact_id: CONTACT.into(),
                email_address: "tom@example.com".into(),
                client_token: "t".into(),
            },
        ),
        request(
            5,
            &SendPhoneVerificationForMessageContactRequest {
                contact_id: CONTACT.into(),
                phone_number: "86-13912345678".into(),
                client_token: String::new(),
            },
        ),
        request(
            6,
            &ListMessageContactVerificationsRequest {
                contact_id: CONTACT.into(),
                page_number: -1,
                page_size: 101,
            },
        ),
        request(
            7,
            &CancelMessageContactUpdateRequest {
                contact_id: CONTACT.into(),
                email_address: Some("tom@example.com".into()),
                phone_number: Some("1-2015550123".into()),
                client_token: String::new(),
            },
        ),
        request(
            8,
            &ConfirmMessageContactVerificationRequest {
                contact_id: CONTACT.into(),
                target: "86-13912345678".into(),
                code: "123456".into(),
                client_token: "c".repeat(65),
            },
        ),
        request(
            9,
            &DeleteMessageContactRequest {
                contact_id: CONTACT.into(),
                retain_contact_in_members: Some(false),
                client_token: String::new(),
            },
        ),
        request(
            10,
            &GetMessageContactDeletionStatusRequest {
                contact_id: CONTACT.into(),
            },
        ),
        request(
            11,
            &AssociateMembersRequest {
                contact_id: CONTACT.into(),
                members: vec!["rd-abcDE12345".into(), "1997968394351234".into()],
                client_token: "a".into(),
            },
        ),
        request(
            12,
            &DisassociateMembersRequest {
                contact_id: CONTACT.into(),
                members: vec!["fd-ZDNPiT1234".into(), "fd-ZDNPiT1234".into()],
                client_token: String::new(),
            },
        ),
        request(
            13,
            &ListMessageContactEventsRequest {
                contact_id: CONTACT.into(),
                page_size: 1000,
                page_token: "v42".into(),
            },
        ),
        request(
            14,
            &StreamEventsRequest {
                from_position: 1 << 40,
            },
        ),
        request(
            15,
            &GetMessageContactAsOfRequest {
                contact_id: CONTACT.into(),
                as_of: Some(AsOf::AsOfVersion(3)),
            },
        ),
        as_of_time(1_700_000_000, 5),
        as_of_time(-1, -1),
        request(16, &GetResourceDirectoryRequest {}),
        request(
            17,
            &RegisterFolderRequest {
                folder_id: "fd-ZDNPiT1234".into(),
                parent_id: "fd-ABCDEF1234".into(),
            },
        ),
        request(
            18,
            &RemoveFolderRequest {
                folder_id: "fd-ZDNPiT1234".into(),
            },
        ),
        request(
            19,
            &RegisterMemberRequest {
                account_id: "1997968394351234".into(),
                folder_id: String::new(),
            },
        ),
        request(
            20,
            &MoveMemberRequest {
                account_id: "1997968394351234".into(),
                folder_id: "fd-ZDNPiT1234".into(),
            },
        ),
        request(
            21,
            &RemoveMemberRequest {
                account_id: "1997968394351234".into(),
            },
        ),
        request(
            22,
            &ForgetMessageContactRequest {
                contact_id: CONTACT.into(),
            },
        ),
        request(
            22,
            &ForgetMessageContactRequest {
                contact_id: "c-short".into(),
            },
        ),
        request(22, &ForgetMessageContactRequest::default()),
    ];
    assert_eq!(
        seeds.iter().filter_map(|s| s.first()).max(),
        Some(&(REQUEST_KINDS - 1)),
        "a seed for every request"
    );
    seeds
}

/// A GetMessageContactAsOf naming a time, encoded by hand (field 2, a Timestamp of seconds
/// and nanos): it keeps `prost-types` out of the fuzz crate.
fn as_of_time(seconds: i64, nanos: i32) -> Vec<u8> {
    let mut timestamp = vec![0x08];
    prost::encoding::encode_varint(seconds as u64, &mut timestamp);
    timestamp.push(0x10);
    prost::encoding::encode_varint(i64::from(nanos) as u64, &mut timestamp);
    let mut input = vec![15, 0x0a, CONTACT.len() as u8];
    input.extend_from_slice(CONTACT.as_bytes());
    input.push(0x12);
    input.push(timestamp.len() as u8);
    input.extend_from_slice(&timestamp);
    input
}

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let seeds: [(&str, Vec<Vec<u8>>); 10] = [
        ("ids", ids()),
        ("choices", choices()),
        ("codes", codes()),
        (
            "name",
            texts(&[
                "Tom",
                "tO",
                "张三",
                "𠀀𠀁",
                "Li雷",
                "a",
                "Tom Smith",
                "abcdefghijklm",
                "Ｔom",
            ]),
        ),
        (
            "email",
            texts(&[
                "someone@example.com",
                "a.b+c@x-y.example.org",
                "!#$%&'*+/=?^_`{|}~-@a.b1",
                "a..b@c.d",
                "a@-b.c",
                "a@b",
                "é@b.c",
                &format!("{}@{}.com", "a".repeat(64), "b".repeat(63)),
                &format!("{}@example.com", "a".repeat(250)),
            ]),
        ),
        (
            "phone",
            texts(&[
                "86-13912345678",
                "86-18612345678",
                "1-2015550123",
                "44-7400123456",
                "852-51234567",
                "86-013912345678",
                "+86-13912345678",
                "086-13912345678",
                "86-",
                "86-1391234567812345678",
                "7-9123456789",
            ]),
        ),
        (
            "country_codes",
            texts(&[
                "86", "86,852", " 1 , 44 ", "", "0", "1000", "86,,", "abc", "086", "999",
            ]),
        ),
        (
            "verification_target",
            vec![
                selected(0, "tom@example.com"),
                selected(0, "86-13912345678"),
                selected(1, "44-7400123456"),
                selected(0, "44-7400123456"),
                selected(0, ""),
                selected(1, "a@b"),
            ],
        ),
        (
            "paging",
            vec![
                paging(0, 0, ""),
                paging(1, 100, "v1"),
                paging(-1, 101, "v0"),
                paging(i64::from(u32::MAX) + 1, 1000, "v18446744073709551616"),
                paging(5, 1001, "x"),
            ],
        ),
        ("requests", requests()),
    ];
    for (target, inputs) in seeds {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        for (n, input) in inputs.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{n}")), input)?;
        }
        println!("{target}: {} seeds", inputs.len());
    }
    Ok(())
}
