//! The store and CDN each organization publishes with (DESIGN.md section 3). The default
//! organization publishes with the process's own (`KEEPER_STORAGE_*`, `KEEPER_CDN*`); any other
//! organization with the bucket and CDN its row names, its credentials decrypted with
//! `KEEPER_ENCRYPTION_KEYS`. Clients are built once per organization and rebuilt when its row
//! changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cdn::fastly::{FastlyPurger, FastlySettings};
use crate::cdn::varnish::VarnishPurger;
use crate::cdn::{NoPurger, Purger};
use crate::config::{
    parse_varnish_urls, FastlyApi, OrganizationsConfig, S3Config, S3Parts, S3Problem,
};
use crate::crypto::{CryptoError, EncryptionKeys};
use crate::db::models::OrganizationSettings;
use crate::db::organizations::DEFAULT_ORGANIZATION;
use crate::domain::{CdnKind, StoreKind};
use crate::storage::s3::{S3Settings, S3Store};
use crate::storage::ObjectStore;

/// What the process lends every organization's own clients.
#[derive(Debug, Clone)]
pub struct OrgDefaults {
    pub encryption_keys: Option<EncryptionKeys>,
    /// [`S3Settings::attempt_timeout`] of every organization's bucket.
    pub s3_attempt_timeout: Duration,
    /// The Fastly API every organization's service is purged through.
    pub fastly: FastlyApi,
}

impl OrgDefaults {
    /// No encryption keys; Fastly's own API; the default timeouts.
    pub fn without_keys() -> Self {
        Self {
            encryption_keys: None,
            s3_attempt_timeout: S3Settings::DEFAULT_ATTEMPT_TIMEOUT,
            fastly: FastlyApi::fastly(),
        }
    }

    /// The configured defaults; fails when `KEEPER_ENCRYPTION_KEYS` holds something that is
    /// not a list of keys.
    pub fn from_config(config: &OrganizationsConfig) -> Result<Self, CryptoError> {
        Ok(Self {
            encryption_keys: EncryptionKeys::from_config(config)?,
            s3_attempt_timeout: config.s3_attempt_timeout,
            fastly: config.fastly.clone(),
        })
    }
}

/// An organization's settings that cannot be used; the message says what to change.
#[derive(Debug, thiserror::Error)]
#[error("organization {organization}: {problem}")]
pub struct SettingsError {
    pub organization: String,
    pub problem: String,
}

const NO_BUCKET: &str = "it names no S3 bucket (only the default organization uses keeper's \
                         local store); set one with `keeper org update --bucket`";

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

    /// A secret keeper stored encrypted for itself (a webhook's signing secret), in plain text.
    pub fn decrypt_stored(&self, what: &str, token: &str) -> Result<secrecy::SecretString, String> {
        let keys = self.defaults.encryption_keys.as_ref().ok_or_else(|| {
            format!(
                "the {what} is stored encrypted, and KEEPER_ENCRYPTION_KEYS is not set; set it \
                 to the keys it was stored with"
            )
        })?;
        keys.decrypt(token).map_err(|err: CryptoError| {
            format!(
                "the {what} cannot be decrypted with KEEPER_ENCRYPTION_KEYS ({err}); keep the \
                 key it was stored with in the list"
            )
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
        if settings.store_kind != StoreKind::S3 {
            return Err(NO_BUCKET.into());
        }
        let secret_access_key = settings
            .s3_secret_access_key_encrypted
            .as_deref()
            .map(|token| self.decrypt("S3 secret access key", token))
            .transpose()?;
        let config = S3Config::new(S3Parts {
            bucket: &settings.bucket_name,
            region: settings.s3_region.as_deref(),
            endpoint_url: settings.s3_endpoint_url.as_deref(),
            path_style: settings.s3_path_style,
            access_key_id: settings.s3_access_key_id.clone(),
            secret_access_key,
            attempt_timeout: self.defaults.s3_attempt_timeout,
        })
        .map_err(|problem| match problem {
            S3Problem::NoBucket => NO_BUCKET.to_owned(),
            S3Problem::Endpoint(message) => format!("its S3 endpoint URL: {message}"),
            S3Problem::HalfCredentials => "it has only half of its S3 credentials (an access key \
                                           id and its secret go together)"
                .into(),
        })?;
        Ok(S3Settings::from_config(&config))
    }

    fn purger(&self, settings: &OrganizationSettings) -> Result<Arc<dyn Purger>, String> {
        Ok(match settings.cdn_kind {
            CdnKind::None => Arc::new(NoPurger),
            CdnKind::Fastly => {
                let (Some(service_id), Some(token)) = (
                    settings.fastly_service_id.as_deref(),
                    settings.fastly_api_key_encrypted.as_deref(),
                ) else {
                    return Err(
                        "its CDN is Fastly, but its service id or API key is missing".into(),
                    );
                };
                let api_key = self.decrypt("Fastly API key", token)?;
                let config = self.defaults.fastly.service(service_id, api_key);
                Arc::new(FastlyPurger::new(FastlySettings::from_config(&config)))
            }
            CdnKind::Varnish => Arc::new(VarnishPurger::new(
                parse_varnish_urls(settings.varnish_urls.as_deref().unwrap_or(""))
                    .map_err(|err| format!("its CDN is Varnish: {err}"))?,
            )),
        })
    }
}
