//! Where things are published and how they look on the wire: the organization's layout turned
//! into URLs, and rows turned into the original's JSON shapes.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use utoipa::ToSchema;

use crate::api::app::AppState;
use crate::api::json::{format_datetime, format_optional_datetime};
use crate::db::models::{Build, Edition, Organization, Product};
use crate::domain::{
    build_url, product_url, published_edition_url, BucketPrefix, BuildSlug, EditionSlug,
    ProductSlug, PublishingLayout,
};
use crate::error::{ApiError, ApiResult};
use crate::storage::presign::PresignedPost;

/// The layout of an organization (see [`PublishingLayout::of_organization`]).
pub fn layout_of(state: &AppState, organization: &Organization) -> PublishingLayout {
    PublishingLayout::of_organization(
        organization.layout,
        organization.root_domain.as_deref(),
        &organization.path_prefix,
        state.public_base(),
    )
}

/// A stored slug back in its type; a row that violates the rules is a server-side fault.
pub fn product_slug(product: &Product) -> ApiResult<ProductSlug> {
    ProductSlug::parse(&product.slug).map_err(ApiError::internal)
}

pub fn build_slug(build: &Build) -> ApiResult<BuildSlug> {
    BuildSlug::parse(&build.slug).map_err(ApiError::internal)
}

pub fn edition_slug(edition: &Edition) -> ApiResult<EditionSlug> {
    EditionSlug::parse(&edition.slug).map_err(ApiError::internal)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductResponse {
    pub self_url: String,
    pub slug: String,
    pub doc_repo: String,
    pub title: String,
    pub root_domain: String,
    pub root_fastly_domain: String,
    pub domain: String,
    pub fastly_domain: String,
    pub bucket_name: String,
    pub published_url: String,
    pub surrogate_key: String,
    /// keeper's: the retention policy that applies to the product.
    pub retention: RetentionResponse,
}

/// A product's retention policy: the deployment's, with what the product sets over it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionResponse {
    /// Off: nothing is deleted.
    pub enabled: bool,
    /// The newest uploaded builds kept whatever their age.
    pub keep_newest: u32,
    /// Builds younger than this many days are kept.
    pub keep_days: u32,
    /// Builds an edition showed within this many days are kept.
    pub rollback_days: u32,
    /// Branch and ticket editions keeper created go once their ref has had no build for this
    /// many days.
    pub edition_days: u32,
    /// `deployment` (`KEEPER_RETENTION*`) or `product` (the product sets some of it).
    pub source: String,
    /// What the product sets itself (`PATCH /products/<slug>` `{"retention": {...}}`); null:
    /// nothing.
    #[schema(value_type = Option<Object>)]
    pub product_settings: Option<crate::domain::PolicyOverride>,
}

/// The retention section of `product`'s answer.
pub fn retention_response(state: &AppState, product: &Product) -> RetentionResponse {
    let own = crate::ops::retention::product_override(product);
    let policy = crate::ops::retention::effective_policy(state.retention, product);
    RetentionResponse {
        enabled: policy.enabled,
        keep_newest: policy.keep_newest,
        keep_days: policy.keep_days,
        rollback_days: policy.rollback_days,
        edition_days: policy.edition_days,
        source: if own.is_some() {
            "product"
        } else {
            "deployment"
        }
        .to_owned(),
        product_settings: own,
    }
}

pub fn product_response(
    state: &AppState,
    organization: &Organization,
    product: &Product,
) -> ApiResult<ProductResponse> {
    let slug = product_slug(product)?;
    let published_url = product_url(&layout_of(state, organization), &slug);
    let domain = url::Url::parse(&published_url)
        .ok()
        .and_then(|url| {
            url.host_str().map(|host| {
                url.port()
                    .map_or(host.to_owned(), |port| format!("{host}:{port}"))
            })
        })
        .unwrap_or_default();
    // The original's value: the Fastly domain the product was registered with (1.x), which
    // adoption fills from the organization's for a 2.0 database.
    let fastly_domain = product.root_fastly_domain.clone();
    Ok(ProductResponse {
        self_url: state.url_for(&format!("products/{}", product.slug)),
        slug: product.slug.clone(),
        doc_repo: product.doc_repo.clone(),
        title: product.title.clone(),
        root_domain: product.root_domain.clone(),
        root_fastly_domain: product.root_fastly_domain.clone(),
        domain,
        fastly_domain,
        bucket_name: bucket_name(organization, product),
        published_url,
        surrogate_key: product.surrogate_key.clone(),
        retention: retention_response(state, product),
    })
}

/// The bucket a product's objects live in: the organization's, unless the product names one.
pub fn bucket_name(organization: &Organization, product: &Product) -> String {
    if product.bucket_name.is_empty() {
        organization.bucket_name.clone()
    } else {
        product.bucket_name.clone()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BuildResponse {
    pub self_url: String,
    pub product_url: String,
    pub slug: String,
    pub date_created: String,
    pub date_ended: Option<String>,
    pub uploaded: bool,
    pub bucket_name: String,
    pub bucket_root_dir: String,
    pub git_refs: Vec<String>,
    pub github_requester: Option<String>,
    pub published_url: String,
    pub surrogate_key: String,
    /// The newest operation on the build (its seal, a rebuild from it, the removal of its
    /// objects), if any.
    pub operation_url: Option<String>,
    /// Only when a build is created with the v2 media type: for each requested directory
    /// (`/`, `a/b/`), the POST-object form (`url` and `fields`) that uploads its files.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub post_prefix_urls: Option<BTreeMap<String, PresignedPost>>,
    /// With `post_prefix_urls`: for each directory, the form of its empty directory-redirect
    /// object (uploaded after the files).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub post_dir_urls: Option<BTreeMap<String, PresignedPost>>,
    /// Only in the answer to the confirming `PATCH`: the editions this build is being published
    /// to (their rebuilds are queued), so a CI log can say where the docs will be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub editions_updated: Option<Vec<EditionUpdate>>,
}

/// An edition a confirmed build is being published to.
#[derive(Debug, Serialize, ToSchema)]
pub struct EditionUpdate {
    pub edition_url: String,
    pub slug: String,
    pub published_url: String,
    /// The queued rebuild (`GET` it to follow progress).
    pub operation_url: String,
}

/// The published URL of an edition: the product's for the default edition (`__main`, or an
/// adopted 1.x product's `main`), else `<product URL>/v/<edition>`.
pub fn edition_published_url(
    state: &AppState,
    organization: &Organization,
    product: &Product,
    edition: &Edition,
) -> ApiResult<String> {
    Ok(published_edition_url(
        &layout_of(state, organization),
        &product_slug(product)?,
        &edition_slug(edition)?,
        edition.kind,
    ))
}

pub fn build_response(
    state: &AppState,
    organization: &Organization,
    product: &Product,
    build: &Build,
) -> ApiResult<BuildResponse> {
    let product_slug = product_slug(product)?;
    let slug = build_slug(build)?;
    Ok(BuildResponse {
        self_url: state.url_for(&format!("builds/{}", build.id)),
        product_url: state.url_for(&format!("products/{}", product.slug)),
        slug: build.slug.clone(),
        date_created: format_datetime(build.date_created),
        date_ended: format_optional_datetime(build.date_ended),
        uploaded: build.uploaded,
        bucket_name: bucket_name(organization, product),
        bucket_root_dir: BucketPrefix::build(&product_slug, &slug)
            .as_dir_key()
            .to_owned(),
        git_refs: build.git_ref_list(),
        github_requester: build.github_requester.clone(),
        published_url: build_url(&layout_of(state, organization), &product_slug, &slug),
        surrogate_key: build.surrogate_key.clone(),
        operation_url: None,
        post_prefix_urls: None,
        post_dir_urls: None,
        editions_updated: None,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EditionResponse {
    pub self_url: String,
    pub product_url: String,
    pub build_url: Option<String>,
    pub published_url: String,
    pub slug: String,
    pub title: String,
    pub date_created: String,
    pub date_rebuilt: Option<String>,
    pub date_ended: Option<String>,
    pub mode: String,
    pub tracked_refs: Option<Vec<String>>,
    pub pending_rebuild: bool,
    pub surrogate_key: String,
    /// The edition's current or last operation (rebuild, rename, delete), if any.
    pub operation_url: Option<String>,
}

pub fn edition_response(
    state: &AppState,
    organization: &Organization,
    product: &Product,
    edition: &Edition,
    pending: &HashSet<i64>,
    operation: Option<i64>,
) -> ApiResult<EditionResponse> {
    Ok(EditionResponse {
        self_url: state.url_for(&format!("editions/{}", edition.id)),
        product_url: state.url_for(&format!("products/{}", product.slug)),
        build_url: edition
            .build_id
            .map(|id| state.url_for(&format!("builds/{id}"))),
        published_url: edition_published_url(state, organization, product, edition)?,
        slug: edition.slug.clone(),
        title: edition.title.clone(),
        date_created: format_datetime(edition.date_created),
        date_rebuilt: format_optional_datetime(edition.date_rebuilt),
        date_ended: format_optional_datetime(edition.date_ended),
        mode: edition.tracking_mode.to_string(),
        tracked_refs: edition.tracked_ref_list(),
        pending_rebuild: pending.contains(&edition.id),
        surrogate_key: edition.surrogate_key.clone(),
        operation_url: operation.map(|id| state.url_for(&format!("operations/{id}"))),
    })
}

/// The build id in a `build_url` of this server (`<public URL>/builds/<id>`); 422 otherwise.
pub fn build_id_from_url(state: &AppState, build_url: &str) -> ApiResult<i64> {
    let prefix = state.url_for("builds/");
    build_url
        .strip_prefix(&prefix)
        .and_then(|rest| rest.trim_end_matches('/').parse::<i64>().ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "build_url must be the URL of a build on this server ({prefix}<id>), got {build_url:?}."
            ))
        })
}
