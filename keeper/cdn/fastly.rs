//! Purging Fastly by surrogate key through its API.
//!
//! One key: `POST <api>/service/<id>/purge/<key>`; several: `POST <api>/service/<id>/purge` with
//! `Surrogate-Key: k1 k2 ...`, at most [`BATCH`] keys per request. The `Fastly-Key` header is
//! marked sensitive, and the key is never logged or printed.

use async_trait::async_trait;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::header::{HeaderValue, ACCEPT};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{validate_surrogate_key, with_retries, PurgeError, Purger, RetryPolicy};

/// Most keys in one batch purge (Fastly's limit).
pub const BATCH: usize = 256;
/// Longest error body kept in an error.
const MAX_ERROR_BODY: usize = 2048;

#[derive(Clone)]
pub struct FastlySettings {
    pub service_id: String,
    pub api_key: SecretString,
    /// The API's base URL (`https://api.fastly.com`; a local server in tests).
    pub api_url: Url,
    /// Mark content stale instead of evicting it (`Fastly-Soft-Purge: 1`).
    pub soft_purge: bool,
    pub retry: RetryPolicy,
    /// How long one API request may take before it is abandoned (and retried).
    pub request_timeout: std::time::Duration,
}

impl FastlySettings {
    /// The default for [`FastlySettings::request_timeout`].
    pub const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

    /// The purger settings of a configured service (the process's or an organization's), with
    /// the default retries and request timeout.
    pub fn from_config(config: &crate::config::FastlyConfig) -> Self {
        Self {
            service_id: config.service_id.clone(),
            api_key: config.api_key.clone(),
            api_url: config.api_url.clone(),
            soft_purge: config.soft_purge,
            retry: RetryPolicy::default(),
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl std::fmt::Debug for FastlySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastlySettings")
            .field("service_id", &self.service_id)
            .field("api_key", &"***")
            .field("api_url", &self.api_url.as_str())
            .field("soft_purge", &self.soft_purge)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct FastlyPurger {
    client: reqwest::Client,
    settings: FastlySettings,
}

impl FastlyPurger {
    pub fn new(settings: FastlySettings) -> Self {
        let client = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .user_agent(concat!("ltd-keeper/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { client, settings }
    }

    fn service_url(&self) -> String {
        format!(
            "{}/service/{}/purge",
            self.settings.api_url.as_str().trim_end_matches('/'),
            utf8_percent_encode(&self.settings.service_id, NON_ALPHANUMERIC)
        )
    }

    async fn post(&self, url: &str, surrogate_keys: Option<&str>) -> Result<(), PurgeError> {
        let mut api_key =
            HeaderValue::from_str(self.settings.api_key.expose_secret()).map_err(|_| {
                PurgeError::Status {
                    url: url.to_owned(),
                    status: 0,
                    body: "the Fastly API key is not a valid header value".into(),
                }
            })?;
        api_key.set_sensitive(true);
        let mut request = self
            .client
            .post(url)
            .header("Fastly-Key", api_key)
            .header(ACCEPT, "application/json");
        if self.settings.soft_purge {
            request = request.header("Fastly-Soft-Purge", "1");
        }
        if let Some(keys) = surrogate_keys {
            request = request.header("Surrogate-Key", keys);
        }
        let response = request.send().await.map_err(|source| PurgeError::Network {
            url: url.to_owned(),
            source,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let mut body = response.text().await.unwrap_or_default();
        if body.len() > MAX_ERROR_BODY {
            let mut end = MAX_ERROR_BODY;
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            body.truncate(end);
        }
        Err(PurgeError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            body,
        })
    }
}

#[async_trait]
impl Purger for FastlyPurger {
    async fn purge(&self, keys: &[String]) -> Result<(), PurgeError> {
        for key in keys {
            validate_surrogate_key(key)?;
        }
        let retry = self.settings.retry;
        if let [key] = keys {
            let url = format!(
                "{}/{}",
                self.service_url(),
                utf8_percent_encode(key, NON_ALPHANUMERIC)
            );
            with_retries(&retry, || self.post(&url, None)).await?;
            tracing::info!(cdn = "fastly", keys = 1, "purged");
            return Ok(());
        }
        let url = self.service_url();
        for batch in keys.chunks(BATCH) {
            let joined = batch.join(" ");
            with_retries(&retry, || self.post(&url, Some(&joined))).await?;
            tracing::info!(cdn = "fastly", keys = batch.len(), "purged");
        }
        Ok(())
    }
}
