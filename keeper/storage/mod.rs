//! Object storage: the [`ObjectStore`] trait, its S3 ([`s3::S3Store`]) and local directory
//! ([`local::LocalStore`]) implementations, and presigned POST forms ([`presign`]).
//!
//! This module knows nothing of the database. Keys are plain strings here; every operation on a
//! prefix takes a prefix that ends in `/`, so that `v/1/` never touches `v/10/`.

pub mod local;
pub mod presign;
pub mod s3;

use std::collections::BTreeMap;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;

/// Most keys one batch delete sends (the S3 `DeleteObjects` limit).
pub const DELETE_BATCH: usize = 1000;

/// User metadata: lower-case names without the `x-amz-meta-` prefix (`surrogate-key`).
pub type Metadata = BTreeMap<String, String>;

/// The headers an object is stored with. A copy keeps all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectHeaders {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

impl ObjectHeaders {
    /// These headers with the entries of `overrides` added to or replacing the user metadata
    /// (names lower-cased, as stores report them).
    pub fn with_metadata(mut self, overrides: &Metadata) -> Self {
        for (name, value) in overrides {
            self.metadata
                .insert(name.to_ascii_lowercase(), value.clone());
        }
        self
    }
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
}

/// What `head` answers: the listing entry and the stored headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub summary: ObjectSummary,
    pub headers: ObjectHeaders,
}

/// A stream of byte chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send>>;

/// A stream of listing pages; memory holds one page at a time.
pub type PageStream<'a> =
    Pin<Box<dyn Stream<Item = Result<Vec<ObjectSummary>, StorageError>> + Send + 'a>>;

/// An object being read: its head, and its body as a stream.
pub struct Object {
    pub head: ObjectHead,
    pub body: ByteStream,
}

impl Object {
    /// Reads the whole body (tests and small objects).
    pub async fn bytes(self) -> Result<Bytes, StorageError> {
        use futures::TryStreamExt;
        let chunks: Vec<Bytes> = self.body.try_collect().await?;
        Ok(Bytes::from(chunks.concat()))
    }
}

/// A key that a batch delete could not delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteFailure {
    pub key: String,
    pub code: String,
    pub message: String,
}

/// The outcome of a batch delete: deleting a missing key is not a failure (as on S3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteReport {
    pub deleted: Vec<String>,
    pub failed: Vec<DeleteFailure>,
}

/// Errors of both stores; each carries the key (or prefix) it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("invalid prefix {prefix:?}: a prefix must be a valid key path ending in '/'")]
    InvalidPrefix { prefix: String },
    #[error("no object at {key:?}")]
    NotFound { key: String },
    /// A conditional copy found the source changed: its ETag is no longer the expected one.
    #[error("{key:?} changed: its ETag is no longer {expected}")]
    Changed { key: String, expected: String },
    #[error("{operation} {key:?} failed{}: {source}", status.map(|s| format!(" with status {s}")).unwrap_or_default())]
    Backend {
        operation: &'static str,
        key: String,
        status: Option<u16>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{operation} {key:?} failed: {source}")]
    Io {
        operation: &'static str,
        key: String,
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// The source of a conditional copy is missing or no longer the expected version.
    pub fn is_changed_or_missing(&self) -> bool {
        matches!(self, Self::NotFound { .. } | Self::Changed { .. })
    }
}

/// Object storage, as the API, the operations and the site server use it.
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Every object under `prefix` (which must end in `/`), in key order, one page at a time.
    fn list<'a>(&'a self, prefix: &'a str) -> PageStream<'a>;

    /// The object's size, ETag and headers.
    async fn head(&self, key: &str) -> Result<ObjectHead, StorageError>;

    /// The object with a streaming body.
    async fn get(&self, key: &str) -> Result<Object, StorageError>;

    /// Writes (or replaces) an object. Readers see the old or the new object, never a part.
    async fn put(
        &self,
        key: &str,
        body: Bytes,
        headers: &ObjectHeaders,
    ) -> Result<(), StorageError>;

    /// Copies `from` to `to`, keeping every stored header and user metadata entry, with the
    /// entries of `metadata` added or replaced (e.g. `surrogate-key`).
    async fn copy(&self, from: &str, to: &str, metadata: &Metadata) -> Result<(), StorageError>;

    /// Copies `from` to `to` and stores the copy with exactly `headers` (the source's headers as
    /// a HEAD or a sealed build's manifest gave them, changed by the caller). It does not read
    /// the source's headers itself. With `if_match`, the copy happens only if the source's ETag
    /// is still that one (S3's `x-amz-copy-source-if-match`); otherwise
    /// [`StorageError::Changed`] and nothing is written.
    async fn copy_with_headers(
        &self,
        from: &str,
        to: &str,
        headers: &ObjectHeaders,
        if_match: Option<&str>,
    ) -> Result<(), StorageError>;

    /// Deletes up to [`DELETE_BATCH`] keys in one request; longer slices go in several.
    async fn delete(&self, keys: &[String]) -> Result<DeleteReport, StorageError>;

    /// The store's first `count` keys in key order (fewer if it holds fewer): the start-up
    /// guard asks whether a store is already in use. Reads one page, whatever the store's size.
    async fn first_keys(&self, count: usize) -> Result<Vec<String>, StorageError>;
}

/// Checks a key: relative, no empty, `.` or `..` segment, no NUL or backslash, no trailing `/`.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let invalid = |reason| {
        Err(StorageError::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return invalid("empty");
    }
    if key.len() > 1024 {
        return invalid("longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return invalid("absolute");
    }
    if key.contains('\0') {
        return invalid("contains NUL");
    }
    if key.contains('\\') {
        return invalid("contains a backslash");
    }
    if key.ends_with('/') {
        return invalid("ends in '/'");
    }
    for segment in key.split('/') {
        match segment {
            "" => return invalid("has an empty segment"),
            "." | ".." => return invalid("has a '.' or '..' segment"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a prefix: a valid key path followed by `/`.
pub fn validate_prefix(prefix: &str) -> Result<(), StorageError> {
    match prefix.strip_suffix('/') {
        Some(path) if validate_key(path).is_ok() => Ok(()),
        _ => Err(StorageError::InvalidPrefix {
            prefix: prefix.to_owned(),
        }),
    }
}

/// Every key under `prefix`, then deleted in batches. Returns the report of every batch merged.
pub async fn delete_prefix(
    store: &dyn ObjectStore,
    prefix: &str,
) -> Result<DeleteReport, StorageError> {
    use futures::TryStreamExt;
    let mut report = DeleteReport::default();
    let mut pages = store.list(prefix);
    while let Some(page) = pages.try_next().await? {
        let keys: Vec<String> = page.into_iter().map(|object| object.key).collect();
        let batch = store.delete(&keys).await?;
        report.deleted.extend(batch.deleted);
        report.failed.extend(batch.failed);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_escape_are_rejected() {
        for key in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "a/./b",
            "a//b",
            "a\\b",
            "a\0b",
            "dir/",
        ] {
            assert!(validate_key(key).is_err(), "{key:?} accepted");
        }
        for key in ["a", "demo/v/__main/index.html", "a/b..c/d", "x/%2e%2e/y"] {
            assert!(validate_key(key).is_ok(), "{key:?} rejected");
        }
    }

    #[test]
    fn prefixes_end_in_a_slash() {
        assert!(validate_prefix("demo/v/1/").is_ok());
        for prefix in ["demo/v/1", "", "/", "/demo/", "a/../"] {
            assert!(validate_prefix(prefix).is_err(), "{prefix:?} accepted");
        }
    }
}
