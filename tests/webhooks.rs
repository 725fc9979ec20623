//! Webhooks (issue 17, item 3), on both backends: subscriptions per product and per
//! organization, events delivered to a wiremock receiver that checks the HMAC-SHA256
//! signature itself (with the secret shown once), retried on 500, refused deliveries visible
//! through the API; and a receiver that hangs never delays a rebuild (deliveries have a lane of
//! their own in the worker).

mod common;
mod ops_support;
mod storage_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::wait_for;
use common::TestBackend;
use hmac::{Hmac, Mac};
use keeper::crypto::EncryptionKeys;
use ops_support::Pipeline;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    event: String,
    delivery: String,
    timestamp: String,
    signed: bool,
    signature: String,
    raw: Vec<u8>,
    body: Value,
}

#[derive(Default)]
struct ReceiverState {
    /// The secret each path checks signatures with; a path without one accepts nothing.
    secrets: std::collections::HashMap<String, String>,
    /// Answer 500 to this many more correctly signed requests.
    fail_next: u32,
    received: Vec<Received>,
}

/// A receiver as a user would write one: it recomputes the signature over the raw body with
/// its secret (a constant-time comparison), answers 401 to anything else, and 200 otherwise.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<ReceiverState>>);

impl Receiver {
    fn set_secret(&self, path: &str, secret: &str) {
        let mut state = self.0.lock().unwrap();
        state.secrets.insert(path.to_owned(), secret.to_owned());
    }

    fn fail_next(&self, count: u32) {
        self.0.lock().unwrap().fail_next = count;
    }

    fn received(&self, path: &str) -> Vec<Received> {
        let state = self.0.lock().unwrap();
        let received = state.received.iter().filter(|r| r.path == path);
        received.cloned().collect()
    }
}

fn verifies(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

impl Respond for Receiver {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let mut state = self.0.lock().unwrap();
        let path = request.url.path().to_owned();
        let signed = state.secrets.get(&path).is_some_and(|secret| {
            verifies(secret, &request.body, &header("x-keeper-signature-256"))
        });
        state.received.push(Received {
            path,
            event: header("x-keeper-event"),
            delivery: header("x-keeper-delivery"),
            timestamp: header("x-keeper-timestamp"),
            signed,
            signature: header("x-keeper-signature-256"),
            raw: request.body.clone(),
            body: serde_json::from_slice(&request.body).unwrap_or(Value::Null),
        });
        if !signed {
            // A NUL, which PostgreSQL cannot store in text.
            return ResponseTemplate::new(401).set_body_string("bad\u{0}signature");
        }
        if state.fail_next > 0 {
            state.fail_next -= 1;
            return ResponseTemplate::new(500).set_body_string("try again later");
        }
        ResponseTemplate::new(200).set_body_string("thanks")
    }
}

fn encryption_key() -> String {
    EncryptionKeys::generate_key()
}

fn start(backend: TestBackend, extra: &[(&str, &str)]) -> Pipeline {
    Pipeline::start_configured(
        backend,
        3,
        keeper::storage::s3::S3Settings::DEFAULT_ATTEMPT_TIMEOUT,
        extra,
    )
}

fn receiver(p: &Pipeline, respond: impl Respond + 'static) -> MockServer {
    p.runtime.block_on(async {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::method("POST"))
            .respond_with(respond)
            .mount(&server)
            .await;
        server
    })
}

fn site(text: &str) -> [(&'static str, String, &'static str); 1] {
    [("index.html", format!("<h1>{text}</h1>"), "text/html")]
}

fn build(p: &Pipeline, refs: &[&str], text: &str) -> Value {
    let files = site(text);
    let files: Vec<(&str, &str, &str)> = files
        .iter()
        .map(|(path, body, kind)| (*path, body.as_str(), *kind))
        .collect();
    p.build("demo", refs, &files)
}

fn deliveries(p: &Pipeline, webhook: &Value) -> Vec<Value> {
    let reply = p.api.get_with(
        &format!("{}?limit=100", webhook["deliveries_url"].as_str().unwrap()),
        &p.admin,
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body["deliveries"].as_array().unwrap().clone()
}

/// Two URLs of one resource: the worker's harness publishes under `http://keeper.test` (its
/// `public_base`), the API under its loopback address; in a deployment both are
/// `KEEPER_PUBLIC_URL`.
fn assert_same_place(event: &Value, api: &Value) {
    assert_eq!(path_of(event), path_of(api), "{event} and {api}");
}

/// Whether the README's Python check accepts `received`, run as written with `python3`.
fn readme_verifies(secret: &str, received: &Received) -> bool {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("<!-- webhook-verify:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- webhook-verify:end -->").next())
        .expect("the README's webhook check");
    let code = block
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a python block");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body"), &received.raw).unwrap();
    let script = format!(
        "{code}\nimport sys\nbody = open(sys.argv[1], 'rb').read()\n\
         sys.exit(0 if verify(sys.argv[2], body, sys.argv[3]) else 1)\n"
    );
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.path().join("body"))
        .arg(secret)
        .arg(&received.signature)
        .status()
        .expect("python3 runs");
    status.success()
}

/// The path of an URL, to ask the API.
fn path_of(url: &Value) -> String {
    url::Url::parse(url.as_str().unwrap())
        .unwrap()
        .path()
        .to_owned()
}

/// The path of demo's default edition.
fn main_edition(p: &Pipeline) -> String {
    let id = p.api.lines(
        "SELECT CAST(e.id AS TEXT) AS line FROM editions e JOIN products p ON p.id = e.product_id \
         WHERE p.slug = 'demo' AND e.slug = '__main'",
    );
    format!("/editions/{}", id[0])
}

fn count(p: &Pipeline, table: &str) -> String {
    p.api.lines(&format!(
        "SELECT CAST(COUNT(*) AS TEXT) AS line FROM {table}"
    ))[0]
        .clone()
}

/// What every body holds, checked against its headers: event, delivery id, a timestamp close
/// to now.
fn check_envelope(received: &Received) {
    assert!(received.signed, "{received:?}");
    assert_eq!(received.body["event"], received.event.as_str());
    assert_eq!(received.body["delivery"], received.delivery.as_str());
    assert_eq!(received.body["timestamp"], received.timestamp.as_str());
    let sent = chrono::DateTime::parse_from_rfc3339(&received.timestamp).unwrap();
    let age = chrono::Utc::now().signed_duration_since(sent);
    assert!(age.num_seconds().abs() < 300, "{received:?}");
}

fn events_are_signed_retried_and_recorded(backend: TestBackend) {
    let key = encryption_key();
    let p = start(backend, &[("KEEPER_ENCRYPTION_KEYS", &key)]);
    p.api.product(&p.admin, "demo");
    p.drain();
    let receiver_log = Receiver::default();
    let server = receiver(&p, receiver_log.clone());
    let hook_a = format!("{}/a", server.uri());
    let hook_b = format!("{}/b", server.uri());

    // Refusals write nothing.
    for (body, status, says) in [
        (
            json!({"url": "ftp://example.com/", "product": "demo"}),
            422,
            "http",
        ),
        (
            json!({"url": "https://u:p@example.com/", "product": "demo"}),
            422,
            "credentials",
        ),
        (
            json!({"url": hook_a, "product": "demo", "events": ["build.created"]}),
            422,
            "build.confirmed",
        ),
        (
            json!({"url": hook_a, "product": "demo", "events": []}),
            422,
            "at least one",
        ),
        (
            json!({"url": hook_a, "product": "demo", "events": ["ping"]}),
            422,
            "ping",
        ),
        (json!({"url": hook_a}), 422, "one of the two"),
        (
            json!({"url": hook_a, "product": "demo", "organization": "default"}),
            422,
            "one of the two",
        ),
        (json!({"url": hook_a, "product": "nope"}), 404, "nope"),
        (json!({"url": hook_a, "organization": "nope"}), 404, "nope"),
        (
            json!({"url": hook_a, "product": "demo\u{0}"}),
            422,
            "control",
        ),
        (
            json!({"url": hook_a, "product": "demo", "secret": "mine"}),
            400,
            "secret",
        ),
        (
            json!({"url": format!("https://example.com/{}", "a".repeat(3000)), "product": "demo"}),
            422,
            "2048",
        ),
    ] {
        let reply = p.api.post("/webhooks/", &p.admin, body.clone());
        assert_eq!(reply.status, status, "{body}: {reply:?}");
        assert_eq!(reply.body["status"], status);
        let message = reply.body["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(says), "{body}: {message}");
    }
    assert_eq!(count(&p, "webhooks"), "0");

    // A product's subscription to every event: the secret is shown once and stored encrypted.
    let created = p.api.post(
        "/webhooks/",
        &p.admin,
        json!({"url": hook_a, "product": "demo"}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let webhook_a = created.body.clone();
    let secret = webhook_a["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);
    assert_eq!(
        webhook_a["events"],
        json!([
            "build.confirmed",
            "edition.updated",
            "edition.deleted",
            "operation.failed"
        ])
    );
    let shown = p
        .api
        .get_with(webhook_a["self_url"].as_str().unwrap(), &p.admin);
    assert_eq!(shown.status, 200);
    assert!(shown.body.get("secret").is_none(), "{shown:?}");
    let stored = p.api.lines("SELECT secret_encrypted AS line FROM webhooks")[0].clone();
    assert!(!stored.contains(&secret));
    receiver_log.set_secret("/a", &secret);
    // The organization's subscription, to deletions only; its receiver has the wrong secret.
    let created = p.api.post(
        "/webhooks/",
        &p.admin,
        json!({"url": hook_b, "organization": "default", "events": ["edition.deleted"]}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let webhook_b = created.body.clone();
    receiver_log.set_secret("/b", "not the secret");
    assert_eq!(webhook_b["organization"], "default");
    assert!(webhook_b["product"].is_null());

    // The pings: A's answered 500 twice, then 200; B's signature does not verify (401), which
    // is not retried. A failed delivery is not itself reported as operation.failed.
    receiver_log.fail_next(2);
    let counts = p.run_queue();
    assert_eq!(counts.failed, 1, "B's ping");
    let pings = receiver_log.received("/a");
    assert_eq!(pings.len(), 3, "{pings:#?}");
    for (n, ping) in pings.iter().enumerate() {
        check_envelope(ping);
        assert_eq!(ping.event, "ping");
        assert_eq!(
            ping.delivery, pings[0].delivery,
            "one delivery id on every attempt"
        );
        assert_eq!(ping.body["attempt"], n + 1);
        assert_eq!(ping.body["data"]["webhook"]["url"], hook_a.as_str());
    }
    assert!(readme_verifies(&secret, &pings[0]));
    let mut tampered = pings[0].clone();
    tampered.raw[10] ^= 1;
    assert!(!readme_verifies(&secret, &tampered));
    let [ping_a] = &deliveries(&p, &webhook_a)[..] else {
        panic!("one delivery");
    };
    assert_eq!(ping_a["state"], "delivered", "{ping_a}");
    assert_eq!(ping_a["attempts"], 3);
    assert_eq!(ping_a["status_code"], 200);
    assert_eq!(ping_a["response"], "thanks");
    assert_eq!(ping_a["delivery"], pings[0].delivery.as_str());
    let [ping_b] = &deliveries(&p, &webhook_b)[..] else {
        panic!("one delivery");
    };
    assert_eq!(ping_b["state"], "failed", "{ping_b}");
    assert_eq!(
        (ping_b["attempts"].clone(), ping_b["status_code"].clone()),
        (json!(1), json!(401))
    );
    assert_eq!(ping_b["response"], "bad\u{FFFD}signature");
    assert!(
        ping_b["error"].as_str().unwrap().contains("401"),
        "{ping_b}"
    );
    let operation = p.api.get(ping_b["operation_url"].as_str().unwrap());
    assert_eq!(operation.body["state"], "FAILED", "{operation:?}");
    assert_eq!(receiver_log.received("/b").len(), 1, "not retried");
    // B's receiver learns the right secret; its next delivery verifies.
    receiver_log.set_secret("/b", webhook_b["secret"].as_str().unwrap());

    // A confirmed build is published on __main: build.confirmed, then edition.updated once the
    // rebuild is OK (the purge done), with the edition's URL and its build.
    let b1 = build(&p, &["main"], "one");
    assert_eq!(p.run_queue().failed, 1, "only B's ping failed");
    let main = p.api.get(&main_edition(&p)).body;
    let events: Vec<Received> = receiver_log.received("/a")[3..].to_vec();
    let names: Vec<&str> = events.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(names, ["build.confirmed", "edition.updated"]);
    for received in &events {
        check_envelope(received);
        assert_eq!(received.body["attempt"], 1);
    }
    let confirmed = &events[0].body["data"];
    assert_eq!(confirmed["product"]["slug"], "demo");
    // Queued by the API, with its URLs.
    assert_eq!(confirmed["build"]["url"], b1["self_url"]);
    assert_eq!(confirmed["build"]["git_refs"], json!(["main"]));
    let updated = &events[1].body["data"];
    assert_same_place(&updated["edition"]["url"], &main["self_url"]);
    assert_same_place(&updated["edition"]["published_url"], &main["published_url"]);
    assert_same_place(&updated["build"]["url"], &b1["self_url"]);
    assert!(updated["build_before"].is_null());
    assert_eq!(updated["reason"], "tracking");
    let rebuild = p.api.get(&path_of(&updated["operation_url"])).body;
    assert_eq!(rebuild["state"], "OK", "{rebuild}");
    assert!(!p
        .fastly
        .purges_of(&p.edition_key("demo", "__main"))
        .is_empty());
    assert_ne!(events[0].delivery, events[1].delivery);

    // A requested edition, then its deletion: A gets edition.updated (requested) and
    // edition.deleted; B, subscribed through the organization, gets edition.deleted only.
    let edition = p.api.post(
        "/products/demo/editions/",
        &p.admin,
        json!({"slug": "v1", "title": "v1", "mode": "manual", "build_url": b1["self_url"]}),
    );
    assert_eq!(edition.status, 201, "{edition:?}");
    assert_eq!(p.run_queue().failed, 1, "only B's ping failed");
    let gone = p
        .api
        .delete(edition.body["self_url"].as_str().unwrap(), &p.admin);
    assert_eq!(gone.status, 200, "{gone:?}");
    assert_eq!(p.run_queue().failed, 1, "only B's ping failed");
    let events: Vec<Received> = receiver_log.received("/a")[5..].to_vec();
    let names: Vec<&str> = events.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(names, ["edition.updated", "edition.deleted"]);
    assert_eq!(events[0].body["data"]["reason"], "requested");
    let deleted = &events[1].body["data"];
    assert_eq!(deleted["edition"]["slug"], "v1");
    // Queued by the API, with its URLs.
    assert_eq!(deleted["edition"]["url"], edition.body["self_url"]);
    // Queued by the API, with its URLs.
    assert_eq!(deleted["build_url"], b1["self_url"]);
    assert_eq!(deleted["reason"], "deleted");
    let to_b = receiver_log.received("/b");
    assert_eq!(to_b.len(), 2, "{to_b:#?}");
    check_envelope(&to_b[1]);
    assert_eq!(to_b[1].event, "edition.deleted");
    assert_eq!(to_b[1].body["data"], *deleted);

    // A rebuild that fails for good (its purges answer 500) reports operation.failed, and no
    // edition.updated.
    p.fault_only_the_main_edition("demo");
    p.fastly.fail_next(1000, 500);
    build(&p, &["main"], "two");
    let counts = p.run_queue();
    assert_eq!(counts.failed, 2, "B's ping and the rebuild");
    let events: Vec<Received> = receiver_log.received("/a")[7..].to_vec();
    let names: Vec<&str> = events.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(names, ["build.confirmed", "operation.failed"]);
    let failed = &events[1].body["data"]["operation"];
    assert_eq!(failed["kind"], "rebuild_edition");
    assert_eq!(failed["attempts"], 3);
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("Gave up after 3 attempts"),
        "{failed}"
    );
    assert_same_place(&failed["edition_url"], &main["self_url"]);

    // Listing: every subscription for the administrator, a product's only for a token limited
    // to it (which cannot subscribe an organization).
    let listed = p.api.get_with("/webhooks/?product=demo", &p.admin);
    assert_eq!(
        listed.body["webhooks"].as_array().unwrap().len(),
        2,
        "{listed:?}"
    );
    let scoped = p.api.post(
        "/tokens/",
        &p.admin,
        json!({"name": "ci", "products": ["demo"]}),
    );
    assert_eq!(scoped.status, 201, "{scoped:?}");
    let scoped = scoped.body["token"].as_str().unwrap().to_owned();
    let listed = p.api.get_with("/webhooks/", &scoped);
    let ids: Vec<&Value> = listed.body["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|webhook| &webhook["id"])
        .collect();
    assert_eq!(ids, [&webhook_a["id"]]);
    let refused = p.api.post(
        "/webhooks/",
        &scoped,
        json!({"url": hook_b, "organization": "default"}),
    );
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(
        p.api
            .get_with(webhook_b["self_url"].as_str().unwrap(), &scoped)
            .status,
        403
    );
    let bad_limit = p.api.get_with(
        &format!("{}?limit=0", webhook_a["deliveries_url"].as_str().unwrap()),
        &p.admin,
    );
    assert_eq!(bad_limit.status, 422);

    // Deleting a subscription removes its deliveries.
    // A's seven deliveries (ping, build.confirmed twice, edition.updated twice,
    // edition.deleted, operation.failed) and B's two.
    assert_eq!(deliveries(&p, &webhook_a).len(), 7);
    assert_eq!(count(&p, "webhook_deliveries"), "9");
    let removed = p
        .api
        .delete(webhook_a["self_url"].as_str().unwrap(), &p.admin);
    assert_eq!(removed.status, 200, "{removed:?}");
    assert_eq!(
        p.api
            .get_with(webhook_a["self_url"].as_str().unwrap(), &p.admin)
            .status,
        404
    );
    assert_eq!(count(&p, "webhook_deliveries"), "2", "B's are left");

    // `keeper secrets rotate` re-encrypts the signing secrets too.
    let new_key = encryption_key();
    let keys = EncryptionKeys::parse(&format!("{new_key};{key}")).unwrap();
    let rotation = keeper::org_admin::rotate(&mut p.api.db.connect(), &keys).unwrap();
    assert_eq!(rotation.reencrypted, 1, "B's secret");
    let stored = p.api.lines("SELECT secret_encrypted AS line FROM webhooks")[0].clone();
    let only_new = EncryptionKeys::parse(&new_key).unwrap();
    assert_eq!(
        only_new.decrypt(&stored).unwrap().expose_secret(),
        webhook_b["secret"].as_str().unwrap()
    );
}

/// Without `KEEPER_ENCRYPTION_KEYS` no subscription is made: its secret could not be stored.
fn subscriptions_need_the_encryption_keys(backend: TestBackend) {
    let api = common::api::Api::start(backend);
    let admin = api.user("admin", keeper::domain::Permissions::ALL);
    api.product(&admin, "demo");
    let reply = api.post(
        "/webhooks/",
        &admin,
        json!({"url": "https://example.com/hook", "product": "demo"}),
    );
    assert_eq!(reply.status, 422, "{reply:?}");
    assert!(reply.body["message"]
        .as_str()
        .unwrap()
        .contains("KEEPER_ENCRYPTION_KEYS"));
    assert_eq!(
        api.lines("SELECT CAST(COUNT(*) AS TEXT) AS line FROM webhooks")[0],
        "0"
    );
}

/// The log of answers stays bounded: an event keeps each subscription's newest 100 finished
/// deliveries, and every one still to be sent.
fn finished_deliveries_are_pruned_to_the_newest_hundred(backend: TestBackend) {
    let key = encryption_key();
    let api = common::api::Api::start_with(backend, &[("KEEPER_ENCRYPTION_KEYS", &key)]);
    let admin = api.user("admin", keeper::domain::Permissions::ALL);
    api.product(&admin, "demo");
    let created = api.post(
        "/webhooks/",
        &admin,
        json!({"url": "https://example.com/hook", "product": "demo"}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    // 150 delivered and 5 failed ones, older than the ping still pending.
    for n in 0..155 {
        let state = if n < 150 { "delivered" } else { "failed" };
        api.execute(&format!(
            "INSERT INTO webhook_deliveries (webhook_id, event, delivery_id, data, state, \
             attempts, date_created) VALUES (1, 'build.confirmed', 'old-{n}', '{{}}', '{state}', \
             1, CURRENT_TIMESTAMP)"
        ));
    }
    let edition = api.post(
        "/products/demo/editions/",
        &admin,
        json!({"slug": "v1", "title": "v1", "mode": "manual"}),
    );
    assert_eq!(
        api.delete(edition.body["self_url"].as_str().unwrap(), &admin)
            .status,
        200
    );
    let left = api.lines(
        "SELECT state || ' ' || CAST(COUNT(*) AS TEXT) AS line FROM webhook_deliveries \
         GROUP BY state ORDER BY state",
    );
    assert_eq!(left, ["delivered 95", "failed 5", "pending 2"]);
    let oldest_kept = api.lines(
        "SELECT delivery_id AS line FROM webhook_deliveries WHERE state = 'delivered' \
         ORDER BY id LIMIT 1",
    );
    assert_eq!(oldest_kept, ["old-55"]);
}

/// A receiver that never answers holds a delivery (and the ones queued behind it) for as long
/// as the webhook timeout allows, here ten minutes; the rebuild of a build confirmed meanwhile
/// is published all the same, by a worker allowed one operation at a time besides deliveries.
fn a_hanging_receiver_never_delays_a_rebuild(backend: TestBackend) {
    let key = encryption_key();
    let p = start(
        backend,
        &[
            ("KEEPER_ENCRYPTION_KEYS", &key),
            ("KEEPER_WORKER_CONCURRENCY", "1"),
            ("KEEPER_WEBHOOK_CONCURRENCY", "1"),
            ("KEEPER_WEBHOOK_TIMEOUT_MS", "600000"),
        ],
    );
    p.api.product(&p.admin, "demo");
    p.drain();
    let server = receiver(
        &p,
        ResponseTemplate::new(200).set_delay(Duration::from_secs(3600)),
    );
    let created = p.api.post(
        "/webhooks/",
        &p.admin,
        json!({"url": format!("{}/hang", server.uri()), "product": "demo"}),
    );
    assert_eq!(created.status, 201, "{created:?}");

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = p.worker.clone();
    let running = p.runtime.spawn(async move { worker.run(stopped).await });
    let delivery_states = || {
        p.api.lines(
            "SELECT d.event || ' ' || d.state || ' ' || o.state AS line FROM webhook_deliveries d \
             JOIN operations o ON o.id = d.operation_id ORDER BY d.id",
        )
    };
    wait_for("the ping to be sent", Duration::from_secs(30), || {
        delivery_states() == ["ping pending WORKING"]
    });

    let b1 = build(&p, &["main"], "published");
    let main = main_edition(&p);
    wait_for("__main to show the build", Duration::from_secs(60), || {
        let edition = p.api.get(&main).body;
        edition["build_url"] == b1["self_url"] && edition["pending_rebuild"] == false
    });
    let page = p.object("demo/v/__main/index.html").1;
    assert_eq!(&page[..], b"<h1>published</h1>");
    // The receiver still holds the ping; build.confirmed waits behind it, and edition.updated
    // behind that.
    assert_eq!(
        delivery_states(),
        [
            "ping pending WORKING",
            "build.confirmed pending READY",
            "edition.updated pending READY"
        ]
    );
    let _ = stop.send(true);
    p.runtime.block_on(running).unwrap();
}

on_both_backends!(
    events_are_signed_retried_and_recorded,
    subscriptions_need_the_encryption_keys,
    finished_deliveries_are_pruned_to_the_newest_hundred,
    a_hanging_receiver_never_delays_a_rebuild,
);
