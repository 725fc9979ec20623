//! `POST /products/<slug>/dashboard` and `POST /dashboards` (admin_product, as in the original):
//! render a product's dashboards and version lists again, or every product's (after an
//! upgrade changed how they look). 202 with the queued renders; a render already queued is
//! answered instead of adding another.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::app::AppState;
use crate::api::database::run_db_as;
use crate::api::identity::{authenticate, Credentials};
use crate::api::operations::{operation_response, OperationResponse};
use crate::api::products::load_product;
use crate::db::models::Operation;
use crate::db::products::list_products_with_organizations;
use crate::domain::Permissions;
use crate::error::{ApiError, ApiResult};
use crate::ops::dashboard;

#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardsResponse {
    /// One queued render per product.
    pub operations: Vec<OperationResponse>,
}

#[utoipa::path(post, path = "/products/{slug}/dashboard", tag = "products",
    params(("slug" = String, Path, description = "Product slug")),
    responses((status = 202, body = OperationResponse), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("token" = [])))]
pub async fn render_product(
    state: web::Data<AppState>,
    credentials: Credentials,
    slug: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let identity = authenticate(&state, &credentials).await?;
    identity.require(Permissions::ADMIN_PRODUCT)?;
    let slug = slug.into_inner();
    let (operation, slug) = run_db_as(&state.pool, identity.cause(), move |conn| {
        conn.write_transaction(|conn| {
            let (_, product) = load_product(conn, &slug)?;
            identity.require_for_product(Permissions::ADMIN_PRODUCT, product.id)?;
            Ok::<_, ApiError>((dashboard::enqueue(conn, &product)?, product.slug))
        })
    })
    .await?;
    let body = of_product(&state, operation, &slug);
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, body.self_url.clone()))
        .json(body))
}

#[utoipa::path(post, path = "/dashboards", tag = "products",
    responses((status = 202, body = DashboardsResponse), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody)),
    security(("token" = [])))]
/// Needs `admin_product` on every product (a token narrowed to some products is refused).
pub async fn render_all(
    state: web::Data<AppState>,
    credentials: Credentials,
) -> ApiResult<HttpResponse> {
    let identity = authenticate(&state, &credentials).await?;
    identity.require_unscoped(Permissions::ADMIN_PRODUCT)?;
    let operations = run_db_as(&state.pool, identity.cause(), move |conn| {
        conn.write_transaction(|conn| {
            let products = list_products_with_organizations(conn)?;
            let mut queued = Vec::with_capacity(products.len());
            for (product, _) in &products {
                queued.push((dashboard::enqueue(conn, product)?, product.slug.clone()));
            }
            Ok::<_, ApiError>(queued)
        })
    })
    .await?;
    tracing::info!(products = operations.len(), "dashboards requested");
    Ok(HttpResponse::Accepted().json(DashboardsResponse {
        operations: operations
            .into_iter()
            .map(|(operation, slug)| of_product(&state, operation, &slug))
            .collect(),
    }))
}

/// A render's answer, with its product's URL.
fn of_product(state: &AppState, operation: Operation, slug: &str) -> OperationResponse {
    OperationResponse {
        product_url: Some(state.url_for(&format!("products/{slug}"))),
        ..operation_response(state, operation)
    }
}
