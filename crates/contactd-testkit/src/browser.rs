//! Debian's Chromium, headless, driven over WebDriver by chromedriver and a fantoccini client.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;

const MISSING: &str = "the browser tests need Debian's chromium and chromium-driver: \
                       apt-get install chromium chromium-driver";

/// How long chromedriver may take to listen, and to stop when asked.
const DRIVER_DEADLINE: Duration = Duration::from_secs(30);
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// A headless Chromium in a fresh profile, driven through its own chromedriver on a free port
/// of 127.0.0.1. [`client()`](Self::client) is the WebDriver session.
///
/// chromedriver is `$CHROMEDRIVER`, else `chromedriver` on the `PATH`, else
/// `/usr/bin/chromedriver`; the browser is `$CHROME_BIN`, else `/usr/bin/chromium`. Chromium
/// runs with `--no-sandbox` (the tests may run as root) and without its background
/// networking, whose connections this machine's closed network would refuse.
///
/// [`close()`](Self::close) ends the session; dropping it, closed or not, stops chromedriver
/// and Chromium with it (asked first, killed if they do not stop within 5 s), then removes the
/// profile.
#[derive(Debug)]
pub struct Browser {
    client: Client,
    chromium_pid: Option<u32>,
    closed: bool,
    driver: Driver,
    // Last: removed once Chromium is gone.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver, waits until it accepts connections, and opens a session of a fresh
    /// headless Chromium. Panics if chromedriver or Chromium is missing or does not start.
    pub async fn start() -> Self {
        let chromedriver = chromedriver_path();
        let chromium = std::env::var_os("CHROME_BIN")
            .filter(|path| !path.is_empty())
            .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
        for path in [&chromedriver, &chromium] {
            assert!(path.is_file(), "{MISSING} (there is no {})", path.display());
        }
        let driver = Driver::start(&chromedriver).await;
        let profile = tempfile::tempdir().expect("a temporary directory");

        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({ "binary": chromium, "args": args }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://{}", driver.addr))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "chromedriver could not start {}: {error}",
                    chromium.display()
                )
            });
        let chromium_pid = client
            .capabilities()
            .and_then(|returned| returned.get("goog:processID"))
            .and_then(serde_json::Value::as_u64)
            .and_then(|pid| u32::try_from(pid).ok());
        Self {
            client,
            chromium_pid,
            closed: false,
            driver,
            _profile: profile,
        }
    }

    /// The WebDriver session: `goto`, `find`, `wait`, `form`, …
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ends the session, which quits Chromium. Panics if chromedriver refuses.
    pub async fn close(mut self) {
        self.client
            .clone()
            .close()
            .await
            .expect("chromedriver ends the session");
        self.closed = true;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver quits the browsers of its open sessions as it stops.
        if !self.driver.shut_down()
            && !self.closed
            && let Some(pid) = self.chromium_pid
        {
            // Its other processes end with it.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A running chromedriver, stopped when dropped.
#[derive(Debug)]
struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it accepts connections. Should the
    /// port have been taken meanwhile (chromedriver then exits at once), tries another.
    async fn start(chromedriver: &Path) -> Self {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let child = Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                // Its banner; its errors go to stderr.
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|error| panic!("{MISSING} ({}: {error})", chromedriver.display()));
            let mut driver = Self {
                child,
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            };
            let deadline = Instant::now() + DRIVER_DEADLINE;
            loop {
                if tokio::net::TcpStream::connect(driver.addr).await.is_ok() {
                    return driver;
                }
                if let Some(status) = driver.child.try_wait().expect("chromedriver's status") {
                    assert!(
                        attempts < 3,
                        "{} exited before listening on port {port} ({status}); its error is above",
                        chromedriver.display()
                    );
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} did not listen on port {port} within {DRIVER_DEADLINE:?}",
                    chromedriver.display()
                );
                tokio::time::sleep(crate::POLL_INTERVAL).await;
            }
        }
    }

    /// Asks chromedriver to stop (`GET /shutdown`), which quits the browsers of its sessions,
    /// and waits for it; kills it if it has not stopped within [`SHUTDOWN_DEADLINE`]. Whether
    /// it stopped as asked.
    fn shut_down(&mut self) -> bool {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return true;
        }
        let asked = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1))
            .and_then(|mut stream| {
                write!(
                    stream,
                    "GET /shutdown HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                )
            })
            .is_ok();
        let deadline = Instant::now() + SHUTDOWN_DEADLINE;
        while asked && Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(crate::POLL_INTERVAL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// `$CHROMEDRIVER`, else `chromedriver` on the `PATH`, else `/usr/bin/chromedriver`.
fn chromedriver_path() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMEDRIVER").filter(|path| !path.is_empty()) {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("chromedriver"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}
