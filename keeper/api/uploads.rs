//! Keeper's own POST-object upload endpoint, for the local store: the same multipart form as S3
//! (the fields, then a `file` part; `${filename}` in `key` replaced by the file's name; 204 on
//! success), with forms that keeper signed itself ([`presign`](crate::storage::presign)).
//!
//! The policy's signature and expiry are checked before the file is read, the file is read up
//! to the policy's size limit, then every condition is checked, then the build the key lies in
//! must still be open (registered, not yet confirmed or deprecated: a confirmed build is
//! immutable, so a form replayed after confirmation writes nothing); only then is the object
//! written. A refused form answers 4xx in the JSON error shape and writes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_multipart::{Field, Multipart};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use bytes::BytesMut;
use chrono::{DateTime, Utc};
use diesel::OptionalExtension;
use futures::TryStreamExt;

use crate::api::app::AppState;
use crate::api::database::run_db;
use crate::backends::{OrgBackends, SettingsError};
use crate::db::builds::find_build_by_slug;
use crate::db::models::OrganizationSettings;
use crate::db::products::find_product_by_slug;
use crate::domain::BucketPrefix;
use crate::error::{ApiError, ApiResult};
use crate::storage::presign::{
    presign_post, KeyRule, PolicyError, PostForm, PostPolicyRequest, PresignedPost,
    SigningCredentials,
};
use crate::storage::s3::S3Store;
use crate::storage::{Metadata, ObjectStore, StorageError};

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

/// Where the upload forms of new builds point, by the configured store.
#[derive(Debug, Clone)]
pub enum FormTarget {
    /// Keeper's own endpoint ([`UPLOAD_PATH`] under keeper's public URL), for the local store;
    /// forms signed with keeper's key.
    Keeper(SigningCredentials),
    /// The bucket itself, with forms signed by the store's credentials.
    S3(S3Store),
}

/// Signs the presigned upload forms handed out with a new build (`post_prefix_urls`,
/// `post_dir_urls`). Registered as app data by [`StorageServices`](crate::api::StorageServices).
#[derive(Debug, Clone)]
pub struct UploadForms {
    /// The default organization's target (the process's store).
    pub target: FormTarget,
    /// The default organization's store (the process's), where a new build's prefix is checked
    /// to be unused.
    pub store: Arc<dyn ObjectStore>,
    /// The other organizations' buckets.
    pub organizations: Arc<OrgBackends>,
    /// How long a form stays valid.
    pub expiry: std::time::Duration,
    /// Largest file a form allows.
    pub max_bytes: u64,
}

/// The `Cache-Control` every uploaded build object gets: a build never changes.
pub const BUILD_CACHE_CONTROL: &str = "max-age=31536000";

/// The `Content-Type` of the empty directory-redirect objects.
pub const DIRECTORY_CONTENT_TYPE: &str = "application/x-directory";

/// A build's forms, by directory name (`/`, `a/b/`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildForms {
    /// For the files of each directory: key `<directory prefix>${filename}`.
    pub prefix: BTreeMap<String, PresignedPost>,
    /// For each directory's empty redirect object: key = the directory without its `/`.
    pub dir: BTreeMap<String, PresignedPost>,
}

impl UploadForms {
    /// Where the forms of a build of a product of the organization with `settings` point.
    pub async fn target_for(
        &self,
        settings: &OrganizationSettings,
    ) -> Result<FormTarget, SettingsError> {
        if OrgBackends::is_default(settings) {
            return Ok(self.target.clone());
        }
        Ok(FormTarget::S3(
            self.organizations.for_organization(settings).await?.s3,
        ))
    }

    /// The store of the organization with `settings`: the process's for the default one.
    pub async fn store_for(
        &self,
        settings: &OrganizationSettings,
    ) -> Result<Arc<dyn ObjectStore>, SettingsError> {
        if OrgBackends::is_default(settings) {
            return Ok(self.store.clone());
        }
        Ok(self.organizations.for_organization(settings).await?.store)
    }

    /// Signs both forms of every `(name, prefix)` directory of a build whose surrogate key is
    /// `surrogate_key`, for `target`. `upload_url` is keeper's own endpoint (used for the local
    /// store).
    pub async fn sign(
        &self,
        target: &FormTarget,
        upload_url: &str,
        directories: &[(String, BucketPrefix)],
        surrogate_key: &str,
        now: DateTime<Utc>,
    ) -> Result<BuildForms, StorageError> {
        let (url, bucket, credentials) = match target {
            FormTarget::Keeper(credentials) => (upload_url.to_owned(), None, credentials.clone()),
            FormTarget::S3(store) => (
                store.post_url(),
                Some(store.bucket().to_owned()),
                store.signing_credentials().await?,
            ),
        };
        let expires_at = now
            + chrono::Duration::from_std(self.expiry).unwrap_or_else(|_| chrono::Duration::days(1));
        let request = |key: KeyRule, dir_redirect: bool| {
            let mut metadata = Metadata::from([("surrogate-key".into(), surrogate_key.into())]);
            if dir_redirect {
                metadata.insert("dir-redirect".into(), "true".into());
            }
            PostPolicyRequest {
                key,
                // Clients send no Content-Type with a directory object, and S3 refuses a form
                // whose policy names a field it lacks.
                content_type: dir_redirect.then(|| DIRECTORY_CONTENT_TYPE.to_owned()),
                cache_control: Some(BUILD_CACHE_CONTROL.into()),
                metadata,
                acl: None,
                max_bytes: if dir_redirect { 0 } else { self.max_bytes },
                expires_at,
            }
        };
        let mut forms = BuildForms::default();
        for (name, prefix) in directories {
            let sign = |request: &PostPolicyRequest| {
                presign_post(&url, bucket.as_deref(), request, &credentials, now)
            };
            forms.prefix.insert(
                name.clone(),
                sign(&request(KeyRule::Prefix(prefix.as_str().to_owned()), false)),
            );
            forms.dir.insert(
                name.clone(),
                sign(&request(
                    KeyRule::Exact(prefix.as_dir_key().to_owned()),
                    true,
                )),
            );
        }
        Ok(forms)
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

/// 409 unless `key` lies in a build that is registered and neither confirmed nor deprecated.
async fn require_open_build(state: &AppState, key: &str) -> ApiResult<()> {
    // `<product>/builds/<build>/<file>`, or `<product>/builds/<build>` itself (the build
    // root's directory-redirect object).
    let mut segments = key.splitn(4, '/');
    let (Some(product), Some("builds"), Some(build)) =
        (segments.next(), segments.next(), segments.next())
    else {
        return Err(ApiError::forbidden(
            "The upload was refused: keeper's upload endpoint only writes into a build's \
             prefix (<product>/builds/<build>/).",
        ));
    };
    let (product, build) = (product.to_owned(), build.to_owned());
    run_db(&state.pool, move |conn| {
        let missing = || {
            ApiError::conflict(format!(
                "The upload was refused: product {product} has no build {build}; register a \
                 build (POST /products/{product}/builds/) and upload with its forms."
            ))
        };
        let found = find_product_by_slug(conn, &product)
            .optional()?
            .ok_or_else(missing)?;
        let found = find_build_by_slug(conn, found.id, &build)?.ok_or_else(missing)?;
        if found.uploaded || found.date_ended.is_some() {
            return Err(ApiError::conflict(format!(
                "The upload was refused: build {build} of {product} is {}, and a confirmed build \
                 is immutable; register a new build to publish other files.",
                if found.date_ended.is_some() {
                    "deprecated"
                } else {
                    "confirmed"
                }
            )));
        }
        Ok(())
    })
    .await
}

pub async fn upload(
    state: web::Data<AppState>,
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
        require_open_build(&state, &key).await?;
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
