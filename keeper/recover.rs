//! `keeper recover`: rebuilds the catalogue (products, builds, editions) of an organization
//! from the records its bucket holds (`ops::records`), keeping every id, slug, surrogate key,
//! git ref, tracking setting and current build, so every published URL and every API URL a
//! client stored is what it was.
//!
//! It inserts only the rows the database lacks (by id) in one transaction, so running it twice
//! changes nothing; `--dry-run` says what it would create and writes nothing. Users, tokens and
//! operations are not in the bucket.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Context};
use diesel::sql_types::BigInt;
use diesel::{sql_query, QueryableByName, RunQueryDsl};
use futures::TryStreamExt;

use crate::db::migrations::known_migrations;
use crate::db::rows::{set_highest_id, write_rows, Row};
use crate::db::DbConnection;
use crate::domain::{RecordKeys, DEPLOYMENT_KEY, RESERVED_PREFIX};
use crate::ops::records::{Record, FORMAT, VERSION};
use crate::storage::{ObjectHeaders, ObjectStore};

/// The tables recovered, in the order their foreign keys allow.
pub const TABLES: [&str; 3] = ["products", "builds", "editions"];

/// The records found in a bucket, per table, ordered by id.
#[derive(Debug, Default)]
pub struct Found {
    pub rows: BTreeMap<&'static str, Vec<Row>>,
    /// The schema versions the rows were read at.
    pub schema_versions: std::collections::BTreeSet<String>,
}

impl Found {
    pub fn count(&self, table: &str) -> usize {
        self.rows.get(table).map_or(0, Vec::len)
    }

    /// The slugs of the products found.
    pub fn product_slugs(&self) -> Vec<String> {
        self.rows
            .get("products")
            .into_iter()
            .flatten()
            .filter_map(|row| row.get("slug").and_then(|slug| slug.as_str()))
            .map(str::to_owned)
            .collect()
    }
}

/// Reads every catalogue record under the bucket's reserved prefix.
pub async fn read_records(store: &Arc<dyn ObjectStore>) -> anyhow::Result<Found> {
    let prefix = RecordKeys::all_products();
    let mut found = Found::default();
    let mut pages = store.list(prefix.as_str());
    while let Some(page) = pages
        .try_next()
        .await
        .with_context(|| format!("listing {RESERVED_PREFIX}"))?
    {
        for summary in page {
            if !summary.key.ends_with(".json") {
                continue; // manifests
            }
            let body = store
                .get(&summary.key)
                .await
                .with_context(|| format!("reading {:?}", summary.key))?
                .bytes()
                .await
                .with_context(|| format!("reading {:?}", summary.key))?;
            let record: Record = serde_json::from_slice(&body)
                .with_context(|| format!("{:?} is not a catalogue record", summary.key))?;
            if record.format != FORMAT || record.version != VERSION {
                bail!(
                    "{:?} is not a record this keeper reads (format {:?} version {})",
                    summary.key,
                    record.format,
                    record.version
                );
            }
            let Some(table) = TABLES.iter().find(|table| **table == record.table) else {
                bail!("{:?} records the table {:?}", summary.key, record.table);
            };
            found.schema_versions.insert(record.schema_version.clone());
            found
                .rows
                .entry(table)
                .or_default()
                .push(record_row(&summary.key, record)?);
        }
    }
    for rows in found.rows.values_mut() {
        rows.sort_by_key(row_id);
    }
    Ok(found)
}

fn record_row(key: &str, record: Record) -> anyhow::Result<Row> {
    if record
        .row
        .get("id")
        .and_then(serde_json::Value::as_i64)
        .is_none()
    {
        bail!("{key:?} holds a row without an id");
    }
    Ok(record.row)
}

fn row_id(row: &Row) -> i64 {
    row.get("id")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0)
}

/// What a recovery would do, or did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows created per table.
    pub created: BTreeMap<String, usize>,
    /// Rows that the database already had (by id), per table.
    pub present: BTreeMap<String, usize>,
}

impl Summary {
    pub fn created_any(&self) -> bool {
        self.created.values().any(|count| *count > 0)
    }
}

#[derive(QueryableByName)]
struct Present {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Inserts the found rows the database lacks into the organization `organization_id`, in one
/// transaction (none of it with `dry_run`). Ids, slugs and surrogate keys are kept; a recovered
/// edition is not assumed to match its build's manifest (its next rebuild lists its prefix).
pub fn apply(
    conn: &mut DbConnection,
    found: &Found,
    organization_id: i64,
    dry_run: bool,
) -> anyhow::Result<Summary> {
    refuse_newer_records(conn, found)?;
    conn.write_transaction(|conn| -> anyhow::Result<Summary> {
        let mut summary = Summary::default();
        for table in TABLES {
            let rows = found.rows.get(table).map(Vec::as_slice).unwrap_or_default();
            let sql = format!("SELECT id FROM {table}");
            let present: Vec<Present> =
                crate::with_connection!(conn, c => sql_query(&sql).load(c))?;
            let present: std::collections::BTreeSet<i64> =
                present.into_iter().map(|row| row.id).collect();
            let missing: Vec<Row> = rows
                .iter()
                .filter(|row| !present.contains(&row_id(row)))
                .cloned()
                .map(|row| adjusted(table, row, organization_id))
                .collect();
            summary
                .present
                .insert(table.to_owned(), rows.len() - missing.len());
            summary.created.insert(table.to_owned(), missing.len());
            if dry_run || missing.is_empty() {
                continue;
            }
            for row in &missing {
                write_rows(conn, table, std::slice::from_ref(row)).with_context(|| {
                    format!(
                        "recovering the {table} row {} ({})",
                        row_id(row),
                        row.get("slug")
                            .and_then(|slug| slug.as_str())
                            .unwrap_or("?")
                    )
                })?;
            }
            let highest = missing.iter().map(row_id).max().unwrap_or(0);
            set_highest_id(conn, table, highest)
                .with_context(|| format!("setting the ids of {table}"))?;
        }
        Ok(summary)
    })
}

/// A recovered row as it goes in: in the organization recovered into, and (for an edition) not
/// assumed to hold exactly its build's objects.
fn adjusted(table: &str, mut row: Row, organization_id: i64) -> Row {
    match table {
        "products" => {
            row.insert("organization_id".into(), organization_id.into());
        }
        "editions" if row.contains_key("prefix_matches_build") => {
            row.insert("prefix_matches_build".into(), false.into());
        }
        _ => {}
    }
    row
}

/// Records written by a newer keeper than this one are refused: their rows may carry columns
/// this schema lacks. (Older records lack columns added since; those get their defaults.)
fn refuse_newer_records(conn: &mut DbConnection, found: &Found) -> anyhow::Result<()> {
    let known = known_migrations(conn.backend())?;
    if let Some(unknown) = found
        .schema_versions
        .iter()
        .find(|version| !known.iter().any(|migration| &migration.version == *version))
    {
        bail!(
            "the bucket's records were written at schema version {unknown}, which this keeper \
             does not know: recover with the keeper release that wrote them"
        );
    }
    Ok(())
}

/// What a bucket's deployment object holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct DeploymentRecord {
    format: String,
    deployment: String,
}

const DEPLOYMENT_FORMAT: &str = "ltd-keeper-deployment";

/// The identity of the deployment the store belongs to, if it records one.
pub async fn store_deployment(store: &dyn ObjectStore) -> anyhow::Result<Option<String>> {
    let object = match store.get(DEPLOYMENT_KEY).await {
        Ok(object) => object,
        Err(err) if err.is_not_found() => return Ok(None),
        Err(err) => return Err(err).context("reading the store's deployment record"),
    };
    let body = object
        .bytes()
        .await
        .context("reading the store's deployment record")?;
    let record: DeploymentRecord = serde_json::from_slice(&body)
        .with_context(|| format!("{DEPLOYMENT_KEY} in the object store is not keeper's"))?;
    if record.format != DEPLOYMENT_FORMAT {
        bail!("{DEPLOYMENT_KEY} in the object store is not keeper's");
    }
    Ok(Some(record.deployment))
}

/// Records in the store that it belongs to the deployment `id`.
pub async fn record_deployment(store: &dyn ObjectStore, id: &str) -> anyhow::Result<()> {
    let record = DeploymentRecord {
        format: DEPLOYMENT_FORMAT.to_owned(),
        deployment: id.to_owned(),
    };
    let body = serde_json::to_vec_pretty(&record).context("writing the deployment record")?;
    let headers = ObjectHeaders {
        content_type: Some("application/json".to_owned()),
        cache_control: Some("no-store".to_owned()),
        ..ObjectHeaders::default()
    };
    store
        .put(DEPLOYMENT_KEY, bytes::Bytes::from(body), &headers)
        .await
        .context("writing the deployment record into the object store")
}
