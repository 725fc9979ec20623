//! The handlers' way to the database: blocking diesel work on actix's blocking thread pool,
//! never on the async runtime, with a pooled connection; its errors answer as [`ApiError`]s (an
//! exhausted pool or a down database is a 503).

use actix_web::web;

use crate::db::operations::with_cause;
use crate::db::{DbConnection, DbPool};
use crate::error::ApiError;

/// Runs `work` with a pooled connection on the blocking pool.
pub async fn run_db<T, F>(pool: &DbPool, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    web::block(move || {
        let mut conn = pool.get()?;
        work(&mut conn)
    })
    .await?
}

/// [`run_db`], with every operation `work` enqueues recorded as caused by `cause`
/// (`Identity::cause`; see `db::operations::with_cause`).
pub async fn run_db_as<T, F>(pool: &DbPool, cause: String, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    run_db(pool, move |conn| with_cause(&cause, || work(conn))).await
}
