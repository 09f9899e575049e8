//! Live streams of events (`StreamEvents`): how many may be open, per account and in all, and
//! the bounded buffer between the task that reads the log and the client. A client that stops
//! reading holds at most the buffer; once it has not taken an event for the stall timeout, its
//! reader lets go of the log and the buffer, and the stream ends with `RESOURCE_EXHAUSTED`
//! naming the position to resume from.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use contactd_domain::AccountId;
use tokio::sync::{Notify, watch};
use tokio_stream::Stream;
use tonic::Status;

use crate::proto::Event;

/// Limits of the live streams.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Live streams one account may hold open.
    pub per_account: usize,
    /// Live streams open in all.
    pub total: usize,
    /// Events held for one stream whose client has not taken them yet.
    pub buffer_events: usize,
    /// How long a full buffer may wait for its client before the stream is ended.
    pub stall_timeout: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            per_account: 8,
            total: 1024,
            buffer_events: 8,
            stall_timeout: Duration::from_secs(30),
        }
    }
}

/// The streams open now, counted per account and in all.
#[derive(Debug)]
pub(crate) struct OpenStreams {
    settings: StreamSettings,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_account: HashMap<AccountId, usize>,
}

impl OpenStreams {
    pub(crate) fn new(settings: StreamSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            counts: Mutex::new(Counts::default()),
        })
    }

    pub(crate) fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    /// A place for one more stream of `account`, or none while the limits are reached.
    pub(crate) fn open(self: &Arc<Self>, account: &AccountId) -> Option<StreamPermit> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let held = counts.per_account.get(account).copied().unwrap_or(0);
        if counts.total >= self.settings.total || held >= self.settings.per_account {
            return None;
        }
        counts.total += 1;
        counts.per_account.insert(account.clone(), held + 1);
        Some(StreamPermit {
            streams: Arc::clone(self),
            account: account.clone(),
        })
    }
}

/// One open stream's place; given back when the stream ends.
#[derive(Debug)]
pub(crate) struct StreamPermit {
    streams: Arc<OpenStreams>,
    account: AccountId,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut counts = self
            .streams
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(held) = counts.per_account.get_mut(&self.account) {
            *held -= 1;
            if *held == 0 {
                counts.per_account.remove(&self.account);
            }
        }
    }
}

/// What the reader and the client's stream share.
#[derive(Debug, Default)]
struct Buffer {
    events: VecDeque<Event>,
    /// The status the stream ends with once the events before it are taken.
    end: Option<Status>,
    /// The reader is done: after `events` (and `end`), the stream ends.
    finished: bool,
    client: Option<Waker>,
}

#[derive(Debug)]
struct Shared {
    buffer: Mutex<Buffer>,
    /// Signalled each time the client takes an event.
    space: Notify,
}

impl Shared {
    fn buffer(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The reader's end of a stream's buffer.
#[derive(Debug)]
pub(crate) struct EventSender {
    shared: Arc<Shared>,
    capacity: usize,
    stall_timeout: Duration,
    /// Closed when the client's stream is dropped: the client went away.
    client_gone: watch::Receiver<()>,
}

/// Why the reader stops sending.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// The client went away.
    Gone,
    /// The client took nothing for the stall timeout; the stream now ends.
    Stalled,
}

impl EventSender {
    /// Queues `event`, waiting while the buffer is full. After the stall timeout the waiting
    /// events are dropped and the stream ends with `stalled(first position not delivered)`.
    pub(crate) async fn send(
        &mut self,
        event: Event,
        stalled: impl FnOnce(i64) -> Status,
    ) -> Result<(), Stopped> {
        let deadline = tokio::time::Instant::now() + self.stall_timeout;
        loop {
            {
                let mut buffer = self.shared.buffer();
                if self.client_gone.has_changed().is_err() {
                    return Err(Stopped::Gone);
                }
                if buffer.events.len() < self.capacity {
                    buffer.events.push_back(event);
                    if let Some(client) = buffer.client.take() {
                        client.wake();
                    }
                    return Ok(());
                }
            }
            tokio::select! {
                () = self.shared.space.notified() => {}
                _ = self.client_gone.changed() => return Err(Stopped::Gone),
                () = tokio::time::sleep_until(deadline) => {
                    let mut buffer = self.shared.buffer();
                    let resume = buffer
                        .events
                        .front()
                        .map_or(event.global_position, |first| first.global_position);
                    buffer.events.clear();
                    buffer.end = Some(stalled(resume));
                    if let Some(client) = buffer.client.take() {
                        client.wake();
                    }
                    return Err(Stopped::Stalled);
                }
            }
        }
    }

    /// Ends the stream with `status` after the events already queued.
    pub(crate) fn end(&self, status: Status) {
        let mut buffer = self.shared.buffer();
        buffer.end = Some(status);
        if let Some(client) = buffer.client.take() {
            client.wake();
        }
    }

    /// Completes when the client's stream is dropped.
    pub(crate) async fn client_gone(&mut self) {
        while self.client_gone.changed().await.is_ok() {}
    }
}

impl Drop for EventSender {
    fn drop(&mut self) {
        let mut buffer = self.shared.buffer();
        buffer.finished = true;
        if let Some(client) = buffer.client.take() {
            client.wake();
        }
    }
}

/// The client's end: the events in order, then the ending status if there is one.
#[derive(Debug)]
pub struct EventStream {
    shared: Arc<Shared>,
    /// Dropped with the stream, which tells the reader that the client went away.
    _alive: watch::Sender<()>,
    /// The stream's place among the open streams, given back when it is dropped.
    _permit: StreamPermit,
}

/// A bounded buffer for one stream of `permit`'s account.
pub(crate) fn buffer(
    settings: &StreamSettings,
    permit: StreamPermit,
) -> (EventSender, EventStream) {
    let shared = Arc::new(Shared {
        buffer: Mutex::new(Buffer::default()),
        space: Notify::new(),
    });
    let (alive, client_gone) = watch::channel(());
    let sender = EventSender {
        shared: Arc::clone(&shared),
        capacity: settings.buffer_events.max(1),
        stall_timeout: settings.stall_timeout,
        client_gone,
    };
    let stream = EventStream {
        shared,
        _alive: alive,
        _permit: permit,
    };
    (sender, stream)
}

impl Stream for EventStream {
    type Item = Result<Event, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut buffer = self.shared.buffer();
        if let Some(event) = buffer.events.pop_front() {
            drop(buffer);
            self.shared.space.notify_one();
            return Poll::Ready(Some(Ok(event)));
        }
        if let Some(status) = buffer.end.take() {
            buffer.finished = true;
            return Poll::Ready(Some(Err(status)));
        }
        if buffer.finished {
            return Poll::Ready(None);
        }
        buffer.client = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    use super::*;

    fn account(raw: &str) -> AccountId {
        AccountId::parse(raw).expect("account")
    }

    fn event(position: i64) -> Event {
        Event {
            global_position: position,
            ..Event::default()
        }
    }

    fn settings() -> StreamSettings {
        StreamSettings {
            per_account: 2,
            total: 3,
            buffer_events: 2,
            stall_timeout: Duration::from_millis(50),
        }
    }

    #[test]
    fn streams_are_limited_per_account_and_in_all_and_given_back() {
        let streams = OpenStreams::new(settings());
        let first = streams.open(&account("1")).expect("first");
        let _second = streams.open(&account("1")).expect("second");
        assert!(streams.open(&account("1")).is_none(), "per account");
        let _third = streams.open(&account("2")).expect("another account");
        assert!(streams.open(&account("3")).is_none(), "in all");
        drop(first);
        assert!(streams.open(&account("1")).is_some(), "given back");
    }

    #[tokio::test]
    async fn events_arrive_in_order_then_the_ending_status() {
        let streams = OpenStreams::new(settings());
        let permit = streams.open(&account("1")).expect("permit");
        let (mut sender, mut stream) = buffer(&settings(), permit);
        let reader = tokio::spawn(async move {
            for position in 1..=5 {
                sender
                    .send(event(position), |_| Status::internal("stalled"))
                    .await
                    .expect("sent");
            }
            sender.end(Status::unavailable("done"));
        });
        let mut positions = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => positions.push(event.global_position),
                Err(status) => {
                    assert_eq!(status.code(), tonic::Code::Unavailable);
                    break;
                }
            }
        }
        reader.await.expect("reader");
        assert_eq!(positions, [1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_ended_with_where_to_resume() {
        let streams = OpenStreams::new(settings());
        let permit = streams.open(&account("1")).expect("permit");
        let (mut sender, mut stream) = buffer(&settings(), permit);
        for position in 1..=2 {
            sender
                .send(event(position), |_| Status::internal("not yet"))
                .await
                .expect("room");
        }
        let stopped = sender
            .send(event(3), |resume| {
                Status::resource_exhausted(resume.to_string())
            })
            .await;
        assert_eq!(stopped, Err(Stopped::Stalled));
        drop(sender);
        let ending = stream.next().await.expect("an item").expect_err("the end");
        assert_eq!(ending.code(), tonic::Code::ResourceExhausted);
        assert_eq!(ending.message(), "1", "nothing was delivered: resume at 1");
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn the_reader_learns_that_the_client_went_away() {
        let streams = OpenStreams::new(settings());
        let permit = streams.open(&account("1")).expect("permit");
        let (mut sender, stream) = buffer(&settings(), permit);
        drop(stream);
        assert_eq!(
            sender.send(event(1), |_| Status::internal("")).await,
            Err(Stopped::Gone)
        );
        assert!(streams.open(&account("1")).is_some());
        assert!(
            streams.open(&account("1")).is_some(),
            "the permit came back"
        );
    }
}
