//! Who may call and what they may do, end to end: TLS with certificates made in the test and
//! reloaded while the server runs, mutual TLS naming the principal, bearer tokens good and
//! bad, RAM-style policies over every RPC of the four services, and a policy file changed
//! while the server runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use contactd::settings::{IdentityMode, ServeSettings};
use contactd_access::Rpc;
use contactd_grpc::proto::message_contact_audit_service_client::MessageContactAuditServiceClient;
use contactd_grpc::proto::message_contact_service_client::MessageContactServiceClient;
use contactd_grpc::proto::*;
use contactd_testkit::pki::{ClientName, TestCa, TokenIssuer, unix_now, unsigned_token};
use prost::Message;
use serde_json::json;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request};

use crate::raw;
use crate::support::*;

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "contactd";
const UNAUTHENTICATED: &str = "The caller identity is missing or invalid.";

/// The endpoint of a TLS server at `addr` whose certificate chains to `ca`, presenting
/// `identity` if given.
fn tls(addr: SocketAddr, ca: &str, identity: Option<(&str, &str)>) -> Endpoint {
    let mut config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        config = config.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://localhost:{}", addr.port()))
        .expect("endpoint")
        .tls_config(config)
        .expect("tls config")
        .connect_timeout(Duration::from_secs(5))
}

/// Writes `contents` to `name` in `dir`, replacing it at once (as a deployment does).
fn replace(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    let staged = dir.join(format!(".{name}.new"));
    std::fs::write(&staged, contents).expect("write");
    std::fs::rename(&staged, &path).expect("rename");
    path
}

fn with_tls(settings: &mut ServeSettings, cert: PathBuf, key: PathBuf) {
    settings.security.tls_cert = Some(cert);
    settings.security.tls_key = Some(key);
    settings.security.reload_interval_secs = 1;
}

both_backends!(
    a_tls_server_answers_over_tls_and_takes_a_new_certificate_without_a_restart,
    mutual_tls_names_the_principal_and_refuses_what_it_cannot_trust,
    bearer_tokens_are_verified_and_every_bad_one_is_refused_alike,
    every_rpc_checks_its_action_and_resource_against_the_policies,
    a_policy_file_changed_while_the_server_runs_takes_effect_and_a_broken_one_is_ignored,
);

async fn a_tls_server_answers_over_tls_and_takes_a_new_certificate_without_a_restart(db: TestDb) {
    let files = tempfile::tempdir().expect("dir");
    let first_ca = TestCa::new("first CA");
    let (cert, key) = first_ca.server("first").write(files.path(), "server");
    let first = first_ca.pem();
    let mut server = TestServer::start_with_endpoint(
        &db,
        |settings| with_tls(settings, cert.clone(), key.clone()),
        |addr| tls(addr, &first, None),
    )
    .await;
    add(&mut server.client, ACCOUNT, "Alice").await;

    // A plaintext client gets nowhere.
    let plain = plaintext(server.addr)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("TCP connects");
    let refused = MessageContactServiceClient::new(plain)
        .add_message_contact(as_account(ACCOUNT, add_request("Bob")))
        .await
        .expect_err("plaintext to a TLS port");
    assert_ne!(refused.code(), Code::Ok);

    // A certificate from another CA, swapped in: new connections are served with it.
    let second_ca = TestCa::new("second CA");
    let renewed = second_ca.server("second");
    replace(files.path(), "server.key", &renewed.key);
    replace(files.path(), "server.crt", &renewed.cert);
    let second = second_ca.pem();
    let addr = server.addr;
    let mut client = until(
        "the new certificate is served",
        Duration::from_secs(20),
        async || {
            let channel = tls(addr, &second, None).connect().await.ok()?;
            Some(MessageContactServiceClient::new(channel))
        },
    )
    .await;
    add(&mut client, ACCOUNT, "Carol").await;
    // The connection made before the swap still works.
    add(&mut server.client, ACCOUNT, "Dave").await;

    // The HTTP port speaks TLS with the same certificate.
    let pages = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(second.as_bytes()).expect("pem"))
        .build()
        .expect("client");
    let page = pages
        .get(format!(
            "https://localhost:{}/static/page.css",
            server.http_addr.port()
        ))
        .send()
        .await
        .expect("the page over TLS");
    assert_eq!(page.status(), 200);
    server.stop().await;
}

async fn mutual_tls_names_the_principal_and_refuses_what_it_cannot_trust(db: TestDb) {
    let files = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("corp CA");
    let (cert, key) = ca.server("contactd").write(files.path(), "server");
    let client_ca = replace(files.path(), "clients.crt", &ca.pem());
    let billing = ca.client(ClientName::Uri("spiffe://corp/billing"));
    let gateway = ca.client(ClientName::Dns("gateway.internal"));
    let named = ca.client(ClientName::CommonName("ops-console"));
    let unmapped = ca.client(ClientName::Uri("spiffe://corp/unknown"));
    let accounts = replace(
        files.path(),
        "accounts.json",
        &json!({
            "spiffe://corp/billing": ACCOUNT,
            "gateway.internal": OTHER_ACCOUNT,
            "ops-console": ACCOUNT,
        })
        .to_string(),
    );
    let trusted = ca.pem();
    let mut server = TestServer::start_with_endpoint(
        &db,
        |settings| {
            with_tls(settings, cert.clone(), key.clone());
            settings.security.client_ca = Some(client_ca.clone());
            settings.security.certificate_accounts = Some(accounts.clone());
            settings.identity_mode = Some(IdentityMode::Mtls);
        },
        |addr| tls(addr, &trusted, Some((&billing.cert, &billing.key))),
    )
    .await;
    // The certificate names the principal and, through the mapping, the account: no header.
    let added = server
        .client
        .add_message_contact(Request::new(add_request("Alice")))
        .await
        .expect("the billing service adds")
        .into_inner()
        .contact
        .expect("contact");
    let mut audit = MessageContactAuditServiceClient::new(server.channel.clone());
    let events = audit
        .list_message_contact_events(Request::new(ListMessageContactEventsRequest {
            contact_id: added.contact_id.clone(),
            ..Default::default()
        }))
        .await
        .expect("its history")
        .into_inner()
        .events;
    assert_eq!(events[0].caller, "certificate:spiffe://corp/billing");

    // DNS SAN and CN name principals too; each acts for its own account.
    for (who, client, account) in [
        ("gateway", &gateway, OTHER_ACCOUNT),
        ("ops console", &named, ACCOUNT),
    ] {
        let channel = tls(server.addr, &trusted, Some((&client.cert, &client.key)))
            .connect()
            .await
            .expect(who);
        let listed = MessageContactServiceClient::new(channel)
            .list_message_contacts(Request::new(ListMessageContactsRequest::default()))
            .await
            .expect(who)
            .into_inner();
        let expected = usize::from(account == ACCOUNT);
        assert_eq!(listed.contacts.len(), expected, "{who} sees its account's");
    }

    // A certificate the mapping does not know is trusted, but names no account.
    let channel = tls(server.addr, &trusted, Some((&unmapped.cert, &unmapped.key)))
        .connect()
        .await
        .expect("a trusted certificate connects");
    let refused = MessageContactServiceClient::new(channel)
        .list_message_contacts(Request::new(ListMessageContactsRequest::default()))
        .await
        .expect_err("no account");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(refused.message(), UNAUTHENTICATED);

    // No certificate, or one from another CA: the handshake fails.
    let stranger = TestCa::new("stranger CA").client(ClientName::Uri("spiffe://corp/billing"));
    for (who, identity) in [
        ("no certificate", None),
        (
            "another CA's",
            Some((stranger.cert.as_str(), stranger.key.as_str())),
        ),
    ] {
        let outcome = match tls(server.addr, &trusted, identity).connect().await {
            Err(_) => Err(()),
            Ok(channel) => MessageContactServiceClient::new(channel)
                .list_message_contacts(Request::new(ListMessageContactsRequest::default()))
                .await
                .map(|_| ())
                .map_err(|_| ()),
        };
        assert!(outcome.is_err(), "{who}: refused");
    }
    server.stop().await;
}

/// A token's claims, `changes` applied over good ones.
fn claims(changes: serde_json::Value) -> serde_json::Value {
    let mut claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "svc-billing", "account_id": ACCOUNT,
        "iat": unix_now(), "exp": unix_now() + 600,
    });
    for (key, value) in changes.as_object().expect("an object") {
        if value.is_null() {
            claims.as_object_mut().expect("object").remove(key);
        } else {
            claims[key] = value.clone();
        }
    }
    claims
}

fn bearer<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

async fn bearer_tokens_are_verified_and_every_bad_one_is_refused_alike(db: TestDb) {
    let files = tempfile::tempdir().expect("dir");
    let idp = TokenIssuer::new("key-1");
    let keys = replace(files.path(), "keys.json", &idp.jwks());
    let mut server = TestServer::start_with(&db, |settings| {
        settings.identity_mode = Some(IdentityMode::Token);
        settings.security.token_keys = Some(keys.clone());
        settings.security.token_issuer = Some(ISSUER.to_owned());
        settings.security.token_audience = Some(AUDIENCE.to_owned());
        settings.security.reload_interval_secs = 1;
    })
    .await;
    let good = idp.mint(&claims(json!({})));
    let added = server
        .client
        .add_message_contact(bearer(&good, add_request("Alice")))
        .await
        .expect("a good token")
        .into_inner()
        .contact
        .expect("contact");
    let mut audit = audit_client(&server).await;
    let events = audit
        .list_message_contact_events(bearer(
            &good,
            ListMessageContactEventsRequest {
                contact_id: added.contact_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("history")
        .into_inner()
        .events;
    assert_eq!(events[0].caller, "token:svc-billing");
    // The token names the account; a header naming another one changes nothing.
    let mut request = bearer(&good, ListMessageContactsRequest::default());
    request
        .metadata_mut()
        .insert("x-acs-account-id", OTHER_ACCOUNT.parse().expect("ascii"));
    let listed = server
        .client
        .list_message_contacts(request)
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.contacts.len(), 1, "the token's account's contact");

    let forger = TokenIssuer::new("key-1");
    let now = unix_now();
    let bad = [
        ("expired", idp.mint(&claims(json!({"exp": now - 3600})))),
        (
            "not yet valid",
            idp.mint(&claims(json!({"nbf": now + 3600}))),
        ),
        ("forged", forger.mint(&claims(json!({})))),
        (
            "wrong issuer",
            idp.mint(&claims(json!({"iss": "https://evil.test"}))),
        ),
        (
            "wrong audience",
            idp.mint(&claims(json!({"aud": "another-service"}))),
        ),
        ("alg none", unsigned_token(&claims(json!({})))),
        ("no account", idp.mint(&claims(json!({"account_id": null})))),
        (
            "bad account",
            idp.mint(&claims(json!({"account_id": "12ab"}))),
        ),
        ("no subject", idp.mint(&claims(json!({"sub": null})))),
        ("no expiry", idp.mint(&claims(json!({"exp": null})))),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in &bad {
        let refused = server
            .client
            .list_message_contacts(bearer(token, ListMessageContactsRequest::default()))
            .await
            .expect_err(what);
        assert_eq!(refused.code(), Code::Unauthenticated, "{what}");
        assert_eq!(refused.message(), UNAUTHENTICATED, "{what}: no hint");
        assert_request_id(
            refused
                .metadata()
                .get("x-acs-request-id")
                .and_then(|v| v.to_str().ok())
                .expect(what),
        );
    }
    let missing = server
        .client
        .list_message_contacts(as_account(ACCOUNT, ListMessageContactsRequest::default()))
        .await
        .expect_err("a header is no token");
    assert_eq!(missing.code(), Code::Unauthenticated);

    // A second key published while the server runs is trusted without a restart.
    let next = TokenIssuer::new("key-2");
    let both: serde_json::Value = {
        let mut keys: serde_json::Value = serde_json::from_str(&idp.jwks()).expect("json");
        let second: serde_json::Value = serde_json::from_str(&next.jwks()).expect("json");
        keys["keys"]
            .as_array_mut()
            .expect("keys")
            .push(second["keys"][0].clone());
        keys
    };
    replace(files.path(), "keys.json", &both.to_string());
    let rotated = next.mint(&claims(json!({})));
    let client = server.client.clone();
    until(
        "the new key is trusted",
        Duration::from_secs(20),
        async || {
            client
                .clone()
                .list_message_contacts(bearer(&rotated, ListMessageContactsRequest::default()))
                .await
                .ok()
        },
    )
    .await;
    server.stop().await;
}

/// A request of `rpc` about `contact_id`, encoded.
fn request_bytes(rpc: Rpc, contact_id: &str) -> Vec<u8> {
    let id = contact_id.to_owned();
    match rpc {
        Rpc::AddMessageContact => add_request("Zed").encode_to_vec(),
        Rpc::UpdateMessageContact => update_request(contact_id).encode_to_vec(),
        Rpc::DeleteMessageContact => DeleteMessageContactRequest {
            contact_id: id,
            ..Default::default()
        }
        .encode_to_vec(),
        Rpc::GetMessageContact => GetMessageContactRequest { contact_id: id }.encode_to_vec(),
        Rpc::ListMessageContacts => ListMessageContactsRequest::default().encode_to_vec(),
        Rpc::GetMessageContactDeletionStatus => {
            GetMessageContactDeletionStatusRequest { contact_id: id }.encode_to_vec()
        }
        Rpc::SendEmailVerificationForMessageContact => {
            SendEmailVerificationForMessageContactRequest {
                contact_id: id,
                email_address: "zed@example.com".to_owned(),
                ..Default::default()
            }
            .encode_to_vec()
        }
        Rpc::SendPhoneVerificationForMessageContact => {
            SendPhoneVerificationForMessageContactRequest {
                contact_id: id,
                phone_number: "86-13912345678".to_owned(),
                ..Default::default()
            }
            .encode_to_vec()
        }
        Rpc::ListMessageContactVerifications => ListMessageContactVerificationsRequest {
            contact_id: id,
            ..Default::default()
        }
        .encode_to_vec(),
        Rpc::CancelMessageContactUpdate => CancelMessageContactUpdateRequest {
            contact_id: id,
            ..Default::default()
        }
        .encode_to_vec(),
        Rpc::ConfirmMessageContactVerification => ConfirmMessageContactVerificationRequest {
            contact_id: id,
            target: "zed@example.com".to_owned(),
            code: "123456".to_owned(),
            ..Default::default()
        }
        .encode_to_vec(),
        Rpc::AssociateMembers => AssociateMembersRequest {
            contact_id: id,
            members: vec!["fd-0123456789".to_owned()],
            ..Default::default()
        }
        .encode_to_vec(),
        Rpc::DisassociateMembers => DisassociateMembersRequest {
            contact_id: id,
            members: vec!["fd-0123456789".to_owned()],
            ..Default::default()
        }
        .encode_to_vec(),
        Rpc::ListMessageContactEvents => ListMessageContactEventsRequest {
            contact_id: id,
            ..Default::default()
        }
        .encode_to_vec(),
        Rpc::StreamEvents => StreamEventsRequest::default().encode_to_vec(),
        Rpc::GetMessageContactAsOf => GetMessageContactAsOfRequest {
            contact_id: id,
            as_of: Some(get_message_contact_as_of_request::AsOf::AsOfVersion(1)),
        }
        .encode_to_vec(),
        Rpc::GetResourceDirectory => GetResourceDirectoryRequest::default().encode_to_vec(),
        Rpc::RegisterFolder => RegisterFolderRequest {
            folder_id: "fd-0123456789".to_owned(),
            ..Default::default()
        }
        .encode_to_vec(),
        Rpc::RemoveFolder => RemoveFolderRequest {
            folder_id: "fd-9999999999".to_owned(),
        }
        .encode_to_vec(),
        Rpc::RegisterMember => RegisterMemberRequest {
            account_id: "1111222233334444".to_owned(),
            ..Default::default()
        }
        .encode_to_vec(),
        Rpc::MoveMember => MoveMemberRequest {
            account_id: "1111222233334444".to_owned(),
            ..Default::default()
        }
        .encode_to_vec(),
        Rpc::RemoveMember => RemoveMemberRequest {
            account_id: "9999222233334444".to_owned(),
        }
        .encode_to_vec(),
        // Last in the catalogue, so that the contact is forgotten after every other call about
        // it has been answered.
        Rpc::ForgetMessageContact => ForgetMessageContactRequest { contact_id: id }.encode_to_vec(),
    }
}

/// The code `rpc` answers `account` with (OK, or the error's).
async fn answer(server: &TestServer, account: &str, rpc: Rpc, contact_id: &str) -> Code {
    let path = format!("/{}/{}", rpc.service(), rpc.name());
    let request = as_account(account, request_bytes(rpc, contact_id));
    let outcome = if rpc == Rpc::StreamEvents {
        raw::server_streaming(&server.channel, &path, request)
            .await
            .map(|_| ())
    } else {
        raw::unary(&server.channel, &path, request)
            .await
            .map(|_| ())
    };
    match outcome {
        Ok(()) => Code::Ok,
        Err(status) => {
            if status.code() == Code::PermissionDenied {
                assert_eq!(
                    status.message(),
                    "You are not authorized to do this action."
                );
                assert_eq!(error_code(&status), "NoPermission");
            }
            status.code()
        }
    }
}

/// Accounts, each its own principal under a trusted header, one per case of the matrix.
const EXACT: &str = "1000000000000001";
const DENY_ALL: &str = "1000000000000002";
const WILDCARD_ACTION: &str = "1000000000000003";
const WILDCARD_RESOURCE: &str = "1000000000000004";
const DENY_WINS: &str = "1000000000000005";
const UNATTACHED: &str = "1000000000000006";
const NO_MATCH: &str = "1000000000000007";
const FROM_LOOPBACK: &str = "1000000000000008";
const FROM_ELSEWHERE: &str = "1000000000000009";
const MATRIX: [&str; 9] = [
    EXACT,
    DENY_ALL,
    WILDCARD_ACTION,
    WILDCARD_RESOURCE,
    DENY_WINS,
    UNATTACHED,
    NO_MATCH,
    FROM_LOOPBACK,
    FROM_ELSEWHERE,
];

fn resource(rpc: Rpc, account: &str, contact_id: &str) -> String {
    rpc.resource(
        &contactd_domain::AccountId::parse(account).expect("account"),
        contact_id,
    )
}

/// The policies of the matrix; `exact` allows each RPC's own action on its own resource.
fn matrix_policies(contact_ids: &dyn Fn(&str) -> String) -> serde_json::Value {
    let exact: Vec<serde_json::Value> = Rpc::ALL
        .iter()
        .map(|rpc| {
            json!({"Effect": "Allow", "Action": rpc.action(),
                   "Resource": resource(*rpc, EXACT, &contact_ids(EXACT))})
        })
        .collect();
    let everything = json!({"Effect": "Allow", "Action": "resourcemanager:*", "Resource": "*"});
    json!({
        "Version": "1",
        "Policies": {
            "Exact": {"Version": "1", "Statement": exact},
            "DenyAll": {"Version": "1", "Statement": [
                {"Effect": "Deny", "Action": "resourcemanager:*", "Resource": "*"}]},
            "WildcardAction": {"Version": "1", "Statement": [
                {"Effect": "Allow", "Action": "resourcemanager:*MessageContact*", "Resource": "*"}]},
            "WildcardResource": {"Version": "1", "Statement": [
                {"Effect": "Allow", "Action": "resourcemanager:*",
                 "Resource": format!("acs:resourcemanager:*:{WILDCARD_RESOURCE}:messagecontact/*")}]},
            "DenyWins": {"Version": "1", "Statement": [
                everything,
                {"Effect": "Deny", "Action": "resourcemanager:get*", "Resource": "*"}]},
            "NoMatch": {"Version": "1", "Statement": [
                {"Effect": "Allow", "Action": "resourcemanager:Nothing", "Resource": "*"}]},
            "Loopback": {"Version": "1", "Statement": [
                {"Effect": "Allow", "Action": "resourcemanager:*", "Resource": "*",
                 "Condition": {"IpAddress": {"acs:SourceIp": ["127.0.0.0/8", "::1"]}}}]},
            "Elsewhere": {"Version": "1", "Statement": [
                {"Effect": "Allow", "Action": "resourcemanager:*", "Resource": "*",
                 "Condition": {"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}}}]},
        },
        "Attachments": [
            {"Principal": format!("account:{EXACT}"), "Policies": ["Exact"]},
            {"Principal": format!("account:{DENY_ALL}"), "Policies": ["DenyAll", "WildcardAction"]},
            {"Principal": format!("account:{WILDCARD_ACTION}"), "Policies": ["WildcardAction"]},
            {"Principal": format!("account:{WILDCARD_RESOURCE}"), "Policies": ["WildcardResource"]},
            {"Principal": format!("account:{DENY_WINS}"), "Policies": ["DenyWins"]},
            {"Principal": format!("account:{NO_MATCH}"), "Policies": ["NoMatch"]},
            {"Principal": format!("account:{FROM_LOOPBACK}"), "Policies": ["Loopback"]},
            {"Principal": format!("account:{FROM_ELSEWHERE}"), "Policies": ["Elsewhere"]},
        ],
    })
}

async fn every_rpc_checks_its_action_and_resource_against_the_policies(db: TestDb) {
    let files = tempfile::tempdir().expect("dir");
    let everyone = json!({"Version": "1",
        "Policies": {"Full": {"Version": "1", "Statement": [
            {"Effect": "Allow", "Action": "resourcemanager:*", "Resource": "*"}]}},
        "Attachments": [{"Principal": "account:*", "Policies": ["Full"]}]})
    .to_string();
    let policies = replace(files.path(), "policies.json", &everyone);
    let mut server = TestServer::start_with(&db, |settings| {
        settings.security.policy_file = Some(policies.clone());
        settings.security.reload_interval_secs = 1;
    })
    .await;
    // Each account's contact, added while everyone may, so that the calls about it reach as
    // far as they may once the matrix applies.
    let mut contacts = std::collections::HashMap::new();
    for account in MATRIX {
        let contact = add(&mut server.client, account, "Alice").await;
        contacts.insert(account, contact.contact_id);
    }
    let contact_of = |account: &str| contacts[account].clone();
    replace(
        files.path(),
        "policies.json",
        &matrix_policies(&contact_of).to_string(),
    );
    let deny_all_contact = contact_of(DENY_ALL);
    until("the matrix applies", Duration::from_secs(20), async || {
        let code = answer(&server, DENY_ALL, Rpc::GetMessageContact, &deny_all_contact).await;
        (code == Code::PermissionDenied).then_some(())
    })
    .await;
    let denied_for = |account: &str, rpc: Rpc| -> bool {
        let action = rpc.action().to_lowercase();
        match account {
            EXACT | FROM_LOOPBACK => false,
            DENY_ALL | UNATTACHED | NO_MATCH | FROM_ELSEWHERE => true,
            WILDCARD_ACTION => !action.contains("messagecontact"),
            WILDCARD_RESOURCE => rpc
                .resource(
                    &contactd_domain::AccountId::parse(account).expect("account"),
                    "",
                )
                .contains("resourcedirectory"),
            DENY_WINS => action.starts_with("resourcemanager:get"),
            _ => unreachable!(),
        }
    };
    assert_eq!(
        Rpc::ALL.last(),
        Some(&Rpc::ForgetMessageContact),
        "the forgetting comes last"
    );
    for account in MATRIX {
        let contact_id = contact_of(account);
        for rpc in Rpc::ALL {
            let code = answer(&server, account, *rpc, &contact_id).await;
            if denied_for(account, *rpc) {
                assert_eq!(code, Code::PermissionDenied, "{account} {rpc:?}");
            } else {
                assert_ne!(code, Code::PermissionDenied, "{account} {rpc:?}");
            }
        }
    }
    // A specific resource allows exactly that contact: another contact id is denied.
    let other = contact_of(DENY_ALL);
    assert_eq!(
        answer(&server, EXACT, Rpc::GetMessageContact, &other).await,
        Code::PermissionDenied
    );
    server.stop().await;
}

async fn a_policy_file_changed_while_the_server_runs_takes_effect_and_a_broken_one_is_ignored(
    db: TestDb,
) {
    let files = tempfile::tempdir().expect("dir");
    let read_only = |principal: &str| {
        json!({"Version": "1",
               "Policies": {"ReadOnly": {"Version": "1", "Statement": [
                   {"Effect": "Allow", "Action": ["resourcemanager:Get*", "resourcemanager:List*"],
                    "Resource": "acs:resourcemanager:*:*:messagecontact/*"}]}},
               "Attachments": [{"Principal": principal, "Policies": ["ReadOnly"]}]})
        .to_string()
    };
    let policies = replace(files.path(), "policies.json", &read_only("account:*"));
    let mut server = TestServer::start_with(&db, |settings| {
        settings.security.policy_file = Some(policies.clone());
        settings.security.reload_interval_secs = 1;
    })
    .await;
    let denied = server
        .client
        .add_message_contact(as_account(ACCOUNT, add_request("Alice")))
        .await
        .expect_err("read only");
    assert_eq!(denied.code(), Code::PermissionDenied);
    server
        .client
        .list_message_contacts(as_account(ACCOUNT, ListMessageContactsRequest::default()))
        .await
        .expect("reads are allowed");

    let full = json!({"Version": "1",
        "Policies": {"Full": {"Version": "1", "Statement": [
            {"Effect": "Allow", "Action": "resourcemanager:*", "Resource": "*"}]}},
        "Attachments": [{"Principal": "account:*", "Policies": ["Full"]}]})
    .to_string();
    replace(files.path(), "policies.json", &full);
    let client = server.client.clone();
    until(
        "the new policy applies",
        Duration::from_secs(20),
        async || {
            client
                .clone()
                .add_message_contact(as_account(ACCOUNT, add_request("Alice")))
                .await
                .ok()
        },
    )
    .await;

    // A broken file keeps the last good policies.
    replace(
        files.path(),
        "policies.json",
        "{\"Version\": \"1\", \"Policies\": ",
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    add(&mut server.client, ACCOUNT, "Bob").await;
    server.stop().await;
}

/// Trusting a header on an address anyone may reach is refused at start, with why.
#[test]
fn trusting_a_header_off_loopback_without_client_certificates_is_refused_at_start() {
    let data = tempfile::tempdir().expect("dir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_contactd"))
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--http-listen",
            "127.0.0.1:0",
            "--identity-mode",
            "trusted-header",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("DATABASE_URL")
        .output()
        .expect("run contactd");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("needs mutual TLS"), "{said}");
    assert!(
        !data.path().join("contactd.db").exists(),
        "refused before anything was opened"
    );
}
