//! `GET /`: the service's identity, in the original's shape. Clients read `server_version`.
//! A browser (one that prefers HTML) is sent to the list of hosted documentation instead.

use actix_web::http::header::{self, Accept, Header};
use actix_web::{web, HttpRequest, HttpResponse};
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
    /// This API's OpenAPI document.
    pub documentation: String,
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
    /// The hosted documentation, for readers (`/docs/`).
    pub docs: String,
}

/// Keeper's icon: browsers ask every origin for `/favicon.ico`, and a 404 there is an error in
/// every reader's console.
const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">\
<rect x=\"5\" y=\"3\" width=\"22\" height=\"26\" rx=\"3\" fill=\"#0550ae\"/>\
<path d=\"M10 10h12M10 15h12M10 20h8\" stroke=\"#fff\" stroke-width=\"2\"/></svg>";

pub async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((header::CACHE_CONTROL, "max-age=86400"))
        .body(FAVICON)
}

/// Whether the client prefers HTML to JSON (a browser's `Accept: text/html,...,*/*;q=0.8`);
/// API clients send `application/json`, `*/*` or nothing.
fn prefers_html(req: &HttpRequest) -> bool {
    let Ok(accept) = Accept::parse(req) else {
        return false;
    };
    let ranked = accept.ranked();
    let rank = |wanted: &str| {
        ranked
            .iter()
            .position(|mime| mime.essence_str() == wanted)
            .unwrap_or(usize::MAX)
    };
    rank("text/html") < rank("application/json").min(rank("*/*"))
}

#[utoipa::path(get, path = "/", tag = "service", responses((status = 200, body = RootResponse),
    (status = 303, description = "A browser (Accept prefers text/html) is sent to /docs/")))]
pub async fn get_root(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if prefers_html(&req) {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, state.url_for("docs/")))
            .insert_header((header::VARY, "Accept"))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header((header::VARY, "Accept"))
        .json(RootResponse {
            data: RootData {
                server_version: env!("CARGO_PKG_VERSION"),
                documentation: state.url_for("openapi.json"),
                message: "LTD Keeper: the documentation hosting service of LSST the Docs.",
            },
            links: RootLinks {
                self_link: state.url_for(""),
                self_url: state.url_for(""),
                token: state.url_for("token"),
                products: state.url_for("products/"),
                docs: state.url_for("docs/"),
            },
        })
}
