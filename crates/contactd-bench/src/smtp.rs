//! A small, real SMTP server that stands in for a fast mail server: it accepts every message
//! (no TLS, no authentication, no relaying anywhere) and records, per message, the instant it
//! answered 250 to the DATA and the envelope's recipients, so that the dispatch benchmark
//! measures the service's own latency and not a mail server's.
//!
//! It speaks what lettre's pooled client sends (RFC 5321): EHLO/HELO, MAIL, RCPT, DATA with
//! dot-unstuffing up to `<CRLF>.<CRLF>`, RSET, NOOP (lettre's check before it reuses a pooled
//! connection) and QUIT; a connection stays open for as many messages as the client sends.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The longest command line accepted (RFC 5321 allows 512 octets; extensions add some).
const MAX_COMMAND_LINE: usize = 4096;
/// The largest message accepted, as advertised by `SIZE`: a verification email is a few KiB.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// The name the server gives itself in its greeting and its EHLO answer.
const HOSTNAME: &str = "contactd-bench.invalid";

/// One message the receiver accepted.
#[derive(Debug, Clone)]
pub struct Acceptance {
    /// Just before the receiver wrote its 250 answer to the end of the DATA.
    pub at: Instant,
    /// The envelope's recipients (`RCPT TO`), as sent.
    pub recipients: Vec<String>,
    /// The envelope's sender (`MAIL FROM`), as sent.
    pub sender: String,
    /// When the transaction's `MAIL` and `DATA` commands were read: the conversation's
    /// length, and the body's (from the 354 to the terminating dot).
    pub mail_at: Instant,
    pub data_at: Instant,
    /// The message's bytes after dot-unstuffing, without the terminating `.` line.
    pub bytes: usize,
}

/// What the receiver counted since it started.
#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    messages: AtomicU64,
    /// Commands answered with a 5xx (a client that speaks something else).
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Shared {
    accepted: Mutex<Vec<Acceptance>>,
    counters: Counters,
}

/// The running receiver; it stops (and closes every connection) when dropped.
#[derive(Debug, Clone)]
pub struct SmtpReceiver {
    address: SocketAddr,
    shared: Arc<Shared>,
    /// Held only to stop the receiver when the last clone goes.
    _accept_loop: Arc<AbortOnDrop>,
}

#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        // The accept loop owns the connections' JoinSet: aborting it drops them all.
        self.0.abort();
    }
}

impl SmtpReceiver {
    /// Listens on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the SMTP receiver")?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept_loop = tokio::spawn(accept(listener, shared.clone()));
        Ok(Self {
            address,
            shared,
            _accept_loop: Arc::new(AbortOnDrop(accept_loop)),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The URL for `contactd serve --smtp-url`: plain SMTP, no TLS.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.address)
    }

    /// The messages accepted since the last call, in the order they were accepted.
    pub fn take_accepted(&self) -> Vec<Acceptance> {
        match self.shared.accepted.lock() {
            Ok(mut accepted) => std::mem::take(&mut *accepted),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    /// Messages accepted since the receiver started.
    pub fn messages(&self) -> u64 {
        self.shared.counters.messages.load(Ordering::Relaxed)
    }

    /// Connections opened since the receiver started (lettre's pool keeps a few open).
    pub fn connections(&self) -> u64 {
        self.shared.counters.connections.load(Ordering::Relaxed)
    }

    /// Commands refused with a 5xx since the receiver started.
    pub fn refused(&self) -> u64 {
        self.shared.counters.refused.load(Ordering::Relaxed)
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Replies are small and each waits for the client's next command: do not
                    // let Nagle's algorithm hold them for the client's delayed ACK.
                    let _ = stream.set_nodelay(true);
                    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
                    let (read, write) = stream.into_split();
                    connections.spawn(serve(read, write, shared.clone()));
                }
                // Out of descriptors or the like: the client will retry its connection.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            },
            // Reap finished connections so the set does not grow with the pool's churn.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The state of one SMTP session.
#[derive(Debug, Default)]
struct Session {
    greeted: bool,
    sender: Option<String>,
    recipients: Vec<String>,
    mail_at: Option<Instant>,
    data_at: Option<Instant>,
}

impl Session {
    fn reset(&mut self) {
        self.sender = None;
        self.recipients.clear();
        self.mail_at = None;
        self.data_at = None;
    }
}

/// What the session does after a command.
enum Next {
    Continue,
    ReadData,
    Close,
}

/// Serves one connection until the client quits or goes away.
async fn serve<R, W>(read: R, mut write: W, shared: Arc<Shared>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut read = BufReader::new(read);
    if reply(&mut write, &format!("220 {HOSTNAME} ESMTP ready\r\n"))
        .await
        .is_err()
    {
        return;
    }
    let mut session = Session::default();
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match read_line(&mut read, &mut line, MAX_COMMAND_LINE).await {
            Ok(Line::Complete) => {}
            Ok(Line::TooLong) => {
                shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                if reply(&mut write, "500 5.5.2 line too long\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Ok(Line::End) | Err(_) => return,
        }
        let (answer, next) = command(&mut session, &line, Instant::now());
        if answer.starts_with('5') {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
        }
        if reply(&mut write, &answer).await.is_err() {
            return;
        }
        match next {
            Next::Continue => {}
            Next::Close => return,
            Next::ReadData => {
                let bytes = match read_data(&mut read).await {
                    Ok(Some(bytes)) => bytes,
                    Ok(None) => {
                        shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                        session.reset();
                        if reply(&mut write, "552 5.3.4 message too big\r\n")
                            .await
                            .is_err()
                        {
                            return;
                        }
                        continue;
                    }
                    Err(_) => return,
                };
                let number = shared.counters.messages.fetch_add(1, Ordering::Relaxed) + 1;
                let at = Instant::now();
                let acceptance = Acceptance {
                    at,
                    recipients: std::mem::take(&mut session.recipients),
                    sender: session.sender.take().unwrap_or_default(),
                    mail_at: session.mail_at.take().unwrap_or(at),
                    data_at: session.data_at.take().unwrap_or(at),
                    bytes,
                };
                // Recorded before the answer is written: the instant is the acceptance, and a
                // reader that sees the client's next step also sees the record.
                match shared.accepted.lock() {
                    Ok(mut accepted) => accepted.push(acceptance),
                    Err(poisoned) => poisoned.into_inner().push(acceptance),
                }
                let answer = format!("250 2.0.0 OK queued as {number}\r\n");
                if reply(&mut write, &answer).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Answers one command line (with its CRLF), read at `read_at`, and says what comes next.
fn command(session: &mut Session, line: &[u8], read_at: Instant) -> (String, Next) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\r', '\n']);
    let (verb, argument) = match text.split_once(' ') {
        Some((verb, argument)) => (verb, argument.trim()),
        None => (text, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let answer = |s: &str| (s.to_owned(), Next::Continue);
    match verb.as_str() {
        "EHLO" if !argument.is_empty() => {
            session.greeted = true;
            session.reset();
            (
                format!(
                    "250-{HOSTNAME} greets {argument}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
                     250-ENHANCEDSTATUSCODES\r\n250 SIZE {MAX_MESSAGE_BYTES}\r\n"
                ),
                Next::Continue,
            )
        }
        "HELO" if !argument.is_empty() => {
            session.greeted = true;
            session.reset();
            (format!("250 {HOSTNAME}\r\n"), Next::Continue)
        }
        "EHLO" | "HELO" => answer("501 5.5.4 a domain or address literal is needed\r\n"),
        "MAIL" => {
            if !session.greeted {
                return answer("503 5.5.1 EHLO or HELO first\r\n");
            }
            if session.sender.is_some() {
                return answer("503 5.5.1 a transaction is already open\r\n");
            }
            match path(argument, "FROM:") {
                Some(sender) => {
                    session.sender = Some(sender);
                    session.mail_at = Some(read_at);
                    answer("250 2.1.0 OK\r\n")
                }
                None => answer("501 5.5.4 MAIL FROM:<address> expected\r\n"),
            }
        }
        "RCPT" => {
            if session.sender.is_none() {
                return answer("503 5.5.1 MAIL first\r\n");
            }
            match path(argument, "TO:") {
                Some(recipient) if !recipient.is_empty() => {
                    session.recipients.push(recipient);
                    answer("250 2.1.5 OK\r\n")
                }
                _ => answer("501 5.5.4 RCPT TO:<address> expected\r\n"),
            }
        }
        "DATA" => {
            if session.recipients.is_empty() {
                return answer("503 5.5.1 RCPT first\r\n");
            }
            session.data_at = Some(read_at);
            (
                "354 End data with <CR><LF>.<CR><LF>\r\n".to_owned(),
                Next::ReadData,
            )
        }
        "RSET" => {
            session.reset();
            answer("250 2.0.0 OK\r\n")
        }
        "NOOP" => answer("250 2.0.0 OK\r\n"),
        "QUIT" => ("221 2.0.0 Bye\r\n".to_owned(), Next::Close),
        _ => answer("500 5.5.2 command not recognised\r\n"),
    }
}

/// The address of `FROM:<a@b> PARAM=...` or `TO:<a@b>`: between the angle brackets (empty
/// for the null sender `<>`).
fn path(argument: &str, keyword: &str) -> Option<String> {
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].to_owned())
}

enum Line {
    Complete,
    /// Longer than allowed: the rest of the line was read and dropped.
    TooLong,
    /// The client closed the connection.
    End,
}

/// Reads one line up to and with its `\n`, keeping at most `limit` bytes of it.
async fn read_line<R: AsyncBufReadExt + Unpin>(
    read: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Line> {
    let mut too_long = false;
    loop {
        let buffer = read.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(if line.is_empty() && !too_long {
                Line::End
            } else {
                Line::Complete
            });
        }
        let (taken, done) = match buffer.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (buffer.len(), false),
        };
        if line.len() + taken <= limit {
            line.extend_from_slice(&buffer[..taken]);
        } else {
            too_long = true;
        }
        read.consume(taken);
        if done {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

/// Reads a message after the 354 up to the line that is a single `.`, undoing the client's
/// dot-stuffing; returns its size, or `None` if it was larger than allowed (read to its end
/// all the same, so that the session can go on).
async fn read_data<R: AsyncBufReadExt + Unpin>(read: &mut R) -> std::io::Result<Option<usize>> {
    let mut bytes = 0_usize;
    let mut too_big = false;
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        // A line may be long (RFC 5321 allows 1000 octets; some clients send more): the limit
        // is the message's, not the line's.
        match read_line(read, &mut line, MAX_MESSAGE_BYTES + 3).await? {
            Line::End => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the client closed the connection within DATA",
                ));
            }
            Line::TooLong => too_big = true,
            Line::Complete => {
                if line == b".\r\n" || line == b".\n" {
                    return Ok((!too_big).then_some(bytes));
                }
                // A line that begins with a dot had one more put before it by the client.
                let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
                bytes += unstuffed.len();
                if bytes > MAX_MESSAGE_BYTES {
                    too_big = true;
                }
            }
        }
    }
}

async fn reply<W: AsyncWrite + Unpin>(write: &mut W, answer: &str) -> std::io::Result<()> {
    write.write_all(answer.as_bytes()).await?;
    write.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Runs a whole conversation through `serve` and returns what the server answered.
    async fn converse(client: &str) -> (String, Arc<Shared>) {
        let shared = Arc::new(Shared::default());
        let (mut ours, theirs) = tokio::io::duplex(64 * 1024);
        let (read, write) = tokio::io::split(theirs);
        let server = tokio::spawn(serve(read, write, shared.clone()));
        ours.write_all(client.as_bytes()).await.expect("write");
        let mut answers = String::new();
        ours.read_to_string(&mut answers).await.expect("read");
        server.await.expect("the session ends");
        (answers, shared)
    }

    #[tokio::test]
    async fn a_session_accepts_messages_and_records_their_recipients() {
        let (answers, shared) = converse(
            "EHLO client.example\r\n\
             MAIL FROM:<noreply@localhost> BODY=8BITMIME\r\n\
             RCPT TO:<b1@bench.example>\r\n\
             RCPT TO:<b2@bench.example>\r\n\
             DATA\r\n\
             Subject: hi\r\n\
             \r\n\
             ..a line that began with a dot\r\n\
             .\r\n\
             NOOP\r\n\
             RSET\r\n\
             MAIL FROM:<>\r\n\
             RCPT TO:<b3@bench.example>\r\n\
             DATA\r\n\
             x\r\n\
             .\r\n\
             QUIT\r\n",
        )
        .await;
        let codes: Vec<&str> = answers
            .lines()
            .filter(|l| l.as_bytes().get(3) == Some(&b' '))
            .map(|l| &l[..3])
            .collect();
        assert_eq!(
            codes,
            [
                "220", "250", "250", "250", "250", "354", "250", "250", "250", "250", "250", "354",
                "250", "221"
            ],
            "{answers}"
        );
        assert!(answers.contains("250-8BITMIME\r\n"));
        let accepted = shared.accepted.lock().expect("lock").clone();
        assert_eq!(accepted.len(), 2);
        assert_eq!(
            accepted[0].recipients,
            ["b1@bench.example", "b2@bench.example"]
        );
        assert_eq!(accepted[0].sender, "noreply@localhost");
        // "Subject: hi\r\n" + "\r\n" + ".a line that began with a dot\r\n", unstuffed.
        assert_eq!(accepted[0].bytes, 13 + 2 + 31);
        assert_eq!(accepted[1].recipients, ["b3@bench.example"]);
        assert_eq!(accepted[1].sender, "");
        assert!(accepted[1].at >= accepted[0].at);
        assert!(
            accepted[0].mail_at <= accepted[0].data_at && accepted[0].data_at <= accepted[0].at
        );
        assert_eq!(shared.counters.refused.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn commands_out_of_order_are_refused_and_the_session_goes_on() {
        let (answers, shared) = converse(
            "MAIL FROM:<a@b>\r\n\
             HELO client\r\n\
             RCPT TO:<b1@bench.example>\r\n\
             DATA\r\n\
             MAIL FROM:<a@b>\r\n\
             MAIL FROM:<a@b>\r\n\
             DATA\r\n\
             VRFY someone\r\n\
             quit\r\n",
        )
        .await;
        let codes: Vec<&str> = answers.lines().map(|l| &l[..3]).collect();
        assert_eq!(
            codes,
            [
                "220", "503", "250", "503", "503", "250", "503", "503", "500", "221"
            ],
            "{answers}"
        );
        assert!(shared.accepted.lock().expect("lock").is_empty());
        assert_eq!(shared.counters.refused.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn paths_are_read_between_angle_brackets() {
        assert_eq!(path("FROM:<a@b> SIZE=10", "FROM:").as_deref(), Some("a@b"));
        assert_eq!(path("from: <a@b>", "FROM:").as_deref(), Some("a@b"));
        assert_eq!(path("TO:<>", "TO:").as_deref(), Some(""));
        assert_eq!(path("TO:a@b", "TO:"), None);
        assert_eq!(path("FROM:<a@b>", "TO:"), None);
    }

    #[tokio::test]
    async fn lettre_style_clients_keep_one_connection_for_many_messages() {
        let receiver = SmtpReceiver::start().await.expect("start");
        let stream = tokio::net::TcpStream::connect(receiver.address())
            .await
            .expect("connect");
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut line = String::new();
        read.read_line(&mut line).await.expect("greeting");
        assert!(line.starts_with("220 "), "{line}");
        for n in 0..3 {
            let conversation = format!(
                "NOOP\r\nMAIL FROM:<x@y>\r\nRCPT TO:<b{n}@bench.example>\r\nDATA\r\nhello\r\n.\r\n"
            );
            if n == 0 {
                write.write_all(b"EHLO me\r\n").await.expect("write");
                loop {
                    line.clear();
                    read.read_line(&mut line).await.expect("ehlo");
                    if line.as_bytes().get(3) == Some(&b' ') {
                        break;
                    }
                }
            }
            write
                .write_all(conversation.as_bytes())
                .await
                .expect("write");
            for _ in 0..5 {
                line.clear();
                read.read_line(&mut line).await.expect("answer");
            }
            assert!(line.starts_with("250 2.0.0 OK queued"), "{line}");
        }
        let accepted = receiver.take_accepted();
        assert_eq!(accepted.len(), 3);
        assert_eq!(accepted[2].recipients, ["b2@bench.example"]);
        assert_eq!(receiver.connections(), 1);
        assert_eq!(receiver.messages(), 3);
        assert!(receiver.take_accepted().is_empty());
    }
}
