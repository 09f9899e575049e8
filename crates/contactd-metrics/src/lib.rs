//! The service's Prometheus metrics (ADR 12): one registry per server, its typed families, the
//! [`Recorder`] that the front end, the use cases, the workers and the stores report to, and
//! the gauges read at scrape time from what the service already keeps (the projections'
//! status, the database's health, the pool). Nothing here is global: each server builds its
//! own [`Metrics`], so that tests run many servers in one process, each counting its own.

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use contactd_app::{
    AttemptOutcome, DatabaseHealth, PoolUsage, ProjectionMetrics, Recorder, Recording,
};
use contactd_domain::Channel;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The media type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Call latencies in seconds: a call on a warm store takes about a millisecond, one that waits
/// for a group or a busy pool tens of milliseconds, a call at its deadline seconds (10 s is the
/// default longest call). Live streams, which last as long as their follower, all land above
/// the last bucket; their counts still tell how they ended.
const CALL_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Appends per group commit: powers of two up to the largest group (128).
const GROUP_APPENDS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Waits for a connection in seconds: none when one is idle (tens of microseconds), up to the
/// pool's acquire timeout when it is exhausted.
const ACQUIRE_SECONDS: [f64; 10] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// Seconds from an event's commit to its integration event's acknowledgement: milliseconds
/// while NATS answers, minutes while it is down and the worker backs off.
const PUBLISH_LAG_SECONDS: [f64; 11] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

type CallLabels = [(&'static str, &'static str); 2];
type OneLabel = [(&'static str, &'static str); 1];
type FloatGauge = Gauge<f64, AtomicU64>;

/// The pool read at each scrape while it lives ([`Metrics::read_pool`]).
#[derive(Debug)]
#[must_use = "the pool is read only while this lives"]
pub struct PoolReading(Metrics);

impl Drop for PoolReading {
    fn drop(&mut self) {
        self.0.sources().pool = None;
    }
}

/// The metrics of one server. Clones share them.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    call_seconds: Family<CallLabels, Histogram>,
    events_appended: Counter,
    version_conflicts: Counter,
    decided_again: Counter,
    group_appends: Histogram,
    sent: Family<OneLabel, Counter>,
    failed: Family<OneLabel, Counter>,
    retried: Family<OneLabel, Counter>,
    dead_lettered: Family<OneLabel, Counter>,
    outbox_depth: Gauge,
    published: Counter,
    publish_lag: Histogram,
    acquire_seconds: Histogram,
    pool_connections: Family<OneLabel, Gauge>,
    pool_max: Gauge,
    database_up: Gauge,
    projection_active: Family<OneLabel, Gauge>,
    projection_position: Family<OneLabel, Gauge>,
    projection_lag_events: Family<OneLabel, Gauge>,
    projection_lag_seconds: Family<OneLabel, FloatGauge>,
    sources: Mutex<Sources>,
}

/// What the gauges read at scrape time are read from, handed over as the server is built.
#[derive(Default)]
struct Sources {
    projections: Option<ProjectionMetrics>,
    database: Option<DatabaseHealth>,
    pool: Option<Box<dyn Fn() -> PoolUsage + Send + Sync>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("projections", &self.projections.is_some())
            .field("database", &self.database.is_some())
            .field("pool", &self.pool.is_some())
            .finish()
    }
}

fn call_histogram() -> Histogram {
    Histogram::new(CALL_SECONDS)
}

impl Metrics {
    /// Every family of the service, registered under `contactd_`, with the build's `version`.
    pub fn new(version: &str) -> Self {
        let mut registry = Registry::with_prefix("contactd");
        let inner = Inner {
            calls: Family::default(),
            call_seconds: Family::new_with_constructor(call_histogram as fn() -> Histogram),
            events_appended: Counter::default(),
            version_conflicts: Counter::default(),
            decided_again: Counter::default(),
            group_appends: Histogram::new(GROUP_APPENDS),
            sent: Family::default(),
            failed: Family::default(),
            retried: Family::default(),
            dead_lettered: Family::default(),
            outbox_depth: Gauge::default(),
            published: Counter::default(),
            publish_lag: Histogram::new(PUBLISH_LAG_SECONDS),
            acquire_seconds: Histogram::new(ACQUIRE_SECONDS),
            pool_connections: Family::default(),
            pool_max: Gauge::default(),
            database_up: Gauge::default(),
            projection_active: Family::default(),
            projection_position: Family::default(),
            projection_lag_events: Family::default(),
            projection_lag_seconds: Family::default(),
            sources: Mutex::new(Sources::default()),
            registry: Registry::default(),
        };
        registry.register(
            "build",
            "The build that serves: its version",
            Info::new([("version", version.to_owned())]),
        );
        registry.register(
            "rpc_requests",
            "gRPC calls answered, by RPC and gRPC status code",
            inner.calls.clone(),
        );
        registry.register_with_unit(
            "rpc_duration",
            "Time from a call's arrival to its answer (a stream: to its end), by RPC and code",
            Unit::Seconds,
            inner.call_seconds.clone(),
        );
        registry.register(
            "events_appended",
            "Events committed by commands on contacts and directories",
            inner.events_appended.clone(),
        );
        registry.register(
            "append_version_conflicts",
            "Appends refused because the stream had moved on (another writer came first)",
            inner.version_conflicts.clone(),
        );
        registry.register(
            "append_retries",
            "Commands decided again on fresh state after a version conflict",
            inner.decided_again.clone(),
        );
        registry.register(
            "group_commit_appends",
            "Appends written together by one group commit",
            inner.group_appends.clone(),
        );
        registry.register(
            "dispatch_sent",
            "Verification messages sent, by channel",
            inner.sent.clone(),
        );
        registry.register(
            "dispatch_failed",
            "Attempts at verification messages that failed and will be tried again, by channel",
            inner.failed.clone(),
        );
        registry.register(
            "dispatch_retried",
            "Attempts at verification messages after an earlier attempt, by channel",
            inner.retried.clone(),
        );
        registry.register(
            "dispatch_dead_lettered",
            "Verification messages given up on, by channel",
            inner.dead_lettered.clone(),
        );
        registry.register(
            "outbox_depth",
            "Verification messages waiting to be sent, as the dispatcher last read it",
            inner.outbox_depth.clone(),
        );
        registry.register(
            "integration_events_published",
            "Integration events acknowledged by NATS JetStream",
            inner.published.clone(),
        );
        registry.register_with_unit(
            "integration_publish_lag",
            "Time from an event's commit to its integration event's acknowledgement",
            Unit::Seconds,
            inner.publish_lag.clone(),
        );
        registry.register_with_unit(
            "db_pool_acquire",
            "Time a group commit or group read waited for a database connection",
            Unit::Seconds,
            inner.acquire_seconds.clone(),
        );
        registry.register(
            "db_pool_connections",
            "The store's open database connections, by state (in_use, idle)",
            inner.pool_connections.clone(),
        );
        registry.register(
            "db_pool_max_connections",
            "The most connections the store's pools open",
            inner.pool_max.clone(),
        );
        registry.register(
            "database_up",
            "1 while the database answers and holds this build's migrations, else 0",
            inner.database_up.clone(),
        );
        registry.register(
            "projection_active",
            "1 while this process holds the projection, else 0",
            inner.projection_active.clone(),
        );
        registry.register(
            "projection_position",
            "The global position of the last event the projection processed here",
            inner.projection_position.clone(),
        );
        registry.register(
            "projection_lag_events",
            "Events committed after the projection's checkpoint (an estimate)",
            inner.projection_lag_events.clone(),
        );
        registry.register_with_unit(
            "projection_lag",
            "Age of the oldest event the projection has not processed; 0 when caught up",
            Unit::Seconds,
            inner.projection_lag_seconds.clone(),
        );
        // Every channel's counters are served from the start, at 0, so that the first dead
        // letter is an increase that `increase()` sees, not a series that appears.
        for channel in [Channel::Email, Channel::Phone] {
            let labels = channel_label(channel);
            for family in [
                &inner.sent,
                &inner.failed,
                &inner.retried,
                &inner.dead_lettered,
            ] {
                drop(family.get_or_create(&labels));
            }
        }
        Self(Arc::new(Inner { registry, ..inner }))
    }

    /// The recorder that reports into these metrics.
    pub fn recording(&self) -> Recording {
        Recording::new(self.clone())
    }

    /// Reads the projections' status at each scrape.
    pub fn read_projections(&self, projections: ProjectionMetrics) {
        self.sources().projections = Some(projections);
    }

    /// Reads the database's health at each scrape.
    pub fn read_database(&self, database: DatabaseHealth) {
        self.sources().database = Some(database);
    }

    /// Reads the store's pool at each scrape, until the returned guard is dropped. The reader
    /// holds the store and the store reports into these metrics: the guard breaks that cycle,
    /// or a stopped server's store (and the embedded store's lock) would never be released.
    pub fn read_pool(&self, pool: impl Fn() -> PoolUsage + Send + Sync + 'static) -> PoolReading {
        self.sources().pool = Some(Box::new(pool));
        PoolReading(self.clone())
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, Sources> {
        self.0
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The metrics now, in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        self.refresh();
        let mut text = String::new();
        if encode(&mut text, &self.0.registry).is_err() {
            // Writing to a String cannot fail; should an encoder, the scrape says so.
            text.clear();
            let _ = writeln!(text, "# the metrics could not be encoded\n# EOF");
        }
        text
    }

    /// Sets the gauges read at scrape time from their sources.
    fn refresh(&self) {
        let inner = &self.0;
        let sources = self.sources();
        if let Some(database) = &sources.database {
            inner.database_up.set(i64::from(database.is_up()));
        }
        if let Some(pool) = &sources.pool {
            let usage = pool();
            let connections = &inner.pool_connections;
            connections
                .get_or_create(&[("state", "in_use")])
                .set(i64::from(usage.in_use));
            connections
                .get_or_create(&[("state", "idle")])
                .set(i64::from(usage.idle));
            inner.pool_max.set(i64::from(usage.max));
        }
        if let Some(projections) = &sources.projections {
            for (name, status) in projections.snapshot() {
                let labels = [("projection", name)];
                inner
                    .projection_active
                    .get_or_create(&labels)
                    .set(i64::from(status.active));
                inner
                    .projection_position
                    .get_or_create(&labels)
                    .set(status.position.parts().1);
                inner
                    .projection_lag_events
                    .get_or_create(&labels)
                    .set(status.lag_events);
                inner
                    .projection_lag_seconds
                    .get_or_create(&labels)
                    .set(status.lag_seconds);
            }
        }
    }
}

/// The channel as the metrics name it: `email`, or `sms` for a phone number.
fn channel_label(channel: Channel) -> OneLabel {
    [(
        "channel",
        match channel {
            Channel::Email => "email",
            Channel::Phone => "sms",
        },
    )]
}

impl Recorder for Metrics {
    fn call_answered(&self, rpc: &'static str, code: &'static str, took: Duration) {
        let labels = [("rpc", rpc), ("code", code)];
        self.0.calls.get_or_create(&labels).inc();
        self.0
            .call_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    fn events_appended(&self, count: usize) {
        self.0.events_appended.inc_by(count as u64);
    }

    fn version_conflict(&self) {
        self.0.version_conflicts.inc();
    }

    fn decided_again(&self) {
        self.0.decided_again.inc();
    }

    fn group_committed(&self, appends: usize) {
        self.0.group_appends.observe(appends as f64);
    }

    fn delivery_attempted(&self, channel: Channel, retry: bool, outcome: AttemptOutcome) {
        let labels = channel_label(channel);
        if retry {
            self.0.retried.get_or_create(&labels).inc();
        }
        let counter = match outcome {
            AttemptOutcome::Sent => &self.0.sent,
            AttemptOutcome::Failed => &self.0.failed,
            AttemptOutcome::DeadLettered => &self.0.dead_lettered,
        };
        counter.get_or_create(&labels).inc();
    }

    fn outbox_depth(&self, pending: u64) {
        self.0
            .outbox_depth
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    fn integration_published(&self, lag: Duration) {
        self.0.published.inc();
        self.0.publish_lag.observe(lag.as_secs_f64());
    }

    fn connection_acquired(&self, waited: Duration) {
        self.0.acquire_seconds.observe(waited.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_server_counts_into_its_own_registry() {
        let (one, other) = (Metrics::new("1.2.3"), Metrics::new("1.2.3"));
        one.call_answered("AddMessageContact", "OK", Duration::from_millis(2));
        let text = one.render();
        assert!(
            text.contains(r#"contactd_rpc_requests_total{rpc="AddMessageContact",code="OK"} 1"#),
            "{text}"
        );
        assert!(
            !other.render().contains("AddMessageContact"),
            "nothing is shared"
        );
        assert!(
            text.contains(r#"contactd_build_info{version="1.2.3"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn every_channel_is_served_at_zero_from_the_start() {
        let text = Metrics::new("0").render();
        for family in ["sent", "failed", "retried", "dead_lettered"] {
            for channel in ["email", "sms"] {
                let line = format!(r#"contactd_dispatch_{family}_total{{channel="{channel}"}} 0"#);
                assert!(text.contains(&line), "{line} in {text}");
            }
        }
    }

    #[test]
    fn a_retry_counts_beside_its_outcome() {
        let metrics = Metrics::new("0");
        metrics.delivery_attempted(Channel::Phone, true, AttemptOutcome::DeadLettered);
        let text = metrics.render();
        assert!(text.contains(r#"contactd_dispatch_retried_total{channel="sms"} 1"#));
        assert!(text.contains(r#"contactd_dispatch_dead_lettered_total{channel="sms"} 1"#));
        assert!(text.contains(r#"contactd_dispatch_failed_total{channel="sms"} 0"#));
    }
}
