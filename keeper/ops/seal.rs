//! `seal_build`: writes a confirmed build's manifest ([`crate::ops::manifest`]) and records its
//! digest. Queued in the transaction that confirms the build; a rebuild from a build that is not
//! sealed yet seals it first ([`ensure_sealed`]), so the two never wait for each other and a
//! build is sealed once, whichever comes first.

use anyhow::Context;
use diesel::QueryResult;
use serde::{Deserialize, Serialize};

use crate::db::builds::{find_build, seal_build};
use crate::db::models::{Build, Operation, Product};
use crate::db::DbConnection;
use crate::domain::{BuildSlug, OperationKind, ProductSlug};
use crate::ops::manifest;
use crate::ops::{
    enqueue_kind, read_payload, stored, with_db, OpError, Outcome, Services, Targets,
};

/// The build to seal: the slugs the confirmation saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub product: ProductSlug,
    pub build: BuildSlug,
}

/// Records the sealing of `build` (just confirmed).
pub fn enqueue(
    conn: &mut DbConnection,
    product: &Product,
    build: &Build,
) -> QueryResult<Operation> {
    let payload = Payload {
        product: stored(ProductSlug::parse(&product.slug))?,
        build: stored(BuildSlug::parse(&build.slug))?,
    };
    let targets = Targets {
        product: Some(product.id),
        build: Some(build.id),
        ..Targets::default()
    };
    enqueue_kind(conn, OperationKind::SealBuild, targets, &payload)
}

pub async fn run(services: &Services, operation: &Operation) -> Result<Outcome, OpError> {
    let payload: Payload = read_payload(operation)?;
    let Some(build_id) = operation.build_id else {
        return Ok(Outcome::with_message(Some(
            "The build no longer exists; nothing to seal.".into(),
        )));
    };
    let build = with_db(&services.pool, move |conn| {
        find_build(conn, build_id).context("loading the build")
    })
    .await?;
    if !build.is_publishable() {
        return Ok(Outcome::with_message(Some(format!(
            "Build {} is {}; nothing to seal.",
            build.slug,
            if build.uploaded {
                "deprecated"
            } else {
                "not uploaded"
            }
        ))));
    }
    let digest = ensure_sealed(services, &payload.product, &build).await?;
    Ok(Outcome::with_message(Some(format!(
        "Sealed with manifest {digest}."
    ))))
}

/// The digest `build` is sealed with, sealing it now if it is not yet.
pub async fn ensure_sealed(
    services: &Services,
    product: &ProductSlug,
    build: &Build,
) -> Result<String, OpError> {
    if let Some(digest) = &build.manifest_digest {
        return Ok(digest.clone());
    }
    let slug = BuildSlug::parse(&build.slug)
        .map_err(|err| OpError::Permanent(format!("the build's stored slug is invalid: {err}")))?;
    let sealed = manifest::seal(
        &services.store,
        product,
        &slug,
        services.config.copy_concurrency,
    )
    .await
    .with_context(|| format!("sealing build {slug} of {product}"))?;
    let build_id = build.id;
    let digest = sealed.digest.clone();
    let recorded = with_db(&services.pool, move |conn| {
        seal_build(conn, build_id, &digest).context("recording the manifest's digest")
    })
    .await?;
    tracing::info!(
        product.slug = %product,
        build.slug = %slug,
        objects = sealed.objects,
        manifest = %recorded,
        "build sealed"
    );
    Ok(recorded)
}
