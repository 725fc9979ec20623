//! Concurrent creation: the database constraint decides, the handler maps it. Many parallel
//! requests for the same build slug give one row, one 201 and clean 400s (never a 500); parallel
//! requests for automatic slugs all succeed with distinct slugs.

mod common;

use std::sync::{Arc, Barrier};

use common::api::Api;
use common::TestBackend;
use keeper::domain::Permissions;
use serde_json::json;

const PARALLEL: usize = 24;

/// Runs `PARALLEL` POSTs of `body` to the product's builds at once; returns the statuses and slugs.
fn race(api: &Arc<Api>, token: &str, body: serde_json::Value) -> Vec<(u16, String)> {
    let barrier = Arc::new(Barrier::new(PARALLEL));
    let threads: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let (api, barrier, token, body) =
                (api.clone(), barrier.clone(), token.to_owned(), body.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let reply = api.post("/products/demo/builds/", &token, body);
                (
                    reply.status,
                    reply.body["slug"].as_str().unwrap_or_default().to_owned(),
                )
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn the_same_slug_in_parallel_yields_one_row(backend: TestBackend) {
    let api = Arc::new(Api::start(backend));
    // Without admin_edition, so that only the build insert races.
    let admin = api.user("admin", Permissions::ALL);
    let ci = api.user("ci", Permissions::UPLOAD_BUILD);
    api.product(&admin, "demo");

    let outcomes = race(&api, &ci, json!({"git_refs": ["main"], "slug": "release"}));
    let created = outcomes.iter().filter(|(status, _)| *status == 201).count();
    // The original's answer to a duplicate build slug: 400.
    let conflicts = outcomes.iter().filter(|(status, _)| *status == 400).count();
    assert_eq!((created, conflicts), (1, PARALLEL - 1), "{outcomes:?}");
    assert_eq!(
        api.lines("SELECT slug AS line FROM builds"),
        vec!["release"]
    );
}

fn automatic_slugs_in_parallel_are_distinct(backend: TestBackend) {
    let api = Arc::new(Api::start(backend));
    let admin = api.user("admin", Permissions::ALL);
    api.product(&admin, "demo");
    // With admin_edition: each request also tries to create the edition for its new ref.
    let outcomes = race(&api, &admin, json!({"git_refs": ["tickets/DM-42"]}));
    assert!(
        outcomes.iter().all(|(status, _)| *status == 201),
        "{outcomes:?}"
    );
    let mut slugs: Vec<u32> = outcomes
        .iter()
        .map(|(_, slug)| slug.parse().unwrap())
        .collect();
    slugs.sort_unstable();
    assert_eq!(slugs, (1..=PARALLEL as u32).collect::<Vec<_>>());
    assert_eq!(
        api.lines("SELECT slug AS line FROM editions ORDER BY slug"),
        vec!["DM-42", "__main"],
        "exactly one edition for the new ref"
    );
}

on_both_backends!(
    the_same_slug_in_parallel_yields_one_row,
    automatic_slugs_in_parallel_are_distinct
);
