//! `KEEPER_DATABASE_*`, `KEEPER_SQLITE_BUSY_TIMEOUT_MS`, `KEEPER_AUTO_MIGRATE`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::vars::Vars;
use super::ConfigError;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://keeper.sqlite3";

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
    /// PostgreSQL only: the API's hot reads go over one pipelined connection per HTTP worker
    /// thread instead of the pool, when the connection allows it (`db::pipelined`).
    pub pipelined_reads: bool,
}

pub(super) fn read<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
) -> Result<DatabaseConfig, ConfigError> {
    let url = vars.parse(
        "KEEPER_DATABASE_URL",
        DatabaseUrl::Sqlite("keeper.sqlite3".into()),
        DatabaseUrl::parse,
    )?;
    // PostgreSQL: two connections per core, at least 4. More statements in flight than the
    // server's cores can run only wait inside it, and a request waits behind them: on 2 cores
    // sharing keeper and PostgreSQL, 10 connections gave a p99 of 56-160 ms at c=32 where 4
    // gave 5-11 ms at the same throughput (bench/api).
    let default_pool_size = if url.is_sqlite() {
        4
    } else {
        std::thread::available_parallelism().map_or(4, |cores| (2 * cores.get() as u32).max(4))
    };
    let database = DatabaseConfig {
        url,
        pool_size: vars.number("KEEPER_DATABASE_POOL_SIZE", default_pool_size)?,
        checkout_timeout: Duration::from_secs(vars.number("KEEPER_DATABASE_TIMEOUT_SECS", 5)?),
        sqlite_busy_timeout: Duration::from_millis(
            vars.number("KEEPER_SQLITE_BUSY_TIMEOUT_MS", 5000)?,
        ),
        auto_migrate: vars.flag("KEEPER_AUTO_MIGRATE", false)?,
        pipelined_reads: vars.flag("KEEPER_DATABASE_PIPELINED_READS", true)?,
    };
    if database.pool_size == 0 {
        return Err(ConfigError {
            variable: "KEEPER_DATABASE_POOL_SIZE",
            message: "must be at least 1".into(),
        });
    }
    Ok(database)
}
