//! Bad input at the edge (issue 14, "Input validated at the edge"): what used to give a 500 or
//! a 503, or was accepted though it could never work, is a 4xx in the JSON error shape and
//! writes nothing, on both database backends and keeper's own store.

mod common;

use common::api::Api;
use common::{client, TestBackend};
use keeper::domain::Permissions;
use serde_json::{json, Value};

fn assert_error(reply: &common::api::Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {reply:?}");
    assert_eq!(reply.body["status"], status, "{what}: {reply:?}");
    assert!(reply.body["message"].is_string(), "{what}: {reply:?}");
}

fn control_characters_and_odd_names_are_refused(backend: TestBackend) {
    let api = Api::start_with_storage(backend, &[]);
    let admin = api.user("admin", Permissions::ALL);
    api.product(&admin, "demo");
    let products_before = api.get("/products/").body;

    for (what, body) in [
        (
            "a NUL in a title",
            json!({"slug": "nul", "title": "a\u{0}b", "doc_repo": "x"}),
        ),
        (
            "a NUL in doc_repo",
            json!({"slug": "nul", "title": "t", "doc_repo": "x\u{0}"}),
        ),
        (
            "a newline in a title",
            json!({"slug": "nul", "title": "a\nb", "doc_repo": "x"}),
        ),
    ] {
        assert_error(&api.post("/products/", &admin, body), 400, what);
    }
    assert_eq!(api.get("/products/").body, products_before);

    let build = api.post(
        "/products/demo/builds/",
        &admin,
        json!({"git_refs": ["main"], "github_requester": "ci\u{0}"}),
    );
    assert_error(&build, 400, "a NUL in github_requester");
    let edition = api.post(
        "/products/demo/editions/",
        &admin,
        json!({"slug": "v1", "title": "v\u{0}1", "tracked_refs": ["v1"]}),
    );
    assert_error(&edition, 400, "a NUL in an edition title");
    // Routes only keeper has answer 422.
    let token = api.post("/tokens/", &admin, json!({"name": "ci\u{0}"}));
    assert_error(&token, 422, "a NUL in a token name");
    for name in [".", "..", "a\u{0}b"] {
        let user = api.post(
            "/users/",
            &admin,
            json!({"username": name, "password": "long enough password"}),
        );
        assert_error(&user, 422, &format!("user name {name:?}"));
    }
    let users = api.get_with("/users/", &admin).body;
    assert_eq!(users["users"].as_array().unwrap().len(), 1, "{users}");

    // Path segments that name nothing, NUL included, are 404 (PostgreSQL refused the NUL: 500).
    for path in ["/products/%00", "/products/a%00b/builds/", "/users/%00"] {
        assert_error(&api.get_with(path, &admin), 404, path);
    }

    // Bounded lists and paths.
    let many_refs: Vec<String> = (0..33).map(|n| format!("ref-{n}")).collect();
    for (what, body) in [
        ("33 git refs", json!({"git_refs": many_refs})),
        ("a 300-byte git ref", json!({"git_refs": ["r".repeat(300)]})),
        (
            "a 20,000-byte directory",
            json!({"git_refs": ["main"], "directories": ["d".repeat(20_000)]}),
        ),
        (
            "a 300-byte directory name",
            json!({"git_refs": ["main"], "directories": [format!("{}/", "d".repeat(300))]}),
        ),
    ] {
        assert_error(
            &api.post_v2("/products/demo/builds/", &admin, body),
            400,
            what,
        );
    }
    let builds = api.get("/products/demo/builds/").body;
    assert_eq!(builds["builds"].as_array().unwrap().len(), 0, "{builds}");
}

on_both_backends!(control_characters_and_odd_names_are_refused);

/// Names longer than a file name may be: the upload endpoint answers 400 and the site server 404
/// (they were a 500 "File name too long" and a 503 "the object store does not answer").
#[test]
fn overlong_segments_are_refused_before_the_store() {
    let api = Api::start_with_storage(
        TestBackend::Sqlite,
        &[("KEEPER_SITES_ROOT_DOMAIN", "example.org")],
    );
    let admin = api.user("admin", Permissions::ALL);
    api.product(&admin, "demo");
    let build = api
        .post_v2(
            "/products/demo/builds/",
            &admin,
            json!({"git_refs": ["main"], "directories": ["/"]}),
        )
        .body;
    let form = &build["post_prefix_urls"]["/"];
    let mut multipart = reqwest::blocking::multipart::Form::new();
    for (name, value) in form["fields"].as_object().unwrap() {
        multipart = multipart.text(name.clone(), value.as_str().unwrap().to_owned());
    }
    multipart = multipart.part(
        "file",
        reqwest::blocking::multipart::Part::bytes(&b"x"[..]).file_name("f".repeat(300)),
    );
    let response = client()
        .post(form["url"].as_str().unwrap())
        .multipart(multipart)
        .send()
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().unwrap();
    assert_eq!(error["status"], 400, "{error}");

    for path in [
        format!("/docs/demo/{}.html", "a".repeat(300)),
        format!("/docs/demo/v/{}/", "e".repeat(300)),
        format!("/docs/{}/", "p".repeat(300)),
    ] {
        let response = client().get(api.url(&path)).send().unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    // A 300-byte Host label (the subdomain layout) names no product either.
    let response = client()
        .get(api.url("/index.html"))
        .header("Host", format!("{}.example.org", "h".repeat(300)))
        .send()
        .unwrap();
    assert_eq!(response.status(), 404);
}

/// Sends a request head announcing a 1 MiB body, then a few bytes of it, and stalls; returns
/// what the server answered (the connection closed after it) within `patience`.
fn stalled_post(
    api: &Api,
    path: &str,
    authorization: Option<&str>,
    patience: std::time::Duration,
) -> String {
    use std::io::{Read, Write};
    let address = api.url("/");
    let address = address.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: 1048576\r\n"
    );
    if let Some(value) = authorization {
        head.push_str(&format!("Authorization: {value}\r\n"));
    }
    head.push_str("\r\n{\"slug\": \"stalled\"");
    stream.write_all(head.as_bytes()).unwrap();
    stream.set_read_timeout(Some(patience)).unwrap();
    let mut answer = Vec::new();
    // Read until the server closes the connection (or the patience runs out: then the test
    // fails on what it got).
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// A stalled body is answered 408 and its connection closed once the body timeout passes; an
/// anonymous request is answered 401 without its body being read at all.
#[test]
fn stalled_bodies_are_dropped_and_anonymous_ones_never_read() {
    let api = Api::start_with(TestBackend::Sqlite, &[("KEEPER_BODY_TIMEOUT_SECS", "1")]);
    let admin = api.user("admin", Permissions::ALL);
    let patience = std::time::Duration::from_secs(20);

    let anonymous = stalled_post(&api, "/products/", None, patience);
    assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");

    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{admin}:"))
    );
    let started = std::time::Instant::now();
    let stalled = stalled_post(&api, "/products/", Some(&basic), patience);
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled}");
    assert!(stalled.contains("\"status\":408"), "{stalled}");
    assert!(
        started.elapsed() < patience,
        "the connection was not closed after the 408"
    );
    assert_eq!(
        api.get("/products/").body["products"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "a stalled body created something"
    );
}
