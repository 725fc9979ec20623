//! One connection type for both backends, chosen by the URL scheme.
//!
//! diesel's `MultiConnection` derive tries every backend in turn and reports a generic error when
//! all fail, which hides why PostgreSQL refused us (bad password, no such database...). This enum
//! dispatches on the scheme instead, so the real connection error reaches the operator. Queries are
//! written once and compiled for each backend with [`with_connection!`](crate::with_connection).

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::result::{ConnectionError, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use secrecy::ExposeSecret;

use crate::config::DatabaseUrl;

pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs `$body` with `$c` bound to the concrete connection of either backend.
///
/// The body is compiled twice, once per backend, so it may use any diesel query both support.
#[macro_export]
macro_rules! with_connection {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgres($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}

/// Which database engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl DbConnection {
    /// Connects to `url` and applies the per-connection settings (for SQLite: WAL, foreign keys,
    /// busy timeout). The error is the backend's own.
    pub fn establish(
        url: &DatabaseUrl,
        sqlite_busy_timeout: Duration,
    ) -> Result<Self, ConnectionError> {
        match url {
            DatabaseUrl::Postgres(secret) => {
                PgConnection::establish(secret.expose_secret()).map(Self::Postgres)
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)?;
                configure_sqlite(&mut conn, sqlite_busy_timeout)
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(Self::Sqlite(conn))
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// A cheap round trip that fails on a dead connection (the pool's pre-ping).
    pub fn ping(&mut self) -> Result<(), DieselError> {
        with_connection!(self, c => c.batch_execute("SELECT 1"))
    }

    /// Runs `work` in a transaction meant for writing: `BEGIN IMMEDIATE` on SQLite, so that the
    /// write lock is taken up front and a busy database is reported at `BEGIN` (where the busy
    /// timeout applies) instead of failing half-way; a plain transaction on PostgreSQL.
    pub fn write_transaction<T, E>(
        &mut self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DieselError>,
    {
        self.transaction_with("BEGIN IMMEDIATE", "BEGIN", work)
    }

    /// Runs `work` in a SERIALIZABLE transaction on PostgreSQL (`BEGIN IMMEDIATE` on SQLite, whose
    /// transactions are always serializable).
    pub fn serializable_transaction<T, E>(
        &mut self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DieselError>,
    {
        self.transaction_with(
            "BEGIN IMMEDIATE",
            "BEGIN TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            work,
        )
    }

    /// Runs `work` on one consistent snapshot without blocking writers: `REPEATABLE READ READ
    /// ONLY` on PostgreSQL, a deferred read transaction on SQLite (WAL keeps writers going).
    pub fn snapshot_transaction<T, E>(
        &mut self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DieselError>,
    {
        self.transaction_with(
            "BEGIN DEFERRED",
            "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY",
            work,
        )
    }

    fn transaction_with<T, E>(
        &mut self,
        sqlite_begin: &str,
        postgres_begin: &str,
        work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DieselError>,
    {
        match self {
            Self::Postgres(c) => AnsiTransactionManager::begin_transaction_sql(c, postgres_begin)?,
            Self::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, sqlite_begin)?,
        }
        match work(self) {
            Ok(value) => {
                with_connection!(self, c => AnsiTransactionManager::commit_transaction(c))?;
                Ok(value)
            }
            Err(err) => {
                // The original error matters more than a failed rollback; diesel marks the
                // connection broken in that case and the pool discards it.
                let _ =
                    with_connection!(self, c => AnsiTransactionManager::rollback_transaction(c));
                Err(err)
            }
        }
    }
}

fn configure_sqlite(
    conn: &mut SqliteConnection,
    busy_timeout: Duration,
) -> Result<(), DieselError> {
    // busy_timeout first, so that switching to WAL waits for other writers instead of failing.
    // These three are settings of the connection, not of the file.
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {};
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;",
        busy_timeout.as_millis()
    ))?;
    // WAL is a property of the file. Switch only an empty database or one that keeper's
    // migrations already manage, so that a file that is not keeper's (which the start-up guard
    // refuses) is left byte for byte as it was. Reading the catalogue is also what reports a
    // file that is not a database at all.
    if is_empty_or_migrated(conn)? {
        conn.batch_execute("PRAGMA journal_mode = WAL;")?;
    }
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct Tables {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    others: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    bookkeeping: i64,
}

/// Whether the SQLite database has no tables, or has diesel's migration bookkeeping.
fn is_empty_or_migrated(conn: &mut SqliteConnection) -> Result<bool, DieselError> {
    use diesel::RunQueryDsl;
    let tables: Tables = diesel::sql_query(
        "SELECT
           COALESCE(SUM(name <> '__diesel_schema_migrations'), 0) AS others,
           COALESCE(SUM(name = '__diesel_schema_migrations'), 0) AS bookkeeping
         FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .get_result(conn)?;
    Ok(tables.others == 0 || tables.bookkeeping > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::{BigInt, Text};
    use diesel::{sql_query, QueryableByName, RunQueryDsl};

    #[derive(QueryableByName)]
    struct Pragma {
        #[diesel(sql_type = Text)]
        journal_mode: String,
    }

    #[derive(QueryableByName)]
    struct Flag {
        #[diesel(sql_type = BigInt)]
        foreign_keys: i64,
    }

    #[test]
    fn sqlite_connections_use_wal_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("k.sqlite3").display().to_string());
        let mut conn = DbConnection::establish(&url, Duration::from_millis(100)).unwrap();
        assert_eq!(conn.backend(), Backend::Sqlite);
        let DbConnection::Sqlite(c) = &mut conn else {
            unreachable!()
        };
        let mode: Pragma = sql_query("PRAGMA journal_mode").get_result(c).unwrap();
        assert_eq!(mode.journal_mode, "wal");
        let fk: Flag = sql_query("PRAGMA foreign_keys").get_result(c).unwrap();
        assert_eq!(fk.foreign_keys, 1);
        conn.ping().unwrap();
    }

    #[test]
    fn postgres_errors_are_the_backends_own() {
        // Nothing listens on port 1: the message must say why, not "invalid connection url".
        let url = DatabaseUrl::parse("postgres://nobody@127.0.0.1:1/none").unwrap();
        let err = DbConnection::establish(&url, Duration::from_millis(100))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("127.0.0.1") || err.contains("connect"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_write_transaction_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("t.sqlite3").display().to_string());
        let mut conn = DbConnection::establish(&url, Duration::from_millis(100)).unwrap();
        with_connection!(&mut conn, c => c.batch_execute("CREATE TABLE t (x INTEGER)")).unwrap();
        let result: Result<(), DieselError> = conn.write_transaction(|conn| {
            with_connection!(conn, c => c.batch_execute("INSERT INTO t VALUES (1)"))?;
            Err(DieselError::RollbackTransaction)
        });
        assert!(result.is_err());
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let count: Count = with_connection!(&mut conn, c => sql_query("SELECT COUNT(*) AS n FROM t").get_result(c)).unwrap();
        assert_eq!(count.n, 0);
    }
}
