//! The contact's lifecycle over gRPC: the directory mirror, bindings and their limits,
//! inheritance through the tree, and deletes (at once, and in the background without NATS).

use std::time::Duration;

use contactd_grpc::proto::{
    ListMessageContactEventsRequest, RemoveFolderRequest, RemoveMemberRequest,
    UpdateMessageContactRequest,
};
use tonic::Code;

use crate::lifecycle_support::*;
use crate::support::*;

async fn the_directory_is_created_on_first_use_and_mirrors_the_tree(db: TestDb) {
    let server = TestServer::start(&db).await;
    let mut directory = directory_client(&server).await;
    let root = two_levels(&mut directory, ACCOUNT).await;
    assert!(root.starts_with("rd-") && root.len() == 13, "{root}");
    let tree = directory
        .get_resource_directory(as_account(
            ACCOUNT,
            contactd_grpc::proto::GetResourceDirectoryRequest {},
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tree.resource_directory_id, root, "the id stays");
    let folders: Vec<_> = tree
        .folders
        .iter()
        .map(|f| (f.folder_id.as_str(), f.parent_id.as_str()))
        .collect();
    assert_eq!(
        folders,
        [
            (folder("A").as_str(), ""),
            (folder("B").as_str(), folder("A").as_str())
        ]
    );
    let members: Vec<_> = tree
        .members
        .iter()
        .map(|m| (m.account_id.as_str(), m.folder_id.as_str()))
        .collect();
    assert_eq!(
        members,
        [
            (MEMBER_DEEP, folder("B").as_str()),
            (MEMBER_TOP, folder("A").as_str()),
            (MEMBER_ROOT, "")
        ]
    );
    // Another account has a directory of its own.
    assert_ne!(directory_id(&mut directory, OTHER_ACCOUNT).await, root);

    // The rules of the tree.
    let status = register_folder(&mut directory, ACCOUNT, &folder("C"), &folder("Z"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(error_code(&status), "EntityNotExists.Folder");
    let status = register_folder(&mut directory, ACCOUNT, &folder("A"), "")
        .await
        .unwrap_err();
    assert_eq!(error_code(&status), "EntityAlreadyExists.Folder");
    assert_eq!(status.code(), Code::AlreadyExists);
    let status = register_member(&mut directory, ACCOUNT, MEMBER_ROOT, &folder("A"))
        .await
        .unwrap_err();
    assert_eq!(error_code(&status), "EntityAlreadyExists.Member");
    let status = move_member(&mut directory, ACCOUNT, "1999999999999999", "")
        .await
        .unwrap_err();
    assert_eq!(error_code(&status), "EntityNotExists.Member");
    let status = register_folder(&mut directory, ACCOUNT, "fd-short", "")
        .await
        .unwrap_err();
    assert_eq!(error_code(&status), "InvalidParameter.FolderId");
    let status = register_member(&mut directory, ACCOUNT, "12345", "")
        .await
        .unwrap_err();
    assert_eq!(error_code(&status), "InvalidParameter.AccountId");
    let remove = RemoveFolderRequest {
        folder_id: folder("A"),
    };
    let status = directory
        .remove_folder(as_account(ACCOUNT, remove))
        .await
        .unwrap_err();
    assert_eq!(error_code(&status), "FolderNotEmpty");
    assert_eq!(status.code(), Code::FailedPrecondition);
    // Another account's folder is not the caller's.
    let status = register_member(&mut directory, OTHER_ACCOUNT, MEMBER_DEEP, &folder("A"))
        .await
        .unwrap_err();
    assert_eq!(error_code(&status), "EntityNotExists.Folder");
    server.stop().await;
}

async fn bindings_answer_each_target_and_binding_twice_changes_nothing(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut directory = directory_client(&server).await;
    let root = two_levels(&mut directory, ACCOUNT).await;
    let tom = add(&mut server.client, ACCOUNT, "Tom").await;
    let id = tom.contact_id.as_str();

    let answer = associate(&mut server.client, ACCOUNT, id, &[&root, &folder("A")])
        .await
        .unwrap();
    assert_request_id(&answer.request_id);
    let targets: Vec<_> = answer
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(targets, [root.as_str(), folder("A").as_str()]);
    assert!(answer.members.iter().all(|m| m.contact_id == id));
    let bound_at = answer.members[1].modify_date.expect("a date");
    let contact = get(&mut server.client, ACCOUNT, id).await.unwrap();
    assert_eq!(contact.members, [root.clone(), folder("A")]);
    assert_eq!(contact.version, 2);
    assert_eq!(contact.associated_date, Some(bound_at));

    // Bound already: nothing changes, and the answer says when it was bound.
    let again = associate(&mut server.client, ACCOUNT, id, &[&folder("A")])
        .await
        .unwrap();
    assert_eq!(again.members[0].modify_date, Some(bound_at));
    // Not bound: unbinding changes nothing either.
    disassociate(&mut server.client, ACCOUNT, id, &[MEMBER_DEEP])
        .await
        .unwrap();
    assert_eq!(
        get(&mut server.client, ACCOUNT, id).await.unwrap().version,
        2
    );

    let answer = disassociate(&mut server.client, ACCOUNT, id, &[&folder("A")])
        .await
        .unwrap();
    assert_eq!(answer.members[0].member_id, folder("A"));
    let contact = get(&mut server.client, ACCOUNT, id).await.unwrap();
    assert_eq!((contact.members, contact.version), (vec![root], 3));
    server.stop().await;
}

async fn bad_targets_are_refused_with_the_contract_errors(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut directory = directory_client(&server).await;
    let root = two_levels(&mut directory, ACCOUNT).await;
    let other_root = directory_id(&mut directory, OTHER_ACCOUNT).await;
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    let six: Vec<String> = (0..6).map(|n| folder(&n.to_string())).collect();
    let six: Vec<&str> = six.iter().map(String::as_str).collect();
    let cases: [(&[&str], Code, &str, &str); 6] = [
        (
            &[],
            Code::InvalidArgument,
            "InvalidParameter.Members",
            "The Members is invalid.",
        ),
        (
            &six,
            Code::InvalidArgument,
            "InvalidParameter.Members",
            "The Members is invalid.",
        ),
        (
            &["fd-1"],
            Code::InvalidArgument,
            "InvalidParameter.Members",
            "The Members is invalid.",
        ),
        (
            &[MEMBER_DEEP, MEMBER_DEEP],
            Code::InvalidArgument,
            "InvalidParameter.Members.Duplicate",
            "The Members contains duplicate values.",
        ),
        (
            &["fd-ZZZZZZZZZZ"],
            Code::FailedPrecondition,
            "InvalidMember",
            "The member does not exist in the resource directory.",
        ),
        (
            &[&other_root],
            Code::FailedPrecondition,
            "InvalidMember",
            "The member does not exist in the resource directory.",
        ),
    ];
    for (members, code, reason, message) in cases {
        let status = associate(&mut server.client, ACCOUNT, &id, members)
            .await
            .unwrap_err();
        let field = reason.starts_with("InvalidParameter").then_some("members");
        assert_error(&status, code, reason, message, field);
        let status = disassociate(&mut server.client, ACCOUNT, &id, members)
            .await
            .unwrap_err();
        assert_eq!(error_code(&status), reason, "disassociate {members:?}");
    }
    let status = associate(&mut server.client, ACCOUNT, "", &[&root])
        .await
        .unwrap_err();
    assert_eq!(error_code(&status), "MissingParameter.ContactId");
    let status = associate(&mut server.client, OTHER_ACCOUNT, &id, &[&other_root])
        .await
        .unwrap_err();
    assert_eq!(error_code(&status), "EntityNotExists.Contact");
    assert_eq!(
        get(&mut server.client, ACCOUNT, &id).await.unwrap().version,
        1,
        "nothing was bound"
    );

    // Ten targets at most.
    for n in 0..10 {
        register_folder(&mut directory, ACCOUNT, &folder(&format!("L{n}")), "")
            .await
            .unwrap();
    }
    let ten: Vec<String> = (0..10).map(|n| folder(&format!("L{n}"))).collect();
    for five in ten.chunks(5) {
        let five: Vec<&str> = five.iter().map(String::as_str).collect();
        associate(&mut server.client, ACCOUNT, &id, &five)
            .await
            .unwrap();
    }
    let status = associate(&mut server.client, ACCOUNT, &id, &[&root])
        .await
        .unwrap_err();
    assert_error(
        &status,
        Code::ResourceExhausted,
        "LimitExceeded.ContactMembers",
        "The maximum number of contact members exceeds the limit.",
        None,
    );
    // Bound already, so within the limit.
    associate(&mut server.client, ACCOUNT, &id, &[&ten[0]])
        .await
        .unwrap();
    server.stop().await;
}

async fn two_processes_binding_the_eleventh_target_at_once_let_exactly_one_win(db: TestDb) {
    let (first, second) = (Process::start(&db), Process::start(&db));
    let (mut one, mut two) = (first.client().await, second.client().await);
    let mut directory = DirectoryClient::connect(first.endpoint()).await.unwrap();
    directory_id(&mut directory, ACCOUNT).await;
    for n in 0..11 {
        register_folder(&mut directory, ACCOUNT, &folder(&format!("L{n}")), "")
            .await
            .unwrap();
    }
    let targets: Vec<String> = (0..11).map(|n| folder(&format!("L{n}"))).collect();
    for round in 0..5 {
        let name = format!("Racer{}", char::from(b'a' + round));
        let id = add(&mut one, ACCOUNT, &name).await.contact_id;
        for nine in [&targets[0..5], &targets[5..9]] {
            let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
            associate(&mut one, ACCOUNT, &id, &nine).await.unwrap();
        }
        let (tenth, eleventh) = ([targets[9].as_str()], [targets[10].as_str()]);
        let (a, b) = tokio::join!(
            associate(&mut one, ACCOUNT, &id, &tenth),
            associate(&mut two, ACCOUNT, &id, &eleventh),
        );
        let won = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {a:?} {b:?}");
        let lost = a.err().or(b.err()).expect("one lost");
        assert_eq!(error_code(&lost), "LimitExceeded.ContactMembers");
        let contact = get(&mut two, ACCOUNT, &id).await.unwrap();
        assert_eq!(contact.members.len(), 10);
    }
}

async fn contacts_apply_through_two_folder_levels_and_follow_a_member_that_moves(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut directory = directory_client(&server).await;
    let root = two_levels(&mut directory, ACCOUNT).await;
    let client = &mut server.client;
    let mut ids = Vec::new();
    for (name, target) in [
        ("Root", root.clone()),
        ("Alpha", folder("A")),
        ("Beta", folder("B")),
        ("Direct", MEMBER_DEEP.to_owned()),
        ("Unbound", String::new()),
    ] {
        let id = add(client, ACCOUNT, name).await.contact_id;
        if !target.is_empty() {
            associate(client, ACCOUNT, &id, &[&target]).await.unwrap();
        }
        ids.push(id);
    }
    until_applying(
        client,
        ACCOUNT,
        MEMBER_DEEP,
        &["Root", "Alpha", "Beta", "Direct"],
    )
    .await;
    until_applying(client, ACCOUNT, MEMBER_TOP, &["Root", "Alpha"]).await;
    until_applying(client, ACCOUNT, MEMBER_ROOT, &["Root"]).await;
    // A folder or the root: the contacts bound to it or above it.
    until_applying(client, ACCOUNT, &folder("B"), &["Root", "Alpha", "Beta"]).await;
    until_applying(client, ACCOUNT, &root, &["Root"]).await;

    // Pages in the list's order, with the total.
    let page = list_for(client, ACCOUNT, MEMBER_DEEP, 2, 3).await.unwrap();
    assert_eq!(page.total_count, 4);
    let names: Vec<_> = page.contacts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Direct"]);
    let past = list_for(client, ACCOUNT, MEMBER_DEEP, 3, 3).await.unwrap();
    assert_eq!((past.total_count, past.contacts.len()), (4, 0));

    // The date it came to apply: the binding's, or the member's joining, whichever is later.
    let page = list_for(client, ACCOUNT, MEMBER_DEEP, 1, 10).await.unwrap();
    let direct = &page.contacts[3];
    assert_eq!(direct.members, [MEMBER_DEEP]);
    assert!(direct.associated_date.is_some());

    // Moving to the root swaps the inherited contacts; moving back restores them.
    move_member(&mut directory, ACCOUNT, MEMBER_DEEP, "")
        .await
        .unwrap();
    until_applying(client, ACCOUNT, MEMBER_DEEP, &["Root", "Direct"]).await;
    move_member(&mut directory, ACCOUNT, MEMBER_DEEP, &folder("B"))
        .await
        .unwrap();
    until_applying(
        client,
        ACCOUNT,
        MEMBER_DEEP,
        &["Root", "Alpha", "Beta", "Direct"],
    )
    .await;
    // A member joining a folder gets its contacts.
    register_member(&mut directory, ACCOUNT, "1000000000000009", &folder("B"))
        .await
        .unwrap();
    until_applying(
        client,
        ACCOUNT,
        "1000000000000009",
        &["Root", "Alpha", "Beta"],
    )
    .await;

    // Unbinding takes the contact out of every member below.
    disassociate(client, ACCOUNT, &ids[1], &[&folder("A")])
        .await
        .unwrap();
    until_applying(client, ACCOUNT, MEMBER_TOP, &["Root"]).await;
    until_applying(client, ACCOUNT, MEMBER_DEEP, &["Root", "Beta", "Direct"]).await;

    // Unknown nodes, and another account's, are not members of the caller's directory.
    for unknown in [folder("Z").as_str(), "1999999999999999", "rd-ZZZZZZZZZZ"] {
        let status = list_for(client, ACCOUNT, unknown, 1, 10).await.unwrap_err();
        assert_eq!(error_code(&status), "EntityNotExists.Member", "{unknown}");
    }
    let status = list_for(client, OTHER_ACCOUNT, &root, 1, 10)
        .await
        .unwrap_err();
    assert_eq!(error_code(&status), "EntityNotExists.Member");
    let status = list_for(client, ACCOUNT, "fd-", 1, 10).await.unwrap_err();
    assert_eq!(error_code(&status), "InvalidParameter.Member");
    server.stop().await;
}

async fn removing_a_folder_or_member_unbinds_it_from_every_contact(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut directory = directory_client(&server).await;
    two_levels(&mut directory, ACCOUNT).await;
    register_folder(&mut directory, ACCOUNT, &folder("E"), &folder("A"))
        .await
        .unwrap();
    let client = &mut server.client;
    let tom = add(client, ACCOUNT, "Tom").await.contact_id;
    let ann = add(client, ACCOUNT, "Ann").await.contact_id;
    for id in [&tom, &ann] {
        associate(
            client,
            ACCOUNT,
            id,
            &[&folder("E"), MEMBER_ROOT, &folder("A")],
        )
        .await
        .unwrap();
    }
    let remove = RemoveFolderRequest {
        folder_id: folder("E"),
    };
    directory
        .remove_folder(as_account(ACCOUNT, remove))
        .await
        .unwrap();
    let remove = RemoveMemberRequest {
        account_id: MEMBER_ROOT.to_owned(),
    };
    directory
        .remove_member(as_account(ACCOUNT, remove))
        .await
        .unwrap();
    for id in [&tom, &ann] {
        until(
            "the removed targets are unbound",
            Duration::from_secs(30),
            async || {
                let contact = get(client, ACCOUNT, id).await.unwrap();
                (contact.members == [folder("A")]).then_some(())
            },
        )
        .await;
    }
    // An event per contact and removal, caused by the removal's event.
    let removal = db.uuid_text("r.event_id");
    let sql = format!(
        "SELECT u.causation_id, {removal} FROM events u JOIN events r ON {removal} = u.causation_id \
         WHERE u.event_type = 'MembersDisassociated' \
           AND r.event_type IN ('FolderRemoved', 'MemberRemoved') \
         ORDER BY u.global_position"
    );
    let causes: Vec<(String, String)> = db.fetch_all(&sql, &[]).await;
    assert_eq!(causes.len(), 4, "{causes:?}");
    let status = list_for(client, ACCOUNT, &folder("E"), 1, 10)
        .await
        .unwrap_err();
    assert_eq!(error_code(&status), "EntityNotExists.Member");
    // The contacts of the removed member no longer apply to it.
    let status = list_for(client, ACCOUNT, MEMBER_ROOT, 1, 10)
        .await
        .unwrap_err();
    assert_eq!(error_code(&status), "EntityNotExists.Member");
    server.stop().await;
}

async fn a_deleted_contact_frees_its_name_and_quota_and_keeps_its_history(db: TestDb) {
    let mut server = TestServer::start_with(&db, |s| s.max_contacts = 2).await;
    let mut audit = audit_client(&server).await;
    let client = &mut server.client;
    let tom = add(client, ACCOUNT, "Tom").await.contact_id;
    add(client, ACCOUNT, "Ann").await;
    let full = client
        .add_message_contact(as_account(ACCOUNT, add_request("Bob")))
        .await
        .unwrap_err();
    assert_eq!(error_code(&full), "LimitExceeded.Contacts");

    assert_eq!(
        delete(client, ACCOUNT, &tom, None).await.unwrap(),
        "Deleted"
    );
    for status in [
        get(client, ACCOUNT, &tom).await.unwrap_err(),
        client
            .update_message_contact(as_account(
                ACCOUNT,
                UpdateMessageContactRequest {
                    contact_id: tom.clone(),
                    title: Some("CEO".into()),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err(),
        delete(client, ACCOUNT, &tom, None).await.unwrap_err(),
        delete(client, ACCOUNT, &tom, Some(false))
            .await
            .unwrap_err(),
        deletion_status(client, ACCOUNT, &tom).await.unwrap_err(),
        send_email(client, ACCOUNT, &tom, "tom@example.com")
            .await
            .unwrap_err(),
    ] {
        assert_error(
            &status,
            Code::NotFound,
            "EntityNotExists.Contact",
            "This Contact does not exist.",
            None,
        );
    }
    // The name is free again, and the quota counts it no more.
    let again = add(client, ACCOUNT, "Tom").await;
    assert_ne!(again.contact_id, tom);

    // The history stays readable, ending with the delete.
    let events = audit
        .list_message_contact_events(as_account(
            ACCOUNT,
            ListMessageContactEventsRequest {
                contact_id: tom.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["MessageContactAdded", "MessageContactDeleted"]);
    // Another account cannot delete it.
    let ann_of_other = add(client, OTHER_ACCOUNT, "Ann").await.contact_id;
    let status = delete(client, ACCOUNT, &ann_of_other, None)
        .await
        .unwrap_err();
    assert_eq!(error_code(&status), "EntityNotExists.Contact");
    let status = delete(client, ACCOUNT, "c-x", None).await.unwrap_err();
    assert_eq!(error_code(&status), "InvalidParameter.ContactId");
    let status = delete(client, ACCOUNT, "", None).await.unwrap_err();
    assert_eq!(error_code(&status), "MissingParameter.ContactId");
    server.stop().await;
}

async fn without_nats_an_asynchronous_delete_completes_locally(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut directory = directory_client(&server).await;
    let root = two_levels(&mut directory, ACCOUNT).await;
    let client = &mut server.client;
    let tom = add(client, ACCOUNT, "Tom").await.contact_id;
    associate(client, ACCOUNT, &tom, &[&root]).await.unwrap();
    until_applying(client, ACCOUNT, MEMBER_DEEP, &["Tom"]).await;
    assert_eq!(
        delete(client, ACCOUNT, &tom, Some(false)).await.unwrap(),
        "Deleting"
    );
    until(
        "the delete completes",
        Duration::from_secs(30),
        async || {
            get(client, ACCOUNT, &tom)
                .await
                .err()
                .map(|s| error_code(&s))
        },
    )
    .await;
    assert_eq!(
        error_code(&deletion_status(client, ACCOUNT, &tom).await.unwrap_err()),
        "EntityNotExists.Contact"
    );
    until_applying(client, ACCOUNT, MEMBER_DEEP, &[]).await;
    // Started and ended by events, the end caused by the start.
    let sql = format!(
        "SELECT {}, d.causation_id FROM events s \
         JOIN events d ON d.stream_id = s.stream_id AND d.event_type = 'MessageContactDeleted' \
         WHERE s.stream_id = $1 AND s.event_type = 'ContactDeletionStarted'",
        db.uuid_text("s.event_id")
    );
    let (started, cause): (String, String) = db.fetch_one(&sql, &[&tom]).await;
    assert_eq!(started, cause);
    // Nothing is left to do.
    until(
        "no lifecycle job is left",
        Duration::from_secs(30),
        async || {
            let left = db.count("SELECT count(*) FROM lifecycle_jobs", &[]).await;
            (left == 0).then_some(())
        },
    )
    .await;
    server.stop().await;
}

async fn deletes_and_bindings_are_safe_to_retry_under_a_client_token(db: TestDb) {
    use contactd_grpc::proto::{AssociateMembersRequest, DeleteMessageContactRequest};

    let mut server = TestServer::start(&db).await;
    let mut directory = directory_client(&server).await;
    let root = two_levels(&mut directory, ACCOUNT).await;
    let client = &mut server.client;
    let id = add(client, ACCOUNT, "Tom").await.contact_id;
    let bind = AssociateMembersRequest {
        contact_id: id.clone(),
        members: vec![root.clone()],
        client_token: "bind-once".into(),
    };
    let first = client
        .associate_members(as_account(ACCOUNT, bind.clone()))
        .await
        .unwrap()
        .into_inner();
    let retry = client
        .associate_members(as_account(ACCOUNT, bind.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry, first, "the first answer, request id included");
    let other = AssociateMembersRequest {
        members: vec![folder("A")],
        ..bind
    };
    let status = client
        .associate_members(as_account(ACCOUNT, other))
        .await
        .unwrap_err();
    assert_eq!(error_code(&status), "IdempotentParameterMismatch");

    let remove = DeleteMessageContactRequest {
        contact_id: id.clone(),
        retain_contact_in_members: None,
        client_token: "delete-once".into(),
    };
    let first = client
        .delete_message_contact(as_account(ACCOUNT, remove.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.status, "Deleted");
    let retry = client
        .delete_message_contact(as_account(ACCOUNT, remove.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        retry, first,
        "a retried delete answers Deleted again, not NotFound"
    );
    let status = client
        .delete_message_contact(as_account(
            ACCOUNT,
            DeleteMessageContactRequest {
                retain_contact_in_members: Some(true),
                ..remove
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        error_code(&status),
        "IdempotentParameterMismatch",
        "a field sent differs from one not sent"
    );
    server.stop().await;
}

async fn the_directory_s_history_is_in_the_account_s_log(db: TestDb) {
    let server = TestServer::start(&db).await;
    let mut directory = directory_client(&server).await;
    two_levels(&mut directory, ACCOUNT).await;
    move_member(&mut directory, ACCOUNT, MEMBER_TOP, "")
        .await
        .unwrap();
    let mut audit = audit_client(&server).await;
    let mut stream = open_stream(&mut audit, ACCOUNT, 0).await.unwrap();
    let mut types = Vec::new();
    while types.len() < 7 {
        let event = stream.message().await.unwrap().expect("an event");
        assert_eq!(event.stream_id, format!("directory-{ACCOUNT}"));
        assert!(
            event.payload_json.starts_with('{'),
            "{}",
            event.payload_json
        );
        types.push(event.event_type);
    }
    assert_eq!(
        types,
        [
            "ResourceDirectoryCreated",
            "FolderRegistered",
            "FolderRegistered",
            "MemberRegistered",
            "MemberRegistered",
            "MemberRegistered",
            "MemberMoved"
        ]
    );
    drop(stream);
    server.stop().await;
}

both_backends!(
    the_directory_is_created_on_first_use_and_mirrors_the_tree,
    bindings_answer_each_target_and_binding_twice_changes_nothing,
    bad_targets_are_refused_with_the_contract_errors,
    contacts_apply_through_two_folder_levels_and_follow_a_member_that_moves,
    removing_a_folder_or_member_unbinds_it_from_every_contact,
    a_deleted_contact_frees_its_name_and_quota_and_keeps_its_history,
    without_nats_an_asynchronous_delete_completes_locally,
    deletes_and_bindings_are_safe_to_retry_under_a_client_token,
    the_directory_s_history_is_in_the_account_s_log,
);

postgres_only!(
    // Two processes on one database: SQLite's store serves one process (processes.rs shows a
    // second one refused).
    two_processes_binding_the_eleventh_target_at_once_let_exactly_one_win,
);
