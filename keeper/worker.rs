//! `keeper worker`: the operations worker process. Until the operations pipeline lands it checks
//! the database like `serve` does and then idles until SIGTERM or SIGINT.

use crate::config::Config;
use crate::server::prepare;
use crate::shutdown::ShutdownSignal;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let _prepared = prepare(&config)?;
    let mut shutdown = ShutdownSignal::install()?;
    tracing::info!("worker started; no operation kinds are implemented in this release");
    shutdown.wait().await;
    tracing::info!("worker stopped");
    Ok(())
}
