//! `dashboard`: renders a product's editions and builds pages and its version lists
//! ([`crate::pages`]) into its prefix ([`DashboardFile`]), then purges the product's surrogate
//! key, which those objects carry.
//!
//! Queued in the transaction of every change that alters what they show (a product created or
//! retitled, a build confirmed or deprecated, an edition created, changed, rebuilt, renamed or
//! deleted). Requests coalesce: while one is queued (READY) a new request adds nothing, since
//! the render reads the rows when it runs, so it shows the newest state; a product's renders
//! run one at a time in id order (the queue's claim rule), so an older read never lands after a
//! newer one. Ten changes while a render is working thus cost at most two renders. A render
//! that FAILED is SUPERSEDED by the next request, which shows all it would have.

use std::collections::HashMap;

use anyhow::Context;
use bytes::Bytes;
use diesel::QueryResult;
use serde::{Deserialize, Serialize};

use crate::db::builds::{find_builds, newest_confirmed_builds};
use crate::db::editions::list_editions;
use crate::db::models::{now, Build, Edition, Operation, Organization, Product};
use crate::db::operations::{find_ready_for_product, supersede_failed_for_product};
use crate::db::organizations::find_organization;
use crate::db::products::find_product_by_id;
use crate::db::DbConnection;
use crate::domain::{
    product_url, published_edition_url, DashboardFile, EditionKind, EditionSlug, OperationKind,
    ProductSlug, PublishingLayout,
};
use crate::ops::purge::purge_keys;
use crate::ops::{
    enqueue_kind, read_payload, stored, with_db, OpError, Outcome, Services, Targets,
};
use crate::pages::dashboard::{
    builds_page, editions_page, ordered, BuildView, EditionView, ProductView, MAX_LISTED_BUILDS,
};
use crate::pages::versions::{mike_versions, switcher};
use crate::storage::ObjectHeaders;

/// Browsers keep a dashboard this long; the CDN until the render's purge.
const CACHE_CONTROL: &str = "max-age=60";

/// Which product to render (the slug is for the logs; the row is read by id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub product: ProductSlug,
}

/// Asks for `product`'s dashboards to be rendered again, in the change's transaction; nothing
/// is added while a render is already queued. Returns the queued render. Renders that FAILED
/// are SUPERSEDED by it: it shows everything they would have.
pub fn enqueue(conn: &mut DbConnection, product: &Product) -> QueryResult<Operation> {
    supersede_failed_for_product(
        conn,
        OperationKind::Dashboard,
        product.id,
        "Superseded by a newer render of the product's dashboards.",
    )?;
    if let Some(queued) = find_ready_for_product(conn, OperationKind::Dashboard, product.id)? {
        return Ok(queued);
    }
    let payload = Payload {
        product: stored(ProductSlug::parse(&product.slug))?,
    };
    let targets = Targets {
        product: Some(product.id),
        ..Targets::default()
    };
    enqueue_kind(conn, OperationKind::Dashboard, targets, &payload)
}

/// The rows a render reads, in one go.
struct Snapshot {
    organization: Organization,
    product: Product,
    editions: Vec<Edition>,
    /// The newest confirmed builds and the builds editions show, by id.
    builds: HashMap<i64, Build>,
    newest: Vec<i64>,
    total_builds: i64,
}

fn read_snapshot(conn: &mut DbConnection, product_id: i64) -> QueryResult<Snapshot> {
    conn.snapshot_transaction(|conn| {
        let product = find_product_by_id(conn, product_id)?;
        let organization = find_organization(conn, product.organization_id)?;
        let editions = list_editions(conn, product_id)?;
        let (newest, total_builds) =
            newest_confirmed_builds(conn, product_id, MAX_LISTED_BUILDS as i64)?;
        let newest_ids: Vec<i64> = newest.iter().map(|build| build.id).collect();
        let mut builds: HashMap<i64, Build> =
            newest.into_iter().map(|build| (build.id, build)).collect();
        let shown: Vec<i64> = editions
            .iter()
            .filter_map(|edition| edition.build_id)
            .filter(|id| !builds.contains_key(id))
            .collect();
        builds.extend(find_builds(conn, &shown)?.into_iter().map(|b| (b.id, b)));
        Ok(Snapshot {
            organization,
            product,
            editions,
            builds,
            newest: newest_ids,
            total_builds,
        })
    })
}

fn build_view(build: &Build) -> BuildView {
    BuildView {
        slug: build.slug.clone(),
        git_refs: build.git_ref_list(),
        github_requester: build.github_requester.clone(),
        date_created: build.date_created,
        deprecated: build.date_ended.is_some(),
    }
}

/// The rendered files, each with its bytes.
fn render(
    snapshot: &Snapshot,
    public_base: &str,
) -> Result<Vec<(DashboardFile, Vec<u8>)>, OpError> {
    let organization = &snapshot.organization;
    let layout = PublishingLayout::of_organization(
        organization.layout,
        organization.root_domain.as_deref(),
        &organization.path_prefix,
        public_base,
    );
    let slug = ProductSlug::parse(&snapshot.product.slug)
        .map_err(|err| OpError::Permanent(format!("the product's slug is unusable: {err}")))?;
    let product = ProductView {
        slug: snapshot.product.slug.clone(),
        title: snapshot.product.title.clone(),
        url: product_url(&layout, &slug),
        doc_repo: snapshot.product.doc_repo.clone(),
        published: snapshot
            .editions
            .iter()
            .any(|edition| edition.kind == EditionKind::Main && edition.build_id.is_some()),
    };
    let mut editions = Vec::with_capacity(snapshot.editions.len());
    for edition in &snapshot.editions {
        let edition_slug = EditionSlug::parse(&edition.slug).map_err(|err| {
            OpError::Permanent(format!(
                "edition {} has an unusable slug: {err}",
                edition.id
            ))
        })?;
        editions.push(EditionView {
            slug: edition.slug.clone(),
            title: edition.title.clone(),
            url: published_edition_url(&layout, &slug, &edition_slug, edition.kind),
            kind: edition.kind,
            mode: edition.tracking_mode,
            tracked_refs: edition.tracked_ref_list().unwrap_or_default(),
            build: edition
                .build_id
                .and_then(|id| snapshot.builds.get(&id))
                .map(build_view),
            date_created: edition.date_created,
            date_rebuilt: edition.date_rebuilt,
        });
    }
    let editions = ordered(editions);
    let builds: Vec<BuildView> = snapshot
        .newest
        .iter()
        .filter_map(|id| snapshot.builds.get(id))
        .map(build_view)
        .collect();
    let rendered_at = now();
    let json = |value: serde_json::Value| {
        serde_json::to_vec_pretty(&value).context("writing a version list")
    };
    Ok(vec![
        (
            DashboardFile::Editions,
            editions_page(&product, &editions, rendered_at).into_bytes(),
        ),
        (
            DashboardFile::Builds,
            builds_page(
                &product,
                &builds,
                usize::try_from(snapshot.total_builds).unwrap_or(usize::MAX),
                rendered_at,
            )
            .into_bytes(),
        ),
        (
            DashboardFile::Switcher,
            json(serde_json::to_value(switcher(&editions)).context("switcher.json")?)?,
        ),
        (
            DashboardFile::MikeVersions,
            json(serde_json::to_value(mike_versions(&editions)).context("versions.json")?)?,
        ),
    ])
}

pub async fn run(services: &Services, operation: &Operation) -> Result<Outcome, OpError> {
    let payload: Payload = read_payload(operation)?;
    let Some(product_id) = operation.product_id else {
        return Ok(Outcome::with_message(Some(
            "The product no longer exists; nothing to render.".into(),
        )));
    };
    let snapshot = with_db(&services.pool, move |conn| {
        read_snapshot(conn, product_id).context("reading the product's editions and builds")
    })
    .await?;
    let files = render(&snapshot, &services.public_base)?;
    let headers_of = |file: DashboardFile| ObjectHeaders {
        content_type: Some(file.content_type().to_owned()),
        cache_control: Some(CACHE_CONTROL.to_owned()),
        metadata: [(
            "surrogate-key".to_owned(),
            snapshot.product.surrogate_key.clone(),
        )]
        .into_iter()
        .collect(),
        ..ObjectHeaders::default()
    };
    for (file, body) in files {
        let key = file.key(&payload.product);
        services
            .store
            .put(&key, Bytes::from(body), &headers_of(file))
            .await
            .with_context(|| format!("writing {key}"))?;
    }
    purge_keys(
        services,
        std::slice::from_ref(&snapshot.product.surrogate_key),
    )
    .await?;
    tracing::info!(
        operation.id = operation.id,
        product.slug = %payload.product,
        editions = snapshot.editions.len(),
        builds = snapshot.total_builds,
        "dashboards rendered"
    );
    Ok(Outcome::done())
}
