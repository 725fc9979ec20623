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
    Ok(AuthConfig {
        secret_key,
        token_lifetime: Duration::from_secs(vars.number("KEEPER_TOKEN_LIFETIME_SECS", 3600)?),
        bootstrap_user,
    })
}
