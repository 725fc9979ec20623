//! `delete_edition` and `delete_build`: delete the prefix for real, then purge; a deleted
//! edition's row goes last, in the same transaction as the OK state.

use anyhow::Context;
use diesel::prelude::*;
use serde::Deserialize;

use crate::db::builds::find_build;
use crate::db::editions::find_edition_row;
use crate::db::models::Operation;
use crate::db::products::find_product_by_id;
use crate::db::schema::editions;
use crate::domain::{BucketPrefix, BuildSlug, EditionSlug, ProductSlug};
use crate::ops::copy::delete_prefix;
use crate::ops::purge::purge_keys;
use crate::ops::{with_db, OpError, Outcome, Services};
use crate::with_connection;

#[derive(Debug, Deserialize)]
struct EditionPayload {
    product: String,
    edition: String,
}

#[derive(Debug, Deserialize)]
struct BuildPayload {
    product: String,
    build: String,
}

fn invalid(err: crate::domain::DomainError) -> OpError {
    OpError::Permanent(err.to_string())
}

pub async fn edition(services: &Services, operation: &Operation) -> Result<Outcome, OpError> {
    let payload: EditionPayload = serde_json::from_str(&operation.payload)
        .map_err(|err| OpError::Permanent(format!("unreadable delete payload: {err}")))?;
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
    let product = ProductSlug::parse(&payload.product).map_err(invalid)?;
    let prefix = BucketPrefix::edition(
        &product,
        &EditionSlug::parse(&payload.edition).map_err(invalid)?,
    );
    let deleted = delete_prefix(&services.store, &prefix, services.config.copy_concurrency).await?;
    purge_keys(services, &keys).await?;
    tracing::info!(operation.id = operation.id, prefix = %prefix, deleted, "edition deleted");
    Ok(Outcome {
        message: None,
        effects: Box::new(move |conn| {
            if let Some(id) = edition_id {
                with_connection!(conn, c => diesel::delete(
                    editions::table.find(id).filter(editions::date_ended.is_not_null()),
                )
                .execute(c))?;
            }
            Ok(())
        }),
    })
}

pub async fn build(services: &Services, operation: &Operation) -> Result<Outcome, OpError> {
    let payload: BuildPayload = serde_json::from_str(&operation.payload)
        .map_err(|err| OpError::Permanent(format!("unreadable delete payload: {err}")))?;
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
    let product = ProductSlug::parse(&payload.product).map_err(invalid)?;
    let prefix = BucketPrefix::build(
        &product,
        &BuildSlug::parse(&payload.build).map_err(invalid)?,
    );
    let deleted = delete_prefix(&services.store, &prefix, services.config.copy_concurrency).await?;
    purge_keys(services, &keys).await?;
    tracing::info!(operation.id = operation.id, prefix = %prefix, deleted, "build deleted");
    Ok(Outcome::done())
}
