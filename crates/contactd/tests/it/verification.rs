//! Verification over gRPC: sends, the pending targets, confirmations with the code a send
//! issued, tries and expiry, cancellation, the send limits under races, and client tokens.
//! The code is derived here from the log under the test secret, as the dispatcher derives it;
//! the messages themselves are the subject of `dispatch.rs`.

use std::time::Duration;

use contactd_grpc::proto::{
    CancelMessageContactUpdateRequest, ConfirmMessageContactVerificationRequest,
    ListMessageContactVerificationsRequest, ListMessageContactVerificationsResponse,
    SendEmailVerificationForMessageContactRequest,
};
use tokio::task::JoinSet;
use tonic::{Code, Status};

use crate::support::*;

const EMAIL_SENT: &str = "EmailVerificationRequested";
const PHONE_SENT: &str = "PhoneVerificationRequested";

#[track_caller]
fn assert_wrong_code(status: &Status) {
    assert_error(
        status,
        Code::InvalidArgument,
        "InvalidParameter.VerificationCode",
        "The verification code is invalid.",
        Some("code"),
    );
}

#[track_caller]
fn assert_limit(status: &Status) {
    assert_error(
        status,
        Code::ResourceExhausted,
        "SendValidateCodeExceedsLimitForAccount",
        "For the same account, the number of verification codes sent exceeds the limit.",
        None,
    );
}

#[track_caller]
fn assert_not_pending(status: &Status) {
    assert_error(
        status,
        Code::NotFound,
        "EntityNotExists.Contact.Verification",
        "This contact verification does not exist.",
        None,
    );
}

#[track_caller]
fn assert_status_mismatch(status: &Status) {
    assert_error(
        status,
        Code::FailedPrecondition,
        "ContactStatusMismatchAction",
        "The status of the contact does not allow the specified operation.",
        None,
    );
}

async fn pending(client: &mut Client, contact_id: &str) -> Vec<String> {
    list(client, contact_id, 0, 0)
        .await
        .unwrap()
        .contact_verifications
        .into_iter()
        .map(|v| {
            assert_eq!(v.contact_id, contact_id);
            v.target
        })
        .collect()
}

async fn list(
    client: &mut Client,
    contact_id: &str,
    page_number: i32,
    page_size: i32,
) -> Result<ListMessageContactVerificationsResponse, Status> {
    let request = ListMessageContactVerificationsRequest {
        contact_id: contact_id.to_owned(),
        page_number,
        page_size,
    };
    Ok(client
        .list_message_contact_verifications(as_account(ACCOUNT, request))
        .await?
        .into_inner())
}

async fn cancel(
    client: &mut Client,
    contact_id: &str,
    email: Option<&str>,
    phone: Option<&str>,
) -> Result<String, Status> {
    let request = CancelMessageContactUpdateRequest {
        contact_id: contact_id.to_owned(),
        email_address: email.map(str::to_owned),
        phone_number: phone.map(str::to_owned),
        client_token: String::new(),
    };
    Ok(client
        .cancel_message_contact_update(as_account(ACCOUNT, request))
        .await?
        .into_inner()
        .request_id)
}

/// Adds Tom and sends a code for his email address; his id and the code.
async fn tom_sent_a_code(server: &mut TestServer, db: &TestDb) -> (String, String) {
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    send_email(&mut server.client, ACCOUNT, &id, "tom@example.com")
        .await
        .unwrap();
    let code = issued_code(db, &id, EMAIL_SENT).await;
    (id, code)
}

async fn events_of(db: &TestDb, contact_id: &str, event_type: &str) -> i64 {
    db.count(
        "SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = $2",
        &[contact_id, event_type],
    )
    .await
}

async fn the_code_a_send_issued_puts_the_email_address_in_effect_and_activates_the_contact(
    db: TestDb,
) {
    let mut server = TestServer::start(&db).await;
    let added = add(&mut server.client, ACCOUNT, "Tom").await;
    let id = &added.contact_id;
    assert_eq!(
        pending(&mut server.client, id).await,
        ["tom@example.com", "86-13912345678"],
        "a new contact's email address and phone number wait for verification"
    );

    let request_id = send_email(&mut server.client, ACCOUNT, id, "tom@example.com")
        .await
        .unwrap();
    assert_request_id(&request_id);
    let sent = get(&mut server.client, ACCOUNT, id).await.unwrap();
    assert_eq!((sent.status.as_str(), sent.version), ("Verifying", 2));

    let code = issued_code(&db, id, EMAIL_SENT).await;
    confirm(&mut server.client, ACCOUNT, id, "tom@example.com", &code)
        .await
        .unwrap();
    let active = get(&mut server.client, ACCOUNT, id).await.unwrap();
    assert_eq!(active.status, "Active");
    assert_eq!(active.active_email_address, "tom@example.com");
    assert_eq!(active.email_address, "tom@example.com");
    assert_eq!(active.version, 3);
    assert_ne!(active.update_date, added.update_date);
    assert_eq!(pending(&mut server.client, id).await, ["86-13912345678"]);

    // Single use: the address is no longer pending, so the same code confirms nothing.
    let again = confirm(&mut server.client, ACCOUNT, id, "tom@example.com", &code)
        .await
        .unwrap_err();
    assert_not_pending(&again);
    server.stop().await;
}

async fn a_phone_number_is_verified_by_its_code_and_leaves_the_status_alone(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    send_phone(&mut server.client, ACCOUNT, &id, "86-13912345678")
        .await
        .unwrap();
    let code = issued_code(&db, &id, PHONE_SENT).await;
    confirm(&mut server.client, ACCOUNT, &id, "86-13912345678", &code)
        .await
        .unwrap();
    let contact = get(&mut server.client, ACCOUNT, &id).await.unwrap();
    assert_eq!(contact.active_phone_number, "86-13912345678");
    assert_eq!(
        contact.status, "Verifying",
        "only an email address activates"
    );
    assert_eq!(pending(&mut server.client, &id).await, ["tom@example.com"]);
    server.stop().await;
}

async fn five_wrong_codes_burn_the_code_and_a_new_send_gives_a_fresh_one(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let (id, code) = tom_sent_a_code(&mut server, &db).await;
    for _ in 0..5 {
        let status = confirm(
            &mut server.client,
            ACCOUNT,
            &id,
            "tom@example.com",
            &wrong(&code),
        )
        .await
        .unwrap_err();
        assert_wrong_code(&status);
    }
    let burned = confirm(&mut server.client, ACCOUNT, &id, "tom@example.com", &code)
        .await
        .unwrap_err();
    assert_limit(&burned);
    let contact = get(&mut server.client, ACCOUNT, &id).await.unwrap();
    assert_eq!(
        (contact.status.as_str(), contact.version),
        ("Verifying", 2),
        "wrong tries change no contact"
    );

    send_email(&mut server.client, ACCOUNT, &id, "tom@example.com")
        .await
        .unwrap();
    let fresh = issued_code(&db, &id, EMAIL_SENT).await;
    confirm(&mut server.client, ACCOUNT, &id, "tom@example.com", &fresh)
        .await
        .unwrap();
    server.stop().await;
}

/// Sixteen wrong codes at once, spread over the servers of the database (two on PostgreSQL, the
/// one SQLite serves).
async fn concurrent_tries_across_the_servers_never_get_a_sixth(db: TestDb) {
    let mut servers = TestServer::start_up_to(&db, 2, |_| {}).await;
    let id = add(&mut servers[0].client, ACCOUNT, "Tom").await.contact_id;
    send_email(&mut servers[0].client, ACCOUNT, &id, "tom@example.com")
        .await
        .unwrap();
    let code = issued_code(&db, &id, EMAIL_SENT).await;

    let mut tries = JoinSet::new();
    for n in 0..16 {
        let mut client = servers[n % servers.len()].client.clone();
        let (id, guess) = (id.clone(), wrong(&code));
        tries.spawn(async move {
            confirm(&mut client, ACCOUNT, &id, "tom@example.com", &guess)
                .await
                .unwrap_err()
        });
    }
    let answers = tries.join_all().await;
    let wrong_codes = answers
        .iter()
        .filter(|s| s.code() == Code::InvalidArgument)
        .count();
    let refused = answers
        .iter()
        .filter(|s| s.code() == Code::ResourceExhausted)
        .count();
    assert_eq!(
        (wrong_codes, refused),
        (5, 11),
        "five tries compared, the rest refused"
    );
    let tries = db
        .count("SELECT CAST(tries AS BIGINT) FROM verification_codes", &[])
        .await;
    assert_eq!(tries, 5);
    for server in servers {
        server.stop().await;
    }
}

async fn an_expired_code_is_refused(db: TestDb) {
    let mut server = TestServer::start_with(&db, |s| s.verification.code_ttl_secs = 1).await;
    let (id, code) = tom_sent_a_code(&mut server, &db).await;
    // Let the code's second of life pass: time, not synchronisation, is what is tested.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let status = confirm(&mut server.client, ACCOUNT, &id, "tom@example.com", &code)
        .await
        .unwrap_err();
    assert_wrong_code(&status);
    assert_eq!(
        get(&mut server.client, ACCOUNT, &id).await.unwrap().status,
        "Verifying"
    );
    server.stop().await;
}

async fn a_newer_send_replaces_the_older_code(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    send_email(&mut server.client, ACCOUNT, &id, "tom@example.com")
        .await
        .unwrap();
    let older = issued_code(&db, &id, EMAIL_SENT).await;
    send_email(&mut server.client, ACCOUNT, &id, "tom@example.com")
        .await
        .unwrap();
    let newer = issued_code(&db, &id, EMAIL_SENT).await;
    if older != newer {
        let status = confirm(&mut server.client, ACCOUNT, &id, "tom@example.com", &older)
            .await
            .unwrap_err();
        assert_wrong_code(&status);
    }
    confirm(&mut server.client, ACCOUNT, &id, "tom@example.com", &newer)
        .await
        .unwrap();
    server.stop().await;
}

async fn cancelling_restores_the_verified_values_and_refuses_what_cannot_be_cancelled(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;

    let first_email = cancel(&mut server.client, &id, Some("tom@example.com"), None)
        .await
        .unwrap_err();
    assert_status_mismatch(&first_email);
    let nothing_named = cancel(&mut server.client, &id, None, None)
        .await
        .unwrap_err();
    assert_status_mismatch(&nothing_named);

    verify_email(&mut server.client, &db, &id, "tom@example.com").await;
    let mut update = update_request(&id);
    update.email_address = Some("new@example.com".into());
    server
        .client
        .update_message_contact(as_account(ACCOUNT, update))
        .await
        .unwrap();
    assert_eq!(
        pending(&mut server.client, &id).await,
        ["new@example.com", "86-13912345678"]
    );
    let not_the_pending_one = cancel(&mut server.client, &id, Some("tom@example.com"), None)
        .await
        .unwrap_err();
    assert_status_mismatch(&not_the_pending_one);
    let before = get(&mut server.client, ACCOUNT, &id).await.unwrap();

    cancel(
        &mut server.client,
        &id,
        Some("new@example.com"),
        Some("86-13912345678"),
    )
    .await
    .unwrap();
    let after = get(&mut server.client, ACCOUNT, &id).await.unwrap();
    assert_eq!(after.email_address, "tom@example.com");
    assert_eq!(after.active_email_address, "tom@example.com");
    assert_eq!(
        after.phone_number, "",
        "a first phone number falls back to none"
    );
    assert_eq!(after.status, "Active");
    assert_eq!(after.version, before.version + 2, "one event per target");
    assert!(pending(&mut server.client, &id).await.is_empty());

    let again = cancel(&mut server.client, &id, Some("new@example.com"), None)
        .await
        .unwrap_err();
    assert_status_mismatch(&again);
    server.stop().await;
}

async fn an_update_back_to_the_verified_address_ends_the_pending_change_and_its_code(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    verify_email(&mut server.client, &db, &id, "tom@example.com").await;
    let mut update = update_request(&id);
    update.email_address = Some("new@example.com".into());
    server
        .client
        .update_message_contact(as_account(ACCOUNT, update.clone()))
        .await
        .unwrap();
    send_email(&mut server.client, ACCOUNT, &id, "new@example.com")
        .await
        .unwrap();
    let code = issued_code(&db, &id, EMAIL_SENT).await;

    update.email_address = Some("tom@example.com".into());
    server
        .client
        .update_message_contact(as_account(ACCOUNT, update))
        .await
        .unwrap();
    assert_eq!(pending(&mut server.client, &id).await, ["86-13912345678"]);
    let status = confirm(&mut server.client, ACCOUNT, &id, "new@example.com", &code)
        .await
        .unwrap_err();
    assert_not_pending(&status);
    server.stop().await;
}

async fn sends_and_confirmations_for_what_is_not_pending_are_refused(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    let other = send_email(&mut server.client, ACCOUNT, &id, "other@example.com")
        .await
        .unwrap_err();
    assert_not_pending(&other);
    let other_phone = send_phone(&mut server.client, ACCOUNT, &id, "86-18612345678")
        .await
        .unwrap_err();
    assert_not_pending(&other_phone);
    // Pending, but no code was ever sent for it.
    let unsent = confirm(
        &mut server.client,
        ACCOUNT,
        &id,
        "tom@example.com",
        "123456",
    )
    .await
    .unwrap_err();
    assert_wrong_code(&unsent);
    let not_pending = confirm(&mut server.client, ACCOUNT, &id, "x@example.com", "123456")
        .await
        .unwrap_err();
    assert_not_pending(&not_pending);
    let contact = get(&mut server.client, ACCOUNT, &id).await.unwrap();
    assert_eq!(contact.version, 1, "nothing was appended");
    server.stop().await;
}

/// Sixteen sends at once, spread over the servers of the database (two on PostgreSQL, the one
/// SQLite serves).
async fn the_per_target_limit_holds_under_concurrent_sends_across_the_servers(db: TestDb) {
    let mut servers = TestServer::start_up_to(&db, 2, |_| {}).await;
    // Sixteen contacts share one address: the sends race on the target's window, not on a
    // contact's version.
    let mut ids = Vec::new();
    for n in 0..16_u8 {
        let name = format!("Tom{}", char::from(b'a' + n));
        let client = &mut servers[0].client;
        ids.push(add_with_email(client, ACCOUNT, &name, "same@example.com").await);
    }
    let mut sends = JoinSet::new();
    for (n, id) in ids.iter().enumerate() {
        let mut client = servers[n % servers.len()].client.clone();
        let id = id.clone();
        sends.spawn(async move { send_email(&mut client, ACCOUNT, &id, "same@example.com").await });
    }
    let answers = sends.join_all().await;
    let sent = answers.iter().filter(|a| a.is_ok()).count();
    for refused in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert_limit(refused);
    }
    assert_eq!(sent, 10, "ten sends per target in any minute");
    let requested = db
        .count(
            "SELECT count(*) FROM events WHERE event_type = $1",
            &[EMAIL_SENT],
        )
        .await;
    assert_eq!(requested, 10, "a refused send appends nothing");
    // Another target of the account has a window of its own.
    send_phone(&mut servers[0].client, ACCOUNT, &ids[0], "86-13912345678")
        .await
        .unwrap();
    for server in servers {
        server.stop().await;
    }
}

async fn the_daily_limit_counts_every_send_of_the_account(db: TestDb) {
    let mut server =
        TestServer::start_with(&db, |s| s.verification.send_limit_per_account_day = 3).await;
    let mut ids = Vec::new();
    for name in ["Ann", "Bob"] {
        ids.push(add(&mut server.client, ACCOUNT, name).await.contact_id);
    }
    send_email(&mut server.client, ACCOUNT, &ids[0], "ann@example.com")
        .await
        .unwrap();
    send_phone(&mut server.client, ACCOUNT, &ids[0], "86-13912345678")
        .await
        .unwrap();
    send_email(&mut server.client, ACCOUNT, &ids[1], "bob@example.com")
        .await
        .unwrap();
    let fourth = send_phone(&mut server.client, ACCOUNT, &ids[1], "86-13912345678")
        .await
        .unwrap_err();
    assert_limit(&fourth);
    // Another account's day is its own.
    let other = add(&mut server.client, OTHER_ACCOUNT, "Cid")
        .await
        .contact_id;
    send_email(&mut server.client, OTHER_ACCOUNT, &other, "cid@example.com")
        .await
        .unwrap();
    server.stop().await;
}

async fn pending_targets_are_listed_page_by_page(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    let first = list(&mut server.client, &id, 1, 1).await.unwrap();
    let second = list(&mut server.client, &id, 2, 1).await.unwrap();
    let past = list(&mut server.client, &id, 3, 1).await.unwrap();
    let targets = |page: &ListMessageContactVerificationsResponse| -> Vec<String> {
        page.contact_verifications
            .iter()
            .map(|v| v.target.clone())
            .collect()
    };
    assert_eq!(targets(&first), ["tom@example.com"]);
    assert_eq!(targets(&second), ["86-13912345678"]);
    assert!(targets(&past).is_empty());
    for page in [&first, &second, &past] {
        assert_eq!((page.total_count, page.page_size), (2, 1));
        assert_request_id(&page.request_id);
    }
    assert_eq!(
        (first.page_number, second.page_number, past.page_number),
        (1, 2, 3)
    );
    let defaults = list(&mut server.client, &id, 0, 0).await.unwrap();
    assert_eq!((defaults.page_number, defaults.page_size), (1, 10));
    server.stop().await;
}

async fn client_tokens_make_sends_cancels_and_confirmations_safe_to_retry(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    let send = SendEmailVerificationForMessageContactRequest {
        contact_id: id.clone(),
        email_address: "tom@example.com".into(),
        client_token: "send-1".into(),
    };
    let mut answers = Vec::new();
    for _ in 0..2 {
        answers.push(
            server
                .client
                .send_email_verification_for_message_contact(as_account(ACCOUNT, send.clone()))
                .await
                .unwrap()
                .into_inner()
                .request_id,
        );
    }
    assert_eq!(
        answers[0], answers[1],
        "the retry answers the first response"
    );
    assert_eq!(events_of(&db, &id, EMAIL_SENT).await, 1, "one send");
    let mismatch = server
        .client
        .send_email_verification_for_message_contact(as_account(
            ACCOUNT,
            SendEmailVerificationForMessageContactRequest {
                email_address: "x@example.com".into(),
                ..send
            },
        ))
        .await
        .unwrap_err();
    assert_error(
        &mismatch,
        Code::InvalidArgument,
        "IdempotentParameterMismatch",
        "The request uses the same client token as a previous, but non-identical request.",
        None,
    );

    let code = issued_code(&db, &id, EMAIL_SENT).await;
    let request = ConfirmMessageContactVerificationRequest {
        contact_id: id.clone(),
        target: "tom@example.com".into(),
        code,
        client_token: "confirm-1".into(),
    };
    let mut confirmed = Vec::new();
    for _ in 0..2 {
        confirmed.push(
            server
                .client
                .confirm_message_contact_verification(as_account(ACCOUNT, request.clone()))
                .await
                .expect("a retried confirmation succeeds as the first did")
                .into_inner()
                .request_id,
        );
    }
    assert_eq!(confirmed[0], confirmed[1]);
    assert_eq!(events_of(&db, &id, "EmailAddressVerified").await, 1);

    let mut update = update_request(&id);
    update.email_address = Some("new@example.com".into());
    server
        .client
        .update_message_contact(as_account(ACCOUNT, update))
        .await
        .unwrap();
    let cancel_request = CancelMessageContactUpdateRequest {
        contact_id: id.clone(),
        email_address: Some("new@example.com".into()),
        phone_number: None,
        client_token: "cancel-1".into(),
    };
    for _ in 0..2 {
        server
            .client
            .cancel_message_contact_update(as_account(ACCOUNT, cancel_request.clone()))
            .await
            .expect("a retried cancellation succeeds as the first did");
    }
    assert_eq!(events_of(&db, &id, "EmailAddressChangeCancelled").await, 1);
    server.stop().await;
}

async fn another_accounts_contact_has_no_verifications(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let (id, code) = tom_sent_a_code(&mut server, &db).await;
    let no_contact = |status: Status| {
        assert_error(
            &status,
            Code::NotFound,
            "EntityNotExists.Contact",
            "This Contact does not exist.",
            None,
        )
    };
    no_contact(
        send_email(&mut server.client, OTHER_ACCOUNT, &id, "tom@example.com")
            .await
            .unwrap_err(),
    );
    no_contact(
        confirm(
            &mut server.client,
            OTHER_ACCOUNT,
            &id,
            "tom@example.com",
            &code,
        )
        .await
        .unwrap_err(),
    );
    let request = ListMessageContactVerificationsRequest {
        contact_id: id.clone(),
        ..Default::default()
    };
    no_contact(
        server
            .client
            .list_message_contact_verifications(as_account(OTHER_ACCOUNT, request))
            .await
            .unwrap_err(),
    );
    let tries = db
        .count("SELECT CAST(tries AS BIGINT) FROM verification_codes", &[])
        .await;
    assert_eq!(tries, 0, "a stranger's call never reaches the code");
    server.stop().await;
}

both_backends!(
    the_code_a_send_issued_puts_the_email_address_in_effect_and_activates_the_contact,
    a_phone_number_is_verified_by_its_code_and_leaves_the_status_alone,
    five_wrong_codes_burn_the_code_and_a_new_send_gives_a_fresh_one,
    concurrent_tries_across_the_servers_never_get_a_sixth,
    an_expired_code_is_refused,
    a_newer_send_replaces_the_older_code,
    cancelling_restores_the_verified_values_and_refuses_what_cannot_be_cancelled,
    an_update_back_to_the_verified_address_ends_the_pending_change_and_its_code,
    sends_and_confirmations_for_what_is_not_pending_are_refused,
    the_per_target_limit_holds_under_concurrent_sends_across_the_servers,
    the_daily_limit_counts_every_send_of_the_account,
    pending_targets_are_listed_page_by_page,
    client_tokens_make_sends_cancels_and_confirmations_safe_to_retry,
    another_accounts_contact_has_no_verifications,
);
