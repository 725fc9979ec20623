//! `keeper worker`: the operations worker process. It claims and runs operations until SIGTERM
//! or SIGINT, then gives back what it holds.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use crate::backends::OrgBackends;
use crate::config::Config;
use crate::db::DbPool;
use crate::ops::worker::Worker;
use crate::ops::Services;
use crate::server::{open_store, prepare};
use crate::shutdown::ShutdownSignal;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let prepared = prepare(&config)?;
    let mut shutdown = ShutdownSignal::install()?;
    let worker = build_worker(&config, prepared.pool.clone()).await?;
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(async move { worker.run(stopped).await });
    shutdown.wait().await;
    let _ = stop.send(true);
    running.await.context("stopping the worker")?;
    tracing::info!("worker stopped");
    Ok(())
}

/// A worker over the configured store and CDN.
pub async fn build_worker(config: &Config, pool: DbPool) -> anyhow::Result<Worker> {
    let store = open_store(config).await?;
    Ok(Worker::new(Services {
        pool,
        store,
        purger: crate::cdn::from_config(&config.cdn),
        organizations: Arc::new(OrgBackends::new(config.organizations.clone())),
        config: config.worker.clone(),
    }))
}
