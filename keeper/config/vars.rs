//! Reading variables: unset and blank are alike; a value that does not parse is reported with
//! the variable's name. The value parsers shared by several settings live here too.

use url::Url;

use super::ConfigError;

/// Reads variables through a lookup function, so tests can pass a map instead of the process env.
pub(super) struct Vars<F> {
    pub(super) lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// The value, with unset and empty treated alike.
    pub(super) fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    /// The value parsed by `parse`, or `default` when unset.
    pub(super) fn parse<T>(
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

    /// A value that must be set, because `because` (e.g. "KEEPER_CDN is fastly").
    pub(super) fn required(
        &self,
        name: &'static str,
        because: &str,
    ) -> Result<String, ConfigError> {
        self.get(name)
            .map(|raw| raw.trim().to_owned())
            .ok_or_else(|| ConfigError {
                variable: name,
                message: format!("must be set when {because}"),
            })
    }

    pub(super) fn number<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.parse(name, default, |raw| {
            raw.parse::<T>()
                .map_err(|err| format!("expected a number, got {raw:?} ({err})"))
        })
    }

    pub(super) fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.parse(name, default, parse_flag)
    }

    /// One of `choices` (the first is the default).
    pub(super) fn choice(
        &self,
        name: &'static str,
        choices: &[&'static str],
    ) -> Result<&'static str, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(choices[0]);
        };
        let raw = raw.trim();
        choices
            .iter()
            .copied()
            .find(|choice| *choice == raw)
            .ok_or_else(|| ConfigError {
                variable: name,
                message: format!("expected {}, got {raw:?}", one_of(choices)),
            })
    }
}

/// `a, b or c`.
pub(super) fn one_of(choices: &[&str]) -> String {
    match choices {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

pub(super) fn parse_flag(raw: &str) -> Result<bool, String> {
    match raw.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {raw:?}")),
    }
}

/// An `http(s)` URL with a host and no query or fragment.
pub fn parse_http_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|err| format!("not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("expected an http(s) URL with a host, got {raw:?}"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not carry a query or fragment".into());
    }
    Ok(url)
}
