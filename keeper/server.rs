//! Start-up shared by `keeper serve`, `keeper worker` and the tests: connect, guard the schema,
//! settle the signing key and the bootstrap user, build the pool; then serve HTTP.

use std::net::{SocketAddr, TcpListener};

use actix_web::dev::Server;
use actix_web::HttpServer;
use anyhow::Context;
use secrecy::SecretString;

use crate::app::{app, AppState};
use crate::auth::password::hash_password;
use crate::auth::session::SessionKeys;
use crate::config::{Config, HttpConfig};
use crate::db::migrations::{self, GuardOutcome};
use crate::db::settings::{resolve_secret_key, SecretKeySource};
use crate::db::users::{ensure_bootstrap_user, BootstrapOutcome};
use crate::db::{build_pool, DbConnection, DbPool};
use crate::domain::Username;
use crate::shutdown::ShutdownSignal;

/// What start-up produced.
pub struct Prepared {
    pub pool: DbPool,
    pub secret_key: SecretString,
}

impl Prepared {
    /// The HTTP application's state for these settings, serving on `bound`.
    pub fn app_state(&self, config: &Config, bound: SocketAddr) -> AppState {
        let lifetime = i64::try_from(config.auth.token_lifetime.as_secs()).unwrap_or(i64::MAX);
        AppState::new(
            self.pool.clone(),
            &config.http.public_url_for(bound),
            SessionKeys::new(&self.secret_key, lifetime),
        )
    }
}

/// Connects, runs the migration guard, settles the signing key and the bootstrap user.
pub fn prepare(config: &Config) -> anyhow::Result<Prepared> {
    let database = &config.database;
    let mut conn = connect(config)?;
    match migrations::guard(&mut conn, database.auto_migrate)? {
        GuardOutcome::UpToDate => tracing::info!("database schema is up to date"),
        GuardOutcome::Created { applied } => {
            tracing::info!(migrations = ?applied, "empty database: created the schema")
        }
        GuardOutcome::Upgraded { applied } => {
            tracing::info!(migrations = ?applied, "upgraded the database schema")
        }
    }
    let (secret_key, source) = resolve_secret_key(config.auth.secret_key.as_ref(), &mut conn)
        .context("loading the token signing key")?;
    match source {
        SecretKeySource::Environment => tracing::info!("token signing key: from KEEPER_SECRET_KEY"),
        SecretKeySource::Database => tracing::info!("token signing key: kept in the database"),
    }
    if let Some(bootstrap) = &config.auth.bootstrap_user {
        let username = Username::parse(&bootstrap.username)
            .map_err(|message| anyhow::anyhow!("KEEPER_BOOTSTRAP_USER: {message}"))?;
        let hash = hash_password(&bootstrap.password).context("KEEPER_BOOTSTRAP_PASSWORD")?;
        match ensure_bootstrap_user(&mut conn, &username, &hash)
            .context("creating the bootstrap user")?
        {
            BootstrapOutcome::Created => {
                tracing::info!(user = %username, "created the bootstrap administrator")
            }
            BootstrapOutcome::AlreadyExists => {
                tracing::info!(user = %username, "bootstrap user exists; left unchanged")
            }
        }
    }
    Ok(Prepared {
        pool: build_pool(database),
        secret_key,
    })
}

/// One direct connection, reporting the backend's own error.
pub fn connect(config: &Config) -> anyhow::Result<DbConnection> {
    let database = &config.database;
    DbConnection::establish(&database.url, database.sqlite_busy_timeout)
        .with_context(|| format!("connecting to {}", database.url.redacted()))
}

/// Binds `http.bind`; the address actually bound decides the default public URL.
pub fn bind(http: &HttpConfig) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener =
        TcpListener::bind(http.bind).with_context(|| format!("binding {}", http.bind))?;
    let address = listener.local_addr().context("reading the bound address")?;
    Ok((listener, address))
}

/// Serves `state` on `listener`. The server does not handle signals itself: `serve` stops it
/// gracefully (stop accepting, let in-flight requests finish for up to `shutdown_timeout`).
pub fn start_http(
    state: AppState,
    http: &HttpConfig,
    listener: TcpListener,
) -> anyhow::Result<Server> {
    let max_body_bytes = http.max_body_bytes;
    let mut server = HttpServer::new(move || app(state.clone(), max_body_bytes))
        .disable_signals()
        .shutdown_timeout(http.shutdown_timeout.as_secs());
    if let Some(workers) = http.workers {
        server = server.workers(workers);
    }
    Ok(server.listen(listener).context("listening")?.run())
}

/// `keeper serve`: start-up, then HTTP (and, once it exists, the operations worker) until a signal.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let prepared = prepare(&config)?;
    let mut shutdown = ShutdownSignal::install()?;
    let (listener, address) = bind(&config.http)?;
    let state = prepared.app_state(&config, address);
    let public_url = config.http.public_url_for(address);
    let server = start_http(state, &config.http, listener)?;
    let handle = server.handle();
    tracing::info!(%address, %public_url, "listening on http://{address}");
    if config.worker.run_in_serve {
        tracing::info!("operations worker: none to run yet in this release");
    }
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => result.context("running the HTTP server")?,
        () = shutdown.wait() => {
            // The server future answers the stop command, so it must be polled meanwhile.
            let (_, result) = tokio::join!(handle.stop(true), server);
            result.context("stopping the HTTP server")?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}
