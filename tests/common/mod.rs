//! Shared test harness: a fresh database per test on either backend, and keeper served in-process
//! on a random loopback port.
//!
//! PostgreSQL tests need `KEEPER_TEST_DATABASE_URL`, the URL of a server where the tests may
//! create and drop databases (`./scripts/test` starts a throwaway cluster and sets it).

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use diesel::{Connection, PgConnection, RunQueryDsl};
use keeper::config::{Config, DatabaseUrl};
use keeper::db::DbConnection;

pub const ADMIN_URL_VARIABLE: &str = "KEEPER_TEST_DATABASE_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

/// Declares `mod sqlite` and `mod postgres`, each running the listed `fn(TestBackend)` tests.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name($crate::common::TestBackend::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name($crate::common::TestBackend::Postgres) } )*
        }
    };
}

/// The admin URL of the test PostgreSQL server. Panics with instructions when it is not set: a
/// PostgreSQL test must never pass by skipping.
pub fn postgres_admin_url() -> String {
    std::env::var(ADMIN_URL_VARIABLE).unwrap_or_else(|_| {
        panic!(
            "{ADMIN_URL_VARIABLE} is not set: run the suite with ./scripts/test, which starts a \
             throwaway PostgreSQL, or point it at a server where tests may create databases"
        )
    })
}

/// A database that exists for one test: a SQLite file in a temporary directory, or a uniquely
/// named PostgreSQL database dropped at the end.
pub struct TestDatabase {
    pub backend: TestBackend,
    pub url: String,
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub fn new(backend: TestBackend) -> Self {
        match backend {
            TestBackend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}", dir.path().join("keeper.sqlite3").display());
                Self {
                    backend,
                    url,
                    postgres_name: None,
                    _dir: Some(dir),
                }
            }
            TestBackend::Postgres => {
                let admin_url = postgres_admin_url();
                let name = format!("keeper_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::establish(&admin_url).expect("connect as admin");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .expect("create the test database");
                let mut url = url::Url::parse(&admin_url).expect("admin URL");
                url.set_path(&format!("/{name}"));
                Self {
                    backend,
                    url: url.to_string(),
                    postgres_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// Settings for this database, binding a random loopback port; `extra` adds variables.
    pub fn config(&self, extra: &[(&str, &str)]) -> Config {
        let mut vars: HashMap<String, String> = HashMap::from([
            ("KEEPER_DATABASE_URL".to_owned(), self.url.clone()),
            ("KEEPER_BIND".to_owned(), "127.0.0.1:0".to_owned()),
            ("KEEPER_HTTP_WORKERS".to_owned(), "2".to_owned()),
        ]);
        for (name, value) in extra {
            vars.insert((*name).to_owned(), (*value).to_owned());
        }
        Config::from_lookup(|name| vars.get(name).cloned()).expect("test configuration")
    }

    pub fn connect(&self) -> DbConnection {
        let url = DatabaseUrl::parse(&self.url).expect("database URL");
        DbConnection::establish(&url, std::time::Duration::from_secs(5)).expect("connect")
    }

    /// Registers product `product` with an open build `build` in this database
    /// ([`seed_open_build`]). Returns the build's id.
    pub fn seed_open_build(&self, product: &str, build: &str) -> i64 {
        seed_open_build(&mut self.connect(), product, build)
    }

    /// The PostgreSQL database name (PostgreSQL tests only).
    pub fn postgres_name(&self) -> &str {
        self.postgres_name
            .as_deref()
            .expect("a PostgreSQL test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = &self.postgres_name {
            if let Ok(mut admin) = PgConnection::establish(&postgres_admin_url()) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin);
            }
        }
    }
}

/// Registers product `product` (default organization) with an open build `build` straight in
/// the database, for tests that sign keeper's upload forms themselves: keeper's endpoint
/// writes only into a registered build that is not yet confirmed. Returns the build's id.
pub fn seed_open_build(conn: &mut DbConnection, product: &str, build: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let key = || uuid::Uuid::new_v4().simple().to_string();
    let statements = [
        format!(
            "INSERT INTO products (organization_id, slug, title, surrogate_key)
             SELECT id, '{product}', '{product}', '{}' FROM organizations
             WHERE slug = 'default'
             AND NOT EXISTS (SELECT 1 FROM products WHERE slug = '{product}')",
            key()
        ),
        format!(
            "INSERT INTO builds (product_id, slug, surrogate_key)
             SELECT id, '{build}', '{}' FROM products WHERE slug = '{product}'",
            key()
        ),
    ];
    for sql in statements {
        keeper::with_connection!(conn, c => diesel::sql_query(&sql).execute(c)).expect(&sql);
    }
    let found: Id = keeper::with_connection!(conn, c => diesel::sql_query(format!(
        "SELECT b.id AS id FROM builds b JOIN products p ON p.id = b.product_id
         WHERE p.slug = '{product}' AND b.slug = '{build}'"
    ))
    .get_result(c))
    .expect("the seeded build");
    found.id
}

/// Keeper serving HTTP in-process on its own actix system thread.
pub struct TestServer {
    pub address: SocketAddr,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Runs start-up against `config` and serves `keeper::api::app::app` on a random port.
    pub fn start(config: &Config) -> Self {
        let prepared = keeper::startup::prepare(config).expect("start-up");
        let (listener, address) = keeper::startup::bind(&config.http).expect("bind");
        let state = prepared.app_state(config, address);
        Self::serve_on(listener, config, move |max| {
            keeper::api::app::app(state.clone(), max)
        })
    }

    /// Like [`TestServer::start`], with the configured object store wired as `keeper serve`
    /// wires it: the site server, keeper's upload endpoint (local store) and the upload forms
    /// of new builds.
    pub fn start_with_storage(config: &Config) -> Self {
        let config = config.clone();
        let (listener, address) = keeper::startup::bind(&config.http).expect("bind");
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let prepared = keeper::startup::prepare(&config).expect("start-up");
                let storage = keeper::startup::storage_services(&config, &prepared.secret_key)
                    .await
                    .expect("object store");
                keeper::startup::load_site_maps(&prepared.pool, &storage.sites)
                    .await
                    .expect("the site server's maps");
                let state = prepared.app_state(&config, address);
                let server =
                    keeper::startup::start_http_with(state, &config.http, listener, Some(storage))
                        .expect("serve");
                sender.send(server.handle()).expect("report the handle");
                let _ = server.await;
            })
        });
        let handle = receiver.recv().expect("server started");
        Self {
            address,
            handle,
            thread: Some(thread),
        }
    }

    /// Binds a random port and serves an app built by `factory` on it.
    pub fn serve<F, A, B>(config: &Config, factory: F) -> Self
    where
        F: Fn(usize) -> actix_web::App<A> + Send + Clone + 'static,
        A: actix_web::dev::ServiceFactory<
                actix_web::dev::ServiceRequest,
                Config = (),
                Response = actix_web::dev::ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        B: actix_web::body::MessageBody + 'static,
    {
        let (listener, _) = keeper::startup::bind(&config.http).expect("bind");
        Self::serve_on(listener, config, factory)
    }

    /// Serves an app built by `factory` on `listener` (tests use it to add routes to keeper's app).
    pub fn serve_on<F, A, B>(listener: std::net::TcpListener, config: &Config, factory: F) -> Self
    where
        F: Fn(usize) -> actix_web::App<A> + Send + Clone + 'static,
        A: actix_web::dev::ServiceFactory<
                actix_web::dev::ServiceRequest,
                Config = (),
                Response = actix_web::dev::ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        B: actix_web::body::MessageBody + 'static,
    {
        let max_body_bytes = config.http.max_body_bytes;
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = actix_web::HttpServer::new(move || factory(max_body_bytes))
                    .workers(2)
                    .disable_signals()
                    .listen(listener)
                    .expect("listen");
                let address = server.addrs()[0];
                let server = server.run();
                sender
                    .send((address, server.handle()))
                    .expect("report address");
                let _ = server.await;
            })
        });
        let (address, handle) = receiver.recv().expect("server started");
        Self {
            address,
            handle,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stopping needs an async context; a small runtime suffices.
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() {
            runtime.block_on(handle.stop(false));
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A blocking HTTP client that does not follow redirects.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

/// Session keys for tests that build `AppState` by hand.
pub fn test_sessions() -> keeper::auth::session::SessionKeys {
    keeper::auth::session::SessionKeys::new(&secrecy::SecretString::from("t".repeat(32)), 3600)
}
pub mod api;
pub mod chrome;
pub mod garage;
pub mod process;
pub mod varnish;
