//! The S3 store (AWS S3, MinIO, Ceph, Garage, ...) through `aws-sdk-s3`.
//!
//! Checksums are computed and validated only when an operation requires them, which every
//! S3-compatible server accepts (recent SDK defaults send trailing CRC32 checksums that some
//! servers refuse).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{Delete, MetadataDirective, ObjectIdentifier};
use aws_sdk_s3::Client;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use secrecy::{ExposeSecret, SecretString};

use super::presign::{presign_post, PostPolicyRequest, PresignedPost, SigningCredentials};
use super::{
    validate_key, validate_prefix, DeleteFailure, DeleteReport, Metadata, Object, ObjectHead,
    ObjectHeaders, ObjectStore, ObjectSummary, PageStream, StorageError, DELETE_BATCH,
};

/// Characters of a key escaped in `x-amz-copy-source` (everything but unreserved and `/`).
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The longest wait for a connection to the S3 endpoint.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The summary and headers of a `HeadObject` or `GetObject` answer: two SDK types with the same
/// getters, so one macro reads both.
macro_rules! object_head {
    ($key:expr, $output:expr) => {
        ObjectHead {
            summary: ObjectSummary {
                key: $key.to_owned(),
                size: $output.content_length().unwrap_or(0).max(0) as u64,
                etag: $output.e_tag().map(str::to_owned),
                last_modified: $output.last_modified().and_then(chrono_time),
            },
            headers: ObjectHeaders {
                content_type: $output.content_type().map(str::to_owned),
                cache_control: $output.cache_control().map(str::to_owned),
                content_encoding: $output.content_encoding().map(str::to_owned),
                content_disposition: $output.content_disposition().map(str::to_owned),
                metadata: metadata_of($output.metadata()),
            },
        }
    };
}

/// How to reach a bucket.
#[derive(Clone)]
pub struct S3Settings {
    pub bucket: String,
    pub region: String,
    /// A non-AWS endpoint (`http://127.0.0.1:3900`); `None` for AWS itself.
    pub endpoint_url: Option<String>,
    /// `https://host/bucket/key` instead of `https://bucket.host/key` (MinIO, Garage, Ceph).
    pub path_style: bool,
    /// Static credentials; `None` uses the default chain (environment, profile, web identity,
    /// container and instance roles).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    /// Keys per listing page (at most 1000).
    pub page_size: i32,
    /// How long one attempt of a request may take (connecting included) before it is abandoned
    /// and retried: a server that stops answering must not hold an operation forever.
    pub attempt_timeout: std::time::Duration,
}

impl S3Settings {
    /// The default for [`S3Settings::attempt_timeout`]: long enough for a server-side copy of a
    /// large object.
    pub const DEFAULT_ATTEMPT_TIMEOUT: std::time::Duration =
        crate::config::DEFAULT_S3_ATTEMPT_TIMEOUT;
    /// Keys per listing page: S3's most.
    pub const PAGE_SIZE: i32 = 1000;

    /// The client settings of a configured bucket (the process's or an organization's).
    pub fn from_config(config: &crate::config::S3Config) -> Self {
        Self {
            bucket: config.bucket.clone(),
            region: config.region.clone(),
            endpoint_url: config.endpoint_url.clone(),
            path_style: config.path_style,
            access_key_id: config.access_key_id.clone(),
            secret_access_key: config.secret_access_key.clone(),
            page_size: Self::PAGE_SIZE,
            attempt_timeout: config.attempt_timeout,
        }
    }
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("page_size", &self.page_size)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct S3Store {
    client: Client,
    credentials: Option<SharedCredentialsProvider>,
    settings: S3Settings,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// Builds the client (no request is made).
    pub async fn connect(settings: S3Settings) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()));
        if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
            loader = loader.credentials_provider(Credentials::new(
                id.clone(),
                secret.expose_secret().to_owned(),
                None,
                None,
                "keeper",
            ));
        }
        if let Some(endpoint) = &settings.endpoint_url {
            loader = loader.endpoint_url(endpoint.clone());
        }
        let shared = loader.load().await;
        let credentials = shared.credentials_provider();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(settings.attempt_timeout.min(CONNECT_TIMEOUT))
            .operation_attempt_timeout(settings.attempt_timeout)
            .build();
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .timeout_config(timeouts)
            .force_path_style(settings.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Self {
            client: Client::from_conf(config),
            credentials,
            settings,
        }
    }

    pub fn bucket(&self) -> &str {
        &self.settings.bucket
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The URL browser-upload forms are POSTed to.
    pub fn post_url(&self) -> String {
        let bucket = &self.settings.bucket;
        let endpoint = self
            .settings
            .endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", self.settings.region));
        let endpoint = endpoint.trim_end_matches('/');
        if self.settings.path_style {
            return format!("{endpoint}/{bucket}");
        }
        match endpoint.split_once("://") {
            Some((scheme, host)) => format!("{scheme}://{bucket}.{host}"),
            None => format!("{endpoint}/{bucket}"),
        }
    }

    /// A presigned POST form for this bucket, signed with the store's current credentials.
    pub async fn presign_post(
        &self,
        request: &PostPolicyRequest,
        now: DateTime<Utc>,
    ) -> Result<PresignedPost, StorageError> {
        let signing = self.signing_credentials().await?;
        Ok(self.presign_post_with(&signing, request, now))
    }

    /// The store's current credentials, for signing many forms with one look-up.
    pub async fn signing_credentials(&self) -> Result<SigningCredentials, StorageError> {
        let failure = |message: String| StorageError::Backend {
            operation: "presign",
            key: String::new(),
            status: None,
            source: message.into(),
        };
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| failure("no credentials are configured".into()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|err| failure(format!("loading credentials: {err}")))?;
        Ok(SigningCredentials {
            access_key_id: credentials.access_key_id().to_owned(),
            secret_access_key: SecretString::from(credentials.secret_access_key().to_owned()),
            session_token: credentials
                .session_token()
                .map(|token| SecretString::from(token.to_owned())),
            region: self.settings.region.clone(),
        })
    }

    /// A presigned POST form for this bucket, signed with `signing`
    /// (from [`S3Store::signing_credentials`]).
    pub fn presign_post_with(
        &self,
        signing: &SigningCredentials,
        request: &PostPolicyRequest,
        now: DateTime<Utc>,
    ) -> PresignedPost {
        presign_post(
            &self.post_url(),
            Some(&self.settings.bucket),
            request,
            signing,
            now,
        )
    }
}

fn backend_error<E>(
    operation: &'static str,
    key: &str,
    err: SdkError<E, HttpResponse>,
) -> StorageError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let status = err
        .raw_response()
        .map(|response| response.status().as_u16());
    if status == Some(404) {
        return StorageError::NotFound {
            key: key.to_owned(),
        };
    }
    crate::metrics::metrics().storage_error(match (&err, status) {
        (SdkError::TimeoutError(_), _) => "timeout",
        (SdkError::DispatchFailure(_), _) => "network",
        (_, Some(429 | 503)) => "throttled",
        (_, Some(500..=599)) => "server",
        (_, Some(_)) => "client",
        _ => "other",
    });
    StorageError::Backend {
        operation,
        key: key.to_owned(),
        status,
        source: DisplayErrorContext(&err).to_string().into(),
    }
}

fn chrono_time(time: &aws_sdk_s3::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

fn metadata_of(map: Option<&HashMap<String, String>>) -> Metadata {
    map.map(|map| {
        map.iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
            .collect()
    })
    .unwrap_or_default()
}

#[async_trait]
impl ObjectStore for S3Store {
    fn list<'a>(&'a self, prefix: &'a str) -> PageStream<'a> {
        Box::pin(futures::stream::try_unfold(
            (None::<String>, false),
            move |(token, done)| async move {
                if done {
                    return Ok(None);
                }
                validate_prefix(prefix)?;
                let output = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.settings.bucket)
                    .prefix(prefix)
                    .max_keys(self.settings.page_size)
                    .set_continuation_token(token)
                    .send()
                    .await
                    .map_err(|err| backend_error("list", prefix, err))?;
                let page: Vec<ObjectSummary> = output
                    .contents()
                    .iter()
                    .filter_map(|object| {
                        Some(ObjectSummary {
                            key: object.key()?.to_owned(),
                            size: object.size().unwrap_or(0).max(0) as u64,
                            etag: object.e_tag().map(str::to_owned),
                            last_modified: object.last_modified().and_then(chrono_time),
                        })
                    })
                    .collect();
                let next = output.next_continuation_token().map(str::to_owned);
                let done = !output.is_truncated().unwrap_or(false) || next.is_none();
                if page.is_empty() && done {
                    return Ok(None);
                }
                Ok(Some((page, (next, done))))
            },
        ))
    }

    async fn head(&self, key: &str) -> Result<ObjectHead, StorageError> {
        validate_key(key)?;
        let output = self
            .client
            .head_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| backend_error("head", key, err))?;
        Ok(object_head!(key, output))
    }

    async fn get(&self, key: &str) -> Result<Object, StorageError> {
        validate_key(key)?;
        let output = self
            .client
            .get_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| backend_error("get", key, err))?;
        let head = object_head!(key, output);
        let key = key.to_owned();
        let body = futures::stream::try_unfold(output.body, move |mut body: SdkByteStream| {
            let key = key.clone();
            async move {
                match body.next().await {
                    None => Ok(None),
                    Some(Ok(chunk)) => Ok(Some((chunk, body))),
                    Some(Err(err)) => Err(StorageError::Backend {
                        operation: "get",
                        key,
                        status: None,
                        source: Box::new(err),
                    }),
                }
            }
        });
        Ok(Object {
            head,
            body: Box::pin(body),
        })
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        headers: &ObjectHeaders,
    ) -> Result<(), StorageError> {
        validate_key(key)?;
        self.client
            .put_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .body(SdkByteStream::from(body))
            .set_content_type(headers.content_type.clone())
            .set_cache_control(headers.cache_control.clone())
            .set_content_encoding(headers.content_encoding.clone())
            .set_content_disposition(headers.content_disposition.clone())
            .set_metadata(Some(headers.metadata.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|err| backend_error("put", key, err))?;
        Ok(())
    }

    /// `CopyObject` with the REPLACE directive: the source's headers are read first and sent
    /// again, with `metadata` merged over its user metadata.
    async fn copy(&self, from: &str, to: &str, metadata: &Metadata) -> Result<(), StorageError> {
        validate_key(to)?;
        let source = self.head(from).await?;
        self.copy_with_headers(from, to, &source.headers.with_metadata(metadata), None)
            .await
    }

    /// One `CopyObject` with the REPLACE directive and `headers` (and `if_match` as the
    /// copy-source condition).
    async fn copy_with_headers(
        &self,
        from: &str,
        to: &str,
        headers: &ObjectHeaders,
        if_match: Option<&str>,
    ) -> Result<(), StorageError> {
        validate_key(from)?;
        validate_key(to)?;
        let copy_source = format!(
            "{}/{}",
            self.settings.bucket,
            utf8_percent_encode(from, COPY_SOURCE)
        );
        self.client
            .copy_object()
            .bucket(&self.settings.bucket)
            .key(to)
            .copy_source(copy_source)
            .set_copy_source_if_match(if_match.map(str::to_owned))
            .metadata_directive(MetadataDirective::Replace)
            .set_content_type(headers.content_type.clone())
            .set_cache_control(headers.cache_control.clone())
            .set_content_encoding(headers.content_encoding.clone())
            .set_content_disposition(headers.content_disposition.clone())
            .set_metadata(Some(
                headers
                    .metadata
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect(),
            ))
            .send()
            .await
            .map_err(
                |err| match (if_match, err.raw_response().map(|r| r.status().as_u16())) {
                    (Some(expected), Some(412)) => StorageError::Changed {
                        key: from.to_owned(),
                        expected: expected.to_owned(),
                    },
                    _ => backend_error("copy", from, err),
                },
            )?;
        Ok(())
    }

    async fn first_keys(&self, count: usize) -> Result<Vec<String>, StorageError> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.settings.bucket)
            .max_keys(i32::try_from(count).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|err| backend_error("list", "", err))?;
        Ok(output
            .contents()
            .iter()
            .filter_map(|object| object.key())
            .take(count)
            .map(str::to_owned)
            .collect())
    }

    async fn delete(&self, keys: &[String]) -> Result<DeleteReport, StorageError> {
        let mut report = DeleteReport::default();
        for batch in keys.chunks(DELETE_BATCH) {
            let mut identifiers = Vec::with_capacity(batch.len());
            let mut sent = Vec::with_capacity(batch.len());
            for key in batch {
                if let Err(err) = validate_key(key) {
                    report.failed.push(DeleteFailure {
                        key: key.clone(),
                        code: "InvalidKey".into(),
                        message: err.to_string(),
                    });
                    continue;
                }
                let identifier = ObjectIdentifier::builder()
                    .key(key)
                    .build()
                    .map_err(|err| StorageError::Backend {
                        operation: "delete",
                        key: key.clone(),
                        status: None,
                        source: Box::new(err),
                    })?;
                identifiers.push(identifier);
                sent.push(key.clone());
            }
            if identifiers.is_empty() {
                continue;
            }
            let first = sent.first().cloned().unwrap_or_default();
            let delete = Delete::builder()
                .set_objects(Some(identifiers))
                .quiet(true)
                .build()
                .map_err(|err| StorageError::Backend {
                    operation: "delete",
                    key: first.clone(),
                    status: None,
                    source: Box::new(err),
                })?;
            let output = self
                .client
                .delete_objects()
                .bucket(&self.settings.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|err| backend_error("delete", &first, err))?;
            let mut failed: HashMap<String, DeleteFailure> = HashMap::new();
            for error in output.errors() {
                let key = error.key().unwrap_or_default().to_owned();
                failed.insert(
                    key.clone(),
                    DeleteFailure {
                        key,
                        code: error.code().unwrap_or("Unknown").to_owned(),
                        message: error.message().unwrap_or_default().to_owned(),
                    },
                );
            }
            for key in sent {
                match failed.remove(&key) {
                    Some(failure) => report.failed.push(failure),
                    None => report.deleted.push(key),
                }
            }
            report.failed.extend(failed.into_values());
        }
        Ok(report)
    }
}
