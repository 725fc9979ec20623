//! Request bodies are read as bytes and parsed only after authentication and authorization,
//! so that a 401/403 never depends on what the body holds.

use actix_web::http::header;
use actix_web::HttpResponse;
use chrono::NaiveDateTime;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};

/// Parses a JSON object body of one of the original's (v1) routes; 400 with serde's explanation
/// when it does not fit, and 400 for a control character in any string (the original's status
/// for invalid input). Only an object is accepted: serde would otherwise fill a struct from an
/// array, field by position.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    parse_object(body, ApiError::bad_request)
}

/// [`parse_json`] for routes only keeper has: a control character is 422 (semantically
/// invalid), as every other invalid value there.
pub fn parse_keeper_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    parse_object(body, ApiError::unprocessable)
}

fn parse_object<T: DeserializeOwned>(
    body: &[u8],
    invalid_text: fn(String) -> ApiError,
) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("The request needs a JSON body."));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(format!("The body is not valid JSON: {err}.")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("The body must be a JSON object."));
    }
    if let Some(field) = control_character_in(&value, "") {
        return Err(invalid_text(format!(
            "{field} holds a control character (such as NUL or a newline); text fields take \
             printable characters only."
        )));
    }
    serde_json::from_value(value).map_err(|err| {
        ApiError::bad_request(format!("The JSON body does not fit this route: {err}."))
    })
}

/// The path (`title`, `git_refs[1]`) of the first string, or object key, holding a control
/// character. No text keeper stores needs one, and PostgreSQL refuses NUL in text outright.
fn control_character_in(value: &serde_json::Value, path: &str) -> Option<String> {
    let named = |path: &str| {
        if path.is_empty() {
            "the body".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        serde_json::Value::String(text) => text.chars().any(char::is_control).then(|| named(path)),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| control_character_in(item, &format!("{path}[{index}]"))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(name, field)| {
            let inner = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            if name.chars().any(char::is_control) {
                return Some("a field name".to_owned());
            }
            control_character_in(field, &inner)
        }),
        _ => None,
    }
}

/// A field that may be absent, `null` or a value, told apart: with `#[serde(default)]`, absent
/// is `None`, `null` is `Some(None)` (clear it), a value `Some(Some(value))`.
pub fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A flag as the original's parser read it (Python truthiness): booleans, `null` (false),
/// numbers (non-zero is true) and strings. A string is true unless it is empty or one of the
/// words that say no (`false`, `0`, `no`, `off`, any case): the original took every non-empty
/// string as true, `"false"` included, which no client means (docs/compatibility.md).
pub fn truthy<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    use serde::de::Error;
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(Some(match value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Bool(flag)) => flag,
        Some(serde_json::Value::Number(number)) => number.as_f64().is_some_and(|n| n != 0.0),
        Some(serde_json::Value::String(text)) => {
            let word = text.trim().to_ascii_lowercase();
            !matches!(word.as_str(), "" | "false" | "0" | "no" | "off")
        }
        Some(other) => return Err(D::Error::custom(format!("expected a flag, got {other}"))),
    }))
}

/// ISO 8601, UTC, `Z` suffix: Python's `isoformat() + "Z"`, the original's format, so with
/// microseconds when there are any (`2026-12-01T20:42:33.708744Z`) and none otherwise.
pub fn format_datetime(value: NaiveDateTime) -> String {
    use chrono::Timelike;
    if value.nanosecond() / 1000 == 0 {
        value.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        value.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[allow(dead_code)]
        title: String,
    }

    #[test]
    fn control_characters_are_refused_wherever_they_are() {
        for (body, field) in [
            (r#"{"title": "a\u0000b"}"#, "title"),
            (r#"{"title": "line\nbreak"}"#, "title"),
            (
                r#"{"title": "ok", "git_refs": ["main", "x\u0007"]}"#,
                "git_refs[1]",
            ),
            (r#"{"title": "ok", "a": {"b": "\u009f"}}"#, "a.b"),
        ] {
            let v1 = parse_json::<Body>(body.as_bytes()).unwrap_err();
            assert_eq!(v1.status().as_u16(), 400, "{body}");
            assert!(v1.body().message.contains(field), "{body}: {v1}");
            let keeper = parse_keeper_json::<Body>(body.as_bytes()).unwrap_err();
            assert_eq!(keeper.status().as_u16(), 422, "{body}");
        }
        assert!(parse_json::<Body>(br#"{"title": "caf\u00e9 \u2014 ok"}"#).is_ok());
    }

    #[test]
    fn datetimes_are_written_as_the_original_wrote_them() {
        let at = |text: &str| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        assert_eq!(
            format_datetime(at("2026-12-01 20:42:33.708744")),
            "2026-12-01T20:42:33.708744Z"
        );
        assert_eq!(
            format_datetime(at("2026-12-01 20:42:33.7")),
            "2026-12-01T20:42:33.700000Z"
        );
        assert_eq!(
            format_datetime(at("2026-12-01 20:42:33")),
            "2026-12-01T20:42:33Z"
        );
    }
}
