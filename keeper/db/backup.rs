//! `keeper db backup` and `keeper db restore`: a consistent snapshot of the whole database in
//! one backend-independent JSON document, and its loading into an empty database of either
//! backend (DESIGN.md section 6). So a SQLite deployment moves to PostgreSQL, and back, with two
//! commands.
//!
//! - **Consistent, without stopping writers.** The snapshot is read in one transaction:
//!   `REPEATABLE READ READ ONLY` on PostgreSQL, a deferred read transaction on SQLite (in WAL
//!   mode writers go on beside it).
//! - **Backend-independent.** Each table is a JSON array of row objects keyed by column name:
//!   integers, strings, `true`/`false`, `null`, and timestamps as `YYYY-MM-DDTHH:MM:SS[.ffffff]`
//!   (UTC). The columns are read from the database, so a new migration needs no change here.
//! - **Ids are kept, and never reissued.** Rows keep their ids (URLs such as `/builds/<id>` stay
//!   valid), and each table's highest id ever issued is carried too, so an id freed by a
//!   deletion is not given out again after a restore.
//! - **Versioned.** The file names its schema version. A restore creates the schema at that
//!   version, loads the rows in one transaction, then applies the newer migrations: an older
//!   backup is migrated forward with its data. A backup newer than the binary is refused.
//!
//! The file holds password hashes, API-token hashes, encrypted secrets and the token signing
//! key: keep it as private as the database (it is written readable by its owner only).

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use diesel::sql_types::BigInt;
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use serde::{Deserialize, Serialize};

use crate::db::connection::DbConnection;
use crate::db::migrations;
use crate::db::rows::{columns, highest_id, read_rows, set_highest_id, write_rows, Row};

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    value: i64,
}

/// The `format` of every backup file.
pub const FORMAT: &str = "ltd-keeper-backup";
/// This layout of the file.
pub const FORMAT_VERSION: u32 = 1;

/// Every table, in an order their foreign keys allow loading, with the columns the rows are
/// sorted by and whether the table issues ids.
/// A table newer than a backup's schema version is absent from it and from the database the
/// restore creates at that version; the migrations applied after loading create it.
const TABLES: [(&str, &str, bool); 13] = [
    ("organizations", "id", true),
    ("products", "id", true),
    ("builds", "id", true),
    ("editions", "id", true),
    ("users", "id", true),
    ("api_tokens", "id", true),
    ("api_token_products", "api_token_id, product_id", false),
    ("operations", "id", true),
    ("edition_history", "id", true),
    ("organization_admins", "id", true),
    ("webhooks", "id", true),
    ("webhook_deliveries", "id", true),
    ("server_settings", "name", false),
];

/// The whole database at one instant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Backup {
    pub format: String,
    pub format_version: u32,
    /// The newest migration applied when the snapshot was taken.
    pub schema_version: String,
    /// The keeper that wrote it.
    pub keeper_version: String,
    /// When the snapshot was taken (UTC).
    pub taken_at: String,
    /// Per table, its highest id ever issued (so that a restore never reissues one).
    pub sequences: BTreeMap<String, i64>,
    /// Per table, its rows as JSON objects keyed by column name.
    pub tables: BTreeMap<String, Vec<Row>>,
}

impl Backup {
    /// Rows in all.
    pub fn row_count(&self) -> usize {
        self.tables.values().map(Vec::len).sum()
    }
}

/// Takes a consistent snapshot of a keeper database at head or older.
pub fn take(conn: &mut DbConnection) -> anyhow::Result<Backup> {
    let status = migrations::status(conn)?;
    let Some(schema_version) = status.database_version().map(str::to_owned) else {
        bail!("the database has no keeper schema: there is nothing to back up");
    };
    if !status.unknown_applied.is_empty() {
        bail!(
            "the database schema ({schema_version}) is newer than this keeper knows; back it up \
             with the keeper release that created it"
        );
    }
    let taken_at = chrono::Utc::now()
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string();
    conn.snapshot_transaction(|conn| {
        let mut tables = BTreeMap::new();
        let mut sequences = BTreeMap::new();
        for (table, order, has_ids) in TABLES {
            if columns(conn, table).is_err() {
                // Newer than the database's schema version.
                continue;
            }
            let rows = read_rows(conn, table, order)
                .with_context(|| format!("reading the table {table}"))?;
            if has_ids {
                sequences.insert(table.to_owned(), highest_id(conn, table)?);
            }
            tables.insert(table.to_owned(), rows);
        }
        Ok(Backup {
            format: FORMAT.to_owned(),
            format_version: FORMAT_VERSION,
            schema_version,
            keeper_version: env!("CARGO_PKG_VERSION").to_owned(),
            taken_at,
            sequences,
            tables,
        })
    })
}

/// What a restore loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Rows per table.
    pub rows: BTreeMap<String, usize>,
    /// The migrations applied after loading (the backup was older than this keeper).
    pub migrated: Vec<String>,
}

/// Loads `backup` into an empty database: one with no tables, or a keeper schema at the
/// backup's version that holds nothing but what its migrations created.
pub fn restore(conn: &mut DbConnection, backup: &Backup) -> anyhow::Result<Restored> {
    if backup.format != FORMAT || backup.format_version != FORMAT_VERSION {
        bail!(
            "not a keeper backup this release reads (format {:?} version {}; expected {FORMAT:?} \
             version {FORMAT_VERSION})",
            backup.format,
            backup.format_version
        );
    }
    migrations::upgrade_to(conn, &backup.schema_version)?;
    refuse_unless_empty(conn)?;
    let mut tables = Vec::new();
    for (table, order, has_ids) in TABLES {
        if backup.tables.contains_key(table) || columns(conn, table).is_ok() {
            tables.push((table, order, has_ids));
        }
    }
    let mut rows = BTreeMap::new();
    conn.write_transaction(|conn| -> anyhow::Result<()> {
        // What the migrations seeded (the default organization) makes way for the backup's.
        for (table, _, _) in tables.iter().rev() {
            let sql = format!("DELETE FROM {table}");
            crate::with_connection!(conn, c => sql_query(&sql).execute(c))?;
        }
        for (table, _, has_ids) in tables {
            let loaded = backup
                .tables
                .get(table)
                .map(Vec::as_slice)
                .unwrap_or_default();
            write_rows(conn, table, loaded)
                .with_context(|| format!("loading the table {table}"))?;
            if has_ids {
                let highest = backup.sequences.get(table).copied().unwrap_or(0);
                set_highest_id(conn, table, highest)
                    .with_context(|| format!("setting the ids of {table}"))?;
            }
            rows.insert(table.to_owned(), loaded.len());
        }
        Ok(())
    })?;
    let migrated = migrations::upgrade(conn)?;
    Ok(Restored { rows, migrated })
}

/// A database that already holds keeper data is never written over.
fn refuse_unless_empty(conn: &mut DbConnection) -> anyhow::Result<()> {
    for table in [
        "products",
        "builds",
        "editions",
        "users",
        "api_tokens",
        "operations",
    ] {
        let found: Number = count(conn, table)?;
        if found.value > 0 {
            bail!(
                "the database already holds keeper data ({} rows in {table}); restore into an \
                 empty database (a new SQLite file, or a newly created PostgreSQL database)",
                found.value
            );
        }
    }
    Ok(())
}

fn count(conn: &mut DbConnection, table: &str) -> anyhow::Result<Number> {
    let sql = format!("SELECT COUNT(*) AS value FROM {table}");
    Ok(crate::with_connection!(conn, c => sql_query(&sql).get_result(c))?)
}
