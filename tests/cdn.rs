//! The Fastly purger against a local `wiremock` server standing in for the Fastly API: the exact
//! request shape, batching at 256 keys, retries on 429/5xx, exhaustion, and no retry on 401.

use std::time::Duration;

use keeper::cdn::fastly::{FastlyPurger, FastlySettings, BATCH};
use keeper::cdn::{NoPurger, PurgeError, Purger, RetryPolicy};
use secrecy::SecretString;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const API_KEY: &str = "fastly-api-key-that-must-not-leak";

fn purger(server: &MockServer, soft_purge: bool, max_attempts: u32) -> FastlyPurger {
    FastlyPurger::new(FastlySettings {
        service_id: "SU1Z0isxPaozGVKXdv0eY".into(),
        api_key: SecretString::from(API_KEY),
        api_url: server.uri().parse().unwrap(),
        soft_purge,
        retry: RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        },
        request_timeout: FastlySettings::DEFAULT_REQUEST_TIMEOUT,
    })
}

fn keys(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{i:032x}")).collect()
}

fn header_value<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers
        .get(name)
        .map(|value| value.to_str().unwrap())
}

#[tokio::test]
async fn one_key_is_purged_by_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/service/SU1Z0isxPaozGVKXdv0eY/purge/0123abcd"))
        .and(header("Fastly-Key", API_KEY))
        .and(header("Accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"status":"ok","id":"1"}"#))
        .expect(1)
        .mount(&server)
        .await;
    let purger = purger(&server, false, 3);
    purger.purge(&["0123abcd".into()]).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(header_value(&requests[0], "Surrogate-Key"), None);
    assert_eq!(header_value(&requests[0], "Fastly-Soft-Purge"), None);
    assert!(requests[0].body.is_empty());
    // Nothing to purge: no request.
    purger.purge(&[]).await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn soft_purge_sends_its_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/service/SU1Z0isxPaozGVKXdv0eY/purge/k1"))
        .and(header("Fastly-Soft-Purge", "1"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    purger(&server, true, 3)
        .purge(&["k1".into()])
        .await
        .unwrap();
}

#[tokio::test]
async fn keys_are_batched_by_256() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/service/SU1Z0isxPaozGVKXdv0eY/purge"))
        .and(header("Fastly-Key", API_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(3)
        .mount(&server)
        .await;
    let all = keys(600);
    purger(&server, false, 3).purge(&all).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    let batches: Vec<Vec<String>> = requests
        .iter()
        .map(|request| {
            header_value(request, "Surrogate-Key")
                .unwrap()
                .split(' ')
                .map(str::to_owned)
                .collect()
        })
        .collect();
    assert_eq!(
        batches.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![BATCH, BATCH, 600 - 2 * BATCH]
    );
    assert_eq!(batches.concat(), all);
}

#[tokio::test]
async fn transient_failures_are_retried_then_succeed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(3)
        .mount(&server)
        .await;
    purger(&server, false, 5)
        .purge(&["k1".into(), "k2".into()])
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(header_value(request, "Surrogate-Key"), Some("k1 k2"));
    }
}

#[tokio::test]
async fn retries_are_bounded() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("backend on fire"))
        .mount(&server)
        .await;
    let err = purger(&server, false, 4)
        .purge(&["k1".into()])
        .await
        .unwrap_err();
    match &err {
        PurgeError::Status { status, body, url } => {
            assert_eq!(*status, 500);
            assert_eq!(body, "backend on fire");
            assert!(url.ends_with("/purge/k1"), "{url}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
    assert!(!err.to_string().contains(API_KEY));
}

#[tokio::test]
async fn unauthorized_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_string(r#"{"msg":"Provided credentials are missing or invalid"}"#),
        )
        .mount(&server)
        .await;
    let err = purger(&server, false, 5)
        .purge(&["k1".into(), "k2".into()])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PurgeError::Status { status: 401, body, .. } if body.contains("invalid")),
        "{err:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn network_errors_are_retried_and_reported() {
    // A port with nothing listening: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let purger = FastlyPurger::new(FastlySettings {
        service_id: "svc".into(),
        api_key: SecretString::from(API_KEY),
        api_url: format!("http://127.0.0.1:{port}").parse().unwrap(),
        soft_purge: false,
        retry: RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        },
        request_timeout: FastlySettings::DEFAULT_REQUEST_TIMEOUT,
    });
    let err = purger.purge(&["k1".into()]).await.unwrap_err();
    assert!(matches!(err, PurgeError::Network { .. }), "{err:?}");
}

#[tokio::test]
async fn the_key_never_reaches_debug_output_and_bad_keys_send_nothing() {
    let server = MockServer::start().await;
    let purger = purger(&server, false, 3);
    assert!(!format!("{purger:?}").contains(API_KEY));
    let err = purger
        .purge(&["ok".into(), "two words".into()])
        .await
        .unwrap_err();
    assert!(matches!(err, PurgeError::InvalidKey(_)));
    assert!(server.received_requests().await.unwrap().is_empty());
    NoPurger.purge(&keys(3)).await.unwrap();
}
