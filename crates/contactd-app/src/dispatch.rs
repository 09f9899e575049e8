//! The dispatcher: sends the verification messages that the outbox projection recorded. Each
//! process runs one; they share the outbox by claiming messages with a lease that is committed
//! before the message is sent, so that no database transaction is open across the SMTP or HTTP
//! call, and a message is sent by exactly one process at a time. Every attempt's outcome is
//! recorded with its event (sent, failed and retried later, dead-lettered) in one transaction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use contactd_domain::{DeliveryEvent, DeliveryOutcome};
use rand::Rng;
use tokio::sync::watch;
use tracing::{debug, error, info, instrument, warn};
use uuid::Uuid;

use crate::codes::CodeSecret;
use crate::context::RequestId;
use crate::leased::{self, LeasedWork};
use crate::port::{
    DeliveryError, EventMetadata, Notification, Notifier, Outbox, OutboxMessage, StoreError,
};
use crate::recorder::{AttemptOutcome, Recording};
use crate::service::new_event_id;

/// How the dispatcher paces and bounds its work.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// Names this process in the leases it takes.
    pub owner: String,
    /// How long a claimed message is this process's alone. Longer than a send may take, so
    /// that a slow send is never taken over (and sent twice) while it still runs.
    pub lease: Duration,
    /// Attempts before a message is dead-lettered.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles with each further one, up to `retry_max`,
    /// and is jittered.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// The longest one send may take before it counts as failed.
    pub send_timeout: Duration,
    /// Messages sent at once: one that hangs holds back only its own slot.
    pub concurrency: usize,
    /// How often to look at the outbox when nothing woke the dispatcher (messages recorded by
    /// another process, leases that expired).
    pub poll_interval: Duration,
    /// The base of the confirmation links (`{public_url}/verify/{token}`).
    pub public_url: String,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            owner: format!("pid {}", std::process::id()),
            lease: Duration::from_secs(120),
            max_attempts: 8,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            send_timeout: Duration::from_secs(30),
            concurrency: 8,
            poll_interval: Duration::from_secs(1),
            public_url: "http://127.0.0.1:8080".to_owned(),
        }
    }
}

/// What the dispatcher did, counted since it started.
#[derive(Debug, Clone, Default)]
pub struct DispatchMetrics(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
}

/// A reading of [`DispatchMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchCounts {
    pub sent: u64,
    /// Attempts that failed and will be tried again.
    pub failed: u64,
    pub dead_lettered: u64,
}

impl DispatchMetrics {
    pub fn counts(&self) -> DispatchCounts {
        DispatchCounts {
            sent: self.0.sent.load(Ordering::Relaxed),
            failed: self.0.failed.load(Ordering::Relaxed),
            dead_lettered: self.0.dead_lettered.load(Ordering::Relaxed),
        }
    }

    fn count(&self, outcome: &DeliveryOutcome) {
        let counter = match outcome {
            DeliveryOutcome::Sent => &self.0.sent,
            DeliveryOutcome::Failed { .. } => &self.0.failed,
            DeliveryOutcome::DeadLettered { .. } => &self.0.dead_lettered,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl<O: Outbox, N: Notifier> LeasedWork for Dispatcher<O, N> {
    type Item = OutboxMessage;
    const WHAT: &'static str = "verification messages";

    fn concurrency(&self) -> usize {
        self.settings.concurrency
    }

    fn poll_interval(&self) -> Duration {
        self.settings.poll_interval
    }

    async fn claim(&self, limit: u32) -> Result<Vec<OutboxMessage>, StoreError> {
        self.read_depth().await;
        let settings = &self.settings;
        self.outbox
            .claim_due(&settings.owner, settings.lease, limit)
            .await
    }

    async fn attempt(self: Arc<Self>, message: OutboxMessage) {
        self.attempt_message(message).await
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.outbox.next_due().await
    }

    fn recorded(&self) -> watch::Receiver<u64> {
        self.outbox.recorded_messages()
    }
}

/// Sends the outbox's messages through a notifier.
#[derive(Debug)]
pub struct Dispatcher<O, N> {
    outbox: O,
    notifier: N,
    secret: CodeSecret,
    settings: DispatchSettings,
    metrics: DispatchMetrics,
    recording: Recording,
    /// When the outbox's depth was last read: at most once a poll interval, so that a busy
    /// dispatcher does not count the outbox before every claim.
    depth_read_at: Mutex<Option<tokio::time::Instant>>,
}

impl<O: Outbox, N: Notifier> Dispatcher<O, N> {
    pub fn new(outbox: O, notifier: N, secret: CodeSecret, mut settings: DispatchSettings) -> Self {
        // The owner of a lease must be this dispatcher alone, even beside another one of the
        // same process (as in tests), or one could record what the other sent.
        settings.owner = format!("{} #{}", settings.owner, Uuid::new_v4().simple());
        Self {
            outbox,
            notifier,
            secret,
            settings,
            metrics: DispatchMetrics::default(),
            recording: Recording::none(),
            depth_read_at: Mutex::new(None),
        }
    }

    /// Reports each attempt's outcome and the outbox's depth to `recording`.
    pub fn with_recording(mut self, recording: Recording) -> Self {
        self.recording = recording;
        self
    }

    async fn read_depth(&self) {
        let now = tokio::time::Instant::now();
        {
            let mut read_at = self
                .depth_read_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if read_at.is_some_and(|at| now < at + self.settings.poll_interval) {
                return;
            }
            *read_at = Some(now);
        }
        match self.outbox.pending().await {
            Ok(pending) => self.recording.outbox_depth(pending),
            Err(error) => debug!(%error, "reading the outbox's depth failed"),
        }
    }

    pub fn metrics(&self) -> DispatchMetrics {
        self.metrics.clone()
    }

    /// Sends due messages until `shutdown` turns true, then lets the sends in flight finish
    /// and record their outcome. Messages not yet claimed wait in the outbox for the next
    /// start, or for another process.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let metrics = self.metrics.clone();
        leased::run(self, shutdown).await;
        let counts = metrics.counts();
        info!(
            sent = counts.sent,
            failed = counts.failed,
            dead_lettered = counts.dead_lettered,
            "dispatcher stopped"
        );
    }

    /// One attempt at one message, and its outcome recorded. Its span names the correlation id
    /// of the call that asked for it (that call's trace id, if it was traced).
    #[instrument(name = "send_message", level = "debug", skip_all, fields(message_id = %message.message_id, contact_id = %message.contact_id, channel = message.recipient.channel().as_str(), attempt = message.attempt, correlation_id = %message.correlation_id))]
    async fn attempt_message(self: Arc<Self>, message: OutboxMessage) {
        let now = Utc::now();
        let outcome = if message.expires_at <= now {
            dead("the code expired before the message could be sent".to_owned())
        } else if message.attempt > self.settings.max_attempts {
            // Earlier attempts ended without a recorded outcome (their process died).
            dead(format!("{} attempts made", message.attempt - 1))
        } else {
            self.send(&message, now).await
        };
        self.record(&message, outcome).await;
    }

    async fn send(&self, message: &OutboxMessage, now: DateTime<Utc>) -> DeliveryOutcome {
        let notification = self.compose(message);
        let failure = match tokio::time::timeout(
            self.settings.send_timeout,
            self.notifier.deliver(&notification),
        )
        .await
        {
            Ok(Ok(delivered)) => {
                info!(
                    message_id = %message.message_id,
                    contact_id = %message.contact_id,
                    channel = message.recipient.channel().as_str(),
                    attempt = message.attempt,
                    via = delivered.via,
                    detail = delivered.detail.as_deref().unwrap_or(""),
                    "verification message sent"
                );
                return DeliveryOutcome::Sent;
            }
            Ok(Err(DeliveryError::Permanent(reason))) => return dead(reason),
            Ok(Err(DeliveryError::Transient(reason))) => reason,
            Err(_) => format!(
                "no answer within {} s",
                self.settings.send_timeout.as_secs()
            ),
        };
        let retry_at = now + self.backoff(message.attempt);
        if message.attempt >= self.settings.max_attempts {
            dead(format!("{failure}; {} attempts made", message.attempt))
        } else if retry_at >= message.expires_at {
            dead(format!(
                "{failure}; the code expires before another attempt"
            ))
        } else {
            DeliveryOutcome::Failed {
                reason: failure,
                retry_at,
            }
        }
    }

    fn compose(&self, message: &OutboxMessage) -> Notification {
        let token = self.secret.link_token(message.verification_id);
        Notification {
            message_id: message.message_id,
            contact_id: message.contact_id.clone(),
            contact_name: message.contact_name.clone(),
            recipient: message.recipient.clone(),
            code: self.secret.code(message.verification_id),
            expires_at: message.expires_at,
            link: format!(
                "{}/verify/{}",
                self.settings.public_url.trim_end_matches('/'),
                token.expose()
            ),
        }
    }

    /// Exponential back-off with jitter: after attempt n, between half and all of
    /// `retry_base · 2^(n-1)`, capped at `retry_max`.
    fn backoff(&self, attempt: u32) -> TimeDelta {
        let full = self
            .settings
            .retry_base
            .saturating_mul(2_u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.settings.retry_max);
        let jittered = full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
        TimeDelta::from_std(jittered).unwrap_or(TimeDelta::MAX)
    }

    /// Records the outcome with its event. A store that fails is tried again for as long as
    /// the lease lasts; after that the message is attempted again (by this process or
    /// another), which an SMS gateway recognises by the same idempotency key.
    async fn record(&self, message: &OutboxMessage, outcome: DeliveryOutcome) {
        let event = DeliveryEvent {
            message_id: message.message_id,
            contact_id: message.contact_id.clone(),
            channel: message.recipient.channel(),
            attempt: message.attempt,
            outcome,
        };
        let event_id = new_event_id();
        let metadata = EventMetadata {
            request_id: RequestId::generate().to_string(),
            account_id: message.account_id.clone(),
            caller: format!("dispatcher ({})", self.settings.owner),
            correlation_id: message.correlation_id.clone(),
            causation_id: message.message_id.to_string(),
            recorded_at: crate::context::now(),
        };
        let give_up = tokio::time::Instant::now() + self.settings.lease / 2;
        let mut pause = Duration::from_millis(100);
        loop {
            match self
                .outbox
                .record(&self.settings.owner, message, &event, event_id, &metadata)
                .await
            {
                Ok(true) => break,
                Ok(false) => {
                    warn!(message_id = %message.message_id, "another dispatcher took the message over; its outcome is not recorded here");
                    return;
                }
                Err(error) if tokio::time::Instant::now() < give_up => {
                    debug!(%error, "recording a delivery failed; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(error) => return record_failed(message, &error),
            }
        }
        self.metrics.count(&event.outcome);
        let counted = match &event.outcome {
            DeliveryOutcome::Sent => AttemptOutcome::Sent,
            DeliveryOutcome::Failed { .. } => AttemptOutcome::Failed,
            DeliveryOutcome::DeadLettered { .. } => AttemptOutcome::DeadLettered,
        };
        self.recording
            .delivery_attempted(event.channel, message.attempt > 1, counted);
        match &event.outcome {
            DeliveryOutcome::Sent => {}
            DeliveryOutcome::Failed { reason, retry_at } => warn!(
                message_id = %message.message_id,
                attempt = message.attempt,
                %reason,
                %retry_at,
                "sending a verification message failed; it will be tried again"
            ),
            DeliveryOutcome::DeadLettered { reason } => error!(
                message_id = %message.message_id,
                contact_id = %message.contact_id,
                attempt = message.attempt,
                %reason,
                "a verification message was dead-lettered"
            ),
        }
    }
}

fn dead(reason: String) -> DeliveryOutcome {
    DeliveryOutcome::DeadLettered { reason }
}

fn record_failed(message: &OutboxMessage, error: &StoreError) {
    error!(
        message_id = %message.message_id,
        %error,
        "recording a delivery failed; the message will be attempted again when its lease ends"
    );
}

#[cfg(test)]
mod tests {
    //! The dispatcher's decisions on one attempt, against an outbox and a notifier in memory.

    use std::sync::Mutex;

    use contactd_domain::{AccountId, ContactId, EmailAddress, VerificationId, VerificationTarget};

    use super::*;
    use crate::port::Delivered;

    #[derive(Default)]
    struct Recorded(Mutex<Vec<DeliveryEvent>>);

    impl Outbox for Arc<Recorded> {
        async fn claim_due(
            &self,
            _: &str,
            _: Duration,
            _: u32,
        ) -> Result<Vec<OutboxMessage>, StoreError> {
            Ok(vec![])
        }
        async fn record(
            &self,
            _: &str,
            _: &OutboxMessage,
            event: &DeliveryEvent,
            _: Uuid,
            metadata: &EventMetadata,
        ) -> Result<bool, StoreError> {
            assert!(metadata.caller.starts_with("dispatcher"));
            self.0.lock().unwrap().push(event.clone());
            Ok(true)
        }
        async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
            Ok(None)
        }
        async fn pending(&self) -> Result<u64, StoreError> {
            Ok(0)
        }
        fn recorded_messages(&self) -> watch::Receiver<u64> {
            watch::channel(0).1
        }
    }

    /// Answers every notification the same way, and counts them.
    struct Answering(
        Result<Delivered, DeliveryError>,
        Arc<Mutex<Vec<Notification>>>,
    );

    impl Notifier for Answering {
        async fn deliver(&self, notification: &Notification) -> Result<Delivered, DeliveryError> {
            self.1.lock().unwrap().push(notification.clone());
            self.0.clone()
        }
    }

    fn message(attempt: u32, expires_in: TimeDelta) -> OutboxMessage {
        OutboxMessage {
            message_id: Uuid::now_v7(),
            account_id: AccountId::parse("1").unwrap(),
            contact_id: ContactId::generate(),
            contact_name: "Tom".into(),
            recipient: VerificationTarget::Email(EmailAddress::parse("tom@example.com").unwrap()),
            verification_id: VerificationId::generate(),
            expires_at: Utc::now() + expires_in,
            attempt,
            recorded: 0,
            correlation_id: "corr".into(),
        }
    }

    type Sent = Arc<Mutex<Vec<Notification>>>;
    type InMemory = Arc<Dispatcher<Arc<Recorded>, Answering>>;

    fn dispatcher(answer: Result<Delivered, DeliveryError>) -> (InMemory, Arc<Recorded>, Sent) {
        let recorded = Arc::new(Recorded::default());
        let sent = Sent::default();
        let settings = DispatchSettings {
            max_attempts: 3,
            retry_base: Duration::from_secs(10),
            public_url: "https://contacts.example.com/".into(),
            ..DispatchSettings::default()
        };
        let dispatcher = Dispatcher::new(
            recorded.clone(),
            Answering(answer, sent.clone()),
            CodeSecret::generate(),
            settings,
        );
        (Arc::new(dispatcher), recorded, sent)
    }

    fn transient() -> Result<Delivered, DeliveryError> {
        Err(DeliveryError::Transient("smtp reply 451".into()))
    }

    async fn outcome_of(
        answer: Result<Delivered, DeliveryError>,
        message: OutboxMessage,
    ) -> (DeliveryOutcome, usize) {
        let (dispatcher, recorded, sent) = dispatcher(answer);
        dispatcher.clone().attempt(message).await;
        let events = recorded.0.lock().unwrap().clone();
        assert_eq!(events.len(), 1, "one outcome per attempt");
        let sends = sent.lock().unwrap().len();
        (events[0].outcome.clone(), sends)
    }

    #[tokio::test]
    async fn a_sent_message_carries_the_derived_code_and_a_link_under_the_public_url() {
        let (dispatcher, recorded, sent) = dispatcher(Ok(Delivered {
            via: "smtp",
            detail: None,
        }));
        let message = message(1, TimeDelta::minutes(15));
        dispatcher.clone().attempt(message.clone()).await;
        let notification = sent.lock().unwrap()[0].clone();
        assert_eq!(
            notification.code,
            dispatcher.secret.code(message.verification_id)
        );
        let token = dispatcher.secret.link_token(message.verification_id);
        assert_eq!(
            notification.link,
            format!("https://contacts.example.com/verify/{}", token.expose())
        );
        assert_eq!(notification.message_id, message.message_id);
        assert_eq!(recorded.0.lock().unwrap()[0].outcome, DeliveryOutcome::Sent);
        assert_eq!(dispatcher.metrics().counts().sent, 1);
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_after_a_jittered_back_off() {
        let before = Utc::now();
        let (outcome, sends) = outcome_of(transient(), message(2, TimeDelta::minutes(15))).await;
        assert_eq!(sends, 1);
        let DeliveryOutcome::Failed { reason, retry_at } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(reason, "smtp reply 451");
        // After attempt 2: between half and all of 10 s · 2.
        let wait = retry_at - before;
        assert!(
            wait >= TimeDelta::seconds(10) && wait <= TimeDelta::seconds(21),
            "{wait:?}"
        );
    }

    #[tokio::test]
    async fn the_last_attempt_a_permanent_refusal_or_an_expiring_code_dead_letters() {
        let (last, _) = outcome_of(transient(), message(3, TimeDelta::minutes(15))).await;
        assert!(
            matches!(&last, DeliveryOutcome::DeadLettered { reason } if reason.contains("3 attempts")),
            "{last:?}"
        );
        let permanent = Err(DeliveryError::Permanent("smtp reply 550".into()));
        let (refused, _) = outcome_of(permanent, message(1, TimeDelta::minutes(15))).await;
        assert_eq!(
            refused,
            DeliveryOutcome::DeadLettered {
                reason: "smtp reply 550".into()
            }
        );
        let (expiring, _) = outcome_of(transient(), message(1, TimeDelta::seconds(3))).await;
        assert!(
            matches!(&expiring, DeliveryOutcome::DeadLettered { reason } if reason.contains("expires")),
            "{expiring:?}"
        );
    }

    #[tokio::test]
    async fn an_expired_code_or_an_attempt_past_the_last_is_never_sent() {
        let delivered = || {
            Ok(Delivered {
                via: "smtp",
                detail: None,
            })
        };
        let (expired, sends) = outcome_of(delivered(), message(1, TimeDelta::seconds(-1))).await;
        assert!(matches!(expired, DeliveryOutcome::DeadLettered { .. }));
        assert_eq!(sends, 0);
        let (past, sends) = outcome_of(delivered(), message(4, TimeDelta::minutes(15))).await;
        assert!(matches!(past, DeliveryOutcome::DeadLettered { .. }));
        assert_eq!(sends, 0, "an attempt whose process died counts");
    }
}
