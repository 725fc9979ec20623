//! `delete_edition` and `delete_build`: delete the prefix for real, then purge. A deleted
//! edition's row stays, ended, until a new edition takes its slug.

use anyhow::Context;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::db::builds::find_build;
use crate::db::editions::find_edition_row;
use crate::db::models::{Build, Edition, Operation, Product};
use crate::db::products::find_product_by_id;
use crate::db::DbConnection;
use crate::domain::{BucketPrefix, BuildSlug, EditionSlug, OperationKind, ProductSlug};
use crate::ops::copy::delete_prefix;
use crate::ops::purge::purge_keys;
use crate::ops::{
    enqueue_kind, read_payload, stored, with_db, OpError, Outcome, Services, Targets,
};

/// Which edition prefix goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditionPayload {
    pub product: ProductSlug,
    pub edition: EditionSlug,
}

/// Which build prefix goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildPayload {
    pub product: ProductSlug,
    pub build: BuildSlug,
}

/// Records deleting `edition`'s objects (and then its row, already marked ended).
pub fn enqueue_edition(
    conn: &mut DbConnection,
    product: &Product,
    edition: &Edition,
) -> QueryResult<Operation> {
    let payload = EditionPayload {
        product: stored(ProductSlug::parse(&product.slug))?,
        edition: stored(EditionSlug::parse(&edition.slug))?,
    };
    let targets = Targets {
        product: Some(product.id),
        edition: Some(edition.id),
        build: None,
    };
    enqueue_kind(conn, OperationKind::DeleteEdition, targets, &payload)
}

/// Records deleting deprecated `build`'s objects.
pub fn enqueue_build(
    conn: &mut DbConnection,
    product: &Product,
    build: &Build,
) -> QueryResult<Operation> {
    let payload = BuildPayload {
        product: stored(ProductSlug::parse(&product.slug))?,
        build: stored(BuildSlug::parse(&build.slug))?,
    };
    let targets = Targets {
        product: Some(product.id),
        edition: None,
        build: Some(build.id),
    };
    enqueue_kind(conn, OperationKind::DeleteBuild, targets, &payload)
}

pub async fn edition(services: &Services, operation: &Operation) -> Result<Outcome, OpError> {
    let payload: EditionPayload = read_payload(operation)?;
    let edition_id = operation.edition_id;
    let keys = with_db(&services.pool, move |conn| {
        let Some(id) = edition_id else {
            return Ok(Vec::new());
        };
        let Some(edition) = find_edition_row(conn, id).context("loading the edition")? else {
            return Ok(Vec::new());
        };
        let product =
            find_product_by_id(conn, edition.product_id).context("loading the product")?;
        Ok(vec![edition.surrogate_key, product.surrogate_key])
    })
    .await?;
    let prefix = BucketPrefix::edition(&payload.product, &payload.edition);
    let deleted = delete_prefix(&services.store, &prefix, services.config.copy_concurrency).await?;
    purge_keys(services, &keys).await?;
    tracing::info!(operation.id = operation.id, prefix = %prefix, deleted, "edition deleted");
    // The row stays, ended: `GET /editions/<id>` answers it with `date_ended`, as the
    // original did, until a new edition takes the slug (`release_ended_slug`).
    Ok(Outcome {
        message: None,
        effects: Box::new(|_| Ok(())),
    })
}

pub async fn build(services: &Services, operation: &Operation) -> Result<Outcome, OpError> {
    let payload: BuildPayload = read_payload(operation)?;
    let build_id = operation.build_id;
    let keys = with_db(&services.pool, move |conn| {
        let Some(id) = build_id else {
            return Ok(Vec::new());
        };
        let build = find_build(conn, id).context("loading the build")?;
        let product = find_product_by_id(conn, build.product_id).context("loading the product")?;
        Ok(vec![build.surrogate_key, product.surrogate_key])
    })
    .await?;
    let prefix = BucketPrefix::build(&payload.product, &payload.build);
    let deleted = delete_prefix(&services.store, &prefix, services.config.copy_concurrency).await?;
    purge_keys(services, &keys).await?;
    tracing::info!(operation.id = operation.id, prefix = %prefix, deleted, "build deleted");
    Ok(Outcome::done())
}
