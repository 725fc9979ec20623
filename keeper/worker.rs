//! `keeper worker`: the operations worker process. It claims and runs operations until SIGTERM
//! or SIGINT, then gives back what it holds. Assembled by [`crate::startup`].

use anyhow::Context;
use tokio::sync::watch;

use crate::config::Config;
use crate::shutdown::ShutdownSignal;
use crate::startup::{build_worker, prepare};

pub async fn run(config: Config) -> anyhow::Result<()> {
    let prepared = prepare(&config)?;
    let mut shutdown = ShutdownSignal::install()?;
    let public_url = config.http.public_url_for(config.http.bind);
    let worker = build_worker(&config, prepared.pool.clone(), &public_url).await?;
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(async move { worker.run(stopped).await });
    shutdown.wait().await;
    let _ = stop.send(true);
    running.await.context("stopping the worker")?;
    tracing::info!("worker stopped");
    Ok(())
}
