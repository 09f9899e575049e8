//! The confirmation page that a verification email links to: what `GET` shows (and that it
//! changes nothing), what the button's `POST` confirms, the pages of spent, expired and
//! unknown links, their headers, and a person doing it in a real browser (headless Chromium).

use std::time::Duration;

use contactd_testkit::fantoccini::Locator;
use contactd_testkit::{Browser, SmtpSink};

use crate::support::*;

const WAIT: Duration = Duration::from_secs(30);

/// A server delivering to a real SMTP server, with codes of `ttl_secs`, and a contact Tom for
/// whose email address a code was sent; its id.
async fn tom_sent_an_email(db: &TestDb, ttl_secs: u64) -> (SmtpSink, TestServer, String) {
    let smtp = SmtpSink::start();
    let url = smtp.url();
    let mut server = TestServer::start_with(db, |s| {
        s.verification.smtp_url = Some(url);
        s.verification.code_ttl_secs = ttl_secs;
    })
    .await;
    let id = add(&mut server.client, ACCOUNT, "Tom").await.contact_id;
    send_email(&mut server.client, ACCOUNT, &id, "tom@example.com")
        .await
        .unwrap();
    (smtp, server, id)
}

/// The path of the link in the `n`th message received (1-based).
async fn link_path(smtp: &SmtpSink, n: usize) -> String {
    let link = smtp.wait_for(n, WAIT).await[n - 1].link();
    let path = link.find("/verify/").expect("a /verify/ link");
    link[path..].to_owned()
}

async fn status_of(server: &mut TestServer, contact_id: &str) -> String {
    get(&mut server.client, ACCOUNT, contact_id)
        .await
        .unwrap()
        .status
}

async fn a_person_confirms_in_a_real_browser(db: TestDb) {
    let (smtp, mut server, id) = tom_sent_an_email(&db, 900).await;
    let link = smtp.wait_for(1, WAIT).await[0].link();

    let browser = Browser::start().await;
    let page = browser.client();
    page.goto(&link).await.unwrap();
    let heading = page.find(Locator::Css("h1")).await.unwrap();
    assert_eq!(
        heading.text().await.unwrap(),
        "Confirm your contact details"
    );
    let target = page.find(Locator::Css(".target")).await.unwrap();
    assert_eq!(target.text().await.unwrap(), "t***@example.com");
    assert_eq!(page.title().await.unwrap(), "Confirm your contact details");
    assert_eq!(
        status_of(&mut server, &id).await,
        "Verifying",
        "opening the link changes nothing"
    );

    page.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//h1[text()='Confirmed']"))
        .await
        .expect("the page says it is confirmed");
    let contact = get(&mut server.client, ACCOUNT, &id).await.unwrap();
    assert_eq!(contact.status, "Active");
    assert_eq!(contact.active_email_address, "tom@example.com");

    page.goto(&link).await.unwrap();
    let heading = page.find(Locator::Css("h1")).await.unwrap();
    assert_eq!(
        heading.text().await.unwrap(),
        "This link is no longer valid"
    );
    browser.close().await;
    server.stop().await;
}

async fn the_page_shows_without_changing_and_the_post_confirms_once(db: TestDb) {
    let (smtp, mut server, id) = tom_sent_an_email(&db, 900).await;
    let path = link_path(&smtp, 1).await;
    let pages = server.http_addr;

    for _ in 0..3 {
        let shown = http(pages, "GET", &path).await;
        assert_eq!(shown.status, 200, "{}", shown.body);
        assert!(shown.body.contains("t***@example.com"), "{}", shown.body);
        assert!(!shown.body.contains("tom@example.com"));
        assert!(
            shown
                .body
                .contains("<button type=\"submit\">Confirm</button>")
        );
    }
    assert_eq!(status_of(&mut server, &id).await, "Verifying");
    let version = get(&mut server.client, ACCOUNT, &id).await.unwrap().version;
    assert_eq!(version, 2, "three GETs appended nothing");

    let confirmed = http(pages, "POST", &path).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert!(confirmed.body.contains("<h1>Confirmed</h1>"));
    assert_eq!(status_of(&mut server, &id).await, "Active");
    let caller: String = db
        .scalar(
            "SELECT caller FROM events \
             WHERE stream_id = $1 AND event_type = 'EmailAddressVerified'",
            &[&id],
        )
        .await;
    assert_eq!(caller, "service:confirmation-link");

    for method in ["GET", "POST"] {
        let spent = http(pages, method, &path).await;
        assert_eq!(spent.status, 410, "{method}: {}", spent.body);
        assert!(spent.body.contains("no longer valid"));
    }
    server.stop().await;
}

async fn the_pages_forbid_everything_from_outside_and_are_never_cached(db: TestDb) {
    let (smtp, server, _) = tom_sent_an_email(&db, 900).await;
    let path = link_path(&smtp, 1).await;
    let unknown = format!("/verify/{}", "A".repeat(43));
    for path in [path.as_str(), unknown.as_str(), "/verify/short", "/nowhere"] {
        let reply = http(server.http_addr, "GET", path).await;
        let policy = reply
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: a policy in {:?}", reply.headers));
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert!(policy.contains("style-src 'self'"), "{policy}");
        assert!(policy.contains("form-action 'self'"), "{policy}");
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert!(!reply.body.contains("<script"), "{path}");
        assert!(
            !reply.body.contains("http"),
            "{path}: nothing from elsewhere"
        );
    }
    for path in [unknown.as_str(), "/verify/short", "/nowhere"] {
        let reply = http(server.http_addr, "GET", path).await;
        assert_eq!(reply.status, 404, "{path}");
        assert!(reply.body.contains("Link not found"), "{path}");
    }
    let style = http(server.http_addr, "GET", "/static/page.css").await;
    assert_eq!(style.status, 200);
    assert_eq!(
        style.header("content-type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(
        http(server.http_addr, "POST", &unknown).await.status,
        404,
        "an unknown link confirms nothing"
    );
    server.stop().await;
}

async fn a_replaced_or_expired_link_is_gone(db: TestDb) {
    let (smtp, mut server, id) = tom_sent_an_email(&db, 2).await;
    let replaced = link_path(&smtp, 1).await;
    send_email(&mut server.client, ACCOUNT, &id, "tom@example.com")
        .await
        .unwrap();
    let newer = link_path(&smtp, 2).await;

    let old = http(server.http_addr, "POST", &replaced).await;
    assert_eq!(old.status, 410, "{}", old.body);
    assert_eq!(http(server.http_addr, "GET", &newer).await.status, 200);

    // Let the code's two seconds of life pass: time, not synchronisation, is what is tested.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = http(server.http_addr, "POST", &newer).await;
    assert_eq!(expired.status, 410, "{}", expired.body);
    assert!(expired.body.contains("expired"), "{}", expired.body);
    assert_eq!(status_of(&mut server, &id).await, "Verifying");
    server.stop().await;
}

both_backends!(
    a_person_confirms_in_a_real_browser,
    the_page_shows_without_changing_and_the_post_confirms_once,
    the_pages_forbid_everything_from_outside_and_are_never_cached,
    a_replaced_or_expired_link_is_gone,
);
