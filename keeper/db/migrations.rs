//! Embedded, versioned migrations and the start-up guard (DESIGN.md §6).
//!
//! - empty database: create the schema at head;
//! - behind: upgrade automatically on SQLite, on PostgreSQL only with `KEEPER_AUTO_MIGRATE=true`,
//!   else refuse with the command to run;
//! - ahead of this binary (a migration applied that the binary does not know): refuse, naming both
//!   versions;
//! - tables present but no migration history: refuse (it is not a keeper database).

use anyhow::{anyhow, bail, Context};
use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel::sql_types::BigInt;
use diesel::sqlite::Sqlite;
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::db::connection::{Backend, DbConnection};

pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Serializes concurrent start-ups of several replicas against one PostgreSQL database.
const POSTGRES_MIGRATION_LOCK: i64 = 0x6c74_645f_6b70; // "ltd_kp"

/// One migration this binary carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownMigration {
    pub version: String,
    pub name: String,
}

/// What the database holds compared with what this binary carries.
#[derive(Debug, Clone)]
pub struct MigrationStatus {
    pub backend: Backend,
    /// Every migration of this binary, oldest first, with whether it is applied.
    pub known: Vec<(KnownMigration, bool)>,
    /// Versions applied in the database that this binary does not know (the database is ahead).
    pub unknown_applied: Vec<String>,
    /// Tables other than the migration bookkeeping table.
    pub table_count: i64,
}

impl MigrationStatus {
    pub fn applied_count(&self) -> usize {
        self.known.iter().filter(|(_, applied)| *applied).count() + self.unknown_applied.len()
    }

    pub fn pending(&self) -> Vec<&KnownMigration> {
        self.known
            .iter()
            .filter(|(_, applied)| !applied)
            .map(|(migration, _)| migration)
            .collect()
    }

    /// The newest migration version this binary carries.
    pub fn binary_version(&self) -> &str {
        self.known
            .last()
            .map(|(migration, _)| migration.version.as_str())
            .unwrap_or("none")
    }

    /// The newest version applied in the database.
    pub fn database_version(&self) -> Option<&str> {
        let newest_known = self
            .known
            .iter()
            .filter(|(_, applied)| *applied)
            .map(|(migration, _)| migration.version.as_str())
            .max();
        let newest_unknown = self.unknown_applied.iter().map(String::as_str).max();
        newest_known.max(newest_unknown)
    }
}

/// What the start-up guard did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardOutcome {
    /// The schema was already at head.
    UpToDate,
    /// The database was empty and was created at head.
    Created { applied: Vec<String> },
    /// Pending migrations were applied.
    Upgraded { applied: Vec<String> },
}

/// Reads the migration state, writing nothing: a database without diesel's bookkeeping table
/// has no migration applied (the table is created only when migrations run).
pub fn status(conn: &mut DbConnection) -> anyhow::Result<MigrationStatus> {
    let table_count = count_user_tables(conn)?;
    let applied: Vec<String> = if has_bookkeeping(conn)? {
        match conn {
            DbConnection::Postgres(c) => versions(c.applied_migrations()),
            DbConnection::Sqlite(c) => versions(c.applied_migrations()),
        }
        .map_err(|err| anyhow!("reading the applied migrations: {err}"))?
    } else {
        Vec::new()
    };
    let known = known_migrations(conn.backend())?;
    let unknown_applied = applied
        .iter()
        .filter(|version| !known.iter().any(|m| &m.version == *version))
        .cloned()
        .collect();
    let known = known
        .into_iter()
        .map(|migration| {
            let is_applied = applied.contains(&migration.version);
            (migration, is_applied)
        })
        .collect();
    Ok(MigrationStatus {
        backend: conn.backend(),
        known,
        unknown_applied,
        table_count,
    })
}

/// The start-up guard: brings an empty or (when allowed) older database to head, refuses
/// anything else with a message that says what to do.
pub fn guard(conn: &mut DbConnection, auto_migrate: bool) -> anyhow::Result<GuardOutcome> {
    with_migration_lock(conn, |conn| {
        let status = status(conn)?;
        refuse_unless_ours(&status)?;
        let pending = status.pending();
        if pending.is_empty() {
            return Ok(GuardOutcome::UpToDate);
        }
        if status.applied_count() == 0 {
            let applied = run_pending(conn)?;
            return Ok(GuardOutcome::Created { applied });
        }
        if status.backend == Backend::Postgres && !auto_migrate {
            let names: Vec<&str> = pending.iter().map(|m| m.name.as_str()).collect();
            bail!(
                "the database schema is behind this keeper: it is at version {}, this binary \
                 needs {} (pending: {}). Run `keeper db upgrade` with the same \
                 KEEPER_DATABASE_URL, or set KEEPER_AUTO_MIGRATE=true to upgrade at start",
                status.database_version().unwrap_or("none"),
                status.binary_version(),
                names.join(", ")
            );
        }
        let applied = run_pending(conn)?;
        Ok(GuardOutcome::Upgraded { applied })
    })
}

/// `keeper db upgrade`: applies every pending migration. Returns the names applied.
pub fn upgrade(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    with_migration_lock(conn, |conn| {
        let status = status(conn)?;
        refuse_unless_ours(&status)?;
        run_pending(conn)
    })
}

/// Applies migrations one by one until `version` is the newest applied (`keeper db restore`
/// creates the schema a backup was taken at). Refuses a version this binary does not carry, and
/// a database already past it.
pub fn upgrade_to(conn: &mut DbConnection, version: &str) -> anyhow::Result<Vec<String>> {
    with_migration_lock(conn, |conn| {
        let status = status(conn)?;
        refuse_unless_ours(&status)?;
        let Some(position) = status.known.iter().position(|(m, _)| m.version == version) else {
            bail!(
                "schema version {version} is not one this keeper knows (it knows up to {}): use \
                 the keeper release that wrote it",
                status.binary_version()
            );
        };
        if status.known[position + 1..]
            .iter()
            .any(|(_, applied)| *applied)
        {
            bail!(
                "the database is already at version {}, newer than {version}",
                status.database_version().unwrap_or("none")
            );
        }
        let mut applied = Vec::new();
        for (migration, done) in &status.known[..=position] {
            if *done {
                continue;
            }
            let ran = match conn {
                DbConnection::Postgres(c) => c.run_next_migration(POSTGRES_MIGRATIONS),
                DbConnection::Sqlite(c) => c.run_next_migration(SQLITE_MIGRATIONS),
            }
            .map_err(|err| anyhow!("applying migration {}: {err}", migration.name))?;
            applied.push(ran.to_string());
        }
        Ok(applied)
    })
}

/// `keeper db downgrade N`: reverts the newest `steps` migrations. Returns the names reverted.
pub fn downgrade(conn: &mut DbConnection, steps: usize) -> anyhow::Result<Vec<String>> {
    with_migration_lock(conn, |conn| {
        let status = status(conn)?;
        refuse_if_ahead(&status)?;
        let applied = status.applied_count();
        if steps > applied {
            bail!("cannot revert {steps} migrations: only {applied} are applied");
        }
        let mut reverted = Vec::with_capacity(steps);
        for _ in 0..steps {
            let version = match conn {
                DbConnection::Postgres(c) => c.revert_last_migration(POSTGRES_MIGRATIONS),
                DbConnection::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS),
            }
            .map_err(|err| anyhow!("reverting a migration: {err}"))?;
            reverted.push(version.to_string());
        }
        Ok(reverted)
    })
}

fn refuse_unless_ours(status: &MigrationStatus) -> anyhow::Result<()> {
    refuse_if_ahead(status)?;
    if status.applied_count() == 0 && status.table_count > 0 {
        bail!(
            "the database holds {} tables but no keeper migration history; refusing to create \
             keeper's schema beside them. Point KEEPER_DATABASE_URL at an empty database or an \
             existing keeper database",
            status.table_count
        );
    }
    Ok(())
}

fn refuse_if_ahead(status: &MigrationStatus) -> anyhow::Result<()> {
    if status.unknown_applied.is_empty() {
        return Ok(());
    }
    bail!(
        "the database schema is ahead of this keeper: the database is at version {}, this binary \
         (keeper {}) knows migrations up to version {} only (unknown applied: {}). Refusing to \
         start: run the newer keeper release that created this schema",
        status.database_version().unwrap_or("none"),
        env!("CARGO_PKG_VERSION"),
        status.binary_version(),
        status.unknown_applied.join(", ")
    )
}

fn run_pending(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    match conn {
        DbConnection::Postgres(c) => versions(c.run_pending_migrations(POSTGRES_MIGRATIONS)),
        DbConnection::Sqlite(c) => versions(c.run_pending_migrations(SQLITE_MIGRATIONS)),
    }
    .map_err(|err| anyhow!("applying migrations: {err}"))
}

fn versions<V: std::fmt::Display>(
    result: diesel::migration::Result<Vec<V>>,
) -> diesel::migration::Result<Vec<String>> {
    result.map(|list| list.iter().map(ToString::to_string).collect())
}

/// The migrations this binary carries for `backend`, oldest first.
pub fn known_migrations(backend: Backend) -> anyhow::Result<Vec<KnownMigration>> {
    fn describe<DB: diesel::backend::Backend>(
        source: &dyn MigrationSource<DB>,
    ) -> anyhow::Result<Vec<KnownMigration>> {
        let mut list: Vec<KnownMigration> = source
            .migrations()
            .map_err(|err| anyhow!("reading embedded migrations: {err}"))?
            .iter()
            .map(|migration| KnownMigration {
                version: migration.name().version().to_string(),
                name: migration.name().to_string(),
            })
            .collect();
        list.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(list)
    }
    match backend {
        Backend::Postgres => describe::<Pg>(&POSTGRES_MIGRATIONS),
        Backend::Sqlite => describe::<Sqlite>(&SQLITE_MIGRATIONS),
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

fn count_user_tables(conn: &mut DbConnection) -> anyhow::Result<i64> {
    let found: Count = match conn {
        DbConnection::Postgres(c) => sql_query(
            "SELECT COUNT(*) AS count FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name <> '__diesel_schema_migrations'",
        )
        .get_result(c),
        DbConnection::Sqlite(c) => sql_query(
            "SELECT COUNT(*) AS count FROM sqlite_master
             WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
               AND name <> '__diesel_schema_migrations'",
        )
        .get_result(c),
    }
    .context("listing the database's tables")?;
    Ok(found.count)
}

/// Whether diesel's `__diesel_schema_migrations` table exists.
fn has_bookkeeping(conn: &mut DbConnection) -> anyhow::Result<bool> {
    let found: Count = match conn {
        DbConnection::Postgres(c) => sql_query(
            "SELECT COUNT(*) AS count FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name = '__diesel_schema_migrations'",
        )
        .get_result(c),
        DbConnection::Sqlite(c) => sql_query(
            "SELECT COUNT(*) AS count FROM sqlite_master
             WHERE type = 'table' AND name = '__diesel_schema_migrations'",
        )
        .get_result(c),
    }
    .context("looking for the migration history")?;
    Ok(found.count > 0)
}

/// Holds a PostgreSQL advisory lock around `work`, so that replicas starting together migrate once.
fn with_migration_lock<T>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let DbConnection::Postgres(c) = conn else {
        return work(conn);
    };
    sql_query(format!(
        "SELECT pg_advisory_lock({POSTGRES_MIGRATION_LOCK})"
    ))
    .execute(c)
    .context("taking the migration lock")?;
    let result = work(conn);
    if let DbConnection::Postgres(c) = conn {
        let unlocked = sql_query(format!(
            "SELECT pg_advisory_unlock({POSTGRES_MIGRATION_LOCK})"
        ))
        .execute(c)
        .context("releasing the migration lock");
        if let (Ok(_), Err(err)) = (&result, unlocked) {
            return Err(err);
        }
    }
    result
}
