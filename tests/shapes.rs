//! Response shapes: each resource's JSON has exactly the fields of the wire contract
//! (`shared/spec/ltd-api.md`), and a snapshot (dates, keys and the server's address redacted)
//! pins names, types and values. Both backends must produce the same snapshot.

mod common;

use common::api::Api;
use common::TestBackend;
use keeper::domain::Permissions;
use serde_json::{json, Value};

/// The field lists of the spec.
const PRODUCT_FIELDS: &[&str] = &[
    "self_url",
    "slug",
    "doc_repo",
    "title",
    "root_domain",
    "root_fastly_domain",
    "domain",
    "fastly_domain",
    "bucket_name",
    "published_url",
    "surrogate_key",
    // keeper's: the retention policy that applies.
    "retention",
];
const BUILD_FIELDS: &[&str] = &[
    "self_url",
    "product_url",
    "slug",
    "date_created",
    "date_ended",
    "uploaded",
    "bucket_name",
    "bucket_root_dir",
    "git_refs",
    "github_requester",
    "published_url",
    "surrogate_key",
    // keeper's: the build's newest operation.
    "operation_url",
];
const EDITION_FIELDS: &[&str] = &[
    "self_url",
    "product_url",
    "build_url",
    "published_url",
    "slug",
    "title",
    "date_created",
    "date_rebuilt",
    "date_ended",
    "mode",
    "tracked_refs",
    "pending_rebuild",
    "surrogate_key",
    // keeper's: the edition's current or last operation.
    "operation_url",
];

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn sorted(fields: &[&str]) -> Vec<String> {
    let mut fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    fields.sort();
    fields
}

/// The body with the server's random address replaced, so snapshots are stable.
fn stable(api: &Api, value: &Value) -> Value {
    let base = api.url("");
    let authority = base.trim_start_matches("http://");
    let text = value
        .to_string()
        .replace(&base, "http://keeper.test")
        .replace(authority, "keeper.test");
    serde_json::from_str(&text).unwrap()
}

macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::assert_json_snapshot!($name, $value, {
            ".surrogate_key" => "[surrogate_key]",
            ".date_created" => "[date]",
            ".history[].date_created" => "[date]",
            ".date_updated" => "[date]",
            ".date_rebuilt" => insta::dynamic_redaction(|value, _| if value.is_nil() { value } else { "[date]".into() }),
            ".date_ended" => insta::dynamic_redaction(|value, _| if value.is_nil() { value } else { "[date]".into() }),
            ".date_expires" => insta::dynamic_redaction(|value, _| if value.is_nil() { value } else { "[date]".into() }),
            ".token" => "[token]",
            ".secret" => "[secret]",
            ".deliveries[].delivery" => "[uuid]",
            ".deliveries[].date_created" => "[date]",
        })
    };
}

fn responses_have_the_contracts_fields(backend: TestBackend) {
    let key = keeper::crypto::EncryptionKeys::generate_key();
    let api = Api::start_with(backend, &[("KEEPER_ENCRYPTION_KEYS", &key)]);
    let admin = api.user("admin", Permissions::ALL);

    let root = api.get("/").body;
    snapshot!("root", stable(&api, &root));

    let product = api.post("/products/", &admin, json!({"slug": "pipelines", "title": "Science Pipelines", "doc_repo": "https://github.com/lsst/pipelines_lsst_io"})).body;
    assert_eq!(keys(&product), sorted(PRODUCT_FIELDS));
    snapshot!("product", stable(&api, &product));

    let build = api
        .post(
            "/products/pipelines/builds/",
            &admin,
            json!({"git_refs": ["tickets/DM-1234"], "github_requester": "octocat"}),
        )
        .body;
    assert_eq!(keys(&build), sorted(BUILD_FIELDS));
    snapshot!("build", stable(&api, &build));
    let confirmed = api
        .patch(
            build["self_url"].as_str().unwrap(),
            &admin,
            json!({"uploaded": true}),
        )
        .body;
    assert_eq!(confirmed["uploaded"], true);
    // The confirming answer also names the editions the build is being published to.
    let mut confirm_fields = BUILD_FIELDS.to_vec();
    confirm_fields.push("editions_updated");
    assert_eq!(keys(&confirmed), sorted(&confirm_fields));
    snapshot!(
        "confirmed_editions",
        stable(&api, &confirmed["editions_updated"])
    );

    let edition = api.get("/editions/2").body;
    assert_eq!(keys(&edition), sorted(EDITION_FIELDS));
    snapshot!("edition", stable(&api, &edition));

    snapshot!("product_list", stable(&api, &api.get("/products/").body));
    snapshot!(
        "build_list",
        stable(&api, &api.get("/products/pipelines/builds/").body)
    );
    snapshot!(
        "edition_list",
        stable(&api, &api.get("/products/pipelines/editions/").body)
    );
    let rebuild = api.lines(
        "SELECT CAST(MIN(id) AS TEXT) AS line FROM operations WHERE kind = 'rebuild_edition'",
    );
    let operation = api
        .get_with(&format!("/operations/{}", rebuild[0]), &admin)
        .body;
    snapshot!("operation", stable(&api, &operation));
    let render = api.post("/products/pipelines/dashboard", &admin, json!({}));
    assert_eq!(render.status, 202);
    snapshot!("dashboard_operation", stable(&api, &render.body));

    // An edition's history: the one entry a deletion writes without a worker.
    let gone = api.post(
        "/products/pipelines/editions/",
        &admin,
        json!({"slug": "gone", "title": "Gone", "mode": "manual"}),
    );
    let gone = gone.body["self_url"].as_str().unwrap().to_owned();
    assert_eq!(api.delete(&gone, &admin).status, 200);
    let history = api.get_with(&format!("{gone}/history"), &admin).body;
    snapshot!("edition_history", stable(&api, &history));

    let user = api.post("/users/", &admin, json!({"username": "ci", "password": "a long password", "permissions": ["upload_build"]})).body;
    snapshot!("user", stable(&api, &user));
    let token = api.post("/tokens/", &admin, json!({"name": "github-actions", "permissions": ["upload_build"], "products": ["pipelines"], "expires_in_days": 30})).body;
    assert!(token["token"].as_str().unwrap().starts_with("ltdk_"));
    snapshot!("api_token", stable(&api, &token));

    // A webhook subscription (its secret shown once), and its first delivery, the ping, not
    // sent yet.
    let webhook = api.post(
        "/webhooks/",
        &admin,
        json!({"url": "https://ci.example.com/hook", "product": "pipelines",
               "events": ["edition.updated", "edition.deleted"]}),
    );
    assert_eq!(webhook.status, 201, "{webhook:?}");
    assert_eq!(webhook.body["secret"].as_str().unwrap().len(), 64);
    snapshot!("webhook", stable(&api, &webhook.body));
    let deliveries = api
        .get_with(webhook.body["deliveries_url"].as_str().unwrap(), &admin)
        .body;
    snapshot!("webhook_deliveries", stable(&api, &deliveries));

    snapshot!("error", api.get("/products/nothing").body);
}

on_both_backends!(responses_have_the_contracts_fields);
