//! A keeper server with a known signing key, users of chosen permissions, and a JSON client.

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Value};

use super::{client, TestBackend, TestDatabase, TestServer};
use keeper::auth::password::hash_password;
use keeper::domain::Permissions;
use keeper::domain::Username;

pub const SECRET_KEY: &str = "test-signing-key-test-signing-key-0123";
pub const PASSWORD: &str = "correct horse battery";

pub struct Api {
    pub server: TestServer,
    pub db: TestDatabase,
    http: reqwest::blocking::Client,
    /// The local store's directory, for servers started with storage.
    pub storage_dir: Option<tempfile::TempDir>,
}

/// A response: status and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub location: Option<String>,
}

impl Api {
    pub fn start(backend: TestBackend) -> Self {
        Self::start_with(backend, &[])
    }

    /// [`Api::start`] with more variables.
    pub fn start_with(backend: TestBackend, extra: &[(&str, &str)]) -> Self {
        Self::on_with(TestDatabase::new(backend), extra)
    }

    /// A server on an existing database (one restored from a backup, say).
    pub fn on(db: TestDatabase) -> Self {
        Self::on_with(db, &[])
    }

    fn on_with(db: TestDatabase, extra: &[(&str, &str)]) -> Self {
        let mut vars = vec![("KEEPER_SECRET_KEY", SECRET_KEY)];
        vars.extend_from_slice(extra);
        let config = db.config(&vars);
        let server = TestServer::start(&config);
        Self {
            server,
            db,
            http: client(),
            storage_dir: None,
        }
    }

    /// The same database behind a new server (new pool, no cached statements), for a server
    /// started with [`Api::start`].
    pub fn restarted(self) -> Self {
        let Self { server, db, .. } = self;
        drop(server);
        Self::on(db)
    }

    /// A server with an object store, as `keeper serve` runs it: the local store in a temporary
    /// directory unless `extra` configures another; `extra` adds variables.
    pub fn start_with_storage(backend: TestBackend, extra: &[(&str, &str)]) -> Self {
        let db = TestDatabase::new(backend);
        let storage_dir = tempfile::tempdir().expect("storage directory");
        let dir = storage_dir.path().display().to_string();
        let mut vars = vec![
            ("KEEPER_SECRET_KEY", SECRET_KEY),
            ("KEEPER_STORAGE_DIR", dir.as_str()),
        ];
        vars.extend_from_slice(extra);
        let config = db.config(&vars);
        let server = TestServer::start_with_storage(&config);
        Self {
            server,
            db,
            http: client(),
            storage_dir: Some(storage_dir),
        }
    }

    /// The local store of a server started with storage.
    pub fn local_store(&self) -> keeper::storage::local::LocalStore {
        keeper::storage::local::LocalStore::open(
            self.storage_dir
                .as_ref()
                .expect("a server with storage")
                .path(),
        )
        .expect("open the local store")
    }

    /// Sends `body` as JSON with `Accept` set to keeper's v2 media type (upload forms).
    pub fn post_v2(&self, path: &str, token: &str, body: Value) -> Reply {
        let response = self
            .http
            .post(self.url(path))
            .basic_auth(token, Some(""))
            .header("Accept", keeper::api::builds::V2_MEDIA_TYPE)
            .json(&body)
            .send()
            .unwrap();
        reply_of(response)
    }

    /// The server's absolute URL for `path` (what it writes in bodies).
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// Creates a user with `permissions` and returns a session token for it.
    pub fn user(&self, username: &str, permissions: Permissions) -> String {
        let hash = hash_password(&SecretString::from(PASSWORD)).unwrap();
        keeper::db::users::create_user(
            &mut self.db.connect(),
            &Username::parse(username).unwrap(),
            &hash,
            permissions,
        )
        .unwrap();
        self.login(username)
    }

    pub fn login(&self, username: &str) -> String {
        let reply = self
            .http
            .get(self.url("/token"))
            .basic_auth(username, Some(PASSWORD))
            .send()
            .unwrap();
        assert_eq!(reply.status(), 200);
        reply.json::<Value>().unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Sends `body` as JSON with the token as the Basic user name (as the original clients do).
    pub fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            self.url(path)
        };
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.basic_auth(token, Some(""));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        reply_of(request.send().unwrap())
    }

    pub fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None, None)
    }

    pub fn get_with(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None)
    }

    pub fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(&body))
    }

    pub fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(token), Some(&body))
    }

    pub fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None)
    }

    /// Creates product `slug` as `token`; panics unless 201.
    pub fn product(&self, token: &str, slug: &str) -> Value {
        let reply = self.post(
            "/products/",
            token,
            serde_json::json!({"slug": slug, "title": slug, "doc_repo": format!("https://github.com/example/{slug}")}),
        );
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.body
    }

    /// Registers and confirms a build with `refs`; returns the build JSON.
    pub fn uploaded_build(&self, token: &str, product: &str, refs: &[&str]) -> Value {
        let created = self.post(
            &format!("/products/{product}/builds/"),
            token,
            serde_json::json!({"git_refs": refs}),
        );
        assert_eq!(created.status, 201, "{created:?}");
        let confirmed = self.patch(
            created.body["self_url"].as_str().unwrap(),
            token,
            serde_json::json!({"uploaded": true}),
        );
        assert_eq!(confirmed.status, 200, "{confirmed:?}");
        confirmed.body
    }

    /// Rows of `sql` (which must select one text column named `line`).
    pub fn lines(&self, sql: &str) -> Vec<String> {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Line {
            #[diesel(sql_type = diesel::sql_types::Text)]
            line: String,
        }
        let mut conn = self.db.connect();
        let rows: Vec<Line> =
            keeper::with_connection!(&mut conn, c => diesel::sql_query(sql).load(c)).unwrap();
        rows.into_iter().map(|l| l.line).collect()
    }

    /// Runs `sql`, a statement that returns no rows.
    pub fn execute(&self, sql: &str) {
        use diesel::RunQueryDsl;
        let mut conn = self.db.connect();
        keeper::with_connection!(&mut conn, c => diesel::sql_query(sql).execute(c)).unwrap();
    }

    /// `kind state edition_id build_id` of every operation, oldest first.
    /// The operations that publish (rebuild, rename, delete, purge), as `kind state edition
    /// build` lines in order; the bucket's bookkeeping (seals and catalogue records) is left out.
    pub fn operations(&self) -> Vec<String> {
        self.lines(&format!(
            "SELECT kind || ' ' || state || ' ' || COALESCE(CAST(edition_id AS TEXT), '-') || ' ' ||
                    COALESCE(CAST(build_id AS TEXT), '-') AS line FROM operations \
             WHERE {PUBLISHING} ORDER BY id"
        ))
    }
}

/// The operations that publish: every kind but the bucket's bookkeeping (seals and records).
pub const PUBLISHING: &str = "kind NOT IN ('seal_build', 'write_record', 'dashboard')";

impl Api {
    /// Every product, build and edition the API lists, fetched whole, and each of the `also`
    /// paths, with `token` (or anonymously), the server's own base URL made neutral.
    pub fn listings(&self, token: Option<&str>, also: &[String]) -> Value {
        let get = |url: &str| {
            let reply = match token {
                Some(token) => self.get_with(url, token),
                None => self.get(url),
            };
            assert_eq!(reply.status, 200, "{url}: {reply:?}");
            reply.body
        };
        let each = |list: &Value, key: &str| -> Vec<Value> {
            list[key]
                .as_array()
                .unwrap_or_else(|| panic!("no {key} in {list}"))
                .iter()
                .map(|url| get(url.as_str().unwrap()))
                .collect()
        };
        let mut products = Vec::new();
        for product in each(&get("/products/"), "products") {
            let slug = product["slug"].as_str().unwrap().to_owned();
            let builds = each(&get(&format!("/products/{slug}/builds/")), "builds");
            let editions = each(&get(&format!("/products/{slug}/editions/")), "editions");
            products.push(json!({"product": product, "builds": builds, "editions": editions}));
        }
        let also: serde_json::Map<String, Value> =
            also.iter().map(|path| (path.clone(), get(path))).collect();
        let all = json!({"products": products, "also": also});
        // The products' `domain` fields name the server's host and port.
        let base = self.url("/");
        let base = base.trim_end_matches('/');
        let host = base.trim_start_matches("http://");
        let neutral = all.to_string().replace(base, "BASE").replace(host, "HOST");
        let mut listed: Value = serde_json::from_str(&neutral).unwrap();
        strip_operation_links(&mut listed);
        listed
    }

    /// Every operation, bookkeeping included, as `kind state` lines in order.
    pub fn all_operations(&self) -> Vec<String> {
        self.lines("SELECT kind || ' ' || state AS line FROM operations ORDER BY id")
    }
}

/// Removes every `operation_url`: the operations queue is the database's history, not part of
/// the catalogue that listings compare (a recovered catalogue has no operations).
pub fn strip_operation_links(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("operation_url");
            map.values_mut().for_each(strip_operation_links);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_operation_links),
        _ => {}
    }
}

/// Status, JSON body and `Location` of a response.
pub fn reply_of(response: reqwest::blocking::Response) -> Reply {
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        body,
        location,
    }
}
