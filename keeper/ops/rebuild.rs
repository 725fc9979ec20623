//! `rebuild_edition` (DESIGN.md section 5): copy the build over the edition with the edition's
//! surrogate key; only then delete the edition's leftovers; only then purge; then record the
//! edition's new build. Slugs come from the payload (what the request saw), so a rename queued
//! after this rebuild moves what this rebuild wrote.

use anyhow::Context;
use diesel::prelude::*;
use serde::Deserialize;

use crate::db::builds::find_build;
use crate::db::editions::find_edition_row;
use crate::db::models::{now, Operation};
use crate::db::products::find_product_by_id;
use crate::db::schema::editions;
use crate::domain::{BucketPrefix, BuildSlug, EditionSlug, ProductSlug};
use crate::ops::copy::{mirror, remove_leftovers, LEFTOVER_LIMIT};
use crate::ops::purge::purge_keys;
use crate::ops::{with_db, OpError, Outcome, ProgressCounter, Services};
use crate::with_connection;

#[derive(Debug, Deserialize)]
struct Payload {
    product: String,
    edition: String,
    build: String,
}

pub async fn run(
    services: &Services,
    operation: &Operation,
    progress: &std::sync::Arc<ProgressCounter>,
) -> Result<Outcome, OpError> {
    let payload: Payload = serde_json::from_str(&operation.payload)
        .map_err(|err| OpError::Permanent(format!("unreadable rebuild payload: {err}")))?;
    let (edition_id, build_id) = match (operation.edition_id, operation.build_id) {
        (Some(edition), Some(build)) => (edition, build),
        (None, _) => {
            return Ok(Outcome::with_message(Some(
                "The edition no longer exists; nothing to rebuild.".into(),
            )))
        }
        (_, None) => {
            return Err(OpError::Permanent(format!(
                "Build {} of {} no longer exists; point the edition at another build.",
                payload.build, payload.product
            )))
        }
    };
    let loaded = with_db(&services.pool, move |conn| {
        let Some(edition) = find_edition_row(conn, edition_id).context("loading the edition")?
        else {
            return Ok(None);
        };
        let build = find_build(conn, build_id).context("loading the build")?;
        let product =
            find_product_by_id(conn, edition.product_id).context("loading the product")?;
        Ok(Some((product, edition, build)))
    })
    .await?;
    let Some((product, edition, build)) = loaded else {
        return Ok(Outcome::with_message(Some(
            "The edition no longer exists; nothing to rebuild.".into(),
        )));
    };
    if edition.date_ended.is_some() {
        return Ok(Outcome::with_message(Some(
            "The edition was deleted; nothing to rebuild.".into(),
        )));
    }
    if !build.is_publishable() {
        return Err(OpError::Permanent(format!(
            "Build {} of {} is {}; an edition only shows an uploaded, non-deprecated build. \
             Point the edition at another build.",
            build.slug,
            product.slug,
            if build.uploaded {
                "deprecated"
            } else {
                "not uploaded"
            }
        )));
    }
    let invalid = |err: crate::domain::DomainError| OpError::Permanent(err.to_string());
    let product_slug = ProductSlug::parse(&payload.product).map_err(invalid)?;
    let from = BucketPrefix::build(
        &product_slug,
        &BuildSlug::parse(&payload.build).map_err(invalid)?,
    );
    let to = BucketPrefix::edition(
        &product_slug,
        &EditionSlug::parse(&payload.edition).map_err(invalid)?,
    );
    let config = &services.config;
    let store = &services.store;
    let leftovers = mirror(
        store,
        &from,
        &to,
        &edition.surrogate_key,
        config.copy_concurrency,
        LEFTOVER_LIMIT,
        progress,
    )
    .await?;
    let removed = remove_leftovers(store, &from, &to, leftovers, config.copy_concurrency)
        .await
        .with_context(|| format!("removing leftover objects under {to}"))?;
    purge_keys(
        services,
        &[edition.surrogate_key.clone(), product.surrogate_key.clone()],
    )
    .await?;
    tracing::info!(
        operation.id = operation.id,
        product.slug = %product.slug,
        edition.id = edition.id,
        build.slug = %build.slug,
        leftovers = removed,
        "edition rebuilt"
    );
    Ok(Outcome {
        message: None,
        effects: Box::new(move |conn| {
            let rebuilt = now();
            with_connection!(conn, c => diesel::update(editions::table.find(edition_id))
                .set((
                    editions::build_id.eq(Some(build_id)),
                    editions::date_rebuilt.eq(Some(rebuilt)),
                ))
                .execute(c))?;
            Ok(())
        }),
    })
}
