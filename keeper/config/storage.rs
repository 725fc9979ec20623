//! `KEEPER_STORAGE_*`, `KEEPER_S3_*`, `KEEPER_UPLOAD_*`, `KEEPER_SITES_ROOT_DOMAIN`; and the one
//! constructor of S3 settings, which organizations' buckets are built with too.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use super::database::DatabaseUrl;
use super::vars::{parse_http_url, Vars};
use super::ConfigError;

/// Upload forms last a day by default: a CI job uploads directory objects last, after every file.
pub const DEFAULT_UPLOAD_FORM_EXPIRY_SECS: u64 = 24 * 3600;
/// The region of a bucket that names none.
pub const DEFAULT_S3_REGION: &str = "us-east-1";
/// How long one S3 request attempt may take by default (`KEEPER_S3_TIMEOUT_SECS`): long enough
/// for a server-side copy of a large object.
pub const DEFAULT_S3_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Where objects (the published sites) are stored.
#[derive(Debug, Clone)]
pub enum StorageBackend {
    /// A directory on this machine (the embedded default).
    Local { dir: PathBuf },
    /// An S3-compatible bucket.
    S3(S3Config),
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    /// Largest file keeper's own upload endpoint accepts (local store), in bytes; also the
    /// size limit written into every upload form.
    pub upload_max_bytes: u64,
    /// How long the upload forms of a new build stay valid.
    pub upload_form_expiry: Duration,
    /// Subdomain layout for the site server: `<product>.<root_domain>` serves that product.
    pub sites_root_domain: Option<String>,
}

/// An S3-compatible bucket and how to reach it.
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// A non-AWS endpoint (`http://127.0.0.1:3900`, no trailing `/`); `None` for AWS itself.
    pub endpoint_url: Option<String>,
    /// `https://host/bucket/key` instead of `https://bucket.host/key` (MinIO, Garage, Ceph).
    pub path_style: bool,
    /// Static credentials; `None` uses the default chain.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    /// How long one attempt of a request may take before it is abandoned and retried.
    pub attempt_timeout: Duration,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("attempt_timeout", &self.attempt_timeout)
            .finish()
    }
}

/// What an S3 bucket is described by, from the environment or from an organization's row.
pub struct S3Parts<'a> {
    pub bucket: &'a str,
    pub region: Option<&'a str>,
    pub endpoint_url: Option<&'a str>,
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    pub attempt_timeout: Duration,
}

/// Why [`S3Config::new`] refused; the caller names where the value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3Problem {
    NoBucket,
    Endpoint(String),
    HalfCredentials,
}

impl S3Config {
    /// The one place S3 settings are checked and defaulted: the process's bucket
    /// (`KEEPER_S3_*`) and every organization's are built here.
    pub fn new(parts: S3Parts<'_>) -> Result<Self, S3Problem> {
        let bucket = parts.bucket.trim();
        if bucket.is_empty() {
            return Err(S3Problem::NoBucket);
        }
        let endpoint_url = parts
            .endpoint_url
            .map(|raw| parse_endpoint_url(raw.trim()).map_err(S3Problem::Endpoint))
            .transpose()?;
        if parts.access_key_id.is_some() != parts.secret_access_key.is_some() {
            return Err(S3Problem::HalfCredentials);
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            region: parts
                .region
                .map(str::trim)
                .filter(|region| !region.is_empty())
                .unwrap_or(DEFAULT_S3_REGION)
                .to_owned(),
            endpoint_url,
            path_style: parts.path_style,
            access_key_id: parts.access_key_id,
            secret_access_key: parts.secret_access_key,
            attempt_timeout: parts.attempt_timeout,
        })
    }
}

/// An S3 endpoint: an http(s) URL, kept without its trailing `/`.
pub fn parse_endpoint_url(raw: &str) -> Result<String, String> {
    parse_http_url(raw).map(|url| url.as_str().trim_end_matches('/').to_owned())
}

/// `KEEPER_S3_TIMEOUT_SECS`: a whole number of seconds, at least one.
pub(super) fn s3_attempt_timeout<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
) -> Result<Duration, ConfigError> {
    let default = DEFAULT_S3_ATTEMPT_TIMEOUT.as_secs();
    vars.parse("KEEPER_S3_TIMEOUT_SECS", default, |raw| {
        match raw.parse::<u64>() {
            Ok(secs) if secs >= 1 => Ok(secs),
            _ => Err(format!(
                "expected a whole number of seconds, at least 1, got {raw:?}"
            )),
        }
    })
    .map(Duration::from_secs)
}

/// The default storage directory: `keeper-data` beside the SQLite file (or in the working
/// directory on PostgreSQL).
fn default_storage_dir(url: &DatabaseUrl) -> PathBuf {
    match url {
        DatabaseUrl::Sqlite(path) => std::path::Path::new(path)
            .parent()
            .map(|parent| parent.join("keeper-data"))
            .unwrap_or_else(|| "keeper-data".into()),
        DatabaseUrl::Postgres(_) => "keeper-data".into(),
    }
}

fn s3_backend<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
    attempt_timeout: Duration,
) -> Result<S3Config, ConfigError> {
    let bucket = vars.required("KEEPER_S3_BUCKET", "KEEPER_STORAGE_BACKEND is s3")?;
    let region = vars.get("KEEPER_S3_REGION");
    let endpoint_url = vars.get("KEEPER_S3_ENDPOINT_URL");
    let parts = S3Parts {
        bucket: &bucket,
        region: region.as_deref(),
        endpoint_url: endpoint_url.as_deref(),
        path_style: vars.flag("KEEPER_S3_PATH_STYLE", false)?,
        access_key_id: vars.get("KEEPER_S3_ACCESS_KEY_ID"),
        secret_access_key: vars
            .get("KEEPER_S3_SECRET_ACCESS_KEY")
            .map(SecretString::from),
        attempt_timeout,
    };
    S3Config::new(parts).map_err(|problem| match problem {
        S3Problem::NoBucket => ConfigError {
            variable: "KEEPER_S3_BUCKET",
            message: "must be set when KEEPER_STORAGE_BACKEND is s3".into(),
        },
        S3Problem::Endpoint(message) => ConfigError {
            variable: "KEEPER_S3_ENDPOINT_URL",
            message,
        },
        S3Problem::HalfCredentials => ConfigError {
            variable: "KEEPER_S3_SECRET_ACCESS_KEY",
            message: "set both KEEPER_S3_ACCESS_KEY_ID and KEEPER_S3_SECRET_ACCESS_KEY, or \
                      neither to use the default credential chain"
                .into(),
        },
    })
}

pub(super) fn read<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
    database: &DatabaseUrl,
    s3_attempt_timeout: Duration,
) -> Result<StorageConfig, ConfigError> {
    let backend = match vars.choice("KEEPER_STORAGE_BACKEND", &["local", "s3"])? {
        "s3" => StorageBackend::S3(s3_backend(vars, s3_attempt_timeout)?),
        _ => StorageBackend::Local {
            dir: vars
                .get("KEEPER_STORAGE_DIR")
                .map(|dir| dir.trim().into())
                .unwrap_or_else(|| default_storage_dir(database)),
        },
    };
    Ok(StorageConfig {
        backend,
        upload_max_bytes: vars.number("KEEPER_UPLOAD_MAX_BYTES", 100 * 1024 * 1024)?,
        upload_form_expiry: Duration::from_secs(vars.parse(
            "KEEPER_UPLOAD_FORM_EXPIRY_SECS",
            DEFAULT_UPLOAD_FORM_EXPIRY_SECS,
            |raw| match raw.parse::<u64>() {
                Ok(secs) if (60..=7 * 24 * 3600).contains(&secs) => Ok(secs),
                _ => Err(format!(
                    "expected seconds between 60 and 604800 (7 days), got {raw:?}"
                )),
            },
        )?),
        sites_root_domain: vars
            .get("KEEPER_SITES_ROOT_DOMAIN")
            .map(|domain| domain.trim().trim_start_matches('.').to_ascii_lowercase()),
    })
}
