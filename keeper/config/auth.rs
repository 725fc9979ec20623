//! `KEEPER_SECRET_KEY`, `KEEPER_TOKEN_LIFETIME_SECS`, `KEEPER_BOOTSTRAP_USER` and
//! `KEEPER_BOOTSTRAP_PASSWORD`.

use std::time::Duration;

use secrecy::SecretString;

use super::vars::Vars;
use super::ConfigError;

pub const MIN_SECRET_KEY_LEN: usize = 32;

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Signs API tokens. `None`: generated on first start and kept in the database.
    pub secret_key: Option<SecretString>,
    /// How long a token from `GET /token` stays valid.
    pub token_lifetime: Duration,
    pub bootstrap_user: Option<BootstrapUser>,
    pub login: LoginConfig,
}

/// What a password login may cost (`KEEPER_LOGIN_*`, `KEEPER_CLIENT_IP_HEADER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginConfig {
    /// Password hashes computed at once (each takes about 19 MiB and a core for a moment).
    pub concurrent_hashes: usize,
    /// Failed logins for one user name within `window` before it is refused with 429.
    pub failures_per_user: u32,
    /// Failed logins from one client address within `window` before it is refused with 429.
    pub failures_per_client: u32,
    pub window: Duration,
    /// The header a trusted reverse proxy puts the client's address in (its last value is
    /// taken); `None`: the address of the connection.
    pub client_ip_header: Option<String>,
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            concurrent_hashes: std::thread::available_parallelism().map_or(2, usize::from),
            failures_per_user: 10,
            failures_per_client: 100,
            window: Duration::from_secs(300),
            client_ip_header: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BootstrapUser {
    pub username: String,
    pub password: SecretString,
}

pub(super) fn read<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
) -> Result<AuthConfig, ConfigError> {
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
    let defaults = LoginConfig::default();
    let login = LoginConfig {
        concurrent_hashes: vars
            .number("KEEPER_LOGIN_CONCURRENCY", defaults.concurrent_hashes)?
            .max(1),
        failures_per_user: vars
            .number("KEEPER_LOGIN_FAILURES_PER_USER", defaults.failures_per_user)?
            .max(1),
        failures_per_client: vars
            .number(
                "KEEPER_LOGIN_FAILURES_PER_CLIENT",
                defaults.failures_per_client,
            )?
            .max(1),
        window: Duration::from_secs(
            vars.number("KEEPER_LOGIN_WINDOW_SECS", defaults.window.as_secs())?
                .max(1),
        ),
        client_ip_header: vars
            .get("KEEPER_CLIENT_IP_HEADER")
            .map(|name| name.trim().to_ascii_lowercase()),
    };
    Ok(AuthConfig {
        secret_key,
        token_lifetime: Duration::from_secs(vars.number("KEEPER_TOKEN_LIFETIME_SECS", 3600)?),
        bootstrap_user,
        login,
    })
}
