//! The testkit's peers as the end-to-end tests use them: the browser on a page served here,
//! posting its form, and a gateway that leaves its first request unanswered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use contactd_testkit::fantoccini::Locator;
use contactd_testkit::{Browser, Gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PAGE: &str = "<!doctype html><html><head><meta charset=utf-8><title>Confirm</title></head>\
    <body><p id=question>Confirm 张三?</p>\
    <form method=post action=/confirm><input type=hidden name=choice value=yes>\
    <button type=submit>Confirm</button></form></body></html>";

const CONFIRMED: &str = "<!doctype html><html><head><meta charset=utf-8></head>\
    <body><p id=done>Confirmed</p></body></html>";

type Posts = Arc<Mutex<Vec<Bytes>>>;

async fn confirm(State(posts): State<Posts>, body: Bytes) -> Html<&'static str> {
    posts.lock().unwrap().push(body);
    Html(CONFIRMED)
}

#[tokio::test]
async fn the_browser_reads_a_page_and_posts_its_form() {
    let posts = Posts::default();
    let router = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/confirm", axum::routing::post(confirm))
        .with_state(Arc::clone(&posts));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let browser = Browser::start().await;
    let client = browser.client();

    client.goto(&format!("http://{addr}/")).await.unwrap();
    let question = client.find(Locator::Id("question")).await.unwrap();
    assert_eq!(question.text().await.unwrap(), "Confirm 张三?");
    assert!(posts.lock().unwrap().is_empty(), "a GET posts nothing");

    let button = client
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap();
    button.click().await.unwrap();
    let done = client
        .wait()
        .for_element(Locator::Id("done"))
        .await
        .unwrap();
    assert_eq!(done.text().await.unwrap(), "Confirmed");
    assert_eq!(
        client.current_url().await.unwrap().as_str(),
        format!("http://{addr}/confirm")
    );
    assert_eq!(*posts.lock().unwrap(), [Bytes::from_static(b"choice=yes")]);

    browser.close().await;
    server.abort();
}

#[tokio::test]
async fn a_gateway_hanging_first_leaves_the_first_request_unanswered_and_answers_the_next() {
    let gateway = Gateway::hanging_first(1, 200).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();

    let first = client
        .post(gateway.url("/sms"))
        .body(r#"{"attempt":1}"#)
        .send()
        .await
        .unwrap_err();
    assert!(first.is_timeout(), "{first:?}");

    let second = client
        .post(gateway.url("/sms"))
        .body(r#"{"attempt":2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 200);

    let requests = gateway.wait_for(2, Duration::from_secs(5)).await;
    let attempts: Vec<_> = requests
        .iter()
        .map(|request| request.json()["attempt"].clone())
        .collect();
    assert_eq!(attempts, [1, 2], "the unanswered request is recorded too");
    assert!(requests.iter().all(|request| request.path == "/sms"));
}

#[tokio::test]
async fn a_dropped_gateway_closes_the_connections_it_held_unanswered() {
    let gateway = Gateway::hanging_first(1, 200).await;
    let mut connection = tokio::net::TcpStream::connect(gateway.addr())
        .await
        .unwrap();
    connection
        .write_all(b"POST /sms HTTP/1.1\r\nHost: gateway\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .unwrap();
    gateway.wait_for(1, Duration::from_secs(5)).await;

    drop(gateway);

    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), connection.read_to_end(&mut answer))
        .await
        .expect("the connection closes");
    // Closed (or reset) without an answer.
    if read.is_ok() {
        assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    }
}

#[tokio::test]
#[should_panic(expected = "waited 100ms for 1 requests at the gateway, but 0 arrived")]
async fn waiting_for_requests_that_do_not_come_fails_saying_how_many_came() {
    let gateway = Gateway::answering(200).await;
    gateway.wait_for(1, Duration::from_millis(100)).await;
}
