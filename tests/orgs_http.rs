//! Organizations over HTTP (issue 17, item 4), on both backends: `/orgs/` does what `keeper org`
//! does, by the same rules; secrets are write-only; `admin_org` is granted per organization and
//! an organization's admin cannot touch another's settings.

mod common;
mod storage_support;

use bytes::Bytes;
use common::api::Api;
use common::TestBackend;
use keeper::domain::Permissions;
use keeper::storage::{ObjectHeaders, ObjectStore};
use reqwest::Method;
use serde_json::{json, Value};
use storage_support::S3TestServer;

const S3_SECRET: &str = "s3-secret-never-shown";
const FASTLY_KEY: &str = "fastly-key-never-shown";

fn encryption_key() -> String {
    keeper::crypto::EncryptionKeys::generate_key()
}

fn grant_every(api: &Api, username: &str) {
    let mut conn = api.db.connect();
    keeper::org_admin::run_org(
        keeper::org_admin::OrgCommand::Grant {
            username: username.into(),
            org: None,
            all: true,
        },
        &mut conn,
        None,
        &Default::default(),
    )
    .unwrap();
}

fn put(api: &Api, path: &str, token: &str) -> common::api::Reply {
    api.call(Method::PUT, path, Some(token), None)
}

fn stored_secrets(api: &Api, slug: &str) -> String {
    api.lines(&format!(
        "SELECT COALESCE(s3_secret_access_key_encrypted, '-') || ' ' || \
         COALESCE(fastly_api_key_encrypted, '-') AS line FROM organizations WHERE slug = '{slug}'"
    ))[0]
        .clone()
}

fn organizations_are_managed_over_http(backend: TestBackend) {
    let key = encryption_key();
    let api = Api::start_with(backend, &[("KEEPER_ENCRYPTION_KEYS", &key)]);
    let root = api.user("root", Permissions::ALL);
    // The five bits are not enough: admin_org is granted apart.
    let reply = api.post(
        "/orgs/",
        &root,
        json!({"slug": "acme", "bucket_name": "acme-docs"}),
    );
    assert_eq!(reply.status, 403, "{reply:?}");
    assert!(reply.body["message"]
        .as_str()
        .unwrap()
        .contains("keeper org grant root --all"));
    grant_every(&api, "root");

    // Created with secrets: the answer shows them as "set", the database holds them encrypted.
    let created = api.post(
        "/orgs/",
        &root,
        json!({
            "slug": "acme", "title": "Acme", "bucket_name": "acme-docs",
            "s3_endpoint_url": "http://127.0.0.1:3900", "s3_path_style": true,
            "s3_access_key_id": "GKacme", "s3_secret_access_key": S3_SECRET,
            "cdn": "fastly", "fastly_service_id": "svc1", "fastly_api_key": FASTLY_KEY,
        }),
    );
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(
        created.location.as_deref(),
        Some(api.url("/orgs/acme").as_str())
    );
    let acme = created.body.clone();
    assert_eq!(acme["s3_secret_access_key"], "set");
    assert_eq!(acme["fastly_api_key"], "set");
    assert_eq!(
        acme["path_prefix"], "/acme",
        "keeper's own URL: under the slug"
    );
    assert_eq!(acme["uses_process_store_and_cdn"], false);
    let stored = stored_secrets(&api, "acme");
    assert!(
        !stored.contains(S3_SECRET) && !stored.contains(FASTLY_KEY),
        "{stored}"
    );
    let fetched = api.get_with("/orgs/acme", &root);
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, acme);
    for reply in [
        &created.body,
        &fetched.body,
        &api.get_with("/orgs/", &root).body,
    ] {
        let text = reply.to_string();
        assert!(
            !text.contains(S3_SECRET) && !text.contains(FASTLY_KEY),
            "{text}"
        );
    }

    // What a GET answered can be sent back whole: nothing changes, the secrets stay.
    let same = api.patch("/orgs/acme", &root, fetched.body.clone());
    assert_eq!(same.status, 200, "{same:?}");
    assert_eq!(same.body, acme);
    assert_eq!(stored_secrets(&api, "acme"), stored);
    // A new secret replaces the stored one; null clears one (with the CDN that needs it).
    let rotated = api.patch(
        "/orgs/acme",
        &root,
        json!({"s3_secret_access_key": "another"}),
    );
    assert_eq!(rotated.status, 200);
    assert_ne!(stored_secrets(&api, "acme"), stored);
    let refused = api.patch("/orgs/acme", &root, json!({"fastly_api_key": null}));
    assert_eq!(refused.status, 422, "{refused:?}");
    assert!(refused.body["message"]
        .as_str()
        .unwrap()
        .contains("fastly_api_key"));
    let cleared = api.patch(
        "/orgs/acme",
        &root,
        json!({"fastly_api_key": null, "cdn": "none", "fastly_service_id": null}),
    );
    assert_eq!(cleared.status, 200, "{cleared:?}");
    assert!(cleared.body["fastly_api_key"].is_null());
    assert!(stored_secrets(&api, "acme").ends_with(" -"));

    // The CLI's rules, in the API's words; nothing is written when refused.
    api.post(
        "/orgs/",
        &root,
        json!({"slug": "beta", "bucket_name": "beta-docs"}),
    );
    let before = api.get_with("/orgs/acme", &root).body;
    for (body, status, says) in [
        (json!({"bucket_name": ""}), 422, "bucket_name"),
        (json!({"layout": "subdomain"}), 422, "root_domain"),
        (json!({"layout": "flat"}), 422, "expected subdomain or path"),
        (
            json!({"cdn": "akamai"}),
            422,
            "expected none, fastly or varnish",
        ),
        (json!({"cdn": "varnish"}), 422, "varnish_urls"),
        (
            json!({"s3_endpoint_url": "not a url"}),
            422,
            "s3_endpoint_url",
        ),
        (
            json!({"s3_access_key_id": null, "s3_secret_access_key": "x"}),
            422,
            "go together",
        ),
        (
            json!({"path_prefix": "/products"}),
            422,
            "keeper's own routes",
        ),
        (json!({"path_prefix": "docs"}), 422, "must start with /"),
        (json!({"path_prefix": "/a/../b"}), 422, ".."),
        (
            json!({"path_prefix": null}),
            422,
            "path_prefix such as /docs",
        ),
        (
            json!({"path_prefix": "/beta"}),
            409,
            "organization beta already publishes at /beta",
        ),
        (json!({"path_prefix": "/docs"}), 409, "organization default"),
        (json!({"path_prefix": "/docs/acme"}), 409, "lies inside it"),
        (json!({"title": "x".repeat(2000)}), 422, "longer than"),
        (json!({"title": "a\u{0}b"}), 422, "control character"),
        (json!({"slug": "renamed"}), 422, "slug cannot change"),
        (json!({"buckett": "typo"}), 400, "unknown field `buckett`"),
        (json!(["not", "an", "object"]), 400, "JSON object"),
    ] {
        let reply = api.patch("/orgs/acme", &root, body.clone());
        assert_eq!(reply.status, status, "{body}: {reply:?}");
        let message = reply.body["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    assert_eq!(api.get_with("/orgs/acme", &root).body, before);
    let duplicate = api.post(
        "/orgs/",
        &root,
        json!({"slug": "acme", "bucket_name": "b", "path_prefix": "/other"}),
    );
    assert_eq!(duplicate.status, 409, "{duplicate:?}");
    let unnamed = api.post("/orgs/", &root, json!({"bucket_name": "b"}));
    assert_eq!(unnamed.status, 422);
    let bad_slug = api.post(
        "/orgs/",
        &root,
        json!({"slug": "Acme Corp", "bucket_name": "b"}),
    );
    assert_eq!(bad_slug.status, 422);
    // The default organization publishes with the process's store and CDN.
    let default = api.patch("/orgs/default", &root, json!({"bucket_name": "elsewhere"}));
    assert_eq!(default.status, 422);
    assert!(default.body["message"]
        .as_str()
        .unwrap()
        .contains("KEEPER_STORAGE_BACKEND"));
    assert_eq!(
        api.get_with("/orgs/default", &root).body["uses_process_store_and_cdn"],
        true
    );
    assert_eq!(api.get_with("/orgs/nothing", &root).status, 404);
    assert_eq!(api.get_with("/orgs/a%00b", &root).status, 404);

    // An organization's admin: acme's settings, not beta's, and no new organizations.
    let alice = api.user("alice", Permissions::NONE);
    assert_eq!(api.get_with("/orgs/acme", &alice).status, 403);
    let granted = put(&api, "/orgs/acme/admins/alice", &root);
    assert_eq!(granted.status, 200, "{granted:?}");
    assert_eq!(granted.body["admins"], json!(["alice"]));
    assert_eq!(
        api.patch("/orgs/acme", &alice, json!({"title": "Acme Docs"}))
            .status,
        200
    );
    assert_eq!(api.get_with("/orgs/beta", &alice).status, 403);
    let beta = api.patch("/orgs/beta", &alice, json!({"title": "Taken"}));
    assert_eq!(beta.status, 403, "{beta:?}");
    assert!(beta.body["message"]
        .as_str()
        .unwrap()
        .contains("organization beta"));
    assert_eq!(api.get_with("/orgs/beta", &root).body["title"], "beta");
    assert_eq!(
        api.post(
            "/orgs/",
            &alice,
            json!({"slug": "gamma", "bucket_name": "g"})
        )
        .status,
        403
    );
    assert_eq!(put(&api, "/orgs/beta/admins/alice", &alice).status, 403);
    let listed: Vec<Value> = api.get_with("/orgs/", &alice).body["organizations"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["slug"], "acme");
    assert_eq!(
        api.get_with("/orgs/", &root).body["organizations"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // An API token narrowed to some permissions carries no admin_org; one with alice's own does.
    let narrowed = api.post(
        "/tokens/",
        &alice,
        json!({"name": "narrow", "permissions": []}),
    );
    assert_eq!(narrowed.status, 201, "{narrowed:?}");
    let narrowed = narrowed.body["token"].as_str().unwrap().to_owned();
    assert_eq!(api.get_with("/orgs/acme", &narrowed).status, 403);
    let own = api.post("/tokens/", &alice, json!({"name": "own"}));
    let own = own.body["token"].as_str().unwrap().to_owned();
    assert_eq!(api.get_with("/orgs/acme", &own).status, 200);
    // Revoked: alice is back to nothing.
    assert_eq!(api.delete("/orgs/acme/admins/alice", &root).status, 200);
    assert_eq!(api.get_with("/orgs/acme", &alice).status, 403);
    assert_eq!(put(&api, "/orgs/acme/admins/nobody", &root).status, 404);
    assert_eq!(api.get("/orgs/").status, 401);
}

/// Without `KEEPER_ENCRYPTION_KEYS` a secret is never stored (not even in plain text).
fn secrets_need_an_encryption_key(backend: TestBackend) {
    let api = Api::start(backend);
    let root = api.user("root", Permissions::ALL);
    grant_every(&api, "root");
    let reply = api.post(
        "/orgs/",
        &root,
        json!({"slug": "acme", "bucket_name": "b", "s3_access_key_id": "GK", "s3_secret_access_key": S3_SECRET}),
    );
    assert_eq!(reply.status, 422, "{reply:?}");
    assert!(reply.body["message"]
        .as_str()
        .unwrap()
        .contains("KEEPER_ENCRYPTION_KEYS"));
    assert!(api
        .lines("SELECT slug AS line FROM organizations WHERE slug = 'acme'")
        .is_empty());
}

fn page(store: &dyn ObjectStore, runtime: &tokio::runtime::Runtime, key: &str, text: &str) {
    let headers = ObjectHeaders {
        content_type: Some("text/html".into()),
        ..ObjectHeaders::default()
    };
    runtime
        .block_on(store.put(key, Bytes::from(text.to_owned()), &headers))
        .unwrap();
}

fn text_of(api: &Api, path: &str) -> (u16, String, String) {
    let response = reqwest::blocking::get(api.url(path)).unwrap();
    let status = response.status().as_u16();
    let policy = response
        .headers()
        .get("content-security-policy")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, response.text().unwrap(), policy)
}

/// Keeper's site server answers every organization published on keeper's own URL, each at its
/// path prefix from its own bucket, and follows a changed prefix without a restart.
fn the_site_server_answers_every_organizations_prefix(backend: TestBackend) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s3 = runtime.block_on(S3TestServer::start());
    let key = encryption_key();
    let api = Api::start_with_storage(backend, &[("KEEPER_ENCRYPTION_KEYS", &key)]);
    let root = api.user("root", Permissions::ALL);
    grant_every(&api, "root");
    let created = api.post(
        "/orgs/",
        &root,
        json!({
            "slug": "acme", "bucket_name": storage_support::BUCKET,
            "s3_endpoint_url": s3.endpoint(), "s3_path_style": true,
            "s3_region": storage_support::REGION,
            "s3_access_key_id": storage_support::ACCESS_KEY,
            "s3_secret_access_key": storage_support::SECRET_KEY,
        }),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let reply = api.post(
        "/products/",
        &root,
        json!({"slug": "handbook", "title": "Acme Handbook", "doc_repo": "", "organization": "acme"}),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(reply.body["published_url"], api.url("/acme/handbook"));
    api.product(&root, "demo");
    let acme_bucket = runtime.block_on(s3.store(1000));
    page(
        &acme_bucket,
        &runtime,
        "handbook/v/__main/index.html",
        "acme's handbook",
    );
    let local = api.local_store();
    page(
        &local,
        &runtime,
        "demo/v/__main/index.html",
        "the default's demo",
    );

    // Each organization at its prefix, from its own bucket, and only there.
    let (status, text, policy) = text_of(&api, "/acme/handbook/");
    assert_eq!((status, text.as_str()), (200, "acme's handbook"));
    assert!(policy.contains("/acme/"), "{policy}");
    let (status, text, _) = text_of(&api, "/docs/demo/");
    assert_eq!((status, text.as_str()), (200, "the default's demo"));
    assert_eq!(text_of(&api, "/docs/handbook/").0, 404);
    assert_eq!(text_of(&api, "/acme/demo/").0, 404);
    // Each prefix lists its own organization's products.
    let (_, listed, _) = text_of(&api, "/acme/");
    assert!(
        listed.contains("Acme Handbook") && !listed.contains("/docs/demo"),
        "{listed}"
    );
    let (_, listed, _) = text_of(&api, "/docs/");
    assert!(
        !listed.contains("Acme Handbook") && listed.contains("demo"),
        "{listed}"
    );
    // A bare prefix is redirected to the form with `/`; a path that only starts alike is not
    // the organization's.
    let bare = api.get("/acme");
    assert_eq!(
        (bare.status, bare.location.as_deref()),
        (301, Some("/acme/")),
        "{bare:?}"
    );
    assert_eq!(api.get("/acmeish/handbook/").status, 404);

    // The default organization moved: its sites answer at the new prefix at once, the old one
    // is no longer a site (keeper's JSON 404), and the API is untouched.
    let moved = api.patch("/orgs/default", &root, json!({"path_prefix": "/handbooks"}));
    assert_eq!(moved.status, 200, "{moved:?}");
    let (status, text, _) = text_of(&api, "/handbooks/demo/");
    assert_eq!((status, text.as_str()), (200, "the default's demo"));
    let old = api.get("/docs/demo/");
    assert_eq!(old.status, 404);
    assert_eq!(old.body["status"], 404, "{old:?}");
    assert_eq!(
        api.get("/products/demo").body["published_url"],
        api.url("/handbooks/demo")
    );
    assert_eq!(api.get("/products/").status, 200);
    drop(s3);
}

on_both_backends!(
    organizations_are_managed_over_http,
    secrets_need_an_encryption_key,
    the_site_server_answers_every_organizations_prefix,
);
