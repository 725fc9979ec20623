//! SIGTERM/SIGINT handling, installed before a process announces that it is ready, so that a
//! signal arriving right after the announcement is never handled by the default action (which
//! would kill the process instead of stopping it gracefully).

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct ShutdownSignal {
    terminate: Signal,
    interrupt: Signal,
}

impl ShutdownSignal {
    /// Registers the handlers now; signals received from here on are queued for [`Self::wait`].
    pub fn install() -> anyhow::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// Resolves at the first SIGTERM or SIGINT.
    pub async fn wait(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = self.interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
        }
    }
}
