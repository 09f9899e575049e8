//! `/metrics` after a scripted run: every family the README lists is scraped over HTTP from the
//! real server with its labels, and the counts that the script decides are exact; a conflict
//! with another process is counted and retried; and every metric that the alert rules and the
//! dashboard name is one a real server serves, so that neither can drift from the code.

use std::collections::BTreeSet;
use std::time::Duration;

use contactd_grpc::proto::ListMessageContactsRequest;
use tonic::Code;

use crate::lifecycle_support::{associate, directory_client, two_levels};
use crate::support::{
    ACCOUNT, TestDb, TestServer, add, add_request, as_account, audit_client, both_backends, http,
    open_stream, postgres_only, send_email, until, until_every_message_is_sent, update_request,
    verify_email,
};

both_backends!(
    a_scripted_run_is_counted_by_rpc_code_and_family,
    integration_events_are_counted_with_their_lag,
    every_metric_the_alerts_and_the_dashboard_use_is_served,
);
postgres_only!(
    // Two processes on one database: SQLite's file admits one.
    a_conflict_with_another_process_is_counted_and_decided_again,
);

/// One scrape of `/metrics`.
struct Scrape(String);

impl Scrape {
    async fn of(server: &TestServer) -> Self {
        let reply = http(server.http_addr, "GET", "/metrics").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/openmetrics-text")),
            "{:?}",
            reply.headers
        );
        assert!(reply.body.ends_with("# EOF\n"), "{}", reply.body);
        Self(reply.body)
    }

    /// The value of the sample `name` with exactly `labels`, if served.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeSet<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.0.lines().find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (sample, labels) = match series.split_once('{') {
                Some((sample, rest)) => (sample, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let found: BTreeSet<(String, String)> = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.to_owned(), v.trim_matches('"').to_owned()))
                })
                .collect();
            (sample == name && found == wanted).then(|| value.parse().ok())?
        })
    }

    #[track_caller]
    fn exactly(&self, name: &str, labels: &[(&str, &str)], expected: f64) {
        assert_eq!(
            self.value(name, labels),
            Some(expected),
            "{name}{labels:?} in\n{}",
            self.0
        );
    }

    #[track_caller]
    fn at_least(&self, name: &str, labels: &[(&str, &str)], least: f64) {
        let value = self.value(name, labels);
        assert!(
            value.is_some_and(|v| v >= least),
            "{name}{labels:?} is {value:?}, wanted at least {least}, in\n{}",
            self.0
        );
    }

    /// Every sample name a family served could have, from the `# TYPE` lines: a family with
    /// no sample yet (nothing failed, say) is served all the same.
    fn names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for line in self.0.lines() {
            let Some(declared) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let Some((name, kind)) = declared.split_once(' ') else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
        }
        names
    }
}

async fn a_scripted_run_is_counted_by_rpc_code_and_family(db: TestDb) {
    let mut server = TestServer::start(&db).await;
    let client = &mut server.client;
    let first = add(client, ACCOUNT, "Tom").await;
    add(client, ACCOUNT, "Ann").await;
    add(client, ACCOUNT, "Bob").await;
    let mut invalid = add_request("Eve");
    invalid.email_address = "not an address".to_owned();
    let refused = client
        .add_message_contact(as_account(ACCOUNT, invalid))
        .await
        .expect_err("an invalid address is refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut update = update_request(&first.contact_id);
    update.title = Some("CEO".to_owned());
    client
        .update_message_contact(as_account(ACCOUNT, update))
        .await
        .expect("update");
    client
        .list_message_contacts(as_account(ACCOUNT, ListMessageContactsRequest::default()))
        .await
        .expect("list");
    send_email(client, ACCOUNT, &first.contact_id, "tom@example.com")
        .await
        .expect("send");
    until_every_message_is_sent(&db).await;
    // A live stream, read from the start and then dropped by its follower.
    let mut audit = audit_client(&server).await;
    let mut stream = open_stream(&mut audit, ACCOUNT, 0).await.expect("stream");
    stream.message().await.expect("an event").expect("an event");
    drop(stream);

    // The stream is counted once the server sees it gone; the projections and the dispatcher
    // report as they get to it.
    let scrape = until(
        "the scrape shows the whole run",
        Duration::from_secs(30),
        async || {
            let scrape = Scrape::of(&server).await;
            let stream = [("rpc", "StreamEvents"), ("code", "CANCELLED")];
            let outbox = [("projection", "verification_outbox")];
            let done = scrape.value("contactd_rpc_requests_total", &stream) == Some(1.0)
                && scrape.value("contactd_projection_active", &outbox) == Some(1.0)
                && scrape.value("contactd_projection_lag_events", &outbox) == Some(0.0)
                && scrape.value("contactd_outbox_depth", &[]) == Some(0.0);
            done.then_some(scrape)
        },
    )
    .await;

    let rpc = |name: &'static str, code: &'static str| [("rpc", name), ("code", code)];
    scrape.exactly(
        "contactd_rpc_requests_total",
        &rpc("AddMessageContact", "OK"),
        3.0,
    );
    scrape.exactly(
        "contactd_rpc_requests_total",
        &rpc("AddMessageContact", "INVALID_ARGUMENT"),
        1.0,
    );
    scrape.exactly(
        "contactd_rpc_requests_total",
        &rpc("UpdateMessageContact", "OK"),
        1.0,
    );
    scrape.exactly(
        "contactd_rpc_requests_total",
        &rpc("ListMessageContacts", "OK"),
        1.0,
    );
    scrape.exactly(
        "contactd_rpc_requests_total",
        &rpc("SendEmailVerificationForMessageContact", "OK"),
        1.0,
    );
    scrape.exactly(
        "contactd_rpc_duration_seconds_count",
        &rpc("AddMessageContact", "OK"),
        3.0,
    );
    let mut le_inf = rpc("AddMessageContact", "OK").to_vec();
    le_inf.push(("le", "+Inf"));
    scrape.exactly("contactd_rpc_duration_seconds_bucket", &le_inf, 3.0);

    // Every event of a command, and none of the dispatcher's own (the delivery's).
    let appended = db
        .count(
            "SELECT count(*) FROM events WHERE stream_id NOT LIKE 'delivery-%'",
            &[],
        )
        .await;
    scrape.exactly("contactd_events_appended_total", &[], appended as f64);
    scrape.exactly("contactd_append_version_conflicts_total", &[], 0.0);
    scrape.exactly("contactd_append_retries_total", &[], 0.0);
    // The update is written through the group commit on either store.
    scrape.at_least("contactd_group_commit_appends_count", &[], 1.0);
    scrape.at_least("contactd_db_pool_acquire_seconds_count", &[], 1.0);

    scrape.exactly("contactd_dispatch_sent_total", &[("channel", "email")], 1.0);
    scrape.exactly("contactd_dispatch_sent_total", &[("channel", "sms")], 0.0);
    for never in ["failed", "retried", "dead_lettered"] {
        let name = format!("contactd_dispatch_{never}_total");
        scrape.exactly(&name, &[("channel", "email")], 0.0);
        scrape.exactly(&name, &[("channel", "sms")], 0.0);
    }
    scrape.exactly("contactd_outbox_depth", &[], 0.0);
    scrape.exactly("contactd_integration_events_published_total", &[], 0.0);

    for projection in ["account_activity", "verification_outbox", "member_contacts"] {
        let labels = [("projection", projection)];
        scrape.exactly("contactd_projection_active", &labels, 1.0);
        scrape.at_least("contactd_projection_position", &labels, 0.0);
        scrape.at_least("contactd_projection_lag_events", &labels, 0.0);
        scrape.at_least("contactd_projection_lag_seconds", &labels, 0.0);
    }
    // The outbox projection has seen the send's event at least.
    scrape.at_least(
        "contactd_projection_position",
        &[("projection", "verification_outbox")],
        1.0,
    );

    scrape.at_least("contactd_db_pool_connections", &[("state", "in_use")], 0.0);
    scrape.at_least("contactd_db_pool_connections", &[("state", "idle")], 0.0);
    scrape.at_least("contactd_db_pool_max_connections", &[], 1.0);
    scrape.exactly("contactd_database_up", &[], 1.0);
    scrape.exactly(
        "contactd_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    server.stop().await;
}

async fn a_conflict_with_another_process_is_counted_and_decided_again(db: TestDb) {
    let mut first = TestServer::start(&db).await;
    let mut second = TestServer::start(&db).await;
    let contact = add(&mut first.client, ACCOUNT, "Tom").await;
    let update = |title: &str| {
        let mut update = update_request(&contact.contact_id);
        update.title = Some(title.to_owned());
        as_account(ACCOUNT, update)
    };
    // The first server remembers the contact as it wrote it; the second moves it on; the
    // first's next update is decided on what it remembers, refused, and decided again.
    first
        .client
        .update_message_contact(update("CEO"))
        .await
        .expect("update");
    second
        .client
        .update_message_contact(update("TechnicalDirector"))
        .await
        .expect("update elsewhere");
    first
        .client
        .update_message_contact(update("FinanceDirector"))
        .await
        .expect("update on stale state");
    let scrape = Scrape::of(&first).await;
    scrape.exactly("contactd_append_version_conflicts_total", &[], 1.0);
    scrape.exactly("contactd_append_retries_total", &[], 1.0);
    scrape.exactly(
        "contactd_rpc_requests_total",
        &[("rpc", "UpdateMessageContact"), ("code", "OK")],
        2.0,
    );
    // Each server counts its own calls: no registry is shared.
    Scrape::of(&second).await.exactly(
        "contactd_rpc_requests_total",
        &[("rpc", "UpdateMessageContact"), ("code", "OK")],
        1.0,
    );
    first.stop().await;
    second.stop().await;
}

async fn integration_events_are_counted_with_their_lag(db: TestDb) {
    let nats = contactd_testkit::NatsServer::start().await;
    let url = nats.url();
    let mut server = TestServer::start_with(&db, move |s| s.lifecycle.nats_url = Some(url)).await;
    let mut directory = directory_client(&server).await;
    let root = two_levels(&mut directory, ACCOUNT).await;
    let client = &mut server.client;
    let tom = add(client, ACCOUNT, "Tom").await.contact_id;
    verify_email(client, &db, &tom, "tom@example.com").await;
    associate(client, ACCOUNT, &tom, &[&root]).await.unwrap();
    // The three members of the directory are each told, once.
    let scrape = until(
        "three events published",
        Duration::from_secs(30),
        async || {
            let scrape = Scrape::of(&server).await;
            let published = scrape.value("contactd_integration_events_published_total", &[]);
            (published == Some(3.0)).then_some(scrape)
        },
    )
    .await;
    scrape.exactly("contactd_integration_publish_lag_seconds_count", &[], 3.0);
    scrape.at_least(
        "contactd_integration_publish_lag_seconds_bucket",
        &[("le", "+Inf")],
        3.0,
    );
    server.stop().await;
}

/// The `contactd_…` names in `text` (an alert rule's or a panel's expression).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("contactd_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// The `expr` of every rule, one line (`expr: …`) or a block (`expr: |` and the lines indented
/// deeper): only the expressions, since the rules' names and texts may say `contactd_` too.
fn rule_expressions(rules: &str) -> String {
    let mut expressions = String::new();
    let mut block_deeper_than = None;
    for line in rules.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(expr_indent) = block_deeper_than {
            if line.trim().is_empty() || indent > expr_indent {
                expressions.push_str(line);
                expressions.push('\n');
                continue;
            }
            block_deeper_than = None;
        }
        let Some(expression) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        match expression.trim() {
            "|" | ">" | "|-" | ">-" => block_deeper_than = Some(indent),
            one_line => {
                expressions.push_str(one_line);
                expressions.push('\n');
            }
        }
    }
    expressions
}

async fn every_metric_the_alerts_and_the_dashboard_use_is_served(db: TestDb) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let alerts = std::fs::read_to_string(format!("{root}/deploy/prometheus/alerts.yml"))
        .expect("the alert rules");
    let expressions = rule_expressions(&alerts);
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/deploy/grafana/dashboards/contactd.json"))
            .expect("the dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut panel_expressions = String::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            panel_expressions.push_str(target["expr"].as_str().expect("an expression"));
            panel_expressions.push('\n');
        }
    }
    let used_by_alerts = metric_names(&expressions);
    let used_by_dashboard = metric_names(&panel_expressions);
    assert!(used_by_alerts.len() >= 4, "{used_by_alerts:?}");
    assert!(used_by_dashboard.len() >= 8, "{used_by_dashboard:?}");

    let mut server = TestServer::start(&db).await;
    // The call families are served from the first call on; the others from the start.
    add(&mut server.client, ACCOUNT, "Tom").await;
    let served = Scrape::of(&server).await.names();
    for name in used_by_alerts.iter().chain(&used_by_dashboard) {
        assert!(
            served.contains(name),
            "{name} is not served; the server serves {served:?}"
        );
    }
    server.stop().await;
}
