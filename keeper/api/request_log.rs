//! One log line per handled request: method, path (never the query string, which could carry
//! credentials), status and latency. Headers are not logged.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

pub async fn log_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.path().to_owned();
    let result = next.call(request).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
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
