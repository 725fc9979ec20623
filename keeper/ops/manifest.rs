//! Sealed builds' manifests (DESIGN.md section 6): the object list of a confirmed build, kept in
//! the bucket under the reserved prefix and named by its own SHA-256, which the build's row
//! records. A rebuild copies exactly a manifest's objects, each on the condition that its ETag
//! is still the sealed one, with the sealed headers, so it needs no HEAD and never publishes
//! bytes that were not confirmed.
//!
//! The format is JSON Lines: a header line, then one line per object in the store's key order:
//!
//! ```text
//! {"format":"ltd-keeper-manifest","version":1,"product":"demo","build":"3","objects":2}
//! {"key":"index.html","size":1234,"etag":"\"9e1...\"","headers":{"content_type":"text/html",...}}
//! ```
//!
//! Keys are relative to the build's prefix. A manifest is written whole (its lines are built in
//! memory, about 200 bytes per object) and read as a stream, so reading it costs a buffer
//! whatever the build's size.

use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{BucketPrefix, BuildSlug, ProductSlug, RecordKeys};
use crate::storage::{ByteStream, ObjectHeaders, ObjectStore, StorageError};

/// The `format` of every manifest.
pub const FORMAT: &str = "ltd-keeper-manifest";
/// This layout of the file.
pub const VERSION: u32 = 1;

/// The first line of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub product: String,
    pub build: String,
    /// Objects listed after the header.
    pub objects: u64,
}

/// One object of a sealed build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative to the build's prefix.
    pub key: String,
    pub size: u64,
    pub etag: String,
    /// What a copy must keep: content type, cache control, content encoding and disposition,
    /// and every `x-amz-meta-*` entry (the build's surrogate key among them).
    pub headers: ObjectHeaders,
}

/// A build as sealed: the manifest's digest and how many objects it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub digest: String,
    pub objects: u64,
}

/// Where the manifest with `digest` of `build` lives. Naming it by its digest means two workers
/// sealing one build at once never overwrite each other's manifest: the database keeps the
/// first digest, and that manifest stays as it was written.
pub fn key(product: &ProductSlug, build: &BuildSlug, digest: &str) -> String {
    RecordKeys::of(product).manifest(build, digest)
}

/// Lists the build's objects, reads each one's headers once (`concurrency` at a time), and
/// writes the manifest. Returns its digest; the caller records it in the build's row.
pub async fn seal(
    store: &Arc<dyn ObjectStore>,
    product: &ProductSlug,
    build: &BuildSlug,
    concurrency: usize,
) -> anyhow::Result<Sealed> {
    let prefix = BucketPrefix::build(product, build);
    let mut lines = Vec::new();
    let mut objects = 0u64;
    let mut heads = std::pin::pin!(store
        .list(prefix.as_str())
        .map_ok(|page| futures::stream::iter(page.into_iter().map(Ok::<_, StorageError>)))
        .try_flatten()
        .map_err(|err| anyhow::Error::from(err).context(format!("listing {prefix}")))
        .map_ok(|summary| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .head(&summary.key)
                    .await
                    .with_context(|| format!("reading the headers of {:?}", summary.key))
            })
            .map(|joined| joined.map_err(anyhow::Error::from).and_then(|head| head))
        })
        .try_buffered(concurrency.max(1)));
    while let Some(head) = heads.try_next().await? {
        let Some(relative) = prefix.relative(&head.summary.key) else {
            bail!("the store listed {:?} under {prefix}", head.summary.key);
        };
        let Some(etag) = head.summary.etag.clone() else {
            bail!("the store gave no ETag for {:?}", head.summary.key);
        };
        let entry = Entry {
            key: relative.to_owned(),
            size: head.summary.size,
            etag,
            headers: head.headers,
        };
        serde_json::to_writer(&mut lines, &entry).context("writing the manifest")?;
        lines.push(b'\n');
        objects += 1;
    }
    let header = Header {
        format: FORMAT.to_owned(),
        version: VERSION,
        product: product.to_string(),
        build: build.to_string(),
        objects,
    };
    let mut manifest = serde_json::to_vec(&header).context("writing the manifest")?;
    manifest.push(b'\n');
    manifest.extend_from_slice(&lines);
    drop(lines);
    let digest = hex::encode(Sha256::digest(&manifest));
    let headers = ObjectHeaders {
        content_type: Some("application/x-ndjson".to_owned()),
        cache_control: Some("no-store".to_owned()),
        ..ObjectHeaders::default()
    };
    let manifest_key = key(product, build, &digest);
    store
        .put(&manifest_key, Bytes::from(manifest), &headers)
        .await
        .with_context(|| format!("writing the manifest {manifest_key:?}"))?;
    Ok(Sealed { digest, objects })
}

/// An opened manifest: its header, and its entries as a stream (in key order).
pub struct Manifest {
    pub header: Header,
    pub entries: BoxStream<'static, anyhow::Result<Entry>>,
}

/// Opens the manifest of `build` sealed with `digest`: checks the whole file against the digest
/// first (one pass that keeps nothing), then streams it again. The second pass checks the
/// digest too and fails at its end if the file changed in between.
pub async fn open(
    store: &Arc<dyn ObjectStore>,
    product: &ProductSlug,
    build: &BuildSlug,
    digest: &str,
) -> anyhow::Result<Manifest> {
    let manifest_key = key(product, build, digest);
    let found = digest_of(store, &manifest_key).await?;
    if found != digest {
        bail!(
            "the manifest {manifest_key:?} of build {build} of {product} does not match its \
             recorded digest (it was changed in the bucket); run `keeper verify --product \
             {product}`"
        );
    }
    let body = read(store, &manifest_key).await?;
    let mut lines = lines(body, manifest_key.clone(), digest.to_owned());
    let first = lines
        .try_next()
        .await?
        .with_context(|| format!("the manifest {manifest_key:?} is empty"))?;
    let header: Header = serde_json::from_slice(&first)
        .with_context(|| format!("reading the header of {manifest_key:?}"))?;
    if header.format != FORMAT || header.version != VERSION {
        bail!(
            "{manifest_key:?} is not a manifest this keeper reads (format {:?} version {})",
            header.format,
            header.version
        );
    }
    let entries = lines
        .map(move |line| {
            let line = line?;
            serde_json::from_slice::<Entry>(&line)
                .with_context(|| format!("reading an entry of {manifest_key:?}"))
        })
        .boxed();
    Ok(Manifest { header, entries })
}

async fn read(store: &Arc<dyn ObjectStore>, key: &str) -> anyhow::Result<ByteStream> {
    let object = store
        .get(key)
        .await
        .with_context(|| format!("reading the manifest {key:?}"))?;
    Ok(object.body)
}

/// The SHA-256 (hex) of the object at `key`, read as a stream.
async fn digest_of(store: &Arc<dyn ObjectStore>, key: &str) -> anyhow::Result<String> {
    let mut body = read(store, key).await?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = body
        .try_next()
        .await
        .with_context(|| format!("reading the manifest {key:?}"))?
    {
        hasher.update(&chunk);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The body's lines (without their `\n`), hashed on the way; an error item at the end if the
/// hash is not `digest`.
fn lines(
    body: ByteStream,
    key: String,
    digest: String,
) -> BoxStream<'static, anyhow::Result<Bytes>> {
    struct State {
        body: ByteStream,
        buffer: BytesMut,
        hasher: Sha256,
        ended: bool,
        key: String,
        digest: String,
    }
    let state = State {
        body,
        buffer: BytesMut::new(),
        hasher: Sha256::new(),
        ended: false,
        key,
        digest,
    };
    futures::stream::try_unfold(state, |mut state| async move {
        loop {
            if let Some(end) = state.buffer.iter().position(|byte| *byte == b'\n') {
                let mut line = state.buffer.split_to(end + 1);
                line.truncate(end);
                return Ok(Some((line.freeze(), state)));
            }
            if state.ended {
                if state.buffer.is_empty() {
                    return Ok(None);
                }
                let line = state.buffer.split().freeze();
                return Ok(Some((line, state)));
            }
            match state
                .body
                .try_next()
                .await
                .with_context(|| format!("reading the manifest {:?}", state.key))?
            {
                Some(chunk) => {
                    state.hasher.update(&chunk);
                    state.buffer.extend_from_slice(&chunk);
                }
                None => {
                    state.ended = true;
                    let found = hex::encode(std::mem::take(&mut state.hasher).finalize());
                    if found != state.digest {
                        bail!(
                            "the manifest {:?} changed while it was read; run `keeper verify`",
                            state.key
                        );
                    }
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::local::LocalStore;

    fn slugs() -> (ProductSlug, BuildSlug) {
        (
            ProductSlug::parse("demo").unwrap(),
            BuildSlug::parse("3").unwrap(),
        )
    }

    async fn store_with_build(dir: &std::path::Path, objects: usize) -> Arc<dyn ObjectStore> {
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::open(dir).unwrap());
        for n in 0..objects {
            let headers = ObjectHeaders {
                content_type: Some("text/html".into()),
                metadata: [("surrogate-key".to_owned(), "b".repeat(32))].into(),
                ..ObjectHeaders::default()
            };
            store
                .put(
                    &format!("demo/builds/3/page-{n:04}.html"),
                    Bytes::from(format!("page {n}")),
                    &headers,
                )
                .await
                .unwrap();
        }
        store
    }

    #[tokio::test]
    async fn a_sealed_build_reads_back_entry_for_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_build(dir.path(), 2_500).await;
        let (product, build) = slugs();
        let sealed = seal(&store, &product, &build, 8).await.unwrap();
        assert_eq!(sealed.objects, 2_500);
        let manifest = open(&store, &product, &build, &sealed.digest)
            .await
            .unwrap();
        assert_eq!(manifest.header.objects, 2_500);
        let entries: Vec<Entry> = manifest.entries.try_collect().await.unwrap();
        let keys: Vec<&str> = entries.iter().map(|entry| entry.key.as_str()).collect();
        let expected: Vec<String> = (0..2_500).map(|n| format!("page-{n:04}.html")).collect();
        assert_eq!(keys, expected);
        assert_eq!(entries[7].size, "page 7".len() as u64);
        assert_eq!(
            entries[7].headers.content_type.as_deref(),
            Some("text/html")
        );
        assert_eq!(
            entries[7].headers.metadata.get("surrogate-key"),
            Some(&"b".repeat(32))
        );
    }

    #[tokio::test]
    async fn a_manifest_changed_in_the_bucket_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_build(dir.path(), 3).await;
        let (product, build) = slugs();
        let sealed = seal(&store, &product, &build, 2).await.unwrap();
        let manifest_key = key(&product, &build, &sealed.digest);
        let original = store
            .get(&manifest_key)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let tampered = String::from_utf8(original.to_vec())
            .unwrap()
            .replace("page-0001.html", "page-0009.html");
        store
            .put(
                &manifest_key,
                Bytes::from(tampered),
                &ObjectHeaders::default(),
            )
            .await
            .unwrap();
        let refused = open(&store, &product, &build, &sealed.digest)
            .await
            .err()
            .expect("a tampered manifest was opened");
        assert!(
            refused
                .to_string()
                .contains("does not match its recorded digest"),
            "{refused:#}"
        );
    }
}
