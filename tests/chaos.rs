//! Chaos: the real `keeper serve` (API and worker in one process, SQLite and the local store) is
//! SIGKILLed again and again, alternately while a build is being uploaded and while an edition
//! is being rebuilt, and started again on the same directory. Afterwards every edition serves
//! exactly its build, byte for byte with the edition's surrogate key, every build matches its
//! sealed manifest, and `keeper verify` finds nothing. Conditions are polled, never waited for
//! with a fixed sleep.
//!
//! `KEEPER_CHAOS_KILLS` sets how many kills (default 6, what CI runs); a soak run takes e.g.
//! `KEEPER_CHAOS_KILLS=200 cargo nextest run --test chaos`.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::process::{generate_site, wait_for, KeeperProcess, PASSWORD, USER};
use futures::TryStreamExt;
use keeper::storage::local::LocalStore;
use keeper::storage::ObjectStore;

const SERVER_ENV: &[(&str, &str)] = &[
    ("KEEPER_SERVE_RUNS_WORKER", "true"),
    ("KEEPER_WORKER_LEASE_MS", "600"),
    ("KEEPER_WORKER_POLL_MS", "20"),
    ("KEEPER_WORKER_BACKOFF_MS", "10"),
    ("KEEPER_WORKER_MAX_BACKOFF_MS", "100"),
    ("KEEPER_WORKER_MAX_ATTEMPTS", "1000"),
    ("KEEPER_COPY_CONCURRENCY", "8"),
    ("KEEPER_LOG", "warn"),
];

const SITE_FILES: usize = 600;

fn kills() -> usize {
    std::env::var("KEEPER_CHAOS_KILLS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(6)
}

/// `keeper upload` of `site` for `git_ref`, running in the background.
fn start_upload(keeper: &KeeperProcess, site: &Path, git_ref: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["--host", &keeper.base, "-u", USER, "-p", PASSWORD, "upload"])
        .args(["--product", "demo", "--git-ref", git_ref, "--retries", "0"])
        .arg("--dir")
        .arg(site)
        .env_remove("LTD_SKIP_UPLOAD")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start keeper upload")
}

fn count(keeper: &KeeperProcess, sql: &str) -> i64 {
    keeper.lines(sql)[0].parse().unwrap()
}

fn started(dir: tempfile::TempDir) -> KeeperProcess {
    KeeperProcess::start_in(dir, SERVER_ENV)
}

#[test]
fn sigkills_during_uploads_and_rebuilds_lose_nothing() {
    let sites = tempfile::tempdir().unwrap();
    let mut keeper = KeeperProcess::start(SERVER_ENV);
    keeper.create_product("demo");
    let (mut during_upload, mut during_rebuild) = (0, 0);
    for round in 0..kills() {
        let site = sites.path().join(format!("site-{round}"));
        generate_site(&site, SITE_FILES);
        std::fs::write(site.join("round.html"), format!("round {round}")).unwrap();
        let git_ref = ["main", "tickets/DM-1", "v1.0"][round % 3];
        let builds_before = count(&keeper, "SELECT CAST(COUNT(*) AS TEXT) AS line FROM builds");
        let mut upload = start_upload(&keeper, &site, git_ref);
        let store = keeper.store_dir();
        if round % 2 == 0 {
            // During the upload: once the new build holds some objects.
            wait_for("objects of the new build", Duration::from_secs(120), || {
                count(&keeper, "SELECT CAST(COUNT(*) AS TEXT) AS line FROM builds") > builds_before
                    && objects_under(&store, "demo/builds/") > 0
                    || upload.try_wait().unwrap().is_some()
            });
        } else {
            // During a rebuild: once one is claimed (or the upload ended without one to catch).
            wait_for("a rebuild at work", Duration::from_secs(120), || {
                count(
                    &keeper,
                    "SELECT CAST(COUNT(*) AS TEXT) AS line FROM operations \
                     WHERE kind = 'rebuild_edition' AND state = 'WORKING'",
                ) > 0
                    || upload.try_wait().unwrap().is_some()
                        && count(
                            &keeper,
                            "SELECT CAST(COUNT(*) AS TEXT) AS line FROM operations \
                             WHERE state IN ('READY', 'WORKING')",
                        ) == 0
            });
        }
        let rebuilding = count(
            &keeper,
            "SELECT CAST(COUNT(*) AS TEXT) AS line FROM operations \
             WHERE kind = 'rebuild_edition' AND state = 'WORKING'",
        ) > 0;
        let uploading = upload.try_wait().unwrap().is_none();
        let dir = keeper.kill_and_keep_dir();
        during_upload += usize::from(uploading);
        during_rebuild += usize::from(rebuilding);
        let _ = upload.kill();
        let _ = upload.wait();
        keeper = started(dir);
    }
    // The kills did land where they were meant to (with at least two of them).
    if kills() >= 2 {
        assert!(during_upload > 0, "no kill happened during an upload");
        assert!(during_rebuild > 0, "no kill happened during a rebuild");
    }
    eprintln!("{during_upload} kills during an upload, {during_rebuild} during a rebuild");
    // The last start runs every operation left to the end.
    wait_for("the queue to settle", Duration::from_secs(300), || {
        count(
            &keeper,
            "SELECT CAST(COUNT(*) AS TEXT) AS line FROM operations WHERE state IN ('READY', 'WORKING')",
        ) == 0
    });
    let failed = keeper.lines(
        "SELECT kind || ': ' || COALESCE(message, '') AS line FROM operations WHERE state = 'FAILED'",
    );
    assert!(failed.is_empty(), "{failed:#?}\n{}", keeper.log());

    let rows = keeper.lines(
        "SELECT e.slug || ' ' || b.slug || ' ' || e.surrogate_key AS line FROM editions e \
         JOIN builds b ON b.id = e.build_id WHERE e.date_ended IS NULL",
    );
    assert!(
        !rows.is_empty(),
        "no edition was ever published\n{}",
        keeper.log()
    );
    let store = LocalStore::open(keeper.store_dir()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for row in &rows {
        let [edition, build, key]: [&str; 3] =
            row.split(' ').collect::<Vec<_>>().try_into().unwrap();
        runtime.block_on(assert_same_objects(
            &store,
            &format!("demo/builds/{build}/"),
            &format!("demo/v/{edition}/"),
            key,
        ));
    }
    let verify = Command::new(env!("CARGO_BIN_EXE_keeper"))
        .arg("verify")
        .current_dir(keeper.dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KEEPER_SECRET_KEY", common::process::SECRET_KEY)
        .env("KEEPER_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        common::process::output_text(&verify)
    );
}

fn objects_under(store_dir: &Path, prefix: &str) -> usize {
    let store = LocalStore::open(store_dir).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        store
            .list(prefix)
            .try_fold(0, |total, page| async move { Ok(total + page.len()) })
            .await
            .unwrap_or(0)
    })
}

/// The edition's objects are exactly the build's, byte for byte, with the edition's key.
async fn assert_same_objects(store: &LocalStore, build: &str, edition: &str, key: &str) {
    let keys = |prefix: &str| {
        let prefix = prefix.to_owned();
        async move {
            let pages: Vec<Vec<keeper::storage::ObjectSummary>> =
                store.list(&prefix).try_collect().await.unwrap();
            pages
                .into_iter()
                .flatten()
                .map(|object| object.key[prefix.len()..].to_owned())
                .collect::<Vec<_>>()
        }
    };
    let (sources, copies) = (keys(build).await, keys(edition).await);
    assert_eq!(copies, sources, "{edition} does not hold exactly {build}");
    for relative in &sources {
        let source = store.get(&format!("{build}{relative}")).await.unwrap();
        let copy = store.get(&format!("{edition}{relative}")).await.unwrap();
        assert_eq!(
            copy.head
                .headers
                .metadata
                .get("surrogate-key")
                .map(String::as_str),
            Some(key),
            "{edition}{relative}"
        );
        assert_eq!(
            copy.bytes().await.unwrap(),
            source.bytes().await.unwrap(),
            "{edition}{relative}"
        );
    }
}
