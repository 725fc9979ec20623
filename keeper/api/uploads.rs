//! Keeper's own POST-object upload endpoint, for the local store: the same multipart form as S3
//! (the fields, then a `file` part; `${filename}` in `key` replaced by the file's name; 204 on
//! success), with forms that keeper signed itself ([`presign`](crate::storage::presign)).
//!
//! The policy's signature and expiry are checked before the file is read, the file is read up
//! to the policy's size limit, then every condition is checked; only then is the object written.
//! A refused form answers 4xx in the JSON error shape and writes nothing.

use std::sync::Arc;

use actix_multipart::{Field, Multipart};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use bytes::BytesMut;
use chrono::Utc;
use futures::TryStreamExt;

use crate::error::{ApiError, ApiResult};
use crate::storage::presign::{PolicyError, PostForm, SigningCredentials};
use crate::storage::{ObjectStore, StorageError};

/// Where the endpoint is mounted (relative to keeper's public URL).
pub const UPLOAD_PATH: &str = "/uploads/";
/// Largest non-file field.
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Most fields before the file (a real form has about a dozen).
const MAX_FIELDS: usize = 64;

#[derive(Debug, Clone)]
pub struct UploadEndpoint {
    pub store: Arc<dyn ObjectStore>,
    /// Keeper's own form-signing credentials ([`SigningCredentials::keeper`]).
    pub credentials: SigningCredentials,
    /// Largest file accepted, whatever a policy says.
    pub max_bytes: u64,
}

impl UploadEndpoint {
    /// Registers the endpoint and its state.
    pub fn configure(&self, config: &mut web::ServiceConfig) {
        config.service(
            web::resource(UPLOAD_PATH)
                .app_data(web::Data::new(self.clone()))
                .route(web::post().to(upload)),
        );
    }
}

fn policy_error(err: PolicyError) -> ApiError {
    let status = match &err {
        PolicyError::SizeOutOfRange { size, max, .. } if size > max => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        err if err.is_forbidden() => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, format!("The upload was refused: {err}."))
}

fn multipart_error(err: actix_multipart::MultipartError) -> ApiError {
    ApiError::bad_request(format!("The body is not a valid multipart form: {err}."))
}

/// Reads a part, refusing it past `limit` bytes (`None` when it is too long).
async fn read_part(field: &mut Field, limit: u64) -> ApiResult<Option<BytesMut>> {
    let mut buffer = BytesMut::new();
    while let Some(chunk) = field.try_next().await.map_err(multipart_error)? {
        if (buffer.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Some(buffer))
}

pub async fn upload(
    endpoint: web::Data<UploadEndpoint>,
    mut payload: Multipart,
) -> ApiResult<HttpResponse> {
    let mut form = PostForm::new();
    let mut fields = 0;
    while let Some(mut field) = payload.try_next().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        if !name.eq_ignore_ascii_case("file") {
            fields += 1;
            if fields > MAX_FIELDS {
                return Err(ApiError::bad_request(format!(
                    "The form has more than {MAX_FIELDS} fields."
                )));
            }
            let value = read_part(&mut field, MAX_FIELD_BYTES as u64)
                .await?
                .ok_or_else(|| ApiError::bad_request(format!("The field {name:?} is too long.")))?;
            let value = String::from_utf8(value.to_vec())
                .map_err(|_| ApiError::bad_request(format!("The field {name:?} is not UTF-8.")))?;
            form.insert(&name, value);
            continue;
        }
        // The file comes last: everything needed to judge it is known now.
        let filename = field
            .content_disposition()
            .and_then(|disposition| disposition.get_filename())
            .unwrap_or_default()
            .to_owned();
        let policy = form
            .verify(&endpoint.credentials, Utc::now())
            .map_err(policy_error)?;
        let limit = policy
            .max_bytes()
            .unwrap_or(endpoint.max_bytes)
            .min(endpoint.max_bytes);
        let body = read_part(&mut field, limit).await?.ok_or_else(|| {
            ApiError::payload_too_large(format!(
                "The upload was refused: the file exceeds the form's limit of {limit} bytes."
            ))
        })?;
        let key = policy
            .check(&form, &filename, body.len() as u64)
            .map_err(policy_error)?;
        let headers = form.object_headers();
        endpoint
            .store
            .put(&key, body.freeze(), &headers)
            .await
            .map_err(|err| match err {
                StorageError::InvalidKey { .. } => {
                    ApiError::bad_request(format!("The upload was refused: {err}."))
                }
                other => ApiError::internal(other),
            })?;
        tracing::info!(key = %key, "stored an upload");
        return Ok(match form.get("success_action_status") {
            Some("200") => HttpResponse::Ok().finish(),
            Some("201") => HttpResponse::Created()
                .content_type("application/xml")
                .body(format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Key>{}</Key></PostResponse>",
                    xml_escape(&key)
                )),
            _ => HttpResponse::NoContent().finish(),
        });
    }
    Err(ApiError::bad_request(
        "The form has no file part; send the fields, then a part named \"file\".",
    ))
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
