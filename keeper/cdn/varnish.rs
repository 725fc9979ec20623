//! Purging a self-hosted Varnish running the xkey module (`deploy/cdn/varnish.vcl`): an HTTP
//! `PURGE` request with the keys in an `xkey` header, sent to every configured Varnish.

use async_trait::async_trait;
use reqwest::Method;
use url::Url;

use super::{validate_surrogate_key, with_retries, PurgeError, Purger, RetryPolicy};

/// Keys per `PURGE` request (keeps the header short).
pub const BATCH: usize = 64;

#[derive(Debug, Clone)]
pub struct VarnishPurger {
    client: reqwest::Client,
    urls: Vec<Url>,
    retry: RetryPolicy,
}

impl VarnishPurger {
    pub fn new(urls: Vec<Url>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            client,
            urls,
            retry: RetryPolicy::default(),
        }
    }

    async fn purge_one(&self, url: &Url, keys: &str) -> Result<(), PurgeError> {
        let method = Method::from_bytes(b"PURGE").unwrap_or(Method::POST);
        let response = self
            .client
            .request(method, url.clone())
            .header("xkey", keys)
            .send()
            .await
            .map_err(|source| PurgeError::Network {
                url: url.to_string(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(PurgeError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            body: body.chars().take(2048).collect(),
        })
    }
}

#[async_trait]
impl Purger for VarnishPurger {
    async fn purge(&self, keys: &[String]) -> Result<(), PurgeError> {
        for key in keys {
            validate_surrogate_key(key)?;
        }
        for batch in keys.chunks(BATCH) {
            let joined = batch.join(" ");
            for url in &self.urls {
                with_retries(&self.retry, || self.purge_one(url, &joined)).await?;
            }
            tracing::info!(
                cdn = "varnish",
                keys = batch.len(),
                hosts = self.urls.len(),
                "purged"
            );
        }
        Ok(())
    }
}
