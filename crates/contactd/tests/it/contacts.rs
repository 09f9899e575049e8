//! The four RPCs working as a client expects: add, get, update, list; tenancy; client tokens.

use contactd_grpc::proto::{GetMessageContactRequest, ListMessageContactsRequest};
use tonic::Code;

use crate::support::*;

async fn an_added_contact_is_returned_as_get_returns_it(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let mut request = add_request("Tom");
    request.message_types = vec![
        "ProductMessage".into(),
        "ServiceMessage".into(),
        "ProductMessage".into(),
    ];
    let response = server
        .client
        .add_message_contact(as_account(ACCOUNT, request))
        .await
        .unwrap();
    let header = response
        .metadata()
        .get("x-acs-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.into_inner();
    assert_request_id(&body.request_id);
    assert_eq!(header, body.request_id);

    let added = body.contact.unwrap();
    assert!(added.contact_id.starts_with("c-") && added.contact_id.len() == 18);
    assert_eq!(added.name, "Tom");
    assert_eq!(added.email_address, "tom@example.com");
    assert_eq!(added.phone_number, "86-13912345678");
    assert_eq!(added.title, "TechnicalDirector");
    assert_eq!(added.message_types, ["ServiceMessage", "ProductMessage"]);
    assert_eq!(added.status, "Verifying");
    assert_eq!(added.active_email_address, "");
    assert_eq!(added.active_phone_number, "");
    assert_eq!(added.version, 1);
    assert_eq!(added.create_date, added.update_date);
    assert!(added.members.is_empty());

    let fetched = get(&mut server.client, ACCOUNT, &added.contact_id)
        .await
        .unwrap();
    assert_eq!(fetched, added);
    server.stop().await;
}

async fn an_update_changes_only_the_fields_sent_and_counts_its_events(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    let mut update = update_request(&added.contact_id);
    update.name = Some("TOM".into());
    update.email_address = Some("new@example.com".into());
    update.title = Some("CEO".into());
    let response = server
        .client
        .update_message_contact(as_account(ACCOUNT, update))
        .await
        .unwrap();
    let header = response
        .metadata()
        .get("x-acs-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(header, response.into_inner().request_id);

    let updated = get(&mut server.client, ACCOUNT, &added.contact_id)
        .await
        .unwrap();
    assert_eq!(updated.name, "TOM");
    assert_eq!(updated.email_address, "new@example.com");
    assert_eq!(updated.title, "CEO");
    assert_eq!(updated.phone_number, added.phone_number);
    assert_eq!(updated.message_types, added.message_types);
    assert_eq!(updated.version, 4, "one event per changed field");
    assert_eq!(updated.create_date, added.create_date);
    let seconds_and_nanos = |t: Option<prost_types::Timestamp>| t.map(|t| (t.seconds, t.nanos));
    assert!(seconds_and_nanos(updated.update_date) > seconds_and_nanos(added.update_date));
}

async fn an_update_that_changes_nothing_succeeds_and_appends_nothing(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    let mut update = update_request(&added.contact_id);
    update.name = Some("Tom".into());
    update.title = Some("TechnicalDirector".into());
    update.message_types = vec!["AccountExpenses".into()];
    server
        .client
        .update_message_contact(as_account(ACCOUNT, update))
        .await
        .unwrap();
    let after = get(&mut server.client, ACCOUNT, &added.contact_id)
        .await
        .unwrap();
    assert_eq!(after, added);
    let events = db.count("SELECT count(*) FROM events", &[]).await;
    assert_eq!(events, 1);
}

async fn an_empty_phone_number_removes_it(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    let mut update = update_request(&added.contact_id);
    update.phone_number = Some(String::new());
    server
        .client
        .update_message_contact(as_account(ACCOUNT, update))
        .await
        .unwrap();
    let after = get(&mut server.client, ACCOUNT, &added.contact_id)
        .await
        .unwrap();
    assert_eq!(
        (
            after.phone_number.as_str(),
            after.active_phone_number.as_str(),
            after.version
        ),
        ("", "", 2)
    );
}

async fn another_accounts_contact_is_simply_not_found(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let theirs = add(&mut server.client, OTHER_ACCOUNT, "Tom").await;
    let not_found = |status: &tonic::Status| {
        assert_error(
            status,
            Code::NotFound,
            "EntityNotExists.Contact",
            "This Contact does not exist.",
            None,
        )
    };
    not_found(
        &get(&mut server.client, ACCOUNT, &theirs.contact_id)
            .await
            .unwrap_err(),
    );
    let mut update = update_request(&theirs.contact_id);
    update.title = Some("CEO".into());
    not_found(
        &server
            .client
            .update_message_contact(as_account(ACCOUNT, update))
            .await
            .unwrap_err(),
    );
    let list = ListMessageContactsRequest {
        contact_id: theirs.contact_id.clone(),
        ..Default::default()
    };
    not_found(
        &server
            .client
            .list_message_contacts(as_account(ACCOUNT, list))
            .await
            .unwrap_err(),
    );
    let mine = server
        .client
        .list_message_contacts(as_account(ACCOUNT, ListMessageContactsRequest::default()))
        .await;
    assert_eq!(mine.unwrap().into_inner().total_count, 0);

    // The same name in another account is no conflict; "01" is not "1".
    add(&mut server.client, ACCOUNT, "Tom").await;
    add(&mut server.client, "01", "Tom").await;
    add(&mut server.client, "1", "Tom").await;
    let theirs_again = get(&mut server.client, OTHER_ACCOUNT, &theirs.contact_id)
        .await
        .unwrap();
    assert_eq!(theirs_again, theirs);
}

async fn lists_page_in_creation_order_and_report_the_total(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let names = [
        "Ann", "Bob", "Cid", "Dan", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Lou",
    ];
    let mut ids = Vec::new();
    for name in names {
        ids.push(add(&mut server.client, ACCOUNT, name).await.contact_id);
    }
    let page = |number: i32, size: i32| ListMessageContactsRequest {
        page_number: number,
        page_size: size,
        ..Default::default()
    };

    let first = server
        .client
        .list_message_contacts(as_account(ACCOUNT, page(0, 0)))
        .await
        .unwrap()
        .into_inner();
    assert_request_id(&first.request_id);
    assert_eq!(
        (first.total_count, first.page_number, first.page_size),
        (12, 1, 10)
    );
    assert_eq!(
        first
            .contacts
            .iter()
            .map(|c| c.contact_id.clone())
            .collect::<Vec<_>>(),
        ids[..10]
    );

    let second = server
        .client
        .list_message_contacts(as_account(ACCOUNT, page(2, 5)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        second
            .contacts
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["Fay", "Gus", "Hal", "Ivy", "Jon"]
    );

    let past_the_end = server
        .client
        .list_message_contacts(as_account(ACCOUNT, page(4, 5)))
        .await
        .unwrap()
        .into_inner();
    assert!(past_the_end.contacts.is_empty());
    assert_eq!(
        (
            past_the_end.total_count,
            past_the_end.page_number,
            past_the_end.page_size
        ),
        (12, 4, 5)
    );

    let all = server
        .client
        .list_message_contacts(as_account(ACCOUNT, page(1, 100)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.contacts.len(), 12);

    let one = ListMessageContactsRequest {
        contact_id: ids[3].clone(),
        ..Default::default()
    };
    let one = server
        .client
        .list_message_contacts(as_account(ACCOUNT, one))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((one.total_count, one.contacts[0].name.as_str()), (1, "Dan"));
}

async fn a_retried_add_with_its_client_token_returns_the_first_response_and_adds_nothing(
    db: TestDb,
) {
    let mut server = TestServer::start(&db).await;
    let mut request = add_request("Tom");
    request.client_token = "retry-me".into();
    let first = server
        .client
        .add_message_contact(as_account(ACCOUNT, request.clone()))
        .await
        .unwrap()
        .into_inner();
    let again = server
        .client
        .add_message_contact(as_account(ACCOUNT, request.clone()))
        .await
        .unwrap();
    assert_eq!(
        again
            .metadata()
            .get("x-acs-request-id")
            .unwrap()
            .to_str()
            .unwrap(),
        first.request_id
    );
    assert_eq!(again.into_inner(), first);
    let contacts = db.count("SELECT count(*) FROM contacts", &[]).await;
    assert_eq!(contacts, 1);

    // The token's scope is the account: another account's call with it is a call of its own.
    let theirs = server
        .client
        .add_message_contact(as_account(OTHER_ACCOUNT, request.clone()))
        .await
        .unwrap();
    assert_ne!(
        theirs.into_inner().contact.unwrap().contact_id,
        first.contact.unwrap().contact_id
    );

    request.title = "CEO".into();
    let status = server
        .client
        .add_message_contact(as_account(ACCOUNT, request))
        .await
        .unwrap_err();
    assert_error(
        &status,
        Code::InvalidArgument,
        "IdempotentParameterMismatch",
        "The request uses the same client token as a previous, but non-identical request.",
        None,
    );
}

async fn a_retried_update_changes_nothing_more_and_failed_calls_are_not_remembered(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    let mut bad = update_request(&added.contact_id);
    bad.title = Some("Boss".into());
    bad.client_token = "t-1".into();
    server
        .client
        .update_message_contact(as_account(ACCOUNT, bad.clone()))
        .await
        .unwrap_err();

    let mut good = update_request(&added.contact_id);
    good.title = Some("CEO".into());
    good.client_token = "t-1".into();
    let first = server
        .client
        .update_message_contact(as_account(ACCOUNT, good.clone()))
        .await
        .unwrap()
        .into_inner();
    // Someone else changes the title back; the retry must not change it again.
    let mut other = update_request(&added.contact_id);
    other.title = Some("Other".into());
    server
        .client
        .update_message_contact(as_account(ACCOUNT, other))
        .await
        .unwrap();
    let again = server
        .client
        .update_message_contact(as_account(ACCOUNT, good))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first);
    let contact = get(&mut server.client, ACCOUNT, &added.contact_id)
        .await
        .unwrap();
    assert_eq!((contact.title.as_str(), contact.version), ("Other", 3));

    // The token was taken by the successful call: the earlier failed request now mismatches.
    let status = server
        .client
        .update_message_contact(as_account(ACCOUNT, bad))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.metadata().get("x-acs-error-code").unwrap(),
        "IdempotentParameterMismatch"
    );
}

async fn the_server_finishes_calls_in_flight_and_stops_on_shutdown(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    let request = GetMessageContactRequest {
        contact_id: added.contact_id,
    };
    server
        .client
        .get_message_contact(as_account(ACCOUNT, request))
        .await
        .unwrap();
    let addr = server.addr;
    server.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens after shutdown"
    );
}

both_backends!(
    an_added_contact_is_returned_as_get_returns_it,
    an_update_changes_only_the_fields_sent_and_counts_its_events,
    an_update_that_changes_nothing_succeeds_and_appends_nothing,
    an_empty_phone_number_removes_it,
    another_accounts_contact_is_simply_not_found,
    lists_page_in_creation_order_and_report_the_total,
    a_retried_add_with_its_client_token_returns_the_first_response_and_adds_nothing,
    a_retried_update_changes_nothing_more_and_failed_calls_are_not_remembered,
    the_server_finishes_calls_in_flight_and_stops_on_shutdown,
);
