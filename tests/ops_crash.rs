//! Crash safety: a real `keeper worker` process is SIGKILLed at several points while it rebuilds
//! editions from a build of a few thousand objects (local store); another worker takes over
//! once the leases expire, and every edition converges on the exact end state. Nothing is lost
//! or left WORKING. Conditions are polled; nothing waits on a fixed sleep.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::api::Api;
use common::TestBackend;
use futures::TryStreamExt;
use keeper::domain::Permissions;
use keeper::storage::local::LocalStore;
use keeper::storage::{Metadata, ObjectHeaders, ObjectStore};
use serde_json::json;

const OBJECTS: usize = 2500;
const EDITIONS: [&str; 3] = ["a", "b", "c"];

fn spawn_worker(api: &Api, dir: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_keeper"))
        .arg("worker")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KEEPER_DATABASE_URL", &api.db.url)
        .env("KEEPER_SECRET_KEY", common::api::SECRET_KEY)
        .env("KEEPER_STORAGE_BACKEND", "local")
        .env("KEEPER_STORAGE_DIR", dir)
        .env("KEEPER_WORKER_LEASE_MS", "900")
        .env("KEEPER_WORKER_POLL_MS", "20")
        .env("KEEPER_WORKER_BACKOFF_MS", "10")
        .env("KEEPER_WORKER_CONCURRENCY", "2")
        .env("KEEPER_COPY_CONCURRENCY", "16")
        .env("KEEPER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start keeper worker")
}

/// Polls `condition` until true; panics after a generous deadline.
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn count(api: &Api, sql: &str) -> i64 {
    api.lines(sql)[0].parse().unwrap()
}

fn killed_workers_are_taken_over(backend: TestBackend) {
    let api = Api::start(backend);
    let admin = api.user("admin", Permissions::ALL);
    api.product(&admin, "demo");
    let data = tempfile::tempdir().unwrap();
    let store = LocalStore::open(data.path()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let created = api.post("/products/demo/builds/", &admin, json!({"git_refs": ["x"]}));
    assert_eq!(created.status, 201, "{created:?}");
    let root = format!("{}/", created.body["bucket_root_dir"].as_str().unwrap());
    runtime.block_on(async {
        futures::stream::iter(0..OBJECTS)
            .map(|i| {
                let (store, root) = (&store, &root);
                async move {
                    let headers = ObjectHeaders {
                        content_type: Some("text/html".into()),
                        cache_control: Some("max-age=60".into()),
                        metadata: Metadata::from([("surrogate-key".into(), "build".into())]),
                        ..ObjectHeaders::default()
                    };
                    let key = format!("{root}d{}/page{i:05}.html", i % 7);
                    store
                        .put(&key, Bytes::from(format!("page {i}")), &headers)
                        .await
                }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await
            .unwrap();
        // Leftovers of an earlier build in every edition.
        for edition in EDITIONS {
            store
                .put(
                    &format!("demo/v/{edition}/stale.html"),
                    Bytes::from("stale"),
                    &ObjectHeaders::default(),
                )
                .await
                .unwrap();
        }
    });
    let confirmed = api.patch(
        created.body["self_url"].as_str().unwrap(),
        &admin,
        json!({"uploaded": true}),
    );
    assert_eq!(confirmed.status, 200);
    for edition in EDITIONS {
        let reply = api.post(
            "/products/demo/editions/",
            &admin,
            json!({"slug": edition, "title": edition, "mode": "manual",
                   "build_url": created.body["self_url"]}),
        );
        assert_eq!(reply.status, 201, "{reply:?}");
    }

    let log = data.path().join("worker.log");
    // Kill points: right after a claim; in the middle of copying (progress recorded); after
    // one operation ended OK while others remain.
    let kill_points: [(&str, &str); 3] = [
        ("a claim", "SELECT CAST(COUNT(*) AS TEXT) AS line FROM operations WHERE state = 'WORKING'"),
        (
            "copy progress",
            "SELECT CAST(COUNT(*) AS TEXT) AS line FROM operations WHERE state = 'WORKING' AND progress_done > 0",
        ),
        ("one finished operation", "SELECT CAST(COUNT(*) AS TEXT) AS line FROM operations WHERE state = 'OK'"),
    ];
    let mut kills = 0;
    for (what, sql) in kill_points {
        if count(&api, "SELECT CAST(COUNT(*) AS TEXT) AS line FROM operations WHERE state IN ('READY', 'WORKING')") == 0 {
            break;
        }
        let mut worker = spawn_worker(&api, data.path(), &log);
        wait_for(what, || {
            count(&api, sql) > 0
                || count(&api, "SELECT CAST(COUNT(*) AS TEXT) AS line FROM operations WHERE state IN ('READY', 'WORKING')") == 0
        });
        worker.kill().unwrap(); // SIGKILL
        worker.wait().unwrap();
        kills += 1;
    }
    assert!(
        kills >= 2,
        "the rebuilds finished before the worker could be killed twice"
    );

    let mut worker = spawn_worker(&api, data.path(), &log);
    wait_for("every operation to finish", || {
        count(&api, "SELECT CAST(COUNT(*) AS TEXT) AS line FROM operations WHERE state IN ('READY', 'WORKING', 'FAILED')") == 0
    });
    worker.kill().unwrap();
    worker.wait().unwrap();

    let states = api.operations();
    assert!(states.iter().all(|s| s.contains(" OK ")), "{states:?}");
    runtime.block_on(async {
        let keys = |prefix: String| {
            let store = &store;
            async move {
                let pages: Vec<Vec<keeper::storage::ObjectSummary>> =
                    store.list(&prefix).try_collect().await.unwrap();
                pages
                    .into_iter()
                    .flatten()
                    .map(|o| o.key[prefix.len()..].to_owned())
                    .collect::<Vec<_>>()
            }
        };
        let expected = keys(root.clone()).await;
        assert_eq!(expected.len(), OBJECTS);
        for edition in EDITIONS {
            let surrogate = api.lines(&format!(
                "SELECT surrogate_key AS line FROM editions WHERE slug = '{edition}'"
            ))[0]
                .clone();
            assert_eq!(
                keys(format!("demo/v/{edition}/")).await,
                expected,
                "edition {edition}"
            );
            for relative in expected.iter().step_by(97) {
                let head = store
                    .head(&format!("demo/v/{edition}/{relative}"))
                    .await
                    .unwrap();
                assert_eq!(head.headers.metadata.get("surrogate-key"), Some(&surrogate));
                assert_eq!(head.headers.content_type.as_deref(), Some("text/html"));
            }
        }
    });
    for edition in EDITIONS {
        let build = api.lines(&format!(
            "SELECT CAST(build_id AS TEXT) AS line FROM editions WHERE slug = '{edition}'"
        ));
        assert_eq!(build, vec!["1".to_owned()], "edition {edition}");
    }
}

use futures::StreamExt;

on_both_backends!(killed_workers_are_taken_over);
