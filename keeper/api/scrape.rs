//! `GET /metrics`: the process's metrics in the Prometheus text format ([`crate::metrics`]),
//! with the queue's gauges read from the database at scrape time (one grouped count and one
//! minimum) and the pool's from r2d2.

use actix_web::{web, HttpResponse};

use crate::api::app::AppState;
use crate::api::database::run_db;
use crate::db::models::now;
use crate::db::operations::{counts_by_kind_and_state, oldest_ready_created};
use crate::db::DbPool;
use crate::error::ApiResult;
use crate::metrics::{metrics, CONTENT_TYPE};

/// Reads the queue's and the pool's gauges into the registry.
pub async fn refresh_gauges(pool: &DbPool) -> ApiResult<()> {
    let (counts, oldest) = run_db(pool, |conn| {
        Ok((counts_by_kind_and_state(conn)?, oldest_ready_created(conn)?))
    })
    .await?;
    let counts: Vec<(String, String, i64)> = counts
        .into_iter()
        .map(|(kind, state, count)| (kind.to_string(), state.to_string(), count))
        .collect();
    let age = oldest.and_then(|created| (now() - created).to_std().ok());
    metrics().set_queue(&counts, age);
    record_pool(pool);
    Ok(())
}

/// Sets the pool gauges from r2d2's state.
pub fn record_pool(pool: &DbPool) {
    let state = pool.state();
    metrics().set_pool(
        state.idle_connections,
        state.connections.saturating_sub(state.idle_connections),
    );
}

pub async fn get_metrics(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    refresh_gauges(&state.pool).await?;
    Ok(exposition())
}

fn exposition() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(metrics().encode())
}

/// The routes of `keeper worker`'s own listener (`KEEPER_WORKER_METRICS_BIND`): `/metrics`
/// (this process's counters; the queue's gauges too) and the probes, `/health/live` (the
/// process answers) and `/health/ready` (the database answers).
pub fn worker_routes(config: &mut web::ServiceConfig, pool: DbPool) {
    config
        .app_data(web::Data::new(pool))
        .route(
            "/metrics",
            web::get().to(|pool: web::Data<DbPool>| async move {
                refresh_gauges(&pool).await.map(|()| exposition())
            }),
        )
        .route("/health/live", web::get().to(crate::api::health::live))
        .route(
            "/health/ready",
            web::get().to(|pool: web::Data<DbPool>| async move {
                crate::api::health::database_answers(&pool)
                    .await
                    .map(|()| web::Json(crate::api::health::HealthResponse { status: "ok" }))
            }),
        );
}
