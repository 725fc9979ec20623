//! The OpenAPI document, generated from the handlers' annotations, served at `/openapi.json`.

use actix_web::web;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{
    builds, dashboards, edition_history, editions, health, operations, orgs, products, root, token,
    tokens, users, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "LTD Keeper", description = "Documentation hosting: products, builds, editions."),
    paths(
        root::get_root, health::live, health::ready, token::get_token,
        products::list_products, products::get_product, products::create_product, products::patch_product,
        builds::list_builds, builds::get_build, builds::create_build, builds::patch_build, builds::deprecate,
        editions::list, editions::get, editions::create, editions::patch, editions::delete,
        edition_history::list, editions::rollback,
        operations::list, operations::get, dashboards::render_product, dashboards::render_all,
        operations::retry,
        orgs::list, orgs::get, orgs::create, orgs::patch, orgs::grant, orgs::revoke,
        webhooks::list, webhooks::create, webhooks::get, webhooks::delete, webhooks::deliveries,
        users::list, users::get, users::create, users::patch, users::delete,
        tokens::create, tokens::list, tokens::revoke,
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

pub async fn openapi_json() -> web::Json<utoipa::openapi::OpenApi> {
    web::Json(ApiDoc::openapi())
}
