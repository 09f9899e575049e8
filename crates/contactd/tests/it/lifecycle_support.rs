//! Shared steps of the lifecycle tests: the directory mirror's client, a directory tree built
//! in one go, bindings, deletes and the member filter of the list.

use std::time::Duration;

use contactd_grpc::proto::resource_directory_service_client::ResourceDirectoryServiceClient;
use contactd_grpc::proto::{
    AssociateMembersRequest, AssociateMembersResponse, DeleteMessageContactRequest,
    DisassociateMembersRequest, DisassociateMembersResponse,
    GetMessageContactDeletionStatusRequest, GetResourceDirectoryRequest,
    ListMessageContactsRequest, ListMessageContactsResponse, MoveMemberRequest,
    RegisterFolderRequest, RegisterMemberRequest,
};
use tonic::Status;
use tonic::transport::Channel;

use crate::support::*;

pub type DirectoryClient = ResourceDirectoryServiceClient<Channel>;

pub async fn directory_client(server: &TestServer) -> DirectoryClient {
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to the test server");
    DirectoryClient::new(channel)
}

/// Folder ids of the tests: `fd-` and ten characters.
pub fn folder(name: &str) -> String {
    format!("fd-{name:0>10}")
}

/// The caller's directory id (created on this first use if need be).
pub async fn directory_id(directory: &mut DirectoryClient, account: &str) -> String {
    directory
        .get_resource_directory(as_account(account, GetResourceDirectoryRequest {}))
        .await
        .expect("get the directory")
        .into_inner()
        .resource_directory_id
}

pub async fn register_folder(
    directory: &mut DirectoryClient,
    account: &str,
    folder_id: &str,
    parent_id: &str,
) -> Result<(), Status> {
    let request = RegisterFolderRequest {
        folder_id: folder_id.to_owned(),
        parent_id: parent_id.to_owned(),
    };
    directory
        .register_folder(as_account(account, request))
        .await
        .map(drop)
}

pub async fn register_member(
    directory: &mut DirectoryClient,
    account: &str,
    account_id: &str,
    folder_id: &str,
) -> Result<(), Status> {
    let request = RegisterMemberRequest {
        account_id: account_id.to_owned(),
        folder_id: folder_id.to_owned(),
    };
    directory
        .register_member(as_account(account, request))
        .await
        .map(drop)
}

pub async fn move_member(
    directory: &mut DirectoryClient,
    account: &str,
    account_id: &str,
    folder_id: &str,
) -> Result<(), Status> {
    let request = MoveMemberRequest {
        account_id: account_id.to_owned(),
        folder_id: folder_id.to_owned(),
    };
    directory
        .move_member(as_account(account, request))
        .await
        .map(drop)
}

pub const MEMBER_DEEP: &str = "1000000000000001";
pub const MEMBER_TOP: &str = "1000000000000002";
pub const MEMBER_ROOT: &str = "1000000000000003";

/// The tree of the tests: folder A at the root, B under A; a member in B (two levels deep),
/// one in A, one at the root. Returns the directory's id.
pub async fn two_levels(directory: &mut DirectoryClient, account: &str) -> String {
    let root = directory_id(directory, account).await;
    register_folder(directory, account, &folder("A"), "")
        .await
        .expect("folder A");
    register_folder(directory, account, &folder("B"), &folder("A"))
        .await
        .expect("folder B");
    register_member(directory, account, MEMBER_DEEP, &folder("B"))
        .await
        .expect("deep member");
    register_member(directory, account, MEMBER_TOP, &folder("A"))
        .await
        .expect("top member");
    register_member(directory, account, MEMBER_ROOT, "")
        .await
        .expect("root member");
    root
}

pub async fn associate(
    client: &mut Client,
    account: &str,
    contact_id: &str,
    members: &[&str],
) -> Result<AssociateMembersResponse, Status> {
    let request = AssociateMembersRequest {
        contact_id: contact_id.to_owned(),
        members: members.iter().map(|m| (*m).to_owned()).collect(),
        client_token: String::new(),
    };
    Ok(client
        .associate_members(as_account(account, request))
        .await?
        .into_inner())
}

pub async fn disassociate(
    client: &mut Client,
    account: &str,
    contact_id: &str,
    members: &[&str],
) -> Result<DisassociateMembersResponse, Status> {
    let request = DisassociateMembersRequest {
        contact_id: contact_id.to_owned(),
        members: members.iter().map(|m| (*m).to_owned()).collect(),
        client_token: String::new(),
    };
    Ok(client
        .disassociate_members(as_account(account, request))
        .await?
        .into_inner())
}

/// Deletes a contact; `retain` as sent (`None`: left out). Its status.
pub async fn delete(
    client: &mut Client,
    account: &str,
    contact_id: &str,
    retain: Option<bool>,
) -> Result<String, Status> {
    let request = DeleteMessageContactRequest {
        contact_id: contact_id.to_owned(),
        retain_contact_in_members: retain,
        client_token: String::new(),
    };
    Ok(client
        .delete_message_contact(as_account(account, request))
        .await?
        .into_inner()
        .status)
}

/// The deletion status and its fail reasons as `(account, types)`.
pub async fn deletion_status(
    client: &mut Client,
    account: &str,
    contact_id: &str,
) -> Result<(String, Vec<(String, Vec<String>)>), Status> {
    let request = GetMessageContactDeletionStatusRequest {
        contact_id: contact_id.to_owned(),
    };
    let status = client
        .get_message_contact_deletion_status(as_account(account, request))
        .await?
        .into_inner()
        .contact_deletion_status
        .expect("a deletion status");
    assert_eq!(status.contact_id, contact_id);
    Ok((
        status.status,
        status
            .fail_reason_list
            .into_iter()
            .map(|r| (r.account_id, r.message_types))
            .collect(),
    ))
}

pub async fn list_for(
    client: &mut Client,
    account: &str,
    member: &str,
    page_number: i32,
    page_size: i32,
) -> Result<ListMessageContactsResponse, Status> {
    let request = ListMessageContactsRequest {
        member: member.to_owned(),
        page_number,
        page_size,
        ..Default::default()
    };
    Ok(client
        .list_message_contacts(as_account(account, request))
        .await?
        .into_inner())
}

/// The names of the contacts that apply to `member`, once the read model shows `expected`
/// (it follows the log by a batch).
pub async fn until_applying(client: &mut Client, account: &str, member: &str, expected: &[&str]) {
    let mut seen = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let page = list_for(client, account, member, 1, 100)
                .await
                .expect("list for a member");
            seen = page.contacts.iter().map(|c| c.name.clone()).collect();
            if seen == expected {
                assert_eq!(page.total_count, expected.len() as i64);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "the contacts applying to {member} stayed {seen:?}, not {expected:?}"
    );
}
