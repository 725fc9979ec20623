//! Typed settings, read from environment variables in one place.
//!
//! Every variable is documented in `README.md` and `.env.example`. A value that does not parse is
//! reported with the variable's name. Secrets are held in [`SecretString`] so that `Debug` and the
//! logs cannot print them.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// Where the database lives, decided by the URL scheme.
#[derive(Clone)]
pub enum DatabaseUrl {
    /// `postgres://` or `postgresql://`; the whole URL is secret (it may carry a password).
    Postgres(SecretString),
    /// `sqlite://<path>`: a file path, relative to the working directory unless absolute.
    Sqlite(String),
}

impl DatabaseUrl {
    /// Parses `postgres://...`, `postgresql://...` or `sqlite://<path>`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Url::parse(raw).map_err(|err| format!("not a valid PostgreSQL URL: {err}"))?;
            Ok(Self::Postgres(SecretString::from(raw.to_owned())))
        } else if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(
                    "a sqlite:// URL needs a file path, e.g. sqlite://keeper.sqlite3".into(),
                );
            }
            Ok(Self::Sqlite(path.to_owned()))
        } else {
            Err("must start with postgres://, postgresql:// or sqlite://".into())
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }

    /// The URL with any password replaced by `***`, safe for logs and messages.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{path}"),
            Self::Postgres(secret) => match Url::parse(secret.expose_secret()) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        // Setting a password cannot fail on a URL that already has one.
                        let _ = url.set_password(Some("***"));
                    }
                    url.to_string()
                }
                Err(_) => "postgres://<unparseable>".into(),
            },
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: DatabaseUrl,
    /// Most connections the pool holds.
    pub pool_size: u32,
    /// How long a request waits for a pooled connection before answering 503.
    pub checkout_timeout: Duration,
    /// SQLite only: how long a writer waits for the lock before "database is locked".
    pub sqlite_busy_timeout: Duration,
    /// PostgreSQL only: apply pending migrations at start instead of refusing to start.
    pub auto_migrate: bool,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    /// The scheme, host and optional path prefix under which clients reach keeper; `None`:
    /// `http://` + the address actually bound (see [`HttpConfig::public_url_for`]).
    pub public_url: Option<Url>,
    /// Largest accepted request body (JSON and forms), in bytes.
    pub max_body_bytes: usize,
    /// HTTP worker threads; `None` means one per core.
    pub workers: Option<usize>,
    /// How long in-flight requests get to finish after SIGTERM.
    pub shutdown_timeout: Duration,
}

impl HttpConfig {
    /// Keeper's external URL once it listens on `bound`: the configured one, else
    /// `http://<bound>/` (so binding port 0 yields the real port, not `:0`).
    pub fn public_url_for(&self, bound: SocketAddr) -> Url {
        self.public_url.clone().unwrap_or_else(|| {
            let mut url = Url::parse("http://127.0.0.1/").expect("a constant URL parses");
            // An IP address and a port always form a valid authority.
            let _ = url.set_ip_host(bound.ip());
            let _ = url.set_port(Some(bound.port()));
            url
        })
    }
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Signs API tokens. `None`: generated on first start and kept in the database.
    pub secret_key: Option<SecretString>,
    /// How long a token from `GET /token` stays valid.
    pub token_lifetime: Duration,
    pub bootstrap_user: Option<BootstrapUser>,
}

#[derive(Debug, Clone)]
pub struct BootstrapUser {
    pub username: String,
    pub password: SecretString,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `tracing_subscriber::EnvFilter` directives, e.g. `info` or `keeper=debug,actix_web=info`.
    pub filter: String,
    pub json: bool,
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Whether `keeper serve` also runs the operations worker in-process.
    pub run_in_serve: bool,
    /// Operations one worker process runs at once.
    pub concurrency: usize,
    /// How long a claim lasts unless renewed (renewed every third of it while working).
    pub lease: Duration,
    /// Attempts in all before an operation ends FAILED.
    pub max_attempts: i32,
    /// The wait before the second attempt; doubled for each further one, up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How often an idle worker looks for work.
    pub poll_interval: Duration,
    /// Object copies (and deletes) in flight per operation.
    pub copy_concurrency: usize,
}

/// Where objects (the published sites) are stored.
#[derive(Debug, Clone)]
pub enum StorageBackend {
    /// A directory on this machine (the embedded default).
    Local { dir: std::path::PathBuf },
    /// An S3-compatible bucket.
    S3(crate::storage::s3::S3Settings),
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

/// Which CDN to purge after a change.
#[derive(Debug, Clone)]
pub enum CdnConfig {
    None,
    Fastly(crate::cdn::fastly::FastlySettings),
    Varnish { urls: Vec<Url> },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub worker: WorkerConfig,
    pub storage: StorageConfig,
    pub cdn: CdnConfig,
    /// What the process lends the store and CDN clients of organizations other than the
    /// default (which publishes with `storage` and `cdn`), with the keys of secrets at rest.
    pub organizations: crate::backends::OrgDefaults,
}

/// A variable that is set but does not parse.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://keeper.sqlite3";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const MIN_SECRET_KEY_LEN: usize = 32;
/// Upload forms last a day by default: a CI job uploads directory objects last, after every file.
pub const DEFAULT_UPLOAD_FORM_EXPIRY_SECS: u64 = 24 * 3600;

/// Reads variables through a lookup function, so tests can pass a map instead of the process env.
struct Vars<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// The value, with unset and empty treated alike.
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    fn parse<T>(
        &self,
        name: &'static str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => parse(raw.trim()).map_err(|message| ConfigError {
                variable: name,
                message,
            }),
        }
    }

    fn number<T: std::str::FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.parse(name, default, |raw| {
            raw.parse::<T>()
                .map_err(|err| format!("expected a number, got {raw:?} ({err})"))
        })
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.parse(name, default, parse_flag)
    }
}

/// `KEEPER_S3_TIMEOUT_SECS`: a whole number of seconds, at least one.
fn s3_timeout<F>(vars: &Vars<F>) -> Result<Duration, ConfigError>
where
    F: Fn(&str) -> Option<String>,
{
    let default = crate::storage::s3::S3Settings::DEFAULT_ATTEMPT_TIMEOUT.as_secs();
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

fn parse_flag(raw: &str) -> Result<bool, String> {
    match raw.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {raw:?}")),
    }
}

fn parse_public_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|err| format!("not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("expected an http(s) URL with a host, got {raw:?}"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not carry a query or fragment".into());
    }
    Ok(url)
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the process environment in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars { lookup };
        let url = vars.parse(
            "KEEPER_DATABASE_URL",
            DatabaseUrl::Sqlite("keeper.sqlite3".into()),
            DatabaseUrl::parse,
        )?;
        let default_pool_size = if url.is_sqlite() { 4 } else { 10 };
        let database = DatabaseConfig {
            url,
            pool_size: vars.number("KEEPER_DATABASE_POOL_SIZE", default_pool_size)?,
            checkout_timeout: Duration::from_secs(vars.number("KEEPER_DATABASE_TIMEOUT_SECS", 5)?),
            sqlite_busy_timeout: Duration::from_millis(
                vars.number("KEEPER_SQLITE_BUSY_TIMEOUT_MS", 5000)?,
            ),
            auto_migrate: vars.flag("KEEPER_AUTO_MIGRATE", false)?,
        };
        if database.pool_size == 0 {
            return Err(ConfigError {
                variable: "KEEPER_DATABASE_POOL_SIZE",
                message: "must be at least 1".into(),
            });
        }

        let bind: SocketAddr = vars.parse("KEEPER_BIND", default_bind(), |raw| {
            raw.parse()
                .map_err(|err| format!("expected host:port such as 127.0.0.1:8080 ({err})"))
        })?;
        let http = HttpConfig {
            bind,
            public_url: vars.parse("KEEPER_PUBLIC_URL", None, |raw| {
                parse_public_url(raw).map(Some)
            })?,
            max_body_bytes: vars.number("KEEPER_MAX_BODY_BYTES", 1024 * 1024)?,
            workers: vars.parse("KEEPER_HTTP_WORKERS", None, |raw| {
                match raw.parse::<usize>() {
                    Ok(0) | Err(_) => Err(format!("expected a positive number, got {raw:?}")),
                    Ok(count) => Ok(Some(count)),
                }
            })?,
            shutdown_timeout: Duration::from_secs(vars.number("KEEPER_SHUTDOWN_TIMEOUT_SECS", 30)?),
        };

        let secret_key = vars.parse("KEEPER_SECRET_KEY", None, |raw| {
            if raw.len() < MIN_SECRET_KEY_LEN {
                Err(format!(
                    "must be at least {MIN_SECRET_KEY_LEN} characters long"
                ))
            } else {
                Ok(Some(SecretString::from(raw.to_owned())))
            }
        })?;
        let bootstrap_user = match (
            vars.get("KEEPER_BOOTSTRAP_USER"),
            vars.get("KEEPER_BOOTSTRAP_PASSWORD"),
        ) {
            (None, None) => None,
            (Some(username), Some(password)) => Some(BootstrapUser {
                username,
                password: SecretString::from(password),
            }),
            (Some(_), None) => {
                return Err(ConfigError {
                    variable: "KEEPER_BOOTSTRAP_PASSWORD",
                    message: "must be set when KEEPER_BOOTSTRAP_USER is".into(),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError {
                    variable: "KEEPER_BOOTSTRAP_USER",
                    message: "must be set when KEEPER_BOOTSTRAP_PASSWORD is".into(),
                })
            }
        };

        let log = LogConfig {
            filter: vars.get("KEEPER_LOG").unwrap_or_else(|| "info".into()),
            json: vars.parse("KEEPER_LOG_FORMAT", false, |raw| match raw {
                "text" => Ok(false),
                "json" => Ok(true),
                _ => Err(format!("expected text or json, got {raw:?}")),
            })?,
        };
        let worker = WorkerConfig {
            run_in_serve: vars.flag("KEEPER_SERVE_RUNS_WORKER", true)?,
            concurrency: vars.number("KEEPER_WORKER_CONCURRENCY", 4usize)?.max(1),
            lease: Duration::from_millis(
                vars.number("KEEPER_WORKER_LEASE_MS", 60_000u64)?.max(100),
            ),
            max_attempts: vars.number("KEEPER_WORKER_MAX_ATTEMPTS", 8i32)?.max(1),
            initial_backoff: Duration::from_millis(
                vars.number("KEEPER_WORKER_BACKOFF_MS", 2_000u64)?,
            ),
            max_backoff: Duration::from_millis(
                vars.number("KEEPER_WORKER_MAX_BACKOFF_MS", 300_000u64)?,
            ),
            poll_interval: Duration::from_millis(
                vars.number("KEEPER_WORKER_POLL_MS", 1_000u64)?.max(10),
            ),
            copy_concurrency: vars.number("KEEPER_COPY_CONCURRENCY", 32usize)?.max(1),
        };
        let storage = storage_config(&vars, &database.url)?;
        let cdn = cdn_config(&vars)?;
        let organizations = crate::backends::OrgDefaults {
            encryption_keys: vars.parse("KEEPER_ENCRYPTION_KEYS", None, |raw| {
                crate::crypto::EncryptionKeys::parse(raw)
                    .map(Some)
                    .map_err(|err| err.to_string())
            })?,
            s3_attempt_timeout: s3_timeout(&vars)?,
            fastly_api_url: fastly_api_url(&vars)?,
            fastly_soft_purge: vars.flag("KEEPER_FASTLY_SOFT_PURGE", false)?,
        };
        Ok(Self {
            database,
            http,
            auth: AuthConfig {
                secret_key,
                token_lifetime: Duration::from_secs(
                    vars.number("KEEPER_TOKEN_LIFETIME_SECS", 3600)?,
                ),
                bootstrap_user,
            },
            log,
            worker,
            storage,
            cdn,
            organizations,
        })
    }
}

fn fastly_api_url<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Url, ConfigError> {
    vars.parse(
        "KEEPER_FASTLY_API_URL",
        Url::parse(crate::cdn::fastly::DEFAULT_API_URL).map_err(|err| ConfigError {
            variable: "KEEPER_FASTLY_API_URL",
            message: err.to_string(),
        })?,
        parse_public_url,
    )
}

/// The default storage directory: `keeper-data` beside the SQLite file (or in the working
/// directory on PostgreSQL).
fn default_storage_dir(url: &DatabaseUrl) -> std::path::PathBuf {
    match url {
        DatabaseUrl::Sqlite(path) => std::path::Path::new(path)
            .parent()
            .map(|parent| parent.join("keeper-data"))
            .unwrap_or_else(|| "keeper-data".into()),
        DatabaseUrl::Postgres(_) => "keeper-data".into(),
    }
}

fn storage_config<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
    database: &DatabaseUrl,
) -> Result<StorageConfig, ConfigError> {
    let backend = match vars
        .get("KEEPER_STORAGE_BACKEND")
        .unwrap_or_else(|| "local".into())
        .trim()
    {
        "local" => StorageBackend::Local {
            dir: vars
                .get("KEEPER_STORAGE_DIR")
                .map(|dir| dir.trim().into())
                .unwrap_or_else(|| default_storage_dir(database)),
        },
        "s3" => {
            let bucket = vars.get("KEEPER_S3_BUCKET").ok_or(ConfigError {
                variable: "KEEPER_S3_BUCKET",
                message: "must be set when KEEPER_STORAGE_BACKEND is s3".into(),
            })?;
            let endpoint_url = vars.parse("KEEPER_S3_ENDPOINT_URL", None, |raw| {
                parse_public_url(raw).map(|url| Some(url.as_str().trim_end_matches('/').to_owned()))
            })?;
            let access_key_id = vars.get("KEEPER_S3_ACCESS_KEY_ID");
            let secret_access_key = vars
                .get("KEEPER_S3_SECRET_ACCESS_KEY")
                .map(SecretString::from);
            if access_key_id.is_some() != secret_access_key.is_some() {
                return Err(ConfigError {
                    variable: "KEEPER_S3_SECRET_ACCESS_KEY",
                    message: "set both KEEPER_S3_ACCESS_KEY_ID and KEEPER_S3_SECRET_ACCESS_KEY, \
                              or neither to use the default credential chain"
                        .into(),
                });
            }
            StorageBackend::S3(crate::storage::s3::S3Settings {
                bucket: bucket.trim().to_owned(),
                region: vars
                    .get("KEEPER_S3_REGION")
                    .unwrap_or_else(|| "us-east-1".into())
                    .trim()
                    .to_owned(),
                endpoint_url,
                path_style: vars.flag("KEEPER_S3_PATH_STYLE", false)?,
                access_key_id,
                secret_access_key,
                page_size: 1000,
                attempt_timeout: s3_timeout(vars)?,
            })
        }
        other => {
            return Err(ConfigError {
                variable: "KEEPER_STORAGE_BACKEND",
                message: format!("expected local or s3, got {other:?}"),
            })
        }
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

fn cdn_config<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<CdnConfig, ConfigError> {
    match vars
        .get("KEEPER_CDN")
        .unwrap_or_else(|| "none".into())
        .trim()
    {
        "none" => Ok(CdnConfig::None),
        "fastly" => {
            let required = |name: &'static str| {
                vars.get(name).ok_or(ConfigError {
                    variable: name,
                    message: "must be set when KEEPER_CDN is fastly".into(),
                })
            };
            Ok(CdnConfig::Fastly(crate::cdn::fastly::FastlySettings {
                service_id: required("KEEPER_FASTLY_SERVICE_ID")?.trim().to_owned(),
                api_key: SecretString::from(required("KEEPER_FASTLY_API_KEY")?.trim().to_owned()),
                api_url: fastly_api_url(vars)?,
                soft_purge: vars.flag("KEEPER_FASTLY_SOFT_PURGE", false)?,
                retry: crate::cdn::RetryPolicy::default(),
                request_timeout: crate::cdn::fastly::FastlySettings::DEFAULT_REQUEST_TIMEOUT,
            }))
        }
        "varnish" => {
            let urls = vars.parse("KEEPER_VARNISH_URLS", Vec::new(), |raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|url| !url.is_empty())
                    .map(parse_public_url)
                    .collect()
            })?;
            if urls.is_empty() {
                return Err(ConfigError {
                    variable: "KEEPER_VARNISH_URLS",
                    message: "must list at least one Varnish URL when KEEPER_CDN is varnish".into(),
                });
            }
            Ok(CdnConfig::Varnish { urls })
        }
        other => Err(ConfigError {
            variable: "KEEPER_CDN",
            message: format!("expected none, fastly or varnish, got {other:?}"),
        }),
    }
}

fn default_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_need_no_variables() {
        let config = config(&[]).unwrap();
        assert!(matches!(config.database.url, DatabaseUrl::Sqlite(ref p) if p == "keeper.sqlite3"));
        assert_eq!(config.http.bind.to_string(), DEFAULT_BIND);
        assert_eq!(
            config.http.public_url_for(config.http.bind).as_str(),
            "http://127.0.0.1:8080/"
        );
        assert!(!config.database.auto_migrate);
        assert!(config.auth.secret_key.is_none());
        assert!(config.worker.run_in_serve);
        assert_eq!(DEFAULT_DATABASE_URL, "sqlite://keeper.sqlite3");
    }

    #[test]
    fn public_url_follows_bind_unless_set() {
        let config = config(&[("KEEPER_BIND", "127.0.0.1:0")]).unwrap();
        let bound = "127.0.0.1:41234".parse().unwrap();
        assert_eq!(
            config.http.public_url_for(bound).as_str(),
            "http://127.0.0.1:41234/"
        );
        let config = config_with_public();
        assert_eq!(
            config.http.public_url_for(bound).as_str(),
            "https://docs.example.org/keeper"
        );
    }

    fn config_with_public() -> Config {
        config(&[("KEEPER_PUBLIC_URL", "https://docs.example.org/keeper")]).unwrap()
    }

    #[test]
    fn errors_name_the_variable() {
        for (name, value) in [
            ("KEEPER_DATABASE_URL", "mysql://x"),
            ("KEEPER_BIND", "nonsense"),
            ("KEEPER_AUTO_MIGRATE", "perhaps"),
            ("KEEPER_DATABASE_POOL_SIZE", "0"),
            ("KEEPER_PUBLIC_URL", "ftp://x"),
            ("KEEPER_SECRET_KEY", "short"),
            ("KEEPER_LOG_FORMAT", "xml"),
            ("KEEPER_HTTP_WORKERS", "0"),
            ("KEEPER_UPLOAD_FORM_EXPIRY_SECS", "5"),
        ] {
            let err = config(&[(name, value)]).unwrap_err();
            assert_eq!(err.variable, name, "{err}");
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn bootstrap_user_needs_both_halves() {
        let err = config(&[("KEEPER_BOOTSTRAP_USER", "admin")]).unwrap_err();
        assert_eq!(err.variable, "KEEPER_BOOTSTRAP_PASSWORD");
        let config = config(&[
            ("KEEPER_BOOTSTRAP_USER", "admin"),
            ("KEEPER_BOOTSTRAP_PASSWORD", "correct horse"),
        ])
        .unwrap();
        assert_eq!(config.auth.bootstrap_user.unwrap().username, "admin");
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let config = config(&[
            (
                "KEEPER_DATABASE_URL",
                "postgres://keeper:hunter2-db@db.internal/keeper",
            ),
            (
                "KEEPER_SECRET_KEY",
                "s3cr3t-signing-key-that-is-long-enough",
            ),
            ("KEEPER_BOOTSTRAP_USER", "admin"),
            ("KEEPER_BOOTSTRAP_PASSWORD", "hunter2-admin"),
        ])
        .unwrap();
        let printed = format!("{config:?}");
        for secret in ["hunter2-db", "s3cr3t-signing-key", "hunter2-admin"] {
            assert!(!printed.contains(secret), "{secret} leaked into {printed}");
        }
        assert!(printed.contains("postgres://keeper:***@db.internal/keeper"));
    }

    #[test]
    fn storage_defaults_beside_the_sqlite_file() {
        let default = config(&[]).unwrap();
        assert!(matches!(
            default.storage.backend,
            StorageBackend::Local { ref dir } if dir == std::path::Path::new("keeper-data")
        ));
        assert!(matches!(default.cdn, CdnConfig::None));
        let config =
            config(&[("KEEPER_DATABASE_URL", "sqlite:///var/lib/keeper/k.sqlite3")]).unwrap();
        assert!(matches!(
            config.storage.backend,
            StorageBackend::Local { ref dir } if dir == std::path::Path::new("/var/lib/keeper/keeper-data")
        ));
    }

    #[test]
    fn storage_and_cdn_variables() {
        let s3 = config(&[
            ("KEEPER_STORAGE_BACKEND", "s3"),
            ("KEEPER_S3_BUCKET", "docs"),
            ("KEEPER_S3_ENDPOINT_URL", "http://127.0.0.1:3900/"),
            ("KEEPER_S3_PATH_STYLE", "true"),
            ("KEEPER_S3_ACCESS_KEY_ID", "GKexample"),
            ("KEEPER_S3_SECRET_ACCESS_KEY", "s3-secret-value"),
            ("KEEPER_CDN", "fastly"),
            ("KEEPER_FASTLY_SERVICE_ID", "svc"),
            ("KEEPER_FASTLY_API_KEY", "fastly-secret-value"),
        ])
        .unwrap();
        let StorageBackend::S3(settings) = &s3.storage.backend else {
            panic!("not S3: {:?}", s3.storage.backend);
        };
        assert_eq!(
            settings.endpoint_url.as_deref(),
            Some("http://127.0.0.1:3900")
        );
        assert!(settings.path_style);
        let printed = format!("{s3:?}");
        for secret in ["s3-secret-value", "fastly-secret-value"] {
            assert!(!printed.contains(secret), "{secret} leaked into {printed}");
        }
        for (vars, variable) in [
            (vec![("KEEPER_STORAGE_BACKEND", "s3")], "KEEPER_S3_BUCKET"),
            (
                vec![("KEEPER_STORAGE_BACKEND", "ftp")],
                "KEEPER_STORAGE_BACKEND",
            ),
            (vec![("KEEPER_CDN", "fastly")], "KEEPER_FASTLY_SERVICE_ID"),
            (vec![("KEEPER_CDN", "varnish")], "KEEPER_VARNISH_URLS"),
            (vec![("KEEPER_CDN", "akamai")], "KEEPER_CDN"),
        ] {
            assert_eq!(config(&vars).unwrap_err().variable, variable);
        }
        let varnish = config(&[
            ("KEEPER_CDN", "varnish"),
            (
                "KEEPER_VARNISH_URLS",
                "http://127.0.0.1:6081, http://127.0.0.1:6082",
            ),
        ])
        .unwrap();
        assert!(matches!(varnish.cdn, CdnConfig::Varnish { ref urls } if urls.len() == 2));
    }

    #[test]
    fn sqlite_url_needs_a_path() {
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(matches!(
            DatabaseUrl::parse("sqlite:///var/lib/keeper.db"),
            Ok(DatabaseUrl::Sqlite(p)) if p == "/var/lib/keeper.db"
        ));
    }
}
