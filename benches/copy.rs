//! Copy throughput of the S3 store (`HeadObject` + `CopyObject` with metadata REPLACE, as an
//! edition rebuild does) against the in-process S3 server (s3s + s3s-fs, SigV4 checked), at
//! concurrency 1 and 32 for 2,000 objects; the median of a few runs.
//!
//! `cargo bench --bench copy` runs it. Under `cargo test`/`cargo nextest` (no `--bench`
//! argument) it does nothing, so the test suite stays fast.

#[path = "../tests/storage_support/mod.rs"]
mod storage_support;

mod harness;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use keeper::storage::{Metadata, ObjectHeaders, ObjectStore};

const OBJECTS: usize = 2000;
const RUNS: usize = 3;
const CONCURRENCY: [usize; 2] = [1, 32];

fn main() {
    harness::run("copy", run);
}

async fn run() {
    let server = storage_support::S3TestServer::start().await;
    let store: Arc<dyn ObjectStore> = Arc::new(server.store(1000).await);
    let headers = ObjectHeaders {
        content_type: Some("text/html".into()),
        cache_control: Some("max-age=31536000".into()),
        metadata: Metadata::from([("surrogate-key".into(), "buildkey".into())]),
        ..ObjectHeaders::default()
    };
    let sources: Vec<String> = (0..OBJECTS)
        .map(|i| format!("bench/builds/1/d{}/page{i:04}.html", i % 20))
        .collect();
    futures::stream::iter(sources.clone())
        .map(|key| {
            let store = store.clone();
            let headers = headers.clone();
            async move {
                let body = Bytes::from(format!("<p>{key}</p>").repeat(20));
                store.put(&key, body, &headers).await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .expect("upload the sources");

    println!(
        "copy throughput, {OBJECTS} objects, HeadObject + CopyObject (REPLACE) against s3s-fs \
         over loopback HTTP, median of {RUNS} runs"
    );
    let overrides = Metadata::from([("surrogate-key".into(), "editionkey".into())]);
    for concurrency in CONCURRENCY {
        let mut rates = Vec::new();
        for run in 0..RUNS {
            let started = Instant::now();
            futures::stream::iter(sources.iter().cloned())
                .map(|from| {
                    let store = store.clone();
                    let overrides = overrides.clone();
                    async move {
                        let to = from.replacen("bench/builds/1/", &format!("bench/v/e{run}/"), 1);
                        store.copy(&from, &to, &overrides).await
                    }
                })
                .buffer_unordered(concurrency)
                .try_collect::<Vec<()>>()
                .await
                .expect("copy");
            let rate = OBJECTS as f64 / started.elapsed().as_secs_f64();
            rates.push(rate);
        }
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        let all: Vec<String> = rates.iter().map(|rate| format!("{rate:.0}")).collect();
        println!(
            "concurrency {concurrency:>2}: {median:>6.0} objects/s (runs: {})",
            all.join(", ")
        );
    }
}
