//! The real `keeper serve` binary in a temporary directory (the embedded default: SQLite and the
//! local store beside it), a generated site, and checks of what an upload left behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::client;
use keeper::storage::ObjectStore;

pub const USER: &str = "ci";
pub const PASSWORD: &str = "ci-password-for-tests";
pub const SECRET_KEY: &str = "test-signing-key-for-keeper-serve-0123456789";

/// `keeper serve`, killed when dropped.
pub struct KeeperProcess {
    pub base: String,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `condition` every 20 ms until it holds; panics with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl KeeperProcess {
    /// Starts `keeper serve` with a bootstrap user `ci` (every permission), the operations
    /// queue left for a worker to drain (`KEEPER_SERVE_RUNS_WORKER=false`), and `extra`.
    pub fn start(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra)
    }

    /// Starts `keeper serve` on the database and store already in `dir`.
    pub fn start_in(dir: tempfile::TempDir, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("keeper.log"))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_keeper"));
        command
            .arg("serve")
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KEEPER_BIND", format!("127.0.0.1:{port}"))
            .env("KEEPER_SECRET_KEY", SECRET_KEY)
            .env("KEEPER_BOOTSTRAP_USER", USER)
            .env("KEEPER_BOOTSTRAP_PASSWORD", PASSWORD)
            .env("KEEPER_SERVE_RUNS_WORKER", "false")
            .env("KEEPER_HTTP_WORKERS", "2")
            .stdout(Stdio::null())
            .stderr(log);
        for (name, value) in extra {
            command.env(name, value);
        }
        let child = command.spawn().unwrap();
        let mut keeper = Self {
            base: format!("http://127.0.0.1:{port}"),
            dir,
            child: Some(child),
        };
        let health = format!("{}/health/live", keeper.base);
        let deadline = Instant::now() + Duration::from_secs(60);
        while client().get(&health).send().is_err() {
            if let Some(status) = keeper.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("keeper serve exited: {status}\n{}", keeper.log());
            }
            assert!(Instant::now() < deadline, "keeper serve did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        keeper
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("keeper.log")).unwrap_or_default()
    }

    /// Stops the server at once (SIGKILL), as a crash or a lost machine would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILLs the server and hands back its directory (database, store, log), to start
    /// another server on.
    pub fn kill_and_keep_dir(mut self) -> tempfile::TempDir {
        self.kill();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A session token of the bootstrap user.
    pub fn token(&self) -> String {
        let reply = client()
            .get(self.url("/token"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .unwrap();
        assert_eq!(reply.status(), 200);
        reply.json::<Value>().unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn get(&self, url: &str) -> Value {
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            self.url(url)
        };
        let reply = client().get(&url).send().unwrap();
        assert_eq!(reply.status(), 200, "GET {url}");
        reply.json().unwrap()
    }

    pub fn create_product(&self, slug: &str) {
        let reply = client()
            .post(self.url("/products/"))
            .basic_auth(self.token(), Some(""))
            .json(&json!({"slug": slug, "title": slug, "doc_repo": format!("https://example.org/{slug}")}))
            .send()
            .unwrap();
        assert_eq!(reply.status(), 201, "{}", reply.text().unwrap());
    }

    /// The JSON of every build of `product`.
    pub fn builds(&self, product: &str) -> Vec<Value> {
        self.get(&format!("/products/{product}/builds/"))["builds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|url| self.get(url.as_str().unwrap()))
            .collect()
    }

    /// The JSON of every edition of `product`, by slug.
    pub fn editions(&self, product: &str) -> Vec<Value> {
        self.get(&format!("/products/{product}/editions/"))["editions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|url| self.get(url.as_str().unwrap()))
            .collect()
    }

    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("keeper-data")
    }

    /// `kind state edition-slug build-slug` of every publishing operation (not the bucket's
    /// bookkeeping: seals and catalogue records), read from the database file.
    pub fn operations(&self) -> Vec<String> {
        self.lines(
            "SELECT o.kind || ' ' || o.state || ' ' || COALESCE(e.slug, '-') || ' ' ||
                    COALESCE(b.slug, '-') AS line
             FROM operations o LEFT JOIN editions e ON e.id = o.edition_id
                  LEFT JOIN builds b ON b.id = o.build_id
             WHERE o.kind NOT IN ('seal_build', 'write_record', 'dashboard') ORDER BY o.id",
        )
    }

    /// The id of the rebuild of `edition` from the build `build` (slugs).
    pub fn rebuild_id(&self, edition: &str, build: &str) -> u32 {
        self.lines(&format!(
            "SELECT CAST(o.id AS TEXT) AS line FROM operations o
               JOIN editions e ON e.id = o.edition_id JOIN builds b ON b.id = o.build_id
              WHERE o.kind = 'rebuild_edition' AND e.slug = '{edition}' AND b.slug = '{build}'"
        ))[0]
            .parse()
            .unwrap()
    }

    /// The `line` column of `sql`'s rows, read from the database file.
    pub fn lines(&self, sql: &str) -> Vec<String> {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Line {
            #[diesel(sql_type = diesel::sql_types::Text)]
            line: String,
        }
        let url = keeper::config::DatabaseUrl::parse(&format!(
            "sqlite://{}",
            self.dir.path().join("keeper.sqlite3").display()
        ))
        .unwrap();
        let mut conn = keeper::db::DbConnection::establish(&url, Duration::from_secs(5)).unwrap();
        let rows: Vec<Line> =
            keeper::with_connection!(&mut conn, c => diesel::sql_query(sql).load(c)).unwrap();
        rows.into_iter().map(|row| row.line).collect()
    }
}

impl Drop for KeeperProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the real `keeper upload` against `keeper` as the bootstrap user with `args` (after
/// `upload`), ignoring any `LTD_*` variables of the environment.
pub fn keeper_upload(keeper: &KeeperProcess, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["--host", &keeper.base, "-u", USER, "-p", PASSWORD, "upload"])
        .args(args)
        .env_remove("LTD_HOST")
        .env_remove("LTD_USERNAME")
        .env_remove("LTD_PASSWORD")
        .env_remove("LTD_SKIP_UPLOAD")
        .output()
        .unwrap()
}

/// `keeper upload` of the site in `root` as build of `git_ref` for `product`, with `extra` flags.
pub fn keeper_upload_site(
    keeper: &KeeperProcess,
    product: &str,
    root: &std::path::Path,
    git_ref: &str,
    extra: &[&str],
) -> Output {
    let root = root.to_str().unwrap();
    let mut args = vec!["--product", product, "--dir", root, "--git-ref", git_ref];
    args.extend_from_slice(extra);
    keeper_upload(keeper, &args)
}

/// As [`keeper_upload_site`] without extra flags; it must succeed (the server's log is in the
/// failure message).
pub fn keeper_upload_succeeds(
    keeper: &KeeperProcess,
    product: &str,
    root: &std::path::Path,
    git_ref: &str,
) -> Output {
    let output = keeper_upload_site(keeper, product, root, git_ref, &[]);
    assert!(
        output.status.success(),
        "{}\n{}",
        output_text(&output),
        keeper.log()
    );
    output
}

/// The real `ltd` (ltd-conveyor 0.8.4): `KEEPER_TEST_LTD`, which `./scripts/test` sets.
pub fn ltd_executable() -> String {
    std::env::var("KEEPER_TEST_LTD").unwrap_or_else(|_| {
        panic!(
            "KEEPER_TEST_LTD is not set: run the suite with ./scripts/test, which installs \
             ltd-conveyor==0.8.4 in a virtual environment under ~/.cache/keeper-tools, or set it \
             to the path of an `ltd` executable"
        )
    })
}

/// Runs the unchanged `ltd upload` of `root` as a build of `git_ref` for `product`, as the
/// bootstrap user; it must succeed (the server's log is in the failure message).
pub fn ltd_upload_succeeds(keeper: &KeeperProcess, product: &str, root: &Path, git_ref: &str) {
    let output = Command::new(ltd_executable())
        .args(["--host", &keeper.base, "-u", USER, "-p", PASSWORD, "upload"])
        .args(["--product", product, "--git-ref", git_ref, "--dir"])
        .arg(root)
        .env_remove("LTD_SKIP_UPLOAD")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        output_text(&output),
        keeper.log()
    );
}

/// A finished command's status, stdout and stderr, for assertion messages.
pub fn output_text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A generated documentation site: `files` files spread over nested directories, with the kinds
/// of file a Sphinx site has. Returns the relative paths of the files.
pub fn generate_site(root: &Path, files: usize) -> Vec<String> {
    let directories = [
        "",
        "_static",
        "_static/css",
        "_static/js",
        "_images",
        "api",
        "api/module",
        "api/module/sub",
        "guide",
        "guide/advanced",
    ];
    let extensions = ["html", "css", "js", "png", "json", "txt"];
    let mut written = Vec::with_capacity(files);
    for index in 0..files {
        let dir = directories[index % directories.len()];
        let extension = extensions[index % extensions.len()];
        let name = if index < directories.len() {
            "index.html".to_owned()
        } else {
            format!("page-{index}.{extension}")
        };
        let relative = if dir.is_empty() {
            name
        } else {
            format!("{dir}/{name}")
        };
        let path = root.join(&relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let body = format!("<!-- {relative} -->\n{}", "content ".repeat(index % 50));
        std::fs::write(&path, body).unwrap();
        written.push(relative);
    }
    written
}

/// The Content-Type an upload of `relative` must have got (the kinds both clients agree on).
fn expected_content_type(relative: &str) -> Option<&'static str> {
    match relative.rsplit('.').next()? {
        "html" => Some("text/html"),
        "css" => Some("text/css"),
        "png" => Some("image/png"),
        "json" => Some("application/json"),
        "txt" => Some("text/plain"),
        _ => None,
    }
}

/// Checks that every file of the site at `root` is in the build's prefix with the build's
/// metadata, and that every directory has its redirect object.
pub fn assert_build_uploaded(store_dir: &Path, product: &str, build: &Value, root: &Path) {
    let store = keeper::storage::local::LocalStore::open(store_dir).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_build_in_store(&runtime, &store, product, build, root);
}

/// [`assert_build_uploaded`] for any store (`runtime` runs its calls).
pub fn assert_build_in_store(
    runtime: &tokio::runtime::Runtime,
    store: &dyn ObjectStore,
    product: &str,
    build: &Value,
    root: &Path,
) {
    let slug = build["slug"].as_str().unwrap();
    let surrogate_key = build["surrogate_key"].as_str().unwrap();
    let prefix = format!("{product}/builds/{slug}");
    let site = keeper::client::site::scan(root).unwrap();
    for file in &site.files {
        let relative = file
            .path
            .strip_prefix(root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let key = format!("{prefix}/{relative}");
        let head = runtime
            .block_on(store.head(&key))
            .unwrap_or_else(|err| panic!("{key}: {err}"));
        assert_eq!(head.summary.size, file.size, "{key}");
        assert_eq!(
            head.headers.cache_control.as_deref(),
            Some("max-age=31536000"),
            "{key}"
        );
        assert_eq!(
            head.headers.metadata["surrogate-key"], surrogate_key,
            "{key}"
        );
        let content_type = head.headers.content_type.as_deref().unwrap_or_default();
        match expected_content_type(&relative) {
            Some(expected) => assert_eq!(content_type, expected, "{key}"),
            None => assert!(!content_type.is_empty(), "{key} has no Content-Type"),
        }
        let body = runtime
            .block_on(async { store.get(&key).await?.bytes().await })
            .unwrap();
        assert_eq!(body, std::fs::read(&file.path).unwrap(), "{key}");
    }
    for directory in &site.directories {
        let key = if directory == "/" {
            prefix.clone()
        } else {
            format!("{prefix}/{}", directory.trim_end_matches('/'))
        };
        let head = runtime
            .block_on(store.head(&key))
            .unwrap_or_else(|err| panic!("directory object {key}: {err}"));
        assert_eq!(head.summary.size, 0, "{key}");
        assert_eq!(head.headers.metadata["dir-redirect"], "true", "{key}");
        assert_eq!(
            head.headers.metadata["surrogate-key"], surrogate_key,
            "{key}"
        );
    }
    let listed = runtime
        .block_on(async {
            use futures::TryStreamExt;
            store.list(&format!("{prefix}/")).try_concat().await
        })
        .unwrap();
    // Every file and every directory object but the root's (which sits beside the prefix).
    assert_eq!(
        listed.len(),
        site.files.len() + site.directories.len() - 1,
        "unexpected objects under {prefix}/"
    );
}
