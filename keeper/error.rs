//! The one API error type, and the JSON error shape every error response has:
//! `{"status": <int>, "error": "<short name>", "message": "<what to do>"}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;

use crate::db::violation::{violation, Violation};

/// The body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ErrorBody {
    pub status: u16,
    pub error: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// Seconds for a `Retry-After` header (429).
    retry_after: Option<u64>,
    /// The database connection died under the statement (a restarted server, a terminated
    /// backend): read-only work may run again on another connection (`api::database`).
    connection_lost: bool,
}

/// The short lower-case name of a status, as the original service wrote it (`"not found"`).
pub fn error_name(status: StatusCode) -> String {
    status
        .canonical_reason()
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| "error".to_owned())
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            connection_lost: false,
        }
    }

    /// Whether the database connection was lost under the request (see `api::database`).
    pub fn is_connection_lost(&self) -> bool {
        self.connection_lost
    }

    /// 429 with `Retry-After: <seconds>`.
    pub fn too_many_requests(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// An unexpected failure: the detail goes to the log, the client gets an opaque 500.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server failed to handle the request; the error is in its log.",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            status: self.status.as_u16(),
            error: error_name(self.status),
            message: self.message.clone(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        // No `WWW-Authenticate` challenge on a 401: keeper's clients (`ltd upload`, `keeper
        // upload`, scripts) send their credentials unasked, and a challenge would make a browser
        // prompt for, then keep and resend, Basic credentials that a published page's script on
        // the same origin could ride on.
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(self.body())
    }
}

impl From<DieselError> for ApiError {
    fn from(err: DieselError) -> Self {
        match (violation(&err), err) {
            (_, DieselError::NotFound) => Self::not_found("No such resource."),
            (Some(Violation::Unique), _) => {
                Self::conflict("A resource with that identifier already exists.")
            }
            (Some(Violation::ForeignKey), _) => Self::conflict(
                "The request refers to a resource that does not exist, or removes one that \
                 others still refer to.",
            ),
            (Some(Violation::Check | Violation::NotNull), DieselError::DatabaseError(_, info)) => {
                Self::unprocessable(format!("A value is out of range ({}).", info.message()))
            }
            (
                _,
                DieselError::DatabaseError(
                    DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                    _,
                ),
            ) => Self {
                connection_lost: true,
                ..Self::unavailable("The database connection was lost; retry the request.")
            },
            (_, other) => Self::internal(other),
        }
    }
}

impl From<r2d2::Error> for ApiError {
    fn from(err: r2d2::Error) -> Self {
        tracing::warn!(error = %err, "no database connection available");
        Self::unavailable("The database is unavailable; retry the request shortly.")
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        Self::internal(err)
    }
}

impl From<crate::catalog::CatalogError> for ApiError {
    fn from(err: crate::catalog::CatalogError) -> Self {
        match err {
            crate::catalog::CatalogError::Database(err) => err.into(),
            // Only the original's (v1) routes change the catalogue: invalid input is 400 there.
            refused => Self::bad_request(refused.to_string()),
        }
    }
}

/// The result type of every handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// A lookup of a name in a v1 request body: `NotFound` becomes 400 with `what()` (the
/// original's status for invalid input); other errors keep their mapping.
pub fn or_bad_request<T>(
    result: diesel::QueryResult<T>,
    what: impl FnOnce() -> String,
) -> ApiResult<T> {
    result.map_err(|err| match err {
        DieselError::NotFound => ApiError::bad_request(what()),
        other => other.into(),
    })
}

/// A lookup whose `NotFound` becomes a 404 saying what is missing; other errors keep their mapping.
pub fn or_not_found<T>(
    result: diesel::QueryResult<T>,
    what: impl FnOnce() -> String,
) -> ApiResult<T> {
    result.map_err(|err| match err {
        DieselError::NotFound => ApiError::not_found(what()),
        other => other.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_web::test]
    async fn error_response_has_the_documented_shape() {
        let response = ApiError::conflict("Pick another slug.").error_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let bytes = to_bytes(response.into_body()).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"status": 409, "error": "conflict", "message": "Pick another slug."})
        );
    }

    #[test]
    fn internal_errors_do_not_leak_detail() {
        let err = ApiError::internal("connection to 10.0.0.3 failed: password authentication");
        assert!(!err.body().message.contains("10.0.0.3"));
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn diesel_errors_map_to_statuses() {
        assert_eq!(
            ApiError::from(DieselError::NotFound).status(),
            StatusCode::NOT_FOUND
        );
        let unique = DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("duplicate".to_string()),
        );
        assert_eq!(ApiError::from(unique).status(), StatusCode::CONFLICT);
        let fk = DieselError::DatabaseError(
            DatabaseErrorKind::ForeignKeyViolation,
            Box::new("dangling".to_string()),
        );
        assert_eq!(ApiError::from(fk).status(), StatusCode::CONFLICT);
        // SQLite's ON DELETE RESTRICT arrives as an unknown constraint error.
        let restrict = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("FOREIGN KEY constraint failed".to_string()),
        );
        assert_eq!(ApiError::from(restrict).status(), StatusCode::CONFLICT);
        let check = DieselError::DatabaseError(
            DatabaseErrorKind::CheckViolation,
            Box::new("bad slug".to_string()),
        );
        assert_eq!(
            ApiError::from(check).status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
