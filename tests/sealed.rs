//! The bucket as a second system of record (issue 12), on both backends against the in-process
//! S3 server: confirmed builds are sealed with a manifest, rebuilds copy exactly the manifest
//! (one conditional CopyObject per object and nothing else), an object changed after the seal
//! is never published, `keeper verify` finds and repairs what differs, and `keeper recover`
//! rebuilds the catalogue from the bucket's records.

mod common;
mod ops_support;
mod storage_support;

use std::sync::Arc;

use bytes::Bytes;
use common::{TestBackend, TestDatabase};
use keeper::domain::Permissions;
use keeper::storage::{ObjectHeaders, ObjectStore};
use ops_support::Pipeline;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const BUILD_A: &[(&str, &str, &str)] = &[
    ("index.html", "<h1>A home</h1>", "text/html"),
    (
        "guide/index.html",
        "<p>A guide</p>",
        "text/html; charset=utf-8",
    ),
    ("guide/setup.html", "<p>A setup</p>", "text/html"),
    ("_static/app.css", "body { color: red }", "text/css"),
];

const BUILD_B: &[(&str, &str, &str)] = &[
    ("index.html", "<h1>B home</h1>", "text/html"),
    (
        "guide/index.html",
        "<p>B guide</p>",
        "text/html; charset=utf-8",
    ),
    ("news.html", "<p>B news</p>", "text/html"),
];

fn edition_by_slug(p: &Pipeline, product: &str, slug: &str) -> Value {
    let list = p.api.get(&format!("/products/{product}/editions/")).body["editions"].clone();
    list.as_array()
        .unwrap()
        .iter()
        .map(|url| p.api.get(url.as_str().unwrap()).body)
        .find(|edition| edition["slug"] == slug)
        .unwrap_or_else(|| panic!("no edition {slug}"))
}

/// Registers, uploads and confirms a build as a CI user without `admin_edition` (so no edition
/// is created for its refs).
fn ci_build(p: &Pipeline, ci: &str, refs: &[&str], files: &[(&str, &str, &str)]) -> Value {
    let created = p
        .api
        .post("/products/demo/builds/", ci, json!({"git_refs": refs}));
    assert_eq!(created.status, 201, "{created:?}");
    let root = created.body["bucket_root_dir"].as_str().unwrap().to_owned();
    p.put_files(&format!("{root}/"), files);
    let confirmed = p.api.patch(
        created.body["self_url"].as_str().unwrap(),
        ci,
        json!({"uploaded": true}),
    );
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    confirmed.body
}

fn manifest_digest(p: &Pipeline, build: &Value) -> String {
    let id = build["self_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    p.api.lines(&format!(
        "SELECT COALESCE(manifest_digest, '-') AS line FROM builds WHERE id = {id}"
    ))[0]
        .clone()
}

/// Every object under `prefix` with its bytes and content type.
fn contents(p: &Pipeline, prefix: &str) -> Vec<(String, Bytes, Option<String>)> {
    p.keys(prefix)
        .into_iter()
        .map(|key| {
            let (head, bytes) = p.object(&format!("{prefix}{key}"));
            (key, bytes, head.headers.content_type)
        })
        .collect()
}

fn verifier(p: &Pipeline) -> keeper::verify::Verifier {
    keeper::verify::Verifier {
        pool: p.services.pool.clone(),
        store: p.store.clone(),
        organizations: keeper::startup::org_backends(&p.api.db.config(&[])).unwrap(),
        concurrency: 4,
    }
}

fn verify(p: &Pipeline, repair: bool) -> keeper::verify::Report {
    p.runtime
        .block_on(verifier(p).run(Some("demo"), repair))
        .unwrap()
}

/// Confirming a build seals it: the manifest in the bucket lists every object with its size,
/// ETag and headers, its SHA-256 is the digest the build's row records, and no reader path
/// reaches it.
fn a_confirmed_build_is_sealed(backend: TestBackend) {
    let p = Pipeline::start(backend, 3);
    p.api.product(&p.admin, "demo");
    let build = p.build("demo", &["main"], BUILD_A);
    p.drain();
    let digest = manifest_digest(&p, &build);
    assert_eq!(digest.len(), 64, "{digest}");
    let slug = build["slug"].as_str().unwrap();
    let key = format!("__keeper/products/demo/manifests/{slug}/{digest}.jsonl");
    let (_, manifest) = p.object(&key);
    assert_eq!(hex::encode(Sha256::digest(&manifest)), digest);
    let lines: Vec<Value> = std::str::from_utf8(&manifest)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines[0]["format"], "ltd-keeper-manifest");
    assert_eq!(lines[0]["objects"], BUILD_A.len());
    let root = build["bucket_root_dir"].as_str().unwrap();
    let mut expected: Vec<&str> = BUILD_A.iter().map(|(path, ..)| *path).collect();
    expected.sort();
    let listed: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l["key"].as_str().unwrap())
        .collect();
    assert_eq!(listed, expected);
    for line in &lines[1..] {
        let (head, bytes) = p.object(&format!("{root}/{}", line["key"].as_str().unwrap()));
        assert_eq!(line["size"], bytes.len());
        assert_eq!(line["etag"].as_str(), head.summary.etag.as_deref());
        assert_eq!(
            line["headers"]["content_type"].as_str(),
            head.headers.content_type.as_deref()
        );
        assert_eq!(
            line["headers"]["metadata"]["origin"].as_str(),
            head.headers.metadata.get("origin").map(String::as_str)
        );
    }
}

/// A rebuild from a sealed build reads no object's headers: it sends one CopyObject per object
/// into the edition; with the edition's prefix known to hold its previous build, it lists
/// nothing either, and the previous build's extra objects are still removed.
fn a_rebuild_from_a_sealed_build_sends_one_copy_per_object(backend: TestBackend) {
    let p = Pipeline::start(backend, 3);
    p.api.product(&p.admin, "demo");
    let a = p.build("demo", &["main"], BUILD_A);
    let b = p.build("demo", &["other"], BUILD_B);
    let created = p.api.post(
        "/products/demo/editions/",
        &p.admin,
        json!({"slug": "pinned", "title": "pinned", "mode": "manual", "build_url": a["self_url"]}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    p.drain();
    // Both builds are sealed and `pinned` shows A: from here on only the repoint runs.
    p.s3.traffic.record(true);
    let url = created.body["self_url"].as_str().unwrap();
    let repointed = p
        .api
        .patch(url, &p.admin, json!({"build_url": b["self_url"]}));
    assert_eq!(repointed.status, 200, "{repointed:?}");
    p.drain();
    p.s3.traffic.record(false);
    let log = p.s3.traffic.log();
    let under = |path: &'static str| log.iter().filter(move |r| r.path.contains(path));
    assert_eq!(
        log.iter().filter(|r| r.method == "HEAD").count(),
        0,
        "a rebuild from a sealed build read headers: {log:#?}"
    );
    assert_eq!(
        under("/demo/v/pinned/")
            .filter(|r| r.method == "PUT")
            .count(),
        BUILD_B.len(),
        "one copy per object"
    );
    assert_eq!(
        log.iter()
            .filter(|r| r.method == "GET" && r.query.contains("list-type"))
            .count(),
        0,
        "the edition's prefix was listed although its objects were known: {log:#?}"
    );
    assert_eq!(
        under("/demo/builds/")
            .filter(|r| !ops_support::is_dashboard_file(&r.path))
            .count(),
        0,
        "a build object was read"
    );
    let mut expected: Vec<String> = BUILD_B
        .iter()
        .map(|(path, ..)| (*path).to_owned())
        .collect();
    expected.sort();
    assert_eq!(p.keys("demo/v/pinned/"), expected, "A's extra objects stay");
    for (path, body, _) in BUILD_B {
        let (head, bytes) = p.object(&format!("demo/v/pinned/{path}"));
        assert_eq!(bytes, body.as_bytes());
        assert_eq!(
            head.headers.metadata.get("surrogate-key"),
            Some(&p.edition_key("demo", "pinned"))
        );
    }
}

/// An object of a sealed build overwritten afterwards (a still-valid upload form on S3) is
/// never published: the rebuild fails naming the key, the edition keeps serving exactly what
/// it served, and `keeper verify` reports the difference.
fn an_object_changed_after_the_seal_is_never_published(backend: TestBackend) {
    let p = Pipeline::start(backend, 3);
    p.api.product(&p.admin, "demo");
    let ci = p.api.user("ci", Permissions::UPLOAD_BUILD);
    let a = p.build("demo", &["main"], BUILD_A);
    let created = p.api.post(
        "/products/demo/editions/",
        &p.admin,
        json!({"slug": "pinned", "title": "pinned", "mode": "manual", "build_url": a["self_url"]}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let b = ci_build(&p, &ci, &["feature"], BUILD_B);
    p.drain();
    assert_eq!(manifest_digest(&p, &b).len(), 64, "B was not sealed");
    let before = contents(&p, "demo/v/pinned/");
    assert_eq!(before.len(), BUILD_A.len());

    let root = b["bucket_root_dir"].as_str().unwrap();
    p.runtime.block_on(async {
        p.store
            .put(
                &format!("{root}/guide/index.html"),
                Bytes::from_static(b"<p>not what was confirmed</p>"),
                &ObjectHeaders::default(),
            )
            .await
            .unwrap()
    });
    let url = created.body["self_url"].as_str().unwrap();
    let repointed = p
        .api
        .patch(url, &p.admin, json!({"build_url": b["self_url"]}));
    assert_eq!(repointed.status, 200, "{repointed:?}");
    let counts = p.run_queue();
    assert_eq!(counts.failed, 1, "{:?}", p.api.all_operations());
    let message = p
        .api
        .lines("SELECT COALESCE(message, '') AS line FROM operations WHERE state = 'FAILED'")[0]
        .clone();
    assert!(message.contains("guide/index.html"), "{message}");
    assert!(message.contains("keeper verify"), "{message}");
    assert_eq!(
        contents(&p, "demo/v/pinned/"),
        before,
        "the edition's pages changed"
    );
    assert_eq!(p.api.get(url).body["build_url"], a["self_url"]);

    let report = verify(&p, false);
    let found: Vec<String> = report.differences.iter().map(ToString::to_string).collect();
    assert!(
        found.iter().any(
            |d| d.contains(&format!("build {}", b["slug"].as_str().unwrap()))
                && d.contains("guide/index.html")
                && d.contains("differs from the sealed")
        ),
        "{found:#?}"
    );
}

/// `keeper verify` finds an edition object deleted by hand and one added by hand, and
/// `--repair` queues the rebuild that puts the first back and removes the second.
fn verify_repair_restores_an_edition(backend: TestBackend) {
    let p = Pipeline::start(backend, 3);
    p.api.product(&p.admin, "demo");
    p.build("demo", &["main"], BUILD_A);
    p.drain();
    let clean = verify(&p, false);
    assert!(clean.differences.is_empty(), "{:?}", clean.differences);
    assert_eq!(clean.objects, 2 * BUILD_A.len() as u64, "{clean:?}");
    let before = contents(&p, "demo/v/__main/");
    p.runtime.block_on(async {
        p.store
            .delete(&["demo/v/__main/guide/setup.html".to_owned()])
            .await
            .unwrap();
        p.store
            .put(
                "demo/v/__main/stray.html",
                Bytes::from_static(b"stray"),
                &ObjectHeaders::default(),
            )
            .await
            .unwrap();
    });
    let found = verify(&p, true);
    let lines: Vec<String> = found.differences.iter().map(ToString::to_string).collect();
    assert!(
        lines
            .iter()
            .any(|d| d.contains("edition __main: guide/setup.html: missing")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|d| d.contains("edition __main: stray.html: not in build")),
        "{lines:#?}"
    );
    assert_eq!(found.queued.len(), 1, "{:?}", found.queued);
    p.drain();
    assert_eq!(contents(&p, "demo/v/__main/"), before);
    let again = verify(&p, false);
    assert!(again.differences.is_empty(), "{:?}", again.differences);
}

/// The catalogue as the API shows it: every product, build (deprecated ones too, by id) and
/// edition.
fn catalogue(api: &common::api::Api, build_ids: &[String]) -> Value {
    let builds: Vec<String> = build_ids.iter().map(|id| format!("/builds/{id}")).collect();
    api.listings(None, &builds)
}

/// After the database is lost, `keeper recover` rebuilds the catalogue from the bucket's
/// records into an empty database: every product, build and edition answers as before (ids,
/// slugs, surrogate keys, refs, URLs); a second run changes nothing; `--dry-run` writes nothing.
fn recover_rebuilds_the_catalogue_from_the_records(backend: TestBackend) {
    let p = Pipeline::start(backend, 3);
    p.api.product(&p.admin, "demo");
    let changed = p
        .api
        .patch("/products/demo", &p.admin, json!({"title": "Demo docs"}));
    assert_eq!(changed.status, 200, "{changed:?}");
    let a = p.build("demo", &["main"], BUILD_A);
    let b = p.build("demo", &["v1.0"], BUILD_B);
    let c = p.build("demo", &["tickets/DM-1"], BUILD_B);
    let gone = p.api.delete(c["self_url"].as_str().unwrap(), &p.admin);
    assert_eq!(gone.status, 200, "{gone:?}");
    let created = p.api.post(
        "/products/demo/editions/",
        &p.admin,
        json!({"slug": "pinned", "title": "pinned", "mode": "manual", "build_url": a["self_url"]}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let url = created.body["self_url"].as_str().unwrap();
    let renamed = p
        .api
        .patch(url, &p.admin, json!({"slug": "stable", "title": "Stable"}));
    assert_eq!(renamed.status, 200, "{renamed:?}");
    let doomed = edition_by_slug(&p, "demo", "DM-1");
    let deleted = p.api.delete(doomed["self_url"].as_str().unwrap(), &p.admin);
    assert_eq!(deleted.status, 200, "{deleted:?}");
    p.drain();
    let ids: Vec<String> = [&a, &b, &c]
        .iter()
        .map(|build| {
            build["self_url"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    let before = catalogue(&p.api, &ids);

    let target = TestDatabase::new(backend);
    let store: Arc<dyn ObjectStore> = p.store.clone();
    let found = p
        .runtime
        .block_on(keeper::recover::read_records(&store))
        .unwrap();
    assert_eq!(found.count("products"), 1);
    assert_eq!(found.count("builds"), 3);
    assert_eq!(
        found.count("editions"),
        3,
        "__main, v1.0 and stable; not the deleted DM-1"
    );
    let mut conn = target.connect();
    keeper::db::migrations::upgrade(&mut conn).unwrap();
    let dry = keeper::recover::apply(&mut conn, &found, 1, true).unwrap();
    assert_eq!(dry.created["builds"], 3);
    let recovered_api = common::api::Api::on(target);
    assert!(
        recovered_api.get("/products/").body["products"]
            .as_array()
            .unwrap()
            .is_empty(),
        "--dry-run wrote"
    );
    let mut conn = recovered_api.db.connect();
    let done = keeper::recover::apply(&mut conn, &found, 1, false).unwrap();
    assert_eq!(done, dry, "the dry run did not say what the run did");
    assert_eq!(catalogue(&recovered_api, &ids), before);
    let again = keeper::recover::apply(&mut conn, &found, 1, false).unwrap();
    assert!(!again.created_any(), "{again:?}");
    assert_eq!(again.present["editions"], 3);
    // The recovered database issues new ids after the old ones: no URL is given out twice.
    let admin = recovered_api.user("admin", Permissions::ALL);
    let next = recovered_api.post(
        "/products/demo/builds/",
        &admin,
        json!({"git_refs": ["main"]}),
    );
    assert_eq!(next.status, 201, "{next:?}");
    let next_id: i64 = next.body["self_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        next_id
            > ids
                .iter()
                .map(|id| id.parse::<i64>().unwrap())
                .max()
                .unwrap()
    );
}

on_both_backends!(
    a_confirmed_build_is_sealed,
    a_rebuild_from_a_sealed_build_sends_one_copy_per_object,
    an_object_changed_after_the_seal_is_never_published,
    verify_repair_restores_an_edition,
    recover_rebuilds_the_catalogue_from_the_records,
);
