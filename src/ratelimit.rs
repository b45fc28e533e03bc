//! Slows down guessing: too many failed authentications from one client within a window, and
//! its further wrong attempts are refused (429) until the window passes. A client is an IPv4
//! address or an IPv6 /64 (one host commonly holds a whole /64); when no address is known,
//! all such clients share one budget rather than going unlimited.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(Ipv4Addr),
    V6Net(u64),
    Unknown,
}

impl Client {
    fn of(ip: Option<IpAddr>) -> Self {
        match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => Client::V4(v4),
            Some(IpAddr::V6(v6)) => Client::V6Net((u128::from(v6) >> 64) as u64),
            None => Client::Unknown,
        }
    }
}

pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    entries: Mutex<HashMap<Client, (u32, Instant)>>,
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds to wait if this client is over its budget.
    pub fn retry_after(&self, ip: Option<IpAddr>) -> Option<u64> {
        let entries = self.entries.lock().expect("limiter lock");
        let (count, since) = entries.get(&Client::of(ip))?;
        self.over(*count, *since)
    }

    fn over(&self, count: u32, since: Instant) -> Option<u64> {
        let elapsed = since.elapsed();
        (count >= self.max_failures && elapsed < self.window)
            .then(|| (self.window - elapsed).as_secs().max(1))
    }

    /// Counts an attempt as failed before the work of checking it, so parallel attempts cannot
    /// all slip under the budget; `Err` (seconds to wait) when the budget is spent. Take it
    /// back with `forgive` if the attempt succeeds.
    pub fn reserve(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let mut entries = self.entries.lock().expect("limiter lock");
        let entry = self.entry(&mut entries, ip);
        if let Some(wait) = self.over(entry.0, entry.1) {
            return Err(wait);
        }
        entry.0 += 1;
        Ok(())
    }

    pub fn forgive(&self, ip: Option<IpAddr>) {
        let mut entries = self.entries.lock().expect("limiter lock");
        if let Some(entry) = entries.get_mut(&Client::of(ip)) {
            entry.0 = entry.0.saturating_sub(1);
        }
    }

    pub fn record_failure(&self, ip: Option<IpAddr>) {
        let mut entries = self.entries.lock().expect("limiter lock");
        self.entry(&mut entries, ip).0 += 1;
    }

    fn entry<'a>(
        &self,
        entries: &'a mut HashMap<Client, (u32, Instant)>,
        ip: Option<IpAddr>,
    ) -> &'a mut (u32, Instant) {
        if entries.len() > 10_000 {
            let window = self.window;
            entries.retain(|_, (_, since)| since.elapsed() < window);
        }
        let entry = entries.entry(Client::of(ip)).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn engages_after_the_budget_and_releases_after_the_window() {
        let l = FailureLimiter::new(2, Duration::from_millis(50));
        l.record_failure(ip("10.0.0.1"));
        assert!(l.retry_after(ip("10.0.0.1")).is_none());
        l.record_failure(ip("10.0.0.1"));
        assert!(l.retry_after(ip("10.0.0.1")).is_some());
        assert!(l.retry_after(ip("10.0.0.2")).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(l.retry_after(ip("10.0.0.1")).is_none());
    }

    #[test]
    fn reservations_count_before_the_check_and_can_be_taken_back() {
        let l = FailureLimiter::new(3, Duration::from_secs(60));
        let granted = (0..10)
            .filter(|_| l.reserve(ip("10.0.0.1")).is_ok())
            .count();
        assert_eq!(granted, 3, "no more attempts than the budget are checked");
        l.forgive(ip("10.0.0.1"));
        assert!(l.reserve(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_unknown_clients_share_a_budget() {
        let l = FailureLimiter::new(1, Duration::from_secs(60));
        l.record_failure(ip("2001:db8:1:2::1"));
        assert!(l.retry_after(ip("2001:db8:1:2:ffff::9")).is_some());
        assert!(l.retry_after(ip("2001:db8:1:3::1")).is_none());
        l.record_failure(None);
        assert!(l.retry_after(None).is_some());
        assert!(l.retry_after(ip("::ffff:10.9.9.9")).is_none());
        l.record_failure(ip("::ffff:10.9.9.9"));
        assert!(
            l.retry_after(ip("10.9.9.9")).is_some(),
            "a mapped IPv4 is that IPv4"
        );
    }
}
