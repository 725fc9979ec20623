//! Password logins cost what they must and no more (issue 14, item 1): failed logins are
//! throttled per user name and per client with 429 and `Retry-After`, before any hash is
//! computed; API-token logins are never throttled by someone else's failures; a success clears
//! the user name's failures; a trusted proxy's header names the client when configured.

mod common;

use common::api::{Api, PASSWORD};
use common::{client, TestBackend};
use keeper::domain::Permissions;
use serde_json::{json, Value};

/// `GET /token` with a password, optionally through a proxy naming the client.
fn login(
    api: &Api,
    username: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = client()
        .get(api.url("/token"))
        .basic_auth(username, Some(password));
    if let Some(address) = forwarded_for {
        request = request.header("X-Forwarded-For", format!("198.51.100.7, {address}"));
    }
    let response = request.send().unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.json().unwrap_or(Value::Null))
}

fn failed_logins_are_throttled_per_user(backend: TestBackend) {
    let api = Api::start_with(
        backend,
        &[
            ("KEEPER_LOGIN_FAILURES_PER_USER", "3"),
            ("KEEPER_LOGIN_WINDOW_SECS", "300"),
        ],
    );
    let admin = api.user("alice", Permissions::ALL);
    api.user("bob", Permissions::NONE);
    let api_token = api.post("/tokens/", &admin, json!({"name": "ci"})).body["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A success clears the failures: two wrong, one right, two wrong are all answered.
    for password in ["wrong 1", "wrong 2"] {
        let (status, headers, body) = login(&api, "alice", password, None);
        assert_eq!(status, 401, "{body}");
        // No challenge: a browser never prompts for, keeps or resends Basic credentials.
        assert!(!headers.contains_key("www-authenticate"), "{headers:?}");
    }
    assert_eq!(login(&api, "alice", PASSWORD, None).0, 200);
    for password in ["wrong 3", "wrong 4"] {
        assert_eq!(login(&api, "alice", password, None).0, 401);
    }
    // The third failure in the window spends the budget: even the right password waits now.
    assert_eq!(login(&api, "alice", "wrong 5", None).0, 401);
    for password in ["wrong 6", PASSWORD] {
        let (status, headers, body) = login(&api, "ALICE", password, None);
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["status"], 429, "{body}");
        let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=300).contains(&retry), "Retry-After {retry}");
    }
    // Someone else's failures throttle neither another user nor an API token.
    assert_eq!(login(&api, "bob", PASSWORD, None).0, 200);
    let by_token = client()
        .get(api.url("/token"))
        .bearer_auth(&api_token)
        .send()
        .unwrap();
    assert_eq!(by_token.status(), 200);
    // A user that does not exist is throttled the same way.
    for _ in 0..3 {
        assert_eq!(login(&api, "nobody", "guess", None).0, 401);
    }
    assert_eq!(login(&api, "nobody", "guess", None).0, 429);
}

fn failed_logins_are_throttled_per_client(backend: TestBackend) {
    let api = Api::start_with(
        backend,
        &[
            ("KEEPER_LOGIN_FAILURES_PER_USER", "100"),
            ("KEEPER_LOGIN_FAILURES_PER_CLIENT", "5"),
            ("KEEPER_CLIENT_IP_HEADER", "X-Forwarded-For"),
        ],
    );
    api.user("alice", Permissions::NONE);
    // Five made-up names from one client spend its budget, whatever names it tries next.
    for n in 0..5 {
        let name = format!("guess-{n}");
        assert_eq!(login(&api, &name, "x", Some("203.0.113.1")).0, 401);
    }
    assert_eq!(login(&api, "alice", PASSWORD, Some("203.0.113.1")).0, 429);
    assert_eq!(login(&api, "guess-9", "x", Some("203.0.113.1")).0, 429);
    // Another client, named by the trusted proxy's header, is not affected.
    assert_eq!(login(&api, "alice", PASSWORD, Some("203.0.113.2")).0, 200);
}

on_both_backends!(
    failed_logins_are_throttled_per_user,
    failed_logins_are_throttled_per_client,
);
