//! `GET /operations/<id>`: the state of a background operation.

use actix_web::web;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::json::format_datetime;
use crate::app::AppState;
use crate::db::operations::find_operation;
use crate::db::pool;
use crate::error::{or_not_found, ApiResult};

#[derive(Debug, Serialize, ToSchema)]
pub struct OperationResponse {
    pub self_url: String,
    /// `rebuild_edition`, `rename_edition`, `delete_edition`, `delete_build` or `purge`.
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
    let operation = pool::run(&state.pool, move |conn| {
        or_not_found(find_operation(conn, id), || format!("No operation {id}."))
    })
    .await?;
    Ok(web::Json(OperationResponse {
        self_url: state.url_for(&format!("operations/{}", operation.id)),
        kind: operation.kind,
        state: operation.state,
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
    }))
}
