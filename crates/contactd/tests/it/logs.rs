//! The logs of a whole end-to-end run of the real binary, at `debug`, as JSON lines: every
//! line parses, every line of a call names its RPC, request id and account, and no line holds
//! a name, an email address, a phone number, a code or a link of the contacts it served.

use crate::support::*;

async fn a_whole_run_logs_json_lines_naming_each_call_and_no_personal_data(db: TestDb) {
    let mut server = Process::start_with(&db, &["--log-format", "json"], "debug");
    let mut client = server.client().await;
    let name = "Quintessa";
    let email = "quintessa.logged@example.com";
    let contact_id = add_with_email(&mut client, ACCOUNT, name, email).await;
    get(&mut client, ACCOUNT, &contact_id).await.expect("get");
    let missing = get(&mut client, ACCOUNT, "c-00000000000000000000000000000000").await;
    assert!(missing.is_err(), "no such contact");
    send_email(&mut client, ACCOUNT, &contact_id, email)
        .await
        .expect("send");
    let (code, link) = server.sent_email(&db, &contact_id).await;
    let refused = confirm(&mut client, ACCOUNT, &contact_id, email, &wrong(&code)).await;
    assert!(refused.is_err(), "a wrong code is refused");
    confirm(&mut client, ACCOUNT, &contact_id, email, &code)
        .await
        .expect("the right code");
    let status = server.terminate().await;
    assert!(status.success(), "{status:?}");

    let log = server.log();
    let token = link.rsplit('/').next().expect("the link's token");
    let phone = add_request(name).phone_number.expect("a phone number");
    let national = phone.rsplit('-').next().expect("the national number");
    for secret in [name, email, national, code.as_str(), token] {
        assert!(
            !log.contains(secret),
            "{secret:?} was logged:\n{}",
            log.lines()
                .filter(|line| line.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let mut calls = 0;
    for line in log.lines().filter(|line| !line.trim().is_empty()) {
        let line: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"));
        let Some(call) = line["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|span| span["name"] == "call"))
        else {
            continue;
        };
        calls += 1;
        for field in ["rpc", "request_id", "account"] {
            assert!(call[field].is_string(), "no {field} on {line}");
        }
        assert_eq!(call["account"], ACCOUNT, "{line}");
    }
    assert!(calls > 0, "no line was logged within a call:\n{log}");
}

both_backends!(a_whole_run_logs_json_lines_naming_each_call_and_no_personal_data);
