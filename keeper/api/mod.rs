//! The HTTP edge: the actix application and its state (`app`), who is calling (`identity`),
//! handlers, one file per resource, and the wire shapes (`publishing`). Nothing below `api`
//! knows HTTP.

pub mod app;
pub(crate) mod body;
pub mod builds;
pub(crate) mod dashboards;
pub(crate) mod database;
pub(crate) mod docs_index;
pub(crate) mod edition_history;
pub(crate) mod editions;
pub(crate) mod health;
pub(crate) mod identity;
pub(crate) mod json;
pub(crate) mod numbers_in_flight;
pub(crate) mod openapi;
pub(crate) mod operations;
pub(crate) mod orgs;
pub(crate) mod products;
pub(crate) mod publishing;
pub(crate) mod request_log;
pub(crate) mod root;
pub(crate) mod scrape;
pub mod sites;
pub(crate) mod token;
pub(crate) mod tokens;
pub mod uploads;
pub(crate) mod users;
pub(crate) mod webhooks;

use actix_web::{web, HttpRequest, HttpResponse};

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/").route(web::get().to(root::get_root)))
        .service(web::resource("/metrics").route(web::get().to(scrape::get_metrics)))
        .service(web::resource("/favicon.ico").route(web::get().to(root::favicon)))
        .service(web::resource("/health/live").route(web::get().to(health::live)))
        .service(web::resource("/health/ready").route(web::get().to(health::ready)))
        .service(web::resource("/openapi.json").route(web::get().to(openapi::openapi_json)))
        .service(web::resource("/token").route(web::get().to(token::get_token)))
        .service(
            web::resource("/products/")
                .route(web::get().to(products::list_products))
                .route(web::post().to(products::create_product)),
        )
        .service(
            web::resource("/products/{slug}")
                .route(web::get().to(products::get_product))
                .route(web::patch().to(products::patch_product)),
        )
        .service(
            web::resource("/products/{slug}/dashboard")
                .route(web::post().to(dashboards::render_product)),
        )
        .service(web::resource("/dashboards").route(web::post().to(dashboards::render_all)))
        .service(
            web::resource("/products/{slug}/builds/")
                .route(web::get().to(builds::list_builds))
                .route(web::post().to(builds::create_build)),
        )
        .service(
            web::resource("/products/{slug}/editions/")
                .route(web::get().to(editions::list))
                .route(web::post().to(editions::create)),
        )
        .service(
            web::resource("/builds/{id}")
                .route(web::get().to(builds::get_build))
                .route(web::patch().to(builds::patch_build))
                .route(web::delete().to(builds::deprecate)),
        )
        .service(
            web::resource("/editions/{id}")
                .route(web::get().to(editions::get))
                .route(web::patch().to(editions::patch))
                .route(web::delete().to(editions::delete)),
        )
        .service(
            web::resource("/editions/{id}/history").route(web::get().to(edition_history::list)),
        )
        .service(web::resource("/editions/{id}/rollback").route(web::post().to(editions::rollback)))
        .service(web::resource("/operations/").route(web::get().to(operations::list)))
        .service(
            web::resource("/orgs/")
                .route(web::get().to(orgs::list))
                .route(web::post().to(orgs::create)),
        )
        .service(
            web::resource("/orgs/{slug}")
                .route(web::get().to(orgs::get))
                .route(web::patch().to(orgs::patch)),
        )
        .service(
            web::resource("/orgs/{slug}/admins/{username}")
                .route(web::put().to(orgs::grant))
                .route(web::delete().to(orgs::revoke)),
        )
        .service(
            web::resource("/webhooks/")
                .route(web::get().to(webhooks::list))
                .route(web::post().to(webhooks::create)),
        )
        .service(
            web::resource("/webhooks/{id}")
                .route(web::get().to(webhooks::get))
                .route(web::delete().to(webhooks::delete)),
        )
        .service(
            web::resource("/webhooks/{id}/deliveries").route(web::get().to(webhooks::deliveries)),
        )
        .service(web::resource("/operations/{id}").route(web::get().to(operations::get)))
        .service(web::resource("/operations/{id}/retry").route(web::post().to(operations::retry)))
        .service(
            web::resource("/users/")
                .route(web::get().to(users::list))
                .route(web::post().to(users::create)),
        )
        .service(
            web::resource("/users/{username}")
                .route(web::get().to(users::get))
                .route(web::patch().to(users::patch))
                .route(web::delete().to(users::delete)),
        )
        .service(
            web::resource("/tokens/")
                .route(web::get().to(tokens::list))
                .route(web::post().to(tokens::create)),
        )
        .service(web::resource("/tokens/{id}").route(web::delete().to(tokens::revoke)));
    // Collections live at a trailing slash, as in the original: redirect the bare form.
    for collection in ["/products", "/users", "/tokens", "/operations", "/orgs"] {
        config.service(web::resource(collection).to(redirect_to_slash));
    }
    config
        .service(web::resource("/products/{slug}/builds").to(redirect_to_slash))
        .service(web::resource("/products/{slug}/editions").to(redirect_to_slash));
}

/// 308 to the same path with a trailing slash (method and body are kept by clients).
async fn redirect_to_slash(request: HttpRequest) -> HttpResponse {
    let query = request.query_string();
    let location = if query.is_empty() {
        format!("{}/", request.path())
    } else {
        format!("{}/?{query}", request.path())
    };
    HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish()
}

/// The object-store routes: the site server, and keeper's own upload endpoint (local store);
/// and the signer of new builds' upload forms.
#[derive(Debug, Clone)]
pub struct StorageServices {
    pub sites: sites::SiteServer,
    pub uploads: Option<uploads::UploadEndpoint>,
    /// Without it, a build request asking for upload forms is answered 503.
    pub forms: Option<uploads::UploadForms>,
}

impl StorageServices {
    pub fn configure(&self, config: &mut web::ServiceConfig) {
        if let Some(forms) = &self.forms {
            config.app_data(web::Data::new(forms.clone()));
        }
        if let Some(uploads) = &self.uploads {
            uploads.configure(config);
        }
        self.sites.configure(config);
    }
}
