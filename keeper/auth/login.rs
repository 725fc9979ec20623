//! What a password login may cost (issue 14): a bounded number of password hashes at once, run
//! on the blocking pool with no database connection held, and failed-login throttling per user
//! name and per client, so that a flood of wrong passwords queues instead of growing memory and
//! cannot guess at CPU speed.
//!
//! The throttle lives in each process's memory. With several API replicas an attacker gets the
//! limit once per replica; that is still a fixed, small number of guesses per window, and
//! sharing counters through the database would put a write on the path of every failed login
//! (the very load a flood brings), so keeper does not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio::sync::Semaphore;

use crate::auth::password::{verify_password_in, HashMemory};
use crate::config::LoginConfig;

/// Most keys a throttle tracks: a flood of made-up user names cannot grow it past this (the
/// per-client limit still applies to them).
const MAX_TRACKED: usize = 100_000;

/// Failures per key in fixed windows.
#[derive(Debug)]
pub struct Throttle {
    limit: u32,
    window: Duration,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Throttle {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, u32)>> {
        // Counters only: a panic elsewhere cannot leave them inconsistent.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `key` must wait before its next attempt, if it spent its failures.
    pub fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let failures = self.lock();
        let (start, count) = failures.get(key)?;
        let elapsed = now.saturating_duration_since(*start);
        (*count >= self.limit && elapsed < self.window).then(|| self.window - elapsed)
    }

    /// Counts a failure of `key`.
    pub fn fail(&self, key: &str, now: Instant) {
        let mut failures = self.lock();
        if !failures.contains_key(key) && failures.len() >= MAX_TRACKED {
            let window = self.window;
            failures.retain(|_, (start, _)| now.saturating_duration_since(*start) < window);
            if failures.len() >= MAX_TRACKED {
                return;
            }
        }
        let entry = failures.entry(key.to_owned()).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    /// Forgets `key`'s failures (a successful login).
    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// Why a login is refused before its password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

/// The throttles and the bounded password checker of one process.
pub struct LoginGuard {
    hashes: Arc<Semaphore>,
    /// One working memory per hash slot, reused: memory stays at slots × one hash's.
    memories: Arc<Mutex<Vec<HashMemory>>>,
    users: Throttle,
    clients: Throttle,
}

impl LoginGuard {
    pub fn new(limits: &LoginConfig) -> Self {
        Self {
            hashes: Arc::new(Semaphore::new(limits.concurrent_hashes.max(1))),
            memories: Arc::new(Mutex::new(Vec::new())),
            users: Throttle::new(limits.failures_per_user, limits.window),
            clients: Throttle::new(limits.failures_per_client, limits.window),
        }
    }

    /// Refuses a login for `username` from `client` that has spent its failures.
    pub fn admit(&self, username: &str, client: &str) -> Result<(), Throttled> {
        let now = Instant::now();
        let wait = [
            self.users.wait(&user_key(username), now),
            self.clients.wait(client, now),
        ]
        .into_iter()
        .flatten()
        .max();
        match wait {
            Some(retry_after) => {
                crate::metrics::metrics().logins_throttled.inc();
                Err(Throttled { retry_after })
            }
            None => Ok(()),
        }
    }

    /// Records the outcome of a login that was checked.
    pub fn record(&self, username: &str, client: &str, succeeded: bool) {
        if succeeded {
            self.users.clear(&user_key(username));
        } else {
            crate::metrics::metrics().logins_failed.inc();
            let now = Instant::now();
            self.users.fail(&user_key(username), now);
            self.clients.fail(client, now);
        }
    }

    /// Whether `password` matches `hash`, computed on the blocking pool once one of the bounded
    /// hash slots is free (callers wait in line; memory stays at slots × one hash).
    pub async fn verify(&self, password: SecretString, hash: String) -> bool {
        self.verify_with(password, hash, verify_password_in).await
    }

    /// Runs `work` (a slow hash) on the blocking pool in one of the bounded hash slots; `None`
    /// if it could not run.
    pub async fn run_bounded<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _permit = self.hashes.clone().acquire_owned().await.ok()?;
        tokio::task::spawn_blocking(work).await.ok()
    }

    async fn verify_with(
        &self,
        password: SecretString,
        hash: String,
        check: fn(&SecretString, &str, &mut HashMemory) -> bool,
    ) -> bool {
        let Ok(_permit) = self.hashes.clone().acquire_owned().await else {
            return false;
        };
        let memories = self.memories.clone();
        let mut memory = lock(&memories).pop().unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            let matches = check(&password, &hash, &mut memory);
            lock(&memories).push(memory);
            matches
        })
        .await
        .unwrap_or(false)
    }
}

fn lock(memories: &Mutex<Vec<HashMemory>>) -> std::sync::MutexGuard<'_, Vec<HashMemory>> {
    memories
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl std::fmt::Debug for LoginGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginGuard")
            .field("free_hash_slots", &self.hashes.available_permits())
            .field("users", &self.users)
            .field("clients", &self.clients)
            .finish()
    }
}

/// User names are throttled case-insensitively, so that case variants share one budget.
fn user_key(username: &str) -> String {
    username.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_key_is_refused_after_its_failures_until_the_window_ends() {
        let throttle = Throttle::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..2 {
            throttle.fail("alice", start);
        }
        assert_eq!(throttle.wait("alice", start), None);
        throttle.fail("alice", start);
        let later = start + Duration::from_secs(20);
        assert_eq!(throttle.wait("alice", later), Some(Duration::from_secs(40)));
        assert_eq!(throttle.wait("bob", later), None);
        assert_eq!(
            throttle.wait("alice", start + Duration::from_secs(60)),
            None
        );
        throttle.clear("alice");
        assert_eq!(throttle.wait("alice", later), None);
    }

    #[test]
    fn case_variants_share_a_budget() {
        let guard = LoginGuard::new(&LoginConfig {
            failures_per_user: 2,
            ..LoginConfig::default()
        });
        guard.record("Alice", "10.0.0.1", false);
        guard.record("ALICE", "10.0.0.2", false);
        assert!(guard.admit("alice", "10.0.0.3").is_err());
        guard.record("alice", "10.0.0.3", true);
        assert!(guard.admit("alice", "10.0.0.3").is_ok());
    }

    static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
    static MOST: AtomicUsize = AtomicUsize::new(0);

    fn slow_check(_: &SecretString, _: &str, _: &mut HashMemory) -> bool {
        let now = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
        MOST.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        false
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hashes_run_at_most_the_configured_number_at_once() {
        let guard = Arc::new(LoginGuard::new(&LoginConfig {
            concurrent_hashes: 2,
            ..LoginConfig::default()
        }));
        let checks: Vec<_> = (0..12)
            .map(|_| {
                let guard = guard.clone();
                tokio::spawn(async move {
                    guard
                        .verify_with(SecretString::from("x"), String::new(), slow_check)
                        .await
                })
            })
            .collect();
        for check in checks {
            assert!(!check.await.unwrap());
        }
        // Without the bound all twelve would run together.
        let most = MOST.load(Ordering::SeqCst);
        assert!((1..=2).contains(&most), "{most} hashes ran at once");
    }
}
