//! `keeper db backup` and `keeper db restore` (issue 12, item 5): a snapshot taken while a client
//! keeps writing, restored SQLite -> PostgreSQL and PostgreSQL -> SQLite, gives the same API
//! listings (every field, URL and surrogate key), keeps logins working, never reissues an id, and
//! is refused by a database that holds data. An older backup is migrated forward.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::api::{Api, PASSWORD};
use common::{client, TestBackend, TestDatabase};
use keeper::domain::Permissions;
use serde_json::{json, Value};

const KEEPER: &str = env!("CARGO_BIN_EXE_keeper");

/// `keeper db <args>` against `db`; returns (success, stdout + stderr).
fn keeper_db(db: &TestDatabase, args: &[&str]) -> (bool, String) {
    let output = Command::new(KEEPER)
        .arg("db")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("KEEPER_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A catalogue with something of everything: products, confirmed and deprecated builds,
/// editions of several modes, a deleted user (a freed id), API tokens.
fn populate(api: &Api) -> String {
    let admin = api.user("admin", Permissions::ALL);
    api.user("alice", Permissions::UPLOAD_BUILD);
    api.user("bob", Permissions::NONE);
    assert_eq!(api.delete("/users/bob", &admin).status, 204);
    for product in ["demo", "other", "busy"] {
        api.product(&admin, product);
    }
    api.uploaded_build(&admin, "demo", &["main"]);
    api.uploaded_build(&admin, "demo", &["v1.0.0"]);
    let deprecated = api.uploaded_build(&admin, "other", &["tickets/DM-1"]);
    assert_eq!(
        api.delete(deprecated["self_url"].as_str().unwrap(), &admin)
            .status,
        200
    );
    let edition = api.post(
        "/products/demo/editions/",
        &admin,
        json!({"slug": "latest-release", "title": "Latest release", "mode": "lsst_doc"}),
    );
    assert_eq!(edition.status, 201, "{edition:?}");
    let token = api.post(
        "/tokens/",
        &admin,
        json!({"name": "ci", "permissions": ["upload_build"], "products": ["demo"]}),
    );
    assert_eq!(token.status, 201, "{token:?}");
    admin
}

/// Every resource the API lists, users and tokens too, fetched whole.
fn listings(api: &Api, token: &str) -> Value {
    api.listings(Some(token), &["/users/".to_owned(), "/tokens/".to_owned()])
}

fn ids_of(api: &Api, sql: &str) -> Vec<String> {
    api.lines(sql)
}

fn backup_under_writes_then_restore(from: TestBackend, to: TestBackend) {
    let source = Api::start(from);
    let admin = populate(&source);

    // A CI job keeps registering builds of `busy` (each with its new ref's edition, in the same
    // transaction) while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, made) = (stop.clone(), made.clone());
        let (url, token) = (source.url("/products/busy/builds/"), admin.clone());
        std::thread::spawn(move || {
            let http = client();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let response = http
                    .post(&url)
                    .basic_auth(&token, Some(""))
                    .json(&json!({"git_refs": [format!("feature-{n}")]}))
                    .send()
                    .unwrap();
                assert_eq!(response.status(), 201);
                made.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while made.load(Ordering::Relaxed) < 3 {
        assert!(Instant::now() < deadline, "the writer made no builds");
        std::thread::yield_now();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keeper-backup.json");
    let (ok, output) = keeper_db(&source.db, &["backup", file.to_str().unwrap()]);
    assert!(ok, "{output}");
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_private(&file);
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();

    let target_db = TestDatabase::new(to);
    let (ok, output) = keeper_db(&target_db, &["restore", file.to_str().unwrap()]);
    assert!(ok, "{output}");
    assert!(output.contains("restored the backup"), "{output}");
    // Row for row and column for column (hashes, operations and microseconds included), the
    // restored database is the file: a backup of it holds the same tables and ids.
    let again = keeper::db::backup::take(&mut target_db.connect()).unwrap();
    let original: keeper::db::backup::Backup = serde_json::from_value(written.clone()).unwrap();
    assert_eq!(again.tables, original.tables);
    assert_eq!(again.sequences, original.sequences);
    assert!(original.tables["operations"].len() > 1, "{written}");
    let target = Api::on(target_db);

    // Everything not written during the backup is identical, field for field.
    let mut before = listings(&source, &admin);
    let mut after = listings(&target, &admin);
    let busy_before = take_busy(&mut before);
    let busy_after = take_busy(&mut after);
    assert_eq!(after, before);
    // `busy` is a snapshot: a prefix of what the writer made, each build with its edition.
    let builds_after = busy_after["builds"].as_array().unwrap();
    let builds_before = busy_before["builds"].as_array().unwrap();
    assert!(builds_after.len() >= 3, "{busy_after}");
    assert!(builds_after.len() <= builds_before.len(), "{busy_after}");
    assert_eq!(builds_after[..], builds_before[..builds_after.len()]);
    let editions_after = busy_after["editions"].as_array().unwrap();
    assert_eq!(
        editions_after.len(),
        builds_after.len() + 1,
        "every restored build has its edition (and __main): {busy_after}"
    );

    // Passwords work on the restored server; the id bob had (the highest, freed by his
    // deletion) is not reissued.
    target.login("alice");
    let highest_user_id = written["sequences"]["users"].as_i64().unwrap();
    let live = ids_of(&source, "SELECT CAST(max(id) AS TEXT) AS line FROM users");
    assert!(
        highest_user_id > live[0].parse::<i64>().unwrap(),
        "{written}"
    );
    target.user("carol", Permissions::NONE);
    let carol = ids_of(
        &target,
        "SELECT CAST(id AS TEXT) AS line FROM users WHERE username = 'carol'",
    );
    assert_eq!(carol[0].parse::<i64>().unwrap(), highest_user_id + 1);

    // A database that holds data is never written over.
    let (ok, output) = keeper_db(&target.db, &["restore", file.to_str().unwrap()]);
    assert!(!ok, "{output}");
    assert!(output.contains("already holds keeper data"), "{output}");
}

fn take_busy(listing: &mut Value) -> Value {
    let products = listing["products"].as_array_mut().unwrap();
    let at = products
        .iter()
        .position(|p| p["product"]["slug"] == "busy")
        .unwrap();
    products.remove(at)
}

fn assert_private(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the backup is readable by others: {mode:o}"
    );
}

#[test]
fn sqlite_to_postgres() {
    backup_under_writes_then_restore(TestBackend::Sqlite, TestBackend::Postgres);
}

#[test]
fn postgres_to_sqlite() {
    backup_under_writes_then_restore(TestBackend::Postgres, TestBackend::Sqlite);
}

/// A backup of an older schema is loaded at its version, then migrated forward with its data.
fn an_older_backup_is_migrated_forward(backend: TestBackend) {
    let source = Api::start(backend);
    let admin = populate(&source);
    let mut snapshot = keeper::db::backup::take(&mut source.db.connect()).unwrap();
    let known = keeper::db::migrations::known_migrations(match backend {
        TestBackend::Sqlite => keeper::db::Backend::Sqlite,
        TestBackend::Postgres => keeper::db::Backend::Postgres,
    })
    .unwrap();
    let newest = &known[known.len() - 1];
    let (webhooks, previous) = (&known[known.len() - 2], &known[known.len() - 3]);
    assert_eq!(snapshot.schema_version, newest.version);
    // The migration before the newest (which adds indexes only) added the tables webhooks and
    // webhook_deliveries: the older file has neither.
    assert!(webhooks.version.ends_with("000011"), "{}", webhooks.version);
    snapshot.schema_version = previous.version.clone();
    for table in ["webhooks", "webhook_deliveries"] {
        assert!(snapshot.tables.remove(table).is_some(), "{table}");
        snapshot.sequences.remove(table);
    }
    let target_db = TestDatabase::new(backend);
    let restored = keeper::db::backup::restore(&mut target_db.connect(), &snapshot).unwrap();
    assert_eq!(
        restored.migrated,
        [webhooks.version.clone(), newest.version.clone()]
    );
    assert_eq!(restored.rows["products"], 3);
    let target = Api::on(target_db);
    assert_eq!(listings(&target, &admin), listings(&source, &admin));
}

/// A file that is not a backup, or is newer than this keeper, is refused and writes nothing.
fn foreign_and_newer_files_are_refused(backend: TestBackend) {
    let source = Api::start(backend);
    populate(&source);
    let mut snapshot = keeper::db::backup::take(&mut source.db.connect()).unwrap();
    snapshot.schema_version = "29991231000000".into();
    let target_db = TestDatabase::new(backend);
    let err = keeper::db::backup::restore(&mut target_db.connect(), &snapshot)
        .unwrap_err()
        .to_string();
    assert!(err.contains("29991231000000"), "{err}");
    snapshot.format = "something-else".into();
    let err = keeper::db::backup::restore(&mut target_db.connect(), &snapshot)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a keeper backup"), "{err}");
    let status = keeper::db::migrations::status(&mut target_db.connect()).unwrap();
    assert_eq!(
        status.applied_count(),
        0,
        "a refused restore wrote the schema"
    );
}

on_both_backends!(
    an_older_backup_is_migrated_forward,
    foreign_and_newer_files_are_refused,
);

#[test]
fn the_password_of_a_restored_user_is_checked() {
    let source = Api::start(TestBackend::Sqlite);
    populate(&source);
    let snapshot = keeper::db::backup::take(&mut source.db.connect()).unwrap();
    let target_db = TestDatabase::new(TestBackend::Sqlite);
    keeper::db::backup::restore(&mut target_db.connect(), &snapshot).unwrap();
    let target = Api::on(target_db);
    let wrong = client()
        .get(target.url("/token"))
        .basic_auth("alice", Some(format!("{PASSWORD}x")))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    target.login("alice");
}
