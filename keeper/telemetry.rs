//! Log set-up: `tracing` to stderr, as text or JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Installs the global subscriber. An invalid `KEEPER_LOG` falls back to `info` with a warning.
pub fn init(config: &LogConfig) {
    let (filter, invalid) = match EnvFilter::try_new(&config.filter) {
        Ok(filter) => (filter, None),
        Err(err) => (EnvFilter::new("info"), Some(err)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let installed = if config.json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if installed.is_err() {
        return; // A subscriber is already installed (tests): keep it.
    }
    if let Some(err) = invalid {
        tracing::warn!(KEEPER_LOG = %config.filter, error = %err, "invalid KEEPER_LOG; logging at info");
    }
}
