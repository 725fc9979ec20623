//! End to end: a real Varnish (`varnishd` with the xkey vmod, Debian packages `varnish` and
//! `varnish-modules`, which `./scripts/test` installs) running `deploy/cdn/varnish.vcl` on a
//! loopback port in front of keeper's site server. A page is cached; a purge of its surrogate
//! key through `VarnishPurger` makes the next request a miss that returns the new content.

mod common;
mod storage_support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use common::varnish::{keeper_vcl, varnishd, Varnish};
use common::{client, TestBackend, TestDatabase, TestServer};
use keeper::api::sites::SiteServer;
use keeper::api::StorageServices;
use keeper::cdn::varnish::VarnishPurger;
use keeper::cdn::Purger;
use keeper::storage::local::LocalStore;
use keeper::storage::{Metadata, ObjectHeaders, ObjectStore};

fn page(body: &'static str, surrogate_key: &str) -> (Bytes, ObjectHeaders) {
    (
        Bytes::from_static(body.as_bytes()),
        ObjectHeaders {
            content_type: Some("text/html".into()),
            cache_control: Some("max-age=31536000".into()),
            metadata: Metadata::from([("surrogate-key".into(), surrogate_key.into())]),
            ..ObjectHeaders::default()
        },
    )
}

fn get(varnish: &Varnish, path: &str) -> reqwest::blocking::Response {
    client()
        .get(varnish.url(path))
        .header("Host", "demo.example.org")
        .send()
        .unwrap()
}

struct Fetched {
    cache: String,
    body: String,
}

fn fetch(varnish: &Varnish, path: &str) -> Fetched {
    let response = get(varnish, path);
    assert_eq!(response.status(), 200, "{path}");
    let cache = response
        .headers()
        .get("x-cache")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        !response.headers().contains_key("xkey"),
        "internal header leaked"
    );
    Fetched {
        cache,
        body: response.text().unwrap(),
    }
}

#[test]
fn varnish_caches_pages_until_purged_by_surrogate_key() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::open(dir.path().join("store")).unwrap());
    let put = |key: &str, (body, headers): (Bytes, ObjectHeaders)| {
        runtime.block_on(store.put(key, body, &headers)).unwrap();
    };
    put("demo/v/__main/index.html", page("version 1", "mainkey"));
    put("demo/v/v2/index.html", page("edition v2", "v2key"));

    let db = TestDatabase::new(TestBackend::Sqlite);
    let config = db.config(&[]);
    let prepared = keeper::startup::prepare(&config).unwrap();
    let state = prepared.app_state(&config, config.http.bind);
    let services = StorageServices {
        sites: SiteServer::new(
            store.clone(),
            Some("example.org".into()),
            std::sync::Arc::new(keeper::backends::OrgBackends::new(
                keeper::backends::OrgDefaults::without_keys(),
            )),
        ),
        uploads: None,
        forms: None,
    };
    let site = TestServer::serve(&config, move |max| {
        let services = services.clone();
        keeper::api::app::app_with(state.clone(), max, move |cfg| services.configure(cfg))
    });
    let varnish = Varnish::start(keeper_vcl(site.address.port()));

    let first = fetch(&varnish, "/");
    assert_eq!(
        (first.cache.as_str(), first.body.as_str()),
        ("MISS", "version 1")
    );
    let second = fetch(&varnish, "/");
    assert_eq!(
        (second.cache.as_str(), second.body.as_str()),
        ("HIT", "version 1")
    );
    fetch(&varnish, "/v/v2/");
    assert_eq!(fetch(&varnish, "/v/v2/").cache, "HIT");

    // New content behind the cache: still the cached page until purged.
    put("demo/v/__main/index.html", page("version 2", "mainkey"));
    let stale = fetch(&varnish, "/");
    assert_eq!(
        (stale.cache.as_str(), stale.body.as_str()),
        ("HIT", "version 1")
    );

    let purger = VarnishPurger::new(vec![varnish.url("/").parse().unwrap()]);
    runtime.block_on(purger.purge(&["mainkey".into()])).unwrap();

    let fresh = fetch(&varnish, "/");
    assert_eq!(
        (fresh.cache.as_str(), fresh.body.as_str()),
        ("MISS", "version 2")
    );
    assert_eq!(fetch(&varnish, "/").cache, "HIT");
    // Only pages carrying the purged key were evicted.
    assert_eq!(fetch(&varnish, "/v/v2/").cache, "HIT");

    // A PURGE without keys is refused, and an unknown key is not an error.
    let response = client()
        .request(
            reqwest::Method::from_bytes(b"PURGE").unwrap(),
            varnish.url("/"),
        )
        .send()
        .unwrap();
    assert_eq!(response.status(), 400);
    runtime
        .block_on(purger.purge(&["unknownkey".into()]))
        .unwrap();
    drop(varnish);
    drop(site);
}

/// `deploy/cdn/varnish-s3.vcl` in front of a public-read bucket on the in-process S3 server:
/// the URL rules (default edition, editions, builds, index.html, redirects), caching, and a purge
/// by the `x-amz-meta-surrogate-key` the objects carry.
#[test]
fn varnish_in_front_of_a_bucket_applies_the_url_rules() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(storage_support::S3TestServer::start_with(true));
    let store = runtime.block_on(server.store(1000));
    let put = |key: &str, (body, headers): (Bytes, ObjectHeaders)| {
        runtime.block_on(store.put(key, body, &headers)).unwrap();
    };
    put("demo/v/__main/index.html", page("main edition", "mainkey"));
    put("demo/v/__main/page.html", page("a page", "mainkey"));
    put("demo/v/v1/index.html", page("edition v1", "v1key"));
    put("demo/builds/3/index.html", page("build 3", "build3key"));
    // What `ops::dashboard` renders.
    put("demo/v/index.html", page("editions page", "productkey"));
    put("demo/v/switcher.json", page("[]", "productkey"));
    put("demo/builds/index.html", page("builds page", "productkey"));
    // s3s-fs cannot hold `guide` beside `guide/...` (its limit): the redirect object alone.
    put(
        "demo/v/__main/guide",
        (
            Bytes::new(),
            ObjectHeaders {
                metadata: Metadata::from([
                    ("dir-redirect".into(), "true".into()),
                    ("surrogate-key".into(), "mainkey".into()),
                ]),
                ..ObjectHeaders::default()
            },
        ),
    );

    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/cdn/varnish-s3.vcl"),
    )
    .unwrap();
    let endpoint = server.address.to_string();
    let vcl = source
        .replace(
            "\"docs-bucket\"",
            &format!("\"{}\"", storage_support::BUCKET),
        )
        .replace(
            ".port = \"9000\";",
            &format!(".port = \"{}\";", server.address.port()),
        )
        .replace("\"127.0.0.1:9000\"", &format!("\"{endpoint}\""))
        .replace(
            "    # EDIT: products whose default edition is `main`, one line each, e.g.",
            "    if (req.http.x-product == \"adopted\") { set req.http.x-default-edition = \"main\"; }",
        );
    // A product adopted from LTD Keeper 1.x: its default edition is `main`.
    put(
        "adopted/v/main/index.html",
        page("adopted main", "adoptedkey"),
    );
    put(
        "adopted/v/__main/index.html",
        page("not this one", "otherkey"),
    );
    let varnish = Varnish::start(vcl);

    let first = fetch(&varnish, "/");
    assert_eq!(
        (first.cache.as_str(), first.body.as_str()),
        ("MISS", "main edition")
    );
    assert_eq!(fetch(&varnish, "/").cache, "HIT");
    assert_eq!(fetch(&varnish, "/page.html").body, "a page");
    assert_eq!(fetch(&varnish, "/v/v1/").body, "edition v1");
    assert_eq!(fetch(&varnish, "/builds/3/").body, "build 3");
    assert_eq!(fetch(&varnish, "/v/").body, "editions page");
    assert_eq!(fetch(&varnish, "/v/index.html").body, "editions page");
    assert_eq!(fetch(&varnish, "/builds/").body, "builds page");
    let switcher = get(&varnish, "/v/switcher.json");
    assert_eq!(switcher.headers()["access-control-allow-origin"], "*");
    assert_eq!(switcher.text().unwrap(), "[]");
    assert!(!get(&varnish, "/v/")
        .headers()
        .contains_key("access-control-allow-origin"));
    for (path, location) in [
        ("/v/v1", "/v/v1/"),
        ("/builds/3", "/builds/3/"),
        ("/guide", "/guide/"),
        ("/v", "/v/"),
        ("/builds", "/builds/"),
    ] {
        let response = get(&varnish, path);
        assert_eq!(response.status(), 301, "{path}");
        assert_eq!(
            response.headers()["location"].to_str().unwrap(),
            location,
            "{path}"
        );
        assert!(!response.headers().contains_key("x-amz-meta-dir-redirect"));
    }
    for path in ["/missing.html", "/v/nope/", "/v/versions.json"] {
        assert_eq!(get(&varnish, path).status(), 404, "{path}");
    }
    let adopted = client()
        .get(varnish.url("/"))
        .header("Host", "adopted.example.org")
        .send()
        .unwrap();
    assert_eq!(adopted.text().unwrap(), "adopted main");

    put(
        "demo/v/__main/index.html",
        page("main edition, rebuilt", "mainkey"),
    );
    assert_eq!(fetch(&varnish, "/").body, "main edition");
    let purger = VarnishPurger::new(vec![varnish.url("/").parse().unwrap()]);
    runtime.block_on(purger.purge(&["mainkey".into()])).unwrap();
    let fresh = fetch(&varnish, "/");
    assert_eq!(
        (fresh.cache.as_str(), fresh.body.as_str()),
        ("MISS", "main edition, rebuilt")
    );
    assert_eq!(fetch(&varnish, "/v/v1/").cache, "HIT");
    drop(varnish);
    drop(server);
}

/// Both VCLs compile, the S3-fronting one included (its URL rules are the site server's, tested
/// above and in `storage_http`).
#[test]
fn both_vcls_compile() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["varnish.vcl", "varnish-s3.vcl"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/cdn")
            .join(file);
        let output = Command::new(varnishd())
            .arg("-C")
            .arg("-f")
            .arg(&path)
            .arg("-n")
            .arg(dir.path().join(file))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{file} does not compile:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
