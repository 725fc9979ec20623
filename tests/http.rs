//! The HTTP skeleton on both backends: `GET /` in the original's shape, health probes, and the JSON
//! error shape for every error, including the ones actix produces itself.

mod common;

use actix_web::{web, HttpResponse};
use common::{client, test_sessions, TestBackend, TestDatabase, TestServer};
use serde_json::{json, Value};

fn root_has_the_originals_shape(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let config = db.config(&[("KEEPER_PUBLIC_URL", "https://docs.example.org/keeper")]);
    let server = TestServer::start(&config);
    let response = client().get(server.url("/")).send().unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    assert_eq!(body["data"]["server_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        body["data"]["documentation"],
        "https://docs.example.org/keeper/openapi.json"
    );
    assert!(body["data"]["message"].is_string());
    // Links are absolute, under the configured external URL (behind a proxy).
    assert_eq!(
        body["links"],
        json!({
            "self": "https://docs.example.org/keeper/",
            "self_url": "https://docs.example.org/keeper/",
            "token": "https://docs.example.org/keeper/token",
            "products": "https://docs.example.org/keeper/products/",
            "docs": "https://docs.example.org/keeper/docs/",
        })
    );
}

fn health_probes_answer(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let server = TestServer::start(&db.config(&[]));
    for path in ["/health/live", "/health/ready"] {
        let response = client().get(server.url(path)).send().unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.json::<Value>().unwrap(), json!({"status": "ok"}));
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Probe {
    name: String,
    count: u32,
}

/// keeper's app with two extra routes that use the JSON body and path extractors.
fn server_with_probe_routes(db: &TestDatabase) -> TestServer {
    let config = db.config(&[("KEEPER_MAX_BODY_BYTES", "256")]);
    let prepared = keeper::startup::prepare(&config).unwrap();
    let (listener, address) = keeper::startup::bind(&config.http).unwrap();
    let state = prepared.app_state(&config, address);
    TestServer::serve_on(listener, &config, move |max| {
        keeper::api::app::app(state.clone(), max)
            .route(
                "/probe",
                web::post().to(|_: web::Json<Probe>| async { HttpResponse::NoContent().finish() }),
            )
            .route(
                "/probe/{id}",
                web::get().to(|_: web::Path<i64>| async { HttpResponse::NoContent().finish() }),
            )
    })
}

fn assert_json_error(response: reqwest::blocking::Response, status: u16, error: &str) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().unwrap();
    assert_eq!(body["status"], status);
    assert_eq!(body["error"], error);
    assert!(!body["message"].as_str().unwrap().is_empty());
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    body
}

fn every_error_is_json(backend: TestBackend) {
    let db = TestDatabase::new(backend);
    let server = server_with_probe_routes(&db);
    let http = client();

    let ok = http
        .post(server.url("/probe"))
        .json(&json!({"name": "a", "count": 1}))
        .send()
        .unwrap();
    assert_eq!(ok.status(), 204, "the probe route works with a good body");

    let body = assert_json_error(
        http.get(server.url("/no/such/route")).send().unwrap(),
        404,
        "not found",
    );
    assert!(body["message"].as_str().unwrap().contains("/no/such/route"));

    let response = http.delete(server.url("/")).send().unwrap();
    assert_eq!(response.headers()["allow"], "GET");
    assert_json_error(response, 405, "method not allowed");

    let malformed = http
        .post(server.url("/probe"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .unwrap();
    assert_json_error(malformed, 400, "bad request");

    let wrong_type = http
        .post(server.url("/probe"))
        .json(&json!({"name": "a", "count": "one"}))
        .send()
        .unwrap();
    assert_json_error(wrong_type, 400, "bad request");

    let unknown_field = http
        .post(server.url("/probe"))
        .json(&json!({"name": "a", "count": 1, "extra": true}))
        .send()
        .unwrap();
    assert_json_error(unknown_field, 400, "bad request");

    let too_large = http
        .post(server.url("/probe"))
        .json(&json!({"name": "x".repeat(1000), "count": 1}))
        .send()
        .unwrap();
    assert_json_error(too_large, 413, "payload too large");

    let not_json = http
        .post(server.url("/probe"))
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .unwrap();
    assert_json_error(not_json, 415, "unsupported media type");

    assert_json_error(
        http.get(server.url("/probe/not-a-number")).send().unwrap(),
        404,
        "not found",
    );
}

on_both_backends!(
    root_has_the_originals_shape,
    health_probes_answer,
    every_error_is_json
);

#[test]
fn readiness_is_503_when_the_database_is_unreachable() {
    // Nothing listens on port 1: the pool cannot connect, and readiness must say so as JSON.
    let config = keeper::config::Config::from_lookup(|name| match name {
        "KEEPER_DATABASE_URL" => Some("postgres://nobody@127.0.0.1:1/none".into()),
        "KEEPER_DATABASE_TIMEOUT_SECS" => Some("1".into()),
        "KEEPER_BIND" => Some("127.0.0.1:0".into()),
        _ => None,
    })
    .unwrap();
    let state = keeper::api::app::AppState::new(
        keeper::db::build_pool(&config.database),
        &config.http.public_url_for(config.http.bind),
        test_sessions(),
    );
    let server = TestServer::serve(&config, move |max| {
        keeper::api::app::app(state.clone(), max)
    });
    let live = client().get(server.url("/health/live")).send().unwrap();
    assert_eq!(
        live.status(),
        200,
        "liveness does not depend on the database"
    );
    let ready = client().get(server.url("/health/ready")).send().unwrap();
    assert_json_error(ready, 503, "service unavailable");
}
