//! HTTP handlers, one file per resource.

pub mod health;
pub mod root;

use actix_web::web;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/").route(web::get().to(root::get_root)))
        .service(web::resource("/health/live").route(web::get().to(health::live)))
        .service(web::resource("/health/ready").route(web::get().to(health::ready)));
}
