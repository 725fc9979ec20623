//! `KEEPER_CDN`, `KEEPER_FASTLY_*`, `KEEPER_VARNISH_URLS`; and the parsers that organizations'
//! CDN settings are read with too.

use secrecy::SecretString;
use url::Url;

use super::vars::{parse_http_url, Vars};
use super::ConfigError;

/// Fastly's API, unless `KEEPER_FASTLY_API_URL` points elsewhere (a stand-in in tests).
pub const DEFAULT_FASTLY_API_URL: &str = "https://api.fastly.com";

/// Which CDN to purge after a change.
#[derive(Debug, Clone)]
pub enum CdnConfig {
    None,
    Fastly(FastlyConfig),
    Varnish { urls: Vec<Url> },
}

/// A Fastly service and the key that may purge it.
#[derive(Clone)]
pub struct FastlyConfig {
    pub service_id: String,
    pub api_key: SecretString,
    /// The API's base URL ([`DEFAULT_FASTLY_API_URL`]).
    pub api_url: Url,
    /// Mark content stale instead of evicting it (`Fastly-Soft-Purge: 1`).
    pub soft_purge: bool,
}

impl std::fmt::Debug for FastlyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastlyConfig")
            .field("service_id", &self.service_id)
            .field("api_key", &"***")
            .field("api_url", &self.api_url.as_str())
            .field("soft_purge", &self.soft_purge)
            .finish()
    }
}

/// What every Fastly service is reached with, whoever's it is.
#[derive(Debug, Clone)]
pub struct FastlyApi {
    /// `KEEPER_FASTLY_API_URL`.
    pub url: Url,
    /// `KEEPER_FASTLY_SOFT_PURGE`.
    pub soft_purge: bool,
}

impl FastlyApi {
    /// Fastly's own API, hard purges.
    pub fn fastly() -> Self {
        Self {
            url: Url::parse(DEFAULT_FASTLY_API_URL).expect("a constant URL parses"),
            soft_purge: false,
        }
    }

    /// A service of this API.
    pub fn service(&self, service_id: &str, api_key: SecretString) -> FastlyConfig {
        FastlyConfig {
            service_id: service_id.trim().to_owned(),
            api_key,
            api_url: self.url.clone(),
            soft_purge: self.soft_purge,
        }
    }
}

/// Comma-separated Varnish base URLs (blanks ignored); at least one.
pub fn parse_varnish_urls(raw: &str) -> Result<Vec<Url>, String> {
    let urls = raw
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| parse_http_url(url).map_err(|err| format!("Varnish URL {url:?}: {err}")))
        .collect::<Result<Vec<_>, _>>()?;
    if urls.is_empty() {
        return Err("no Varnish URL is listed".into());
    }
    Ok(urls)
}

pub(super) fn fastly_api<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
) -> Result<FastlyApi, ConfigError> {
    let default = FastlyApi::fastly();
    Ok(FastlyApi {
        url: vars.parse("KEEPER_FASTLY_API_URL", default.url, parse_http_url)?,
        soft_purge: vars.flag("KEEPER_FASTLY_SOFT_PURGE", default.soft_purge)?,
    })
}

pub(super) fn read<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
    api: &FastlyApi,
) -> Result<CdnConfig, ConfigError> {
    Ok(
        match vars.choice("KEEPER_CDN", &["none", "fastly", "varnish"])? {
            "fastly" => {
                let service_id =
                    vars.required("KEEPER_FASTLY_SERVICE_ID", "KEEPER_CDN is fastly")?;
                let api_key = vars.required("KEEPER_FASTLY_API_KEY", "KEEPER_CDN is fastly")?;
                CdnConfig::Fastly(api.service(&service_id, SecretString::from(api_key)))
            }
            "varnish" => {
                vars.required("KEEPER_VARNISH_URLS", "KEEPER_CDN is varnish")?;
                CdnConfig::Varnish {
                    urls: vars.parse("KEEPER_VARNISH_URLS", Vec::new(), parse_varnish_urls)?,
                }
            }
            _ => CdnConfig::None,
        },
    )
}
