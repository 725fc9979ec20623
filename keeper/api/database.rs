//! The handlers' way to the database: blocking diesel work on actix's blocking thread pool,
//! never on the async runtime, with a pooled connection, or for the hot reads on PostgreSQL a
//! pipelined connection of the worker's own thread ([`run_read`]); errors answer as
//! [`ApiError`]s (an exhausted pool or a down database is a 503).

use std::future::Future;
use std::rc::Rc;

use actix_web::web;
use diesel::QueryResult;

use crate::api::app::AppState;
use crate::db::operations::with_cause;
use crate::db::pipelined::Live;
use crate::db::pool::get_unchecked;
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
        let done = work(&mut conn);
        if done.as_ref().is_err_and(ApiError::is_connection_lost) {
            conn.mark_lost();
        }
        done
    })
    .await?
}

/// Runs `work`, which only reads, like [`run_db`] but without the pool's pre-ping round trip.
/// A connection the server closed (a restart, a terminated backend) fails `work`'s first
/// statement; that connection is discarded and `work` runs once more on a connection the pool
/// checks, so a request after the database is back never fails. Running it again is safe only
/// because it writes nothing: never pass work that writes.
pub async fn run_db_read<T, F>(pool: &DbPool, work: F) -> Result<T, ApiError>
where
    F: Fn(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    web::block(move || {
        let mut conn = get_unchecked(&pool)?;
        match work(&mut conn) {
            Err(err) if err.is_connection_lost() => {
                conn.mark_lost();
                drop(conn);
                let mut conn = pool.get()?;
                work(&mut conn)
            }
            done => done,
        }
    })
    .await?
}

/// Runs a read on PostgreSQL's pipelined connection of this thread when keeper has one
/// (`pipelined`, see `db::pipelined`), else, or when no such connection can be opened, runs
/// `blocking` with [`run_db_read`]. The two must answer the same; both may run twice.
pub async fn run_read<T, B, P, Fut>(
    state: &AppState,
    blocking: B,
    pipelined: P,
) -> Result<T, ApiError>
where
    B: Fn(&mut DbConnection) -> QueryResult<T> + Send + 'static,
    P: Fn(Rc<Live>) -> Fut,
    Fut: Future<Output = QueryResult<T>>,
    T: Send + 'static,
{
    if let Some(reads) = &state.pipelined {
        if let Some(done) = reads.run(pipelined).await {
            return Ok(done?);
        }
    }
    run_db_read(&state.pool, move |conn| Ok(blocking(conn)?)).await
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
