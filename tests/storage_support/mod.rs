//! An S3-compatible server for tests and benchmarks: `s3s` + `s3s-fs` in-process on a random
//! loopback port, verifying SigV4 signatures and POST policies (DESIGN.md section 9).

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use keeper::storage::s3::{S3Settings, S3Store};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use secrecy::SecretString;

pub const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
pub const SECRET_KEY: &str = "5ecret-key-for-the-in-process-s3-server-0123456789";
pub const REGION: &str = "us-east-1";
pub const BUCKET: &str = "keeper-test";

/// What the server does to each request before (and after) s3s handles it: a fixed delay, a
/// number of injected failures, and a log of the requests in the order they finished.
#[derive(Debug, Default)]
pub struct Traffic {
    delay_ms: AtomicU64,
    failures_left: AtomicU32,
    failure: Mutex<Fault>,
    /// Only requests with this method (any method when empty) whose path contains this text
    /// fail.
    failure_filter: Mutex<(String, String)>,
    recording: AtomicBool,
    log: Mutex<Vec<Recorded>>,
}

/// What an injected failure does.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Answers this status (500: InternalError, 503: SlowDown, ...) without reaching s3s.
    Status(u16),
    /// Holds the request this long before handling it: longer than the client's timeout, the
    /// client gives up (the server may still carry it out, as S3 can).
    Stall(Duration),
}

impl Default for Fault {
    fn default() -> Self {
        Self::Status(500)
    }
}

/// One request that reached the server.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// When the response was ready.
    pub finished: Instant,
}

impl Recorded {
    /// A request that changes objects: PUT (put, copy), DELETE, or POST (batch delete).
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "PUT" | "DELETE" | "POST")
    }
}

impl Traffic {
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// The next `count` requests with `method` ("" for any) answer `status` without reaching s3s.
    pub fn fail_next(&self, count: u32, method: &str, status: u16) {
        self.inject(count, method, "", Fault::Status(status));
    }

    /// The same, only for requests whose path contains `path_part` (e.g. `/v/`: an edition's
    /// objects, so that a rebuild's copies fail and the bucket's bookkeeping does not).
    pub fn fail_next_under(&self, count: u32, method: &str, path_part: &str, status: u16) {
        self.inject(count, method, path_part, Fault::Status(status));
    }

    /// The next `count` requests with `method` ("" for any) are held for `stall` first.
    pub fn stall_next(&self, count: u32, method: &str, stall: Duration) {
        self.inject(count, method, "", Fault::Stall(stall));
    }

    /// The same, only for requests whose path contains `path_part`.
    pub fn stall_next_under(&self, count: u32, method: &str, path_part: &str, stall: Duration) {
        self.inject(count, method, path_part, Fault::Stall(stall));
    }

    fn inject(&self, count: u32, method: &str, path_part: &str, fault: Fault) {
        *self.failure_filter.lock().unwrap() = (method.to_owned(), path_part.to_owned());
        *self.failure.lock().unwrap() = fault;
        self.failures_left.store(count, Ordering::SeqCst);
    }

    pub fn failures_left(&self) -> u32 {
        self.failures_left.load(Ordering::SeqCst)
    }

    pub fn record(&self, on: bool) {
        self.recording.store(on, Ordering::SeqCst);
    }

    pub fn log(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    fn take_failure(&self, method: &str, path: &str) -> Option<Fault> {
        let (wanted, path_part) = self.failure_filter.lock().unwrap().clone();
        if (!wanted.is_empty() && wanted != method) || !path.contains(&path_part) {
            return None;
        }
        self.failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .ok()
            .map(|_| *self.failure.lock().unwrap())
    }
}

/// The server runs on the calling tokio runtime until dropped.
pub struct S3TestServer {
    pub address: SocketAddr,
    pub traffic: Arc<Traffic>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// A public-read bucket: anonymous `GetObject` and `HeadObject` are allowed (as a CDN in front of
/// the bucket reads it); everything else needs a valid signature.
struct PublicRead;

#[async_trait::async_trait]
impl s3s::access::S3Access for PublicRead {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        if cx.credentials().is_some() || matches!(cx.s3_op().name(), "GetObject" | "HeadObject") {
            Ok(())
        } else {
            Err(s3s::s3_error!(AccessDenied, "Signature is required"))
        }
    }
}

impl S3TestServer {
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// `public_read`: anonymous reads allowed, as for a bucket served through a CDN.
    pub async fn start_with(public_read: bool) -> Self {
        Self::start_in(&std::env::temp_dir(), public_read).await
    }

    /// A server keeping its objects in a new directory under `root` (a tmpfs for benchmarks, so
    /// that the disk's writeback does not add noise to a CPU-bound measurement).
    pub async fn start_in(root: &std::path::Path, public_read: bool) -> Self {
        let dir = tempfile::tempdir_in(root).expect("temporary directory");
        // s3s-fs: each directory under the root is a bucket.
        std::fs::create_dir(dir.path().join(BUCKET)).expect("bucket directory");
        let fs = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        if public_read {
            builder.set_access(PublicRead);
        }
        let service = builder.build();
        let traffic = Arc::new(Traffic::default());
        let shared = traffic.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let (service, traffic) = (service.clone(), shared.clone());
                let handler = hyper::service::service_fn(move |request| {
                    let (service, traffic) = (service.clone(), traffic.clone());
                    async move { traffic_layer(&service, &traffic, request).await }
                });
                let connection = http
                    .serve_connection(TokioIo::new(socket), handler)
                    .into_owned();
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
        });
        Self {
            address,
            traffic,
            task,
            _dir: dir,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Another bucket on this server (s3s-fs: a directory under its root).
    #[allow(dead_code)] // Not every test binary has several buckets.
    pub fn add_bucket(&self, name: &str) {
        std::fs::create_dir(self._dir.path().join(name)).expect("bucket directory");
    }

    pub fn settings(&self, page_size: i32) -> S3Settings {
        S3Settings {
            bucket: BUCKET.into(),
            region: REGION.into(),
            endpoint_url: Some(self.endpoint()),
            path_style: true,
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SecretString::from(SECRET_KEY)),
            page_size,
            attempt_timeout: S3Settings::DEFAULT_ATTEMPT_TIMEOUT,
        }
    }

    pub async fn store(&self, page_size: i32) -> S3Store {
        S3Store::connect(self.settings(page_size)).await
    }
}

async fn traffic_layer(
    service: &s3s::service::S3Service,
    traffic: &Traffic,
    request: http::Request<hyper::body::Incoming>,
) -> Result<s3s::HttpResponse, s3s::HttpError> {
    use hyper::service::Service;
    let delay = traffic.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let response = match traffic.take_failure(&method, &path) {
        Some(Fault::Stall(stall)) => {
            tokio::time::sleep(stall).await;
            Service::call(service, request).await
        }
        Some(Fault::Status(status)) => {
            let mut response = http::Response::new(s3s::Body::from(format!(
                "<?xml version=\"1.0\"?><Error><Code>{}</Code><Message>injected</Message></Error>",
                match status {
                    503 => "SlowDown",
                    429 => "TooManyRequests",
                    _ => "InternalError",
                }
            )));
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            Ok(response)
        }
        None => Service::call(service, request).await,
    };
    if traffic.recording.load(Ordering::SeqCst) {
        let status = response.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
        traffic.log.lock().unwrap().push(Recorded {
            method,
            path,
            query,
            status,
            finished: Instant::now(),
        });
    }
    response
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
