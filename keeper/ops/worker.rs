//! The worker loop: claim, run, renew the lease on a timer while running, record the outcome.
//! Up to `concurrency` operations run at once. No database transaction is open while an
//! operation talks to the store or the CDN: each step borrows a pooled connection briefly.
//!
//! On shutdown the worker stops claiming and gives back what it holds (READY again, the attempt
//! not counted): every kind is idempotent, so the next worker redoes the interrupted work.

use std::sync::Arc;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::db::models::Operation;
use crate::db::operations::with_cause;
use crate::domain::OperationKind;
use crate::metrics::metrics;
use crate::ops::queue::{self, AfterFailure, Lane, QueueCounts};
use crate::ops::retention;
use crate::ops::webhook::Happened;
use crate::ops::{
    dashboard, delete, purge, rebuild, records, rename, seal, webhook, with_db, OpError, Outcome,
    ProgressCounter, Services,
};

/// How often a working operation's progress (and lease) is written.
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// How often a worker looks for products whose retention run is due.
const SCHEDULE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Clone)]
pub struct Worker {
    services: Arc<Services>,
    id: Arc<str>,
}

impl Worker {
    pub fn new(services: Services) -> Self {
        let id = format!(
            "{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            services: Arc::new(services),
            id: id.into(),
        }
    }

    /// Runs until `stop` turns true, then releases what it holds and returns. Webhook
    /// deliveries run in a lane of their own, with their own slots.
    pub async fn run(&self, stop: watch::Receiver<bool>) {
        let config = &self.services.config;
        tracing::info!(
            worker.id = %self.id,
            concurrency = config.concurrency,
            webhook_concurrency = config.webhook_concurrency,
            "operations worker started"
        );
        tokio::join!(
            self.run_lane(Lane::Main, config.concurrency, stop.clone()),
            self.run_lane(Lane::Webhooks, config.webhook_concurrency, stop),
        );
        tracing::info!(worker.id = %self.id, "operations worker stopped");
    }

    /// Claims and runs `lane`'s operations, up to `concurrency` at once, until `stop`.
    async fn run_lane(&self, lane: Lane, concurrency: usize, mut stop: watch::Receiver<bool>) {
        let config = &self.services.config;
        let slots = Arc::new(Semaphore::new(concurrency));
        let mut running = JoinSet::new();
        let mut next_schedule = tokio::time::Instant::now();
        loop {
            while running.try_join_next().is_some() {}
            if *stop.borrow() {
                break;
            }
            if lane == Lane::Main && tokio::time::Instant::now() >= next_schedule {
                next_schedule = tokio::time::Instant::now() + SCHEDULE_EVERY;
                self.schedule_retention().await;
            }
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = stop.changed() => break,
            };
            match self.claim(lane).await {
                Ok(Some(operation)) => {
                    let worker = self.clone();
                    let stop = stop.clone();
                    running.spawn(async move {
                        worker.execute(operation, stop).await;
                        drop(permit);
                    });
                    continue;
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "claiming an operation failed")
                }
            }
            drop(permit);
            tokio::select! {
                () = tokio::time::sleep(config.poll_interval) => {}
                _ = stop.changed() => break,
            }
        }
        while running.join_next().await.is_some() {}
    }

    /// Queues the retention runs that are due (`ops::retention::schedule`); a failure is logged
    /// and tried again at the next round.
    async fn schedule_retention(&self) {
        let config = self.services.config.retention;
        let scheduled = with_db(&self.services.pool, move |conn| {
            Ok(retention::schedule(
                conn,
                &config,
                crate::db::models::now(),
            )?)
        })
        .await;
        match scheduled {
            Ok(0) => {}
            Ok(queued) => tracing::info!(queued, "retention runs queued"),
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "scheduling retention runs failed")
            }
        }
    }

    /// Runs operations until none is READY or WORKING (waiting out backoffs), and reports what
    /// is left: the tests' drain.
    pub async fn drain(&self) -> anyhow::Result<QueueCounts> {
        let (_keep, stop) = watch::channel(false);
        loop {
            match self.claim(Lane::Any).await? {
                Some(operation) => self.execute(operation, stop.clone()).await,
                None => {
                    let counts =
                        with_db(&self.services.pool, |conn| Ok(queue::counts(conn)?)).await?;
                    if counts.unfinished == 0 {
                        return Ok(counts);
                    }
                    tokio::time::sleep(self.services.config.poll_interval).await;
                }
            }
        }
    }

    async fn claim(&self, lane: Lane) -> anyhow::Result<Option<Operation>> {
        let id = self.id.clone();
        let lease = self.services.config.lease;
        with_db(&self.services.pool, move |conn| {
            Ok(queue::claim(conn, &id, lease, lane)?)
        })
        .await
    }

    /// Runs one claimed operation to its outcome, renewing the lease meanwhile.
    async fn execute(&self, operation: Operation, mut stop: watch::Receiver<bool>) {
        let progress = Arc::new(ProgressCounter::new());
        let started = std::time::Instant::now();
        tracing::info!(operation.id = operation.id, operation.kind = %operation.kind, attempt = operation.attempts, "operation claimed");
        let outcome = {
            let work = run_kind(&self.services, &operation, &progress);
            let renewal = self.keep_lease(operation.id, &progress);
            tokio::pin!(work, renewal);
            tokio::select! {
                result = &mut work => Some(result),
                () = &mut renewal => {
                    tracing::warn!(operation.id = operation.id, "claim lost (lease expired); abandoning the attempt");
                    return;
                }
                _ = stop.wait_for(|stopping| *stopping) => None,
            }
        };
        let result = match outcome {
            Some(result) => {
                let outcome = match &result {
                    Ok(_) => "ok",
                    Err(OpError::Transient(_))
                        if operation.attempts < self.services.config.max_attempts =>
                    {
                        "retry"
                    }
                    Err(_) => "failed",
                };
                metrics().record_operation(operation.kind.as_str(), outcome, started.elapsed());
                self.record(&operation, result, &progress).await
            }
            None => {
                let (id, worker) = (operation.id, self.id.clone());
                with_db(&self.services.pool, move |conn| {
                    Ok(queue::release(conn, id, &worker)?)
                })
                .await
                .map(|released| {
                    tracing::info!(operation.id = id, released, "shutting down: claim released");
                })
            }
        };
        if let Err(err) = result {
            // The lease expires and another attempt follows.
            tracing::error!(operation.id = operation.id, error = %format!("{err:#}"), "recording an operation's outcome failed");
        }
    }

    /// Renews the lease every third of its length; returns only when the claim was lost.
    async fn keep_lease(&self, id: i64, progress: &ProgressCounter) {
        let lease = self.services.config.lease;
        // The lease is renewed well before it runs out, and progress is written at least every
        // PROGRESS_INTERVAL so that `GET /operations/<id>` shows it moving.
        let mut ticks = tokio::time::interval((lease / 3).min(PROGRESS_INTERVAL));
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let (worker, snapshot) = (self.id.clone(), progress.snapshot());
            match with_db(&self.services.pool, move |conn| {
                Ok(queue::renew(conn, id, &worker, lease, snapshot)?)
            })
            .await
            {
                Ok(true) => {}
                Ok(false) => return,
                Err(err) => {
                    tracing::warn!(operation.id = id, error = %format!("{err:#}"), "renewing a lease failed")
                }
            }
        }
    }

    async fn record(
        &self,
        operation: &Operation,
        result: Result<Outcome, OpError>,
        progress: &ProgressCounter,
    ) -> anyhow::Result<()> {
        let (id, worker) = (operation.id, self.id.clone());
        let snapshot = progress.snapshot();
        let config = &self.services.config;
        let kept = match result {
            Ok(outcome) => {
                let cause = format!("operation {id} ({})", operation.kind);
                let kept = with_db(&self.services.pool, move |conn| {
                    // What the effects queue (a dashboard after a rebuild) names this operation.
                    Ok(with_cause(&cause, || {
                        queue::finish_ok(
                            conn,
                            id,
                            &worker,
                            outcome.message.as_deref(),
                            snapshot,
                            outcome.effects.as_ref(),
                        )
                    })?)
                })
                .await?;
                tracing::info!(operation.id = id, kept, "operation OK");
                kept
            }
            Err(err) => {
                let (message, next) = match &err {
                    OpError::Permanent(reason) => (
                        format!("{reason} (not retried; once fixed: POST /operations/{id}/retry)"),
                        AfterFailure::Fail,
                    ),
                    OpError::Transient(_) if operation.attempts >= config.max_attempts => (
                        format!(
                            "Gave up after {} attempts; the last failed with: {err}. Check that \
                             the object store and the CDN are reachable and accept keeper's \
                             credentials, then POST /operations/{id}/retry.",
                            operation.attempts
                        ),
                        AfterFailure::Fail,
                    ),
                    OpError::Transient(_) => {
                        let after = queue::backoff(
                            operation.attempts,
                            config.initial_backoff,
                            config.max_backoff,
                        );
                        (
                            format!(
                                "Attempt {} of {} failed: {err}; retrying in {:.1}s.",
                                operation.attempts,
                                config.max_attempts,
                                after.as_secs_f64()
                            ),
                            AfterFailure::Retry { after },
                        )
                    }
                };
                tracing::warn!(operation.id = id, message = %message, "operation attempt failed");
                let (failed, public_base) = (operation.clone(), self.services.public_base.clone());
                with_db(&self.services.pool, move |conn| {
                    let tell_webhooks = |conn: &mut crate::db::DbConnection| {
                        let happened = Happened::OperationFailed {
                            operation: &failed,
                            message: &message,
                        };
                        webhook::notify(conn, &public_base, &happened).map(|_| ())
                    };
                    Ok(queue::record_failure(
                        conn,
                        id,
                        &worker,
                        &message,
                        next,
                        &tell_webhooks,
                    )?)
                })
                .await?
            }
        };
        if !kept {
            tracing::warn!(
                operation.id = id,
                "claim lost before the outcome was recorded; another worker redoes it"
            );
        }
        Ok(())
    }
}

async fn run_kind(
    services: &Services,
    operation: &Operation,
    progress: &Arc<ProgressCounter>,
) -> Result<Outcome, OpError> {
    if operation.kind == OperationKind::DeliverWebhook {
        // A delivery needs neither the product's store nor its CDN.
        return webhook::run(services, operation).await;
    }
    let services = &services.for_operation(operation).await?;
    match operation.kind {
        OperationKind::RebuildEdition => rebuild::run(services, operation, progress).await,
        OperationKind::RenameEdition => rename::run(services, operation, progress).await,
        OperationKind::DeleteEdition => delete::edition(services, operation).await,
        OperationKind::DeleteBuild => delete::build(services, operation).await,
        OperationKind::Purge => purge::run(services, operation).await,
        OperationKind::Dashboard => dashboard::run(services, operation).await,
        OperationKind::SealBuild => seal::run(services, operation).await,
        OperationKind::WriteRecord => records::run(services, operation).await,
        OperationKind::Retention => retention::run(services, operation).await,
        OperationKind::DeliverWebhook => webhook::run(services, operation).await,
    }
}
