//! An S3-compatible server for tests and benchmarks: `s3s` + `s3s-fs` in-process on a random
//! loopback port, verifying SigV4 signatures and POST policies (DESIGN.md section 9).

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::net::SocketAddr;

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

/// The server runs on the calling tokio runtime until dropped.
pub struct S3TestServer {
    pub address: SocketAddr,
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
        let dir = tempfile::tempdir().expect("temporary directory");
        // s3s-fs: each directory under the root is a bucket.
        std::fs::create_dir(dir.path().join(BUCKET)).expect("bucket directory");
        let fs = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        if public_read {
            builder.set_access(PublicRead);
        }
        let service = builder.build();
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
                let connection = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
        });
        Self {
            address,
            task,
            _dir: dir,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
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
        }
    }

    pub async fn store(&self, page_size: i32) -> S3Store {
        S3Store::connect(self.settings(page_size)).await
    }
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
