//! The composition root: everything a process is assembled from is built here, once, from the
//! configuration: the database connection and pool (after the migration guard), the signing
//! key and bootstrap user, the object store, the purger, the organizations' clients, the
//! operations worker and the HTTP server. `server` (`keeper serve`), `worker` (`keeper worker`),
//! the CLI and the tests call it; nothing below it knows how the parts fit together.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::HttpServer;
use anyhow::Context;
use secrecy::SecretString;

use crate::api::app::{app_with, AppState};
use crate::api::sites::{DefaultEditions, SiteServer};
use crate::api::uploads::{FormTarget, UploadEndpoint, UploadForms};
use crate::api::StorageServices;
use crate::auth::password::hash_password;
use crate::auth::session::SessionKeys;
use crate::backends::{OrgBackends, OrgDefaults};
use crate::config::{Config, HttpConfig, StorageBackend};
use crate::db::migrations::{self, GuardOutcome};
use crate::db::pipelined;
use crate::db::products::count_products;
use crate::db::settings::{
    claim_deployment_id, deployment_id, resolve_secret_key, SecretKeySource,
};
use crate::db::users::{ensure_bootstrap_user, BootstrapOutcome};
use crate::db::{build_pool, DbConnection, DbPool};
use crate::domain::{Username, DEPLOYMENT_KEY};
use crate::ops::worker::Worker;
use crate::ops::Services;
use crate::recover::{record_deployment, store_deployment};
use crate::storage::local::LocalStore;
use crate::storage::presign::SigningCredentials;
use crate::storage::s3::{S3Settings, S3Store};
use crate::storage::ObjectStore;

/// A local store's temporary file untouched for this long was left by a killed write: no
/// write keeps one open for an hour (the largest upload is `KEEPER_UPLOAD_MAX_BYTES`).
const ABANDONED_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// What start-up produced.
pub struct Prepared {
    pub pool: DbPool,
    pub secret_key: SecretString,
}

impl Prepared {
    /// The HTTP application's state for these settings, serving on `bound` (with PostgreSQL's
    /// pipelined reads when the database allows them: `db::pipelined::plan`).
    pub fn app_state(&self, config: &Config, bound: SocketAddr) -> AppState {
        let lifetime = i64::try_from(config.auth.token_lifetime.as_secs()).unwrap_or(i64::MAX);
        AppState::new(
            self.pool.clone(),
            &config.http.public_url_for(bound),
            SessionKeys::new(&self.secret_key, lifetime),
        )
        .with_login(&config.auth.login)
        .with_pipelined_reads(pipelined::plan(&self.pool, &config.database))
        .with_body_timeout(config.http.body_timeout)
        .with_retention(&config.worker.retention)
        // `cli::main` refused a malformed KEEPER_ENCRYPTION_KEYS before any command ran.
        .with_encryption_keys(
            crate::crypto::EncryptionKeys::from_config(&config.organizations)
                .ok()
                .flatten(),
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

/// Serves `state` on `listener`, with the object-store routes (site server, upload endpoint)
/// when given. The server does not handle signals itself: `serve` stops it gracefully (stop
/// accepting, let in-flight requests finish for up to `shutdown_timeout`).
pub fn start_http_with(
    state: AppState,
    http: &HttpConfig,
    listener: TcpListener,
    storage: Option<StorageServices>,
) -> anyhow::Result<Server> {
    let max_body_bytes = http.max_body_bytes;
    let mut state = state;
    state.sites = storage.as_ref().map(|storage| storage.sites.clone());
    let mut server = HttpServer::new(move || {
        let storage = storage.clone();
        app_with(state.clone(), max_body_bytes, move |config| {
            if let Some(storage) = &storage {
                storage.configure(config);
            }
        })
    })
    .disable_signals()
    .shutdown_timeout(http.shutdown_timeout.as_secs())
    .client_request_timeout(http.header_timeout);
    let workers = http
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    // actix counts connections per worker thread.
    server = server
        .workers(workers)
        .max_connections(http.max_connections.div_ceil(workers).max(1));
    Ok(server.listen(listener).context("listening")?.run())
}

/// `keeper worker`'s listener for `/metrics` and its probes, when `KEEPER_WORKER_METRICS_BIND`
/// is set; stopped with the worker.
pub fn start_worker_http(config: &Config, pool: &DbPool) -> anyhow::Result<Option<Server>> {
    let Some(bind) = config.worker.metrics_bind else {
        return Ok(None);
    };
    let pool = pool.clone();
    let server = HttpServer::new(move || {
        let pool = pool.clone();
        actix_web::App::new()
            .configure(move |routes| crate::api::scrape::worker_routes(routes, pool))
    })
    .disable_signals()
    .workers(1)
    .bind(bind)
    .with_context(|| format!("binding KEEPER_WORKER_METRICS_BIND={bind}"))?
    .run();
    tracing::info!(%bind, "worker metrics and probes on http://{bind}/metrics");
    Ok(Some(server))
}

/// Opens the configured object store.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(match &config.storage.backend {
        StorageBackend::Local { dir } => {
            let store = LocalStore::open(dir)
                .with_context(|| format!("opening the storage directory {}", dir.display()))?;
            let removed = store
                .remove_abandoned_temp_files(ABANDONED_TEMP_AGE)
                .with_context(|| format!("cleaning {}", dir.join("tmp").display()))?;
            tracing::info!(dir = %dir.display(), abandoned_temp_files_removed = removed, "object store: local directory");
            Arc::new(store)
        }
        StorageBackend::S3(settings) => {
            tracing::info!(bucket = %settings.bucket, endpoint = ?settings.endpoint_url, "object store: S3");
            Arc::new(S3Store::connect(S3Settings::from_config(settings)).await)
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
            let store = S3Store::connect(S3Settings::from_config(settings)).await;
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
    let organizations = Arc::new(org_backends(config)?);
    Ok(StorageServices {
        sites: SiteServer::new(
            store.clone(),
            config.storage.sites_root_domain.clone(),
            organizations.clone(),
        ),
        uploads,
        forms: Some(UploadForms {
            target,
            store: store.clone(),
            organizations,
            expiry: config.storage.upload_form_expiry,
            max_bytes: config.storage.upload_max_bytes,
        }),
    })
}

/// The wiped-database guard (DESIGN.md section 6): a database with no product beside a store
/// that already holds objects is what a wiped or replaced database looks like. Serving it
/// would hand out the old slugs again (build `1` of a re-created product) and overwrite the
/// objects published under them, so start-up stops unless `allow_empty` says the store's
/// content may be overwritten.
pub async fn refuse_wiped_database(
    pool: &DbPool,
    store: &dyn ObjectStore,
    allow_empty: bool,
) -> anyhow::Result<()> {
    let pool = pool.clone();
    let products = tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
        let mut conn = pool.get().context("connecting to the database")?;
        count_products(&mut conn).context("counting the products")
    })
    .await
    .context("counting the products")??;
    if products > 0 {
        return Ok(());
    }
    // The deployment record alone (`__keeper/deployment.json`, which sorts first) is what
    // another replica starting beside this one on a new deployment has written: not a sign of
    // a wiped database.
    let first = store
        .first_keys(2)
        .await
        .context("looking into the object store")?;
    let Some(key) = first.into_iter().find(|key| key != DEPLOYMENT_KEY) else {
        return Ok(());
    };
    let has_records = {
        use futures::TryStreamExt;
        let records = crate::domain::RecordKeys::all_products();
        let mut pages = store.list(records.as_str());
        pages
            .try_next()
            .await
            .context("looking for catalogue records in the object store")?
            .is_some_and(|page| !page.is_empty())
    };
    if allow_empty {
        tracing::warn!(object = %key, has_records, "the database has no product but the store holds objects; starting anyway (--allow-empty-database)");
        return Ok(());
    }
    if has_records {
        anyhow::bail!(
            "the database has no product, but the object store holds keeper's catalogue records \
             (under {}) and published objects (for example {key:?}): this is what a wiped or \
             replaced database looks like, and serving it would give new builds the old slugs \
             and overwrite their objects. Run `keeper recover` to rebuild the catalogue from the \
             records (or restore the database from a `keeper db backup`, or point \
             KEEPER_STORAGE_* at the store that belongs to it); to start anyway and let the \
             store's content be overwritten, pass --allow-empty-database",
            crate::domain::RESERVED_PREFIX
        );
    }
    anyhow::bail!(
        "the database has no product, but the object store already holds published objects \
         (for example {key:?}): this is what a wiped or replaced database looks like, and \
         serving it would give new builds the old slugs and overwrite their objects. Restore \
         the database (KEEPER_DATABASE_URL) from its backup, or point KEEPER_STORAGE_* at the \
         store that belongs to it; to start anyway and let the store's content be overwritten, \
         pass --allow-empty-database"
    )
}

/// Refuses a database and a store that belong to different deployments: each keeps the
/// deployment's identity (the database in `server_settings`, the store in
/// `__keeper/deployment.json`), written at the first start. A database that has none yet takes
/// the store's only when it holds no product (after `keeper recover`, or a start with
/// `--allow-empty-database`); a store that has none gets the database's.
pub async fn check_deployment(pool: &DbPool, store: &dyn ObjectStore) -> anyhow::Result<()> {
    let in_store = store_deployment(store).await?;
    let pool = pool.clone();
    let wanted = in_store.clone();
    let in_database = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let mut conn = pool.get().context("connecting to the database")?;
        match (deployment_id(&mut conn)?, wanted) {
            (Some(id), _) => Ok(id),
            (None, Some(theirs)) => {
                let products = count_products(&mut conn)?;
                if products > 0 {
                    anyhow::bail!(
                        "the object store belongs to deployment {theirs}, and this database \
                         ({products} products) has never used it: point KEEPER_STORAGE_* at this \
                         database's own store, or KEEPER_DATABASE_URL at the store's database"
                    );
                }
                Ok(claim_deployment_id(&mut conn, &theirs)?)
            }
            (None, None) => Ok(claim_deployment_id(
                &mut conn,
                &uuid::Uuid::new_v4().simple().to_string(),
            )?),
        }
    })
    .await
    .context("reading the deployment's identity")??;
    match in_store {
        Some(theirs) if theirs == in_database => Ok(()),
        Some(theirs) => anyhow::bail!(
            "the database belongs to deployment {in_database} but the object store to deployment \
             {theirs}: they are not each other's. Point KEEPER_DATABASE_URL and KEEPER_STORAGE_* \
             at the database and the store of one deployment"
        ),
        None => {
            record_deployment(store, &in_database).await?;
            tracing::info!(deployment = %in_database, "recorded the deployment in the object store");
            Ok(())
        }
    }
}

/// Fills the site server's map of default editions that are not `__main` from the database.
pub fn load_default_editions(pool: &DbPool, defaults: &DefaultEditions) -> anyhow::Result<()> {
    let mut conn = pool.get().context("connecting to the database")?;
    let rows = crate::db::editions::default_editions_not_main(&mut conn)
        .context("reading the products' default editions")?;
    defaults.replace(rows.into_iter().filter_map(|(product, edition)| {
        crate::domain::EditionSlug::parse(&edition)
            .ok()
            .map(|edition| (product, edition))
    }));
    Ok(())
}

/// What the site server reads from the database: the default editions that are not `__main`
/// and the organizations it serves by path.
pub async fn load_site_maps(pool: &DbPool, sites: &SiteServer) -> anyhow::Result<()> {
    let (loading_pool, defaults) = (pool.clone(), sites.default_editions.clone());
    tokio::task::spawn_blocking(move || load_default_editions(&loading_pool, &defaults))
        .await
        .context("reading the default editions")??;
    sites.reload_organizations(pool).await
}

/// Reloads the site server's maps every `period` (an adoption, a recovery or an organization
/// changed through another replica shows up without a restart); a failed reload keeps the last
/// maps.
pub async fn refresh_site_maps(pool: DbPool, sites: SiteServer, period: std::time::Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if let Err(err) = load_site_maps(&pool, &sites).await {
            tracing::warn!(error = %format!("{err:#}"), "reloading the site server's maps failed");
        }
    }
}

/// The clients of organizations other than the default, with the configured encryption keys.
pub fn org_backends(config: &Config) -> anyhow::Result<OrgBackends> {
    let defaults = OrgDefaults::from_config(&config.organizations)?;
    Ok(OrgBackends::new(defaults))
}

/// A worker over the configured store and CDN; `public_url` is keeper's external URL (what
/// `KEEPER_PUBLIC_URL` says, else the address `keeper serve` bound).
pub async fn build_worker(
    config: &Config,
    pool: DbPool,
    public_url: &url::Url,
) -> anyhow::Result<Worker> {
    let store = open_store(config).await?;
    Ok(Worker::new(Services {
        pool,
        store,
        purger: crate::cdn::from_config(&config.cdn),
        organizations: Arc::new(org_backends(config)?),
        config: config.worker.clone(),
        public_base: public_url.as_str().trim_end_matches('/').to_owned(),
    }))
}
