//! `rename_edition`: copy the old prefix to the new one, purge, delete the old prefix, purge.
//! Re-running after a crash converges: the copy is repeated from whatever is left under the old
//! prefix (nothing once it was deleted), and deleting a missing object is not an error.

use anyhow::Context;
use serde::Deserialize;

use crate::db::editions::find_edition_row;
use crate::db::models::Operation;
use crate::db::products::find_product_by_id;
use crate::domain::{BucketPrefix, EditionSlug, ProductSlug};
use crate::ops::copy::{delete_prefix, mirror, remove_leftovers, LEFTOVER_LIMIT};
use crate::ops::purge::purge_keys;
use crate::ops::{with_db, OpError, Outcome, ProgressCounter, Services};

#[derive(Debug, Deserialize)]
struct Payload {
    product: String,
    from: String,
    to: String,
}

pub async fn run(
    services: &Services,
    operation: &Operation,
    progress: &std::sync::Arc<ProgressCounter>,
) -> Result<Outcome, OpError> {
    let payload: Payload = serde_json::from_str(&operation.payload)
        .map_err(|err| OpError::Permanent(format!("unreadable rename payload: {err}")))?;
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
    let invalid = |err: crate::domain::DomainError| OpError::Permanent(err.to_string());
    let product_slug = ProductSlug::parse(&payload.product).map_err(invalid)?;
    let from = BucketPrefix::edition(
        &product_slug,
        &EditionSlug::parse(&payload.from).map_err(invalid)?,
    );
    let to = BucketPrefix::edition(
        &product_slug,
        &EditionSlug::parse(&payload.to).map_err(invalid)?,
    );
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
    Ok(Outcome::done())
}
