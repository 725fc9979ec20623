//! Edition history and one-call rollback (issue 17, item 1), on both backends: every change of
//! the build an edition shows is recorded when its rebuild is OK (before, after, why, who, the
//! operation), deletions too; `POST /editions/<id>/rollback` goes back one build at a time and
//! refuses builds it cannot show.

mod common;
mod ops_support;
mod storage_support;

use common::TestBackend;
use ops_support::Pipeline;
use reqwest::Method;
use serde_json::{json, Value};

fn site(text: &str) -> Vec<(&'static str, String, &'static str)> {
    vec![("index.html", format!("<h1>{text}</h1>"), "text/html")]
}

/// A confirmed build of `product` on `refs` whose page says `text`; the queue is run.
fn built(p: &Pipeline, product: &str, refs: &[&str], text: &str) -> String {
    let files = site(text);
    let files: Vec<(&str, &str, &str)> = files
        .iter()
        .map(|(path, body, kind)| (*path, body.as_str(), *kind))
        .collect();
    let build = p.build(product, refs, &files);
    p.drain();
    build["self_url"].as_str().unwrap().to_owned()
}

fn history(p: &Pipeline, edition: &str, token: Option<&str>) -> Vec<Value> {
    let path = format!("/editions/{edition}/history?limit=200");
    let reply = match token {
        Some(token) => p.api.get_with(&path, token),
        None => p.api.get(&path),
    };
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body["next"].is_null());
    reply.body["history"].as_array().unwrap().clone()
}

/// `(reason, build_before_url, build_url)` of each entry, newest first.
fn changes(entries: &[Value]) -> Vec<(String, Value, Value)> {
    entries
        .iter()
        .map(|entry| {
            (
                entry["reason"].as_str().unwrap().to_owned(),
                entry["build_before_url"].clone(),
                entry["build_url"].clone(),
            )
        })
        .collect()
}

fn shown_page(p: &Pipeline, product: &str, edition: &str) -> String {
    String::from_utf8(
        p.object(&format!("{product}/v/{edition}/index.html"))
            .1
            .to_vec(),
    )
    .unwrap()
}

fn rollback(p: &Pipeline, edition: &str, body: Option<Value>) -> common::api::Reply {
    p.api.call(
        Method::POST,
        &format!("/editions/{edition}/rollback"),
        Some(&p.admin),
        body.as_ref(),
    )
}

fn edition_id(p: &Pipeline, product: &str, slug: &str) -> String {
    p.api.lines(&format!(
        "SELECT CAST(e.id AS TEXT) AS line FROM editions e JOIN products p ON p.id = e.product_id \
         WHERE p.slug = '{product}' AND e.slug = '{slug}'"
    ))[0]
        .clone()
}

fn history_records_every_change_and_rollback_goes_back(backend: TestBackend) {
    let p = Pipeline::start(backend, 1);
    p.api.product(&p.admin, "demo");
    let b1 = built(&p, "demo", &["main"], "one");
    let b2 = built(&p, "demo", &["main"], "two");
    let b3 = built(&p, "demo", &["main"], "three");
    let main = edition_id(&p, "demo", "__main");

    // Three tracking changes, newest first, each with its operation and cause.
    let entries = history(&p, &main, Some(&p.admin));
    assert_eq!(
        changes(&entries),
        [
            ("tracking".into(), json!(b2), json!(b3)),
            ("tracking".into(), json!(b1), json!(b2)),
            ("tracking".into(), Value::Null, json!(b1)),
        ]
    );
    for entry in &entries {
        assert_eq!(entry["event"], "shown");
        assert_eq!(entry["edition_slug"], "__main");
        assert_eq!(entry["caused_by"], "user admin");
        let operation = p
            .api
            .get_with(entry["operation_url"].as_str().unwrap(), &p.admin);
        assert_eq!(operation.body["kind"], "rebuild_edition", "{operation:?}");
        assert_eq!(operation.body["state"], "OK");
        assert_eq!(operation.body["build_url"], entry["build_url"]);
    }
    // Anonymous readers see the history without who caused it.
    assert!(history(&p, &main, None)
        .iter()
        .all(|entry| entry["caused_by"].is_null()));

    // Rollback with an empty body: back to b2, recorded as a rollback, the objects too.
    let reply = rollback(&p, &main, None);
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(reply.body["pending_rebuild"], true, "{reply:?}");
    p.drain();
    assert_eq!(
        p.api.get(&format!("/editions/{main}")).body["build_url"],
        b2
    );
    assert!(shown_page(&p, "demo", "__main").contains("two"));
    let entries = history(&p, &main, Some(&p.admin));
    assert_eq!(
        changes(&entries[..1]),
        [("rollback".into(), json!(b3), json!(b2))]
    );
    // A second one goes one step further back (not back to b3), with `{}` as the body.
    assert_eq!(rollback(&p, &main, Some(json!({}))).status, 202);
    p.drain();
    assert_eq!(
        p.api.get(&format!("/editions/{main}")).body["build_url"],
        b1
    );
    assert!(shown_page(&p, "demo", "__main").contains("one"));
    // Nothing older is left: 409, saying what to do.
    let reply = rollback(&p, &main, None);
    assert_eq!(reply.status, 409, "{reply:?}");
    assert!(reply.body["message"]
        .as_str()
        .unwrap()
        .contains("build_url"));
    // A named build: forward to b3 again.
    assert_eq!(
        rollback(&p, &main, Some(json!({"build_url": b3}))).status,
        202
    );
    p.drain();
    assert!(shown_page(&p, "demo", "__main").contains("three"));

    // Refusals, each a 4xx in the error shape, and nothing queued for any of them.
    let deprecated = p.api.delete(&b1, &p.admin);
    assert_eq!(deprecated.status, 200, "{deprecated:?}");
    let unconfirmed = p.api.post(
        "/products/demo/builds/",
        &p.admin,
        json!({"git_refs": ["main"]}),
    );
    assert_eq!(unconfirmed.status, 201);
    let unconfirmed = unconfirmed.body["self_url"].as_str().unwrap().to_owned();
    p.api.product(&p.admin, "other");
    let foreign = built(&p, "other", &["main"], "foreign");
    let queued_before = p.api.all_operations().len();
    for (body, status, says) in [
        (json!({"build_url": b1}), 409, "deprecated"),
        (json!({"build_url": unconfirmed}), 409, "not uploaded"),
        (json!({"build_url": b3}), 409, "already shows"),
        (
            json!({"build_url": foreign}),
            422,
            "no build of product demo",
        ),
        (
            json!({"build_url": p.api.url("/builds/999999")}),
            422,
            "no build",
        ),
        (
            json!({"build_url": "https://elsewhere.example/builds/1"}),
            400,
            "build_url",
        ),
        (json!({"build_url": 5}), 400, ""),
        (json!(["not", "an", "object"]), 400, ""),
    ] {
        let reply = rollback(&p, &main, Some(body.clone()));
        assert_eq!(reply.status, status, "{body}: {reply:?}");
        let message = reply.body["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    assert_eq!(p.api.all_operations().len(), queued_before);
    assert_eq!(rollback(&p, "999999", None).status, 404);
    let anonymous = p.api.call(
        Method::POST,
        &format!("/editions/{main}/rollback"),
        None,
        None,
    );
    assert_eq!(anonymous.status, 401);

    // A requested repoint and a deletion, on an edition of their own.
    let created = p.api.post(
        "/products/demo/editions/",
        &p.admin,
        json!({"slug": "pinned", "title": "Pinned", "mode": "manual", "build_url": b2}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    p.drain();
    let pinned = edition_id(&p, "demo", "pinned");
    let patched = p.api.patch(
        &format!("/editions/{pinned}"),
        &p.admin,
        json!({"build_url": b3}),
    );
    assert_eq!(patched.status, 200);
    p.drain();
    // Pointing it at the build it already shows changes nothing, and records nothing.
    p.api.patch(
        &format!("/editions/{pinned}"),
        &p.admin,
        json!({"build_url": b3}),
    );
    p.drain();
    assert_eq!(
        p.api
            .delete(&format!("/editions/{pinned}"), &p.admin)
            .status,
        200
    );
    let entries = history(&p, &pinned, Some(&p.admin));
    assert_eq!(
        changes(&entries),
        [
            ("deleted".into(), json!(b3), Value::Null),
            ("requested".into(), json!(b2), json!(b3)),
            ("requested".into(), Value::Null, json!(b2)),
        ]
    );
    assert_eq!(entries[0]["event"], "ended");
    assert_eq!(entries[0]["caused_by"], "user admin");
    assert_eq!(
        p.api
            .get_with(entries[0]["operation_url"].as_str().unwrap(), &p.admin)
            .body["kind"],
        "delete_edition"
    );
    // The history outlives the edition's row, which goes once its delete operation is done.
    p.drain();
    assert_eq!(history(&p, &pinned, None).len(), 3);

    // Pages: one entry at a time, following `next`, each entry once, newest first.
    let mut seen = Vec::new();
    let mut url = p.api.url(&format!("/editions/{main}/history?limit=1"));
    loop {
        let page = p.api.get(&url).body;
        assert_eq!(page["history"].as_array().unwrap().len(), 1, "{page}");
        seen.push(page["history"][0]["date_created"].clone());
        match page["next"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    for (query, status) in [("?limit=0", 422), ("?limit=201", 422), ("?before=x", 400)] {
        let reply = p.api.get(&format!("/editions/{main}/history{query}"));
        assert_eq!(reply.status, status, "{query}: {reply:?}");
        assert!(reply.body["message"].is_string());
    }
    assert_eq!(p.api.get("/editions/999999/history").status, 404);
}

on_both_backends!(history_records_every_change_and_rollback_goes_back);
