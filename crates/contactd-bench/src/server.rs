//! The server under test as a child process: the release `contactd serve` binary, built if
//! needed, on a free loopback port, against the benchmark's database, with a folder of its
//! own for its log and its data directory (where the embedded store keeps its file).

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::procfs::Memory;

/// The repository's root (this crate is `crates/contactd-bench`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The cargo target folder this program was built into (`CARGO_TARGET_DIR` when it was set):
/// the parent of its profile folder; `target/` of the repository if it is not in one.
pub fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds the release `contactd` binary with cargo and returns its path: `release/` of the
/// target folder this program is in. The build is told that folder, so that it builds where
/// the binary is looked for even when `CARGO_TARGET_DIR` is not passed on.
pub fn build_release_server() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let exe = std::env::current_exe().context("locating this program")?;
    // cargo marks every target folder with this file; without it the build would go
    // somewhere that is not one.
    let target = exe
        .parent()
        .and_then(Path::parent)
        .filter(|folder| folder.join("CACHEDIR.TAG").is_file())
        .context("this program is not in a cargo target folder; pass --server-bin")?;
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "contactd",
            "--bin",
            "contactd",
        ])
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target)
        .status()
        .context("running cargo build --release -p contactd")?;
    if !status.success() {
        bail!("cargo build --release -p contactd failed");
    }
    let server = target.join("release").join("contactd");
    if !server.is_file() {
        bail!("{} was not built; pass --server-bin", server.display());
    }
    Ok(server)
}

/// A free port on loopback (bound, then released for the server to bind).
pub fn free_loopback_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The data directory of a server run in `run_dir`.
pub fn data_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("data")
}

/// The embedded store's file of a server run in `run_dir`, named as the server names it when
/// no URL is given (`contactd.db` in its data directory).
pub fn sqlite_file(run_dir: &Path) -> PathBuf {
    data_dir(run_dir).join("contactd.db")
}

/// Empties `run_dir` (or makes it): each server starts on a data directory of its own, so
/// that an embedded store starts on a fresh file and nothing of an earlier run is read.
pub fn fresh_run_dir(run_dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(run_dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("removing {}", run_dir.display()));
        }
    }
    std::fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))
}

/// A running `contactd serve`, stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Its plaintext endpoint, `http://<addr>` (see [`crate::security::ClientSecurity::endpoint`]
    /// for a server with TLS).
    pub endpoint: String,
    /// The gRPC port's address.
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl ServerProcess {
    /// Starts `program serve --listen 127.0.0.1:<port> --database-url <url> <extra>`, logging
    /// to `server.log` in `run_dir`, with its confirmation pages on a free port and its data
    /// directory in `run_dir`. The URL is always given, so that a `DATABASE_URL` in the
    /// environment never chooses the store instead.
    pub fn start(
        program: &Path,
        database_url: &str,
        extra_args: &[String],
        run_dir: &Path,
    ) -> anyhow::Result<Self> {
        let port = free_loopback_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listen = addr.to_string();
        std::fs::create_dir_all(run_dir)?;
        let log = run_dir.join("server.log");
        let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let data_dir = data_dir(run_dir);
        let child = Command::new(program)
            .args(["serve", "--listen", &listen, "--database-url", database_url])
            .args(["--http-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        Ok(Self {
            child,
            endpoint: format!("http://{listen}"),
            addr,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn memory(&self) -> Option<Memory> {
        Memory::of(self.pid())
    }

    /// Fails if the server has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the server exited ({status}); see {}", self.log.display());
        }
        Ok(())
    }

    /// Stops the server as an operator would (SIGTERM), waiting up to `patience`; kills it
    /// after that. Returns whether it exited cleanly.
    pub fn stop(&mut self, patience: Duration) -> anyhow::Result<bool> {
        if self.child.try_wait()?.is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .status();
        }
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            if Instant::now() >= deadline {
                self.child.kill()?;
                self.child.wait()?;
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
