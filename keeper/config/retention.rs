//! `KEEPER_RETENTION*`: the deployment's retention policy (each product may set its own over
//! it) and how often it is applied.

use std::time::Duration;

use super::vars::Vars;
use super::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Off by default: nothing is deleted unless an operator or a product turns it on.
    pub enabled: bool,
    pub keep_newest: u32,
    pub keep_days: u32,
    pub rollback_days: u32,
    pub edition_days: u32,
    /// How often each product's policy is applied (one operation per product per period).
    pub period: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            keep_newest: 20,
            keep_days: 30,
            rollback_days: 30,
            edition_days: 90,
            period: Duration::from_secs(86_400),
        }
    }
}

pub(super) fn read<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
) -> Result<RetentionConfig, ConfigError> {
    let defaults = RetentionConfig::default();
    let days = |name, default: u32| -> Result<u32, ConfigError> {
        let days = vars.number(name, default)?;
        if days > 100_000 {
            return Err(ConfigError {
                variable: name,
                message: "at most 100000 days".into(),
            });
        }
        Ok(days)
    };
    Ok(RetentionConfig {
        enabled: vars.flag("KEEPER_RETENTION", defaults.enabled)?,
        keep_newest: vars.number("KEEPER_RETENTION_KEEP_NEWEST", defaults.keep_newest)?,
        keep_days: days("KEEPER_RETENTION_KEEP_DAYS", defaults.keep_days)?,
        rollback_days: days("KEEPER_RETENTION_ROLLBACK_DAYS", defaults.rollback_days)?,
        edition_days: days("KEEPER_RETENTION_EDITION_DAYS", defaults.edition_days)?,
        period: Duration::from_secs(
            vars.number("KEEPER_RETENTION_PERIOD_SECS", 86_400u64)?
                .max(60),
        ),
    })
}
