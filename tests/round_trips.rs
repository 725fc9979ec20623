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

/// The lines `explain` (`EXPLAIN ...` of a statement) answers on the test database.
fn plan(api: &Api, explain: &str) -> Vec<String> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct PgLine {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    #[derive(diesel::QueryableByName)]
    struct SqliteLine {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    match api.db.connect() {
        keeper::db::DbConnection::Postgres(mut c) => {
            let rows: Vec<PgLine> = diesel::sql_query(explain).load(&mut c).unwrap();
            rows.into_iter().map(|row| row.line).collect()
        }
        keeper::db::DbConnection::Sqlite(mut c) => {
            let rows: Vec<SqliteLine> = diesel::sql_query(explain).load(&mut c).unwrap();
            rows.into_iter().map(|row| row.detail).collect()
        }
    }
}

/// An edition's answer names its newest operation and whether a move of it is unfinished; with
/// 5,000 finished rebuilds behind it, its statement still reads only the ends of two indexes,
/// not the edition's whole history (which, on an index of `edition_id` alone, made it 9 times
/// slower on PostgreSQL).
fn an_editions_answer_does_not_read_its_history(backend: TestBackend) {
    set_default_instrumentation(counting).unwrap();
    let api = Api::start(backend);
    let admin = api.user("admin", Permissions::ALL);
    api.product(&admin, "demo");
    api.uploaded_build(&admin, "demo", &["main"]);
    let editions = api.get("/products/demo/editions/").body["editions"].clone();
    let edition = path_of(&editions[0]);
    let id: i64 = edition.rsplit('/').next().unwrap().parse().unwrap();
    let numbers = |count: u32| match backend {
        TestBackend::Postgres => format!("SELECT i FROM generate_series(1, {count}) AS i"),
        TestBackend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
             SELECT i FROM n"
        ),
    };
    api.execute(&format!(
        "INSERT INTO operations (kind, state, product_id, edition_id) \
         SELECT 'rebuild_edition', 'OK', product_id, id FROM editions, ({}) AS numbers \
         WHERE editions.id = {id}",
        numbers(5000)
    ));
    // And newer operations of other things, as a deployment has: the edition's newest
    // operation is not the table's.
    api.execute(&format!(
        "INSERT INTO operations (kind, state, product_id) \
         SELECT 'dashboard', 'OK', id FROM products, ({}) AS numbers",
        numbers(20000)
    ));
    api.execute("ANALYZE");
    statements_for(&api, &edition);
    let statements = statements_for(&api, &edition);
    assert_eq!(statements.len(), 1, "{statements:#?}");
    let sql = &statements[0];
    match backend {
        TestBackend::Postgres => {
            // Every bound value is the edition's id or a LIMIT of 1.
            let mut literal = sql.clone();
            for n in (1..=9).rev() {
                let value = if sql.contains(&format!("= ${n}")) {
                    id
                } else {
                    1
                };
                literal = literal.replace(&format!("${n}"), &value.to_string());
            }
            let lines = plan(&api, &format!("EXPLAIN (ANALYZE, BUFFERS) {literal}"));
            // Buffers are counted per node, each including its children; the planner's own
            // come after the plan.
            let pages = lines
                .iter()
                .take_while(|line| !line.starts_with("Planning"))
                .filter_map(|line| line.split("shared hit=").nth(1))
                .filter_map(|hit| hit.split_whitespace().next()?.parse::<u64>().ok())
                .max()
                .unwrap_or(0);
            assert!(pages < 50, "{pages} pages read:\n{}", lines.join("\n"));
        }
        TestBackend::Sqlite => {
            let lines = plan(&api, &format!("EXPLAIN QUERY PLAN {sql}"));
            let plan = lines.join("\n");
            assert!(plan.contains("operations_unfinished_move_idx"), "{plan}");
            assert!(plan.contains("operations_edition_id_idx"), "{plan}");
            assert!(!plan.contains("SCAN operations"), "{plan}");
        }
    }
}

on_both_backends!(
    each_read_route_is_one_statement,
    automatic_slugs_are_the_smallest_free_number_found_from_the_floor,
    an_editions_answer_does_not_read_its_history
);
