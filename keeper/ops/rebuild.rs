//! `rebuild_edition` (DESIGN.md section 5): copy the build over the edition with the edition's
//! surrogate key; only then delete the edition's leftovers; only then purge; then record the
//! edition's new build. Slugs come from the payload (what the request saw), so a rename queued
//! after this rebuild moves what this rebuild wrote.
//!
//! The build is sealed first if it is not yet ([`ensure_sealed`]); the copy is then exactly its
//! manifest, one conditional `CopyObject` per object. An object that changed since the seal
//! fails the operation naming the key, after the edition's previous objects are put back. The
//! leftovers are the previous build's manifest minus the new one when the edition's prefix is
//! known to hold exactly its build (`prefix_matches_build`), else a listing of the prefix.

use anyhow::Context;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use futures::StreamExt;

use crate::db::builds::{find_build, find_build_row};
use crate::db::editions::{find_edition_row, set_prefix_matches_build};
use crate::db::history;
use crate::db::models::{now, Build, Edition, NewHistoryEntry, Operation, Product};
use crate::db::products::find_product_by_id;
use crate::db::schema::editions;
use crate::db::DbConnection;
use crate::domain::{BucketPrefix, BuildSlug, EditionSlug, ProductSlug};
use crate::domain::{HistoryReason, OperationKind};
use crate::ops::copy::{
    changed_since_seal, copy_manifest, delete_missing_from, listed_keys, manifest_keys,
};
use crate::ops::purge::purge_keys;
use crate::ops::records::{self, Subject};
use crate::ops::seal::ensure_sealed;
use crate::ops::webhook::{self, Happened};
use crate::ops::{dashboard, manifest};
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
    /// More surrogate keys to purge after the copy: the keys the edition's objects carried
    /// before it had a key of its own (an edition adopted from LTD Keeper without one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_purge: Vec<String>,
    /// Why: what the edition's history records once the rebuild is OK.
    #[serde(default)]
    pub reason: HistoryReason,
}

/// Records a rebuild of `edition` from `build` for `reason`, superseding the edition's queued
/// rebuilds.
pub fn enqueue(
    conn: &mut DbConnection,
    product: &Product,
    edition: &Edition,
    build: &Build,
    reason: HistoryReason,
) -> QueryResult<Operation> {
    enqueue_purging(conn, product, edition, build, reason, Vec::new())
}

/// [`enqueue`], purging `also_purge` as well as the edition's and the product's keys.
pub fn enqueue_purging(
    conn: &mut DbConnection,
    product: &Product,
    edition: &Edition,
    build: &Build,
    reason: HistoryReason,
    mut also_purge: Vec<String>,
) -> QueryResult<Operation> {
    // The request this one supersedes may have had keys to purge (an adopted edition's old
    // build key): they are still cached, so the newer rebuild purges them.
    for queued in crate::db::operations::ready_rebuild_payloads(conn, edition.id)? {
        let Ok(queued) = serde_json::from_str::<Payload>(&queued) else {
            continue;
        };
        for key in queued.also_purge {
            if !also_purge.contains(&key) {
                also_purge.push(key);
            }
        }
    }
    let payload = Payload {
        product: stored(ProductSlug::parse(&product.slug))?,
        edition: stored(EditionSlug::parse(&edition.slug))?,
        build: stored(BuildSlug::parse(&build.slug))?,
        also_purge,
        reason,
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
    let previous = match edition.build_id {
        Some(shown) if shown != build_id => {
            with_db(&services.pool, move |conn| {
                find_build_row(conn, shown).context("loading the edition's current build")
            })
            .await?
        }
        _ => None,
    };
    let digest = ensure_sealed(services, &payload.product, &build).await?;
    // The build the edition shows now, sealed too: what a failed copy restores, and (when the
    // prefix is known to hold exactly it) what tells the leftovers without a listing.
    let previous = match previous.filter(Build::is_publishable) {
        Some(shown) => {
            let slug = stored_slug(&shown.slug)?;
            let digest = ensure_sealed(services, &payload.product, &shown).await?;
            Some((slug, digest))
        }
        None => None,
    };
    let from = BucketPrefix::build(&payload.product, &payload.build);
    let to = BucketPrefix::edition(&payload.product, &payload.edition);
    let config = &services.config;
    let store = &services.store;
    with_db(&services.pool, move |conn| {
        set_prefix_matches_build(conn, edition_id, false).context("marking the edition as copying")
    })
    .await?;
    let manifest = manifest::open(store, &payload.product, &payload.build, &digest).await?;
    progress.set_total(i64::try_from(manifest.header.objects).unwrap_or(i64::MAX));
    let copied = copy_manifest(
        store,
        manifest.entries,
        &from,
        &to,
        &edition.surrogate_key,
        config.copy_concurrency,
        progress,
    )
    .await;
    if let Err(err) = copied {
        let Some(changed) = changed_since_seal(&err).map(str::to_owned) else {
            return Err(OpError::Transient(err));
        };
        let restored = restore(
            services,
            &payload,
            &digest,
            previous.as_ref(),
            &edition,
            build_id,
        )
        .await;
        return Err(OpError::Permanent(format!(
            "{changed:?} changed or vanished after build {} of {} was sealed: the build is no \
             longer what was confirmed, so it is not published. {restored} Upload a new build; \
             `keeper verify --product {}` lists every difference.",
            payload.build, payload.product, payload.product
        )));
    }
    let present = match &previous {
        Some((slug, digest)) if edition.prefix_matches_build => manifest_keys(
            manifest::open(store, &payload.product, slug, digest)
                .await?
                .entries,
        ),
        _ => listed_keys(store.as_ref(), &to),
    };
    let kept = manifest_keys(
        manifest::open(store, &payload.product, &payload.build, &digest)
            .await?
            .entries,
    );
    let removed = delete_missing_from(store, &to, present, kept, config.copy_concurrency)
        .await
        .with_context(|| format!("removing leftover objects under {to}"))?;
    let mut keys = vec![edition.surrogate_key.clone(), product.surrogate_key.clone()];
    keys.extend(payload.also_purge.iter().cloned());
    purge_keys(services, &keys).await?;
    tracing::info!(
        operation.id = operation.id,
        product.slug = %product.slug,
        edition.id = edition.id,
        build.slug = %build.slug,
        leftovers = removed,
        "edition rebuilt"
    );
    let (operation_id, caused_by) = (operation.id, operation.caused_by.clone());
    let public_base = services.public_base.clone();
    Ok(Outcome {
        message: None,
        effects: Box::new(move |conn| {
            records::enqueue(conn, &product, Subject::Edition(edition_id))?;
            dashboard::enqueue(conn, &product)?;
            let rebuilt = now();
            let shown: Option<i64> = with_connection!(conn, c => editions::table
                .find(edition_id)
                .select(editions::build_id)
                .first(c))?;
            if shown != Some(build_id) {
                history::record(
                    conn,
                    &NewHistoryEntry {
                        product_id: product.id,
                        edition_id,
                        edition_slug: &edition.slug,
                        build_before: shown,
                        build_after: Some(build_id),
                        reason: payload.reason,
                        caused_by: caused_by.as_deref(),
                        operation_id: Some(operation_id),
                        date_created: rebuilt,
                    },
                )?;
            }
            with_connection!(conn, c => diesel::update(editions::table.find(edition_id))
                .set((
                    editions::build_id.eq(Some(build_id)),
                    editions::date_rebuilt.eq(Some(rebuilt)),
                    editions::prefix_matches_build.eq(true),
                ))
                .execute(c))?;
            if shown != Some(build_id) {
                // Readers see the new build now: the copy is done and the CDN purged.
                let happened = Happened::EditionUpdated {
                    product: &product,
                    edition: &edition,
                    build_before: shown,
                    build: build_id,
                    reason: payload.reason,
                    operation_id,
                };
                webhook::notify(conn, &public_base, &happened)?;
            }
            Ok(())
        }),
    })
}

/// After a copy found the new build changed since its seal: puts back what the edition showed
/// (the previous build's manifest, each object on its sealed ETag) and removes what only the
/// new build has. Says what it did, for the operation's message.
async fn restore(
    services: &Services,
    payload: &Payload,
    digest: &str,
    previous: Option<&(BuildSlug, String)>,
    edition: &Edition,
    build_id: i64,
) -> String {
    let store = &services.store;
    let to = BucketPrefix::edition(&payload.product, &payload.edition);
    let concurrency = services.config.copy_concurrency;
    let outcome: anyhow::Result<String> = async {
        let new_keys = manifest_keys(
            manifest::open(store, &payload.product, &payload.build, digest)
                .await?
                .entries,
        );
        let (kept, shown) = match previous {
            Some((slug, previous_digest)) => {
                let from = BucketPrefix::build(&payload.product, slug);
                let shown = manifest::open(store, &payload.product, slug, previous_digest).await?;
                copy_manifest(
                    store,
                    shown.entries,
                    &from,
                    &to,
                    &edition.surrogate_key,
                    concurrency,
                    &std::sync::Arc::new(ProgressCounter::new()),
                )
                .await?;
                let kept = manifest_keys(
                    manifest::open(store, &payload.product, slug, previous_digest)
                        .await?
                        .entries,
                );
                (kept, format!("build {slug}"))
            }
            None if edition.build_id.is_none() => (
                futures::stream::empty().boxed(),
                "nothing (it had no build yet)".to_owned(),
            ),
            // Rebuilt from the build it already showed: the changed objects were not copied,
            // and every other one is what it was.
            None if edition.build_id == Some(build_id) => {
                return Ok(format!(
                    "build {}, whose changed objects were left as they were",
                    payload.build
                ))
            }
            None => anyhow::bail!(
                "the build it showed is deprecated or gone, so its objects cannot be restored"
            ),
        };
        delete_missing_from(store, &to, new_keys, kept, concurrency).await?;
        let edition_id = edition.id;
        with_db(&services.pool, move |conn| {
            Ok(set_prefix_matches_build(conn, edition_id, true)?)
        })
        .await?;
        Ok(shown)
    }
    .await;
    match outcome {
        Ok(shown) => format!("The edition shows {shown}, as before."),
        Err(err) => {
            tracing::error!(edition.id = edition.id, error = %format!("{err:#}"), "restoring an edition failed");
            format!(
                "Restoring the edition's previous objects failed too ({err:#}); point it at \
                 another build."
            )
        }
    }
}

fn stored_slug(raw: &str) -> Result<BuildSlug, OpError> {
    BuildSlug::parse(raw)
        .map_err(|err| OpError::Permanent(format!("a stored build slug is invalid: {err}")))
}
