//! One suite, two implementations: every test runs against the local directory store and against
//! the S3 store talking to a real S3-compatible server over HTTP (s3s + s3s-fs in-process,
//! SigV4 checked). Presigned POST forms go to S3 itself, or to keeper's own upload endpoint for
//! the local store.

mod common;
mod storage_support;

use std::sync::Arc;

use bytes::Bytes;
use chrono::{Duration, Utc};
use futures::{StreamExt, TryStreamExt};
use keeper::api::uploads::{UploadEndpoint, UPLOAD_PATH};
use keeper::storage::local::LocalStore;
use keeper::storage::presign::{
    presign_post, KeyRule, PostPolicyRequest, PresignedPost, SigningCredentials,
};
use keeper::storage::s3::S3Store;
use keeper::storage::{delete_prefix, Metadata, ObjectHeaders, ObjectStore, StorageError};
use secrecy::SecretString;
use storage_support::S3TestServer;

const PAGE_SIZE: usize = 1000;
const KEEPER_SECRET: &str = "test-signing-key-for-keeper-forms-0123456789";

/// A store under test, with what it needs kept alive.
struct Fixture {
    store: Arc<dyn ObjectStore>,
    backend: Backend,
}

enum Backend {
    Local {
        _dir: tempfile::TempDir,
        /// keeper's app serving the upload endpoint over this store (started on demand).
        upload_url: String,
        _server: OffRuntime,
        _db: common::TestDatabase,
    },
    S3 {
        store: S3Store,
        _server: S3TestServer,
    },
}

impl Fixture {
    async fn local() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalStore::with_page_size(dir.path().join("store"), PAGE_SIZE).unwrap());
        let db = common::TestDatabase::new(common::TestBackend::Sqlite);
        let config = db.config(&[]);
        let endpoint = UploadEndpoint {
            store: store.clone(),
            credentials: keeper_credentials(),
            max_bytes: 1024 * 1024,
        };
        // Start-up and serving block: keep them off the test's runtime threads.
        let server = tokio::task::spawn_blocking(move || {
            let prepared = keeper::startup::prepare(&config).unwrap();
            let state = prepared.app_state(&config, config.http.bind);
            common::TestServer::serve(&config, move |max| {
                let endpoint = endpoint.clone();
                keeper::api::app::app_with(state.clone(), max, move |cfg| endpoint.configure(cfg))
            })
        })
        .await
        .unwrap();
        // The forms these tests sign are for build 7 of demo, which must be open.
        db.seed_open_build("demo", "7");
        Self {
            store,
            backend: Backend::Local {
                _dir: dir,
                upload_url: server.url(UPLOAD_PATH),
                _server: OffRuntime(Some(server)),
                _db: db,
            },
        }
    }

    async fn s3() -> Self {
        let server = S3TestServer::start().await;
        let store = server.store(PAGE_SIZE as i32).await;
        Self {
            store: Arc::new(store.clone()),
            backend: Backend::S3 {
                store,
                _server: server,
            },
        }
    }

    /// Whether an object `a/b` and objects under `a/b/` can coexist. They can on S3 and in the
    /// local store; s3s-fs keeps objects as plain files, so it cannot (its limit, not S3's).
    fn key_and_directory_coexist(&self) -> bool {
        matches!(self.backend, Backend::Local { .. })
    }

    /// A signed form for this store: S3's own, or keeper's for the local store.
    async fn presign(&self, request: &PostPolicyRequest) -> PresignedPost {
        match &self.backend {
            Backend::S3 { store, .. } => store.presign_post(request, Utc::now()).await.unwrap(),
            Backend::Local { upload_url, .. } => {
                presign_post(upload_url, None, request, &keeper_credentials(), Utc::now())
            }
        }
    }
}

/// Stops keeper's test server on a plain thread: stopping it starts a runtime of its own, which
/// cannot happen inside the test's.
struct OffRuntime(Option<common::TestServer>);

impl Drop for OffRuntime {
    fn drop(&mut self) {
        if let Some(server) = self.0.take() {
            let _ = std::thread::spawn(move || drop(server)).join();
        }
    }
}

fn keeper_credentials() -> SigningCredentials {
    SigningCredentials::keeper(SecretString::from(KEEPER_SECRET))
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(super::Fixture::local().await).await }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(super::Fixture::s3().await).await }
            )*
        }
    };
}

on_both_stores!(
    put_head_get_round_trip,
    listing_5000_objects_across_pages_then_deleting_the_prefix,
    prefixes_must_end_in_a_slash,
    copy_rewrites_metadata_and_keeps_every_other_header,
    batch_delete_tolerates_a_missing_key,
    keys_that_escape_are_refused,
    unusual_characters_in_keys_round_trip,
    presigned_post_is_accepted,
    presigned_post_refusals,
    first_keys_tell_whether_the_store_holds_objects,
);

fn headers(content_type: &str, surrogate_key: &str) -> ObjectHeaders {
    ObjectHeaders {
        content_type: Some(content_type.into()),
        cache_control: Some("max-age=31536000".into()),
        content_encoding: Some("gzip".into()),
        content_disposition: Some("inline; filename=\"page.html\"".into()),
        metadata: Metadata::from([
            ("surrogate-key".into(), surrogate_key.into()),
            ("build-id".into(), "42".into()),
        ]),
    }
}

async fn put_head_get_round_trip(fixture: Fixture) {
    let store = &fixture.store;
    let key = "demo/builds/1/dir/page.html";
    let stored = headers("text/html", "build-key");
    store
        .put(key, Bytes::from_static(b"<h1>hello</h1>"), &stored)
        .await
        .unwrap();
    let head = store.head(key).await.unwrap();
    assert_eq!(head.summary.key, key);
    assert_eq!(head.summary.size, 14);
    assert!(head.summary.etag.is_some());
    assert_eq!(head.headers, stored);
    let object = store.get(key).await.unwrap();
    assert_eq!(object.head.headers, stored);
    assert_eq!(
        object.bytes().await.unwrap(),
        Bytes::from_static(b"<h1>hello</h1>")
    );

    // A key and a "directory" of the same name coexist (directory-redirect objects).
    if fixture.key_and_directory_coexist() {
        store
            .put("demo/builds/1/dir", Bytes::new(), &ObjectHeaders::default())
            .await
            .unwrap();
        assert_eq!(
            store.head("demo/builds/1/dir").await.unwrap().summary.size,
            0
        );
        assert_eq!(store.head(key).await.unwrap().summary.size, 14);
    }

    // Replacing gives the new content and ETag.
    store
        .put(key, Bytes::from_static(b"v2"), &stored)
        .await
        .unwrap();
    let replaced = store.head(key).await.unwrap();
    assert_ne!(replaced.summary.etag, head.summary.etag);
    assert_eq!(
        store.get(key).await.unwrap().bytes().await.unwrap(),
        Bytes::from_static(b"v2")
    );

    for missing in ["demo/builds/1/nope.html", "demo/builds/1/dir/page.htm"] {
        assert!(store.head(missing).await.unwrap_err().is_not_found());
        assert!(store.get(missing).await.err().unwrap().is_not_found());
    }
}

async fn listing_5000_objects_across_pages_then_deleting_the_prefix(fixture: Fixture) {
    let store = fixture.store.clone();
    let count = 5000;
    let keys: Vec<String> = (0..count)
        .map(|i| format!("demo/v/1/d{}/f{i:05}.html", i % 7))
        .collect();
    futures::stream::iter(keys.clone())
        .map(|key| {
            let store = store.clone();
            async move {
                store
                    .put(&key, Bytes::from(key.clone()), &ObjectHeaders::default())
                    .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    // Neighbours that a prefix must not reach: `v/10/`, `v/1-old/`, and the `v/1` redirect
    // object.
    let mut neighbours = vec!["demo/v/10/index.html", "demo/v/1-old/x"];
    if fixture.key_and_directory_coexist() {
        neighbours.push("demo/v/1");
    }
    for neighbour in &neighbours {
        store
            .put(neighbour, Bytes::new(), &ObjectHeaders::default())
            .await
            .unwrap();
    }

    let mut pages = store.list("demo/v/1/");
    let mut listed = Vec::new();
    let mut page_count = 0;
    while let Some(page) = pages.try_next().await.unwrap() {
        assert!(page.len() <= PAGE_SIZE, "a page of {}", page.len());
        page_count += 1;
        listed.extend(page);
    }
    drop(pages);
    assert!(page_count >= 5, "{page_count} pages");
    let listed_keys: Vec<String> = listed.iter().map(|object| object.key.clone()).collect();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(
        listed_keys, expected,
        "every key once, in key order, nothing else"
    );
    let first = listed.iter().find(|o| o.key == keys[0]).unwrap();
    assert_eq!(first.size, keys[0].len() as u64);

    let report = delete_prefix(store.as_ref(), "demo/v/1/").await.unwrap();
    assert_eq!(report.deleted.len(), count);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let left: Vec<_> = store.list("demo/v/1/").try_collect().await.unwrap();
    assert!(left.is_empty());
    for neighbour in &neighbours {
        store.head(neighbour).await.unwrap();
    }
}

/// The start-up guard's question, answered by reading one page: the first keys, in order.
async fn first_keys_tell_whether_the_store_holds_objects(fixture: Fixture) {
    assert!(fixture.store.first_keys(2).await.unwrap().is_empty());
    let key = "demo/builds/1/deep/down/page.html";
    let record = "__keeper/deployment.json";
    for stored in [key, record, "zeta/v/__main/index.html"] {
        fixture
            .store
            .put(stored, Bytes::from_static(b"x"), &ObjectHeaders::default())
            .await
            .unwrap();
    }
    assert_eq!(fixture.store.first_keys(2).await.unwrap(), [record, key]);
    assert_eq!(fixture.store.first_keys(1).await.unwrap(), [record]);
    let all = [
        record.to_owned(),
        key.to_owned(),
        "zeta/v/__main/index.html".to_owned(),
    ];
    fixture.store.delete(&all).await.unwrap();
    assert!(fixture.store.first_keys(2).await.unwrap().is_empty());
}

async fn prefixes_must_end_in_a_slash(fixture: Fixture) {
    for prefix in ["demo/v/1", "", "/demo/", "demo/../"] {
        let result: Result<Vec<_>, _> = fixture.store.list(prefix).try_collect().await;
        assert!(
            matches!(result, Err(StorageError::InvalidPrefix { .. })),
            "{prefix:?}: {result:?}"
        );
        assert!(delete_prefix(fixture.store.as_ref(), prefix).await.is_err());
    }
    // An empty prefix lists nothing, without error.
    let empty: Vec<_> = fixture
        .store
        .list("nothing/here/")
        .try_collect()
        .await
        .unwrap();
    assert!(empty.is_empty());
}

async fn copy_rewrites_metadata_and_keeps_every_other_header(fixture: Fixture) {
    let store = &fixture.store;
    let from = "demo/builds/3/_static/style.css";
    let to = "demo/v/__main/_static/style.css";
    let stored = headers("text/css", "build-key");
    store
        .put(from, Bytes::from_static(b"body {}"), &stored)
        .await
        .unwrap();
    store
        .copy(
            from,
            to,
            &Metadata::from([("surrogate-key".into(), "edition-key".into())]),
        )
        .await
        .unwrap();
    let copied = store.head(to).await.unwrap();
    let mut expected = stored.clone();
    expected
        .metadata
        .insert("surrogate-key".into(), "edition-key".into());
    assert_eq!(copied.headers, expected);
    assert_eq!(copied.summary.size, 7);
    assert_eq!(
        store.get(to).await.unwrap().bytes().await.unwrap(),
        Bytes::from_static(b"body {}")
    );
    // The source is untouched.
    assert_eq!(store.head(from).await.unwrap().headers, stored);
    // Copying over an existing object replaces it.
    store
        .put(to, Bytes::from_static(b"old"), &ObjectHeaders::default())
        .await
        .unwrap();
    store.copy(from, to, &Metadata::new()).await.unwrap();
    assert_eq!(store.head(to).await.unwrap().headers, stored);
    // A missing source is reported as such.
    let err = store
        .copy("demo/builds/3/missing", to, &Metadata::new())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    // With the headers given, the copy has exactly those, and the source's bytes.
    let given = ObjectHeaders {
        content_type: Some("text/plain".into()),
        content_encoding: Some("identity".into()),
        metadata: Metadata::from([("surrogate-key".into(), "other-key".into())]),
        ..ObjectHeaders::default()
    };
    store
        .copy_with_headers(from, to, &given, None)
        .await
        .unwrap();
    assert_eq!(store.head(to).await.unwrap().headers, given);
    assert_eq!(
        store.get(to).await.unwrap().bytes().await.unwrap(),
        Bytes::from_static(b"body {}")
    );
    let err = store
        .copy_with_headers("demo/builds/3/missing", to, &given, None)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

async fn batch_delete_tolerates_a_missing_key(fixture: Fixture) {
    let store = &fixture.store;
    for key in ["p/a", "p/b", "p/c"] {
        store
            .put(key, Bytes::from_static(b"x"), &ObjectHeaders::default())
            .await
            .unwrap();
    }
    let keys: Vec<String> = ["p/a", "p/b", "p/missing"].map(String::from).to_vec();
    let report = store.delete(&keys).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let mut deleted = report.deleted.clone();
    deleted.sort();
    assert_eq!(deleted, keys);
    for key in ["p/a", "p/b"] {
        assert!(store.head(key).await.unwrap_err().is_not_found());
    }
    store.head("p/c").await.unwrap();

    // An invalid key is reported per key; the valid ones are still deleted.
    let keys: Vec<String> = ["p/c", "../escape"].map(String::from).to_vec();
    let report = store.delete(&keys).await.unwrap();
    assert_eq!(report.deleted, vec!["p/c".to_owned()]);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].key, "../escape");
}

async fn keys_that_escape_are_refused(fixture: Fixture) {
    let store = &fixture.store;
    for key in [
        "../x",
        "/etc/passwd",
        "a/../../x",
        "a\0b",
        "a\\..\\b",
        "a//b",
        "dir/",
    ] {
        let err = store
            .put(key, Bytes::from_static(b"x"), &ObjectHeaders::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidKey { .. }),
            "{key:?}: {err}"
        );
        assert!(matches!(
            store.head(key).await,
            Err(StorageError::InvalidKey { .. })
        ));
    }
}

async fn unusual_characters_in_keys_round_trip(fixture: Fixture) {
    let store = &fixture.store;
    let keys = [
        "demo/v/1/50%/a%20b.html",
        "demo/v/1/space here/é+ü.html",
        "demo/v/1/%25",
        "demo/v/1/a..b/c",
    ];
    for key in keys {
        store
            .put(key, Bytes::from(key.to_owned()), &ObjectHeaders::default())
            .await
            .unwrap();
    }
    let pages: Vec<Vec<keeper::storage::ObjectSummary>> =
        store.list("demo/v/1/").try_collect().await.unwrap();
    let listed: Vec<String> = pages
        .concat()
        .into_iter()
        .map(|object| object.key)
        .collect();
    let mut expected: Vec<String> = keys.map(String::from).to_vec();
    expected.sort();
    assert_eq!(listed, expected);
    for key in keys {
        let body = store.get(key).await.unwrap().bytes().await.unwrap();
        assert_eq!(body, Bytes::from(key.to_owned()));
        store
            .copy(key, &format!("copy/{key}"), &Metadata::new())
            .await
            .unwrap();
    }
    let report = delete_prefix(store.as_ref(), "demo/").await.unwrap();
    assert_eq!(report.deleted.len(), keys.len());
}

/// Local store: opening it for keeper (serve or worker start-up) removes the temporary files a
/// killed write left behind, and only those: a write in progress and the objects stay.
#[tokio::test]
async fn start_up_removes_abandoned_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = LocalStore::open(&root).unwrap();
    store
        .put(
            "demo/builds/1/index.html",
            Bytes::from_static(b"kept"),
            &ObjectHeaders::default(),
        )
        .await
        .unwrap();
    let tmp = root.join("tmp");
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for name in ["abandoned-1", "abandoned-2"] {
        let file = std::fs::File::create(tmp.join(name)).unwrap();
        file.set_modified(two_hours_ago).unwrap();
    }
    std::fs::write(tmp.join("in-progress"), b"partial").unwrap();

    let config = keeper::config::Config::from_lookup(|name| match name {
        "KEEPER_STORAGE_DIR" => Some(root.display().to_string()),
        _ => None,
    })
    .unwrap();
    let opened = keeper::startup::open_store(&config).await.unwrap();

    let mut left: Vec<String> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["in-progress"]);
    let object = opened.get("demo/builds/1/index.html").await.unwrap();
    assert_eq!(&object.bytes().await.unwrap()[..], b"kept");
}

/// Local store: a reader never sees a partly written object, and no temporary file is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_writes_are_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::open(dir.path()).unwrap());
    let versions: Vec<Bytes> = (b'a'..=b'd')
        .map(|byte| Bytes::from(vec![byte; 512 * 1024]))
        .collect();
    store
        .put("p/big.bin", versions[0].clone(), &ObjectHeaders::default())
        .await
        .unwrap();
    let writer = {
        let store = store.clone();
        let versions = versions.clone();
        tokio::spawn(async move {
            for round in 0..40 {
                let body = versions[round % versions.len()].clone();
                store
                    .put("p/big.bin", body, &ObjectHeaders::default())
                    .await
                    .unwrap();
            }
        })
    };
    let mut reads = 0;
    // Each version's ETag, as reads report it: a head paired with another version's body would
    // show one version with two ETags.
    let mut etags = std::collections::HashMap::new();
    while !writer.is_finished() || reads == 0 {
        let object = store.get("p/big.bin").await.unwrap();
        let etag = object.head.summary.etag.clone().unwrap();
        assert_eq!(object.head.summary.size, 512 * 1024);
        let body = object.bytes().await.unwrap();
        assert_eq!(body.len(), 512 * 1024);
        assert!(
            body.iter().all(|byte| *byte == body[0]),
            "a read mixed two versions"
        );
        assert_eq!(
            etags.entry(body[0]).or_insert_with(|| etag.clone()),
            &etag,
            "a head and a body of different versions"
        );
        reads += 1;
    }
    writer.await.unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

fn upload_request(max_bytes: u64) -> PostPolicyRequest {
    PostPolicyRequest {
        key: KeyRule::Prefix("demo/builds/7/".into()),
        content_type: None,
        cache_control: Some("max-age=31536000".into()),
        metadata: Metadata::from([("surrogate-key".into(), "build7key".into())]),
        acl: None,
        max_bytes,
        expires_at: Utc::now() + Duration::hours(1),
    }
}

/// POSTs a form: its fields (with `key` replaced when given), a Content-Type, then the file.
async fn post_form(
    form: &PresignedPost,
    key: Option<&str>,
    filename: &str,
    body: &'static [u8],
) -> reqwest::Response {
    let mut multipart = reqwest::multipart::Form::new();
    for (name, value) in &form.fields {
        let value = match (name.as_str(), key) {
            ("key", Some(key)) => key.to_owned(),
            _ => value.clone(),
        };
        multipart = multipart.text(name.clone(), value);
    }
    multipart = multipart.text("Content-Type", "text/plain");
    multipart = multipart.part(
        "file",
        reqwest::multipart::Part::bytes(body).file_name(filename.to_owned()),
    );
    reqwest::Client::new()
        .post(&form.url)
        .multipart(multipart)
        .send()
        .await
        .unwrap()
}

async fn presigned_post_is_accepted(fixture: Fixture) {
    let form = fixture.presign(&upload_request(1024)).await;
    assert_eq!(form.fields["key"], "demo/builds/7/${filename}");
    // s3s-fs does not substitute ${filename}: name the key (the prefix rule allows it).
    let response = post_form(
        &form,
        Some("demo/builds/7/hello.txt"),
        "hello.txt",
        b"hello",
    )
    .await;
    let status = response.status();
    assert_eq!(status, 204, "{}", response.text().await.unwrap());
    let head = fixture.store.head("demo/builds/7/hello.txt").await.unwrap();
    assert_eq!(head.summary.size, 5);
    assert_eq!(head.headers.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        head.headers.cache_control.as_deref(),
        Some("max-age=31536000")
    );
    assert_eq!(head.headers.metadata["surrogate-key"], "build7key");
}

async fn presigned_post_refusals(fixture: Fixture) {
    let good = fixture.presign(&upload_request(16)).await;

    // Tampered: a field changed after signing.
    let mut tampered = good.clone();
    tampered.fields.insert(
        "x-amz-meta-surrogate-key".into(),
        "someone-elses-key".into(),
    );
    // Expired.
    let mut expired_request = upload_request(16);
    expired_request.expires_at = Utc::now() - Duration::seconds(5);
    let expired = fixture.presign(&expired_request).await;
    // A forged signature.
    let mut forged = good.clone();
    forged
        .fields
        .insert("x-amz-signature".into(), "0".repeat(64));

    let cases: Vec<(&str, &PresignedPost, &str, &'static [u8])> = vec![
        ("tampered", &tampered, "demo/builds/7/t.txt", b"x"),
        ("expired", &expired, "demo/builds/7/e.txt", b"x"),
        ("forged", &forged, "demo/builds/7/f.txt", b"x"),
        (
            "oversized",
            &good,
            "demo/builds/7/o.txt",
            b"seventeen bytes!!",
        ),
        ("outside its prefix", &good, "demo/builds/8/x.txt", b"x"),
        ("outside its product", &good, "other/builds/7/x.txt", b"x"),
    ];
    for (case, form, key, body) in cases {
        let response = post_form(form, Some(key), "x.txt", body).await;
        let status = response.status();
        assert!(
            status.is_client_error(),
            "{case}: {status} {}",
            response.text().await.unwrap()
        );
        assert!(
            fixture.store.head(key).await.unwrap_err().is_not_found(),
            "{case}: {key} was written"
        );
    }
    // The good form still works.
    let response = post_form(&good, Some("demo/builds/7/ok.txt"), "ok.txt", b"ok").await;
    assert_eq!(response.status(), 204);
}

/// The S3 server checks signatures: a client with the wrong secret is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_server_checks_signatures() {
    let server = S3TestServer::start().await;
    let mut settings = server.settings(PAGE_SIZE as i32);
    settings.secret_access_key = Some(SecretString::from("not-the-secret"));
    let store = S3Store::connect(settings).await;
    let err = store
        .put("a/b", Bytes::from_static(b"x"), &ObjectHeaders::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Backend {
                status: Some(403),
                ..
            }
        ),
        "{err}"
    );
    // The error names the key and never the secret.
    let message = err.to_string();
    assert!(message.contains("a/b"));
    assert!(!message.contains(storage_support::SECRET_KEY));
}

/// Without static credentials the S3 store uses the default AWS chain (here: the environment),
/// for requests and for signing forms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_default_credential_chain() {
    let server = S3TestServer::start().await;
    // Only this test reads these variables; the other S3 tests pass static credentials.
    std::env::set_var("AWS_ACCESS_KEY_ID", storage_support::ACCESS_KEY);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", storage_support::SECRET_KEY);
    let mut settings = server.settings(PAGE_SIZE as i32);
    settings.access_key_id = None;
    settings.secret_access_key = None;
    let store = S3Store::connect(settings).await;
    store
        .put(
            "chain/a",
            Bytes::from_static(b"x"),
            &ObjectHeaders::default(),
        )
        .await
        .unwrap();
    let form = store
        .presign_post(&upload_request(16), Utc::now())
        .await
        .unwrap();
    assert!(form.fields["x-amz-credential"].starts_with(storage_support::ACCESS_KEY));
    let response = post_form(&form, Some("demo/builds/7/chain.txt"), "chain.txt", b"ok").await;
    assert_eq!(response.status(), 204);
    store.head("demo/builds/7/chain.txt").await.unwrap();
}
