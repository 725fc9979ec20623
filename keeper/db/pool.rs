//! The connection pool: r2d2 with a pre-ping, so that a connection the server closed (a database
//! restart, `pg_terminate_backend`, an idle timeout in a proxy) is replaced on checkout instead of
//! failing the request that drew it.

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, TransactionManager};

use crate::config::{DatabaseConfig, DatabaseUrl};
use crate::db::connection::{Backend, DbConnection};

pub type DbPool = r2d2::Pool<ConnectionManager>;
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    sqlite_busy_timeout: Duration,
}

impl ConnectionManager {
    pub fn new(url: DatabaseUrl, sqlite_busy_timeout: Duration) -> Self {
        Self {
            url,
            sqlite_busy_timeout,
        }
    }

    pub fn backend(&self) -> Backend {
        match self.url {
            DatabaseUrl::Postgres(_) => Backend::Postgres,
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error(transparent)]
    Connect(#[from] diesel::result::ConnectionError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = ManagerError;

    fn connect(&self) -> Result<DbConnection, ManagerError> {
        Ok(DbConnection::establish(
            &self.url,
            self.sqlite_busy_timeout,
        )?)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ManagerError> {
        Ok(conn.ping()?)
    }

    /// A connection left inside a failed transaction is discarded, as diesel's own manager does.
    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        crate::with_connection!(conn, c => AnsiTransactionManager::is_broken_transaction_manager(c))
    }
}

/// Builds the pool without connecting: callers connect once with [`DbConnection::establish`]
/// first, so that a bad URL or password is reported with the backend's own error at start.
pub fn build_pool(config: &DatabaseConfig) -> DbPool {
    build_pool_with(config, true)
}

/// As [`build_pool`], with the pre-ping switchable (tests show what happens without it).
pub fn build_pool_with(config: &DatabaseConfig, pre_ping: bool) -> DbPool {
    let manager = ConnectionManager::new(config.url.clone(), config.sqlite_busy_timeout);
    r2d2::Pool::builder()
        .max_size(config.pool_size)
        .min_idle(Some(0))
        .connection_timeout(config.checkout_timeout)
        .test_on_check_out(pre_ping)
        .build_unchecked(manager)
}
