//! The built-in site server: readers with no CDN read the published sites from keeper itself.
//!
//! URL rules (DESIGN.md section 4, the same as the Varnish and Fastly configurations):
//! - path layout, under `/docs`: `/docs/<product>/...` is the default edition
//!   (`<product>/v/__main/...`, or `v/main/` for a product adopted from LTD Keeper 1.x: see
//!   [`DefaultEditions`]), `/docs/<product>/v/<edition>/...` an edition,
//!   `/docs/<product>/builds/<build>/...` a build;
//! - subdomain layout, when a root domain is configured: `Host: <product>.<root domain>` serves
//!   that product's paths from `/`;
//! - a path ending in `/` serves `index.html`; an empty object with the metadata
//!   `dir-redirect: true` (or a missing object whose `<key>/index.html` exists) answers a redirect
//!   to the path plus `/`;
//! - `Surrogate-Key`, `Cache-Control`, `Content-Encoding` and `Content-Disposition` come from the
//!   object; `Content-Type` too, else it is guessed from the name; `ETag` and `If-None-Match`
//!   (304); HEAD; an HTML 404 page.
//!
//! Only whole keys are read: no listing, and a path cannot leave its product's prefix (`.`, `..`,
//! empty, NUL or backslash segments are refused).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{guard, web, HttpMessage, HttpRequest, HttpResponse, HttpResponseBuilder};
use percent_encoding::percent_decode_str;

use anyhow::Context;

use crate::api::app::AppState;
use crate::api::app::KeepBody;
use crate::api::docs_index::product_entries;
use crate::backends::OrgBackends;
use crate::db::organizations::list_organization_settings;
use crate::db::DbPool;
use crate::domain::{BucketPrefix, BuildSlug, DashboardFile, EditionSlug, ProductSlug};
use crate::error::ApiError;
use crate::org_settings::{check, served_by_keeper, Surface};
use crate::pages::site::{not_found_page, products_page, NotFoundLinks};
use crate::storage::{ObjectHead, ObjectStore, StorageError};

/// Where the default organization's products are served (path layout) until the database says
/// otherwise: its `path_prefix`, as the first migration sets it.
pub const PATH_PREFIX: &str = "/docs";

/// An organization whose sites keeper serves itself: the path layout on keeper's own URL.
#[derive(Debug, Clone)]
pub struct OrgSite {
    /// Where its products are, e.g. `/docs` (no trailing `/`).
    pub prefix: String,
    /// Its slug, for the product list at the prefix.
    pub organization: String,
    /// Its bucket: the process's store for the default organization, its own for the others.
    pub store: Arc<dyn ObjectStore>,
}

/// Every organization keeper serves by path, refreshed from the database (`startup`), so a
/// page costs no query.
#[derive(Debug, Clone)]
pub struct OrgSites(Arc<RwLock<Vec<OrgSite>>>);

impl OrgSites {
    /// Only the default organization, at `/docs`, over `store`: what is served before the
    /// organizations are read.
    pub fn default_only(store: Arc<dyn ObjectStore>) -> Self {
        Self(Arc::new(RwLock::new(vec![OrgSite {
            prefix: PATH_PREFIX.to_owned(),
            organization: crate::db::organizations::DEFAULT_ORGANIZATION.to_owned(),
            store,
        }])))
    }

    pub fn replace(&self, sites: Vec<OrgSite>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = sites;
    }

    /// The organization whose prefix `path` is at or under (whole segments).
    pub fn find(&self, path: &str) -> Option<OrgSite> {
        let sites = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Self::matching(&sites, path).cloned()
    }

    /// Whether some organization is served at `path`: what the route guard asks of every
    /// request, without copying the entry.
    pub fn serves(&self, path: &str) -> bool {
        let sites = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Self::matching(&sites, path).is_some()
    }

    fn matching<'a>(sites: &'a [OrgSite], path: &str) -> Option<&'a OrgSite> {
        sites
            .iter()
            .filter(|site| {
                path.strip_prefix(site.prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .max_by_key(|site| site.prefix.len())
    }

    /// The prefixes served, sorted.
    pub fn prefixes(&self) -> Vec<String> {
        let mut prefixes: Vec<String> = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|site| site.prefix.clone())
            .collect();
        prefixes.sort();
        prefixes
    }
}

/// Marks a request the site server answered, for the metrics' `route` label (`site`): its
/// scopes match no route template.
#[derive(Debug, Clone, Copy)]
pub struct PublishedPage;

#[derive(Debug, Clone)]
pub struct SiteServer {
    pub store: Arc<dyn ObjectStore>,
    /// Subdomain layout: `<product>.<root_domain>` (lower case, no leading dot).
    pub root_domain: Option<String>,
    /// Products whose default edition is not `__main`.
    pub default_editions: DefaultEditions,
    /// The organizations served by path, each at its prefix over its own bucket.
    pub organizations: OrgSites,
    /// Builds the other organizations' bucket clients.
    pub backends: Arc<OrgBackends>,
}

/// The default edition of every product whose default edition is not `__main`: a product
/// adopted from LTD Keeper 1.x keeps its `main` edition, at `<product>/v/main/`, as its URL.
/// Filled from the database at start and refreshed while serving (`keeper serve`), so a page
/// costs no query.
#[derive(Debug, Clone, Default)]
pub struct DefaultEditions(Arc<RwLock<HashMap<String, EditionSlug>>>);

impl DefaultEditions {
    /// The slug of `product`'s default edition.
    pub fn of(&self, product: &ProductSlug) -> EditionSlug {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(product.as_str())
            .cloned()
            .unwrap_or_else(EditionSlug::main)
    }

    /// Replaces the whole map with `defaults` (product slug, default edition slug).
    pub fn replace(&self, defaults: impl IntoIterator<Item = (String, EditionSlug)>) {
        let fresh: HashMap<_, _> = defaults
            .into_iter()
            .filter(|(_, edition)| !edition.is_main())
            .collect();
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
    }
}

impl SiteServer {
    /// A site server over `store` serving the default organization at `/docs` (and, with
    /// `root_domain`, products by host) until [`SiteServer::reload_organizations`] reads the
    /// organizations; `backends` builds the other organizations' bucket clients.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        root_domain: Option<String>,
        backends: Arc<OrgBackends>,
    ) -> Self {
        Self {
            organizations: OrgSites::default_only(store.clone()),
            store,
            root_domain,
            default_editions: DefaultEditions::default(),
            backends,
        }
    }

    /// Reads which organizations keeper serves by path (`org_settings::served_by_keeper`) and
    /// serves each at its prefix over its bucket from now on. An organization whose settings
    /// cannot be used (a prefix an older release allowed, a bucket without its secret) is left
    /// out with a warning rather than shadowing the API or failing every page.
    pub async fn reload_organizations(&self, pool: &DbPool) -> anyhow::Result<()> {
        let pool = pool.clone();
        let rows = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut conn = pool.get().context("connecting to the database")?;
            list_organization_settings(&mut conn).context("reading the organizations")
        })
        .await
        .context("reading the organizations")??;
        let mut served = Vec::new();
        for (_, settings) in rows {
            if !served_by_keeper(&settings) {
                continue;
            }
            if let Err(problem) = check(&settings, Surface::Cli) {
                tracing::warn!(organization = %settings.slug, %problem, "not serving the organization's sites");
                continue;
            }
            let store = if OrgBackends::is_default(&settings) {
                self.store.clone()
            } else {
                match self.backends.for_organization(&settings).await {
                    Ok(backends) => backends.store,
                    Err(err) => {
                        tracing::warn!(organization = %settings.slug, error = %err, "not serving the organization's sites");
                        continue;
                    }
                }
            };
            served.push(OrgSite {
                prefix: settings.path_prefix.clone(),
                organization: settings.slug.clone(),
                store,
            });
        }
        self.organizations.replace(served);
        Ok(())
    }

    /// Registers the site routes. Call it before the API's routes: a request for a product's
    /// subdomain is answered here whatever its path.
    pub fn configure(&self, config: &mut web::ServiceConfig) {
        let data = web::Data::new(self.clone());
        if let Some(domain) = self.root_domain.clone() {
            config.service(
                web::scope("")
                    .guard(guard::fn_guard(move |ctx| {
                        product_from_host(host_of(ctx.head()), &domain).is_some()
                    }))
                    .app_data(data.clone())
                    .default_service(web::to(serve_by_host)),
            );
        }
        let organizations = self.organizations.clone();
        config.service(
            web::scope("")
                .guard(guard::fn_guard(move |ctx| {
                    organizations.serves(ctx.head().uri.path())
                }))
                .app_data(data)
                .default_service(web::to(serve_by_path)),
        );
    }
}

fn host_of(head: &actix_web::dev::RequestHead) -> &str {
    head.headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| head.uri.host())
        .unwrap_or_default()
}

/// `demo.example.org[:port]` with root domain `example.org` -> `demo`.
pub fn product_from_host<'a>(host: &'a str, root_domain: &str) -> Option<&'a str> {
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let product = host
        .strip_suffix(root_domain)
        .filter(|_| host.len() > root_domain.len())
        .and_then(|rest| rest.strip_suffix('.'))?;
    (!product.is_empty() && !product.contains('.')).then_some(product)
}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Serve this key; `directory` says the path ended in `/` (the key is its `index.html`).
    Key {
        key: String,
        directory: bool,
        /// The edition's or build's prefix the key is in, where a `404.html` of the site's own
        /// is looked for when the key is missing; `None` for the dashboards.
        site: Option<BucketPrefix>,
        /// A version list that themes on other origins fetch (CORS allowed).
        shared: bool,
    },
    /// Redirect to the path plus `/` (an edition or build root named without its slash).
    AddSlash,
    NotFound,
}

/// Maps a product and the rest of a path (percent-encoded, starting with `/` or empty) to a key.
pub fn resolve(product: &str, rest: &str, defaults: &DefaultEditions) -> Target {
    if !valid_segment(product) {
        return Target::NotFound;
    }
    if rest.is_empty() {
        return Target::AddSlash;
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Target::NotFound;
    };
    let raw: Vec<&str> = rest.split('/').collect();
    let mut segments = Vec::with_capacity(raw.len());
    for (index, segment) in raw.iter().enumerate() {
        // The last segment may be empty: the path ends in `/`.
        if segment.is_empty() && index + 1 == raw.len() {
            segments.push(String::new());
            continue;
        }
        match percent_decode_str(segment).decode_utf8() {
            Ok(decoded) if valid_segment(&decoded) => segments.push(decoded.into_owned()),
            _ => return Target::NotFound,
        }
    }
    // Keys come from the prefix constructors: a name that is not a valid slug can hold no
    // object, so it is not looked up.
    let Ok(product) = ProductSlug::parse(product) else {
        return Target::NotFound;
    };
    // The dashboards and version lists (`ops::dashboard`): `v/`, `builds/` and the files named
    // in them; no edition or build takes their names.
    if let [section] = segments.as_slice() {
        if section == "v" || section == "builds" {
            return Target::AddSlash;
        }
    }
    if let [section, name] = segments.as_slice() {
        let directory = name.is_empty();
        let name = if directory {
            "index.html"
        } else {
            name.as_str()
        };
        if let Some(file) = DashboardFile::find(section, name) {
            return Target::Key {
                key: file.key(&product),
                directory,
                site: None,
                shared: file.content_type() == "application/json",
            };
        }
    }
    let (base, tail): (Option<BucketPrefix>, &[String]) = match segments.as_slice() {
        [kind, name, tail @ ..] if (kind == "v" || kind == "builds") && !name.is_empty() => {
            if tail.is_empty() {
                return Target::AddSlash;
            }
            let prefix = if kind == "v" {
                EditionSlug::parse(name)
                    .ok()
                    .map(|edition| BucketPrefix::edition(&product, &edition))
            } else {
                BuildSlug::parse(name)
                    .ok()
                    .map(|build| BucketPrefix::build(&product, &build))
            };
            (prefix, tail)
        }
        tail => (
            Some(BucketPrefix::edition(&product, &defaults.of(&product))),
            tail,
        ),
    };
    let Some(base) = base else {
        return Target::NotFound;
    };
    let directory = tail.last().is_some_and(String::is_empty);
    let relative: Vec<&str> = tail
        .iter()
        .map(|segment| {
            if segment.is_empty() {
                "index.html"
            } else {
                segment.as_str()
            }
        })
        .collect();
    let key = format!("{}{}", base.as_str(), relative.join("/"));
    Target::Key {
        key,
        directory,
        site: Some(base),
        shared: false,
    }
}

fn valid_segment(segment: &str) -> bool {
    !segment.is_empty() && segment != "." && segment != ".." && !segment.contains(['/', '\\', '\0'])
}

async fn serve_by_path(
    req: HttpRequest,
    site: web::Data<SiteServer>,
    state: web::Data<AppState>,
) -> HttpResponse {
    req.extensions_mut().insert(PublishedPage);
    let path = req.path();
    let Some(organization) = site.organizations.find(path) else {
        return not_found(None);
    };
    let after = path
        .strip_prefix(organization.prefix.as_str())
        .unwrap_or_default();
    let Some(after) = after.strip_prefix('/') else {
        return redirect_with_slash(&req);
    };
    if after.is_empty() || after == "index.html" {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return method_not_allowed(&req);
        }
        return products_index(&state, &organization.organization).await;
    }
    let (product, rest) = match after.split_once('/') {
        Some((product, rest)) => (product, format!("/{rest}")),
        None => (after, String::new()),
    };
    let product = percent_decode_str(product).decode_utf8_lossy().into_owned();
    let origin = Origin::SharedWithApi {
        prefix: organization.prefix.clone(),
    };
    serve(&req, &site, &organization.store, &product, &rest, &origin).await
}

async fn serve_by_host(req: HttpRequest, site: web::Data<SiteServer>) -> HttpResponse {
    req.extensions_mut().insert(PublishedPage);
    let Some(domain) = site.root_domain.as_deref() else {
        return not_found(None);
    };
    let Some(product) = product_from_host(host_of(req.head()), domain).map(str::to_owned) else {
        return not_found(None);
    };
    let store = site.store.clone();
    serve(&req, &site, &store, &product, req.path(), &Origin::Product).await
}

/// Whose origin a published page is served from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// Keeper's own (the path layout, `<prefix>/<product>/`): the API answers on the same
    /// origin.
    SharedWithApi { prefix: String },
    /// The product's own host (the subdomain layout).
    Product,
}

/// The policy that keeps a published page's scripts away from keeper's API when both share an
/// origin: the page may fetch, and post forms to, published content (`/docs/`) only, and no
/// other page may frame it. Keeper holds no ambient credentials for a script to ride on (no
/// cookies, no `WWW-Authenticate` challenge, so no browser-kept Basic credentials); this also
/// stops a page from calling the API at all. Production serves sites from their own domain
/// behind a CDN, where this does not apply.
fn shared_origin_policy(req: &HttpRequest, prefix: &str) -> String {
    let info = req.connection_info();
    let docs = format!("{}://{}{prefix}/", info.scheme(), info.host());
    format!("connect-src {docs}; form-action {docs}; frame-ancestors 'self'")
}

async fn serve(
    req: &HttpRequest,
    site: &SiteServer,
    store: &Arc<dyn ObjectStore>,
    product: &str,
    rest: &str,
    origin: &Origin,
) -> HttpResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return method_not_allowed(req);
    }
    let links = ProductSlug::parse(product)
        .ok()
        .map(|product| NotFoundLinks {
            base: match origin {
                Origin::SharedWithApi { prefix } => format!("{prefix}/{product}"),
                Origin::Product => String::new(),
            },
            all_products: match origin {
                Origin::SharedWithApi { prefix } => Some(format!("{prefix}/")),
                Origin::Product => None,
            },
            product: product.to_string(),
        });
    let (key, directory, site_prefix, shared) = match resolve(product, rest, &site.default_editions)
    {
        Target::Key {
            key,
            directory,
            site,
            shared,
        } => (key, directory, site, shared),
        Target::AddSlash => return redirect_with_slash(req),
        Target::NotFound => return not_found(links.as_ref()),
    };
    let head = match store.head(&key).await {
        Ok(head) => head,
        Err(StorageError::NotFound { .. } | StorageError::InvalidKey { .. }) => {
            // A directory named without its slash, with no redirect object: redirect if it has
            // an index page.
            if !directory && store.head(&format!("{key}/index.html")).await.is_ok() {
                return redirect_with_slash(req);
            }
            return product_not_found(
                req,
                site,
                store,
                product,
                site_prefix.as_ref(),
                links.as_ref(),
                origin,
            )
            .await;
        }
        Err(err) => return unavailable(err),
    };
    if !directory
        && head.summary.size == 0
        && head
            .headers
            .metadata
            .get("dir-redirect")
            .is_some_and(|value| value.eq_ignore_ascii_case("true"))
    {
        return redirect_with_slash(req);
    }
    let mut response = HttpResponse::Ok();
    object_headers(&mut response, &key, &head);
    response.insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if let Origin::SharedWithApi { prefix } = origin {
        response.insert_header((
            header::CONTENT_SECURITY_POLICY,
            shared_origin_policy(req, prefix),
        ));
    }
    if shared {
        // A version list is read by themes on other origins (a site served elsewhere).
        response.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
    }
    if let (Some(etag), Some(wanted)) =
        (&head.summary.etag, req.headers().get(header::IF_NONE_MATCH))
    {
        if etag_matches(wanted.to_str().unwrap_or_default(), etag) {
            response.status(StatusCode::NOT_MODIFIED);
            return response.finish();
        }
    }
    if req.method() == Method::HEAD {
        return response.body(SizedStream::new(
            head.summary.size,
            futures::stream::empty::<Result<bytes::Bytes, StorageError>>(),
        ));
    }
    match store.get(&key).await {
        Ok(object) => response.body(SizedStream::new(object.head.summary.size, object.body)),
        Err(StorageError::NotFound { .. }) => {
            product_not_found(
                req,
                site,
                store,
                product,
                site_prefix.as_ref(),
                links.as_ref(),
                origin,
            )
            .await
        }
        Err(err) => unavailable(err),
    }
}

fn method_not_allowed(req: &HttpRequest) -> HttpResponse {
    let mut response = actix_web::ResponseError::error_response(&ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on a published page; use GET or HEAD.",
            req.method()
        ),
    ));
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// `<prefix>/`: every product of the organization, read from the database (the only site page
/// that is).
async fn products_index(state: &AppState, organization: &str) -> HttpResponse {
    match product_entries(state, organization).await {
        Ok(entries) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(products_page(&entries)),
        Err(err) => actix_web::ResponseError::error_response(&err),
    }
}

/// A page of a known product that does not exist: the site's own `404.html` (of the edition or
/// build the path is in, else of the default edition), as Read the Docs does, with status 404;
/// else keeper's 404 page with links to the product's default edition and dashboards.
async fn product_not_found(
    req: &HttpRequest,
    site: &SiteServer,
    store: &Arc<dyn ObjectStore>,
    product: &str,
    site_prefix: Option<&BucketPrefix>,
    links: Option<&NotFoundLinks>,
    origin: &Origin,
) -> HttpResponse {
    let Ok(slug) = ProductSlug::parse(product) else {
        return not_found(None);
    };
    let default = BucketPrefix::edition(&slug, &site.default_editions.of(&slug));
    let mut candidates = Vec::with_capacity(2);
    if let Some(prefix) = site_prefix {
        candidates.push(prefix.clone());
    }
    if !candidates.contains(&default) {
        candidates.push(default);
    }
    for prefix in candidates {
        let key = format!("{}404.html", prefix.as_str());
        let object = match store.get(&key).await {
            Ok(object) => object,
            Err(StorageError::NotFound { .. } | StorageError::InvalidKey { .. }) => continue,
            Err(err) => return unavailable(err),
        };
        let mut response = HttpResponse::NotFound();
        object_headers(&mut response, &key, &object.head);
        response
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
        if let Origin::SharedWithApi { prefix } = origin {
            response.insert_header((
                header::CONTENT_SECURITY_POLICY,
                shared_origin_policy(req, prefix),
            ));
        }
        if req.method() == Method::HEAD {
            return response.finish().into_kept();
        }
        return response
            .body(SizedStream::new(object.head.summary.size, object.body))
            .into_kept();
    }
    not_found(links)
}

/// Marks a response whose body is for readers, so the JSON error middleware keeps it.
trait IntoKept {
    fn into_kept(self) -> HttpResponse;
}

impl IntoKept for HttpResponse {
    fn into_kept(mut self) -> HttpResponse {
        self.extensions_mut().insert(KeepBody);
        self
    }
}

fn object_headers(response: &mut HttpResponseBuilder, key: &str, head: &ObjectHead) {
    let headers = &head.headers;
    let content_type = headers
        .content_type
        .clone()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| {
            mime_guess::from_path(key)
                .first_or_octet_stream()
                .essence_str()
                .to_owned()
        });
    let content_type = if content_type.starts_with("text/") && !content_type.contains("charset") {
        format!("{content_type}; charset=utf-8")
    } else {
        content_type
    };
    response.insert_header((header::CONTENT_TYPE, content_type));
    for (name, value) in [
        (header::CACHE_CONTROL, &headers.cache_control),
        (header::CONTENT_ENCODING, &headers.content_encoding),
        (header::CONTENT_DISPOSITION, &headers.content_disposition),
        (header::ETAG, &head.summary.etag),
    ] {
        if let Some(value) = value {
            if let Ok(value) = HeaderValue::from_str(value) {
                response.insert_header((name, value));
            }
        }
    }
    if let Some(keys) = headers.metadata.get("surrogate-key") {
        if let Ok(value) = HeaderValue::from_str(keys) {
            response.insert_header(("Surrogate-Key", value));
        }
    }
    if let Some(modified) = head.summary.last_modified {
        response.insert_header((
            header::LAST_MODIFIED,
            modified.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        ));
    }
}

/// `If-None-Match`: `*`, or a list of (possibly weak) ETags.
fn etag_matches(header: &str, etag: &str) -> bool {
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    header.trim() == "*"
        || header
            .split(',')
            .any(|candidate| bare(candidate) == bare(etag))
}

fn redirect_with_slash(req: &HttpRequest) -> HttpResponse {
    let location = match req.query_string() {
        "" => format!("{}/", req.path()),
        query => format!("{}/?{query}", req.path()),
    };
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// The HTML 404 page (kept as HTML by the JSON error middleware), with links back to the
/// product when the path named one.
fn not_found(links: Option<&NotFoundLinks>) -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(not_found_page(links))
        .into_kept()
}

fn unavailable(err: StorageError) -> HttpResponse {
    tracing::error!(error = %err, "the site server could not read the object store");
    actix_web::ResponseError::error_response(&ApiError::unavailable(
        "The object store does not answer; retry shortly.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target without the fields only some tests look at.
    #[derive(Debug, PartialEq, Eq)]
    enum Simple {
        Key(String, bool),
        AddSlash,
        NotFound,
    }

    fn simple(target: Target) -> Simple {
        match target {
            Target::Key { key, directory, .. } => Simple::Key(key, directory),
            Target::AddSlash => Simple::AddSlash,
            Target::NotFound => Simple::NotFound,
        }
    }

    fn resolve(product: &str, rest: &str) -> Simple {
        simple(super::resolve(product, rest, &DefaultEditions::default()))
    }

    fn key(key: &str, directory: bool) -> Simple {
        Simple::Key(key.into(), directory)
    }

    #[test]
    fn dashboards_and_version_lists_resolve_beside_editions() {
        assert_eq!(resolve("demo", "/v/"), key("demo/v/index.html", true));
        assert_eq!(
            resolve("demo", "/v/index.html"),
            key("demo/v/index.html", false)
        );
        assert_eq!(
            resolve("demo", "/builds/"),
            key("demo/builds/index.html", true)
        );
        assert_eq!(
            resolve("demo", "/builds/index.html"),
            key("demo/builds/index.html", false)
        );
        assert_eq!(resolve("demo", "/v"), Simple::AddSlash);
        assert_eq!(resolve("demo", "/builds"), Simple::AddSlash);
        let switcher = super::resolve("demo", "/v/switcher.json", &DefaultEditions::default());
        assert_eq!(
            switcher,
            Target::Key {
                key: "demo/v/switcher.json".into(),
                directory: false,
                site: None,
                shared: true,
            }
        );
        let page = super::resolve("demo", "/v/v1/a.html", &DefaultEditions::default());
        let Target::Key { site, shared, .. } = page else {
            panic!("{page:?}")
        };
        assert_eq!(site.unwrap().as_str(), "demo/v/v1/");
        assert!(!shared);
        // Only the v and builds directories hold them.
        assert_eq!(
            resolve("demo", "/switcher.json"),
            key("demo/v/__main/switcher.json", false)
        );
        assert_eq!(resolve("demo", "/builds/switcher.json"), Simple::AddSlash);
    }

    #[test]
    fn paths_map_to_keys() {
        assert_eq!(resolve("demo", ""), Simple::AddSlash);
        assert_eq!(resolve("demo", "/"), key("demo/v/__main/index.html", true));
        assert_eq!(
            resolve("demo", "/a/b.html"),
            key("demo/v/__main/a/b.html", false)
        );
        assert_eq!(resolve("demo", "/guide"), key("demo/v/__main/guide", false));
        assert_eq!(resolve("demo", "/v/v1"), Simple::AddSlash);
        assert_eq!(resolve("demo", "/v/v1/"), key("demo/v/v1/index.html", true));
        assert_eq!(
            resolve("demo", "/v/v1/x/"),
            key("demo/v/v1/x/index.html", true)
        );
        assert_eq!(
            resolve("demo", "/builds/3/a.css"),
            key("demo/builds/3/a.css", false)
        );
        assert_eq!(
            resolve("demo", "/a%20b.html"),
            key("demo/v/__main/a b.html", false)
        );
    }

    #[test]
    fn an_adopted_product_is_served_from_its_main_edition() {
        let defaults = DefaultEditions::default();
        defaults.replace([
            ("old".to_owned(), EditionSlug::parse("main").unwrap()),
            ("new".to_owned(), EditionSlug::main()),
        ]);
        assert_eq!(
            simple(super::resolve("old", "/a.html", &defaults)),
            key("old/v/main/a.html", false)
        );
        assert_eq!(
            simple(super::resolve("old", "/v/v1/", &defaults)),
            key("old/v/v1/index.html", true)
        );
        assert_eq!(
            simple(super::resolve("new", "/", &defaults)),
            key("new/v/__main/index.html", true)
        );
        assert_eq!(
            simple(super::resolve("other", "/", &defaults)),
            key("other/v/__main/index.html", true)
        );
    }

    #[test]
    fn traversal_is_refused() {
        for rest in [
            "/../other/v/__main/secret",
            "/%2e%2e/x",
            "/a/%2F/b",
            "/a%5cb",
            "/a%00b",
            "/a//b",
            "/v/../../x",
            "/./a",
        ] {
            assert_eq!(resolve("demo", rest), Simple::NotFound, "{rest}");
        }
        assert_eq!(resolve("..", "/x"), Simple::NotFound);
    }

    #[test]
    fn hosts_name_products() {
        assert_eq!(
            product_from_host("demo.example.org", "example.org"),
            Some("demo")
        );
        assert_eq!(
            product_from_host("demo.example.org:8080", "example.org"),
            Some("demo")
        );
        assert_eq!(product_from_host("example.org", "example.org"), None);
        assert_eq!(product_from_host("a.b.example.org", "example.org"), None);
        assert_eq!(product_from_host("demoexample.org", "example.org"), None);
    }

    #[test]
    fn etags_match_lists_and_weak_tags() {
        assert!(etag_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_matches("W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("\"c\"", "\"b\""));
    }
}
