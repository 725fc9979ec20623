//! `KEEPER_ENCRYPTION_KEYS`, and what the process lends the store and CDN clients of every
//! organization other than the default (which publishes with `KEEPER_STORAGE_*` and
//! `KEEPER_CDN*`).

use std::time::Duration;

use secrecy::SecretString;

use super::cdn::FastlyApi;
use super::vars::Vars;

#[derive(Debug, Clone)]
pub struct OrganizationsConfig {
    /// `KEEPER_ENCRYPTION_KEYS` as given (`new;old;...`); `crypto::EncryptionKeys` reads it.
    pub encryption_keys: Option<SecretString>,
    /// `KEEPER_S3_TIMEOUT_SECS`, for every organization's bucket.
    pub s3_attempt_timeout: Duration,
    /// `KEEPER_FASTLY_API_URL` and `KEEPER_FASTLY_SOFT_PURGE`, for every Fastly service.
    pub fastly: FastlyApi,
}

pub(super) fn read<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
    s3_attempt_timeout: Duration,
    fastly: FastlyApi,
) -> OrganizationsConfig {
    OrganizationsConfig {
        encryption_keys: vars.get("KEEPER_ENCRYPTION_KEYS").map(SecretString::from),
        s3_attempt_timeout,
        fastly,
    }
}
