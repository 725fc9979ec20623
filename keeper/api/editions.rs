//! Editions: `/products/<slug>/editions/` and `/editions/<id>`.
//!
//! Changes that must touch object storage (a new build, a new slug, a delete) are recorded as
//! operations in the same transaction; `pending_rebuild` is derived from those rows. The
//! edition's `build_url` changes when its rebuild has finished, not when it is requested.

use std::collections::HashSet;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::app::AppState;
use crate::api::body::Body;
use crate::api::database::{run_db_as, run_read};
use crate::api::identity::{authenticate, Credentials};
use crate::api::json::{created, parse_json};
use crate::api::products::{
    collection_urls, duplicate_or, load_product, product_not_found, require_product_slug,
};
use crate::api::publishing::{build_id_from_url, edition_response, EditionResponse};
use crate::catalog::request_rebuild;
use crate::db::builds::{find_build, find_build_row};
use crate::db::editions::{edition_slugs, find_edition, insert_edition, update_edition};
use crate::db::history;
use crate::db::models::{now, Edition, EditionChanges, NewEdition, Organization, Product};
use crate::db::operations::{editions_pending_rebuild, latest_operation_on};
use crate::db::organizations::find_organization;
use crate::db::products::find_product_by_id;
use crate::db::reads::{
    edition_in_context, edition_in_context_pipelined, live_edition_ids, live_edition_ids_pipelined,
    EditionInContext,
};
use crate::db::DbConnection;
use crate::domain::Permissions;
use crate::domain::{
    edition_kind, next_build_slug, rollback_target, DashboardFile, EditionKind, EditionSlug,
    HistoryReason, SurrogateKey, TrackingMode,
};
use crate::error::{or_not_found, ApiError, ApiResult};
use crate::ops::records::{self, Subject};
use crate::ops::webhook::{self, Happened};
use crate::ops::{dashboard, delete, rename};

#[derive(Debug, Serialize, ToSchema)]
pub struct EditionListResponse {
    /// URLs of the product's editions.
    pub editions: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
/// Fields the original ignored (such as the read-only ones of a GET answer sent back whole)
/// are ignored here too (DESIGN.md section 7).
pub struct NewEditionRequest {
    #[serde(default)]
    #[schema(pattern = r"^[a-zA-Z0-9._-]+$", max_length = 255)]
    pub slug: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    /// Instead of a slug: the next free integer slug. Read as the original read it: `true`,
    /// `"true"`, `"True"`, a non-zero number.
    #[serde(default, deserialize_with = "crate::api::json::truthy")]
    #[schema(value_type = Option<bool>)]
    pub autoincrement: Option<bool>,
    /// Tracking mode; default `git_refs`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Required for `git_refs` and `git_ref`.
    #[serde(default)]
    pub tracked_refs: Option<Vec<String>>,
    /// A build of this product to publish right away (uploaded, not deprecated).
    #[serde(default)]
    pub build_url: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
/// Fields the original ignored (such as the read-only ones of a GET answer sent back whole)
/// are ignored here too (DESIGN.md section 7).
pub struct EditionPatchRequest {
    #[serde(default)]
    pub title: Option<String>,
    /// A new slug moves the edition's objects (a rename operation).
    #[serde(default)]
    #[schema(pattern = r"^[a-zA-Z0-9._-]+$", max_length = 255)]
    pub slug: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub tracked_refs: Option<Vec<String>>,
    /// A new build to publish (a rebuild operation).
    #[serde(default)]
    pub build_url: Option<String>,
    /// Accepted for compatibility and ignored: the flag is derived from the operations.
    #[serde(default, rename = "pending_rebuild")]
    pub _pending_rebuild: Option<bool>,
}

struct Loaded {
    organization: Organization,
    product: Product,
    edition: Edition,
    pending: HashSet<i64>,
    /// Its newest operation.
    operation: Option<i64>,
}

fn load_edition(conn: &mut DbConnection, id: i64) -> ApiResult<Loaded> {
    let edition = or_not_found(find_edition(conn, id), || format!("No edition {id}."))?;
    loaded(conn, edition)
}

/// The edition `id` as [`edition_in_context`] found it (deleted ones included: they answer with
/// `date_ended`, as in the original); 404 when it did not.
fn loaded_row(id: i64, found: Option<EditionInContext>) -> ApiResult<Loaded> {
    let found = found.ok_or_else(|| ApiError::not_found(format!("No edition {id}.")))?;
    Ok(Loaded {
        pending: found
            .pending_rebuild
            .then_some(found.edition.id)
            .into_iter()
            .collect(),
        organization: found.organization,
        product: found.product,
        edition: found.edition,
        operation: found.operation,
    })
}

fn loaded(conn: &mut DbConnection, edition: Edition) -> ApiResult<Loaded> {
    let product = find_product_by_id(conn, edition.product_id)?;
    let organization = find_organization(conn, product.organization_id)?;
    let pending = editions_pending_rebuild(conn, &[edition.id])?;
    let operation = latest_operation_on(conn, Some(edition.id), None)?;
    Ok(Loaded {
        organization,
        product,
        edition,
        pending,
        operation,
    })
}

fn respond(state: &AppState, loaded: &Loaded) -> ApiResult<EditionResponse> {
    edition_response(
        state,
        &loaded.organization,
        &loaded.product,
        &loaded.edition,
        &loaded.pending,
        loaded.operation,
    )
}

fn parse_mode(mode: Option<&str>) -> ApiResult<Option<TrackingMode>> {
    mode.map(TrackingMode::parse)
        .transpose()
        .map_err(|err| ApiError::bad_request(err.to_string()))
}

/// `git_refs` and `git_ref` need refs to track.
fn check_tracking(mode: TrackingMode, tracked_refs: Option<&[String]>) -> ApiResult<()> {
    if let Some(refs) = tracked_refs {
        crate::api::builds::check_ref_bounds("tracked_refs", refs)?;
    }
    let needs_refs = matches!(mode, TrackingMode::GitRefs | TrackingMode::GitRef);
    let has_refs = tracked_refs
        .is_some_and(|refs| !refs.is_empty() && refs.iter().all(|r| !r.trim().is_empty()));
    if needs_refs && !has_refs {
        return Err(ApiError::bad_request(format!(
            "Mode {} needs tracked_refs: a non-empty list of git refs.",
            mode.as_str()
        )));
    }
    Ok(())
}

fn parse_slug(slug: &str) -> ApiResult<EditionSlug> {
    if DashboardFile::reserves("v", slug) {
        return Err(ApiError::bad_request(format!(
            "slug: {slug:?} is reserved for the product's editions page and version lists \
             (v/index.html, v/switcher.json, v/versions.json); choose another slug."
        )));
    }
    EditionSlug::parse(slug).map_err(|err| ApiError::bad_request(err.to_string()))
}

#[utoipa::path(get, path = "/products/{slug}/editions/", tag = "editions",
    params(("slug" = String, Path, description = "Product slug")),
    responses((status = 200, body = EditionListResponse), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> ApiResult<web::Json<EditionListResponse>> {
    let slug = slug.into_inner();
    require_product_slug(&slug)?;
    let blocking_slug = slug.clone();
    let ids = run_read(
        &state,
        move |conn| live_edition_ids(conn, &blocking_slug),
        |live| {
            let slug = slug.clone();
            async move { live_edition_ids_pipelined(&live, &slug).await }
        },
    )
    .await?
    .ok_or_else(|| product_not_found(&slug))?;
    Ok(web::Json(EditionListResponse {
        editions: collection_urls(&state, "editions", &ids),
    }))
}

#[utoipa::path(get, path = "/editions/{id}", tag = "editions",
    params(("id" = i64, Path, description = "Edition id")),
    responses((status = 200, body = EditionResponse), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> ApiResult<web::Json<EditionResponse>> {
    let id = id.into_inner();
    let found = run_read(
        &state,
        move |conn| edition_in_context(conn, id),
        |live| async move { edition_in_context_pipelined(&live, id).await },
    )
    .await?;
    let loaded = loaded_row(id, found)?;
    Ok(web::Json(respond(&state, &loaded)?))
}

#[utoipa::path(post, path = "/products/{slug}/editions/", tag = "editions", request_body = NewEditionRequest,
    params(("slug" = String, Path, description = "Product slug")),
    responses((status = 201, body = EditionResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    credentials: Credentials,
    slug: web::Path<String>,
    body: Body,
) -> ApiResult<HttpResponse> {
    let identity = authenticate(&state, &credentials).await?;
    identity.require(Permissions::ADMIN_EDITION)?;
    let product_slug = slug.into_inner();
    let public = state.clone();
    let body = body.read().await?;
    let loaded = run_db_as(&state.pool, identity.cause(), move |conn| {
        let (_, product) = load_product(conn, &product_slug)?;
        identity.require_for_product(Permissions::ADMIN_EDITION, product.id)?;
        let request: NewEditionRequest = parse_json(&body)?;
        let mode = parse_mode(request.mode.as_deref())?.unwrap_or_default();
        check_tracking(mode, request.tracked_refs.as_deref())?;
        let build_id = request
            .build_url
            .as_deref()
            .map(|url| build_id_from_url(&public, url))
            .transpose()?;
        let id = conn.write_transaction(|conn| {
            let slug = match (
                request.autoincrement.unwrap_or(false),
                request.slug.as_deref(),
            ) {
                // As in the original, autoincrement wins over a slug given with it.
                (true, _) => {
                    let used = edition_slugs(conn, product.id)?;
                    parse_slug(next_build_slug(used.iter().map(String::as_str)).as_str())?
                }
                (false, Some(slug)) => parse_slug(slug)?,
                (false, None) => {
                    return Err(ApiError::bad_request(
                        "slug is required (or autoincrement: true).",
                    ))
                }
            };
            let title = match request.title.as_deref() {
                Some(title) if !title.trim().is_empty() => title.to_owned(),
                Some(_) => return Err(ApiError::bad_request("title must not be empty.")),
                None if request.autoincrement == Some(true) => slug.as_str().to_owned(),
                None => return Err(ApiError::bad_request("title is required.")),
            };
            let refs = request.tracked_refs.clone().unwrap_or_default();
            let tracked = request
                .tracked_refs
                .as_ref()
                .map(|refs| serde_json::Value::from(refs.clone()).to_string());
            let edition = insert_edition(
                conn,
                &NewEdition {
                    product_id: product.id,
                    slug: slug.as_str(),
                    title: &title,
                    tracking_mode: mode,
                    tracked_refs: tracked.as_deref(),
                    kind: edition_kind(&slug, &refs),
                    build_id: None,
                    date_created: now(),
                    surrogate_key: SurrogateKey::generate().as_str(),
                    auto_created: false,
                },
            )
            .map_err(|err| {
                duplicate_or(
                    err,
                    format!("Product {} already has an edition {slug}.", product.slug),
                )
            })?;
            records::enqueue(conn, &product, Subject::Edition(edition.id))?;
            dashboard::enqueue(conn, &product)?;
            if let Some(build_id) = build_id {
                let build = find_build(conn, build_id)
                    .map_err(|_| ApiError::bad_request("build_url names no existing build."))?;
                request_rebuild(conn, &product, &edition, &build, HistoryReason::Requested)?;
            }
            Ok(edition.id)
        })?;
        load_edition(conn, id)
    })
    .await?;
    tracing::info!(product.slug = %loaded.product.slug, edition.slug = %loaded.edition.slug, "edition created");
    let response = respond(&state, &loaded)?;
    Ok(created(&response.self_url.clone(), &response))
}

#[utoipa::path(patch, path = "/editions/{id}", tag = "editions", request_body = EditionPatchRequest,
    params(("id" = i64, Path, description = "Edition id")),
    responses((status = 200, body = EditionResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn patch(
    state: web::Data<AppState>,
    credentials: Credentials,
    id: web::Path<i64>,
    body: Body,
) -> ApiResult<web::Json<EditionResponse>> {
    let identity = authenticate(&state, &credentials).await?;
    identity.require(Permissions::ADMIN_EDITION)?;
    let id = id.into_inner();
    let public = state.clone();
    let body = body.read().await?;
    let loaded = run_db_as(&state.pool, identity.cause(), move |conn| {
        let current = load_edition(conn, id)?;
        identity.require_for_product(Permissions::ADMIN_EDITION, current.product.id)?;
        let request: EditionPatchRequest = parse_json(&body)?;
        let mode = parse_mode(request.mode.as_deref())?;
        let new_slug = request.slug.as_deref().map(parse_slug).transpose()?;
        let build_id = request
            .build_url
            .as_deref()
            .map(|url| build_id_from_url(&public, url))
            .transpose()?;
        if request
            .title
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(ApiError::bad_request("title must not be empty."));
        }
        conn.write_transaction(|conn| {
            let Loaded {
                product, edition, ..
            } = load_edition(conn, id)?;
            let effective_mode = mode.unwrap_or(edition.tracking_mode);
            let effective_refs = request
                .tracked_refs
                .clone()
                .or_else(|| edition.tracked_ref_list());
            check_tracking(effective_mode, effective_refs.as_deref())?;
            let renamed = new_slug
                .as_ref()
                .filter(|slug| slug.as_str() != edition.slug);
            if renamed.is_some() && edition.kind == EditionKind::Main {
                return Err(ApiError::bad_request(format!(
                    "The default edition ({}) cannot be renamed: it is the product's URL.",
                    edition.slug
                )));
            }
            let tracked = request
                .tracked_refs
                .as_ref()
                .map(|refs| serde_json::Value::from(refs.clone()).to_string());
            let kind =
                renamed.map(|slug| edition_kind(slug, &effective_refs.clone().unwrap_or_default()));
            let changes = EditionChanges {
                title: request.title.as_deref(),
                slug: renamed.map(EditionSlug::as_str),
                tracking_mode: mode,
                tracked_refs: tracked.as_deref().map(Some),
                kind,
                date_ended: None,
            };
            let updated = update_edition(conn, edition.id, &changes).map_err(|err| {
                duplicate_or(
                    err,
                    format!(
                        "Product {} already has an edition with that slug.",
                        product.slug
                    ),
                )
            })?;
            records::enqueue(conn, &product, Subject::Edition(edition.id))?;
            dashboard::enqueue(conn, &product)?;
            if let Some(to) = renamed {
                rename::enqueue(conn, &product, &edition, to)?;
            }
            if let Some(build_id) = build_id {
                let build = find_build(conn, build_id)
                    .map_err(|_| ApiError::bad_request("build_url names no existing build."))?;
                request_rebuild(conn, &product, &updated, &build, HistoryReason::Requested)?;
            }
            Ok::<_, ApiError>(())
        })?;
        load_edition(conn, id)
    })
    .await?;
    Ok(web::Json(respond(&state, &loaded)?))
}

#[utoipa::path(delete, path = "/editions/{id}", tag = "editions",
    params(("id" = i64, Path, description = "Edition id")),
    responses((status = 200, body = EditionResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn delete(
    state: web::Data<AppState>,
    credentials: Credentials,
    id: web::Path<i64>,
) -> ApiResult<web::Json<EditionResponse>> {
    let identity = authenticate(&state, &credentials).await?;
    identity.require(Permissions::ADMIN_EDITION)?;
    let id = id.into_inner();
    let public_base = state.public_base().to_owned();
    let loaded = run_db_as(&state.pool, identity.cause(), move |conn| {
        conn.write_transaction(|conn| {
            let mut loaded = load_edition(conn, id)?;
            identity.require_for_product(Permissions::ADMIN_EDITION, loaded.product.id)?;
            if loaded.edition.kind == EditionKind::Main {
                return Err(ApiError::bad_request(format!(
                    "The default edition ({}) cannot be deleted: it is the product's URL.",
                    loaded.edition.slug
                )));
            }
            let ended = EditionChanges {
                date_ended: Some(Some(now())),
                ..EditionChanges::default()
            };
            loaded.edition = update_edition(conn, id, &ended)?;
            let operation = delete::enqueue_edition(conn, &loaded.product, &loaded.edition)?;
            history::record_end(conn, &loaded.edition, HistoryReason::Deleted, operation.id)?;
            let happened = Happened::EditionDeleted {
                product: &loaded.product,
                edition: &loaded.edition,
                reason: HistoryReason::Deleted,
                operation_id: operation.id,
            };
            webhook::notify(conn, &public_base, &happened)?;
            records::enqueue(conn, &loaded.product, Subject::Edition(id))?;
            dashboard::enqueue(conn, &loaded.product)?;
            Ok(loaded)
        })
    })
    .await?;
    tracing::info!(product.slug = %loaded.product.slug, edition.slug = %loaded.edition.slug, "edition deleted");
    Ok(web::Json(respond(&state, &loaded)?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RollbackRequest {
    /// The build to go back to (a build of the edition's product, uploaded and not
    /// deprecated). Default: the build the edition showed before its current one, passing over
    /// builds earlier rollbacks left.
    #[serde(default)]
    pub build_url: Option<String>,
}

#[utoipa::path(post, path = "/editions/{id}/rollback", tag = "editions", request_body = RollbackRequest,
    params(("id" = i64, Path, description = "Edition id")),
    responses((status = 202, body = EditionResponse), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("token" = [])))]
/// Repoints the edition at an earlier build in one call: a rebuild operation recorded in the
/// edition's history as a rollback. The body may be empty. Needs `admin_edition`. 409 when the
/// build is deprecated or not uploaded, is the one shown already, or when the edition showed
/// no earlier build; 400 when `build_url` is not a build URL of this server, 422 when it names
/// no build of this product. The edition keeps its tracking mode: a tracking edition moves on
/// with the next build its rule accepts.
pub async fn rollback(
    state: web::Data<AppState>,
    credentials: Credentials,
    id: web::Path<i64>,
    body: Body,
) -> ApiResult<HttpResponse> {
    let identity = authenticate(&state, &credentials).await?;
    identity.require(Permissions::ADMIN_EDITION)?;
    let id = id.into_inner();
    let public = state.clone();
    let body = body.read().await?;
    let loaded = run_db_as(&state.pool, identity.cause(), move |conn| {
        let current = load_edition(conn, id)?;
        identity.require_for_product(Permissions::ADMIN_EDITION, current.product.id)?;
        let request: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
            RollbackRequest::default()
        } else {
            parse_json(&body)?
        };
        let named = request
            .build_url
            .as_deref()
            .map(|url| build_id_from_url(&public, url))
            .transpose()?;
        conn.write_transaction(|conn| {
            let Loaded {
                product, edition, ..
            } = load_edition(conn, id)?;
            let target = match named {
                Some(build_id) => build_id,
                None => {
                    let entries = history::builds_before(conn, edition.id)?;
                    rollback_target(edition.build_id, &entries).ok_or_else(|| {
                        ApiError::conflict(format!(
                            "Edition {} has shown no earlier build to roll back to; name one \
                             with build_url (GET /builds/<id> of product {}).",
                            edition.slug, product.slug
                        ))
                    })?
                }
            };
            let build = find_build_row(conn, target)?
                .filter(|build| build.product_id == product.id)
                .ok_or_else(|| {
                    ApiError::unprocessable(format!(
                        "build_url names no build of product {}.",
                        product.slug
                    ))
                })?;
            if edition.build_id == Some(build.id) {
                return Err(ApiError::conflict(format!(
                    "Edition {} already shows build {}.",
                    edition.slug, build.slug
                )));
            }
            if !build.is_publishable() {
                return Err(ApiError::conflict(format!(
                    "Build {} is {}, so edition {} cannot go back to it; name another build \
                     with build_url (GET /editions/{id}/history lists what it showed).",
                    build.slug,
                    if build.uploaded {
                        "deprecated and its objects deleted"
                    } else {
                        "not uploaded"
                    },
                    edition.slug
                )));
            }
            request_rebuild(conn, &product, &edition, &build, HistoryReason::Rollback)?;
            Ok::<_, ApiError>(())
        })?;
        load_edition(conn, id)
    })
    .await?;
    tracing::info!(product.slug = %loaded.product.slug, edition.slug = %loaded.edition.slug, "edition rollback requested");
    let response = respond(&state, &loaded)?;
    Ok(HttpResponse::Accepted().json(response))
}
