//! The connection pool: r2d2 with a pre-ping, so that a connection the server closed (a database
//! restart, `pg_terminate_backend`, an idle timeout in a proxy) is replaced on checkout instead of
//! failing the request that drew it.
//!
//! The ping is a round trip of its own. Work that only reads, and so may run twice, checks out
//! with [`get_unchecked`] instead and recovers from a dead connection after the fact: the first
//! statement fails with a lost connection, [`PooledDb::mark_lost`] has the pool discard it, and
//! the work runs again on a checked connection (`api::database::run_db_read`).

use std::cell::Cell;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, TransactionManager};

use crate::config::{DatabaseConfig, DatabaseUrl};
use crate::db::connection::{Backend, DbConnection};

pub type DbPool = r2d2::Pool<ConnectionManager>;
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

thread_local! {
    /// Whether `pool.get()` on this thread pings the connection it hands out (see
    /// [`get_unchecked`]); the pool's own `test_on_check_out` still decides first.
    static PING_ON_CHECKOUT: Cell<bool> = const { Cell::new(true) };
}

/// A pooled connection, and whether it is known to be dead.
pub struct PooledDb {
    conn: DbConnection,
    lost: bool,
}

impl PooledDb {
    /// Has the pool discard this connection when it comes back, instead of handing it out again.
    pub fn mark_lost(&mut self) {
        self.lost = true;
    }
}

impl Deref for PooledDb {
    type Target = DbConnection;

    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl DerefMut for PooledDb {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

/// A connection from `pool` without the pre-ping: for work that may run again, which recovers
/// from a dead connection instead of paying a round trip to rule one out.
pub fn get_unchecked(pool: &DbPool) -> Result<PooledConnection, r2d2::Error> {
    PING_ON_CHECKOUT.set(false);
    let got = pool.get();
    PING_ON_CHECKOUT.set(true);
    got
}

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
    type Connection = PooledDb;
    type Error = ManagerError;

    fn connect(&self) -> Result<PooledDb, ManagerError> {
        Ok(PooledDb {
            conn: DbConnection::establish(&self.url, self.sqlite_busy_timeout)?,
            lost: false,
        })
    }

    fn is_valid(&self, conn: &mut PooledDb) -> Result<(), ManagerError> {
        if !PING_ON_CHECKOUT.get() {
            return Ok(());
        }
        Ok(conn.ping()?)
    }

    /// A connection known to be dead, or left inside a failed transaction (as diesel's own
    /// manager checks), is discarded.
    fn has_broken(&self, conn: &mut PooledDb) -> bool {
        conn.lost
            || crate::with_connection!(&mut conn.conn, c => AnsiTransactionManager::is_broken_transaction_manager(c))
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
