//! `keeper worker`: the operations worker process. Until the operations pipeline lands it checks
//! the database like `serve` does and then idles until SIGTERM or SIGINT.

use anyhow::Context;

use crate::config::Config;
use crate::server::prepare;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let _prepared = prepare(&config)?;
    tracing::info!("worker started; no operation kinds are implemented in this release");
    wait_for_shutdown_signal().await?;
    tracing::info!("worker stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = terminate.recv() => {},
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
    }
    Ok(())
}
