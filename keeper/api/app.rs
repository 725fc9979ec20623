//! The actix application: shared state, routes, extractor settings, and the middleware that gives
//! every error response, including actix's own, the JSON error shape.

use crate::api::numbers_in_flight::NumbersInFlight;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, App, HttpRequest, ResponseError};
use url::Url;

use std::sync::Arc;

use crate::api;
use crate::api::body::BodyLimits;
use crate::api::request_log::log_request;
use crate::auth::login::LoginGuard;
use crate::auth::session::SessionKeys;
use crate::config::LoginConfig;
use crate::db::pipelined::PipelinedReads;
use crate::db::DbPool;
use crate::error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: DbPool,
    /// PostgreSQL's pipelined connections for the hot reads; `None`: every read uses `pool`.
    pub pipelined: Option<PipelinedReads>,
    /// Signs and verifies the tokens `GET /token` hands out.
    pub sessions: SessionKeys,
    /// Keeper's external base URL, always ending in `/`.
    public_url: Url,
    /// The bounded password checker and the failed-login throttles of this process.
    pub login: Arc<LoginGuard>,
    /// The header a trusted proxy names the client's address in; `None`: the connection's.
    pub client_ip_header: Option<String>,
    /// How long a request body may take to arrive once a handler reads it.
    pub body_timeout: std::time::Duration,
    /// Automatic build numbers being registered by this process.
    pub numbers_in_flight: Arc<NumbersInFlight>,
    /// What organizations' secrets are encrypted with (`/orgs/`); `None` when
    /// `KEEPER_ENCRYPTION_KEYS` is not set, and then no secret can be stored.
    pub encryption_keys: Option<crate::crypto::EncryptionKeys>,
    /// The site server, when this process serves sites: `/orgs/` reloads its organizations
    /// after a change, so this replica serves a new prefix at once (others within their
    /// refresh period).
    pub sites: Option<crate::api::sites::SiteServer>,
    /// The deployment's retention policy, which products' answers show under their own.
    pub retention: crate::domain::RetentionPolicy,
}

impl AppState {
    pub fn new(pool: DbPool, public_url: &Url, sessions: SessionKeys) -> Self {
        let mut public_url = public_url.clone();
        if !public_url.path().ends_with('/') {
            let path = format!("{}/", public_url.path());
            public_url.set_path(&path);
        }
        Self {
            pool,
            pipelined: None,
            sessions,
            public_url,
            login: Arc::new(LoginGuard::new(&LoginConfig::default())),
            client_ip_header: None,
            body_timeout: std::time::Duration::from_secs(30),
            numbers_in_flight: Arc::default(),
            encryption_keys: None,
            sites: None,
            retention: crate::ops::retention::deployment_policy(
                &crate::config::RetentionConfig::default(),
            ),
        }
    }

    /// This state showing `config` as the deployment's retention policy.
    pub fn with_retention(mut self, config: &crate::config::RetentionConfig) -> Self {
        self.retention = crate::ops::retention::deployment_policy(config);
        self
    }

    /// This state with organizations' secrets encrypted with `keys`.
    pub fn with_encryption_keys(mut self, keys: Option<crate::crypto::EncryptionKeys>) -> Self {
        self.encryption_keys = keys;
        self
    }

    /// This state reading through `reads` (PostgreSQL's pipelined connections) when given.
    pub fn with_pipelined_reads(mut self, reads: Option<PipelinedReads>) -> Self {
        self.pipelined = reads;
        self
    }

    /// This state with request bodies given `timeout` to arrive.
    pub fn with_body_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// This state with the login limits of `config` (a fresh throttle).
    pub fn with_login(mut self, config: &LoginConfig) -> Self {
        self.login = Arc::new(LoginGuard::new(config));
        self.client_ip_header = config.client_ip_header.clone();
        self
    }

    /// Who is calling, for throttling: the trusted proxy's header's last address when one is
    /// configured, else the connection's peer address.
    pub fn client_address(&self, request: &actix_web::HttpRequest) -> String {
        if let Some(name) = &self.client_ip_header {
            let forwarded = request
                .headers()
                .get_all(name.as_str())
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .map(str::trim)
                .filter(|address| !address.is_empty())
                .last();
            if let Some(address) = forwarded {
                return address.to_owned();
            }
        }
        request
            .peer_addr()
            .map(|address| address.ip().to_string())
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// Keeper's external base URL without the trailing `/` (e.g. `http://127.0.0.1:8080`).
    pub fn public_base(&self) -> &str {
        self.public_url.as_str().trim_end_matches('/')
    }

    /// The absolute external URL of an API path such as `products/` (relative, no leading `/`).
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{}", self.public_url, path.trim_start_matches('/'))
    }
}

/// Marks an error response whose own body is meant for readers (the site server's HTML 404
/// page): the JSON error middleware leaves it as it is.
#[derive(Debug, Clone, Copy)]
pub struct KeepBody;

/// Builds the application. Tests add routes to the returned `App` before serving it.
pub fn app(
    state: AppState,
    max_body_bytes: usize,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    app_with(state, max_body_bytes, |_| {})
}

/// [`app`], with `services` registered before the API's routes (the site server, which answers
/// a product's subdomain whatever the path, and the upload endpoint).
pub fn app_with(
    state: AppState,
    max_body_bytes: usize,
    services: impl FnOnce(&mut web::ServiceConfig),
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let body_limits = BodyLimits {
        max_bytes: max_body_bytes,
        timeout: state.body_timeout,
    };
    App::new()
        .app_data(web::Data::new(state))
        .app_data(json_config(max_body_bytes))
        .app_data(web::PayloadConfig::new(max_body_bytes))
        .app_data(web::Data::new(body_limits))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .configure(services)
        .configure(api::routes)
        .default_service(web::to(unknown_route))
        .wrap(ErrorHandlers::new().default_handler(json_error_body))
        .wrap(from_fn(log_request))
}

fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| {
            let api_error = match &err {
                JsonPayloadError::OverflowKnownLength { length, limit } => {
                    ApiError::payload_too_large(format!(
                        "The body is {length} bytes; the limit is {limit} bytes."
                    ))
                }
                JsonPayloadError::Overflow { limit } => ApiError::payload_too_large(format!(
                    "The body exceeds the limit of {limit} bytes."
                )),
                JsonPayloadError::ContentType => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Send the body as JSON with Content-Type: application/json.",
                ),
                JsonPayloadError::Deserialize(inner) if inner.is_data() => ApiError::bad_request(
                    format!("The JSON body does not fit this route: {inner}."),
                ),
                other => ApiError::bad_request(format!("The body is not valid JSON: {other}.")),
            };
            api_error.into()
        })
}

fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::not_found(format!("No such resource ({err}).")).into()
}

fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("Invalid query string: {err}.")).into()
}

async fn unknown_route(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "There is no route {} {}.",
        req.method(),
        req.path()
    )))
}

/// Rewrites any error response that is not already JSON (a 405 from a resource, a 413 from a body
/// limit, a 500 from a panic-free failure in actix itself) into the JSON error shape.
fn json_error_body<B>(response: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = response
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if is_json || response.response().extensions().contains::<KeepBody>() {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    let allow: Option<HeaderValue> = response.response().headers().get(header::ALLOW).cloned();
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "{} is not allowed on {}.",
            response.request().method(),
            response.request().path()
        ),
        StatusCode::NOT_FOUND => "No such resource.".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large.".to_owned(),
        status if status.is_server_error() => {
            "The server failed to handle the request; the error is in its log.".to_owned()
        }
        _ => "The request was rejected.".to_owned(),
    };
    let (request, _) = response.into_parts();
    let mut replacement = ApiError::new(status, message).error_response();
    if let Some(allow) = allow {
        replacement.headers_mut().insert(header::ALLOW, allow);
    }
    let response = ServiceResponse::new(request, replacement).map_into_boxed_body();
    Ok(ErrorHandlerResponse::Response(
        response.map_body(|_, body| EitherBody::right(body)),
    ))
}
