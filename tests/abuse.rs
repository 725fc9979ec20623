//! The abuse suite (issue 14, item 5): every route, hit with hostile values in every path
//! parameter and every body field (control characters, over-long and oddly encoded segments,
//! numbers past any range, wrong types) and with bodies of the wrong shape, answers a 4xx in the
//! JSON error shape, and nothing changes: a backup of the database (every table, every column)
//! and the store's listing are the same before and after. On SQLite and PostgreSQL.

mod common;

use common::api::Api;
use common::{client, TestBackend};
use keeper::domain::Permissions;
use keeper::storage::ObjectStore;
use serde_json::{json, Value};

/// Values no field of any route accepts.
fn hostile_values() -> Vec<Value> {
    vec![
        json!("a\u{0}b"),
        json!("line\nbreak"),
        json!("\u{1b}[31mred"),
        json!(["\u{0}"]),
        json!({"nested": "\u{7}"}),
        json!(18_446_744_073_709_551_616_u128 as f64),
        json!(-1e300),
        json!([[[[[]]]]]),
    ]
}

/// Path segments that name nothing (percent-encoded as a client would send them).
fn hostile_segments() -> Vec<String> {
    vec![
        "%00".into(),
        "a%0Ab".into(),
        "x".repeat(300),
        // (`%2e%2e` is left out: the client's URL parser resolves it as `..` before sending.)
        "%ZZ".into(),
        "..%2F..%2Fetc".into(),
        "-1".into(),
        "99999999999999999999999".into(),
        "%F0%9F%98%80".into(),
    ]
}

/// Whole bodies of the wrong shape.
fn hostile_bodies() -> Vec<&'static [u8]> {
    vec![
        b"[]",
        b"\"just a string\"",
        b"{\"unterminated\": ",
        b"\xff\xfe not utf-8",
        b"{\"a\": 1e999999}",
        b"null",
    ]
}

struct Route {
    method: reqwest::Method,
    /// With `{}` where the hostile segment goes.
    template: &'static str,
    /// A valid body's fields, each replaced in turn by a hostile value.
    body: Option<Value>,
}

fn routes() -> Vec<Route> {
    use reqwest::Method;
    let route = |method: Method, template, body: Option<Value>| Route {
        method,
        template,
        body,
    };
    vec![
        route(Method::GET, "/products/{}", None),
        route(
            Method::PATCH,
            "/products/{}",
            Some(json!({"title": "T", "doc_repo": "https://example.org"})),
        ),
        route(Method::GET, "/products/{}/builds/", None),
        route(Method::GET, "/products/{}/editions/", None),
        route(
            Method::POST,
            "/products/{}/builds/",
            Some(json!({"git_refs": ["main"], "github_requester": "ci", "directories": ["/"]})),
        ),
        route(
            Method::POST,
            "/products/{}/editions/",
            Some(
                json!({"slug": "new", "title": "New", "tracked_refs": ["new"], "mode": "git_refs"}),
            ),
        ),
        route(Method::GET, "/builds/{}", None),
        route(Method::PATCH, "/builds/{}", Some(json!({"uploaded": true}))),
        route(Method::DELETE, "/builds/{}", None),
        route(Method::GET, "/editions/{}", None),
        route(
            Method::PATCH,
            "/editions/{}",
            Some(json!({"title": "T", "slug": "renamed", "mode": "manual"})),
        ),
        route(Method::DELETE, "/editions/{}", None),
        route(Method::GET, "/operations/{}", None),
        route(Method::POST, "/operations/{}/retry", None),
        route(Method::GET, "/users/{}", None),
        route(
            Method::PATCH,
            "/users/{}",
            Some(json!({"password": "a long enough password", "permissions": ["upload_build"]})),
        ),
        route(Method::DELETE, "/users/{}", None),
        route(Method::DELETE, "/tokens/{}", None),
    ]
}

/// Routes without a path parameter that take a body, and a valid body for each.
fn collection_routes() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/products/",
            json!({"slug": "fresh", "title": "Fresh", "doc_repo": "https://example.org"}),
        ),
        (
            "/users/",
            json!({"username": "fresh", "password": "a long enough password", "permissions": []}),
        ),
        (
            "/tokens/",
            json!({"name": "ci", "permissions": ["upload_build"]}),
        ),
        (
            "/products/demo/builds/",
            json!({"git_refs": ["main"], "slug": "9", "directories": ["/"]}),
        ),
        (
            "/products/demo/editions/",
            json!({"slug": "fresh", "title": "Fresh", "tracked_refs": ["x"]}),
        ),
    ]
}

fn send(
    api: &Api,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> (u16, String) {
    let mut request = client()
        .request(method, api.url(path))
        .basic_auth(token, Some(""))
        .header("Accept", keeper::api::builds::V2_MEDIA_TYPE);
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (status, response.text().unwrap())
}

fn assert_refused(what: &str, status: u16, text: &str) {
    assert!(
        (400..500).contains(&status),
        "{what}: answered {status}: {text}"
    );
    let body: Value = serde_json::from_str(text)
        .unwrap_or_else(|_| panic!("{what}: {status} is not JSON: {text}"));
    assert_eq!(body["status"], status, "{what}: {text}");
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{what}: {text}"
    );
}

/// Every table and the store's keys, to compare before and after.
fn state_of(api: &Api) -> (serde_json::Value, Vec<String>) {
    let mut snapshot = keeper::db::backup::take(&mut api.db.connect()).unwrap();
    // Reading is not a change: the snapshot's own time differs.
    snapshot.taken_at = String::new();
    let store = api.local_store();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = runtime.block_on(async {
        use futures::TryStreamExt;
        let pages: Vec<Vec<keeper::storage::ObjectSummary>> =
            store.list("demo/").try_collect().await.unwrap();
        pages
            .into_iter()
            .flatten()
            .map(|object| object.key)
            .collect()
    });
    (serde_json::to_value(snapshot).unwrap(), keys)
}

fn every_route_refuses_hostile_input_and_changes_nothing(backend: TestBackend) {
    let api = Api::start_with_storage(backend, &[]);
    let admin = api.user("admin", Permissions::ALL);
    api.product(&admin, "demo");
    api.uploaded_build(&admin, "demo", &["main"]);
    let before = state_of(&api);
    let mut cases = 0;

    for route in routes() {
        for segment in hostile_segments() {
            let path = route.template.replace("{}", &segment);
            let body = route
                .body
                .as_ref()
                .map(|body| body.to_string().into_bytes());
            let (status, text) = send(&api, &admin, route.method.clone(), &path, body);
            assert_refused(&format!("{} {path}", route.method), status, &text);
            cases += 1;
        }
    }
    // Bodies: each field of a valid body replaced by each hostile value, and bodies of the
    // wrong shape, on routes whose path names something that exists.
    let mut with_bodies: Vec<(reqwest::Method, String, Value)> = collection_routes()
        .into_iter()
        .map(|(path, body)| (reqwest::Method::POST, path.to_owned(), body))
        .collect();
    for route in routes() {
        let Some(body) = route.body else { continue };
        let existing = if route.template.starts_with("/products/") {
            "demo"
        } else if route.template.starts_with("/users/") {
            "admin"
        } else {
            "1"
        };
        with_bodies.push((route.method, route.template.replace("{}", existing), body));
    }
    for (method, path, valid) in &with_bodies {
        let fields: Vec<String> = valid.as_object().unwrap().keys().cloned().collect();
        for field in &fields {
            for value in hostile_values() {
                let mut body = valid.clone();
                body[field.as_str()] = value.clone();
                let (status, text) = send(
                    &api,
                    &admin,
                    method.clone(),
                    path,
                    Some(body.to_string().into_bytes()),
                );
                assert_refused(
                    &format!("{method} {path} with {field} = {value}"),
                    status,
                    &text,
                );
                cases += 1;
            }
        }
        for body in hostile_bodies() {
            let (status, text) = send(&api, &admin, method.clone(), path, Some(body.to_vec()));
            assert_refused(
                &format!("{method} {path} with {:?}", String::from_utf8_lossy(body)),
                status,
                &text,
            );
            cases += 1;
        }
    }
    assert!(cases > 400, "only {cases} cases ran");
    assert_eq!(
        state_of(&api),
        before,
        "a refused request changed something"
    );
}

on_both_backends!(every_route_refuses_hostile_input_and_changes_nothing);
