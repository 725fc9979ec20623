//! The v1 routes answer as the original LTD Keeper 1.x does, where its clients and scripts
//! notice (each case names the original's behaviour, from `lsst-sqre/ltd-keeper` branch `1.x`):
//! invalid input is 400, read-only and unknown fields are ignored, a deleted edition still
//! answers, `fastly_domain` is the registered one, `autoincrement` is read as Python read it,
//! and the root document carries `links.self`. The deliberate differences that remain are in
//! docs/compatibility.md.

mod common;

use common::api::Api;
use common::TestBackend;
use keeper::domain::Permissions;
use serde_json::{json, Value};

fn v1_answers_as_the_original(backend: TestBackend) {
    let api = Api::start(backend);
    let admin = api.user("admin", Permissions::ALL);

    // `Product.import_data`: every field but the optional ones is required; the registered
    // Fastly domain is what `fastly_domain` returns (1.x `Product.fastly_domain`).
    let created = api.post(
        "/products/",
        &admin,
        json!({"slug": "pipelines", "doc_repo": "https://github.com/lsst/pipelines_docs",
               "title": "Pipelines", "root_domain": "lsst.io",
               "root_fastly_domain": "global.ssl.fastly.net", "bucket_name": "lsst-the-docs"}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["fastly_domain"], "global.ssl.fastly.net");
    assert_eq!(created.body["root_fastly_domain"], "global.ssl.fastly.net");

    // ValidationError is 400 (errorhandlers.bad_request), never 422.
    for body in [
        json!({"slug": "Not A Slug", "doc_repo": "x", "title": "x"}),
        json!({"slug": "other", "title": "no doc_repo"}),
        json!({"slug": "other", "doc_repo": "x", "title": "x", "main_mode": "sometimes"}),
    ] {
        let reply = api.post("/products/", &admin, body.clone());
        assert_eq!(
            (reply.status, reply.body["status"].clone()),
            (400, json!(400)),
            "{body}"
        );
    }

    // A product read with GET and sent back whole: 200 (the original's own tests do this).
    let mut product = api.get("/products/pipelines").body;
    product["title"] = json!("LSST Science Pipelines");
    let patched = api.patch("/products/pipelines", &admin, product);
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(patched.body["title"], "LSST Science Pipelines");

    // Builds: a duplicate slug is 400 (`Build.import_data`'s ValidationError).
    let build = api.post(
        "/products/pipelines/builds/",
        &admin,
        json!({"git_refs": ["main"], "slug": "b1"}),
    );
    assert_eq!(build.status, 201);
    let again = api.post(
        "/products/pipelines/builds/",
        &admin,
        json!({"git_refs": ["main"], "slug": "b1"}),
    );
    assert_eq!(again.status, 400, "{again:?}");
    let bad_refs = api.post(
        "/products/pipelines/builds/",
        &admin,
        json!({"git_refs": "main"}),
    );
    assert_eq!(bad_refs.status, 400, "{bad_refs:?}");

    // Editions: read-only fields in a POST are accepted and ignored.
    let with_extras = api.post(
        "/products/pipelines/editions/",
        &admin,
        json!({"slug": "v1", "title": "Version 1", "tracked_refs": ["v1"],
               "published_url": "https://elsewhere.example/v/v1", "self_url": "x",
               "surrogate_key": "ffffffffffffffffffffffffffffffff", "pending_rebuild": false,
               "date_created": "2016-01-01T00:00:00Z"}),
    );
    assert_eq!(with_extras.status, 201, "{with_extras:?}");
    assert_eq!(
        with_extras.body["published_url"],
        api.url("/docs/pipelines/v/v1")
    );
    assert_ne!(
        with_extras.body["surrogate_key"],
        "ffffffffffffffffffffffffffffffff"
    );
    let edition_url = with_extras.body["self_url"].as_str().unwrap().to_owned();
    // A duplicate edition slug is 400 (`Edition._validate_slug`).
    let duplicate = api.post(
        "/products/pipelines/editions/",
        &admin,
        json!({"slug": "v1", "title": "again", "tracked_refs": ["v1"]}),
    );
    assert_eq!(duplicate.status, 400, "{duplicate:?}");
    // An edition read with GET and sent back whole: 200, nothing renamed.
    let mut edition = api.get(&edition_url).body;
    edition["title"] = json!("Version one");
    let sent_back = api.patch(&edition_url, &admin, edition);
    assert_eq!(sent_back.status, 200, "{sent_back:?}");
    assert_eq!(sent_back.body["title"], "Version one");
    assert_eq!(sent_back.body["slug"], "v1");
    let renames = api
        .all_operations()
        .into_iter()
        .filter(|op| op.starts_with("rename_edition"))
        .count();
    assert_eq!(renames, 0, "sending the same slug back renamed the edition");

    // `autoincrement` as the original's `if data["autoincrement"]` read it.
    let mut slugs = Vec::new();
    for flag in [json!(true), json!("True"), json!("true"), json!(1)] {
        let auto = api.post(
            "/products/pipelines/editions/",
            &admin,
            json!({"autoincrement": flag, "mode": "manual"}),
        );
        assert_eq!(auto.status, 201, "{flag}: {auto:?}");
        slugs.push(auto.body["slug"].clone());
    }
    assert_eq!(slugs, vec![json!("1"), json!("2"), json!("3"), json!("4")]);
    for flag in [json!(false), json!("false"), json!(0)] {
        let refused = api.post(
            "/products/pipelines/editions/",
            &admin,
            json!({"autoincrement": flag, "mode": "manual"}),
        );
        assert_eq!(
            refused.status, 400,
            "{flag} is not a request for a slug: {refused:?}"
        );
    }

    // DELETE deprecates: the edition leaves the listing, and GET still answers it ended.
    assert_eq!(api.delete(&edition_url, &admin).status, 200);
    let deleted = api.get(&edition_url);
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert!(deleted.body["date_ended"].is_string(), "{deleted:?}");
    let listed: Vec<Value> = api.get("/products/pipelines/editions/").body["editions"]
        .as_array()
        .unwrap()
        .clone();
    assert!(!listed.contains(&json!(edition_url)));

    // The root document: the original's `links.self` beside `self_url`.
    let root = api.get("/").body;
    assert_eq!(root["links"]["self"], api.url("/"));
    assert_eq!(root["links"]["self_url"], api.url("/"));
}

on_both_backends!(v1_answers_as_the_original);
