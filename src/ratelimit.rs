//! Slows down guessing: too many failed authentications from one client address within a
//! window, and further attempts from it are refused (429) until the window passes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    entries: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds to wait if `ip` is over its budget.
    pub fn retry_after(&self, ip: IpAddr) -> Option<u64> {
        let entries = self.entries.lock().expect("limiter lock");
        let (count, since) = entries.get(&ip)?;
        let elapsed = since.elapsed();
        (*count >= self.max_failures && elapsed < self.window)
            .then(|| (self.window - elapsed).as_secs().max(1))
    }

    pub fn record_failure(&self, ip: IpAddr) {
        let mut entries = self.entries.lock().expect("limiter lock");
        if entries.len() > 10_000 {
            let window = self.window;
            entries.retain(|_, (_, since)| since.elapsed() < window);
        }
        let entry = entries.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engages_after_the_budget_and_releases_after_the_window() {
        let l = FailureLimiter::new(2, Duration::from_millis(50));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        l.record_failure(ip);
        assert!(l.retry_after(ip).is_none());
        l.record_failure(ip);
        assert!(l.retry_after(ip).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(l.retry_after(ip).is_none());
    }
}
