//! `rename_edition`: copy the old prefix to the new one, purge, delete the old prefix, purge.
//! Re-running after a crash converges: the copy is repeated from whatever is left under the old
//! prefix (nothing once it was deleted), and deleting a missing object is not an error.

use anyhow::Context;
use diesel::QueryResult;
use serde::{Deserialize, Serialize};

use crate::db::editions::find_edition_row;
use crate::db::models::{Edition, Operation, Product};
use crate::db::products::find_product_by_id;
use crate::db::DbConnection;
use crate::domain::{BucketPrefix, EditionSlug, OperationKind, ProductSlug};
use crate::ops::copy::{delete_prefix, mirror, remove_leftovers, LEFTOVER_LIMIT};
use crate::ops::dashboard;
use crate::ops::purge::purge_keys;
use crate::ops::{
    enqueue_kind, read_payload, stored, with_db, OpError, Outcome, ProgressCounter, Services,
    Targets,
};

/// Which prefix moves where: the slugs the request saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub product: ProductSlug,
    pub from: EditionSlug,
    pub to: EditionSlug,
}

/// Records moving `edition`'s objects from its current slug's prefix to `to`'s.
pub fn enqueue(
    conn: &mut DbConnection,
    product: &Product,
    edition: &Edition,
    to: &EditionSlug,
) -> QueryResult<Operation> {
    let payload = Payload {
        product: stored(ProductSlug::parse(&product.slug))?,
        from: stored(EditionSlug::parse(&edition.slug))?,
        to: to.clone(),
    };
    let targets = Targets {
        product: Some(product.id),
        edition: Some(edition.id),
        build: None,
    };
    enqueue_kind(conn, OperationKind::RenameEdition, targets, &payload)
}

pub async fn run(
    services: &Services,
    operation: &Operation,
    progress: &std::sync::Arc<ProgressCounter>,
) -> Result<Outcome, OpError> {
    let payload: Payload = read_payload(operation)?;
    let Some(edition_id) = operation.edition_id else {
        return Ok(Outcome::with_message(Some(
            "The edition no longer exists; nothing to rename.".into(),
        )));
    };
    let loaded = with_db(&services.pool, move |conn| {
        let Some(edition) = find_edition_row(conn, edition_id).context("loading the edition")?
        else {
            return Ok(None);
        };
        let product =
            find_product_by_id(conn, edition.product_id).context("loading the product")?;
        Ok(Some((edition, product)))
    })
    .await?;
    let Some((edition, product)) = loaded else {
        return Ok(Outcome::with_message(Some(
            "The edition no longer exists; nothing to rename.".into(),
        )));
    };
    let from = BucketPrefix::edition(&payload.product, &payload.from);
    let to = BucketPrefix::edition(&payload.product, &payload.to);
    if from == to {
        return Ok(Outcome::done());
    }
    let store = &services.store;
    let concurrency = services.config.copy_concurrency;
    let keys = [edition.surrogate_key.clone(), product.surrogate_key.clone()];
    let leftovers = mirror(
        store,
        &from,
        &to,
        &edition.surrogate_key,
        concurrency,
        LEFTOVER_LIMIT,
        progress,
    )
    .await?;
    remove_leftovers(store, &from, &to, leftovers, concurrency)
        .await
        .with_context(|| format!("removing leftovers under {to}"))?;
    purge_keys(services, &keys).await?;
    delete_prefix(store, &from, concurrency).await?;
    purge_keys(services, &keys).await?;
    tracing::info!(operation.id = operation.id, edition.id = edition.id, from = %from, to = %to, "edition renamed");
    // The dashboards link the new slug from the request on; render them again now that its
    // objects are there.
    Ok(Outcome {
        message: None,
        effects: Box::new(move |conn| dashboard::enqueue(conn, &product).map(drop)),
    })
}
