//! `rebuild_edition` (DESIGN.md section 5): copy the build over the edition with the edition's
//! surrogate key; only then delete the edition's leftovers; only then purge; then record the
//! edition's new build. Slugs come from the payload (what the request saw), so a rename queued
//! after this rebuild moves what this rebuild wrote.

use anyhow::Context;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::db::builds::find_build;
use crate::db::editions::find_edition_row;
use crate::db::models::{now, Build, Edition, Operation, Product};
use crate::db::products::find_product_by_id;
use crate::db::schema::editions;
use crate::db::DbConnection;
use crate::domain::OperationKind;
use crate::domain::{BucketPrefix, BuildSlug, EditionSlug, ProductSlug};
use crate::ops::copy::{mirror, remove_leftovers, LEFTOVER_LIMIT};
use crate::ops::purge::purge_keys;
use crate::ops::{
    enqueue_kind, read_payload, stored, with_db, OpError, Outcome, ProgressCounter, Services,
    Targets,
};
use crate::with_connection;

/// What a rebuild copies from where to where: the slugs the request saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub product: ProductSlug,
    pub edition: EditionSlug,
    pub build: BuildSlug,
}

/// Records a rebuild of `edition` from `build`, superseding the edition's queued rebuilds.
pub fn enqueue(
    conn: &mut DbConnection,
    product: &Product,
    edition: &Edition,
    build: &Build,
) -> QueryResult<Operation> {
    let payload = Payload {
        product: stored(ProductSlug::parse(&product.slug))?,
        edition: stored(EditionSlug::parse(&edition.slug))?,
        build: stored(BuildSlug::parse(&build.slug))?,
    };
    let targets = Targets {
        product: Some(product.id),
        edition: Some(edition.id),
        build: Some(build.id),
    };
    enqueue_kind(conn, OperationKind::RebuildEdition, targets, &payload)
}

pub async fn run(
    services: &Services,
    operation: &Operation,
    progress: &std::sync::Arc<ProgressCounter>,
) -> Result<Outcome, OpError> {
    let payload: Payload = read_payload(operation)?;
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
    let from = BucketPrefix::build(&payload.product, &payload.build);
    let to = BucketPrefix::edition(&payload.product, &payload.edition);
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
