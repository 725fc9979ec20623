//! Operations an operator can find (issue 16, item 5), on both backends: `GET /operations/`
//! filtered by state, kind and product, newest first, a page at a time; every operation names
//! its cause; editions and builds link their newest operation.

mod common;
mod ops_support;
mod storage_support;

use common::TestBackend;
use ops_support::Pipeline;
use serde_json::{json, Value};

const SITE: &[(&str, &str, &str)] = &[("index.html", "<h1>home</h1>", "text/html")];

fn list(p: &Pipeline, query: &str) -> Value {
    let reply = p.api.get_with(&format!("/operations/{query}"), &p.admin);
    assert_eq!(reply.status, 200, "{query}: {reply:?}");
    reply.body
}

fn kinds(page: &Value) -> Vec<String> {
    page["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn operations_can_be_found_by_state_kind_and_product(backend: TestBackend) {
    let p = Pipeline::start(backend, 1);
    p.api.product(&p.admin, "demo");
    p.api.product(&p.admin, "other");
    p.fault_only_the_main_edition("demo");
    p.fastly.fail_next(1, 403);
    let build = p.build("demo", &["main"], SITE);
    p.run_queue();

    // The failed rebuild, found by state; its cause is the request that confirmed the build.
    let failed = list(&p, "?state=FAILED");
    assert_eq!(kinds(&failed), ["rebuild_edition"], "{failed}");
    let rebuild = &failed["operations"][0];
    assert_eq!(rebuild["caused_by"], "user admin");
    assert_eq!(rebuild["product_url"], p.api.url("/products/demo"));
    assert!(rebuild["message"].as_str().unwrap().contains("403"));
    assert!(failed["next"].is_null());
    // Anonymous callers read operations, but not who caused them (users' names).
    let anonymous = p.api.get("/operations/?state=FAILED").body;
    assert_eq!(anonymous["operations"][0]["self_url"], rebuild["self_url"]);
    assert!(
        anonymous["operations"][0]["caused_by"].is_null(),
        "{anonymous}"
    );
    assert!(p.api.get(rebuild["self_url"].as_str().unwrap()).body["caused_by"].is_null());
    assert_eq!(
        p.api
            .get_with(rebuild["self_url"].as_str().unwrap(), &p.admin)
            .body["caused_by"],
        "user admin"
    );
    assert_eq!(p.api.get_with("/operations/", "not-a-token").status, 401);

    // Newest first, every one with a cause; the product filter leaves `other`'s out.
    let demo = list(&p, "?product=demo&limit=200");
    let ids: Vec<i64> = demo["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            assert!(op["caused_by"].is_string(), "{op}");
            op["self_url"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "{ids:?}");
    let all = list(&p, "?limit=200");
    assert!(all["operations"].as_array().unwrap().len() > ids.len());
    let renders = list(&p, "?kind=dashboard&product=other");
    assert_eq!(kinds(&renders), ["dashboard"]);

    // Pages: two at a time, following `next` to the end, each operation once.
    let mut seen = Vec::new();
    let mut url = p.api.url("/operations/?product=demo&limit=2");
    loop {
        let page = p.api.get_with(&url, &p.admin).body;
        let count = page["operations"].as_array().unwrap().len();
        assert!(count <= 2);
        seen.extend(page["operations"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => {
                assert!(next.contains("product=demo"), "{next}");
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), ids.len());

    // The failed rebuild, retried by an operator, runs; what its outcome queued names it.
    let retry_url = format!("{}/retry", rebuild["self_url"].as_str().unwrap());
    assert_eq!(p.api.post(&retry_url, &p.admin, json!({})).status, 200);
    p.drain();
    let rebuild_id = rebuild["self_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let caused: Vec<String> = list(&p, "?product=demo&limit=200")["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|op| op["caused_by"].as_str().map(str::to_owned))
        .collect();
    assert!(
        caused.contains(&format!("operation {rebuild_id} (rebuild_edition)")),
        "{caused:?}"
    );

    // The edition and the build link their newest operation.
    let main = p.api.get("/editions/1").body;
    assert_eq!(main["operation_url"], rebuild["self_url"], "{main}");
    let build_now = p.api.get(build["self_url"].as_str().unwrap()).body;
    assert_eq!(
        build_now["operation_url"], rebuild["self_url"],
        "{build_now}"
    );

    // Bad filters are refused, saying what would do.
    for (query, status) in [
        ("?state=BROKEN", 422),
        ("?kind=nothing", 422),
        ("?limit=0", 422),
        ("?limit=201", 422),
        ("?product=nope", 404),
        ("?before=x", 400),
    ] {
        let reply = p.api.get_with(&format!("/operations/{query}"), &p.admin);
        assert_eq!(reply.status, status, "{query}: {reply:?}");
        assert!(reply.body["message"].is_string(), "{query}: {reply:?}");
    }
}

on_both_backends!(operations_can_be_found_by_state_kind_and_product);
