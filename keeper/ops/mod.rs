//! Durable operations (DESIGN.md section 5): the queue ([`queue`]), the worker loop ([`worker`]),
//! and one module per operation kind. Every kind is idempotent: re-running it, or resuming it
//! after a crash, converges on the same end state.

pub mod copy;
pub mod dashboard;
pub mod delete;
pub mod manifest;
pub mod purge;
pub mod queue;
pub mod rebuild;
pub mod records;
pub mod rename;
pub mod retention;
pub mod seal;
pub mod webhook;
pub mod worker;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use diesel::result::Error as DieselError;
use diesel::{OptionalExtension, QueryResult};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backends::OrgBackends;
use crate::cdn::Purger;
use crate::config::WorkerConfig;
use crate::db::models::Operation;
use crate::db::operations::{enqueue, Enqueue};
use crate::db::organizations::find_settings_of_product;
use crate::db::{DbConnection, DbPool};
use crate::domain::{DomainError, OperationKind};
use crate::storage::ObjectStore;

/// What an operation works with: the database, a store and CDN, the settings. The worker's
/// `store` and `purger` are the process's (the default organization's); each operation runs
/// with its product's organization's ([`Services::for_operation`]).
#[derive(Clone)]
pub struct Services {
    pub pool: DbPool,
    pub store: Arc<dyn ObjectStore>,
    pub purger: Arc<dyn Purger>,
    /// The clients of the other organizations.
    pub organizations: Arc<OrgBackends>,
    pub config: WorkerConfig,
    /// Keeper's external URL without the trailing `/` (`KEEPER_PUBLIC_URL`): where the default
    /// organization publishes, for the absolute URLs of version lists.
    pub public_base: String,
}

impl Services {
    /// These services with the store and CDN of the organization `operation`'s product
    /// belongs to. Settings that cannot be used fail the operation with what to change.
    pub async fn for_operation(&self, operation: &Operation) -> Result<Services, OpError> {
        let Some(product_id) = operation.product_id else {
            return Ok(self.clone());
        };
        let settings = with_db(&self.pool, move |conn| {
            Ok(find_settings_of_product(conn, product_id).optional()?)
        })
        .await?;
        match settings {
            // A product that is gone leaves its operations to notice it themselves.
            None => Ok(self.clone()),
            Some((_, settings)) if OrgBackends::is_default(&settings) => Ok(self.clone()),
            Some((_, settings)) => {
                let backends = self
                    .organizations
                    .for_organization(&settings)
                    .await
                    .map_err(|err| OpError::Permanent(err.to_string()))?;
                Ok(Services {
                    store: backends.store,
                    purger: backends.purger,
                    ..self.clone()
                })
            }
        }
    }
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// Worth another attempt (storage or CDN trouble, a busy database).
    #[error("{0:#}")]
    Transient(anyhow::Error),
    /// Retrying cannot help; the message says what to change.
    #[error("{0}")]
    Permanent(String),
}

impl From<anyhow::Error> for OpError {
    fn from(err: anyhow::Error) -> Self {
        Self::Transient(err)
    }
}

/// Database writes that commit with an operation's OK state.
pub type Effects = Box<dyn Fn(&mut DbConnection) -> diesel::QueryResult<()> + Send>;

/// How a successful run ends: a note for the row, and database effects to apply in the same
/// transaction as the OK state.
pub struct Outcome {
    pub message: Option<String>,
    pub effects: Effects,
}

impl Outcome {
    pub fn done() -> Self {
        Self::with_message(None)
    }

    pub fn with_message(message: Option<String>) -> Self {
        Self {
            message,
            effects: Box::new(|_| Ok(())),
        }
    }
}

/// Objects done and in all, shared between the work and the lease renewal that reports it.
#[derive(Debug, Default)]
pub struct ProgressCounter {
    done: AtomicI64,
    /// -1 until known.
    total: AtomicI64,
}

impl ProgressCounter {
    pub fn new() -> Self {
        Self {
            done: AtomicI64::new(0),
            total: AtomicI64::new(-1),
        }
    }

    pub fn add_done(&self, count: i64) {
        self.done.fetch_add(count, Ordering::Relaxed);
        // Progress counts objects copied into an edition (rebuilds and renames).
        crate::metrics::metrics()
            .objects_copied
            .inc_by(u64::try_from(count).unwrap_or(0));
    }

    pub fn set_total(&self, total: i64) {
        self.total.store(total, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> queue::Progress {
        let total = self.total.load(Ordering::Relaxed);
        queue::Progress {
            done: self.done.load(Ordering::Relaxed),
            total: (total >= 0).then_some(total),
        }
    }
}

/// The rows an operation is about; each `SET NULL` when its row goes, so the payload carries
/// what the work needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Targets {
    pub product: Option<i64>,
    pub edition: Option<i64>,
    pub build: Option<i64>,
}

/// Records a READY operation of `kind` with its payload, in the caller's transaction. Each kind
/// calls this from its own `enqueue` with its own payload type.
fn enqueue_kind<P: Serialize>(
    conn: &mut DbConnection,
    kind: OperationKind,
    targets: Targets,
    payload: &P,
) -> QueryResult<Operation> {
    let payload = serde_json::to_string(payload)
        .map_err(|err| DieselError::SerializationError(Box::new(err)))?;
    enqueue(
        conn,
        &Enqueue {
            kind,
            product_id: targets.product,
            edition_id: targets.edition,
            build_id: targets.build,
            payload,
        },
    )
}

/// A slug read from a row, in its type; a stored value that breaks its rule is a fault of the
/// row (reported like any value diesel cannot read), not of the request.
fn stored<T>(parsed: Result<T, DomainError>) -> QueryResult<T> {
    parsed.map_err(|err| DieselError::DeserializationError(Box::new(err)))
}

/// The operation's payload in its kind's type; one that cannot be read fails the operation.
fn read_payload<P: DeserializeOwned>(operation: &Operation) -> Result<P, OpError> {
    serde_json::from_str(&operation.payload)
        .map_err(|err| OpError::Permanent(format!("unreadable {} payload: {err}", operation.kind)))
}

/// Runs blocking database work on the blocking pool with a pooled connection.
pub async fn with_db<T, F>(pool: &DbPool, work: F) -> anyhow::Result<T>
where
    F: FnOnce(&mut DbConnection) -> anyhow::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get()?;
        work(&mut conn)
    })
    .await?
}
