//! `/products/`: the documentation projects (v1 API, default organization).

use actix_web::{web, HttpResponse};
use diesel::OptionalExtension;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::app::AppState;
use crate::api::body::Body;
use crate::api::database::{run_db_as, run_read};
use crate::api::identity::{authenticate, Credentials};
use crate::api::json::{created, parse_json};
use crate::api::publishing::{product_response, ProductResponse};
use crate::db::editions::insert_edition;
use crate::db::models::{now, NewEdition, NewProduct, Organization, Product, ProductChanges};
use crate::db::organizations::{find_organization_by_slug, DEFAULT_ORGANIZATION};
use crate::db::products::{find_product_by_slug, insert_product, update_product};
use crate::db::reads::{
    product_slugs, product_slugs_pipelined, product_with_organization,
    product_with_organization_pipelined,
};
use crate::db::DbConnection;
use crate::domain::{EditionKind, EditionSlug, ProductSlug, SurrogateKey, TrackingMode};
use crate::domain::{Permissions, PolicyOverride, RetentionPolicy};
use crate::error::{or_bad_request, ApiError, ApiResult};
use crate::ops::dashboard;
use crate::ops::records::{self, Subject};

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductListResponse {
    /// URLs of every product.
    pub products: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
/// Fields the original ignored (such as the read-only ones of a GET answer sent back whole)
/// are ignored here too (DESIGN.md section 7).
pub struct NewProductRequest {
    #[schema(pattern = r"^[a-z]+[-a-z0-9]*[a-z0-9]+$", max_length = 64)]
    pub slug: String,
    pub doc_repo: String,
    pub title: String,
    /// Accepted for compatibility; the organization decides where docs are published.
    #[serde(default)]
    pub root_domain: Option<String>,
    #[serde(default)]
    pub root_fastly_domain: Option<String>,
    #[serde(default)]
    pub bucket_name: Option<String>,
    /// Tracking mode of the default edition (default `git_refs`, tracking `main`).
    #[serde(default)]
    pub main_mode: Option<String>,
    /// keeper's extension: the organization (`keeper org`) the product is published by,
    /// default `default`. Product slugs stay unique across organizations in this API.
    #[serde(default)]
    pub organization: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
/// Fields the original ignored (such as the read-only ones of a GET answer sent back whole)
/// are ignored here too (DESIGN.md section 7).
pub struct ProductPatchRequest {
    #[serde(default)]
    pub doc_repo: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    /// keeper's: the product's own retention settings over the deployment's (`enabled`,
    /// `keep_newest`, `keep_days`, `rollback_days`, `edition_days`, each optional); `null`
    /// goes back to the deployment's policy. The `retention` of a GET answer may be sent back
    /// whole: its `product_settings` are then what is set.
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = Option<Object>)]
    pub retention: Option<Option<serde_json::Value>>,
}

/// A product by slug, whatever its organization, and that organization (one statement); 404
/// when there is no such product. The v1 API names products by slug alone, so it creates none
/// whose slug another organization uses.
pub fn load_product(conn: &mut DbConnection, slug: &str) -> ApiResult<(Organization, Product)> {
    require_product_slug(slug)?;
    let (product, organization) =
        product_with_organization(conn, slug)?.ok_or_else(|| product_not_found(slug))?;
    Ok((organization, product))
}

/// 404 for a name that cannot be a product slug, before the database is asked (PostgreSQL
/// refuses a NUL in text with an error, not an empty result).
pub fn require_product_slug(slug: &str) -> ApiResult<()> {
    match ProductSlug::parse(slug) {
        Ok(_) => Ok(()),
        Err(_) => Err(product_not_found(slug)),
    }
}

/// The 404 of a product name that names none.
pub fn product_not_found(slug: &str) -> ApiError {
    ApiError::not_found(format!("No product named {slug:?}."))
}

/// The URLs `<collection>/<id>` of `ids` (builds, editions).
pub fn collection_urls(state: &AppState, collection: &str, ids: &[i64]) -> Vec<String> {
    ids.iter()
        .map(|id| state.url_for(&format!("{collection}/{id}")))
        .collect()
}

#[utoipa::path(get, path = "/products/", tag = "products",
    responses((status = 200, body = ProductListResponse)))]
pub async fn list_products(
    state: web::Data<AppState>,
) -> ApiResult<web::Json<ProductListResponse>> {
    let slugs = run_read(&state, product_slugs, |live| async move {
        product_slugs_pipelined(&live).await
    })
    .await?;
    Ok(web::Json(ProductListResponse {
        products: slugs
            .iter()
            .map(|slug| state.url_for(&format!("products/{slug}")))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/products/{slug}", tag = "products",
    params(("slug" = String, Path, description = "Product slug")),
    responses((status = 200, body = ProductResponse), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_product(
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> ApiResult<web::Json<ProductResponse>> {
    let slug = slug.into_inner();
    require_product_slug(&slug)?;
    let blocking_slug = slug.clone();
    let found = run_read(
        &state,
        move |conn| product_with_organization(conn, &blocking_slug),
        |live| {
            let slug = slug.clone();
            async move { product_with_organization_pipelined(&live, &slug).await }
        },
    )
    .await?;
    let (product, organization) = found.ok_or_else(|| product_not_found(&slug))?;
    Ok(web::Json(product_response(
        &state,
        &organization,
        &product,
    )?))
}

#[utoipa::path(post, path = "/products/", tag = "products", request_body = NewProductRequest,
    responses((status = 201, body = ProductResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn create_product(
    state: web::Data<AppState>,
    credentials: Credentials,
    body: Body,
) -> ApiResult<HttpResponse> {
    let identity = authenticate(&state, &credentials).await?;
    identity.require_unscoped(Permissions::ADMIN_PRODUCT)?;
    let request: NewProductRequest = parse_json(&body.read().await?)?;
    let slug =
        ProductSlug::parse(&request.slug).map_err(|err| ApiError::bad_request(err.to_string()))?;
    let main_mode = match request.main_mode.as_deref() {
        None => TrackingMode::GitRefs,
        Some(mode) => {
            TrackingMode::parse(mode).map_err(|err| ApiError::bad_request(err.to_string()))?
        }
    };
    if request.title.trim().is_empty() {
        return Err(ApiError::bad_request("title must not be empty."));
    }
    let organization_slug = request
        .organization
        .clone()
        .unwrap_or_else(|| DEFAULT_ORGANIZATION.to_owned());
    let (organization, product) = run_db_as(&state.pool, identity.cause(), move |conn| {
        conn.write_transaction(|conn| {
            let organization =
                or_bad_request(find_organization_by_slug(conn, &organization_slug), || {
                    format!("No organization named {organization_slug:?}.")
                })?;
            if find_product_by_slug(conn, slug.as_str())
                .optional()?
                .is_some()
            {
                return Err(ApiError::conflict(format!(
                    "A product named {slug} already exists."
                )));
            }
            let now = now();
            let product = insert_product(
                conn,
                &NewProduct {
                    organization_id: organization.id,
                    slug: slug.as_str(),
                    title: &request.title,
                    doc_repo: &request.doc_repo,
                    root_domain: request.root_domain.as_deref().unwrap_or(""),
                    root_fastly_domain: request.root_fastly_domain.as_deref().unwrap_or(""),
                    bucket_name: request.bucket_name.as_deref().unwrap_or(""),
                    surrogate_key: SurrogateKey::generate().as_str(),
                    date_created: now,
                },
            )
            .map_err(|err| conflict_or(err, format!("A product named {slug} already exists.")))?;
            let tracked = default_edition_refs(main_mode);
            let edition = insert_edition(
                conn,
                &NewEdition {
                    product_id: product.id,
                    slug: EditionSlug::main().as_str(),
                    title: "Latest",
                    tracking_mode: main_mode,
                    tracked_refs: tracked.as_deref(),
                    kind: EditionKind::Main,
                    build_id: None,
                    date_created: now,
                    surrogate_key: SurrogateKey::generate().as_str(),
                    auto_created: false,
                },
            )?;
            records::enqueue(conn, &product, Subject::Product)?;
            records::enqueue(conn, &product, Subject::Edition(edition.id))?;
            dashboard::enqueue(conn, &product)?;
            Ok((organization, product))
        })
    })
    .await?;
    tracing::info!(product.slug = %product.slug, user = %identity.username, "product created");
    let response = product_response(&state, &organization, &product)?;
    Ok(created(&response.self_url.clone(), &response))
}

/// The default edition tracks `main` in the ref-based modes; the others follow versions.
fn default_edition_refs(mode: TrackingMode) -> Option<String> {
    matches!(mode, TrackingMode::GitRefs | TrackingMode::GitRef).then(|| r#"["main"]"#.to_owned())
}

/// A unique violation becomes 409 with `message`; anything else keeps its own mapping.
pub fn conflict_or(err: diesel::result::Error, message: String) -> ApiError {
    unique_violation_or(err, ApiError::conflict(message))
}

/// A unique violation becomes 400 with `message`: the original's answer to a duplicate edition
/// or build slug. Anything else keeps its own mapping.
pub fn duplicate_or(err: diesel::result::Error, message: String) -> ApiError {
    unique_violation_or(err, ApiError::bad_request(message))
}

/// The product's own retention settings a PATCH sets: an object of settings, or the
/// `retention` of a GET answer sent back (its `product_settings`; the values it shows as
/// applying are read-only, and a changed one is refused rather than ignored).
fn retention_settings(
    value: &serde_json::Value,
    deployment: RetentionPolicy,
) -> ApiResult<Option<PolicyOverride>> {
    let parse = |value: &serde_json::Value| {
        serde_json::from_value::<PolicyOverride>(value.clone())
            .map_err(|err| ApiError::bad_request(format!("retention: {err}.")))
    };
    let Some(shown) = value
        .as_object()
        .filter(|fields| fields.contains_key("source"))
    else {
        let own = parse(value)?;
        own.check().map_err(ApiError::bad_request)?;
        return Ok(Some(own));
    };
    let own = match shown.get("product_settings") {
        None | Some(serde_json::Value::Null) => None,
        Some(settings) => Some(parse(settings)?),
    };
    if let Some(own) = &own {
        own.check().map_err(ApiError::bad_request)?;
    }
    let applying = deployment.with(&own.clone().unwrap_or_default());
    let applying = serde_json::to_value(applying).map_err(ApiError::internal)?;
    for (field, value) in shown {
        if let Some(now) = applying.get(field) {
            if now != value {
                return Err(ApiError::bad_request(format!(
                    "retention.{field} shows what applies and is read-only: set \
                     retention.product_settings.{field}, or send {{\"retention\": {{\"{field}\": \
                     {value}}}}}."
                )));
            }
        }
    }
    Ok(own)
}

fn unique_violation_or(err: diesel::result::Error, answer: ApiError) -> ApiError {
    match crate::db::violation::violation(&err) {
        Some(crate::db::violation::Violation::Unique) => answer,
        _ => err.into(),
    }
}

#[utoipa::path(patch, path = "/products/{slug}", tag = "products", request_body = ProductPatchRequest,
    params(("slug" = String, Path, description = "Product slug")),
    responses((status = 200, body = ProductResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn patch_product(
    state: web::Data<AppState>,
    credentials: Credentials,
    slug: web::Path<String>,
    body: Body,
) -> ApiResult<web::Json<ProductResponse>> {
    let identity = authenticate(&state, &credentials).await?;
    identity.require(Permissions::ADMIN_PRODUCT)?;
    let slug = slug.into_inner();
    let body = body.read().await?;
    let deployment = state.retention;
    let (organization, product) = run_db_as(&state.pool, identity.cause(), move |conn| {
        let (organization, product) = load_product(conn, &slug)?;
        identity.require_for_product(Permissions::ADMIN_PRODUCT, product.id)?;
        let request: ProductPatchRequest = parse_json(&body)?;
        if request
            .title
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(ApiError::bad_request("title must not be empty."));
        }
        let retention = match &request.retention {
            None => None,
            Some(None) => Some(None),
            Some(Some(value)) => Some(
                retention_settings(value, deployment)?
                    .map(|own| serde_json::to_string(&own))
                    .transpose()
                    .map_err(ApiError::internal)?,
            ),
        };
        let changes = ProductChanges {
            title: request.title.as_deref(),
            doc_repo: request.doc_repo.as_deref(),
            retention: retention.as_ref().map(Option::as_deref),
        };
        let product = conn.write_transaction(|conn| {
            let product = update_product(conn, product.id, &changes)?;
            records::enqueue(conn, &product, Subject::Product)?;
            dashboard::enqueue(conn, &product)?;
            Ok::<_, ApiError>(product)
        })?;
        Ok((organization, product))
    })
    .await?;
    Ok(web::Json(product_response(
        &state,
        &organization,
        &product,
    )?))
}
