//! Request bodies read only when a handler asks, after it has authenticated the caller and
//! checked the permissions the headers allow it to check, and read against a deadline: a client
//! that announces a body and stalls gets 408 and its connection closed (`KEEPER_BODY_TIMEOUT_SECS`)
//! instead of holding a connection and a buffer for as long as it likes. A body longer than
//! `KEEPER_MAX_BODY_BYTES` is 413, before anything is read when its length is announced.

use std::future::{ready, Ready};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest};
use bytes::BytesMut;
use futures::StreamExt;

use crate::error::{ApiError, ApiResult};

/// How much of a body keeper takes, and how long it waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// A request body not read yet.
pub struct Body {
    payload: Payload,
    announced: Option<usize>,
    limits: BodyLimits,
}

impl FromRequest for Body {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limits = request
            .app_data::<web::Data<BodyLimits>>()
            .map(|limits| *limits.get_ref())
            .unwrap_or(BodyLimits {
                max_bytes: 1024 * 1024,
                timeout: Duration::from_secs(30),
            });
        let announced = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        ready(Ok(Self {
            payload: payload.take(),
            announced,
            limits,
        }))
    }
}

impl Body {
    /// The whole body: 413 past the limit, 408 when it does not arrive in time.
    pub async fn read(mut self) -> ApiResult<web::Bytes> {
        let BodyLimits { max_bytes, timeout } = self.limits;
        if let Some(length) = self.announced.filter(|length| *length > max_bytes) {
            return Err(ApiError::payload_too_large(format!(
                "The body is {length} bytes; the limit is {max_bytes} bytes."
            )));
        }
        let mut buffer = BytesMut::new();
        let reading = async {
            while let Some(chunk) = self.payload.next().await {
                let chunk = chunk.map_err(|err| {
                    ApiError::bad_request(format!("The body could not be read: {err}."))
                })?;
                if buffer.len() + chunk.len() > max_bytes {
                    return Err(ApiError::payload_too_large(format!(
                        "The body exceeds the limit of {max_bytes} bytes."
                    )));
                }
                buffer.extend_from_slice(&chunk);
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, reading).await {
            Ok(result) => result.map(|()| buffer.freeze()),
            Err(_) => Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "The request body did not arrive within {} s; send it whole, promptly.",
                    timeout.as_secs()
                ),
            )),
        }
    }
}
