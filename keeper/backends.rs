//! The store and CDN each organization publishes with (DESIGN.md section 3). The default
//! organization publishes with the process's own (`KEEPER_STORAGE_*`, `KEEPER_CDN*`); any other
//! organization with the bucket and CDN its row names, its credentials decrypted with
//! `KEEPER_ENCRYPTION_KEYS`. Clients are built once per organization and rebuilt when its row
//! changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use url::Url;

use crate::cdn::fastly::{FastlyPurger, FastlySettings};
use crate::cdn::varnish::VarnishPurger;
use crate::cdn::{NoPurger, Purger, RetryPolicy};
use crate::crypto::{CryptoError, EncryptionKeys};
use crate::db::models::OrganizationSettings;
use crate::db::organizations::DEFAULT_ORGANIZATION;
use crate::storage::s3::{S3Settings, S3Store};
use crate::storage::ObjectStore;

/// What the process lends every organization's own clients.
#[derive(Debug, Clone)]
pub struct OrgDefaults {
    pub encryption_keys: Option<EncryptionKeys>,
    /// [`S3Settings::attempt_timeout`] of every organization's bucket.
    pub s3_attempt_timeout: Duration,
    /// The Fastly API's base URL (`KEEPER_FASTLY_API_URL`).
    pub fastly_api_url: Url,
    /// `KEEPER_FASTLY_SOFT_PURGE`.
    pub fastly_soft_purge: bool,
}

impl OrgDefaults {
    /// No encryption keys; AWS's Fastly API; the default timeouts.
    pub fn without_keys() -> Self {
        Self {
            encryption_keys: None,
            s3_attempt_timeout: S3Settings::DEFAULT_ATTEMPT_TIMEOUT,
            fastly_api_url: Url::parse(crate::cdn::fastly::DEFAULT_API_URL)
                .unwrap_or_else(|_| unreachable!("a constant URL parses")),
            fastly_soft_purge: false,
        }
    }
}

/// An organization's settings that cannot be used; the message says what to change.
#[derive(Debug, thiserror::Error)]
#[error("organization {organization}: {problem}")]
pub struct SettingsError {
    pub organization: String,
    pub problem: String,
}

/// One organization's clients.
#[derive(Debug, Clone)]
pub struct Backends {
    pub store: Arc<dyn ObjectStore>,
    pub purger: Arc<dyn Purger>,
    /// The bucket's client, which also signs the organization's upload forms.
    pub s3: S3Store,
}

/// Builds and keeps the clients of organizations other than the default.
#[derive(Debug)]
pub struct OrgBackends {
    defaults: OrgDefaults,
    built: Mutex<HashMap<String, (OrganizationSettings, Backends)>>,
}

impl OrgBackends {
    pub fn new(defaults: OrgDefaults) -> Self {
        Self {
            defaults,
            built: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `settings` are the default organization's, which publishes with the process's
    /// store and CDN.
    pub fn is_default(settings: &OrganizationSettings) -> bool {
        settings.slug == DEFAULT_ORGANIZATION
    }

    /// The clients of a non-default organization, built on first use and again whenever its
    /// settings change.
    pub async fn for_organization(
        &self,
        settings: &OrganizationSettings,
    ) -> Result<Backends, SettingsError> {
        if let Some((seen, backends)) = self.lock().get(&settings.slug) {
            if seen == settings {
                return Ok(backends.clone());
            }
        }
        let backends = self.build(settings).await?;
        self.lock()
            .insert(settings.slug.clone(), (settings.clone(), backends.clone()));
        Ok(backends)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (OrganizationSettings, Backends)>> {
        // The map holds finished values only: a panic elsewhere cannot leave it half-written.
        self.built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn build(&self, settings: &OrganizationSettings) -> Result<Backends, SettingsError> {
        let fail = |problem: String| SettingsError {
            organization: settings.slug.clone(),
            problem,
        };
        let s3 = self.s3_settings(settings).map_err(fail)?;
        let purger = self.purger(settings).map_err(fail)?;
        let s3 = S3Store::connect(s3).await;
        Ok(Backends {
            store: Arc::new(s3.clone()),
            purger,
            s3,
        })
    }

    fn decrypt(&self, column: &str, token: &str) -> Result<secrecy::SecretString, String> {
        let keys = self.defaults.encryption_keys.as_ref().ok_or_else(|| {
            format!(
                "its {column} is stored encrypted, and KEEPER_ENCRYPTION_KEYS is not set; set it \
                 to the keys the secrets were stored with"
            )
        })?;
        keys.decrypt(token).map_err(|err: CryptoError| {
            format!("its {column} cannot be used: {err}; store it again with `keeper org update`")
        })
    }

    fn s3_settings(&self, settings: &OrganizationSettings) -> Result<S3Settings, String> {
        if settings.store_kind != "s3" || settings.bucket_name.trim().is_empty() {
            return Err(
                "it names no S3 bucket (only the default organization uses keeper's \
                        local store); set one with `keeper org update --bucket`"
                    .into(),
            );
        }
        let secret_access_key = settings
            .s3_secret_access_key_encrypted
            .as_deref()
            .map(|token| self.decrypt("S3 secret access key", token))
            .transpose()?;
        if settings.s3_access_key_id.is_some() != secret_access_key.is_some() {
            return Err(
                "it has only half of its S3 credentials (an access key id and its \
                        secret go together)"
                    .into(),
            );
        }
        Ok(S3Settings {
            bucket: settings.bucket_name.clone(),
            region: settings
                .s3_region
                .clone()
                .unwrap_or_else(|| "us-east-1".into()),
            endpoint_url: settings.s3_endpoint_url.clone(),
            path_style: settings.s3_path_style,
            access_key_id: settings.s3_access_key_id.clone(),
            secret_access_key,
            page_size: 1000,
            attempt_timeout: self.defaults.s3_attempt_timeout,
        })
    }

    fn purger(&self, settings: &OrganizationSettings) -> Result<Arc<dyn Purger>, String> {
        Ok(match settings.cdn_kind.as_str() {
            "none" => Arc::new(NoPurger),
            "fastly" => {
                let (Some(service_id), Some(token)) = (
                    settings.fastly_service_id.as_deref(),
                    settings.fastly_api_key_encrypted.as_deref(),
                ) else {
                    return Err(
                        "its CDN is Fastly, but its service id or API key is missing".into(),
                    );
                };
                Arc::new(FastlyPurger::new(FastlySettings {
                    service_id: service_id.to_owned(),
                    api_key: self.decrypt("Fastly API key", token)?,
                    api_url: self.defaults.fastly_api_url.clone(),
                    soft_purge: self.defaults.fastly_soft_purge,
                    retry: RetryPolicy::default(),
                    request_timeout: FastlySettings::DEFAULT_REQUEST_TIMEOUT,
                }))
            }
            "varnish" => Arc::new(VarnishPurger::new(parse_varnish_urls(
                settings.varnish_urls.as_deref().unwrap_or(""),
            )?)),
            other => {
                return Err(format!(
                    "its CDN kind {other:?} is not none, fastly or varnish"
                ))
            }
        })
    }
}

/// Comma-separated Varnish base URLs; at least one.
pub fn parse_varnish_urls(raw: &str) -> Result<Vec<Url>, String> {
    let urls = raw
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| Url::parse(url).map_err(|err| format!("Varnish URL {url:?}: {err}")))
        .collect::<Result<Vec<_>, _>>()?;
    if urls.is_empty() {
        return Err("its CDN is Varnish, but it lists no Varnish URL".into());
    }
    Ok(urls)
}
