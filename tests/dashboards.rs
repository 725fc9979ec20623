//! Dashboards and version lists (issue 15, items 1 and 2), on both backends: what the
//! `dashboard` operation renders into the bucket after real API changes, in which order,
//! escaped; that changes coalesce; one purge of the product's key per render; the routes.

mod common;
mod ops_support;
mod storage_support;

use common::TestBackend;
use ops_support::Pipeline;
use serde_json::{json, Value};

const SITE: &[(&str, &str, &str)] = &[("index.html", "<h1>home</h1>", "text/html")];
const HOSTILE: &str = "<img src=x onerror=alert(1)>\"'&";

fn text(p: &Pipeline, key: &str) -> String {
    String::from_utf8(p.object(key).1.to_vec()).unwrap()
}

fn json_object(p: &Pipeline, key: &str) -> Value {
    serde_json::from_slice(&p.object(key).1).unwrap()
}

/// The `id="edition-<slug>"` anchors of the editions page, in page order.
fn edition_order(html: &str) -> Vec<String> {
    html.split("<li id=\"edition-")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect()
}

fn edition_url(p: &Pipeline, slug: &str) -> String {
    let list = p.api.get("/products/demo/editions/").body["editions"].clone();
    list.as_array()
        .unwrap()
        .iter()
        .map(|url| url.as_str().unwrap().to_owned())
        .find(|url| p.api.get(url).body["slug"] == slug)
        .unwrap_or_else(|| panic!("no edition {slug}"))
}

fn dashboard_states(p: &Pipeline) -> Vec<String> {
    p.api
        .lines("SELECT state AS line FROM operations WHERE kind = 'dashboard' ORDER BY id")
}

fn product_key(p: &Pipeline) -> String {
    p.api
        .lines("SELECT surrogate_key AS line FROM products WHERE slug = 'demo'")
        .remove(0)
}

/// Editions: the default first, releases by version (numerically), then branches by update;
/// builds newest first; every user-given string escaped; the JSON lists in the themes' formats;
/// each object tagged with the product's key; and every later change shows up.
fn dashboards_list_editions_in_order_and_escape_user_input(backend: TestBackend) {
    let p = Pipeline::start(backend, 3);
    p.api.product(&p.admin, "demo");
    let retitled = p.api.patch(
        "/products/demo",
        &p.admin,
        json!({"title": format!("Demo {HOSTILE}")}),
    );
    assert_eq!(retitled.status, 200);
    for refs in [
        &["main"][..],
        &["v1.9"],
        &["tickets/DM-1"],
        &["v1.10"],
        &["v2.0"],
    ] {
        p.build("demo", refs, SITE);
    }
    let ticket = edition_url(&p, "DM-1");
    let hostile_title = p.api.patch(&ticket, &p.admin, json!({"title": HOSTILE}));
    assert_eq!(hostile_title.status, 200);
    // A branch edition built last: it still comes after every release.
    p.build("demo", &["u/alice/fix"], SITE);
    p.drain();

    let page = text(&p, "demo/v/index.html");
    assert_eq!(
        edition_order(&page),
        ["__main", "v2.0", "v1.10", "v1.9", "u-alice-fix", "DM-1"]
    );
    assert!(!page.contains("<img"), "{page}");
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;"));
    assert!(page.contains("<a class=\"title\" href=\"./v2.0/\">v2.0</a>"));
    assert!(page.contains("<span class=\"tag\">default</span>"));
    let (head, _) = p.object("demo/v/index.html");
    assert_eq!(
        head.headers.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    let key = product_key(&p);
    assert_eq!(head.headers.metadata["surrogate-key"], key);

    let builds = text(&p, "demo/builds/index.html");
    let order: Vec<&str> = builds
        .split("<li id=\"build-")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert_eq!(order, ["6", "5", "4", "3", "2", "1"]);
    assert!(builds.contains("<code>u/alice/fix</code>"));
    assert!(!builds.contains("<img"));

    let switcher = json_object(&p, "demo/v/switcher.json");
    assert_eq!(
        switcher[0],
        json!({"name": "Latest", "version": "__main", "url": "http://keeper.test/docs/demo/",
               "preferred": true})
    );
    assert_eq!(
        switcher[1],
        json!({"name": "v2.0", "version": "v2.0", "url": "http://keeper.test/docs/demo/v/v2.0/"})
    );
    assert_eq!(switcher.as_array().unwrap().len(), 6);
    assert_eq!(
        switcher[5]["name"], HOSTILE,
        "JSON carries the title as it is"
    );
    let mike = json_object(&p, "demo/v/versions.json");
    assert_eq!(
        mike[0],
        json!({"version": "__main", "title": "Latest", "aliases": ["latest"]})
    );
    assert_eq!(
        mike[3],
        json!({"version": "v1.9", "title": "v1.9", "aliases": []})
    );
    assert_eq!(
        p.object("demo/v/switcher.json")
            .0
            .headers
            .content_type
            .as_deref(),
        Some("application/json")
    );

    // A deprecated build, a deleted edition and a renamed one: the next render shows each.
    let deprecated = p.api.delete(&p.api.url("/builds/2"), &p.admin);
    assert_eq!(deprecated.status, 200, "{deprecated:?}");
    assert_eq!(
        p.api.delete(&edition_url(&p, "v1.10"), &p.admin).status,
        200
    );
    let renamed = p.api.patch(
        &edition_url(&p, "u-alice-fix"),
        &p.admin,
        json!({"slug": "alice"}),
    );
    assert_eq!(renamed.status, 200, "{renamed:?}");
    p.drain();
    let page = text(&p, "demo/v/index.html");
    assert_eq!(
        edition_order(&page),
        ["__main", "v2.0", "v1.9", "alice", "DM-1"]
    );
    let builds = text(&p, "demo/builds/index.html");
    assert!(
        builds.contains("<span class=\"title\">2</span><span class=\"tag warn\">deprecated</span>")
    );
    let versions: Vec<String> = json_object(&p, "demo/v/switcher.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["version"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(versions, ["__main", "v2.0", "v1.9", "alice", "DM-1"]);

    // One purge per render, of the product's key alone; rebuilds purge it with the edition's.
    let renders = dashboard_states(&p);
    assert!(renders.iter().all(|state| state == "OK"), "{renders:?}");
    let alone: Vec<_> = p
        .fastly
        .purges_of(&key)
        .into_iter()
        .filter(|purge| purge.keys == [key.clone()])
        .collect();
    assert_eq!(alone.len(), renders.len());
}

/// Ten changes while nothing runs queue one render; ten more while a render is working queue
/// one more: at most two renders, the last showing the newest state.
fn changes_coalesce_into_at_most_two_renders(backend: TestBackend) {
    let p = Pipeline::start(backend, 3);
    p.api.product(&p.admin, "demo");
    p.drain();
    let renders_before = dashboard_states(&p).len();
    let main = edition_url(&p, "__main");
    for n in 0..10 {
        let reply = p
            .api
            .patch(&main, &p.admin, json!({"title": format!("title {n}")}));
        assert_eq!(reply.status, 200);
    }
    assert_eq!(dashboard_states(&p)[renders_before..], ["READY"]);

    // A worker claims the render (and whatever is older) and stalls: its lease runs out.
    let mut conn = p.api.db.connect();
    loop {
        let claimed = keeper::ops::queue::claim(
            &mut conn,
            "stalled",
            std::time::Duration::from_millis(1),
            keeper::ops::queue::Lane::Any,
        )
        .unwrap()
        .expect("the render is claimable");
        if claimed.kind == keeper::domain::OperationKind::Dashboard {
            break;
        }
    }
    for n in 10..20 {
        let reply = p
            .api
            .patch(&main, &p.admin, json!({"title": format!("title {n}")}));
        assert_eq!(reply.status, 200);
    }
    assert_eq!(dashboard_states(&p)[renders_before..], ["WORKING", "READY"]);
    p.drain();
    assert_eq!(dashboard_states(&p)[renders_before..], ["OK", "OK"]);
    let page = text(&p, "demo/v/index.html");
    assert!(page.contains(">title 19</"), "{page}");
}

/// A render that failed (its purge refused) stays FAILED until the next request, which
/// supersedes it and renders everything it would have.
fn a_failed_render_is_superseded_by_the_next(backend: TestBackend) {
    let p = Pipeline::start(backend, 1);
    p.api.product(&p.admin, "demo");
    p.drain();
    let before = dashboard_states(&p).len();
    p.fastly.fault_only(&product_key(&p));
    p.fastly.fail_next(1, 403);
    let queued = p.api.post("/products/demo/dashboard", &p.admin, json!({}));
    assert_eq!(queued.status, 202);
    assert_eq!(p.run_queue().failed, 1);
    assert_eq!(dashboard_states(&p)[before..], ["FAILED"]);
    let again = p.api.post("/products/demo/dashboard", &p.admin, json!({}));
    assert_eq!(again.status, 202);
    p.drain();
    assert_eq!(dashboard_states(&p)[before..], ["SUPERSEDED", "OK"]);
}

/// `POST /products/<slug>/dashboard` and `POST /dashboards`: 202 with the queued renders
/// (a queued one is answered again, not doubled); the files appear once the queue has run.
fn the_routes_queue_renders(backend: TestBackend) {
    let p = Pipeline::start(backend, 3);
    p.api.product(&p.admin, "demo");
    p.api.product(&p.admin, "other");
    p.drain();
    let before = dashboard_states(&p).len();

    let one = p.api.post("/products/demo/dashboard", &p.admin, json!({}));
    assert_eq!(one.status, 202, "{one:?}");
    assert_eq!(one.body["kind"], "dashboard");
    assert_eq!(one.body["state"], "READY");
    assert_eq!(one.location.as_deref(), one.body["self_url"].as_str());
    let again = p.api.post("/products/demo/dashboard", &p.admin, json!({}));
    assert_eq!(again.body["self_url"], one.body["self_url"]);

    let all = p.api.post("/dashboards", &p.admin, json!({}));
    assert_eq!(all.status, 202, "{all:?}");
    let operations = all.body["operations"].as_array().unwrap();
    assert_eq!(operations.len(), 2);
    assert!(operations
        .iter()
        .any(|op| op["self_url"] == one.body["self_url"]));
    assert_eq!(dashboard_states(&p).len(), before + 2);

    assert_eq!(
        p.api
            .post("/products/nope/dashboard", &p.admin, json!({}))
            .status,
        404
    );
    p.drain();
    for product in ["demo", "other"] {
        for file in [
            "v/index.html",
            "v/switcher.json",
            "v/versions.json",
            "builds/index.html",
        ] {
            p.object(&format!("{product}/{file}"));
        }
    }
    let done = p.api.get(one.body["self_url"].as_str().unwrap());
    assert_eq!(done.body["state"], "OK");
}

/// Names the dashboards use cannot be edition or build slugs.
fn dashboard_names_are_reserved(backend: TestBackend) {
    let p = Pipeline::start(backend, 3);
    p.api.product(&p.admin, "demo");
    for slug in ["index.html", "switcher.json", "versions.json"] {
        let reply = p.api.post(
            "/products/demo/editions/",
            &p.admin,
            json!({"slug": slug, "title": "t", "mode": "manual"}),
        );
        assert_eq!(reply.status, 400, "{slug}: {reply:?}");
        assert!(reply.body["message"].as_str().unwrap().contains("reserved"));
    }
    let build = p.api.post(
        "/products/demo/builds/",
        &p.admin,
        json!({"git_refs": ["main"], "slug": "index.html"}),
    );
    assert_eq!(build.status, 400, "{build:?}");
    // A branch of that name gets a build but no edition of its own.
    p.build("demo", &["switcher.json"], SITE);
    let editions = p.api.get("/products/demo/editions/").body["editions"].clone();
    assert_eq!(editions.as_array().unwrap().len(), 1);
}

on_both_backends!(
    dashboards_list_editions_in_order_and_escape_user_input,
    changes_coalesce_into_at_most_two_renders,
    a_failed_render_is_superseded_by_the_next,
    the_routes_queue_renders,
    dashboard_names_are_reserved,
);
