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
use diesel::sql_types::{BigInt, Text};
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use serde::{Deserialize, Serialize};

use crate::db::connection::{Backend, DbConnection};
use crate::db::migrations;

/// The `format` of every backup file.
pub const FORMAT: &str = "ltd-keeper-backup";
/// This layout of the file.
pub const FORMAT_VERSION: u32 = 1;

/// Every table, in an order their foreign keys allow loading, with the columns the rows are
/// sorted by and whether the table issues ids.
const TABLES: [(&str, &str, bool); 9] = [
    ("organizations", "id", true),
    ("products", "id", true),
    ("builds", "id", true),
    ("editions", "id", true),
    ("users", "id", true),
    ("api_tokens", "id", true),
    ("api_token_products", "api_token_id, product_id", false),
    ("operations", "id", true),
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
    pub tables: BTreeMap<String, Vec<serde_json::Map<String, serde_json::Value>>>,
}

impl Backup {
    /// Rows in all.
    pub fn row_count(&self) -> usize {
        self.tables.values().map(Vec::len).sum()
    }
}

#[derive(QueryableByName)]
struct JsonText {
    #[diesel(sql_type = Text)]
    rows: String,
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    value: i64,
}

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    kind: String,
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
    let mut rows = BTreeMap::new();
    conn.write_transaction(|conn| -> anyhow::Result<()> {
        // What the migrations seeded (the default organization) makes way for the backup's.
        for (table, _, _) in TABLES.iter().rev() {
            let sql = format!("DELETE FROM {table}");
            crate::with_connection!(conn, c => sql_query(&sql).execute(c))?;
        }
        for (table, _, has_ids) in TABLES {
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

fn columns(conn: &mut DbConnection, table: &str) -> anyhow::Result<Vec<Column>> {
    let columns: Vec<Column> = match conn {
        DbConnection::Postgres(c) => sql_query(
            "SELECT column_name::text AS name, data_type::text AS kind
               FROM information_schema.columns
              WHERE table_schema = current_schema() AND table_name = $1
              ORDER BY ordinal_position",
        )
        .bind::<Text, _>(table)
        .load(c)?,
        DbConnection::Sqlite(c) => {
            sql_query("SELECT name, upper(type) AS kind FROM pragma_table_info(?1) ORDER BY cid")
                .bind::<Text, _>(table)
                .load(c)?
        }
    };
    if columns.is_empty() {
        bail!("the table {table} does not exist");
    }
    Ok(columns)
}

fn read_rows(
    conn: &mut DbConnection,
    table: &str,
    order: &str,
) -> anyhow::Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let sql = match conn.backend() {
        Backend::Postgres => format!(
            "SELECT coalesce(json_agg(t ORDER BY {}), '[]'::json)::text AS rows FROM {table} t",
            order
                .split(", ")
                .map(|column| format!("t.{column}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Backend::Sqlite => {
            let pairs: Vec<String> = columns(conn, table)?
                .iter()
                .map(|column| {
                    let name = &column.name;
                    let value = match column.kind.as_str() {
                        "BOOLEAN" => format!(
                            "json(CASE WHEN \"{name}\" IS NULL THEN NULL WHEN \"{name}\" THEN \
                             'true' ELSE 'false' END)"
                        ),
                        "TIMESTAMP" => format!("replace(\"{name}\", ' ', 'T')"),
                        _ => format!("\"{name}\""),
                    };
                    format!("'{name}', {value}")
                })
                .collect();
            format!(
                "SELECT coalesce((SELECT json_group_array(json(row)) FROM \
                 (SELECT json_object({}) AS row FROM {table} ORDER BY {order})), '[]') AS rows",
                pairs.join(", ")
            )
        }
    };
    let found: JsonText = crate::with_connection!(conn, c => sql_query(&sql).get_result(c))?;
    let rows: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&found.rows).context("reading the rows' JSON")?;
    Ok(rows.into_iter().map(canonical_timestamps).collect())
}

/// Both backends already write `YYYY-MM-DDTHH:MM:SS[.ffffff]`; this trims the fraction's
/// trailing zeros (and a fraction of zero) so that both write the same text for one instant.
fn canonical_timestamps(
    row: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    row.into_iter()
        .map(|(name, value)| {
            let value = match value {
                serde_json::Value::String(text) if looks_like_timestamp(&text) => {
                    serde_json::Value::String(match text.split_once('.') {
                        Some((whole, fraction)) if !fraction.trim_end_matches('0').is_empty() => {
                            format!("{whole}.{}", fraction.trim_end_matches('0'))
                        }
                        Some((whole, _)) => whole.to_owned(),
                        None => text,
                    })
                }
                other => other,
            };
            (name, value)
        })
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SS` with an optional fraction.
fn looks_like_timestamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 19
        && bytes.len() <= 26
        && chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
}

fn highest_id(conn: &mut DbConnection, table: &str) -> anyhow::Result<i64> {
    let sql = match conn.backend() {
        Backend::Postgres => format!(
            "SELECT greatest(coalesce(pg_sequence_last_value(pg_get_serial_sequence('{table}', \
             'id')::regclass), 0), coalesce((SELECT max(id) FROM {table}), 0))::bigint AS value"
        ),
        Backend::Sqlite => format!(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0), \
             coalesce((SELECT max(id) FROM {table}), 0)) AS value"
        ),
    };
    let found: Number = crate::with_connection!(conn, c => sql_query(&sql).get_result(c))?;
    Ok(found.value)
}

fn write_rows(
    conn: &mut DbConnection,
    table: &str,
    rows: &[serde_json::Map<String, serde_json::Value>],
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let known = columns(conn, table)?;
    for row in rows {
        if let Some(unknown) = row
            .keys()
            .find(|name| !known.iter().any(|c| &c.name == *name))
        {
            bail!("a row has the column {unknown:?}, which {table} does not have at this version");
        }
    }
    let json = serde_json::to_string(rows).context("writing the rows' JSON")?;
    match conn {
        DbConnection::Postgres(c) => {
            sql_query(format!(
                "INSERT INTO {table} OVERRIDING SYSTEM VALUE \
                 SELECT * FROM json_populate_recordset(NULL::{table}, $1::json)"
            ))
            .bind::<Text, _>(&json)
            .execute(c)?;
        }
        DbConnection::Sqlite(c) => {
            let names: Vec<String> = known.iter().map(|c| format!("\"{}\"", c.name)).collect();
            let values: Vec<String> = known
                .iter()
                .map(|column| {
                    let value = format!("json_extract(value, '$.\"{}\"')", column.name);
                    match column.kind.as_str() {
                        "TIMESTAMP" => format!("replace({value}, 'T', ' ')"),
                        _ => value,
                    }
                })
                .collect();
            sql_query(format!(
                "INSERT INTO {table} ({}) SELECT {} FROM json_each(?1)",
                names.join(", "),
                values.join(", ")
            ))
            .bind::<Text, _>(&json)
            .execute(c)?;
        }
    }
    Ok(())
}

fn set_highest_id(conn: &mut DbConnection, table: &str, highest: i64) -> anyhow::Result<()> {
    match conn {
        DbConnection::Postgres(c) => {
            sql_query(format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 greatest($1, coalesce((SELECT max(id) FROM {table}), 0), 1), \
                 greatest($1, coalesce((SELECT max(id) FROM {table}), 0)) > 0)"
            ))
            .bind::<BigInt, _>(highest)
            .execute(c)?;
        }
        DbConnection::Sqlite(c) => {
            sql_query(format!(
                "DELETE FROM sqlite_sequence WHERE name = '{table}'"
            ))
            .execute(c)?;
            sql_query(format!(
                "INSERT INTO sqlite_sequence (name, seq) \
                 SELECT '{table}', max(?1, coalesce((SELECT max(id) FROM {table}), 0))"
            ))
            .bind::<BigInt, _>(highest)
            .execute(c)?;
        }
    }
    Ok(())
}
