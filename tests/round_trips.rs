//! What the hot routes cost in database statements (each one a round trip on PostgreSQL): one
//! per read, prepared once and then taken from the connection's cache, as diesel's
//! instrumentation sees them on every connection of the in-process server. And automatic build
//! slugs found from the product's floor, not from every slug it ever used.

mod common;

use std::collections::BTreeSet;
use std::sync::Mutex;

use common::api::Api;
use common::TestBackend;
use diesel::connection::{set_default_instrumentation, Instrumentation, InstrumentationEvent};
use keeper::domain::Permissions;
use serde_json::json;

/// The SQL of every statement started on any connection of this test process, in order.
static STARTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// The SQL of every prepared statement put in a connection's cache. Diesel caches only
/// statements whose SQL cannot vary; any other is prepared again on every run, which on SQLite
/// costs more than running it.
static CACHED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn counting() -> Option<Box<dyn Instrumentation>> {
    Some(Box::new(|event: InstrumentationEvent<'_>| match event {
        InstrumentationEvent::StartQuery { query, .. } => {
            // The event shows `<sql> -- binds: [...]`; the SQL is what the cache is keyed by.
            let shown = query.to_string();
            let sql = shown
                .split(" -- binds: ")
                .next()
                .unwrap_or(&shown)
                .to_owned();
            STARTED.lock().unwrap().push(sql);
        }
        InstrumentationEvent::CacheQuery { sql, .. } => {
            CACHED.lock().unwrap().insert(sql.to_owned());
        }
        _ => {}
    }))
}

/// The statements the server runs to answer `GET path` (which must answer 200).
fn statements_for(api: &Api, path: &str) -> Vec<String> {
    let before = STARTED.lock().unwrap().len();
    let reply = api.get(path);
    assert_eq!(reply.status, 200, "{path}: {reply:?}");
    STARTED.lock().unwrap()[before..].to_vec()
}

fn path_of(url: &serde_json::Value) -> String {
    let url = url.as_str().unwrap();
    format!("/{}", url.splitn(4, '/').nth(3).unwrap())
}

fn each_read_route_is_one_statement(backend: TestBackend) {
    set_default_instrumentation(counting).unwrap();
    let api = Api::start(backend);
    let admin = api.user("admin", Permissions::ALL);
    api.product(&admin, "demo");
    let build = api.uploaded_build(&admin, "demo", &["main"]);
    let editions = api.get("/products/demo/editions/").body["editions"].clone();
    let edition = path_of(&editions[0]);
    let build = path_of(&build["self_url"]);
    // A new pool: no statement is prepared yet.
    let api = api.restarted();
    let routes = [
        "/products/".to_owned(),
        "/products/demo".to_owned(),
        "/products/demo/editions/".to_owned(),
        "/products/demo/builds/".to_owned(),
        edition,
        build,
    ];
    // The first answer prepares the route's statement (and the pool makes its connection, whose
    // set-up statements are not the requests').
    for path in &routes {
        statements_for(&api, path);
    }
    for path in &routes {
        let statements = statements_for(&api, path);
        assert_eq!(statements.len(), 1, "{path}: {statements:#?}");
        assert!(
            CACHED.lock().unwrap().contains(&statements[0]),
            "{path}: its statement is prepared again on every request: {}",
            statements[0]
        );
    }
}

/// Runs `sql` on the test database.
fn register(api: &Api, token: &str, slug: Option<&str>) -> String {
    let mut body = json!({"git_refs": ["main"]});
    if let Some(slug) = slug {
        body["slug"] = json!(slug);
    }
    let reply = api.post("/products/demo/builds/", token, body);
    assert_eq!(reply.status, 201, "{reply:?}");
    reply.body["slug"].as_str().unwrap().to_owned()
}

fn floor(api: &Api) -> String {
    api.lines(
        "SELECT COALESCE(CAST(build_slug_floor AS TEXT), 'NULL') AS line FROM products \
         WHERE slug = 'demo'",
    )
    .remove(0)
}

fn automatic_slugs_are_the_smallest_free_number_found_from_the_floor(backend: TestBackend) {
    let api = Api::start(backend);
    let admin = api.user("admin", Permissions::ALL);
    api.product(&admin, "demo");
    // Requested slugs leave gaps that automatic ones fill, smallest first.
    register(&api, &admin, Some("2"));
    register(&api, &admin, Some("04"));
    assert_eq!(floor(&api), "NULL", "requested slugs do not set the floor");
    assert_eq!(register(&api, &admin, None), "1");
    assert_eq!(floor(&api), "2");
    assert_eq!(register(&api, &admin, None), "3");
    assert_eq!(register(&api, &admin, None), "4", "\"04\" does not take 4");
    assert_eq!(floor(&api), "5");

    // A product from before the floor existed (or restored without it): found once from every
    // slug, then kept.
    api.execute("UPDATE products SET build_slug_floor = NULL");
    register(&api, &admin, Some("6"));
    assert_eq!(register(&api, &admin, None), "5");
    assert_eq!(register(&api, &admin, None), "7");
    assert_eq!(floor(&api), "8");

    // The search starts at the floor: numbers below it are not read again. (A floor above free
    // numbers never happens; set by hand, it shows that they are not looked at.)
    api.execute("UPDATE products SET build_slug_floor = 100");
    assert_eq!(register(&api, &admin, None), "100");
    assert_eq!(floor(&api), "101");
}

on_both_backends!(
    each_read_route_is_one_statement,
    automatic_slugs_are_the_smallest_free_number_found_from_the_floor
);
