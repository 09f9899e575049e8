//! The kernel's accounting of processes, read from `/proc`: CPU time (generator, server and
//! every PostgreSQL process) and resident memory (current and peak).

use std::collections::BTreeMap;
use std::fs;
use std::time::Instant;

/// `USER_HZ`: the unit of the CPU times in `/proc/<pid>/stat`; 100 on every mainstream Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU time of a process (all its threads), in ticks; `pid` may be `self`.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) of the whole line are 11 and 12 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time of this process's children that have been waited for (`cutime + cstime`), in
/// seconds: a child's CPU is read here after it exits.
pub fn waited_children_cpu_seconds() -> f64 {
    let ticks = (|| {
        let stat = fs::read_to_string("/proc/self/stat").ok()?;
        let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        // Fields 16 and 17 (cutime, cstime) of the whole line are 13 and 14 after the name.
        Some(fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?)
    })();
    ticks.unwrap_or(0) as f64 / TICKS_PER_SECOND
}

/// CPU ticks of the PostgreSQL processes that work for `databases`: the server's own
/// processes (postmaster, checkpointer, WAL writer, background writer, autovacuum, ...) and the
/// client backends connected to one of `databases`. Backends of other databases (another user's
/// tests on the same server) are left out: their CPU shows as other load.
fn postgres_ticks(databases: &[String]) -> BTreeMap<u32, u64> {
    let mut ticks = BTreeMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return ticks;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let is_postgres = fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim_end() == "postgres");
        if is_postgres
            && works_for(pid, databases)
            && let Some(t) = cpu_ticks(&pid.to_string())
        {
            ticks.insert(pid, t);
        }
    }
    ticks
}

/// A client backend's title is `postgres: <cluster>: <user> <database> <host(port)> <state>`;
/// any other PostgreSQL process works for every database.
fn works_for(pid: u32, databases: &[String]) -> bool {
    let Ok(title) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let title = String::from_utf8_lossy(&title).replace('\0', " ");
    let words: Vec<&str> = title.split_whitespace().collect();
    let Some(start) = words.iter().position(|w| *w == "postgres:") else {
        return true;
    };
    let backend = words
        .get(start + 5)
        .filter(|host| host.ends_with(')') || **host == "[local]");
    match (backend, words.get(start + 3)) {
        (Some(_), Some(database)) => databases.iter().any(|d| d == database),
        _ => true,
    }
}

/// A line such as `VmHWM:     7924 kB` of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Resident memory of a process: now, and the peak since it started (`VmHWM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Option<Self> {
        Some(Self {
            rss_kib: status_kib(pid, "VmRSS")?,
            peak_kib: status_kib(pid, "VmHWM")?,
        })
    }
}

/// The machine: cores and memory.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

pub fn memory_total_kib() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Busy CPU time of the whole machine (every process, the kernel's work included), in ticks,
/// from the first line of `/proc/stat`.
fn machine_busy_ticks() -> u64 {
    let Ok(stat) = fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else {
        return 0;
    };
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    cpu.split_whitespace()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

/// CPU times at one instant.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    at: Instant,
    machine: u64,
    generator: u64,
    server: Option<u64>,
    /// `None` when no PostgreSQL serves the run (the embedded store is inside the server).
    postgres: Option<BTreeMap<u32, u64>>,
}

/// CPU used between two snapshots, in cores (1.0 = one core busy all the time).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuSplit {
    /// This process: the load generator (and the server too when it runs in-process).
    pub generator: f64,
    /// The server's process, when it is a child.
    pub server: Option<f64>,
    /// Every PostgreSQL process together; `None` when the run's store is not PostgreSQL (the
    /// embedded store works inside the server, and PostgreSQL's processes are other load).
    pub postgres: Option<f64>,
    /// The whole machine: what is not the three above is other load (another user's build),
    /// which the figures of the run suffered from.
    pub machine: f64,
}

impl CpuSplit {
    /// The machine's busy cores that were neither generator, server nor PostgreSQL.
    pub fn other(&self) -> f64 {
        let ours = self.generator + self.server.unwrap_or(0.0) + self.postgres.unwrap_or(0.0);
        (self.machine - ours).max(0.0)
    }
}

impl CpuSnapshot {
    /// Takes a snapshot; `server` is the server's pid when it runs as another process;
    /// `databases` are those whose PostgreSQL backends count (`None`: PostgreSQL is not the
    /// run's store, and its processes count as other load).
    pub fn take(server: Option<u32>, databases: Option<&[String]>) -> Self {
        Self {
            at: Instant::now(),
            machine: machine_busy_ticks(),
            generator: cpu_ticks("self").unwrap_or(0),
            server: server.and_then(|pid| cpu_ticks(&pid.to_string())),
            postgres: databases.map(postgres_ticks),
        }
    }

    /// The CPU used since `earlier`. A PostgreSQL process born in between counts in full.
    pub fn since(&self, earlier: &CpuSnapshot) -> CpuSplit {
        let seconds = self.at.duration_since(earlier.at).as_secs_f64().max(1e-9);
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / seconds;
        let postgres = match (&self.postgres, &earlier.postgres) {
            (Some(now), Some(then)) => Some(
                now.iter()
                    .map(|(pid, t)| t.saturating_sub(then.get(pid).copied().unwrap_or(0)))
                    .sum::<u64>(),
            ),
            _ => None,
        };
        CpuSplit {
            generator: cores(self.generator.saturating_sub(earlier.generator)),
            server: match (self.server, earlier.server) {
                (Some(now), Some(then)) => Some(cores(now.saturating_sub(then))),
                _ => None,
            },
            postgres: postgres.map(cores),
            machine: cores(self.machine.saturating_sub(earlier.machine)),
        }
    }
}

/// Follows the CPU of the PostgreSQL processes while short-lived backends come and go (those
/// of pgbench end before a final snapshot could see them): samples every 100 ms.
#[derive(Debug)]
pub struct PostgresSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(Instant, Instant, u64)>,
}

impl PostgresSampler {
    pub fn start(databases: &[String]) -> Self {
        let databases = databases.to_vec();
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let first = postgres_ticks(&databases);
            let started = Instant::now();
            let mut last = first.clone();
            while !stopping.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(100));
                for (pid, ticks) in postgres_ticks(&databases) {
                    last.insert(pid, ticks);
                }
            }
            let used = last
                .iter()
                .map(|(pid, now)| now.saturating_sub(first.get(pid).copied().unwrap_or(0)))
                .sum();
            (started, Instant::now(), used)
        });
        Self { stop, thread }
    }

    /// The cores PostgreSQL used while sampled.
    pub fn stop(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.thread.join() {
            Ok((started, stopped, ticks)) => {
                ticks as f64
                    / TICKS_PER_SECOND
                    / stopped.duration_since(started).as_secs_f64().max(1e-9)
            }
            Err(_) => f64::NAN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_visible() {
        assert!(cpu_ticks("self").is_some());
        let memory = Memory::of(std::process::id()).expect("own memory");
        assert!(memory.peak_kib >= memory.rss_kib && memory.rss_kib > 0);
        assert!(cores() >= 1);
        assert!(memory_total_kib().is_some_and(|kib| kib > 0));
        assert!(machine_busy_ticks() > 0);
    }
}
