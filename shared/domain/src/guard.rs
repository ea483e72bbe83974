//! What stands between an unauthenticated caller and Argon2: a bounded hashing pool and a
//! throttle on failed authentication. Each Argon2id verification takes ~19 MiB and tens of
//! milliseconds of a core, so an unbounded number of them is a memory and CPU exhaustion
//! attack open to anyone who can send a request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A sliding window approximated from two fixed ones (Cloudflare's method): the previous
/// window counts in proportion to how much of it still lies within the last `len`. Unlike a
/// fixed window it never admits twice the limit across a boundary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sliding {
    pub previous: u64,
    pub current: u64,
    /// How far into the current window we are, 0 ≤ elapsed < len.
    pub elapsed: f64,
    pub len: f64,
}

impl Sliding {
    pub fn count(&self) -> f64 {
        self.previous as f64 * (1.0 - self.elapsed / self.len) + self.current as f64
    }

    /// Seconds until one more request fits under `limit`, if none arrives meanwhile.
    pub fn wait_secs(&self, limit: u64) -> u64 {
        let room = limit.saturating_sub(1) as f64; // the count must drop to limit - 1
        let wait = if (self.current as f64) > room {
            // Not before the next window, where this one becomes the previous.
            let rest = self.len - self.elapsed;
            let into_next = if self.current == 0 { 0.0 } else { self.len * (1.0 - room / self.current as f64) };
            rest + into_next.max(0.0)
        } else if self.previous == 0 {
            0.0
        } else {
            // previous × (1 − t/len) + current ≤ room  ⇔  t ≥ len × (1 − (room − current)/previous)
            let t = self.len * (1.0 - (room - self.current as f64) / self.previous as f64);
            (t - self.elapsed).max(0.0)
        };
        // A hair under a whole second is that second, not the next (floating point).
        ((wait - 1e-9).ceil() as u64).max(1)
    }
}

type Work = Box<dyn FnOnce() + Send>;

/// Argon2 on a fixed set of threads fed by a bounded queue. At most `threads` hashes run at
/// once (so memory is bounded by `threads` × the Argon2 cost, and the allocator keeps at most
/// that many arenas); a request that cannot start within `max_wait`, or finds the queue
/// full, is refused as `Overloaded` (503 with `Retry-After`) instead of piling up.
pub struct HashPool {
    queue: SyncSender<(Instant, Work)>,
    max_wait: Duration,
    /// Refusals since the last log line: a flood is summarised once a second, not logged per
    /// request (which would be a second way to exhaust the machine).
    refused: std::sync::atomic::AtomicU64,
    last_report: Mutex<Instant>,
}

impl HashPool {
    pub fn new(threads: usize, queue: usize, max_wait: Duration) -> HashPool {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Instant, Work)>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only to take the next job, never while hashing.
                        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((deadline, work)) = next else { return };
                        // A job whose caller has stopped waiting is dropped unrun.
                        if Instant::now() <= deadline {
                            work();
                        }
                    }
                })
                .expect("the OS starts a hashing thread");
        }
        HashPool { queue: tx, max_wait, refused: 0.into(), last_report: Mutex::new(Instant::now()) }
    }

    /// Sized to this machine: one thread per core, a queue of 16 per thread, 2 s of waiting.
    pub fn for_this_machine() -> HashPool {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        HashPool::new(cores, 16 * cores, Duration::from_secs(2))
    }

    /// Runs `f` on the pool and returns its result, or `Overloaded` when the pool is too busy.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let busy = || {
            self.note_refusal();
            Error::Overloaded("authentication is busy; retry shortly".into())
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let deadline = Instant::now() + self.max_wait;
        let work: Work = Box::new(move || {
            let _ = tx.send(f());
        });
        match self.queue.try_send((deadline, work)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(busy()),
            Err(TrySendError::Disconnected(_)) => return Err(Error::Internal("the hashing threads stopped".into())),
        }
        // The sender is dropped unrun when the deadline passed before a thread was free.
        rx.await.map_err(|_| busy())
    }
}

impl HashPool {
    fn note_refusal(&self) {
        let n = self.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let mut last = self.last_report.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= Duration::from_secs(1) {
            self.refused.store(0, std::sync::atomic::Ordering::Relaxed);
            *last = Instant::now();
            tracing::warn!(refused = n, "hashing pool full: authentication requests refused with 503");
        }
    }
}

/// Counts failed authentications per client address (IPv6 by /64, since one host has many)
/// and per credential (a key prefix or a client id), in sliding one-minute windows. Once
/// either is over its limit, further attempts are refused with 429 before any hashing. The
/// table is bounded: when it is full, entries whose windows have passed are dropped, and if
/// none have, the oldest half goes.
pub struct FailureThrottle {
    per_address: u32,
    per_credential: u32,
    window: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<String, Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    current: u32,
    previous: u32,
}

impl Window {
    /// Rolls the window forward to `now` and returns where it stands.
    fn slide(&mut self, now: Instant, len: Duration) -> Sliding {
        let elapsed = now.duration_since(self.started);
        if elapsed >= len {
            let windows = (elapsed.as_secs_f64() / len.as_secs_f64()).floor() as u32;
            self.previous = if windows == 1 { self.current } else { 0 };
            self.current = 0;
            self.started += len * windows;
        }
        let elapsed = now.duration_since(self.started).as_secs_f64();
        Sliding { previous: self.previous as u64, current: self.current as u64, elapsed, len: len.as_secs_f64() }
    }
}

impl Default for FailureThrottle {
    fn default() -> Self {
        FailureThrottle::new(20, 10, Duration::from_secs(60), 100_000)
    }
}

/// The throttle's key for an address: IPv4 whole, IPv6 by its /64.
fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

impl FailureThrottle {
    pub fn new(per_address: u32, per_credential: u32, window: Duration, max_entries: usize) -> Self {
        FailureThrottle { per_address, per_credential, window, max_entries, entries: Mutex::new(HashMap::new()) }
    }

    fn keys(ip: Option<IpAddr>, credential: &str) -> [(Option<String>, bool); 2] {
        [(ip.map(address_key), true), (Some(format!("cred:{credential}")), false)]
    }

    /// `RateLimited` when the address or the credential has failed too often lately.
    pub fn check(&self, ip: Option<IpAddr>, credential: &str) -> Result<()> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for (key, is_address) in Self::keys(ip, credential) {
            let Some(key) = key else { continue };
            let limit = if is_address { self.per_address } else { self.per_credential };
            let Some(window) = entries.get_mut(&key) else { continue };
            let sliding = window.slide(now, self.window);
            if sliding.count() >= limit as f64 {
                return Err(Error::RateLimited {
                    policy: "auth-failures",
                    limit: limit as u64,
                    window_secs: self.window.as_secs(),
                    retry_after_secs: sliding.wait_secs(limit as u64),
                });
            }
        }
        Ok(())
    }

    /// Counts one failure against the address and the credential.
    pub fn record_failure(&self, ip: Option<IpAddr>, credential: &str) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() + 2 > self.max_entries {
            let len = self.window;
            entries.retain(|_, w| now.duration_since(w.started) < len * 2);
            if entries.len() + 2 > self.max_entries {
                let mut starts: Vec<Instant> = entries.values().map(|w| w.started).collect();
                starts.sort();
                let median = starts[starts.len() / 2];
                entries.retain(|_, w| w.started > median);
            }
        }
        for (key, _) in Self::keys(ip, credential) {
            let Some(key) = key else { continue };
            let window = entries.entry(key).or_insert(Window { started: now, current: 0, previous: 0 });
            window.slide(now, self.window);
            window.current += 1;
        }
    }
}

/// Counts of things held at once, per holder id (live streams per user and per key), each
/// taken with a [`Held`] that gives it back when dropped.
#[derive(Default)]
pub struct Holdings {
    held: Mutex<std::collections::HashMap<uuid::Uuid, usize>>,
}

impl Holdings {
    /// Takes one for every `(holder, limit)` — all or none; on refusal, the first holder at
    /// its limit.
    pub fn take(self: &Arc<Self>, wanted: &[(uuid::Uuid, usize)]) -> std::result::Result<Held, (uuid::Uuid, usize)> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(full) = wanted.iter().find(|(id, limit)| held.get(id).copied().unwrap_or(0) >= *limit) {
            return Err(*full);
        }
        for (id, _) in wanted {
            *held.entry(*id).or_insert(0) += 1;
        }
        Ok(Held { holdings: self.clone(), ids: wanted.iter().map(|(id, _)| *id).collect() })
    }

    /// How many `holder` holds now.
    pub fn count(&self, holder: uuid::Uuid) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).get(&holder).copied().unwrap_or(0)
    }
}

/// One taken place in [`Holdings`], given back when dropped.
pub struct Held {
    holdings: Arc<Holdings>,
    ids: Vec<uuid::Uuid>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.holdings.held.lock().unwrap_or_else(|p| p.into_inner());
        for id in &self.ids {
            if let Some(n) = held.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    held.remove(id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pool_runs_at_most_its_threads_at_once_and_refuses_past_its_queue() {
        let pool = Arc::new(HashPool::new(2, 2, Duration::from_secs(5)));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                })
                .await
            }));
        }
        let mut refused = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Err(Error::Overloaded(_))) {
                refused += 1;
            }
        }
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 2);
        // 2 running + 2 queued may be accepted at once; the rest find the queue full.
        assert!(refused >= 4, "refused {refused}");
    }

    #[tokio::test]
    async fn a_job_that_cannot_start_in_time_is_refused() {
        let pool = HashPool::new(1, 4, Duration::from_millis(50));
        let slow = pool.run(|| std::thread::sleep(Duration::from_millis(300)));
        let late = pool.run(|| ());
        let (slow, late) = tokio::join!(slow, late);
        assert!(slow.is_ok());
        assert!(matches!(late, Err(Error::Overloaded(_))));
    }

    #[test]
    fn failures_throttle_the_address_and_the_credential() {
        let throttle = FailureThrottle::new(3, 2, Duration::from_secs(60), 1000);
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        throttle.record_failure(Some(ip), "key-a");
        throttle.record_failure(Some(ip), "key-a");
        assert!(matches!(throttle.check(Some(other), "key-a"), Err(Error::RateLimited { limit: 2, .. })), "per credential");
        assert!(throttle.check(Some(ip), "key-b").is_ok());
        throttle.record_failure(Some(ip), "key-c");
        match throttle.check(Some(ip), "key-d") {
            // 3 failures just now: the next minute, then a third of the one after (the window slides).
            Err(Error::RateLimited { limit: 3, retry_after_secs, .. }) => {
                assert!((79..=81).contains(&retry_after_secs), "{retry_after_secs}")
            }
            other => panic!("{other:?}"),
        }
        // One IPv6 /64 is one client.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        for i in 0..3 {
            throttle.record_failure(Some(a), &format!("k{i}"));
        }
        assert!(throttle.check(Some(b), "fresh").is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let throttle = FailureThrottle::new(3, 3, Duration::from_secs(60), 100);
        for i in 0..10_000u32 {
            throttle.record_failure(Some(IpAddr::from(i.to_be_bytes())), &format!("k{i}"));
        }
        assert!(throttle.entries.lock().unwrap().len() <= 100);
    }

    #[test]
    fn the_window_slides() {
        let len = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut w = Window { started: t0, current: 10, previous: 0 };
        // Half way into the next window, half of the previous one still counts.
        assert!((w.slide(t0 + Duration::from_secs(90), len).count() - 5.0).abs() < 0.01);
        // Two windows on, nothing does.
        assert_eq!(w.slide(t0 + Duration::from_secs(200), len).count(), 0.0);
    }

    #[test]
    fn the_wait_is_until_one_more_fits() {
        // A full previous window at the start of this one: wait until 1/limit of it has passed.
        let s = Sliding { previous: 60, current: 0, elapsed: 0.0, len: 60.0 };
        assert_eq!(s.wait_secs(60), 1);
        let s = Sliding { previous: 60, current: 30, elapsed: 0.0, len: 60.0 };
        assert_eq!(s.wait_secs(60), 31); // 60·(1 − t/60) + 30 ≤ 59 ⇔ t ≥ 31
        // This window already full: the rest of it, then into the next.
        let s = Sliding { previous: 0, current: 60, elapsed: 30.0, len: 60.0 };
        assert_eq!(s.wait_secs(60), 31);
        let s = Sliding { previous: 0, current: 5, elapsed: 10.0, len: 60.0 };
        assert_eq!(s.wait_secs(60), 1);
    }
}
