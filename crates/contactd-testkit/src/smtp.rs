//! A real SMTP server, `scripts/smtp-sink.py` on aiosmtpd, and the messages it received.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use mail_parser::{Message, MessageParser};

use crate::extract::{verification_code, verification_link};

/// A running `scripts/smtp-sink.py`, killed when dropped. Every message it accepts is in
/// [`dir()`](Self::dir) as `<n>.eml` with `<n>.envelope.json`, both written before it answers
/// the DATA, so a client whose send succeeded finds it there at once.
///
/// It offers no STARTTLS, refuses `RCPT TO` of any `reject@…` address with 550, and, started
/// with [`refusing_first`](Self::refusing_first), answers 451 to the first DATAs. It needs
/// `python3` with aiosmtpd (`python3 -m pip install aiosmtpd==1.4.6`).
#[derive(Debug)]
pub struct SmtpSink {
    child: Child,
    // Held so that the server, started with --until-stdin-closes, also stops should this
    // process die without running `Drop`.
    _stdin: ChildStdin,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts a server that accepts every message (but those to `reject@…`).
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server that answers 451 to the DATA of the first `count` messages, then
    /// accepts.
    pub fn refusing_first(count: u32) -> Self {
        Self::start_with(&["--refuse-first", &count.to_string()])
    }

    /// Starts the server on a free port of 127.0.0.1 with extra arguments of `smtp-sink.py`,
    /// and returns once it listens.
    pub fn start_with(args: &[&str]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/smtp-sink.py");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--port", "0", "--until-stdin-closes", "--dir"])
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run python3 {}: {error}", script.display()));
        let stdin = child.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the first line of smtp-sink.py");
        let Some(addr) = line.trim().strip_prefix("LISTENING ") else {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "smtp-sink.py stopped before listening ({status:?}; its error is above). \
                 It needs aiosmtpd: python3 -m pip install aiosmtpd==1.4.6"
            );
        };
        let addr = addr.parse().expect("LISTENING host:port");
        Self {
            child,
            _stdin: stdin,
            addr,
            dir,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:PORT`, plain SMTP.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The directory that holds the messages accepted.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The messages accepted so far, in the order accepted.
    pub fn received(&self) -> Vec<ReceivedMail> {
        (1..)
            .map(|n| self.dir().join(format!("{n}.eml")))
            .take_while(|path| path.exists())
            .map(|eml| ReceivedMail::read(&eml))
            .collect()
    }

    /// Waits until at least `count` messages were accepted, looking every 20 ms, and returns
    /// all accepted so far. Panics after `timeout`, naming how many arrived.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        crate::wait_for_count(count, timeout, "emails at the SMTP server", || {
            self.received()
        })
        .await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message as the SMTP server received it: the DATA and the envelope.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The DATA exactly as received (CRLF line ends).
    pub raw: Vec<u8>,
    /// The envelope's sender, `MAIL FROM`.
    pub mail_from: String,
    /// The envelope's accepted recipients, `RCPT TO`.
    pub rcpt_tos: Vec<String>,
}

impl ReceivedMail {
    /// Reads `<n>.eml` and its `<n>.envelope.json`.
    fn read(eml: &Path) -> Self {
        let envelope: serde_json::Value =
            serde_json::from_slice(&std::fs::read(eml.with_extension("envelope.json")).unwrap())
                .unwrap();
        Self {
            raw: std::fs::read(eml).unwrap(),
            mail_from: envelope["mail_from"].as_str().unwrap().to_owned(),
            rcpt_tos: envelope["rcpt_tos"]
                .as_array()
                .unwrap()
                .iter()
                .map(|to| to.as_str().unwrap().to_owned())
                .collect(),
        }
    }

    /// The message parsed as a mail client would (mail-parser). Panics if it cannot be.
    pub fn parsed(&self) -> Message<'_> {
        MessageParser::default()
            .parse(&self.raw)
            .unwrap_or_else(|| panic!("not a message: {:?}", String::from_utf8_lossy(&self.raw)))
    }

    /// The body's first text part, decoded (transfer encoding and charset undone), with `\n`
    /// line ends. Panics if the message has none.
    pub fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .unwrap_or_else(|| panic!("no text body in {:?}", String::from_utf8_lossy(&self.raw)))
            .replace("\r\n", "\n")
    }

    /// The header `name` (any case), decoded where it is text (`Subject`, `Message-ID`
    /// without its angle brackets, unknown headers), else as written (addresses, dates,
    /// `Content-Type`); its folding undone, each fold one space. The first, if it occurs more
    /// than once.
    pub fn header(&self, name: &str) -> Option<String> {
        let mail = self.parsed();
        let value = match mail.header(name)?.as_text() {
            Some(text) => text,
            None => mail.header_raw(name)?,
        };
        Some(unfold(value))
    }

    /// The `Message-ID`, without its angle brackets: `<id>@<domain>`.
    pub fn message_id(&self) -> Option<String> {
        self.parsed().message_id().map(str::to_owned)
    }

    /// The six-digit verification code in the text body (see [`verification_code`]). Panics,
    /// showing the body, if there is none.
    pub fn code(&self) -> String {
        let text = self.text();
        verification_code(&text)
            .unwrap_or_else(|| panic!("no six-digit code in {text:?}"))
            .to_owned()
    }

    /// The first `http://…/verify/…` URL in the text body (see [`verification_link`]). Panics,
    /// showing the body, if there is none.
    pub fn link(&self) -> String {
        let text = self.text();
        verification_link(&text)
            .unwrap_or_else(|| panic!("no /verify/ link in {text:?}"))
            .to_owned()
    }
}

/// A header's value on one line: each fold (a line end and the blanks around it) one space.
fn unfold(value: &str) -> String {
    value
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As lettre writes a UTF-8 text/plain email: quoted-printable with soft line breaks.
    fn sample() -> ReceivedMail {
        let raw = format!(
            "From: contactd <noreply@contacts.example.com>\r\n\
            To: zhang.san@example.com\r\n\
            Subject: Your verification code\r\n\
            Message-ID: <0191f5a0-7c1e-7cc4-8d3a-2b6f0e9a4d11@contacts.example.com>\r\n\
            X-Custom: folded\r\n  value\r\n\
            MIME-Version: 1.0\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\
            \r\n\
            Hello =E5=BC=A0=E4=B8=89,\r\n\
            \r\n\
            Your verification code is 123456.\r\n\
            It expires at 2026-12-01 22:15 UTC.\r\n\
            \r\n\
            Type the code where you were asked for it, or confirm by opening this link:\r\n\
            http://127.0.0.1:8080/verify/{token}=\r\n\
            AAAA.c2lnbmF0dXJl\r\n\
            \r\n\
            If you did not expect this message, ignore it.\r\n",
            token = "A".repeat(51),
        );
        ReceivedMail {
            raw: raw.into_bytes(),
            mail_from: "noreply@contacts.example.com".to_owned(),
            rcpt_tos: vec!["zhang.san@example.com".to_owned()],
        }
    }

    #[test]
    fn the_text_is_decoded() {
        let text = sample().text();
        assert!(text.starts_with("Hello 张三,\n"), "{text:?}");
        assert!(text.contains("/verify/AAAA"), "{text:?}");
    }

    #[test]
    fn the_code_and_the_link_come_out_of_the_decoded_body() {
        let mail = sample();
        assert_eq!(mail.code(), "123456");
        assert_eq!(
            mail.link(),
            format!(
                "http://127.0.0.1:8080/verify/{}AAAA.c2lnbmF0dXJl",
                "A".repeat(51)
            )
        );
    }

    #[test]
    fn headers_are_read_in_any_case_and_decoded() {
        let mail = sample();
        assert_eq!(
            mail.header("subject").as_deref(),
            Some("Your verification code")
        );
        assert_eq!(
            mail.message_id().as_deref(),
            Some("0191f5a0-7c1e-7cc4-8d3a-2b6f0e9a4d11@contacts.example.com")
        );
        assert_eq!(mail.header("x-custom").as_deref(), Some("folded value"));
        assert_eq!(
            mail.header("Content-Type").as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(mail.header("To").as_deref(), Some("zhang.san@example.com"));
        assert_eq!(mail.header("Reply-To"), None);
    }

    #[test]
    #[should_panic(expected = "no six-digit code")]
    fn a_body_without_a_code_says_so() {
        let mut mail = sample();
        mail.raw = b"Subject: x\r\n\r\nnothing here\r\n".to_vec();
        mail.code();
    }
}
