//! `GET /operations/` (filtered by state, kind and product, newest first, a page at a time),
//! `GET /operations/<id>`: the state of background operations, and what caused each;
//! `POST /operations/<id>/retry` (admin_product) puts a FAILED one back in the queue.

use std::collections::HashMap;

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::app::AppState;
use crate::api::database::run_db;
use crate::api::identity::{authenticate, Credentials};
use crate::api::json::format_datetime;
use crate::api::products::load_product;
use crate::db::models::Operation;
use crate::db::operations::{find_operation, list_operations, OperationFilter};
use crate::db::products::product_slugs_by_id;
use crate::domain::{OperationKind, OperationState, Permissions};
use crate::error::{or_not_found, ApiError, ApiResult};
use crate::ops::queue::{retry_failed, RetryRefusal};

#[derive(Debug, Serialize, ToSchema)]
pub struct OperationResponse {
    pub self_url: String,
    /// `rebuild_edition`, `rename_edition`, `delete_edition`, `delete_build`, `purge`,
    /// `dashboard`, `seal_build`, `write_record`, `retention` or `deliver_webhook`.
    pub kind: String,
    /// `READY`, `WORKING`, `OK`, `FAILED` or `SUPERSEDED`.
    pub state: String,
    /// Who or what queued it: `user alice`, `user ci (API token 3)`, `operation 12
    /// (rebuild_edition)`, `keeper adopt`, `keeper verify --repair`; null for operations queued
    /// before keeper recorded it, and for anonymous callers (it names users).
    pub caused_by: Option<String>,
    pub product_url: Option<String>,
    pub edition_url: Option<String>,
    pub build_url: Option<String>,
    pub message: Option<String>,
    pub attempts: i32,
    pub progress: Progress,
    pub date_created: String,
    pub date_updated: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Progress {
    /// Objects done.
    pub done: i64,
    /// Objects in all, once known.
    pub total: Option<i64>,
}

/// The filters and page of `GET /operations/`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OperationQuery {
    /// `READY`, `WORKING`, `OK`, `FAILED` or `SUPERSEDED`.
    pub state: Option<String>,
    /// An operation kind, e.g. `rebuild_edition`.
    pub kind: Option<String>,
    /// A product slug.
    pub product: Option<String>,
    /// Operations per page: 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// Only operations older than this id: the `next` URL of the previous page sets it.
    pub before: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OperationListResponse {
    /// Newest first.
    pub operations: Vec<OperationResponse>,
    /// The next page, if there is one.
    pub next: Option<String>,
}

/// Operations per page when `limit` is not given, and at most.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

#[utoipa::path(get, path = "/operations/", tag = "operations", params(OperationQuery),
    responses((status = 200, body = OperationListResponse), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
/// Operations newest first, filtered: `?state=FAILED&kind=rebuild_edition&product=demo`.
pub async fn list(
    state: web::Data<AppState>,
    credentials: Credentials,
    query: web::Query<OperationQuery>,
) -> ApiResult<web::Json<OperationListResponse>> {
    let shows_causes = sees_causes(&state, &credentials).await?;
    let query = query.into_inner();
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::unprocessable(format!(
            "limit must be between 1 and {MAX_LIMIT}."
        )));
    }
    let mut filter = OperationFilter {
        state: query
            .state
            .as_deref()
            .map(OperationState::parse)
            .transpose()
            .map_err(|err| ApiError::unprocessable(err.to_string()))?,
        kind: query
            .kind
            .as_deref()
            .map(OperationKind::parse)
            .transpose()
            .map_err(|err| ApiError::unprocessable(err.to_string()))?,
        product_id: None,
        before: query.before,
    };
    let product = query.product.clone();
    let (operations, slugs) = run_db(&state.pool, move |conn| {
        if let Some(slug) = &product {
            filter.product_id = Some(load_product(conn, slug)?.1.id);
        }
        let mut operations = list_operations(conn, &filter, limit + 1)?;
        let more = operations.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        operations.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let slugs = product_slugs_of(conn, &operations)?;
        Ok(((operations, more), slugs))
    })
    .await?;
    let (operations, more) = operations;
    let next = match (more, operations.last()) {
        (true, Some(last)) => {
            let mut url =
                url::Url::parse(&state.url_for("operations/")).map_err(ApiError::internal)?;
            {
                let mut pairs = url.query_pairs_mut();
                for (name, value) in [
                    ("state", &query.state),
                    ("kind", &query.kind),
                    ("product", &query.product),
                ] {
                    if let Some(value) = value {
                        pairs.append_pair(name, value);
                    }
                }
                pairs.append_pair("limit", &limit.to_string());
                pairs.append_pair("before", &last.id.to_string());
            }
            Some(url.to_string())
        }
        _ => None,
    };
    Ok(web::Json(OperationListResponse {
        operations: operations
            .into_iter()
            .map(|operation| with_product(&state, operation, &slugs, shows_causes))
            .collect(),
        next,
    }))
}

/// The slugs of the products `operations` are about, by id.
fn product_slugs_of(
    conn: &mut crate::db::DbConnection,
    operations: &[Operation],
) -> Result<HashMap<i64, String>, ApiError> {
    let mut ids: Vec<i64> = operations.iter().filter_map(|op| op.product_id).collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(product_slugs_by_id(conn, &ids)?.into_iter().collect())
}

/// An operation's answer with its product's URL, and its cause when `shows_causes`.
fn with_product(
    state: &AppState,
    operation: Operation,
    slugs: &HashMap<i64, String>,
    shows_causes: bool,
) -> OperationResponse {
    let product_url = operation
        .product_id
        .and_then(|id| slugs.get(&id))
        .map(|slug| state.url_for(&format!("products/{slug}")));
    let response = operation_response(state, operation);
    OperationResponse {
        product_url,
        caused_by: response.caused_by.clone().filter(|_| shows_causes),
        ..response
    }
}

#[utoipa::path(get, path = "/operations/{id}", tag = "operations",
    params(("id" = i64, Path, description = "Operation id")),
    responses((status = 200, body = OperationResponse), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    credentials: Credentials,
    id: web::Path<i64>,
) -> ApiResult<web::Json<OperationResponse>> {
    let shows_causes = sees_causes(&state, &credentials).await?;
    let id = id.into_inner();
    let (operation, slugs) = run_db(&state.pool, move |conn| {
        let operation = or_not_found(find_operation(conn, id), || format!("No operation {id}."))?;
        let slugs = product_slugs_of(conn, std::slice::from_ref(&operation))?;
        Ok((operation, slugs))
    })
    .await?;
    Ok(web::Json(with_product(
        &state,
        operation,
        &slugs,
        shows_causes,
    )))
}

/// Whether the caller sees who caused operations (`caused_by` names users): any authenticated
/// caller does; an anonymous one reads operations without it. Bad credentials are 401.
pub(crate) async fn sees_causes(state: &AppState, credentials: &Credentials) -> ApiResult<bool> {
    match credentials {
        Credentials::None => Ok(false),
        _ => authenticate(state, credentials).await.map(|_| true),
    }
}

pub(crate) fn operation_response(state: &AppState, operation: Operation) -> OperationResponse {
    OperationResponse {
        self_url: state.url_for(&format!("operations/{}", operation.id)),
        kind: operation.kind.to_string(),
        state: operation.state.to_string(),
        caused_by: operation.caused_by,
        product_url: None,
        edition_url: operation
            .edition_id
            .map(|id| state.url_for(&format!("editions/{id}"))),
        build_url: operation
            .build_id
            .map(|id| state.url_for(&format!("builds/{id}"))),
        message: operation.message,
        attempts: operation.attempts,
        progress: Progress {
            done: operation.progress_done,
            total: operation.progress_total,
        },
        date_created: format_datetime(operation.date_created),
        date_updated: format_datetime(operation.date_updated),
    }
}

#[utoipa::path(post, path = "/operations/{id}/retry", tag = "operations",
    params(("id" = i64, Path, description = "Operation id")),
    responses((status = 200, body = OperationResponse), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)),
    security(("token" = [])))]
/// Puts a FAILED operation back to READY with a fresh attempt count. Needs `admin_product` (for
/// the operation's product when it has one). 409 unless the operation is FAILED.
pub async fn retry(
    state: web::Data<AppState>,
    credentials: Credentials,
    id: web::Path<i64>,
) -> ApiResult<web::Json<OperationResponse>> {
    let identity = authenticate(&state, &credentials).await?;
    identity.require(Permissions::ADMIN_PRODUCT)?;
    let id = id.into_inner();
    let (operation, slugs) = run_db(&state.pool, move |conn| {
        let current = find_operation(conn, id).map_err(|err| match err {
            diesel::result::Error::NotFound => ApiError::not_found(format!("No operation {id}.")),
            other => other.into(),
        })?;
        match current.product_id {
            Some(product) => identity.require_for_product(Permissions::ADMIN_PRODUCT, product)?,
            None => identity.require_unscoped(Permissions::ADMIN_PRODUCT)?,
        }
        let operation = match retry_failed(conn, id)? {
            Ok(operation) => operation,
            Err(RetryRefusal::NotFound) => {
                return Err(ApiError::not_found(format!("No operation {id}.")))
            }
            Err(RetryRefusal::NotFailed(state)) => {
                return Err(ApiError::conflict(format!(
                    "Operation {id} is {state}; only a FAILED operation can be retried."
                )))
            }
        };
        let slugs = product_slugs_of(conn, std::slice::from_ref(&operation))?;
        Ok((operation, slugs))
    })
    .await?;
    tracing::info!(operation.id = id, "operation retry requested");
    Ok(web::Json(with_product(&state, operation, &slugs, true)))
}
