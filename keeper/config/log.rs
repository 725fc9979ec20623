//! `KEEPER_LOG` and `KEEPER_LOG_FORMAT`.

use super::vars::Vars;
use super::ConfigError;

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `tracing_subscriber::EnvFilter` directives, e.g. `info` or `keeper=debug,actix_web=info`.
    pub filter: String,
    pub json: bool,
}

pub(super) fn read<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
) -> Result<LogConfig, ConfigError> {
    Ok(LogConfig {
        filter: vars.get("KEEPER_LOG").unwrap_or_else(|| "info".into()),
        json: vars.choice("KEEPER_LOG_FORMAT", &["text", "json"])? == "json",
    })
}
