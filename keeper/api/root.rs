//! `GET /`: the service's identity, in the original's shape. Clients read `server_version`.

use actix_web::web;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::app::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct RootResponse {
    pub data: RootData,
    pub links: RootLinks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RootData {
    pub server_version: &'static str,
    pub documentation: &'static str,
    pub message: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RootLinks {
    /// The original's name for this document's URL; `self_url` says the same.
    #[serde(rename = "self")]
    pub self_link: String,
    pub self_url: String,
    pub token: String,
    pub products: String,
}

pub const DOCUMENTATION_URL: &str = "https://ltd-keeper.lsst.io";

#[utoipa::path(get, path = "/", tag = "service", responses((status = 200, body = RootResponse)))]
pub async fn get_root(state: web::Data<AppState>) -> web::Json<RootResponse> {
    web::Json(RootResponse {
        data: RootData {
            server_version: env!("CARGO_PKG_VERSION"),
            documentation: DOCUMENTATION_URL,
            message: "LTD Keeper: the documentation hosting service of LSST the Docs.",
        },
        links: RootLinks {
            self_link: state.url_for(""),
            self_url: state.url_for(""),
            token: state.url_for("token"),
            products: state.url_for("products/"),
        },
    })
}
