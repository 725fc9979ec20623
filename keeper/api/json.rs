//! Request bodies are read as bytes and parsed only after authentication and authorization,
//! so that a 401/403 never depends on what the body holds.

use actix_web::http::header;
use actix_web::HttpResponse;
use chrono::NaiveDateTime;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ApiError, ApiResult};

/// Parses a JSON object body; 400 with serde's explanation when it does not fit. Only an
/// object is accepted: serde would otherwise fill a struct from an array, field by position.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("The request needs a JSON body."));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(format!("The body is not valid JSON: {err}.")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("The body must be a JSON object."));
    }
    serde_json::from_value(value).map_err(|err| {
        ApiError::bad_request(format!("The JSON body does not fit this route: {err}."))
    })
}

/// ISO 8601, UTC, `Z` suffix, second precision (the original's format).
pub fn format_datetime(value: NaiveDateTime) -> String {
    value.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn format_optional_datetime(value: Option<NaiveDateTime>) -> Option<String> {
    value.map(format_datetime)
}

/// 201 with a `Location` header and the resource as JSON.
pub fn created<T: Serialize>(location: &str, body: &T) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(body)
}
