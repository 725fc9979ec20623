//! HTTP handlers, one file per resource.

pub mod health;
pub mod root;
pub mod sites;
pub mod uploads;

use actix_web::web;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/").route(web::get().to(root::get_root)))
        .service(web::resource("/health/live").route(web::get().to(health::live)))
        .service(web::resource("/health/ready").route(web::get().to(health::ready)));
}

/// The object-store routes: the site server, and keeper's own upload endpoint (local store).
#[derive(Debug, Clone)]
pub struct StorageServices {
    pub sites: sites::SiteServer,
    pub uploads: Option<uploads::UploadEndpoint>,
}

impl StorageServices {
    pub fn configure(&self, config: &mut web::ServiceConfig) {
        if let Some(uploads) = &self.uploads {
            uploads.configure(config);
        }
        self.sites.configure(config);
    }
}
