//! Keeper's own HTTP endpoints over the local store: the POST-object upload endpoint (with the
//! `${filename}` rule that s3s-fs lacks) and the built-in site server, served by keeper's app.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use chrono::{Duration, Utc};
use common::{client, TestBackend, TestDatabase, TestServer};
use keeper::api::sites::SiteServer;
use keeper::api::uploads::{UploadEndpoint, UPLOAD_PATH};
use keeper::api::StorageServices;
use keeper::config::DatabaseUrl;
use keeper::storage::local::LocalStore;
use keeper::storage::presign::{
    presign_post, KeyRule, PostPolicyRequest, PresignedPost, SigningCredentials,
};
use keeper::storage::{Metadata, ObjectHeaders, ObjectStore};
use secrecy::SecretString;
use serde_json::Value;

const SECRET: &str = "test-signing-key-for-keeper-forms-0123456789";

struct Site {
    store: Arc<LocalStore>,
    server: TestServer,
    runtime: tokio::runtime::Runtime,
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

impl Site {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::open(dir.path().join("store")).unwrap());
        let db = TestDatabase::new(TestBackend::Sqlite);
        let config = db.config(&[]);
        let prepared = keeper::startup::prepare(&config).unwrap();
        // The forms these tests sign are for build 7 of demo, which must be open.
        db.seed_open_build("demo", "7");
        let state = prepared.app_state(&config, config.http.bind);
        let services = StorageServices {
            sites: SiteServer::new(
                store.clone(),
                Some("example.org".into()),
                std::sync::Arc::new(keeper::backends::OrgBackends::new(
                    keeper::backends::OrgDefaults::without_keys(),
                )),
            ),
            uploads: Some(UploadEndpoint {
                store: store.clone(),
                credentials: credentials(),
                max_bytes: 1024,
            }),
            forms: None,
        };
        let server = TestServer::serve(&config, move |max| {
            let services = services.clone();
            keeper::api::app::app_with(state.clone(), max, move |cfg| services.configure(cfg))
        });
        Self {
            store,
            server,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            _db: db,
            _dir: dir,
        }
    }

    fn put(&self, key: &str, body: &'static [u8], headers: ObjectHeaders) {
        self.runtime
            .block_on(self.store.put(key, Bytes::from_static(body), &headers))
            .unwrap();
    }

    fn exists(&self, key: &str) -> bool {
        self.runtime.block_on(self.store.head(key)).is_ok()
    }

    fn get(&self, path: &str) -> reqwest::blocking::Response {
        client().get(self.server.url(path)).send().unwrap()
    }

    fn get_host(&self, host: &str, path: &str) -> reqwest::blocking::Response {
        client()
            .get(self.server.url(path))
            .header("Host", host)
            .send()
            .unwrap()
    }
}

fn credentials() -> SigningCredentials {
    SigningCredentials::keeper(SecretString::from(SECRET))
}

fn page(surrogate_key: &str) -> ObjectHeaders {
    ObjectHeaders {
        content_type: Some("text/html".into()),
        cache_control: Some("max-age=31536000".into()),
        metadata: Metadata::from([("surrogate-key".into(), surrogate_key.into())]),
        ..ObjectHeaders::default()
    }
}

fn dir_redirect() -> ObjectHeaders {
    ObjectHeaders {
        metadata: Metadata::from([("dir-redirect".into(), "true".into())]),
        ..ObjectHeaders::default()
    }
}

fn header<'a>(response: &'a reqwest::blocking::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap())
        .unwrap_or_else(|| panic!("no {name} header in {:?}", response.headers()))
}

fn form(site: &Site, request: &PostPolicyRequest) -> PresignedPost {
    presign_post(
        &site.server.url(UPLOAD_PATH),
        None,
        request,
        &credentials(),
        Utc::now(),
    )
}

fn prefix_request(prefix: &str, max_bytes: u64) -> PostPolicyRequest {
    PostPolicyRequest {
        key: KeyRule::Prefix(prefix.into()),
        content_type: None,
        cache_control: Some("max-age=31536000".into()),
        metadata: Metadata::from([("surrogate-key".into(), "buildkey".into())]),
        acl: None,
        max_bytes,
        expires_at: Utc::now() + Duration::hours(1),
    }
}

fn post(
    form: &PresignedPost,
    content_type: Option<&str>,
    filename: &str,
    body: &'static [u8],
) -> reqwest::blocking::Response {
    let mut multipart = reqwest::blocking::multipart::Form::new();
    for (name, value) in &form.fields {
        multipart = multipart.text(name.clone(), value.clone());
    }
    if let Some(content_type) = content_type {
        multipart = multipart.text("Content-Type", content_type.to_owned());
    }
    multipart = multipart.part(
        "file",
        reqwest::blocking::multipart::Part::bytes(body).file_name(filename.to_owned()),
    );
    client()
        .post(&form.url)
        .multipart(multipart)
        .send()
        .unwrap()
}

fn assert_json_error(response: reqwest::blocking::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    assert!(header(&response, "content-type").starts_with("application/json"));
    let body: Value = response.json().unwrap();
    assert_eq!(body["status"], status);
    assert!(body["error"].is_string());
    body["message"].as_str().unwrap().to_owned()
}

#[test]
fn upload_substitutes_the_filename() {
    let site = Site::start();
    let form = form(&site, &prefix_request("demo/builds/7/_static/", 1024));
    let response = post(&form, Some("text/css"), "style.css", b"body {}");
    assert_eq!(response.status(), 204);
    let head = site
        .runtime
        .block_on(site.store.head("demo/builds/7/_static/style.css"))
        .unwrap();
    assert_eq!(head.headers.content_type.as_deref(), Some("text/css"));
    assert_eq!(head.headers.metadata["surrogate-key"], "buildkey");
    assert_eq!(
        head.headers.cache_control.as_deref(),
        Some("max-age=31536000")
    );

    // A client-side path in the file name keeps only its last part.
    let response = post(&form, None, "sub/dir/app.js", b"x");
    assert_eq!(response.status(), 204);
    assert!(site.exists("demo/builds/7/_static/app.js"));

    // The directory-redirect form: an exact key, an empty file.
    let dir_form = self::form(
        &site,
        &PostPolicyRequest {
            key: KeyRule::Exact("demo/builds/7/_static".into()),
            content_type: None,
            metadata: Metadata::from([
                ("surrogate-key".into(), "buildkey".into()),
                ("dir-redirect".into(), "true".into()),
            ]),
            ..prefix_request("unused/", 1024)
        },
    );
    let response = post(&dir_form, None, "", b"");
    assert_eq!(response.status(), 204);
    let head = site
        .runtime
        .block_on(site.store.head("demo/builds/7/_static"))
        .unwrap();
    assert_eq!(head.headers.metadata["dir-redirect"], "true");
}

#[test]
fn upload_refusals_answer_json_and_write_nothing() {
    let site = Site::start();
    let good = form(&site, &prefix_request("demo/builds/7/", 16));

    for filename in ["..", ".", ""] {
        let message = assert_json_error(post(&good, None, filename, b"x"), 400);
        assert!(!message.contains(SECRET));
    }
    let message = assert_json_error(post(&good, None, "big.bin", b"seventeen bytes!!"), 413);
    assert!(message.contains("16"), "{message}");

    let mut tampered = good.clone();
    tampered
        .fields
        .insert("key".into(), "other/${filename}".into());
    assert_json_error(post(&tampered, None, "x.txt", b"x"), 403);

    let mut forged = good.clone();
    forged
        .fields
        .insert("policy".into(), good.fields["policy"].replace('A', "B"));
    let message = assert_json_error(post(&forged, None, "x.txt", b"x"), 403);
    assert!(!message.contains(&good.fields["x-amz-signature"]));

    let mut expired_request = prefix_request("demo/builds/7/", 16);
    expired_request.expires_at = Utc::now() - Duration::seconds(1);
    assert_json_error(
        post(&form(&site, &expired_request), None, "x.txt", b"x"),
        403,
    );

    // Signed with another key.
    let other = presign_post(
        &site.server.url(UPLOAD_PATH),
        None,
        &prefix_request("demo/builds/7/", 16),
        &SigningCredentials::keeper(SecretString::from("another-key-another-key-another-key")),
        Utc::now(),
    );
    assert_json_error(post(&other, None, "x.txt", b"x"), 403);

    // Not a form at all; a form without a file.
    let response = client()
        .post(site.server.url(UPLOAD_PATH))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert_json_error(response, 400);
    let mut no_file = reqwest::blocking::multipart::Form::new();
    for (name, value) in &good.fields {
        no_file = no_file.text(name.clone(), value.clone());
    }
    let response = client().post(&good.url).multipart(no_file).send().unwrap();
    assert_json_error(response, 400);

    let objects: Vec<_> = site
        .runtime
        .block_on(futures::TryStreamExt::try_collect::<Vec<_>>(
            site.store.list("demo/"),
        ))
        .unwrap();
    assert!(objects.is_empty(), "written: {objects:?}");
    assert!(!site.exists("other/x.txt"));
}

fn publish_demo(site: &Site) {
    site.put(
        "demo/v/__main/index.html",
        b"<h1>main</h1>",
        page("mainkey"),
    );
    site.put("demo/v/__main/guide", b"", dir_redirect());
    site.put(
        "demo/v/__main/guide/index.html",
        b"<h1>guide</h1>",
        page("mainkey"),
    );
    site.put(
        "demo/v/__main/api/index.html",
        b"<h1>api</h1>",
        page("mainkey"),
    );
    site.put("demo/v/v1/index.html", b"<h1>v1</h1>", page("v1key"));
    site.put(
        "demo/builds/3/_static/style.css",
        b"body {}",
        ObjectHeaders::default(),
    );
    site.put(
        "other/v/__main/secret.html",
        b"other product",
        page("otherkey"),
    );
}

#[test]
fn site_server_path_layout() {
    let site = Site::start();
    publish_demo(&site);

    let response = site.get("/docs/demo/");
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "text/html; charset=utf-8"
    );
    assert_eq!(header(&response, "surrogate-key"), "mainkey");
    assert_eq!(header(&response, "cache-control"), "max-age=31536000");
    let etag = header(&response, "etag").to_owned();
    assert!(response.headers().contains_key("last-modified"));
    // Served from keeper's own origin: the page may fetch published content only, not the API.
    let docs = site.server.url("/docs/");
    assert_eq!(
        header(&response, "content-security-policy"),
        format!("connect-src {docs}; form-action {docs}; frame-ancestors 'self'")
    );
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert_eq!(response.text().unwrap(), "<h1>main</h1>");

    assert_eq!(
        site.get("/docs/demo/index.html").text().unwrap(),
        "<h1>main</h1>"
    );
    assert_eq!(site.get("/docs/demo/v/v1/").text().unwrap(), "<h1>v1</h1>");
    let css = site.get("/docs/demo/builds/3/_static/style.css");
    assert_eq!(css.status(), 200);
    assert_eq!(header(&css, "content-type"), "text/css; charset=utf-8");

    for (path, location) in [
        ("/docs/demo", "/docs/demo/"),
        ("/docs/demo/v/v1", "/docs/demo/v/v1/"),
        ("/docs/demo/guide", "/docs/demo/guide/"),
        // No redirect object, but an index page: redirected too.
        ("/docs/demo/api", "/docs/demo/api/"),
        ("/docs/demo/guide?q=1", "/docs/demo/guide/?q=1"),
    ] {
        let response = site.get(path);
        assert_eq!(response.status(), 301, "{path}");
        assert_eq!(header(&response, "location"), location, "{path}");
    }
    assert_eq!(
        site.get("/docs/demo/guide/").text().unwrap(),
        "<h1>guide</h1>"
    );

    // Conditional GET and HEAD.
    let response = client()
        .get(site.server.url("/docs/demo/"))
        .header("If-None-Match", &etag)
        .send()
        .unwrap();
    assert_eq!(response.status(), 304);
    assert_eq!(header(&response, "etag"), etag);
    let response = client()
        .head(site.server.url("/docs/demo/"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-length"), "13");
    assert_eq!(header(&response, "surrogate-key"), "mainkey");
    assert!(response.bytes().unwrap().is_empty());

    // A 404 page for readers, in HTML.
    let response = site.get("/docs/demo/missing.html");
    assert_eq!(response.status(), 404);
    assert!(header(&response, "content-type").starts_with("text/html"));
    assert!(response.text().unwrap().contains("Page not found"));

    let response = client()
        .post(site.server.url("/docs/demo/"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 405);
}

/// A GET with the request target exactly as given; answers the status and the body.
fn raw_get(site: &Site, target: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(site.server.address).unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        site.server.address
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn site_server_is_safe() {
    let site = Site::start();
    publish_demo(&site);
    for path in [
        "/docs",
        "/docs/demo/%2e%2e/%2e%2e/other/v/__main/secret.html",
        "/docs/demo/..%2f..%2fother/v/__main/secret.html",
        "/docs/demo/v/%2e%2e/%2e%2e/other/v/__main/secret.html",
        "/docs/demo/%5c..%5cother",
        "/docs/demo/a%00b",
        "/docs/%2e%2e/x",
        "/docs/demo/../other/v/__main/secret.html",
        "/docs/demo/v/../../other/v/__main/secret.html",
    ] {
        // Sent as written: an HTTP client library would resolve the dot segments itself.
        let (status, body) = raw_get(&site, path);
        assert!(status == 404 || status == 301, "{path}: {status}");
        assert!(!body.contains("other product"), "{path}");
        assert!(!body.contains("v/__main"), "{path} lists keys: {body}");
    }
    // The API is untouched by the site routes.
    let response = site.get("/");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    assert!(body["data"]["server_version"].is_string());
}

/// `/docs/` lists the products; `v/` and `builds/` serve the dashboards (`index.html` named
/// too); the version lists allow other origins; a missing page of a product answers the
/// site's own `404.html` (the edition's, else the default edition's), else keeper's 404 page
/// with links back; a browser at `/` is sent to `/docs/`, an API client gets JSON.
#[test]
fn site_pages_guide_readers() {
    let site = Site::start();
    publish_demo(&site);
    let html = |response: reqwest::blocking::Response| {
        assert!(header(&response, "content-type").starts_with("text/html"));
        response.text().unwrap()
    };
    let listing = site.get("/docs/");
    assert_eq!(listing.status(), 200);
    let listing = html(listing);
    assert!(listing.contains(">demo</a>"), "{listing}");
    assert!(listing.contains("0 editions"), "{listing}");
    assert!(listing.contains("nothing published yet"), "{listing}");
    let bare = client().get(site.server.url("/docs")).send().unwrap();
    assert_eq!(bare.status(), 301);
    assert_eq!(header(&bare, "location"), "/docs/");

    // Before the first render: keeper's 404, with the way back.
    let missing = site.get("/docs/demo/v/");
    assert_eq!(missing.status(), 404);
    let missing = html(missing);
    for link in [
        "href=\"/docs/demo/\"",
        "href=\"/docs/demo/v/\"",
        "href=\"/docs/\"",
    ] {
        assert!(missing.contains(link), "{link} in {missing}");
    }
    site.put(
        "demo/v/index.html",
        b"<h1>editions</h1>",
        page("productkey"),
    );
    site.put(
        "demo/builds/index.html",
        b"<h1>builds</h1>",
        page("productkey"),
    );
    site.put("demo/v/switcher.json", b"[]", ObjectHeaders::default());
    for path in ["/docs/demo/v/", "/docs/demo/v/index.html"] {
        assert_eq!(
            site.get(path).text().unwrap(),
            "<h1>editions</h1>",
            "{path}"
        );
    }
    assert_eq!(
        site.get("/docs/demo/builds/").text().unwrap(),
        "<h1>builds</h1>"
    );
    for (path, location) in [
        ("/docs/demo/v", "/docs/demo/v/"),
        ("/docs/demo/builds", "/docs/demo/builds/"),
    ] {
        let response = client().get(site.server.url(path)).send().unwrap();
        assert_eq!(response.status(), 301, "{path}");
        assert_eq!(header(&response, "location"), location, "{path}");
    }
    let switcher = site.get("/docs/demo/v/switcher.json");
    assert_eq!(header(&switcher, "access-control-allow-origin"), "*");
    assert_eq!(header(&switcher, "content-type"), "application/json");
    assert!(!site
        .get("/docs/demo/v/")
        .headers()
        .contains_key("access-control-allow-origin"));
    assert_eq!(site.get("/docs/demo/v/versions.json").status(), 404);

    // The site's own 404 page: the edition's, else the default edition's.
    site.put(
        "demo/v/v1/404.html",
        b"<h1>v1 has no such page</h1>",
        page("v1key"),
    );
    let own = site.get("/docs/demo/v/v1/no/such.html");
    assert_eq!(own.status(), 404);
    assert_eq!(own.text().unwrap(), "<h1>v1 has no such page</h1>");
    assert!(!html(site.get("/docs/demo/no-such.html")).contains("v1 has no such page"));
    site.put(
        "demo/v/__main/404.html",
        b"<h1>main has no such page</h1>",
        page("mainkey"),
    );
    for path in [
        "/docs/demo/no-such.html",
        "/docs/demo/v/v2/x.html",
        "/docs/demo/builds/9/x",
    ] {
        let response = site.get(path);
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            response.text().unwrap(),
            "<h1>main has no such page</h1>",
            "{path}"
        );
    }
    let elsewhere = site.get_host("demo.example.org", "/nope.html");
    assert_eq!(elsewhere.status(), 404);
    assert_eq!(elsewhere.text().unwrap(), "<h1>main has no such page</h1>");
    let unknown = html(site.get_host("plain.example.org", "/nope.html"));
    assert!(unknown.contains("href=\"/v/\""), "{unknown}");
    assert!(
        !unknown.contains("/docs/"),
        "a product host has no /docs/: {unknown}"
    );

    // Keeper's root: a browser goes to the product list, an API client reads JSON.
    let browser = client()
        .get(site.server.url("/"))
        .header(
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .send()
        .unwrap();
    assert_eq!(browser.status(), 303);
    assert!(header(&browser, "location").ends_with("/docs/"));
    for accept in [
        "application/json",
        "*/*",
        "application/json, text/html;q=0.5",
    ] {
        let api = client()
            .get(site.server.url("/"))
            .header("Accept", accept)
            .send()
            .unwrap();
        assert_eq!(api.status(), 200, "{accept}");
        assert_eq!(header(&api, "content-type"), "application/json", "{accept}");
    }
}

#[test]
fn site_server_answers_by_host() {
    let site = Site::start();
    publish_demo(&site);
    let response = site.get_host("demo.example.org", "/");
    assert_eq!(response.status(), 200);
    // The product's own origin: no policy about keeper's API is needed there.
    assert!(!response.headers().contains_key("content-security-policy"));
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert_eq!(response.text().unwrap(), "<h1>main</h1>");
    let response = site.get_host("demo.example.org:8080", "/v/v1/");
    assert_eq!(response.text().unwrap(), "<h1>v1</h1>");
    let response = site.get_host("demo.example.org", "/guide");
    assert_eq!(response.status(), 301);
    assert_eq!(header(&response, "location"), "/guide/");
    assert_eq!(site.get_host("nothing.example.org", "/").status(), 404);
    // Another host still reaches the API.
    let response = site.get_host("keeper.internal", "/");
    assert!(response.json::<Value>().unwrap()["data"].is_object());
}

/// `keeper serve` with no storage settings: the local store beside the SQLite file, the site
/// server under `/docs`, and the upload endpoint accepting forms signed with keeper's key.
#[test]
fn keeper_serve_wires_the_local_store_the_site_server_and_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("KEEPER_BIND", format!("127.0.0.1:{port}"))
        .env("KEEPER_SECRET_KEY", SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while client().get(format!("{base}/health/live")).send().is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("keeper serve exited: {status}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "keeper serve did not answer"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _guard = Kill(child);
    // The form is signed here, for a build registered straight in keeper serve's database.
    let url = DatabaseUrl::parse(&format!(
        "sqlite://{}",
        dir.path().join("keeper.sqlite3").display()
    ))
    .unwrap();
    let mut conn =
        keeper::db::DbConnection::establish(&url, std::time::Duration::from_secs(5)).unwrap();
    common::seed_open_build(&mut conn, "demo", "7");
    let signed = |prefix: &str| {
        presign_post(
            &format!("{base}{UPLOAD_PATH}"),
            None,
            &prefix_request(prefix, 1024),
            &credentials(),
            Utc::now(),
        )
    };

    // Only a build's prefix takes uploads: an edition is written by keeper's operations alone.
    let response = post(
        &signed("demo/v/__main/"),
        Some("text/html"),
        "index.html",
        b"x",
    );
    let message = assert_json_error(response, 403);
    assert!(message.contains("build's prefix"), "{message}");
    assert!(!dir.path().join("keeper-data/objects/demo/v").exists());

    let response = post(
        &signed("demo/builds/7/"),
        Some("text/html"),
        "index.html",
        b"<h1>served</h1>",
    );
    assert_eq!(response.status(), 204);
    assert!(dir
        .path()
        .join("keeper-data/objects/demo/builds/7/index.html%")
        .exists());
    let response = client()
        .get(format!("{base}/docs/demo/builds/7/"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "surrogate-key"), "buildkey");
    assert_eq!(response.text().unwrap(), "<h1>served</h1>");
}
