//! `GET /operations/<id>`: the state of a background operation; `POST /operations/<id>/retry`
//! (admin_product) puts a FAILED one back in the queue.

use actix_web::web;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::app::AppState;
use crate::api::database::run_db;
use crate::api::identity::{authenticate, Credentials};
use crate::api::json::format_datetime;
use crate::db::models::Operation;
use crate::db::operations::find_operation;
use crate::domain::Permissions;
use crate::error::{or_not_found, ApiError, ApiResult};
use crate::ops::queue::{retry_failed, RetryRefusal};

#[derive(Debug, Serialize, ToSchema)]
pub struct OperationResponse {
    pub self_url: String,
    /// `rebuild_edition`, `rename_edition`, `delete_edition`, `delete_build`, `purge`,
    /// `dashboard`, `seal_build` or `write_record`.
    pub kind: String,
    /// `READY`, `WORKING`, `OK`, `FAILED` or `SUPERSEDED`.
    pub state: String,
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

#[utoipa::path(get, path = "/operations/{id}", tag = "operations",
    params(("id" = i64, Path, description = "Operation id")),
    responses((status = 200, body = OperationResponse), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> ApiResult<web::Json<OperationResponse>> {
    let id = id.into_inner();
    let operation = run_db(&state.pool, move |conn| {
        or_not_found(find_operation(conn, id), || format!("No operation {id}."))
    })
    .await?;
    Ok(web::Json(operation_response(&state, operation)))
}

pub(crate) fn operation_response(state: &AppState, operation: Operation) -> OperationResponse {
    OperationResponse {
        self_url: state.url_for(&format!("operations/{}", operation.id)),
        kind: operation.kind.to_string(),
        state: operation.state.to_string(),
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
    let operation = run_db(&state.pool, move |conn| {
        let current = find_operation(conn, id).map_err(|err| match err {
            diesel::result::Error::NotFound => ApiError::not_found(format!("No operation {id}.")),
            other => other.into(),
        })?;
        match current.product_id {
            Some(product) => identity.require_for_product(Permissions::ADMIN_PRODUCT, product)?,
            None => identity.require_unscoped(Permissions::ADMIN_PRODUCT)?,
        }
        match retry_failed(conn, id)? {
            Ok(operation) => Ok(operation),
            Err(RetryRefusal::NotFound) => Err(ApiError::not_found(format!("No operation {id}."))),
            Err(RetryRefusal::NotFailed(state)) => Err(ApiError::conflict(format!(
                "Operation {id} is {state}; only a FAILED operation can be retried."
            ))),
        }
    })
    .await?;
    tracing::info!(operation.id = id, "operation retry requested");
    Ok(web::Json(operation_response(&state, operation)))
}
