//! `contactd probe`: one HTTP/1.1 GET of the readiness URL, so that a container's health check
//! needs nothing but the binary. Plain HTTP only: the probe runs beside the server, on its
//! loopback.

use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether the URL answers 200: `Ok` if so, else why not.
pub async fn probe(url: &str, timeout: Duration) -> anyhow::Result<()> {
    tokio::time::timeout(timeout, ask(url))
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no answer within {} s", timeout.as_secs()))?
}

async fn ask(url: &str) -> anyhow::Result<()> {
    let parsed = url::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    anyhow::ensure!(
        parsed.scheme() == "http",
        "{url}: only http:// is probed (the probe runs beside the server)"
    );
    let host = parsed
        .host_str()
        .with_context(|| format!("{url}: no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let mut target = parsed.path().to_owned();
    if let Some(query) = parsed.query() {
        target.push('?');
        target.push_str(query);
    }
    let mut stream = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .with_context(|| format!("{url}: cannot connect"))?;
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: contactd-probe\r\n\
         Connection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .with_context(|| format!("{url}: sending the request"))?;
    // The status line and the short body of a probe answer; no more is read.
    let mut answer = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .await
        .with_context(|| format!("{url}: reading the answer"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status_line = answer.lines().next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .filter(|_| status_line.starts_with("HTTP/1."))
        .with_context(|| format!("{url}: not an HTTP answer: {status_line:?}"))?;
    if status == "200" {
        return Ok(());
    }
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim())
        .unwrap_or_default();
    anyhow::bail!(
        "{url}: {}{}",
        status_line.trim(),
        if body.is_empty() {
            String::new()
        } else {
            format!(": {}", body.lines().next().unwrap_or_default())
        }
    )
}
