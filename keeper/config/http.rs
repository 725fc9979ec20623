//! `KEEPER_BIND`, `KEEPER_PUBLIC_URL`, `KEEPER_MAX_BODY_BYTES`, `KEEPER_HTTP_WORKERS`,
//! `KEEPER_SHUTDOWN_TIMEOUT_SECS`.

use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

use super::vars::{parse_http_url, Vars};
use super::ConfigError;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

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
    /// How long a client may take to send a request's head (line and headers); then 408.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive once a handler reads it; then 408.
    pub body_timeout: Duration,
    /// Most connections the process holds open at once; more wait in the listen queue.
    pub max_connections: usize,
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

pub(super) fn read<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
) -> Result<HttpConfig, ConfigError> {
    let default_bind = SocketAddr::from(([127, 0, 0, 1], 8080));
    Ok(HttpConfig {
        bind: vars.parse("KEEPER_BIND", default_bind, |raw| {
            raw.parse()
                .map_err(|err| format!("expected host:port such as 127.0.0.1:8080 ({err})"))
        })?,
        public_url: vars.parse("KEEPER_PUBLIC_URL", None, |raw| {
            parse_http_url(raw).map(Some)
        })?,
        max_body_bytes: vars.number("KEEPER_MAX_BODY_BYTES", 1024 * 1024)?,
        workers: vars.parse("KEEPER_HTTP_WORKERS", None, |raw| {
            match raw.parse::<usize>() {
                Ok(0) | Err(_) => Err(format!("expected a positive number, got {raw:?}")),
                Ok(count) => Ok(Some(count)),
            }
        })?,
        shutdown_timeout: Duration::from_secs(vars.number("KEEPER_SHUTDOWN_TIMEOUT_SECS", 30)?),
        header_timeout: Duration::from_secs(
            vars.number("KEEPER_HEADER_TIMEOUT_SECS", 5u64)?.max(1),
        ),
        body_timeout: Duration::from_secs(vars.number("KEEPER_BODY_TIMEOUT_SECS", 30u64)?.max(1)),
        max_connections: vars.number("KEEPER_MAX_CONNECTIONS", 1024usize)?.max(1),
    })
}
