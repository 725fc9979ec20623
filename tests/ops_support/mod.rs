//! The operations pipeline under test: keeper's API on either backend, the in-process S3 server
//! (with its traffic layer: delays, injected failures, a request log), a wiremock Fastly that
//! records when each purge arrived, and an in-process worker with a queue drain.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use keeper::cdn::fastly::{FastlyPurger, FastlySettings};
use keeper::cdn::RetryPolicy;
use keeper::ops::queue::QueueCounts;
use keeper::ops::worker::Worker;
use keeper::ops::Services;
use keeper::storage::{Metadata, ObjectHead, ObjectHeaders, ObjectStore};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::api::Api;
use crate::common::TestBackend;
use crate::storage_support::S3TestServer;

/// Whether an S3 request path is a write of a rendered dashboard or version list
/// (`ops::dashboard`), which every change of a product causes besides its publishing work.
pub fn is_dashboard_file(path: &str) -> bool {
    keeper::domain::DashboardFile::ALL
        .iter()
        .any(|file| path.ends_with(&format!("/{}/{}", file.section(), file.name())))
}

pub const FASTLY_SERVICE: &str = "SU1Z0isxPaozGVKXdv0eY";

/// One purge request the Fastly stand-in received.
#[derive(Debug, Clone)]
pub struct Purge {
    pub keys: Vec<String>,
    pub received: Instant,
}

/// The Fastly stand-in: answers `status` (200 unless told otherwise) `failures` times, then 200.
#[derive(Clone, Default)]
pub struct FastlyLog {
    purges: Arc<Mutex<Vec<Purge>>>,
    failures: Arc<AtomicU32>,
    status: Arc<AtomicU16>,
    /// Requests still to be held for an hour (the client gives up first).
    stalls: Arc<AtomicU32>,
    /// When set, faults only hit purges naming this key (an edition's, not the product key
    /// that dashboard renders purge meanwhile).
    faulted_key: Arc<Mutex<Option<String>>>,
}

impl FastlyLog {
    pub fn purges(&self) -> Vec<Purge> {
        self.purges.lock().unwrap().clone()
    }

    /// Purges that named `key` and succeeded.
    pub fn purges_of(&self, key: &str) -> Vec<Purge> {
        self.purges()
            .into_iter()
            .filter(|purge| purge.keys.iter().any(|k| k == key))
            .collect()
    }

    pub fn fail_next(&self, count: u32, status: u16) {
        self.status.store(status, Ordering::SeqCst);
        self.failures.store(count, Ordering::SeqCst);
    }

    /// The next `count` requests get no answer for an hour (they are not recorded as purges).
    pub fn stall_next(&self, count: u32) {
        self.stalls.store(count, Ordering::SeqCst);
    }

    /// From now on, faults hit only purges that name `key`.
    pub fn fault_only(&self, key: &str) {
        *self.faulted_key.lock().unwrap() = Some(key.to_owned());
    }

    pub fn stalls_left(&self) -> u32 {
        self.stalls.load(Ordering::SeqCst)
    }
}

impl Respond for FastlyLog {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut keys: Vec<String> = request
            .headers
            .get("surrogate-key")
            .and_then(|value| value.to_str().ok())
            .map(|value| value.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        if let Some(key) = request.url.path().rsplit("/purge/").next() {
            if request.url.path().contains("/purge/") {
                keys.push(key.to_owned());
            }
        }
        let faultable = match &*self.faulted_key.lock().unwrap() {
            Some(only) => keys.contains(only),
            None => true,
        };
        let failing = faultable
            && self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if failing {
            return ResponseTemplate::new(self.status.load(Ordering::SeqCst))
                .set_body_string("injected");
        }
        let stalled = faultable
            && self
                .stalls
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if stalled {
            return ResponseTemplate::new(200).set_delay(Duration::from_secs(3600));
        }
        self.purges.lock().unwrap().push(Purge {
            keys,
            received: Instant::now(),
        });
        ResponseTemplate::new(200).set_body_json(json!({"status": "ok"}))
    }
}

pub struct Pipeline {
    pub api: Api,
    pub admin: String,
    pub runtime: tokio::runtime::Runtime,
    pub s3: S3TestServer,
    pub store: Arc<dyn ObjectStore>,
    pub fastly_server: MockServer,
    pub fastly: FastlyLog,
    /// What the worker runs with; more workers can be made from it.
    pub services: Services,
    pub worker: Worker,
}

impl Pipeline {
    /// Keeper's API with an admin, the S3 server, Fastly, and a worker with short waits:
    /// `max_attempts` attempts, backoff from 10 ms.
    pub fn start(backend: TestBackend, max_attempts: u32) -> Self {
        Self::start_with(
            backend,
            max_attempts,
            keeper::storage::s3::S3Settings::DEFAULT_ATTEMPT_TIMEOUT,
        )
    }

    /// As [`Pipeline::start`], with the worker's S3 and Fastly requests abandoned after `timeout`.
    pub fn start_with(backend: TestBackend, max_attempts: u32, timeout: Duration) -> Self {
        Self::start_configured(backend, max_attempts, timeout, &[])
    }

    /// As [`Pipeline::start_with`], with more variables for the API and the worker alike.
    pub fn start_configured(
        backend: TestBackend,
        max_attempts: u32,
        timeout: Duration,
        extra: &[(&str, &str)],
    ) -> Self {
        let api = Api::start_with(backend, extra);
        let admin = api.user("admin", keeper::domain::Permissions::ALL);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let fastly = FastlyLog::default();
        let (s3, store, fastly_server) = runtime.block_on(async {
            let s3 = S3TestServer::start().await;
            let settings = keeper::storage::s3::S3Settings {
                attempt_timeout: timeout,
                ..s3.settings(1000)
            };
            let store: Arc<dyn ObjectStore> =
                Arc::new(keeper::storage::s3::S3Store::connect(settings).await);
            let fastly_server = MockServer::start().await;
            Mock::given(wiremock::matchers::method("POST"))
                .respond_with(fastly.clone())
                .mount(&fastly_server)
                .await;
            (s3, store, fastly_server)
        });
        let max_attempts = max_attempts.to_string();
        let mut vars = vec![
            ("KEEPER_WORKER_LEASE_MS", "3000"),
            ("KEEPER_WORKER_MAX_ATTEMPTS", max_attempts.as_str()),
            ("KEEPER_WORKER_BACKOFF_MS", "10"),
            ("KEEPER_WORKER_MAX_BACKOFF_MS", "50"),
            ("KEEPER_WORKER_POLL_MS", "20"),
            ("KEEPER_COPY_CONCURRENCY", "8"),
        ];
        vars.extend_from_slice(extra);
        let config = api.db.config(&vars);
        let purger = FastlyPurger::new(FastlySettings {
            service_id: FASTLY_SERVICE.into(),
            api_key: SecretString::from("fastly-test-key"),
            api_url: fastly_server.uri().parse().unwrap(),
            soft_purge: false,
            retry: RetryPolicy {
                max_attempts: 1,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(1),
            },
            request_timeout: timeout,
        });
        let services = Services {
            pool: keeper::db::build_pool(&config.database),
            store: store.clone(),
            purger: Arc::new(purger),
            organizations: Arc::new(keeper::startup::org_backends(&config).unwrap()),
            config: config.worker.clone(),
            public_base: "http://keeper.test".to_owned(),
        };
        let worker = Worker::new(services.clone());
        Self {
            services,
            api,
            admin,
            runtime,
            s3,
            store,
            fastly_server,
            fastly,
            worker,
        }
    }

    /// Runs the queue until nothing is READY or WORKING; returns the counts left.
    pub fn run_queue(&self) -> QueueCounts {
        self.run_queue_within(Duration::from_secs(300))
    }

    /// As [`Pipeline::run_queue`], failing the test if the queue is not settled by `deadline`
    /// (an operation held by something that never answers).
    pub fn run_queue_within(&self, deadline: Duration) -> QueueCounts {
        self.runtime
            .block_on(async { tokio::time::timeout(deadline, self.worker.drain()).await })
            .unwrap_or_else(|_| panic!("the queue was not settled within {deadline:?}"))
            .unwrap()
    }

    /// Runs the queue and fails the test if any operation is left or FAILED.
    pub fn drain(&self) {
        let counts = self.run_queue();
        let failed = self.api.lines(
            "SELECT CAST(id AS TEXT) || ' ' || kind || ': ' || COALESCE(message, '') AS line \
             FROM operations WHERE state IN ('FAILED', 'READY', 'WORKING')",
        );
        assert_eq!(
            counts,
            QueueCounts::default(),
            "operations left or FAILED: {failed:#?}"
        );
    }

    /// Writes `files` (relative path, body, content type) under `prefix`, with a cache control
    /// and a metadata entry that a copy must keep.
    pub fn put_files(&self, prefix: &str, files: &[(&str, &str, &str)]) {
        self.runtime.block_on(async {
            for (path, body, content_type) in files {
                let headers = ObjectHeaders {
                    content_type: Some((*content_type).to_owned()),
                    cache_control: Some(format!("max-age={}", body.len())),
                    metadata: Metadata::from([
                        ("surrogate-key".to_owned(), "buildkey".to_owned()),
                        ("origin".to_owned(), (*path).to_owned()),
                    ]),
                    ..ObjectHeaders::default()
                };
                self.store
                    .put(
                        &format!("{prefix}{path}"),
                        Bytes::from((*body).to_owned()),
                        &headers,
                    )
                    .await
                    .unwrap();
            }
        })
    }

    /// Every key under `prefix`, relative to it.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.runtime.block_on(async {
            let pages: Vec<Vec<keeper::storage::ObjectSummary>> =
                self.store.list(prefix).try_collect().await.unwrap();
            pages
                .into_iter()
                .flatten()
                .map(|o| o.key[prefix.len()..].to_owned())
                .collect()
        })
    }

    pub fn object(&self, key: &str) -> (ObjectHead, Bytes) {
        self.runtime.block_on(async {
            let object = self.store.get(key).await.unwrap();
            let head = object.head.clone();
            (head, object.bytes().await.unwrap())
        })
    }

    /// A registered build whose files are uploaded, then confirmed; returns its JSON.
    pub fn build(&self, product: &str, refs: &[&str], files: &[(&str, &str, &str)]) -> Value {
        let created = self.api.post(
            &format!("/products/{product}/builds/"),
            &self.admin,
            json!({"git_refs": refs}),
        );
        assert_eq!(created.status, 201, "{created:?}");
        let root = created.body["bucket_root_dir"].as_str().unwrap().to_owned();
        self.put_files(&format!("{root}/"), files);
        let confirmed = self.api.patch(
            created.body["self_url"].as_str().unwrap(),
            &self.admin,
            json!({"uploaded": true}),
        );
        assert_eq!(confirmed.status, 200, "{confirmed:?}");
        confirmed.body
    }

    /// Faults injected into Fastly from now on hit only the purges of `product`'s default
    /// edition (`__main`), not the product-key purges of dashboard renders.
    pub fn fault_only_the_main_edition(&self, product: &str) {
        self.fastly.fault_only(&self.edition_key(product, "__main"));
    }

    /// The surrogate key of an edition, from the database.
    pub fn edition_key(&self, product: &str, edition: &str) -> String {
        self.api.lines(&format!(
            "SELECT e.surrogate_key AS line FROM editions e JOIN products p ON p.id = e.product_id \
             WHERE p.slug = '{product}' AND e.slug = '{edition}'"
        ))[0]
            .clone()
    }
}
