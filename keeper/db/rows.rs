//! Rows as backend-independent JSON, read and written by the database itself: the format of
//! `keeper db backup` ([`crate::db::backup`]) and of the bucket's catalogue records
//! (`ops::records`). Each row is a JSON object keyed by column name: integers, strings,
//! `true`/`false`, `null`, and timestamps as `YYYY-MM-DDTHH:MM:SS[.ffffff]` (UTC). The columns
//! are read from the database, so a migration needs no change here.

use anyhow::{bail, Context};
use diesel::sql_types::{BigInt, Text};
use diesel::{sql_query, QueryableByName, RunQueryDsl};

use crate::db::connection::{Backend, DbConnection};

/// A row as JSON, keyed by column name.
pub type Row = serde_json::Map<String, serde_json::Value>;

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
pub(crate) struct Column {
    #[diesel(sql_type = Text)]
    pub(crate) name: String,
    #[diesel(sql_type = Text)]
    kind: String,
}

pub(crate) fn columns(conn: &mut DbConnection, table: &str) -> anyhow::Result<Vec<Column>> {
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

/// Every row of `table` ordered by `order` (a column list).
pub fn read_rows(conn: &mut DbConnection, table: &str, order: &str) -> anyhow::Result<Vec<Row>> {
    read_rows_where(conn, table, order, None)
}

/// The row of `table` with `id`, if there is one.
pub fn read_row(conn: &mut DbConnection, table: &str, id: i64) -> anyhow::Result<Option<Row>> {
    Ok(read_rows_where(conn, table, "id", Some(id))?.pop())
}

fn read_rows_where(
    conn: &mut DbConnection,
    table: &str,
    order: &str,
    id: Option<i64>,
) -> anyhow::Result<Vec<Row>> {
    let filter = match id {
        Some(id) => format!(" WHERE id = {id}"),
        None => String::new(),
    };
    let sql = match conn.backend() {
        Backend::Postgres => format!(
            "SELECT coalesce(json_agg(t ORDER BY {}), '[]'::json)::text AS rows FROM {table} t{filter}",
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
                        // JSON holds no bytes: written as PostgreSQL writes a bytea, `\x<hex>`
                        // (an adopted LTD Keeper's encrypted secrets; keeper's tables have none).
                        "BLOB" => format!(
                            "CASE WHEN \"{name}\" IS NULL THEN NULL \
                             ELSE '\\x' || lower(hex(\"{name}\")) END"
                        ),
                        _ => format!("\"{name}\""),
                    };
                    format!("'{name}', {value}")
                })
                .collect();
            format!(
                "SELECT coalesce((SELECT json_group_array(json(row)) FROM \
                 (SELECT json_object({}) AS row FROM {table}{filter} ORDER BY {order})), '[]') AS rows",
                pairs.join(", ")
            )
        }
    };
    let found: JsonText = crate::with_connection!(conn, c => sql_query(&sql).get_result(c))?;
    let rows: Vec<Row> = serde_json::from_str(&found.rows).context("reading the rows' JSON")?;
    Ok(rows.into_iter().map(canonical_timestamps).collect())
}

/// Both backends already write `YYYY-MM-DDTHH:MM:SS[.ffffff]`; this trims the fraction's
/// trailing zeros (and a fraction of zero) so that both write the same text for one instant.
fn canonical_timestamps(row: Row) -> Row {
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

/// The highest id `table` ever issued (deleted rows' ids included).
pub fn highest_id(conn: &mut DbConnection, table: &str) -> anyhow::Result<i64> {
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

/// Inserts `rows` (ids included) into `table`. Every row must carry the same columns; the
/// columns a row lacks (written by an older schema) get their defaults.
pub fn write_rows(conn: &mut DbConnection, table: &str, rows: &[Row]) -> anyhow::Result<()> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let known = columns(conn, table)?;
    for row in rows {
        if let Some(unknown) = row
            .keys()
            .find(|name| !known.iter().any(|c| &c.name == *name))
        {
            bail!("a row has the column {unknown:?}, which {table} does not have at this version");
        }
        if row.len() != first.len() || row.keys().any(|name| !first.contains_key(name)) {
            bail!("the rows of {table} do not all carry the same columns");
        }
    }
    let present: Vec<&Column> = known
        .iter()
        .filter(|column| first.contains_key(&column.name))
        .collect();
    let names: Vec<String> = present.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let json = serde_json::to_string(rows).context("writing the rows' JSON")?;
    match conn {
        DbConnection::Postgres(c) => {
            sql_query(format!(
                "INSERT INTO {table} ({names}) OVERRIDING SYSTEM VALUE \
                 SELECT {names} FROM json_populate_recordset(NULL::{table}, $1::json)",
                names = names.join(", ")
            ))
            .bind::<Text, _>(&json)
            .execute(c)?;
        }
        DbConnection::Sqlite(c) => {
            let values: Vec<String> = present
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

/// Makes `table` issue ids above `highest` (and above its rows' ids) from now on.
pub fn set_highest_id(conn: &mut DbConnection, table: &str, highest: i64) -> anyhow::Result<()> {
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
