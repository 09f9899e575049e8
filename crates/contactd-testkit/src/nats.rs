//! A real NATS server with JetStream, `nats-server -js`, and the messages its streams hold.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::{self, ErrorCode};
use tokio::process::{Child, Command};
use tokio_stream::StreamExt;

/// The stream the integration messages go to unless configured otherwise.
pub const DEFAULT_NATS_STREAM: &str = "CONTACTD_CONTACTS";

/// Where Debian installs the server (package `nats-server`).
const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// How long a started server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`NatsServer::messages`] waits, once `count` are there, for any more.
const SURPLUS_WAIT: Duration = Duration::from_millis(200);

/// A running `nats-server -js` on a free port of 127.0.0.1 storing in a temporary directory,
/// killed when dropped. [`stop`](Self::stop) and [`restart`](Self::restart) keep the port and
/// the directory, so that a client reconnects to the same address and finds the streams and
/// their messages again. It needs the `nats-server` binary (`apt-get install nats-server`).
#[derive(Debug)]
pub struct NatsServer {
    /// `None` while stopped.
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server and returns once it accepts connections.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut last_error = String::new();
        // A free port may be taken by another test before the server binds it: try again.
        for _ in 0..5 {
            let port = free_port();
            match spawn(port, &dir).await {
                Ok(child) => {
                    return Self {
                        child: Some(child),
                        port,
                        dir,
                    };
                }
                Err(error) => last_error = error,
            }
        }
        panic!("nats-server did not start: {last_error}");
    }

    /// The port it listens on (also while stopped: the one it will listen on again).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Whether it runs (started and not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server as an operator would (SIGTERM: it flushes its streams and closes every
    /// connection), killing it if it has not exited within 5 s, and returns once it is gone.
    /// Nothing listens on the port then. Does nothing if it is stopped already.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let _ = Command::new(nats_server())
                .arg("--signal")
                .arg(format!("term={pid}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again (stopping it first if it runs) on the same port with the same
    /// storage, and returns once it accepts connections. Panics if the port was taken
    /// meanwhile.
    pub async fn restart(&mut self) {
        self.stop().await;
        match spawn(self.port, &self.dir).await {
            Ok(child) => self.child = Some(child),
            Err(error) => panic!("nats-server did not start again: {error}"),
        }
    }

    /// Waits until the stream [`DEFAULT_NATS_STREAM`] holds at least `count` messages on
    /// subjects matching `subject_filter` (`>` and `*` wildcards), looking every 50 ms, then
    /// waits 200 ms more for any surplus, and returns all it holds on them, in stream order: a
    /// test asserts "exactly once" on the length. Panics after `timeout`, naming how many
    /// arrived.
    pub async fn messages(
        &self,
        subject_filter: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<NatsMessage> {
        self.stream_messages(DEFAULT_NATS_STREAM, subject_filter, count, timeout)
            .await
    }

    /// [`messages`](Self::messages) of the stream named `stream`.
    pub async fn stream_messages(
        &self,
        stream: &str,
        subject_filter: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<NatsMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let messages = self.all_stream_messages(stream, subject_filter).await;
            if messages.len() >= count {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "waited {timeout:?} for {count} messages on {subject_filter} in the NATS \
                     stream {stream}, but {} arrived: {messages:#?}",
                    messages.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(SURPLUS_WAIT).await;
        self.all_stream_messages(stream, subject_filter).await
    }

    /// The messages the stream [`DEFAULT_NATS_STREAM`] holds now on subjects matching
    /// `subject_filter`, in stream order; none if the stream does not exist (yet).
    pub async fn all_messages(&self, subject_filter: &str) -> Vec<NatsMessage> {
        self.all_stream_messages(DEFAULT_NATS_STREAM, subject_filter)
            .await
    }

    /// [`all_messages`](Self::all_messages) of the stream named `stream`: read from its start
    /// with an ephemeral consumer that acknowledges nothing and is deleted after.
    pub async fn all_stream_messages(
        &self,
        stream: &str,
        subject_filter: &str,
    ) -> Vec<NatsMessage> {
        let client = async_nats::connect(self.url())
            .await
            .unwrap_or_else(|error| {
                panic!("cannot connect to nats-server at {}: {error}", self.url())
            });
        let jetstream = jetstream::new(client);
        let stream = match jetstream.get_stream(stream).await {
            Ok(stream) => stream,
            Err(error) => match error.kind() {
                GetStreamErrorKind::JetStream(error)
                    if error.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    return Vec::new();
                }
                _ => panic!("cannot read the NATS stream {stream}: {error}"),
            },
        };
        let consumer = stream
            .create_consumer(pull::Config {
                filter_subject: subject_filter.to_owned(),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|error| panic!("cannot read the NATS stream: {error}"));
        let pending = usize::try_from(consumer.cached_info().num_pending).unwrap();
        let mut messages = Vec::with_capacity(pending);
        while messages.len() < pending {
            let mut batch = consumer
                .batch()
                .max_messages(pending - messages.len())
                .expires(Duration::from_secs(5))
                .messages()
                .await
                .unwrap_or_else(|error| panic!("cannot read the NATS stream: {error}"));
            let before = messages.len();
            while let Some(message) = batch.next().await {
                let message =
                    message.unwrap_or_else(|error| panic!("cannot read the NATS stream: {error}"));
                messages.push(NatsMessage::read(&message));
            }
            assert!(
                messages.len() > before,
                "the NATS stream delivered {before} of its {pending} messages, then none"
            );
        }
        let _ = stream.delete_consumer(&consumer.cached_info().name).await;
        messages
    }
}

/// A port of 127.0.0.1 the system gave out and that is closed again.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `NATS_SERVER` if set, else Debian's binary if installed, else `nats-server` on the `PATH`.
fn nats_server() -> PathBuf {
    match std::env::var_os("NATS_SERVER") {
        Some(path) => PathBuf::from(path),
        None if Path::new(NATS_SERVER).exists() => PathBuf::from(NATS_SERVER),
        None => PathBuf::from("nats-server"),
    }
}

/// Runs `nats-server -js` on `port` storing under `dir` and waits until it accepts
/// connections; the error says why not (the server's log, if it exited).
async fn spawn(port: u16, dir: &tempfile::TempDir) -> Result<Child, String> {
    let log = dir.path().join("nats-server.log");
    let mut child = Command::new(nats_server())
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path().join("jetstream"))
        .arg("-l")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {}: {error}. Install it: apt-get install nats-server",
                nats_server().display()
            )
        });
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("it exited ({status}) on port {port}:\n{log}"));
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill().await;
            return Err(format!(
                "it did not listen on port {port} within {START_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One message as a JetStream stream holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct NatsMessage {
    pub subject: String,
    /// The `Nats-Msg-Id` header, the id the stream de-duplicates on.
    pub message_id: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The payload parsed as JSON (panics on reading if it is not).
    pub payload: serde_json::Value,
}

impl NatsMessage {
    fn read(message: &jetstream::Message) -> Self {
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(name))
                .map(|value| value.as_str().to_owned())
        };
        Self {
            subject: message.subject.to_string(),
            message_id: header("Nats-Msg-Id"),
            content_type: header("Content-Type"),
            payload: serde_json::from_slice(&message.payload).unwrap_or_else(|error| {
                panic!(
                    "the payload on {} is not JSON ({error}): {:?}",
                    message.subject,
                    String::from_utf8_lossy(&message.payload)
                )
            }),
        }
    }
}
