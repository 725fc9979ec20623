//! Typed settings, read from environment variables in one place, one module per area. This
//! module imports nothing else of keeper: the things configured are built from it elsewhere
//! (`startup`, `backends`).
//!
//! Every variable is documented in `README.md` and `.env.example`. A value that does not parse is
//! reported with the variable's name. Secrets are held in [`secrecy::SecretString`] so that `Debug` and the
//! logs cannot print them.

mod auth;
mod cdn;
mod database;
mod http;
mod log;
mod organizations;
mod retention;
mod storage;
mod vars;
mod worker;

pub use auth::{AuthConfig, BootstrapUser, LoginConfig, MIN_SECRET_KEY_LEN};
pub use cdn::{parse_varnish_urls, CdnConfig, FastlyApi, FastlyConfig, DEFAULT_FASTLY_API_URL};
pub use database::{DatabaseConfig, DatabaseUrl, DEFAULT_DATABASE_URL};
pub use http::{HttpConfig, DEFAULT_BIND};
pub use log::LogConfig;
pub use organizations::OrganizationsConfig;
pub use retention::RetentionConfig;
pub use storage::{
    parse_endpoint_url, S3Config, S3Parts, S3Problem, StorageBackend, StorageConfig,
    DEFAULT_S3_ATTEMPT_TIMEOUT, DEFAULT_S3_REGION, DEFAULT_UPLOAD_FORM_EXPIRY_SECS,
};
pub use vars::parse_http_url;
pub use worker::WorkerConfig;

use vars::Vars;

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
    pub organizations: OrganizationsConfig,
}

/// A variable that is set but does not parse.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the process environment in production, a map in tests).
    /// Every variable is read by exactly one area's parser.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars { lookup };
        let database = database::read(&vars)?;
        let s3_attempt_timeout = storage::s3_attempt_timeout(&vars)?;
        let fastly = cdn::fastly_api(&vars)?;
        Ok(Self {
            http: http::read(&vars)?,
            auth: auth::read(&vars)?,
            log: log::read(&vars)?,
            worker: worker::read(&vars)?,
            storage: storage::read(&vars, &database.url, s3_attempt_timeout)?,
            cdn: cdn::read(&vars, &fastly)?,
            organizations: organizations::read(&vars, s3_attempt_timeout, fastly),
            database,
        })
    }
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
            ("KEEPER_LOGIN_WINDOW_SECS", "soon"),
            ("KEEPER_LOGIN_FAILURES_PER_USER", "-1"),
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
