//! `write_record`: the bucket's catalogue records (DESIGN.md section 6), the second system of
//! record. Every change of a product, build or edition queues one, in the change's own
//! transaction; when it runs it reads the row as it is *then* and writes it (or removes the
//! record, once the row is gone or the edition deleted), so records converge on the database
//! whatever order changes came in. A product's records are written one at a time, oldest
//! request first (the queue's claim rule), so a slow worker never writes an older row over a
//! newer one. `keeper recover` reads them back into an empty database.
//!
//! A record is the row in the backend-independent form of `keeper db backup` ([`Row`]), with
//! the schema version it was read at:
//!
//! ```text
//! __keeper/products/<product>/product.json
//! __keeper/products/<product>/builds/<build id>.json
//! __keeper/products/<product>/editions/<edition id>.json
//! ```

use anyhow::Context;
use bytes::Bytes;
use diesel::QueryResult;
use serde::{Deserialize, Serialize};

use crate::db::migrations;
use crate::db::models::{Operation, Product};
use crate::db::rows::{read_row, Row};
use crate::db::DbConnection;
use crate::domain::{OperationKind, ProductSlug, RecordKeys};
use crate::ops::{
    enqueue_kind, read_payload, stored, with_db, OpError, Outcome, Services, Targets,
};
use crate::storage::ObjectHeaders;

/// The `format` of every record.
pub const FORMAT: &str = "ltd-keeper-record";
/// This layout of the file.
pub const VERSION: u32 = 1;

/// What a record is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Product,
    Build(i64),
    Edition(i64),
}

impl Subject {
    /// The table its row is in.
    pub fn table(self) -> &'static str {
        match self {
            Self::Product => "products",
            Self::Build(_) => "builds",
            Self::Edition(_) => "editions",
        }
    }

    fn row_id(self, product_id: i64) -> i64 {
        match self {
            Self::Product => product_id,
            Self::Build(id) | Self::Edition(id) => id,
        }
    }

    /// Whether its row belongs in the catalogue: a deleted edition keeps its row until its
    /// objects are gone, but is no longer published (a deprecated build stays, as in the API).
    fn is_recorded(self, row: &Row) -> bool {
        match self {
            Self::Edition(_) => row.get("date_ended").is_none_or(serde_json::Value::is_null),
            Self::Product | Self::Build(_) => true,
        }
    }

    /// Where its record lives.
    pub fn key(self, product: &ProductSlug) -> String {
        let keys = RecordKeys::of(product);
        match self {
            Self::Product => keys.product(),
            Self::Build(id) => keys.build(id),
            Self::Edition(id) => keys.edition(id),
        }
    }
}

/// The record to write: of which product, and what in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub product: ProductSlug,
    pub subject: Subject,
}

/// One record file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub format: String,
    pub version: u32,
    /// The migration the row was read at.
    pub schema_version: String,
    pub table: String,
    pub row: Row,
}

/// Records that `subject` of `product` changed, in the change's transaction.
pub fn enqueue(conn: &mut DbConnection, product: &Product, subject: Subject) -> QueryResult<()> {
    let payload = Payload {
        product: stored(ProductSlug::parse(&product.slug))?,
        subject,
    };
    let targets = Targets {
        product: Some(product.id),
        ..Targets::default()
    };
    enqueue_kind(conn, OperationKind::WriteRecord, targets, &payload).map(drop)
}

pub async fn run(services: &Services, operation: &Operation) -> Result<Outcome, OpError> {
    let payload: Payload = read_payload(operation)?;
    let key = payload.subject.key(&payload.product);
    let Some(product_id) = operation.product_id else {
        return Ok(Outcome::with_message(Some(
            "The product no longer exists; its records stay.".into(),
        )));
    };
    let subject = payload.subject;
    let record = with_db(&services.pool, move |conn| {
        let status = migrations::status(conn)?;
        let schema_version = status
            .database_version()
            .context("the database has no keeper schema")?
            .to_owned();
        let row = read_row(conn, subject.table(), subject.row_id(product_id))
            .with_context(|| format!("reading the {} row", subject.table()))?;
        Ok(row
            .filter(|row| subject.is_recorded(row))
            .map(|row| Record {
                format: FORMAT.to_owned(),
                version: VERSION,
                schema_version,
                table: subject.table().to_owned(),
                row,
            }))
    })
    .await?;
    match record {
        Some(record) => {
            let body = serde_json::to_vec_pretty(&record).context("writing the record")?;
            let headers = ObjectHeaders {
                content_type: Some("application/json".to_owned()),
                cache_control: Some("no-store".to_owned()),
                ..ObjectHeaders::default()
            };
            services
                .store
                .put(&key, Bytes::from(body), &headers)
                .await
                .with_context(|| format!("writing the record {key:?}"))?;
        }
        None => {
            let report = services
                .store
                .delete(std::slice::from_ref(&key))
                .await
                .with_context(|| format!("removing the record {key:?}"))?;
            if let Some(failure) = report.failed.first() {
                return Err(OpError::Transient(anyhow::anyhow!(
                    "removing the record {key:?}: {} {}",
                    failure.code,
                    failure.message
                )));
            }
        }
    }
    Ok(Outcome::done())
}
