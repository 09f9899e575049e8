//! A PostgreSQL cluster of a test's own, from the installed server binaries (`initdb`,
//! `pg_ctl`), that the test may crash and start again: the shared server of the other tests
//! must never be stopped.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where Debian installs the server binaries (`apt-get install postgresql`), newest first; or
/// those on the `PATH`.
fn server_binaries() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        let initdb = which("initdb")
            .expect("the PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql");
        initdb.parent().expect("a directory").to_owned()
    })
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

/// A cluster in a temporary directory on a free port of 127.0.0.1 (trust authentication, user
/// `postgres`, database `postgres`), stopped and removed when dropped. As root it runs as
/// `nobody`, since PostgreSQL refuses to run as root.
#[derive(Debug)]
pub struct PostgresCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    running: bool,
}

impl PostgresCluster {
    /// Creates the cluster and starts it; returns once it accepts connections.
    pub async fn start() -> Self {
        let bin = server_binaries();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let as_nobody = is_root();
        if as_nobody {
            let mut chown = tokio::process::Command::new("chown");
            chown.args(["-R", "nobody"]).arg(dir.path());
            run(&mut chown, "chown the cluster's directory to nobody").await;
        }
        let mut initdb = command(&bin, "initdb");
        initdb.arg("-D").arg(data(dir.path())).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ]);
        run(&mut initdb, "initdb").await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut cluster = Self {
            bin,
            dir,
            port,
            running: false,
        };
        cluster.start_again().await;
        cluster
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server as a crash would (`pg_ctl -m immediate`: no checkpoint, every
    /// connection dropped); the next start recovers from the write-ahead log.
    pub async fn crash(&mut self) {
        let mut stop = self.pg_ctl();
        stop.args(["-m", "immediate", "-w", "stop"]);
        run(&mut stop, "pg_ctl stop").await;
        self.running = false;
    }

    /// Starts the server (again) on the same port and data; returns once it accepts
    /// connections.
    pub async fn start_again(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let mut start = self.pg_ctl();
        start
            .args(["-o", &options, "-w", "-t", "60", "-l"])
            .arg(self.dir.path().join("server.log"))
            .arg("start");
        run(&mut start, "pg_ctl start").await;
        self.running = true;
        // `-w` waits for the socket; a first TCP connection proves the port.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the cluster does not listen on {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn pg_ctl(&self) -> tokio::process::Command {
        let mut pg_ctl = command(&self.bin, "pg_ctl");
        pg_ctl.arg("-D").arg(data(self.dir.path()));
        pg_ctl
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        if self.running {
            let mut stop = command(&self.bin, "pg_ctl");
            let _ = stop
                .as_std_mut()
                .arg("-D")
                .arg(data(self.dir.path()))
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

fn data(dir: &Path) -> PathBuf {
    dir.join("data")
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// The server binary `program`, run as `nobody` when the test runs as root.
fn command(bin: &Path, program: &str) -> tokio::process::Command {
    let program = bin.join(program);
    if is_root() {
        let mut command = tokio::process::Command::new("setpriv");
        command
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(program);
        command
    } else {
        tokio::process::Command::new(program)
    }
}

async fn run(command: &mut tokio::process::Command, what: &str) {
    let out = command
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
