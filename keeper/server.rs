//! `keeper serve`: the HTTP API and, unless `KEEPER_SERVE_RUNS_WORKER=false`, the operations
//! worker in the same process, until SIGTERM or SIGINT. Assembled by [`crate::startup`].

use anyhow::Context;

use crate::config::Config;
use crate::shutdown::ShutdownSignal;
use crate::startup::{
    bind, build_worker, check_deployment, load_site_maps, prepare, refresh_site_maps,
    refuse_wiped_database, start_http_with, storage_services,
};

/// What `keeper serve` is told on its command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeOptions {
    /// Start even when the database has no product but the store holds objects.
    pub allow_empty_database: bool,
}

/// `keeper serve`: start-up, then HTTP and (unless disabled) the operations worker until a signal.
pub async fn serve(config: Config, options: ServeOptions) -> anyhow::Result<()> {
    let prepared = prepare(&config)?;
    let storage = storage_services(&config, &prepared.secret_key).await?;
    refuse_wiped_database(
        &prepared.pool,
        storage.sites.store.as_ref(),
        options.allow_empty_database,
    )
    .await?;
    check_deployment(&prepared.pool, storage.sites.store.as_ref()).await?;
    load_site_maps(&prepared.pool, &storage.sites).await?;
    let refresher = tokio::spawn(refresh_site_maps(
        prepared.pool.clone(),
        storage.sites.clone(),
        std::time::Duration::from_secs(30),
    ));
    let mut shutdown = ShutdownSignal::install()?;
    let (listener, address) = bind(&config.http)?;
    let state = prepared.app_state(&config, address);
    let public_url = config.http.public_url_for(address);
    let server = start_http_with(state, &config.http, listener, Some(storage))?;
    let handle = server.handle();
    tracing::info!(%address, %public_url, "listening on http://{address}");
    let (stop_worker, worker_stopped) = tokio::sync::watch::channel(false);
    let worker = if config.worker.run_in_serve {
        let worker = build_worker(&config, prepared.pool.clone(), &public_url).await?;
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
    refresher.abort();
    if let Some(worker) = worker {
        worker.await.context("stopping the operations worker")?;
    }
    tracing::info!("stopped");
    Ok(())
}
