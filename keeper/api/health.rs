//! Liveness (the process answers) and readiness (the database answers) probes.

use actix_web::web;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::app::AppState;
use crate::api::database::run_db_read;
use crate::db::DbPool;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    pub status: &'static str,
}

#[utoipa::path(get, path = "/health/live", tag = "service", responses((status = 200, body = HealthResponse)))]
pub async fn live() -> web::Json<HealthResponse> {
    web::Json(HealthResponse { status: "ok" })
}

#[utoipa::path(get, path = "/health/ready", tag = "service",
    responses((status = 200, body = HealthResponse), (status = 503, body = crate::error::ErrorBody)))]
/// 200 when a pooled connection answers a query, else 503 in the JSON error shape.
pub async fn ready(state: web::Data<AppState>) -> ApiResult<web::Json<HealthResponse>> {
    database_answers(&state.pool).await?;
    Ok(web::Json(HealthResponse { status: "ok" }))
}

/// Whether a pooled connection answers a query; a connection found dead is replaced first, so
/// that a database back from a restart reads as ready at once.
pub async fn database_answers(pool: &DbPool) -> ApiResult<()> {
    run_db_read(pool, |conn| {
        conn.ping().map_err(|err| {
            let err = ApiError::from(err);
            if err.is_connection_lost() {
                return err;
            }
            tracing::warn!(error = %err, "readiness check: the database does not answer");
            ApiError::unavailable("The database does not answer.")
        })
    })
    .await
}
