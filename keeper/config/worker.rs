//! `KEEPER_SERVE_RUNS_WORKER`, `KEEPER_WORKER_*`, `KEEPER_COPY_CONCURRENCY`,
//! `KEEPER_WEBHOOK_*`, and the retention policy workers apply (`retention`).

use std::net::SocketAddr;

use std::time::Duration;

use super::vars::Vars;
use super::ConfigError;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Whether `keeper serve` also runs the operations worker in-process.
    pub run_in_serve: bool,
    /// Operations one worker process runs at once.
    pub concurrency: usize,
    /// How long a claim lasts unless renewed (renewed every third of it while working).
    pub lease: Duration,
    /// Attempts in all before an operation ends FAILED.
    pub max_attempts: i32,
    /// The wait before the second attempt; doubled for each further one, up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How often an idle worker looks for work.
    pub poll_interval: Duration,
    /// Object copies (and deletes) in flight per operation.
    pub copy_concurrency: usize,
    /// Where `keeper worker` answers `/metrics` and its health probes; none when unset.
    pub metrics_bind: Option<SocketAddr>,
    /// The deployment's retention policy, which workers apply (and the API shows).
    pub retention: super::RetentionConfig,
    /// Webhook deliveries one worker process sends at once, in a lane of their own beside the
    /// `concurrency` other operations.
    pub webhook_concurrency: usize,
    /// How long one delivery waits for its receiver's answer, connecting included.
    pub webhook_timeout: Duration,
}

pub(super) fn read<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
) -> Result<WorkerConfig, ConfigError> {
    let millis = |name, default: u64| vars.number(name, default).map(Duration::from_millis);
    Ok(WorkerConfig {
        run_in_serve: vars.flag("KEEPER_SERVE_RUNS_WORKER", true)?,
        concurrency: vars.number("KEEPER_WORKER_CONCURRENCY", 4usize)?.max(1),
        lease: millis("KEEPER_WORKER_LEASE_MS", 60_000)?.max(Duration::from_millis(100)),
        max_attempts: vars.number("KEEPER_WORKER_MAX_ATTEMPTS", 8i32)?.max(1),
        initial_backoff: millis("KEEPER_WORKER_BACKOFF_MS", 2_000)?,
        max_backoff: millis("KEEPER_WORKER_MAX_BACKOFF_MS", 300_000)?,
        poll_interval: millis("KEEPER_WORKER_POLL_MS", 1_000)?.max(Duration::from_millis(10)),
        copy_concurrency: vars.number("KEEPER_COPY_CONCURRENCY", 32usize)?.max(1),
        metrics_bind: vars.parse("KEEPER_WORKER_METRICS_BIND", None, |raw| {
            raw.parse()
                .map(Some)
                .map_err(|err| format!("expected host:port such as 0.0.0.0:9100 ({err})"))
        })?,
        retention: super::retention::read(vars)?,
        webhook_concurrency: vars.number("KEEPER_WEBHOOK_CONCURRENCY", 4usize)?.max(1),
        webhook_timeout: millis("KEEPER_WEBHOOK_TIMEOUT_MS", 10_000)?
            .max(Duration::from_millis(100)),
    })
}
