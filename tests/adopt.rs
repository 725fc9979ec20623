//! `keeper adopt`, with the real binary, from the database the original LTD Keeper 1.23.0 wrote
//! (`tests/fixtures/ltd-keeper-1.23/`, read as it is) and from the same rows loaded into
//! PostgreSQL, into both backends: every product, build and edition answers with the ids,
//! slugs, surrogate keys, refs, dates and URLs the original stored; `ltd upload` then publishes
//! to an adopted product's `main` edition with that edition's old surrogate key on every object,
//! served at the product's URL; the adopted admin logs in with its old password, rehashed to
//! argon2. Also: `--dry-run` writes nothing, a second run refuses, an unknown revision is
//! refused by name, a hand-made untagged database of the oldest layout is identified and its
//! key-less editions repaired (a rebuild that purges the build's key too), and a 2.0 database's
//! encrypted organization secrets are carried over re-encrypted.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::process::{free_port, output_text, wait_for, SECRET_KEY};
use common::{client, TestBackend, TestDatabase};
use keeper::db::rows::{read_rows, Row};
use keeper::db::DbConnection;
use keeper::storage::ObjectStore;
use serde_json::Value;
use sha2::Digest;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/ltd-keeper-1.23/ltd-keeper.sqlite3"
);
const ADMIN_PASSWORD: &str = "bench-password";
/// The build the original's automatic slugs gave a slug twice (bench-p03's two builds `52`).
const DUPLICATE_BUILD: i64 = 1014;

fn fixture_digest() -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(FIXTURE).unwrap()))
}

fn open_fixture() -> DbConnection {
    keeper::adopt::source::open(
        &keeper::adopt::source::SourceUrl::parse(&format!("sqlite://{FIXTURE}")).unwrap(),
    )
    .unwrap()
}

/// The fixture's rows, as the original stored them.
struct Original {
    products: Vec<Row>,
    builds: Vec<Row>,
    editions: Vec<Row>,
}

fn original() -> Original {
    let mut conn = open_fixture();
    Original {
        products: read_rows(&mut conn, "products", "id").unwrap(),
        builds: read_rows(&mut conn, "builds", "id").unwrap(),
        editions: read_rows(&mut conn, "editions", "id").unwrap(),
    }
}

/// A connection to the SQLite file at `path` (created if missing), for making source databases.
fn sqlite_file(path: &Path) -> DbConnection {
    DbConnection::establish(
        &keeper::config::DatabaseUrl::parse(&format!("sqlite://{}", path.display())).unwrap(),
        Duration::from_secs(5),
    )
    .unwrap()
}

/// `keeper <args>` with `env`, in `dir`, to its exit.
fn keeper(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KEEPER_SECRET_KEY", SECRET_KEY)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn adopt(dir: &Path, target: &str, from: &str, extra: &[&str]) -> Output {
    let mut args = vec!["adopt", "--from", from];
    args.extend_from_slice(extra);
    keeper(dir, &[("KEEPER_DATABASE_URL", target)], &args)
}

/// `keeper serve` on `target` with the local store in `dir`, a worker and `extra`.
struct Serve {
    child: std::process::Child,
    base: String,
    dir: PathBuf,
}

impl Serve {
    fn start(dir: &Path, target: &str, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = std::fs::File::create(dir.join("serve.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_keeper"))
            .arg("serve")
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KEEPER_SECRET_KEY", SECRET_KEY)
            .env("KEEPER_DATABASE_URL", target)
            .env("KEEPER_BIND", format!("127.0.0.1:{port}"))
            .env("KEEPER_STORAGE_DIR", dir.join("store"))
            .env("KEEPER_SITES_ROOT_DOMAIN", "lsst.io")
            .env("KEEPER_HTTP_WORKERS", "2")
            .env("KEEPER_WORKER_POLL_MS", "20")
            .env("KEEPER_WORKER_BACKOFF_MS", "10")
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let serve = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir: dir.to_owned(),
        };
        let health = serve.url("/health/live");
        wait_for("keeper serve", Duration::from_secs(60), || {
            client().get(&health).send().is_ok()
        });
        serve
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str) -> Value {
        let response = client().get(self.url(path)).send().unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text<'a>(row: &'a Row, column: &str) -> &'a str {
    row[column].as_str().unwrap_or_default()
}

fn id(row: &Row) -> i64 {
    row["id"].as_i64().unwrap()
}

/// The original's `isoformat() + "Z"` of a stored naive datetime.
fn iso(row: &Row, column: &str) -> Value {
    match row[column].as_str() {
        None => Value::Null,
        Some(raw) => Value::String(format!("{}Z", raw.replacen(' ', "T", 1))),
    }
}

/// Every product, build and edition answers as the original stored it.
fn assert_answers_as_the_original(serve: &Serve, original: &Original) {
    let slugs: HashMap<i64, String> = original
        .products
        .iter()
        .map(|p| (id(p), text(p, "slug").to_owned()))
        .collect();
    let listed = serve.get("/products/")["products"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(listed, original.products.len());
    for row in &original.products {
        let slug = text(row, "slug");
        let product = serve.get(&format!("/products/{slug}"));
        for column in [
            "slug",
            "doc_repo",
            "title",
            "root_domain",
            "root_fastly_domain",
            "bucket_name",
            "surrogate_key",
        ] {
            assert_eq!(product[column], row[column], "product {slug} {column}");
        }
        assert_eq!(product["published_url"], format!("https://{slug}.lsst.io"));
        assert_eq!(product["domain"], format!("{slug}.lsst.io"));
        assert_eq!(product["fastly_domain"], row["root_fastly_domain"]);
    }
    for row in &original.builds {
        let build = serve.get(&format!("/builds/{}", id(row)));
        let product = &slugs[&row["product_id"].as_i64().unwrap()];
        assert_eq!(
            build["surrogate_key"],
            row["surrogate_key"],
            "build {}",
            id(row)
        );
        assert_eq!(
            build["date_created"],
            iso(row, "date_created"),
            "build {}",
            id(row)
        );
        assert_eq!(build["uploaded"], row["uploaded"], "build {}", id(row));
        assert_eq!(build["github_requester"], row["github_requester"]);
        let refs: Value = serde_json::from_str(text(row, "git_refs")).unwrap();
        assert_eq!(build["git_refs"], refs);
        assert_eq!(
            build["product_url"],
            serve.url(&format!("/products/{product}"))
        );
        if id(row) == DUPLICATE_BUILD {
            // Repaired, as the report says: renamed and deprecated.
            assert_eq!(build["slug"], format!("{}-dup", text(row, "slug")));
            assert!(build["date_ended"].is_string());
            continue;
        }
        assert_eq!(build["slug"], row["slug"]);
        assert_eq!(build["date_ended"], iso(row, "date_ended"));
        assert_eq!(
            build["published_url"],
            format!("https://{product}.lsst.io/builds/{}", text(row, "slug"))
        );
        assert_eq!(
            build["bucket_root_dir"],
            format!("{product}/builds/{}", text(row, "slug"))
        );
    }
    for row in &original.editions {
        let edition = serve.get(&format!("/editions/{}", id(row)));
        let product = &slugs[&row["product_id"].as_i64().unwrap()];
        let slug = text(row, "slug");
        for column in ["slug", "title", "surrogate_key"] {
            assert_eq!(edition[column], row[column], "edition {} {column}", id(row));
        }
        for column in ["date_created", "date_rebuilt", "date_ended"] {
            assert_eq!(
                edition[column],
                iso(row, column),
                "edition {} {column}",
                id(row)
            );
        }
        assert_eq!(edition["mode"], "git_refs"); // The original's mode 1.
        let refs: Value = serde_json::from_str(text(row, "tracked_refs")).unwrap();
        assert_eq!(edition["tracked_refs"], refs);
        assert_eq!(
            edition["build_url"],
            serve.url(&format!("/builds/{}", row["build_id"].as_i64().unwrap()))
        );
        let published = if slug == "main" {
            format!("https://{product}.lsst.io")
        } else {
            format!("https://{product}.lsst.io/v/{slug}")
        };
        assert_eq!(edition["published_url"], published, "edition {}", id(row));
        assert_eq!(edition["pending_rebuild"], false);
    }
}

fn login(serve: &Serve, username: &str, password: &str) -> reqwest::blocking::Response {
    client()
        .get(serve.url("/token"))
        .basic_auth(username, Some(password))
        .send()
        .unwrap()
}

fn stored_hash(target: &TestDatabase) -> String {
    let mut conn = target.connect();
    let users = read_rows(&mut conn, "users", "id").unwrap();
    text(&users[0], "password_hash").to_owned()
}

/// Adopts the fixture (from `from`) into `backend`, checks every answer, logs the admin in, and
/// when `upload` publishes a new build with `ltd upload` to bench-p01's `main` edition.
fn adopt_the_original(backend: TestBackend, from: &str, upload: bool) {
    let before = fixture_digest();
    let target = TestDatabase::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let output = adopt(dir.path(), &target.url, from, &[]);
    let report = output_text(&output);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("revision 4ace74bc8168"), "{report}");
    assert!(
        report
            .contains("Imported: 1 users, 0 organizations, 20 products, 1056 builds, 200 editions"),
        "{report}"
    );
    assert!(
        report.contains("build 1014 (bench-p03/builds/52)"),
        "{report}"
    );
    assert!(report.contains("read as UTC"), "{report}");
    assert!(
        report.contains("20 products keep their default edition `main`"),
        "{report}"
    );
    assert_eq!(
        fixture_digest(),
        before,
        "adopt wrote to the original's database"
    );

    let serve = Serve::start(dir.path(), &target.url, &[]);
    assert_answers_as_the_original(&serve, &original());

    // The adopted admin, with the password the original hashed (werkzeug PBKDF2).
    assert!(stored_hash(&target).starts_with("pbkdf2:sha256:150000$"));
    assert_eq!(login(&serve, "admin", "wrong-password").status(), 401);
    let first = login(&serve, "admin", ADMIN_PASSWORD);
    assert_eq!(first.status(), 200, "{}", serve.log());
    assert!(
        stored_hash(&target).starts_with("$argon2id$"),
        "not rehashed"
    );
    assert_eq!(login(&serve, "admin", ADMIN_PASSWORD).status(), 200);
    assert_eq!(login(&serve, "admin", "wrong-password").status(), 401);

    // The catalogue records the import queued are written by the worker (bench-p20's last
    // edition is the last record queued).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = keeper::storage::local::LocalStore::open(serve.dir.join("store")).unwrap();
    wait_for("the catalogue records", Duration::from_secs(120), || {
        runtime
            .block_on(store.head("__keeper/products/bench-p20/editions/200.json"))
            .is_ok()
    });
    for key in [
        "__keeper/products/bench-p01/product.json",
        "__keeper/products/bench-p01/builds/1.json",
        "__keeper/products/bench-p01/editions/1.json",
    ] {
        assert!(runtime.block_on(store.head(key)).is_ok(), "{key}");
    }
    // Every adopted product's dashboards are rendered; the default edition of a 1.x product
    // (`main`) leads its version list, at the product's old URL.
    wait_for("the dashboards", Duration::from_secs(120), || {
        runtime
            .block_on(store.head("bench-p20/v/switcher.json"))
            .is_ok()
    });
    let switcher: serde_json::Value = serde_json::from_slice(
        &runtime
            .block_on(async { store.get("bench-p01/v/switcher.json").await?.bytes().await })
            .unwrap(),
    )
    .unwrap();
    assert_eq!(switcher[0]["version"], "main", "{switcher}");
    assert_eq!(switcher[0]["preferred"], true, "{switcher}");
    assert_eq!(
        switcher[0]["url"], "https://bench-p01.lsst.io/",
        "{switcher}"
    );

    if upload {
        publish_to_main(&serve);
    }
}

/// `ltd upload` publishes to bench-p01's adopted `main` edition, which keeps its surrogate key and
/// stays the product's URL (`https://bench-p01.lsst.io/`, served from `v/main/`).
fn publish_to_main(serve: &Serve) {
    let site = tempfile::tempdir().unwrap();
    std::fs::write(
        site.path().join("index.html"),
        "<h1>adopted and republished</h1>",
    )
    .unwrap();
    std::fs::create_dir(site.path().join("guide")).unwrap();
    std::fs::write(site.path().join("guide/index.html"), "<p>guide</p>").unwrap();
    let ltd = std::env::var("KEEPER_TEST_LTD").expect(
        "KEEPER_TEST_LTD names `ltd` (ltd-conveyor 0.8.4): run the suite with ./scripts/test",
    );
    let output = Command::new(ltd)
        .args([
            "--host",
            &serve.base,
            "-u",
            "admin",
            "-p",
            ADMIN_PASSWORD,
            "upload",
        ])
        .args(["--product", "bench-p01", "--git-ref", "main", "--dir"])
        .arg(site.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        output_text(&output),
        serve.log()
    );
    let edition_key = "5f3a5f45f9a94ebfa93de4290fa67019"; // bench-p01's `main`, as the original made it.
    wait_for("the rebuild of main", Duration::from_secs(120), || {
        let edition = serve.get("/editions/1");
        edition["pending_rebuild"] == false && edition["build_url"] != serve.url("/builds/50")
    });
    let edition = serve.get("/editions/1");
    assert_eq!(edition["slug"], "main");
    assert_eq!(edition["surrogate_key"], edition_key);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = keeper::storage::local::LocalStore::open(serve.dir.join("store")).unwrap();
    let keys: Vec<String> = runtime.block_on(async {
        use futures::TryStreamExt;
        let pages: Vec<Vec<keeper::storage::ObjectSummary>> =
            store.list("bench-p01/v/main/").try_collect().await.unwrap();
        pages
            .into_iter()
            .flatten()
            .map(|object| object.key)
            .collect()
    });
    for page in [
        "bench-p01/v/main/index.html",
        "bench-p01/v/main/guide/index.html",
    ] {
        assert!(keys.iter().any(|key| key == page), "{page} not in {keys:?}");
    }
    // Every object of the edition, the directory redirect included.
    for key in &keys {
        let head = runtime.block_on(store.head(key)).unwrap();
        assert_eq!(
            head.headers
                .metadata
                .get("surrogate-key")
                .map(String::as_str),
            Some(edition_key),
            "{key}"
        );
    }
    // The product's URL serves the `main` edition (the site server, as the CDN would).
    let page = client()
        .get(serve.url("/"))
        .header("Host", "bench-p01.lsst.io")
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["surrogate-key"], edition_key);
    assert_eq!(page.text().unwrap(), "<h1>adopted and republished</h1>");
}

#[test]
fn the_originals_sqlite_database_is_adopted_into_sqlite() {
    adopt_the_original(TestBackend::Sqlite, &format!("sqlite://{FIXTURE}"), true);
}

#[test]
fn the_original_loaded_into_postgres_is_adopted_into_postgres() {
    let source = original_in_postgres();
    adopt_the_original(TestBackend::Postgres, &source.url, false);
}

/// The fixture's tables and rows in a new PostgreSQL database, with the types the original's
/// SQLAlchemy models give on PostgreSQL.
fn original_in_postgres() -> TestDatabase {
    let source = TestDatabase::new(TestBackend::Postgres);
    let mut conn = source.connect();
    let schema = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ltd-keeper-1.23/schema.sql"
    ))
    .unwrap()
    .replace("DATETIME", "TIMESTAMP WITHOUT TIME ZONE");
    keeper::with_connection!(&mut conn, c => diesel::connection::SimpleConnection::batch_execute(c, &schema)).unwrap();
    let mut fixture = open_fixture();
    for table in ["users", "products", "builds", "editions", "alembic_version"] {
        let order = if table == "alembic_version" {
            "version_num"
        } else {
            "id"
        };
        let rows = read_rows(&mut fixture, table, order).unwrap();
        keeper::db::rows::write_rows(&mut conn, table, &rows).unwrap();
    }
    source
}

#[test]
fn a_dry_run_writes_nothing_and_a_second_run_refuses() {
    let target = TestDatabase::new(TestBackend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let from = format!("sqlite://{FIXTURE}");
    let dry = adopt(dir.path(), &target.url, &from, &["--dry-run"]);
    let report = output_text(&dry);
    assert!(dry.status.success(), "{report}");
    assert!(
        report.contains(
            "Would import: 1 users, 0 organizations, 20 products, 1056 builds, 200 editions"
        ),
        "{report}"
    );
    assert!(
        report.contains("Nothing was written (--dry-run)"),
        "{report}"
    );
    assert!(report.contains("renamed 52-dup"), "{report}");
    let status = keeper::db::migrations::status(&mut target.connect()).unwrap();
    assert_eq!(status.table_count, 0, "the dry run created tables");

    let first = adopt(dir.path(), &target.url, &from, &[]);
    assert!(first.status.success(), "{}", output_text(&first));
    let second = adopt(dir.path(), &target.url, &from, &[]);
    assert!(!second.status.success());
    let refusal = output_text(&second);
    assert!(
        refusal.contains("already holds 1 users, 20 products"),
        "{refusal}"
    );
    // Its own database named as the source is refused too.
    let own = adopt(dir.path(), &target.url, &target.url, &["--dry-run"]);
    assert!(!own.status.success());
    assert!(
        output_text(&own).contains("names keeper's own database"),
        "{}",
        output_text(&own)
    );
}

#[test]
fn an_unknown_revision_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("newer.sqlite3");
    std::fs::copy(FIXTURE, &copy).unwrap();
    let mut conn = sqlite_file(&copy);
    keeper::with_connection!(&mut conn, c => diesel::RunQueryDsl::execute(
        diesel::sql_query("UPDATE alembic_version SET version_num = 'c0ffee5e1ec7'"), c
    ))
    .unwrap();
    drop(conn);
    let target = TestDatabase::new(TestBackend::Sqlite);
    let output = adopt(
        dir.path(),
        &target.url,
        &format!("sqlite://{}", copy.display()),
        &[],
    );
    assert!(!output.status.success());
    let message = output_text(&output);
    assert!(message.contains("\"c0ffee5e1ec7\""), "{message}");
    assert!(message.contains("not one of LTD Keeper's"), "{message}");
    assert_eq!(
        keeper::db::migrations::status(&mut target.connect())
            .unwrap()
            .table_count,
        0
    );
}

/// A database of the original's first revision (`aa9e2d2736c8`, 2016), made by hand as its
/// initial migration created it, and never tagged: no product or edition surrogate keys, no
/// tracking modes.
fn oldest_layout(path: &Path, build_key: &str) {
    let mut conn = sqlite_file(path);
    let sql = format!(
        "CREATE TABLE products (id INTEGER NOT NULL, slug VARCHAR(256) NOT NULL,
            doc_repo VARCHAR(256) NOT NULL, title VARCHAR(256) NOT NULL,
            root_domain VARCHAR(256) NOT NULL, root_fastly_domain VARCHAR(256) NOT NULL,
            bucket_name VARCHAR(256), PRIMARY KEY (id));
         CREATE TABLE users (id INTEGER NOT NULL, username VARCHAR(64), password_hash VARCHAR(128),
            permissions INTEGER, PRIMARY KEY (id));
         CREATE INDEX ix_users_username ON users (username);
         CREATE TABLE builds (id INTEGER NOT NULL, product_id INTEGER, slug VARCHAR(256) NOT NULL,
            date_created DATETIME NOT NULL, date_ended DATETIME, git_refs VARCHAR(2048),
            github_requester VARCHAR(256), uploaded BOOLEAN, surrogate_key VARCHAR(32) NOT NULL,
            PRIMARY KEY (id), FOREIGN KEY(product_id) REFERENCES products (id));
         CREATE TABLE editions (id INTEGER NOT NULL, product_id INTEGER, build_id INTEGER,
            tracked_refs VARCHAR(2048), slug VARCHAR(256) NOT NULL, title VARCHAR(256) NOT NULL,
            date_created DATETIME NOT NULL, date_rebuilt DATETIME NOT NULL, date_ended DATETIME,
            PRIMARY KEY (id), FOREIGN KEY(product_id) REFERENCES products (id),
            FOREIGN KEY(build_id) REFERENCES builds (id));
         INSERT INTO products VALUES (1, 'pipelines', 'https://github.com/lsst/pipelines_docs',
            'LSST Science Pipelines', 'lsst.io', 'global.ssl.fastly.net', 'lsst-the-docs');
         INSERT INTO users VALUES (1, 'ops', NULL, 31);
         INSERT INTO builds VALUES (1, 1, '1', '2016-05-02 10:00:00', NULL, '[\"master\"]', 'jsick',
            1, '{build_key}');
         INSERT INTO editions VALUES (1, 1, 1, '[\"master\"]', 'main', 'Latest',
            '2016-05-02 09:00:00', '2016-05-02 10:05:00', NULL);
         INSERT INTO editions VALUES (2, 1, 1, '[\"master\"]', 'tickets/DM-5', 'DM-5',
            '2016-05-02 09:30:00', '2016-05-02 10:05:00', NULL);"
    );
    keeper::with_connection!(&mut conn, c => diesel::connection::SimpleConnection::batch_execute(c, &sql)).unwrap();
}

#[test]
fn an_untagged_database_of_the_oldest_layout_is_identified_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("ltd-2016.sqlite3");
    let build_key = "0b1d0b1d0b1d0b1d0b1d0b1d0b1d0b1d";
    oldest_layout(&source, build_key);
    // The build's objects, as the original uploaded them (with the build's key).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = keeper::storage::local::LocalStore::open(dir.path().join("store")).unwrap();
    for (key, body) in [
        ("pipelines/builds/1/index.html", "<h1>pipelines</h1>"),
        ("pipelines/v/main/index.html", "<h1>pipelines</h1>"),
        ("pipelines/v/main/stale.html", "left from an older build"),
    ] {
        let headers = keeper::storage::ObjectHeaders {
            content_type: Some("text/html".into()),
            metadata: [("surrogate-key".to_owned(), build_key.to_owned())].into(),
            ..Default::default()
        };
        runtime
            .block_on(store.put(key, bytes::Bytes::from(body), &headers))
            .unwrap();
    }
    let target = TestDatabase::new(TestBackend::Sqlite);
    let output = adopt(
        dir.path(),
        &target.url,
        &format!("sqlite://{}", source.display()),
        &[],
    );
    let report = output_text(&output);
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains(
            "revision aa9e2d2736c8 (initial, 1.x), recognised from its tables and columns"
        ),
        "{report}"
    );
    assert!(
        report.contains("product 1 (pipelines): had no surrogate key"),
        "{report}"
    );
    assert!(
        report.contains("edition 1 (pipelines/v/main): had no surrogate key"),
        "{report}"
    );
    assert!(
        report.contains("edition 2 (pipelines/v/tickets/DM-5): has a slug keeper cannot take"),
        "{report}"
    );
    assert!(report.contains("user 1 (ops): had no password"), "{report}");
    assert!(report.contains("Queued: 2 rebuilds"), "{report}");
    // A newer request for `main` (the same build again) supersedes the repair's queued rebuild;
    // the key the repair was to purge is carried over to it.
    {
        use diesel::prelude::*;
        use keeper::db::models::{Build, Edition, Product};
        use keeper::db::schema::{builds, editions, products};
        let mut conn = target.connect();
        conn.write_transaction(|conn| {
            keeper::with_connection!(conn, c => {
                let product = products::table.find(1).select(Product::as_select()).first(c)?;
                let edition = editions::table.find(1).select(Edition::as_select()).first(c)?;
                let build = builds::table.find(1).select(Build::as_select()).first(c)?;
                Ok::<_, diesel::result::Error>((product, edition, build))
            })
            .and_then(|(product, edition, build)| {
                keeper::ops::rebuild::enqueue(
                    conn,
                    &product,
                    &edition,
                    &build,
                    keeper::domain::HistoryReason::Requested,
                )
            })
        })
        .unwrap();
        let states: Vec<String> = read_rows(&mut conn, "operations", "id")
            .unwrap()
            .iter()
            .filter(|op| op["kind"] == "rebuild_edition" && op["edition_id"] == 1)
            .map(|op| text(op, "state").to_owned())
            .collect();
        assert_eq!(states, ["SUPERSEDED", "READY"]);
        let newest = read_rows(&mut conn, "operations", "id")
            .unwrap()
            .into_iter()
            .rfind(|op| op["kind"] == "rebuild_edition" && op["edition_id"] == 1)
            .unwrap();
        let payload: Value = serde_json::from_str(text(&newest, "payload")).unwrap();
        assert_eq!(
            payload["also_purge"],
            serde_json::json!([build_key]),
            "{payload}"
        );
    }

    // The rebuilds run against a Fastly stand-in: the objects get the edition's new key, and
    // the purge names the build's key as well as the edition's.
    let fastly = runtime.block_on(wiremock::MockServer::start());
    let purges = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = purges.clone();
    runtime.block_on(
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(move |request: &wiremock::Request| {
                if let Some(keys) = request.headers.get("surrogate-key") {
                    seen.lock()
                        .unwrap()
                        .extend(keys.to_str().unwrap().split(' ').map(str::to_owned));
                }
                if let Some(key) = request.url.path().split("/purge/").nth(1) {
                    seen.lock().unwrap().push(key.to_owned());
                }
                wiremock::ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"status": "ok"}))
            })
            .mount(&fastly),
    );
    let serve = Serve::start(
        dir.path(),
        &target.url,
        &[
            ("KEEPER_CDN", "fastly"),
            ("KEEPER_FASTLY_SERVICE_ID", "SU1Z0isxPaozGVKXdv0eY"),
            ("KEEPER_FASTLY_API_KEY", "fastly-key-for-tests"),
            ("KEEPER_FASTLY_API_URL", &fastly.uri()),
        ],
    );
    let main = serve.get("/editions/1");
    let new_key = main["surrogate_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, build_key);
    assert_eq!(main["published_url"], "https://pipelines.lsst.io");
    wait_for("the repairs' rebuilds", Duration::from_secs(120), || {
        let mut conn = target.connect();
        let ops = read_rows(&mut conn, "operations", "id").unwrap();
        ops.iter()
            .filter(|op| op["kind"] == "rebuild_edition")
            .all(|op| op["state"] == "OK" || op["state"] == "SUPERSEDED")
    });
    let head = runtime
        .block_on(store.head("pipelines/v/main/index.html"))
        .unwrap();
    assert_eq!(head.headers.metadata.get("surrogate-key"), Some(&new_key));
    assert!(
        runtime
            .block_on(store.head("pipelines/v/main/stale.html"))
            .is_err(),
        "leftover kept"
    );
    let renamed = serve.get("/editions/2");
    assert_eq!(renamed["slug"], "tickets-DM-5");
    assert!(runtime
        .block_on(store.head("pipelines/v/tickets-DM-5/index.html"))
        .is_ok());
    let purged = purges.lock().unwrap().clone();
    assert!(purged.contains(&new_key), "{purged:?}");
    assert!(
        purged.contains(&build_key.to_owned()),
        "the build's key was not purged: {purged:?}"
    );
    // The user without a password cannot log in.
    assert_eq!(login(&serve, "ops", "").status(), 401);
}

#[test]
fn a_v2_database_brings_its_organizations_and_reencrypted_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("ltd-2.sqlite3");
    let original_key = fernet::Fernet::generate_key();
    let fernet = fernet::Fernet::new(&original_key).unwrap();
    let fastly_secret = fernet.encrypt(b"the-fastly-api-key");
    let aws_secret = fernet.encrypt(b"the-aws-secret-key");
    let mut conn = sqlite_file(&source);
    // The 2.0 alpha's tables at its head revision (columns as its models declare them).
    let sql = format!(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
         INSERT INTO alembic_version VALUES ('8fa19dcad1d1');
         CREATE TABLE organizations (id INTEGER NOT NULL PRIMARY KEY,
            default_dashboard_template_id INTEGER, slug VARCHAR(255) NOT NULL UNIQUE,
            title VARCHAR(255) NOT NULL, layout INTEGER NOT NULL, fastly_support BOOLEAN NOT NULL,
            root_domain VARCHAR(255) NOT NULL, root_path_prefix VARCHAR(255) NOT NULL,
            fastly_domain VARCHAR(255), fastly_encrypted_api_key BLOB,
            fastly_service_id VARCHAR(255), bucket_name VARCHAR(255), aws_id VARCHAR(255),
            aws_encrypted_secret_key BLOB, aws_region VARCHAR(255), bucket_public_read BOOLEAN);
         INSERT INTO organizations VALUES (1, NULL, 'default', 'Default', 1, 0, 'example.com', '/',
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0);
         INSERT INTO organizations VALUES (2, NULL, 'rubin', 'Rubin Observatory', 2, 1,
            'rubin.example.org', '/docs', 'rubin.global.ssl.fastly.net', CAST('{fastly_secret}' AS BLOB),
            'SERVICEID', 'rubin-docs', 'AKIAEXAMPLE', CAST('{aws_secret}' AS BLOB), 'us-west-2', 1);
         CREATE TABLE users (id INTEGER NOT NULL PRIMARY KEY, username VARCHAR(255) UNIQUE,
            password_hash VARCHAR(128), permissions INTEGER);
         CREATE TABLE products (id INTEGER NOT NULL PRIMARY KEY, organization_id INTEGER NOT NULL,
            slug VARCHAR(255) NOT NULL UNIQUE, doc_repo VARCHAR(255) NOT NULL,
            title VARCHAR(255) NOT NULL, root_domain VARCHAR(255) NOT NULL,
            root_fastly_domain VARCHAR(255), bucket_name VARCHAR(255), surrogate_key VARCHAR(32));
         INSERT INTO products VALUES (7, 2, 'sqr-001', 'https://github.com/x/sqr-001', 'SQR-001',
            'rubin.example.org', NULL, 'rubin-docs', '11111111111111111111111111111111');
         CREATE TABLE builds (id INTEGER NOT NULL PRIMARY KEY, product_id INTEGER, slug VARCHAR(255) NOT NULL,
            date_created DATETIME NOT NULL, date_ended DATETIME, git_refs VARCHAR(2048), git_ref VARCHAR(255),
            github_requester VARCHAR(255), uploaded_by_id INTEGER, uploaded BOOLEAN,
            surrogate_key VARCHAR(32) NOT NULL);
         INSERT INTO builds VALUES (40, 7, '1', '2022-04-01 12:00:00', NULL, NULL, 'main', NULL, NULL, 1,
            '22222222222222222222222222222222');
         CREATE TABLE editions (id INTEGER NOT NULL PRIMARY KEY, product_id INTEGER, build_id INTEGER,
            mode INTEGER, tracked_ref VARCHAR(255), tracked_refs VARCHAR(2048), slug VARCHAR(255) NOT NULL,
            title VARCHAR(256) NOT NULL, date_created DATETIME NOT NULL, date_rebuilt DATETIME NOT NULL,
            date_ended DATETIME, surrogate_key VARCHAR(32), pending_rebuild BOOLEAN NOT NULL,
            kind INTEGER NOT NULL);
         INSERT INTO editions VALUES (90, 7, 40, 7, 'main', NULL, '__main', 'Latest',
            '2022-04-01 11:00:00', '2022-04-01 12:01:00', NULL, '33333333333333333333333333333333', 0, 1);
         INSERT INTO editions VALUES (91, 7, 40, 2, NULL, NULL, 'v1.2', 'v1.2',
            '2022-04-01 11:00:00', '2022-04-01 12:01:00', NULL, '44444444444444444444444444444444', 1, 5);"
    );
    keeper::with_connection!(&mut conn, c => diesel::connection::SimpleConnection::batch_execute(c, &sql)).unwrap();
    drop(conn);
    let target = TestDatabase::new(TestBackend::Sqlite);
    let from = format!("sqlite://{}", source.display());
    let keeper_keys = keeper::crypto::EncryptionKeys::generate_key();

    let without = keeper(
        dir.path(),
        &[
            ("KEEPER_DATABASE_URL", &target.url),
            ("KEEPER_ENCRYPTION_KEYS", &keeper_keys),
        ],
        &["adopt", "--from", &from],
    );
    assert!(!without.status.success());
    assert!(
        output_text(&without).contains("KEEPER_ADOPT_FERNET_KEY"),
        "{}",
        output_text(&without)
    );

    let output = keeper(
        dir.path(),
        &[
            ("KEEPER_DATABASE_URL", &target.url),
            ("KEEPER_ENCRYPTION_KEYS", &keeper_keys),
            ("KEEPER_ADOPT_FERNET_KEY", &original_key),
        ],
        &["adopt", "--from", &from],
    );
    let report = output_text(&output);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("revision 8fa19dcad1d1"), "{report}");
    // The original's rebuild of v1.2 never finished: keeper queues it.
    assert!(
        report.contains("edition 91 (sqr-001/v/v1.2): was left pending_rebuild"),
        "{report}"
    );
    assert!(report.contains("Queued: 1 rebuilds"), "{report}");
    assert!(!report.contains("the-fastly-api-key") && !report.contains("the-aws-secret-key"));
    let mut conn = target.connect();
    let organizations = read_rows(&mut conn, "organizations", "id").unwrap();
    assert_eq!(organizations.len(), 2);
    let rubin = &organizations[1];
    assert_eq!(
        (rubin["id"].as_i64(), text(rubin, "slug")),
        (Some(2), "rubin")
    );
    assert_eq!(text(rubin, "layout"), "path");
    assert_eq!(text(rubin, "path_prefix"), "/docs");
    assert_eq!(text(rubin, "cdn_kind"), "fastly");
    assert_eq!(text(rubin, "store_kind"), "s3");
    assert_eq!(text(rubin, "s3_region"), "us-west-2");
    assert_eq!(rubin["public_read"], true);
    let keys = keeper::crypto::EncryptionKeys::parse(&keeper_keys).unwrap();
    use secrecy::ExposeSecret;
    for (column, plain) in [
        ("fastly_api_key_encrypted", "the-fastly-api-key"),
        ("s3_secret_access_key_encrypted", "the-aws-secret-key"),
    ] {
        let stored = text(rubin, column);
        assert!(!stored.contains(plain));
        assert_eq!(
            keys.decrypt(stored).unwrap().expose_secret(),
            plain,
            "{column}"
        );
    }
    let products = read_rows(&mut conn, "products", "id").unwrap();
    assert_eq!(products[0]["organization_id"], 2);
    assert_eq!(
        text(&products[0], "root_fastly_domain"),
        "rubin.global.ssl.fastly.net"
    );
    let editions = read_rows(&mut conn, "editions", "id").unwrap();
    assert_eq!(
        (
            text(&editions[0], "tracking_mode"),
            text(&editions[0], "kind")
        ),
        ("git_ref", "main")
    );
    assert_eq!(text(&editions[0], "tracked_refs"), "[\"main\"]");
    assert_eq!(
        (
            text(&editions[1], "tracking_mode"),
            text(&editions[1], "kind")
        ),
        ("lsst_doc", "minor")
    );
    let builds = read_rows(&mut conn, "builds", "id").unwrap();
    assert_eq!(text(&builds[0], "git_refs"), "[\"main\"]");
}

#[test]
fn an_imported_token_works_as_the_user_brought_it() {
    let target = TestDatabase::new(TestBackend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let output = adopt(dir.path(), &target.url, &format!("sqlite://{FIXTURE}"), &[]);
    assert!(output.status.success(), "{}", output_text(&output));
    let import = |token: &str, extra: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keeper"))
            .args([
                "token",
                "import",
                "--username",
                "admin",
                "--name",
                "old-ci",
                "--permissions",
                "upload_build",
            ])
            .args(extra)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KEEPER_SECRET_KEY", SECRET_KEY)
            .env("KEEPER_DATABASE_URL", &target.url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
        child.wait_with_output().unwrap()
    };
    let chosen = "a-secret-our-ci-has-used-for-years";
    let random = "3f9a1c0e7b2d4f6a8c1e3b5d7f9a2c4e6b8d0f1a3c5e7b9d";
    for (token, extra) in [(chosen, &[][..]), (random, &["--trusted"][..])] {
        let imported = import(token, extra);
        assert!(imported.status.success(), "{}", output_text(&imported));
        assert!(
            !output_text(&imported).contains(token),
            "the token was echoed"
        );
    }
    let again = import(chosen, &["--trusted"]);
    assert!(!again.status.success());
    assert!(
        output_text(&again).contains("already imported"),
        "{}",
        output_text(&again)
    );
    let short = import("short-token", &[]);
    assert!(!short.status.success());
    assert!(
        output_text(&short).contains("at least 16"),
        "{}",
        output_text(&short)
    );
    let untrusted = import("only-twenty-chars-ok", &["--trusted"]);
    assert!(!untrusted.status.success());
    let mut conn = target.connect();
    let tokens = read_rows(&mut conn, "api_tokens", "id").unwrap();
    assert_eq!(tokens.len(), 2);
    let slow = text(&tokens[0], "token_hash");
    assert_ne!(
        slow,
        hex::encode(sha2::Sha256::digest(chosen)),
        "an untrusted token got a fast hash"
    );
    assert_eq!(
        text(&tokens[1], "token_hash"),
        hex::encode(sha2::Sha256::digest(random))
    );

    let serve = Serve::start(dir.path(), &target.url, &[]);
    for token in [chosen, random] {
        // As LTD clients send a token: the Basic user name, an empty password.
        let session = client()
            .get(serve.url("/token"))
            .basic_auth(token, Some(""))
            .send()
            .unwrap();
        assert_eq!(session.status(), 200, "{token}");
        // And on a route directly, as a Bearer token: it may upload, not administer products.
        let bearer = |method: reqwest::Method, path: &str| {
            client()
                .request(method, serve.url(path))
                .bearer_auth(token)
                .json(&serde_json::json!({"git_refs": ["main"]}))
                .send()
                .unwrap()
                .status()
        };
        assert_eq!(
            bearer(reqwest::Method::POST, "/products/bench-p02/builds/"),
            201,
            "{token}"
        );
        assert_eq!(
            bearer(reqwest::Method::PATCH, "/products/bench-p02"),
            403,
            "{token}"
        );
    }
    let wrong = client()
        .get(serve.url("/token"))
        .basic_auth("a-secret-our-ci-has-used-for-yearz", Some(""))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
}
