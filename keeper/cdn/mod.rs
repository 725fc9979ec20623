//! CDN purging: the [`Purger`] trait and its implementations, [`fastly::FastlyPurger`] (the
//! Fastly API), [`varnish::VarnishPurger`] (a self-hosted Varnish with the xkey module) and
//! [`NoPurger`] (no CDN: keeper's own site server reads the store directly).
//!
//! Objects carry surrogate keys (`Surrogate-Key`, from the `surrogate-key` object metadata);
//! purging a key evicts every cached page that carries it. This module knows nothing of the
//! database.

pub mod fastly;
pub mod varnish;

use std::time::Duration;

use async_trait::async_trait;

use crate::retry::{Backoff, Jitter};

use crate::config::CdnConfig;

/// A failed purge. Never carries an API key.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error("purging through {url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("purging through {url} failed: {source}")]
    Network {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("invalid surrogate key {0:?}")]
    InvalidKey(String),
}

impl PurgeError {
    /// Rate limits, server errors and network failures are worth retrying; others are not.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Network { .. } => true,
            Self::InvalidKey(_) => false,
        }
    }

    /// Its kind, as the `cdn_errors` metric counts it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Status { status: 429, .. } => "throttled",
            Self::Status { status, .. } if *status >= 500 => "server",
            Self::Status { .. } => "refused",
            Self::Network { source, .. } if source.is_timeout() => "timeout",
            Self::Network { .. } => "network",
            Self::InvalidKey(_) => "invalid_key",
        }
    }
}

/// Evicts cached pages by surrogate key.
#[async_trait]
pub trait Purger: Send + Sync + std::fmt::Debug {
    /// Purges every page carrying any of `keys`. An empty slice does nothing.
    async fn purge(&self, keys: &[String]) -> Result<(), PurgeError>;
}

/// No CDN: nothing to purge.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPurger;

#[async_trait]
impl Purger for NoPurger {
    async fn purge(&self, _keys: &[String]) -> Result<(), PurgeError> {
        Ok(())
    }
}

/// Bounded retries with exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempt counts from 1), with up to 25% jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        Backoff::new(self.initial_backoff, self.max_backoff)
            .with_jitter(Jitter::UpTo(0.25))
            .delay(attempt)
    }
}

/// A surrogate key is one token: no whitespace, no control characters.
pub fn validate_surrogate_key(key: &str) -> Result<(), PurgeError> {
    if key.is_empty()
        || key.len() > 1024
        || key.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(PurgeError::InvalidKey(key.to_owned()));
    }
    Ok(())
}

/// The purger the configuration asks for.
pub fn from_config(config: &CdnConfig) -> std::sync::Arc<dyn Purger> {
    match config {
        CdnConfig::None => std::sync::Arc::new(NoPurger),
        CdnConfig::Fastly(settings) => std::sync::Arc::new(fastly::FastlyPurger::new(
            fastly::FastlySettings::from_config(settings),
        )),
        CdnConfig::Varnish { urls } => {
            std::sync::Arc::new(varnish::VarnishPurger::new(urls.clone()))
        }
    }
}

use crate::metrics::metrics;

/// Runs `attempt` until it succeeds, fails for good, or the policy's attempts are spent.
pub(crate) async fn with_retries<F, Fut>(
    policy: &RetryPolicy,
    mut attempt: F,
) -> Result<(), PurgeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), PurgeError>>,
{
    let mut number = 1;
    loop {
        let result = attempt().await;
        match &result {
            Ok(()) => {
                metrics().purges.inc();
            }
            Err(err) => metrics().cdn_error(err.kind()),
        }
        match result {
            Ok(()) => return Ok(()),
            Err(err) if err.is_transient() && number < policy.max_attempts => {
                let wait = policy.backoff(number);
                tracing::warn!(error = %err, attempt = number, wait_ms = wait.as_millis() as u64, "purge failed; retrying");
                tokio::time::sleep(wait).await;
                number += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
        };
        assert!(policy.backoff(1) >= Duration::from_millis(100));
        assert!(policy.backoff(1) <= Duration::from_millis(125));
        assert!(policy.backoff(3) >= Duration::from_millis(400));
        assert!(policy.backoff(9) <= Duration::from_millis(500));
    }

    #[test]
    fn surrogate_keys_are_single_tokens() {
        assert!(validate_surrogate_key("0123abcd").is_ok());
        for bad in ["", "a b", "a\nb"] {
            assert!(validate_surrogate_key(bad).is_err());
        }
    }
}
