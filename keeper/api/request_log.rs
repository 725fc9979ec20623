//! One log line per handled request: method, path (never the query string, which could carry
//! credentials), status and latency. Headers are not logged.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpMessage;

use crate::api::sites::PublishedPage;
use crate::metrics::metrics;

/// The route a request matched, as a template (`/products/{slug}`): what metrics label it by.
/// Published pages (the site server's scopes) are `site`; a path no route knows is `unmatched`.
fn route_of(request: &actix_web::HttpRequest) -> String {
    if request.extensions().contains::<PublishedPage>() {
        return "site".to_owned();
    }
    request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned())
}

pub async fn log_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.path().to_owned();
    let result = next.call(request).await;
    let elapsed = started.elapsed();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if let Ok(response) = &result {
        metrics().record_request(
            method.as_str(),
            &route_of(response.request()),
            response.status().as_u16(),
            elapsed,
        );
    }
    match &result {
        Ok(response) => tracing::info!(
            http.method = %method,
            http.path = %path,
            http.status = response.status().as_u16(),
            latency_ms,
            "request"
        ),
        Err(err) => tracing::warn!(
            http.method = %method,
            http.path = %path,
            error = %err,
            latency_ms,
            "request failed"
        ),
    }
    result
}
