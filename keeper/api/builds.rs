//! Builds: `/products/<slug>/builds/` and `/builds/<id>`.

use std::collections::HashSet;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::app::AppState;
use crate::api::body::Body;
use crate::api::database::{run_db, run_db_as, run_db_read, run_read};
use crate::api::identity::{authenticate, Credentials, Identity};
use crate::api::json::{created, parse_json};
use crate::api::products::{
    collection_urls, load_product, product_not_found, require_product_slug,
};
use crate::api::publishing::{build_response, edition_published_url, BuildResponse, EditionUpdate};
use crate::api::uploads::{UploadForms, UPLOAD_PATH};
use crate::catalog::rebuild_tracking_editions;
use crate::db::build_numbers::{next_build_number, raise_build_slug_floor, NextNumber};
use crate::db::builds::{deprecate_build, insert_build, mark_uploaded};
use crate::db::editions::{find_edition, insert_edition_if_absent, list_editions};
use crate::db::models::{
    now, Build, Edition, NewBuild, NewEdition, Operation, Organization, Product,
};
use crate::db::operations::{latest_operation_on, unfinished_rebuilds_of_build};
use crate::db::organizations::find_organization_settings;
use crate::db::reads::{
    active_build_ids, active_build_ids_pipelined, build_in_context, build_in_context_pipelined,
    BuildInContext,
};
use crate::db::violation::{violation, Violation};
use crate::db::DbConnection;
use crate::domain::Permissions;
use crate::domain::{
    edition_kind, edition_slug_from_git_refs, BucketPrefix, BuildSlug, DashboardFile, ProductSlug,
    SurrogateKey, TrackingMode,
};
use crate::error::{ApiError, ApiResult};
use crate::ops::records::{self, Subject};
use crate::ops::webhook::{self, Happened};
use crate::ops::{dashboard, delete, seal};
use crate::storage::{ObjectStore, StorageError};

/// The media type with which clients ask for presigned upload forms.
pub const V2_MEDIA_TYPE: &str = "application/vnd.ltdkeeper.v2+json";

/// Most directories one build may ask upload forms for.
pub const MAX_DIRECTORIES: usize = 20_000;
/// Longest directory of a build: its keys, with a file name, must stay under S3's 1024 bytes.
pub const MAX_DIRECTORY_BYTES: usize = 512;
/// Most git refs a build or an edition names.
pub const MAX_GIT_REFS: usize = 32;
/// Longest git ref.
pub const MAX_GIT_REF_BYTES: usize = 255;

/// 422 unless `refs` holds at most [`MAX_GIT_REFS`] refs of at most [`MAX_GIT_REF_BYTES`].
pub fn check_ref_bounds(field: &str, refs: &[String]) -> ApiResult<()> {
    if refs.len() > MAX_GIT_REFS {
        return Err(ApiError::bad_request(format!(
            "{field}: at most {MAX_GIT_REFS} refs."
        )));
    }
    if refs.iter().any(|git_ref| git_ref.len() > MAX_GIT_REF_BYTES) {
        return Err(ApiError::bad_request(format!(
            "{field}: a ref is longer than {MAX_GIT_REF_BYTES} bytes."
        )));
    }
    Ok(())
}

/// Concurrent uploads may race for the same automatic slug; each loser retries with the next.
const AUTO_SLUG_ATTEMPTS: usize = 20;

#[derive(Debug, Serialize, ToSchema)]
pub struct BuildListResponse {
    /// URLs of the product's non-deprecated builds.
    pub builds: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewBuildRequest {
    /// Git refs the build was made from, e.g. `["main"]` or `["tickets/DM-1234"]`.
    pub git_refs: Vec<String>,
    /// Build slug; by default the smallest positive integer not yet used in the product.
    #[serde(default)]
    #[schema(pattern = r"^[a-zA-Z0-9._-]+$", max_length = 255)]
    pub slug: Option<String>,
    #[serde(default)]
    pub github_requester: Option<String>,
    /// Directories to upload into (v2 media type); default `["/"]`.
    #[serde(default)]
    pub directories: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
/// Fields the original ignored (such as the read-only ones of a GET answer sent back whole)
/// are ignored here too (DESIGN.md section 7).
pub struct BuildPatchRequest {
    /// `true` confirms that every file is uploaded.
    pub uploaded: bool,
}

fn load_build(conn: &mut DbConnection, id: i64) -> ApiResult<(Organization, Product, Build)> {
    let found = load_build_in_context(conn, id)?;
    Ok((found.organization, found.product, found.build))
}

/// The build with its product, organization and newest operation, in one statement.
fn load_build_in_context(conn: &mut DbConnection, id: i64) -> ApiResult<BuildInContext> {
    build_in_context(conn, id)?.ok_or_else(|| ApiError::not_found(format!("No build {id}.")))
}

#[utoipa::path(get, path = "/products/{slug}/builds/", tag = "builds",
    params(("slug" = String, Path, description = "Product slug")),
    responses((status = 200, body = BuildListResponse), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list_builds(
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> ApiResult<web::Json<BuildListResponse>> {
    let slug = slug.into_inner();
    require_product_slug(&slug)?;
    let blocking_slug = slug.clone();
    let ids = run_read(
        &state,
        move |conn| active_build_ids(conn, &blocking_slug),
        |live| {
            let slug = slug.clone();
            async move { active_build_ids_pipelined(&live, &slug).await }
        },
    )
    .await?
    .ok_or_else(|| product_not_found(&slug))?;
    Ok(web::Json(BuildListResponse {
        builds: collection_urls(&state, "builds", &ids),
    }))
}

#[utoipa::path(get, path = "/builds/{id}", tag = "builds",
    params(("id" = i64, Path, description = "Build id")),
    responses((status = 200, body = BuildResponse), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_build(
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> ApiResult<web::Json<BuildResponse>> {
    let id = id.into_inner();
    let found = run_read(
        &state,
        move |conn| build_in_context(conn, id),
        |live| async move { build_in_context_pipelined(&live, id).await },
    )
    .await?
    .ok_or_else(|| ApiError::not_found(format!("No build {id}.")))?;
    respond(
        &state,
        &found.organization,
        &found.product,
        &found.build,
        found.operation,
    )
    .map(web::Json)
}

/// A build's answer, linking its newest operation.
fn respond(
    state: &AppState,
    organization: &Organization,
    product: &Product,
    build: &Build,
    operation: Option<i64>,
) -> ApiResult<BuildResponse> {
    let mut response = build_response(state, organization, product, build)?;
    response.operation_url = operation.map(|id| state.url_for(&format!("operations/{id}")));
    Ok(response)
}

#[derive(Debug, Clone)]
struct ValidBuildRequest {
    git_refs: Vec<String>,
    slug: Option<BuildSlug>,
    github_requester: Option<String>,
    /// Normalized, without duplicates: `/` for the root, otherwise `a/b/`.
    directories: Vec<String>,
}

/// Whether the request asks for the v2 media type (and so for upload forms).
fn accepts_v2(request: &HttpRequest) -> bool {
    request
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            item.split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case(V2_MEDIA_TYPE))
        })
}

fn validate_new_build(
    request: NewBuildRequest,
    product: &ProductSlug,
) -> ApiResult<ValidBuildRequest> {
    if request.git_refs.is_empty() || request.git_refs.iter().any(|r| r.trim().is_empty()) {
        return Err(ApiError::bad_request(
            "git_refs must be a non-empty list of non-empty refs.",
        ));
    }
    check_ref_bounds("git_refs", &request.git_refs)?;
    if let Some(slug) = request
        .slug
        .as_deref()
        .filter(|slug| DashboardFile::reserves("builds", slug))
    {
        return Err(ApiError::bad_request(format!(
            "slug: {slug:?} is reserved for the product's builds page; choose another slug."
        )));
    }
    let slug = request
        .slug
        .as_deref()
        .map(BuildSlug::parse)
        .transpose()
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    let requested = request.directories.unwrap_or_else(|| vec!["/".to_owned()]);
    if requested.len() > MAX_DIRECTORIES {
        return Err(ApiError::bad_request(format!(
            "directories: at most {MAX_DIRECTORIES} directories per build."
        )));
    }
    if let Some(long) = requested.iter().find(|dir| dir.len() > MAX_DIRECTORY_BYTES) {
        return Err(ApiError::bad_request(format!(
            "directories: {:?}... is longer than {MAX_DIRECTORY_BYTES} bytes; no upload form \
             could hold its keys.",
            long.chars().take(40).collect::<String>()
        )));
    }
    let root = BucketPrefix::product(product);
    let mut directories = std::collections::BTreeSet::new();
    for directory in &requested {
        let prefix = root
            .directory(directory)
            .map_err(|err| ApiError::bad_request(format!("directories: {err}")))?;
        let relative = root.relative(prefix.as_str()).unwrap_or_default();
        directories.insert(if relative.is_empty() {
            "/".to_owned()
        } else {
            relative.to_owned()
        });
    }
    Ok(ValidBuildRequest {
        git_refs: request.git_refs,
        slug,
        github_requester: request.github_requester,
        directories: directories.into_iter().collect(),
    })
}

#[utoipa::path(post, path = "/products/{slug}/builds/", tag = "builds", request_body = NewBuildRequest,
    params(("slug" = String, Path, description = "Product slug")),
    responses((status = 201, body = BuildResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn create_build(
    state: web::Data<AppState>,
    forms: Option<web::Data<UploadForms>>,
    http_request: HttpRequest,
    credentials: Credentials,
    slug: web::Path<String>,
    body: Body,
) -> ApiResult<HttpResponse> {
    let identity = authenticate(&state, &credentials).await?;
    identity.require(Permissions::UPLOAD_BUILD)?;
    let forms_data = forms.clone();
    let forms = match (accepts_v2(&http_request), forms) {
        (false, _) => None,
        (true, Some(forms)) => Some(forms),
        (true, None) => {
            return Err(ApiError::unavailable(
                "This server has no object store for uploads; it cannot hand out upload forms.",
            ))
        }
    };
    let product_slug = slug.into_inner();
    // Where the forms point is settled before anything is written: an organization whose
    // bucket cannot be used gets no build row.
    let target = match &forms {
        None => None,
        Some(forms) => {
            let slug = product_slug.clone();
            let settings = run_db(&state.pool, move |conn| {
                let (_, product) = load_product(conn, &slug)?;
                Ok(find_organization_settings(conn, product.organization_id)?)
            })
            .await?;
            let target = forms
                .target_for(&settings)
                .await
                .map_err(|err| ApiError::unavailable(err.to_string()))?;
            Some((forms, target))
        }
    };
    let caller = identity.clone();
    let body = body.read().await?;
    let (organization, product, request) = run_db(&state.pool, move |conn| {
        let (organization, product) = load_product(conn, &product_slug)?;
        caller.require_for_product(Permissions::UPLOAD_BUILD, product.id)?;
        let request: NewBuildRequest = parse_json(&body)?;
        let slug = ProductSlug::parse(&product.slug).map_err(ApiError::internal)?;
        let request = validate_new_build(request, &slug)?;
        Ok((organization, product, request))
    })
    .await?;
    let store = match &forms_data {
        None => None,
        Some(forms) => {
            let organization_id = product.organization_id;
            let settings = run_db(&state.pool, move |conn| {
                Ok(find_organization_settings(conn, organization_id)?)
            })
            .await?;
            Some(
                forms
                    .store_for(&settings)
                    .await
                    .map_err(|err| ApiError::unavailable(err.to_string()))?,
            )
        }
    };
    let build = register_build(&state, store, &product, &request, &identity).await?;
    let directories = request.directories;
    let mut response = build_response(&state, &organization, &product, &build)?;
    if let Some((forms, target)) = target {
        let build_prefix = BucketPrefix::build(
            &crate::api::publishing::product_slug(&product)?,
            &crate::api::publishing::build_slug(&build)?,
        );
        let directories = directories
            .into_iter()
            .map(|name| {
                let prefix = build_prefix.directory(&name).map_err(ApiError::internal)?;
                Ok((name, prefix))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let signed = forms
            .sign(
                &target,
                &state.url_for(UPLOAD_PATH),
                &directories,
                &build.surrogate_key,
                chrono::Utc::now(),
            )
            .await
            .map_err(ApiError::internal)?;
        response.post_prefix_urls = Some(signed.prefix);
        response.post_dir_urls = Some(signed.dir);
    }
    tracing::info!(product.slug = %product.slug, build.slug = %build.slug,
        upload_forms = response.post_prefix_urls.as_ref().map_or(0, |forms| forms.len()),
        "build registered");
    Ok(created(&response.self_url.clone(), &response))
}

/// Registers the build under the requested slug, or the next free number, in its own
/// transaction per attempt. A slug whose prefix already holds objects in `store` is never given
/// out (those objects outlived their database rows: a restored or wiped database): an automatic
/// slug moves on to the next number, a requested one is refused. An automatic slug that a
/// concurrent request took first is retried.
async fn register_build(
    state: &AppState,
    store: Option<Arc<dyn ObjectStore>>,
    product: &Product,
    request: &ValidBuildRequest,
    identity: &Identity,
) -> ApiResult<Build> {
    let product_slug = crate::api::publishing::product_slug(product)?;
    let mut occupied: HashSet<u64> = HashSet::new();
    for _ in 0..AUTO_SLUG_ATTEMPTS {
        let (slug, automatic, reservation) = match &request.slug {
            Some(slug) => (slug.clone(), None, None),
            None => {
                let product_id = product.id;
                let mut skip = state.numbers_in_flight.passed_over(product_id);
                skip.extend(&occupied);
                let next = run_db_read(&state.pool, move |conn| {
                    Ok(next_build_number(conn, product_id, &skip)?)
                })
                .await?;
                state
                    .numbers_in_flight
                    .forget_below(product_id, next.first_free);
                // Past the numbers other registrations reserved while this one read.
                let reservation = state
                    .numbers_in_flight
                    .reserve_from(product_id, next.number);
                let next = NextNumber {
                    number: reservation.number(),
                    ..next
                };
                let slug =
                    BuildSlug::parse(&next.number.to_string()).map_err(ApiError::internal)?;
                (slug, Some(next), Some(reservation))
            }
        };
        if let Some(store) = &store {
            let prefix = BucketPrefix::build(&product_slug, &slug);
            if prefix_holds_objects(store.as_ref(), &prefix).await? {
                if request.slug.is_some() {
                    return Err(ApiError::conflict(format!(
                        "The prefix {prefix} of build {slug} already holds objects that no build \
                         of {} owns (left from before the database was restored?); pick another \
                         slug, or leave the slug out to get the next free number.",
                        product.slug
                    )));
                }
                tracing::warn!(product.slug = %product.slug, build.slug = %slug, "build prefix already holds objects; taking the next slug");
                occupied.extend(automatic.map(|next| next.number));
                continue;
            }
        }
        let (row, wanted, who, chosen) = (
            product.clone(),
            request.clone(),
            identity.clone(),
            slug.clone(),
        );
        let attempt = run_db_as(&state.pool, who.cause(), move |conn| {
            Ok(insert_build_row(
                conn, &row, &wanted, &who, &chosen, automatic,
            ))
        })
        .await?;
        match attempt {
            Ok(build) => {
                if let Some(reservation) = reservation {
                    reservation.inserted();
                }
                return Ok(build);
            }
            Err(err) if violation(&err) == Some(Violation::Unique) => {
                if request.slug.is_none() {
                    continue;
                }
                // The original's answer to a duplicate build slug.
                return Err(ApiError::bad_request(format!(
                    "Product {} already has a build {slug}.",
                    product.slug
                )));
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(ApiError::conflict(
        "Too many concurrent uploads took the next build slug; retry.",
    ))
}

/// Whether any object lies under `prefix` (or at its directory-redirect key).
async fn prefix_holds_objects(store: &dyn ObjectStore, prefix: &BucketPrefix) -> ApiResult<bool> {
    let unavailable = |err: StorageError| {
        tracing::warn!(error = %err, prefix = %prefix, "checking a new build's prefix failed");
        ApiError::unavailable("The object store does not answer; retry the request shortly.")
    };
    let first = store
        .list(prefix.as_str())
        .try_next()
        .await
        .map_err(unavailable)?;
    if first.is_some_and(|page| !page.is_empty()) {
        return Ok(true);
    }
    match store.head(prefix.as_dir_key()).await {
        Ok(_) => Ok(true),
        Err(StorageError::NotFound { .. }) => Ok(false),
        Err(err) => Err(unavailable(err)),
    }
}

/// Inserts the build under `slug` (and its automatic edition) in one transaction; an automatic
/// slug (`automatic`) raises the product's floor of taken numbers in the same transaction.
fn insert_build_row(
    conn: &mut DbConnection,
    product: &Product,
    request: &ValidBuildRequest,
    identity: &Identity,
    slug: &BuildSlug,
    automatic: Option<NextNumber>,
) -> Result<Build, diesel::result::Error> {
    let git_refs = serde_json::Value::from(request.git_refs.clone()).to_string();
    conn.write_transaction(|conn| {
        let build = insert_build(
            conn,
            &NewBuild {
                product_id: product.id,
                slug: slug.as_str(),
                git_refs: &git_refs,
                github_requester: request.github_requester.as_deref(),
                uploaded: false,
                date_created: now(),
                surrogate_key: SurrogateKey::generate().as_str(),
            },
        )?;
        if let Some(next) = automatic {
            raise_build_slug_floor(conn, product.id, next.floor_after())?;
        }
        records::enqueue(conn, product, Subject::Build(build.id))?;
        if identity.permissions.contains(Permissions::ADMIN_EDITION) {
            create_edition_for_refs(conn, product, &request.git_refs)?;
        }
        Ok(build)
    })
}

/// When no live edition tracks exactly these refs, creates one (mode `git_refs`) named after
/// them. A slug already taken by an edition that tracks something else is left alone.
fn create_edition_for_refs(
    conn: &mut DbConnection,
    product: &Product,
    refs: &[String],
) -> diesel::QueryResult<()> {
    let already_tracked = list_editions(conn, product.id)?.iter().any(|edition| {
        edition.tracking_mode == TrackingMode::GitRefs
            && edition.tracked_ref_list().as_deref() == Some(refs)
    });
    if already_tracked {
        return Ok(());
    }
    let Ok(slug) = edition_slug_from_git_refs(refs) else {
        return Ok(());
    };
    if DashboardFile::reserves("v", slug.as_str()) {
        return Ok(()); // A branch named after a dashboard file gets no edition of its own.
    }
    let tracked = serde_json::Value::from(refs.to_vec()).to_string();
    let created = insert_edition_if_absent(
        conn,
        &NewEdition {
            product_id: product.id,
            slug: slug.as_str(),
            title: slug.as_str(),
            tracking_mode: TrackingMode::GitRefs,
            tracked_refs: Some(&tracked),
            kind: edition_kind(&slug, refs),
            build_id: None,
            date_created: now(),
            surrogate_key: SurrogateKey::generate().as_str(),
            auto_created: true,
        },
    )?;
    if let Some(edition) = created {
        records::enqueue(conn, product, Subject::Edition(edition.id))?;
        dashboard::enqueue(conn, product)?;
    }
    Ok(())
}

#[utoipa::path(patch, path = "/builds/{id}", tag = "builds", request_body = BuildPatchRequest,
    params(("id" = i64, Path, description = "Build id")),
    responses((status = 200, body = BuildResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn patch_build(
    state: web::Data<AppState>,
    credentials: Credentials,
    id: web::Path<i64>,
    body: Body,
) -> ApiResult<web::Json<BuildResponse>> {
    let identity = authenticate(&state, &credentials).await?;
    identity.require(Permissions::UPLOAD_BUILD)?;
    let id = id.into_inner();
    let body = body.read().await?;
    let public_base = state.public_base().to_owned();
    let ((organization, product, build, updated), operation) =
        run_db_as(&state.pool, identity.cause(), move |conn| {
            let (_, product, _) = load_build(conn, id)?;
            identity.require_for_product(Permissions::UPLOAD_BUILD, product.id)?;
            let request: BuildPatchRequest = parse_json(&body)?;
            if !request.uploaded {
                return Err(ApiError::bad_request(
                    "A build can only be confirmed (uploaded: true).",
                ));
            }
            conn.write_transaction(|conn| {
                let (organization, product, build) = load_build(conn, id)?;
                if build.date_ended.is_some() {
                    return Err(ApiError::bad_request(
                        "The build is deprecated; upload a new one.",
                    ));
                }
                if build.uploaded {
                    // Confirming twice changes nothing; the answer names the rebuilds still queued.
                    let queued = unfinished_rebuilds_of_build(conn, build.id)?;
                    let updated = editions_of(conn, queued)?;
                    return Ok((organization, product, build, updated));
                }
                let build = mark_uploaded(conn, build.id)?;
                seal::enqueue(conn, &product, &build)?;
                records::enqueue(conn, &product, Subject::Build(build.id))?;
                dashboard::enqueue(conn, &product)?;
                let operations = rebuild_tracking_editions(conn, &product, &build)?;
                let happened = Happened::BuildConfirmed {
                    product: &product,
                    build: &build,
                };
                webhook::notify(conn, &public_base, &happened)?;
                tracing::info!(product.slug = %product.slug, build.slug = %build.slug,
                rebuilds = operations.len(), "build confirmed");
                let updated = editions_of(conn, operations)?;
                Ok((organization, product, build, updated))
            })
            .and_then(|confirmed| {
                let operation = latest_operation_on(conn, None, Some(confirmed.2.id))?;
                Ok((confirmed, operation))
            })
        })
        .await?;
    let mut response = respond(&state, &organization, &product, &build, operation)?;
    let mut editions = Vec::with_capacity(updated.len());
    for (edition, operation) in &updated {
        editions.push(EditionUpdate {
            edition_url: state.url_for(&format!("editions/{}", edition.id)),
            slug: edition.slug.clone(),
            published_url: edition_published_url(&state, &organization, &product, edition)?,
            operation_url: state.url_for(&format!("operations/{}", operation.id)),
        });
    }
    response.editions_updated = Some(editions);
    Ok(web::Json(response))
}

/// The editions of rebuild `operations`, each with its operation.
fn editions_of(
    conn: &mut DbConnection,
    operations: Vec<Operation>,
) -> Result<Vec<(Edition, Operation)>, ApiError> {
    let mut found = Vec::with_capacity(operations.len());
    for operation in operations {
        if let Some(edition_id) = operation.edition_id {
            found.push((find_edition(conn, edition_id)?, operation));
        }
    }
    Ok(found)
}

#[utoipa::path(delete, path = "/builds/{id}", tag = "builds",
    params(("id" = i64, Path, description = "Build id")),
    responses((status = 200, body = BuildResponse), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn deprecate(
    state: web::Data<AppState>,
    credentials: Credentials,
    id: web::Path<i64>,
) -> ApiResult<web::Json<BuildResponse>> {
    let identity = authenticate(&state, &credentials).await?;
    identity.require(Permissions::DEPRECATE_BUILD)?;
    let id = id.into_inner();
    let (organization, product, build, operation) =
        run_db_as(&state.pool, identity.cause(), move |conn| {
            conn.write_transaction(|conn| {
                let (organization, product, build) = load_build(conn, id)?;
                identity.require_for_product(Permissions::DEPRECATE_BUILD, product.id)?;
                if build.date_ended.is_some() {
                    return Ok((organization, product, build));
                }
                let build = deprecate_build(conn, build.id, now())?;
                delete::enqueue_build(conn, &product, &build)?;
                records::enqueue(conn, &product, Subject::Build(build.id))?;
                dashboard::enqueue(conn, &product)?;
                Ok((organization, product, build))
            })
            .and_then(|(organization, product, build)| {
                let operation = latest_operation_on(conn, None, Some(build.id))?;
                Ok((organization, product, build, operation))
            })
        })
        .await?;
    tracing::info!(product.slug = %product.slug, build.slug = %build.slug, "build deprecated");
    respond(&state, &organization, &product, &build, operation).map(web::Json)
}
