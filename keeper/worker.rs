//! `keeper worker`: the operations worker process. It claims and runs operations until SIGTERM
//! or SIGINT, then gives back what it holds. Assembled by [`crate::startup`].

use anyhow::Context;
use tokio::sync::watch;

use crate::config::Config;
use crate::shutdown::ShutdownSignal;
use crate::startup::{build_worker, prepare, start_worker_http};

pub async fn run(config: Config) -> anyhow::Result<()> {
    let prepared = prepare(&config)?;
    let mut shutdown = ShutdownSignal::install()?;
    let public_url = config.http.public_url_for(config.http.bind);
    let worker = build_worker(&config, prepared.pool.clone(), &public_url).await?;
    let http = start_worker_http(&config, &prepared.pool)?;
    let handle = http.as_ref().map(actix_web::dev::Server::handle);
    let http = http.map(tokio::spawn);
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(async move { worker.run(stopped).await });
    shutdown.wait().await;
    let _ = stop.send(true);
    running.await.context("stopping the worker")?;
    if let (Some(handle), Some(http)) = (handle, http) {
        handle.stop(true).await;
        let _ = http.await;
    }
    tracing::info!("worker stopped");
    Ok(())
}
