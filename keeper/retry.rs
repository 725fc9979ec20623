//! The one exponential backoff: the wait before the next attempt of anything keeper retries
//! (Fastly purges, uploads in `keeper upload`, an operation's attempts, contended queue
//! transitions). Each caller picks its start, cap and jitter; the arithmetic is here once.

use std::time::Duration;

/// How a wait is spread, so that clients failing together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Exactly the exponential wait (an operation's `not_before`, which tests and users read).
    None,
    /// The wait plus up to this fraction of it (0.25: between 100% and 125%).
    UpTo(f64),
    /// The wait scaled down to at least this fraction of it (0.5: between 50% and 100%).
    DownTo(f64),
}

/// `initial * 2^(attempt - 1)`, capped at `max`, then spread by `jitter`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub jitter: Jitter,
}

impl Backoff {
    /// Without jitter.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            jitter: Jitter::None,
        }
    }

    pub const fn with_jitter(self, jitter: Jitter) -> Self {
        Self { jitter, ..self }
    }

    /// The capped exponential wait after failed attempt `attempt` (counted from 1; 0 counts
    /// as 1), before jitter.
    pub fn base(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        self.initial
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.max)
    }

    /// The wait after failed attempt `attempt` (counted from 1), jitter applied.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.base(attempt);
        match self.jitter {
            Jitter::None => base,
            Jitter::UpTo(fraction) => base + base.mul_f64(rand::random::<f64>() * fraction),
            Jitter::DownTo(fraction) => {
                base.mul_f64(fraction + rand::random::<f64>() * (1.0 - fraction))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_the_cap() {
        let backoff = Backoff::new(2 * MS, 60 * MS);
        assert_eq!(backoff.delay(0), 2 * MS);
        assert_eq!(backoff.delay(1), 2 * MS);
        assert_eq!(backoff.delay(2), 4 * MS);
        assert_eq!(backoff.delay(4), 16 * MS);
        assert_eq!(backoff.delay(10), 60 * MS);
        assert_eq!(backoff.delay(u32::MAX), 60 * MS);
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let up = Backoff::new(100 * MS, 400 * MS).with_jitter(Jitter::UpTo(0.25));
        let down = Backoff::new(100 * MS, 400 * MS).with_jitter(Jitter::DownTo(0.5));
        for attempt in 1..=12 {
            let base = up.base(attempt);
            for _ in 0..50 {
                let wait = up.delay(attempt);
                assert!(
                    wait >= base && wait <= base.mul_f64(1.25),
                    "{attempt}: {wait:?}"
                );
                let wait = down.delay(attempt);
                assert!(wait >= base / 2 && wait <= base, "{attempt}: {wait:?}");
            }
        }
    }

    #[test]
    fn jitter_spreads_the_waits() {
        let backoff = Backoff::new(100 * MS, 400 * MS).with_jitter(Jitter::DownTo(0.5));
        let waits: std::collections::HashSet<Duration> =
            (0..50).map(|_| backoff.delay(3)).collect();
        assert!(waits.len() > 1, "50 jittered waits were all equal");
    }
}
