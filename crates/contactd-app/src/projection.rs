//! Projections: named consumers of the global log, each with a checkpoint in log order, and
//! the runner that feeds them, written once for every store. A batch is applied in the unit of
//! work (the transaction) that moves the checkpoint, so read models in the store take effect
//! once; a projection with side effects outside the store sees a batch again if the process
//! dies before the commit (at least once). Each projection is active in exactly one process:
//! the one that took it from its store ([`ProjectionStore::take_projection`]), which keeps it
//! until its lease is lost or released.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tracing::{Instrument, debug, debug_span, info, warn};

use crate::port::{LogPosition, Opened, RecordedEvent, StoreError};

/// A named consumer of the log, applying its batches in `W`: the store's unit of work, one
/// transaction. The projection names what it reads and writes through the model traits its
/// `W` implements (`ActivityModel`, `OutboxModel`, `MemberContactsModel`), so that it is
/// written once for every store.
pub trait Projection<W: Send>: Send + Sync + 'static {
    /// Unique among projections; the key of its checkpoint (and, on PostgreSQL, its lock).
    fn name(&self) -> &'static str;

    /// Applies a batch inside `work`: the unit of work that then moves the checkpoint.
    fn apply(
        &self,
        work: &mut W,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Empties the projection's read model before a rebuild. `None` for a projection with side
    /// effects outside the store: replaying it would repeat them, so it is never rebuilt.
    fn clear(&self, work: &mut W) -> Option<impl Future<Output = Result<(), StoreError>> + Send>;

    /// Called once a batch has committed: where a projection tells this process's consumers
    /// of its read model that there is more to read.
    fn committed(&self, _events: &[RecordedEvent]) {}

    /// Whether `apply` has anything to do with the event. A batch of events none of which
    /// concerns the projection is not applied: no unit of work is opened for it, and the
    /// checkpoint passes it at the next batch that is, or within [`SKIPPED_CHECKPOINT`].
    fn concerns(&self, _event: &RecordedEvent) -> bool {
        true
    }

    /// The events whose personal fields `apply` reads (ADR 13): none, unless it says so. The
    /// others reach it with those fields redacted, at no cost of keys or decryption.
    fn opened(&self) -> Opened {
        Opened::Only(&[])
    }
}

/// A projection this process took: its lease, and where its checkpoint stood when taken.
#[derive(Debug)]
pub struct TakenProjection<L> {
    pub lease: L,
    pub checkpoint: LogPosition,
}

/// What a store does for the runner: the few steps that differ from store to store, below
/// the loop that is the same for all ([`run_projection`]).
pub trait ProjectionStore: Send + Sync + 'static {
    /// The unit of work a batch is applied in: one transaction.
    type Work<'w>: Send;

    /// A projection held by this process: what keeps every other process from running it
    /// while held (PostgreSQL: a connection holding an advisory lock), and where its batches
    /// are read and written.
    type Lease: Send;

    /// Takes the projection for this process if no other holds it (`None` if one does):
    /// creates its checkpoint if it is new, records `holder` as holding it, and answers where
    /// the checkpoint stands.
    fn take_projection(
        &self,
        name: &'static str,
        holder: &str,
    ) -> impl Future<Output = Result<Option<TakenProjection<Self::Lease>>, StoreError>> + Send;

    /// Up to `limit` events after `after`, in log order, as [`crate::EventLog::read_log`]
    /// reads them, but with the personal fields of only the events `opened` names readable.
    fn read_batch(
        &self,
        lease: &mut Self::Lease,
        after: LogPosition,
        limit: u32,
        opened: Opened,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Applies a batch and moves the checkpoint from `from` to `to`, in one unit of work. The
    /// checkpoint is compared first: if it is no longer at `from` (a rebuild ran, or another
    /// process worked while this one's lease was lost), nothing is applied and this fails.
    fn apply_batch<P>(
        &self,
        lease: &mut Self::Lease,
        projection: &P,
        from: LogPosition,
        to: LogPosition,
        batch: &[RecordedEvent],
    ) -> impl Future<Output = Result<(), StoreError>> + Send
    where
        P: for<'w> Projection<Self::Work<'w>>;

    /// Moves the checkpoint from `from` to `to` past batches that did not concern the
    /// projection, if it is still at `from` (compared and set at once); fails if it moved.
    fn pass_batches(
        &self,
        lease: &mut Self::Lease,
        from: LogPosition,
        to: LogPosition,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The largest global position of the log, if it holds any event: how far behind the
    /// projection is.
    fn newest_global_position(
        &self,
        lease: &mut Self::Lease,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// Gives the projection up on shutdown, so that another process can take it at once.
    fn release(&self, lease: Self::Lease) -> impl Future<Output = ()> + Send;

    /// Changes whenever the log may have grown (here or, as far as the store learns of it, in
    /// another process): wakes an idle runner before its poll.
    fn log_changes(&self) -> watch::Receiver<u64>;
}

/// How long a checkpoint may lag behind batches that concerned its projection not at all.
/// Reading them again after a restart costs nothing but the read.
pub const SKIPPED_CHECKPOINT: Duration = Duration::from_secs(1);

/// How a runner paces itself.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub batch_size: u32,
    /// How often an idle projection looks at the log when nothing woke it.
    pub poll_interval: Duration,
    /// How often a process that does not hold a projection tries to take it over.
    pub takeover_interval: Duration,
    /// After a batch that was not full (the projection has caught up), how long to let events
    /// gather before the next one: under a steady stream of appends this turns a transaction
    /// (and an fsync) per append into one per interval, at the price of that much lag.
    pub gather_interval: Duration,
    /// Names this process to operators as the projection's holder.
    pub holder: String,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            // As often as the log's other readers poll: waking is what keeps lag short, the
            // poll only catches what no wake-up announced.
            poll_interval: Duration::from_millis(500),
            takeover_interval: Duration::from_secs(1),
            gather_interval: Duration::from_millis(50),
            holder: format!("pid {}", std::process::id()),
        }
    }
}

/// What a projection's runner reports: where it is and how far behind.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionStatus {
    /// Whether this process holds the projection now.
    pub active: bool,
    pub position: LogPosition,
    /// Events committed after the checkpoint (an estimate from global positions).
    pub lag_events: i64,
    /// How old the oldest unprocessed event is, in seconds; 0 when caught up.
    pub lag_seconds: f64,
}

/// The status of every projection of this process: the metrics seam that an exporter reads.
#[derive(Debug, Clone, Default)]
pub struct ProjectionMetrics(Arc<Mutex<BTreeMap<&'static str, ProjectionStatus>>>);

impl ProjectionMetrics {
    pub fn snapshot(&self) -> BTreeMap<&'static str, ProjectionStatus> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn set(&self, name: &'static str, status: ProjectionStatus) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(name, status);
        }
    }
}

/// Why a runner stopped leading.
#[derive(Debug)]
enum Lead {
    /// Another process holds the projection.
    Elsewhere,
    /// Shutdown was asked for.
    Stopped,
}

/// Runs `projection` on `store` whenever this process can take it, until `shutdown` turns
/// true.
pub async fn run_projection<S, P>(
    store: S,
    projection: Arc<P>,
    settings: RunnerSettings,
    metrics: ProjectionMetrics,
    mut shutdown: watch::Receiver<bool>,
) where
    S: ProjectionStore,
    P: for<'w> Projection<S::Work<'w>>,
{
    let name = projection.name();
    loop {
        if *shutdown.borrow() {
            return;
        }
        match lead(
            &store,
            projection.as_ref(),
            &settings,
            &metrics,
            &mut shutdown,
        )
        .await
        {
            Ok(Lead::Stopped) => return,
            Ok(Lead::Elsewhere) => {}
            Err(error) => {
                warn!(projection = name, %error, "projection interrupted; will try again")
            }
        }
        metrics.set(name, idle_status());
        tokio::select! {
            _ = shutdown.changed() => {}
            () = tokio::time::sleep(settings.takeover_interval) => {}
        }
    }
}

fn idle_status() -> ProjectionStatus {
    ProjectionStatus {
        active: false,
        position: LogPosition::START,
        lag_events: 0,
        lag_seconds: 0.0,
    }
}

/// Takes the projection if no other process holds it and works until shutdown or until the
/// store fails (which, on PostgreSQL, may have cost the lease).
async fn lead<S, P>(
    store: &S,
    projection: &P,
    settings: &RunnerSettings,
    metrics: &ProjectionMetrics,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Lead, StoreError>
where
    S: ProjectionStore,
    P: for<'w> Projection<S::Work<'w>>,
{
    let name = projection.name();
    let Some(TakenProjection {
        mut lease,
        checkpoint,
    }) = store.take_projection(name, &settings.holder).await?
    else {
        return Ok(Lead::Elsewhere);
    };
    let mut after = checkpoint;
    // Where the stored checkpoint stands, and since when: behind `after` while only batches
    // that did not concern the projection were passed.
    let mut saved = (after, tokio::time::Instant::now());
    info!(projection = name, checkpoint = ?after, "projection active in this process");
    let mut changes = store.log_changes();
    loop {
        if *shutdown.borrow() {
            if saved.0 != after {
                store.pass_batches(&mut lease, saved.0, after).await?;
            }
            store.release(lease).await;
            return Ok(Lead::Stopped);
        }
        // Mark the changes seen before reading, so that one arriving during the read wakes
        // the next wait instead of being lost.
        changes.borrow_and_update();
        let batch = store
            .read_batch(&mut lease, after, settings.batch_size, projection.opened())
            .await?;
        let Some(last) = batch.last() else {
            if saved.0 != after {
                store.pass_batches(&mut lease, saved.0, after).await?;
                saved = (after, tokio::time::Instant::now());
            }
            metrics.set(
                name,
                ProjectionStatus {
                    active: true,
                    position: after,
                    lag_events: 0,
                    lag_seconds: 0.0,
                },
            );
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = changes.changed() => {}
                () = tokio::time::sleep(settings.poll_interval) => {}
            }
            continue;
        };
        let next = last.position;
        if batch.iter().any(|event| projection.concerns(event)) {
            let span = debug_span!(
                "projection_batch",
                projection = name,
                events = batch.len(),
                position = last.global_position
            );
            store
                .apply_batch(&mut lease, projection, saved.0, next, &batch)
                .instrument(span)
                .await?;
            projection.committed(&batch);
            saved = (next, tokio::time::Instant::now());
        } else if saved.1.elapsed() >= SKIPPED_CHECKPOINT {
            store.pass_batches(&mut lease, saved.0, next).await?;
            saved = (next, tokio::time::Instant::now());
        }
        after = next;
        let newest = store.newest_global_position(&mut lease).await?;
        let status = lag(newest, last);
        debug!(
            projection = name,
            position = last.global_position,
            lag_events = status.lag_events,
            lag_seconds = status.lag_seconds,
            "projected a batch"
        );
        metrics.set(name, status);
        if batch.len() < settings.batch_size as usize && !settings.gather_interval.is_zero() {
            tokio::select! {
                _ = shutdown.changed() => {}
                () = tokio::time::sleep(settings.gather_interval) => {}
            }
        }
    }
}

/// How far behind the log the projection is after a batch ending at `last`: global positions
/// beyond it (an estimate: positions have gaps), and its age if more remain.
fn lag(newest: Option<i64>, last: &RecordedEvent) -> ProjectionStatus {
    let lag_events = newest.map_or(0, |newest| (newest - last.global_position).max(0));
    let lag_seconds = if lag_events > 0 {
        (Utc::now() - last.metadata.recorded_at)
            .as_seconds_f64()
            .max(0.0)
    } else {
        0.0
    };
    ProjectionStatus {
        active: true,
        position: last.position,
        lag_events,
        lag_seconds,
    }
}
