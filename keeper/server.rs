//! Start-up shared by `keeper serve`, `keeper worker` and the tests: connect, guard the schema,
//! settle the signing key and the bootstrap user, build the pool; then serve HTTP.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::HttpServer;
use anyhow::Context;
use secrecy::SecretString;

use crate::api::sites::SiteServer;
use crate::api::uploads::{FormTarget, UploadEndpoint, UploadForms};
use crate::api::StorageServices;
use crate::app::{app_with, AppState};
use crate::auth::password::hash_password;
use crate::auth::session::SessionKeys;
use crate::config::{Config, HttpConfig, StorageBackend};
use crate::db::migrations::{self, GuardOutcome};
use crate::db::settings::{resolve_secret_key, SecretKeySource};
use crate::db::users::{ensure_bootstrap_user, BootstrapOutcome};
use crate::db::{build_pool, DbConnection, DbPool};
use crate::domain::Username;
use crate::shutdown::ShutdownSignal;
use crate::storage::local::LocalStore;
use crate::storage::presign::SigningCredentials;
use crate::storage::s3::S3Store;
use crate::storage::ObjectStore;

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
    start_http_with(state, http, listener, None)
}

/// [`start_http`], with the object-store routes (site server, upload endpoint) when given.
pub fn start_http_with(
    state: AppState,
    http: &HttpConfig,
    listener: TcpListener,
    storage: Option<StorageServices>,
) -> anyhow::Result<Server> {
    let max_body_bytes = http.max_body_bytes;
    let mut server = HttpServer::new(move || {
        let storage = storage.clone();
        app_with(state.clone(), max_body_bytes, move |config| {
            if let Some(storage) = &storage {
                storage.configure(config);
            }
        })
    })
    .disable_signals()
    .shutdown_timeout(http.shutdown_timeout.as_secs());
    if let Some(workers) = http.workers {
        server = server.workers(workers);
    }
    Ok(server.listen(listener).context("listening")?.run())
}

/// `keeper serve`: start-up, then HTTP and (unless disabled) the operations worker until a signal.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let prepared = prepare(&config)?;
    let storage = storage_services(&config, &prepared.secret_key).await?;
    let mut shutdown = ShutdownSignal::install()?;
    let (listener, address) = bind(&config.http)?;
    let state = prepared.app_state(&config, address);
    let public_url = config.http.public_url_for(address);
    let server = start_http_with(state, &config.http, listener, Some(storage))?;
    let handle = server.handle();
    tracing::info!(%address, %public_url, "listening on http://{address}");
    let (stop_worker, worker_stopped) = tokio::sync::watch::channel(false);
    let worker = if config.worker.run_in_serve {
        let worker = crate::worker::build_worker(&config, prepared.pool.clone()).await?;
        Some(tokio::spawn(
            async move { worker.run(worker_stopped).await },
        ))
    } else {
        tracing::info!("operations worker disabled (KEEPER_SERVE_RUNS_WORKER=false)");
        None
    };
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => result.context("running the HTTP server")?,
        () = shutdown.wait() => {
            let _ = stop_worker.send(true);
            // The server future answers the stop command, so it must be polled meanwhile.
            let (_, result) = tokio::join!(handle.stop(true), server);
            result.context("stopping the HTTP server")?;
        }
    }
    let _ = stop_worker.send(true);
    if let Some(worker) = worker {
        worker.await.context("stopping the operations worker")?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Opens the configured object store.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(match &config.storage.backend {
        StorageBackend::Local { dir } => {
            let store = LocalStore::open(dir)
                .with_context(|| format!("opening the storage directory {}", dir.display()))?;
            tracing::info!(dir = %dir.display(), "object store: local directory");
            Arc::new(store)
        }
        StorageBackend::S3(settings) => {
            tracing::info!(bucket = %settings.bucket, endpoint = ?settings.endpoint_url, "object store: S3");
            Arc::new(S3Store::connect(settings.clone()).await)
        }
    })
}

/// The site server over the configured store, the signer of upload forms, and, for the local
/// store, keeper's own upload endpoint with forms signed by `secret_key`.
pub async fn storage_services(
    config: &Config,
    secret_key: &SecretString,
) -> anyhow::Result<StorageServices> {
    let (store, target): (Arc<dyn ObjectStore>, FormTarget) = match &config.storage.backend {
        StorageBackend::S3(settings) => {
            tracing::info!(bucket = %settings.bucket, endpoint = ?settings.endpoint_url, "object store: S3");
            let store = S3Store::connect(settings.clone()).await;
            (Arc::new(store.clone()), FormTarget::S3(store))
        }
        StorageBackend::Local { .. } => (
            open_store(config).await?,
            FormTarget::Keeper(SigningCredentials::keeper(secret_key.clone())),
        ),
    };
    let uploads =
        matches!(config.storage.backend, StorageBackend::Local { .. }).then(|| UploadEndpoint {
            store: store.clone(),
            credentials: SigningCredentials::keeper(secret_key.clone()),
            max_bytes: config.storage.upload_max_bytes,
        });
    Ok(StorageServices {
        sites: SiteServer {
            store,
            root_domain: config.storage.sites_root_domain.clone(),
        },
        uploads,
        forms: Some(UploadForms {
            target,
            organizations: Arc::new(crate::backends::OrgBackends::new(
                config.organizations.clone(),
            )),
            expiry: config.storage.upload_form_expiry,
            max_bytes: config.storage.upload_max_bytes,
        }),
    })
}
