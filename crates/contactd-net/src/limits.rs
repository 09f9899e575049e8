//! The counts of open connections, in total and per client IP address, and the slot each
//! connection holds in them until it is dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// The open connections, handshakes in progress included.
#[derive(Debug)]
pub(crate) struct ConnectionCounts {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<OpenConnections>,
}

#[derive(Debug, Default)]
struct OpenConnections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Which limit a refused connection reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitReached {
    Total(usize),
    PerIp(usize),
}

impl std::fmt::Display for LimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Total(max) => write!(f, "{max} connections are open already"),
            Self::PerIp(max) => write!(f, "{max} connections from this address are open already"),
        }
    }
}

impl ConnectionCounts {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            open: Mutex::new(OpenConnections::default()),
        })
    }

    /// Counts a new connection from `ip`, unless that would exceed a limit.
    pub(crate) fn try_open(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, LimitReached> {
        // IPv4 clients of a dual-stack socket arrive as ::ffff:a.b.c.d; they are one client.
        let ip = ip.to_canonical();
        let mut open = self.lock();
        if open.total >= self.max_total {
            return Err(LimitReached::Total(self.max_total));
        }
        let from_ip = open.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.max_per_ip {
            if *from_ip == 0 {
                open.per_ip.remove(&ip);
            }
            return Err(LimitReached::PerIp(self.max_per_ip));
        }
        *from_ip += 1;
        open.total += 1;
        Ok(ConnectionSlot {
            counts: Arc::clone(self),
            ip,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OpenConnections> {
        // The counts stay consistent whatever panicked while holding the lock: each change is
        // one statement.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection's place in the counts, given back when it drops.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    counts: Arc<ConnectionCounts>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.counts.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(from_ip) = open.per_ip.get_mut(&self.ip) {
            *from_ip = from_ip.saturating_sub(1);
            if *from_ip == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_client_past_its_limit_is_refused_while_others_are_not() {
        let counts = ConnectionCounts::new(10, 2);
        let _first = counts.try_open(CLIENT).unwrap();
        let second = counts.try_open(CLIENT).unwrap();
        assert_eq!(counts.try_open(CLIENT).unwrap_err(), LimitReached::PerIp(2));
        let _other = counts.try_open(OTHER).unwrap();
        drop(second);
        let _again = counts.try_open(CLIENT).unwrap();
    }

    #[test]
    fn past_the_total_everyone_is_refused_until_one_closes() {
        let counts = ConnectionCounts::new(2, 5);
        let first = counts.try_open(CLIENT).unwrap();
        let _second = counts.try_open(OTHER).unwrap();
        assert_eq!(counts.try_open(OTHER).unwrap_err(), LimitReached::Total(2));
        drop(first);
        let _third = counts.try_open(OTHER).unwrap();
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_the_ipv4_client() {
        let counts = ConnectionCounts::new(10, 1);
        let _v4 = counts.try_open(CLIENT).unwrap();
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(counts.try_open(mapped).unwrap_err(), LimitReached::PerIp(1));
    }

    #[test]
    fn closed_connections_leave_no_entry_behind() {
        let counts = ConnectionCounts::new(10, 1);
        drop(counts.try_open(CLIENT).unwrap());
        assert!(counts.try_open(OTHER).is_ok());
        assert!(!counts.lock().per_ip.contains_key(&CLIENT));
    }
}
