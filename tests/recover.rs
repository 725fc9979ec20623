//! The database lost, the bucket kept, with the real binary on the local store and each database
//! backend, and on Garage (S3 mode; needs `KEEPER_TEST_GARAGE`, as `./scripts/test` sets): `keeper serve` refuses the empty database naming `keeper recover`; `keeper recover
//! --dry-run` writes nothing; `keeper recover` brings back every product, build and edition, so
//! the API lists the same resources field for field (ids, URLs, surrogate keys) and every page
//! reads the same; a second `keeper recover` changes nothing.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::process::{
    generate_site, keeper_upload_succeeds, output_text, wait_for, KeeperProcess, SECRET_KEY,
};
use common::{client, TestBackend, TestDatabase};
use serde_json::{json, Value};

const SERVER_ENV: &[(&str, &str)] = &[
    ("KEEPER_SERVE_RUNS_WORKER", "true"),
    ("KEEPER_WORKER_POLL_MS", "20"),
    ("KEEPER_WORKER_BACKOFF_MS", "10"),
];

fn published(keeper: &KeeperProcess) -> bool {
    keeper
        .editions("demo")
        .iter()
        .all(|edition| edition["pending_rebuild"] == false && edition["build_url"].is_string())
}

/// Every product, build and edition as the API shows them, and every page of every edition,
/// with the server's address neutralized.
fn snapshot(keeper: &KeeperProcess, pages: &[String]) -> Value {
    let products: Vec<Value> = keeper.get("/products/")["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|url| keeper.get(url.as_str().unwrap()))
        .collect();
    let editions = keeper.editions("demo");
    let mut read = Vec::new();
    for edition in &editions {
        let base = edition["published_url"]
            .as_str()
            .unwrap()
            .trim_end_matches('/');
        for page in pages {
            let response = client().get(format!("{base}/{page}")).send().unwrap();
            read.push(json!([
                edition["slug"],
                page,
                response.status().as_u16(),
                response.text().unwrap()
            ]));
        }
    }
    let all = json!({
        "products": products,
        "builds": keeper.builds("demo"),
        "editions": editions,
        "pages": read,
    });
    let host = keeper.base.trim_start_matches("http://");
    let mut all: Value = serde_json::from_str(
        &all.to_string()
            .replace(&keeper.base, "BASE")
            .replace(host, "HOST"),
    )
    .unwrap();
    // A recovered catalogue has no operations history to link.
    common::api::strip_operation_links(&mut all);
    all
}

/// Runs keeper with `args` to its exit (killed and failing the test after a minute).
fn keeper_command(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .env("KEEPER_SECRET_KEY", SECRET_KEY)
        .env("KEEPER_BIND", "127.0.0.1:0")
        .env("KEEPER_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("keeper {args:?} did not exit: {}", output_text(&output));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn recover_after_the_database_is_lost(backend: TestBackend) {
    // One store throughout (by default a local store sits beside the SQLite file).
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_owned();
    recover_beside(backend, &[("KEEPER_STORAGE_DIR", data_dir)]);
}

/// The same with the store in Garage (S3 mode): the records are read back through S3.
#[test]
fn recover_from_a_garage_bucket() {
    let garage = common::garage::Garage::start();
    recover_beside(TestBackend::Sqlite, &garage.keeper_env());
}

fn recover_beside(backend: TestBackend, store: &[(&'static str, String)]) {
    let store: Vec<(&str, &str)> = store.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = TestDatabase::new(backend);
    let mut env: Vec<(&str, &str)> = SERVER_ENV.to_vec();
    env.push(("KEEPER_DATABASE_URL", first.url.as_str()));
    env.extend(store.iter().copied());
    let keeper = KeeperProcess::start(&env);
    keeper.create_product("demo");
    let sites = tempfile::tempdir().unwrap();
    let mut pages = Vec::new();
    for (n, git_ref) in ["main", "v1.0", "tickets/DM-9"].into_iter().enumerate() {
        let site = sites.path().join(format!("site{n}"));
        let files = generate_site(&site, 30 + n);
        pages.extend(files.into_iter().take(5));
        keeper_upload_succeeds(&keeper, "demo", &site, git_ref);
    }
    pages.sort();
    pages.dedup();
    wait_for("every edition published", Duration::from_secs(120), || {
        published(&keeper)
    });
    let before = snapshot(&keeper, &pages);
    let dir = keeper.kill_and_keep_dir();

    // The database is gone: a new, empty one beside the same store.
    let second = TestDatabase::new(backend);
    let mut lost = vec![("KEEPER_DATABASE_URL", second.url.as_str())];
    lost.extend(store.iter().copied());
    let refused = keeper_command(dir.path(), &lost, &["serve"]);
    let text = output_text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(text.contains("keeper recover"), "{text}");
    assert!(text.contains("--allow-empty-database"), "{text}");

    let dry = keeper_command(dir.path(), &lost, &["recover", "--dry-run"]);
    let text = output_text(&dry);
    assert!(dry.status.success(), "{text}");
    assert!(text.contains("builds: would create 3"), "{text}");
    assert!(text.contains("users and API tokens are not kept"), "{text}");
    let still_refused = keeper_command(dir.path(), &lost, &["serve"]);
    assert_eq!(still_refused.status.code(), Some(1), "--dry-run wrote");

    let recovered = keeper_command(dir.path(), &lost, &["recover"]);
    let text = output_text(&recovered);
    assert!(recovered.status.success(), "{text}");
    assert!(
        text.contains("builds: created 3, 0 already present"),
        "{text}"
    );
    let again = keeper_command(dir.path(), &lost, &["recover"]);
    let text = output_text(&again);
    assert!(again.status.success(), "{text}");
    assert!(text.contains("nothing to do"), "{text}");

    let mut env: Vec<(&str, &str)> = SERVER_ENV.to_vec();
    env.extend(lost.iter().copied());
    let keeper = KeeperProcess::start_in(dir, &env);
    assert_eq!(snapshot(&keeper, &pages), before);
}

on_both_backends!(recover_after_the_database_is_lost);
