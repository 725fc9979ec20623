//! The operations pipeline end to end, on both backends: keeper's API enqueues, an in-process
//! worker runs the queue against the in-process S3 server and a wiremock Fastly.

mod common;
mod ops_support;
mod storage_support;

use common::TestBackend;
use ops_support::Pipeline;
use serde_json::{json, Value};
use std::time::Duration;

const BUILD_FILES: &[(&str, &str, &str)] = &[
    ("index.html", "<h1>v2 home</h1>", "text/html"),
    (
        "guide/index.html",
        "<p>guide v2</p>",
        "text/html; charset=utf-8",
    ),
    ("guide/setup.html", "<p>setup v2</p>", "text/html"),
    ("_static/app.css", "body { color: red }", "text/css"),
    ("_static/data.json", "{\"a\": 1}", "application/json"),
];

fn edition(api: &common::api::Api, product: &str, slug: &str) -> Value {
    let list = api.get(&format!("/products/{product}/editions/")).body["editions"].clone();
    for url in list.as_array().unwrap() {
        let body = api.get(url.as_str().unwrap()).body;
        if body["slug"] == slug {
            return body;
        }
    }
    panic!("no edition {slug}");
}

/// After a rebuild the edition holds exactly the build's objects, byte-identical, each with the
/// edition's surrogate key and its own headers; leftovers are gone; one purge of the edition's
/// key was sent, after the last write to the bucket.
fn rebuild_publishes_exactly_the_build(backend: TestBackend) {
    let p = Pipeline::start(backend, 3);
    p.api.product(&p.admin, "demo");
    // A previous build's leftovers, and a sibling edition's objects that must not be touched.
    p.put_files(
        "demo/v/__main/",
        &[
            ("old-only.html", "stale", "text/html"),
            ("index.html", "<h1>old home</h1>", "text/html"),
        ],
    );
    p.put_files("demo/v/__main2/", &[("index.html", "sibling", "text/html")]);
    p.s3.traffic.record(true);
    let build = p.build("demo", &["main"], BUILD_FILES);
    let main = edition(&p.api, "demo", "__main");
    assert_eq!(main["pending_rebuild"], true, "{main}");
    p.drain();

    let key = p.edition_key("demo", "__main");
    let mut expected: Vec<String> = BUILD_FILES.iter().map(|f| f.0.to_owned()).collect();
    expected.sort();
    assert_eq!(p.keys("demo/v/__main/"), expected);
    let root = build["bucket_root_dir"].as_str().unwrap();
    for (path, body, content_type) in BUILD_FILES {
        let (head, bytes) = p.object(&format!("demo/v/__main/{path}"));
        let (source, _) = p.object(&format!("{root}/{path}"));
        assert_eq!(bytes.as_ref(), body.as_bytes(), "{path}");
        assert_eq!(head.headers.content_type.as_deref(), Some(*content_type));
        assert_eq!(head.headers.cache_control, source.headers.cache_control);
        assert_eq!(head.headers.metadata.get("surrogate-key"), Some(&key));
        assert_eq!(
            head.headers.metadata.get("origin").map(String::as_str),
            Some(*path)
        );
    }
    assert_eq!(p.keys("demo/v/__main2/"), vec!["index.html".to_owned()]);

    let purges = p.fastly.purges_of(&key);
    assert_eq!(purges.len(), 1, "{:?}", p.fastly.purges());
    let writes: Vec<_> =
        p.s3.traffic
            .log()
            .into_iter()
            .filter(|r| {
                r.is_write()
                    && !r.path.contains("/__keeper/")
                    && !ops_support::is_dashboard_file(&r.path)
            })
            .collect();
    let last_write = writes.iter().map(|r| r.finished).max().unwrap();
    assert!(
        purges[0].received > last_write,
        "the purge arrived before the last write to the bucket"
    );
    // The leftover's deletion is among the writes, and came after every copy.
    let last_copy = writes
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.finished)
        .max()
        .unwrap();
    let delete = writes
        .iter()
        .find(|r| r.method == "POST" && r.query.contains("delete"))
        .unwrap();
    assert!(
        delete.finished > last_copy,
        "leftovers deleted before every copy succeeded"
    );

    let main = edition(&p.api, "demo", "__main");
    assert_eq!(main["build_url"], build["self_url"]);
    assert_eq!(main["pending_rebuild"], false);
    assert!(main["date_rebuilt"].is_string(), "{main}");
    let states = p.api.operations();
    assert!(states.iter().all(|s| s.contains(" OK ")), "{states:?}");
}

/// Renaming `1` moves its objects and leaves nothing behind; `10` is untouched. Deleting an
/// edition removes its objects and its row; a sibling prefix is untouched.
fn rename_and_delete_touch_only_their_prefix(backend: TestBackend) {
    let p = Pipeline::start(backend, 3);
    p.api.product(&p.admin, "demo");
    let build = p.build("demo", &["main"], BUILD_FILES);
    let mut ids = Vec::new();
    for slug in ["1", "10"] {
        let reply = p.api.post(
            "/products/demo/editions/",
            &p.admin,
            json!({"slug": slug, "title": slug, "mode": "manual", "build_url": build["self_url"]}),
        );
        assert_eq!(reply.status, 201, "{reply:?}");
        ids.push(reply.body["self_url"].as_str().unwrap().to_owned());
    }
    p.drain();
    let ten_before: Vec<_> = p
        .keys("demo/v/10/")
        .into_iter()
        .map(|k| p.object(&format!("demo/v/10/{k}")))
        .collect();
    assert_eq!(ten_before.len(), BUILD_FILES.len());

    let renamed = p.api.patch(&ids[0], &p.admin, json!({"slug": "one"}));
    assert_eq!(renamed.status, 200, "{renamed:?}");
    p.drain();
    assert!(
        p.keys("demo/v/1/").is_empty(),
        "objects left under the old prefix"
    );
    assert_eq!(p.keys("demo/v/one/").len(), BUILD_FILES.len());
    let key = p.edition_key("demo", "one");
    let (head, _) = p.object("demo/v/one/index.html");
    assert_eq!(head.headers.metadata.get("surrogate-key"), Some(&key));
    let ten_after: Vec<_> = p
        .keys("demo/v/10/")
        .into_iter()
        .map(|k| p.object(&format!("demo/v/10/{k}")))
        .collect();
    assert_eq!(ten_after, ten_before, "the sibling edition 10 was touched");
    assert!(
        p.fastly.purges_of(&key).len() >= 2,
        "rename purges after copy and after delete"
    );

    let deleted = p.api.delete(&ids[0], &p.admin);
    assert_eq!(deleted.status, 200, "{deleted:?}");
    p.drain();
    assert!(p.keys("demo/v/one/").is_empty());
    assert_eq!(p.keys("demo/v/10/").len(), BUILD_FILES.len());
    // As in the original, the deleted edition still answers, ended.
    assert!(p.api.get(&ids[0]).body["date_ended"].is_string());
}

/// S3 500s and Fastly 429s/500s are retried and the operation completes once they clear.
fn transient_faults_are_retried_until_they_clear(backend: TestBackend) {
    let p = Pipeline::start(backend, 6);
    p.api.product(&p.admin, "demo");
    p.fault_only_the_main_edition("demo");
    let build = p.build("demo", &["main"], BUILD_FILES);
    // More failures than the SDK's own retries absorb: at least one attempt fails.
    p.s3.traffic.fail_next_under(8, "PUT", "/v/__main/", 500);
    p.fastly.fail_next(1, 429);
    p.drain();
    assert_eq!(p.s3.traffic.failures_left(), 0);
    let attempts = p
        .api
        .lines("SELECT CAST(attempts AS TEXT) AS line FROM operations WHERE kind NOT IN ('seal_build', 'write_record', 'dashboard')");
    assert!(attempts[0].parse::<i32>().unwrap() > 1, "{attempts:?}");
    assert_eq!(p.keys("demo/v/__main/").len(), BUILD_FILES.len());
    assert_eq!(
        edition(&p.api, "demo", "__main")["build_url"],
        build["self_url"]
    );
    let key = p.edition_key("demo", "__main");
    assert_eq!(p.fastly.purges_of(&key).len(), 1);
}

/// A fault that outlasts the cap ends FAILED with a message naming the failure and the way out;
/// nothing is recorded as done. An operator's retry then completes it.
fn persistent_faults_end_failed_and_can_be_retried(backend: TestBackend) {
    let p = Pipeline::start(backend, 2);
    p.api.product(&p.admin, "demo");
    p.fault_only_the_main_edition("demo");
    p.fastly.fail_next(1000, 500);
    let build = p.build("demo", &["main"], BUILD_FILES);
    let counts = p.run_queue();
    assert_eq!(counts.failed, 1);
    let message = p
        .api
        .lines("SELECT COALESCE(message, '') AS line FROM operations WHERE kind NOT IN ('seal_build', 'write_record', 'dashboard')")[0]
        .clone();
    assert!(message.contains("Gave up after 2 attempts"), "{message}");
    assert!(message.contains("500"), "{message}");
    assert!(message.contains("/retry"), "{message}");
    let main = edition(&p.api, "demo", "__main");
    assert!(
        main["build_url"].is_null(),
        "a failed rebuild was recorded: {main}"
    );
    assert_eq!(main["pending_rebuild"], false);

    p.fastly.fail_next(0, 200);
    retry_first_operation(&p);
    p.drain();
    assert_eq!(
        edition(&p.api, "demo", "__main")["build_url"],
        build["self_url"]
    );
}

/// A rebuild from a build that was deprecated after it was requested is refused, not run.
fn a_deprecated_build_is_never_published(backend: TestBackend) {
    let p = Pipeline::start(backend, 3);
    p.api.product(&p.admin, "demo");
    let build = p.build("demo", &["main"], BUILD_FILES);
    let deprecated = p.api.delete(build["self_url"].as_str().unwrap(), &p.admin);
    assert_eq!(deprecated.status, 200, "{deprecated:?}");
    let counts = p.run_queue();
    assert_eq!(counts.failed, 1, "{:?}", p.api.operations());
    let message = p
        .api
        .lines("SELECT COALESCE(message, '') AS line FROM operations WHERE kind NOT IN ('seal_build', 'write_record', 'dashboard') AND state = 'FAILED'")[0]
        .clone();
    assert!(message.contains("deprecated"), "{message}");
    assert!(p.keys("demo/v/__main/").is_empty());
    assert!(p
        .keys(&format!("{}/", build["bucket_root_dir"].as_str().unwrap()))
        .is_empty());
}

/// 50 concurrent requests repoint one edition: it ends on the build of the last committed one,
/// and every other request's operation is accounted for as SUPERSEDED (or OK).
fn concurrent_repoints_end_on_the_last_committed_build(backend: TestBackend) {
    let p = Pipeline::start(backend, 3);
    p.api.product(&p.admin, "demo");
    let builds: Vec<Value> = (0..5)
        .map(|i| {
            let files = [(
                "index.html",
                if i % 2 == 0 { "even" } else { "odd" },
                "text/html",
            )];
            p.build("demo", &[&format!("b{i}")], &files)
        })
        .collect();
    let created = p.api.post(
        "/products/demo/editions/",
        &p.admin,
        json!({"slug": "live", "title": "live", "mode": "manual"}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let url = created.body["self_url"].as_str().unwrap().to_owned();
    std::thread::scope(|scope| {
        for i in 0..50 {
            let (p, url, builds) = (&p, &url, &builds);
            scope.spawn(move || {
                let reply = p.api.patch(
                    url,
                    &p.admin,
                    json!({"build_url": builds[i % builds.len()]["self_url"]}),
                );
                assert_eq!(reply.status, 200, "{reply:?}");
            });
        }
    });
    p.drain();
    let edition_id = url.rsplit('/').next().unwrap();
    let rows = p.api.lines(&format!(
        "SELECT state || ' ' || CAST(build_id AS TEXT) AS line FROM operations \
         WHERE edition_id = {edition_id} ORDER BY id"
    ));
    assert_eq!(rows.len(), 50, "{rows:?}");
    let (last, earlier) = rows.split_last().unwrap();
    assert!(last.starts_with("OK "), "{rows:?}");
    assert!(
        earlier
            .iter()
            .all(|r| r.starts_with("SUPERSEDED ") || r.starts_with("OK ")),
        "{rows:?}"
    );
    let last_build = last.split(' ').nth(1).unwrap();
    let live = p.api.get(&url).body;
    assert!(
        live["build_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/builds/{last_build}")),
        "{live} vs {last}"
    );
}

/// `POST /operations/<id>/retry`: admin_product only, in the JSON error shape.
fn retry_needs_admin_product(backend: TestBackend) {
    let p = Pipeline::start(backend, 1);
    p.api.product(&p.admin, "demo");
    let editor = p
        .api
        .user("editor", keeper::domain::Permissions::ADMIN_EDITION);
    p.fault_only_the_main_edition("demo");
    p.fastly.fail_next(1000, 500);
    p.build("demo", &["main"], BUILD_FILES);
    assert_eq!(p.run_queue().failed, 1);
    let id = p
        .api
        .lines("SELECT CAST(id AS TEXT) AS line FROM operations WHERE kind NOT IN ('seal_build', 'write_record', 'dashboard')")[0]
        .clone();
    let path = format!("/operations/{id}/retry");

    let anonymous = p.api.call(reqwest::Method::POST, &path, None, None);
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert!(anonymous.body["message"].is_string(), "{anonymous:?}");
    let forbidden = p.api.post(&path, &editor, json!({}));
    assert_eq!(forbidden.status, 403, "{forbidden:?}");
    assert!(forbidden.body["message"]
        .as_str()
        .unwrap()
        .contains("admin_product"));
    let missing = p.api.post("/operations/999999/retry", &p.admin, json!({}));
    assert_eq!(missing.status, 404, "{missing:?}");
    assert_eq!(
        p.api.get(&format!("/operations/{id}")).body["state"],
        "FAILED"
    );

    p.fastly.fail_next(0, 200);
    assert_eq!(p.api.post(&path, &p.admin, json!({})).status, 200);
    let again = p.api.post(&path, &p.admin, json!({}));
    assert_eq!(again.status, 409, "{again:?}");
    assert!(
        again.body["message"].as_str().unwrap().contains("READY"),
        "{again:?}"
    );
    p.drain();
    let done = p.api.post(&path, &p.admin, json!({}));
    assert_eq!(done.status, 409, "{done:?}");
}

/// S3 throttling (503 SlowDown on the seal's HEADs, 429 on the rebuild's copies) is retried:
/// each rebuild completes once the fault clears, after more than one attempt of the operation
/// the fault hit, and publishes exactly its build.
fn s3_throttling_is_retried_until_it_clears(backend: TestBackend) {
    let p = Pipeline::start(backend, 8);
    p.api.product(&p.admin, "demo");
    for (round, (method, path, status)) in [("HEAD", "/builds/", 503), ("PUT", "/v/", 429)]
        .into_iter()
        .enumerate()
    {
        let before = highest_operation_id(&p);
        let files = round_files(round);
        let build = p.build("demo", &["main"], &borrowed(&files));
        // More failures than the SDK's own retries absorb: at least one attempt fails.
        p.s3.traffic.fail_next_under(12, method, path, status);
        p.drain();
        assert_eq!(p.s3.traffic.failures_left(), 0, "{method} {status}");
        let retried = p.api.lines(&format!(
            "SELECT kind AS line FROM operations WHERE id > {before} AND attempts > 1"
        ));
        assert!(!retried.is_empty(), "{method} {status}: no attempt failed");
        assert_edition_holds(&p, "__main", &build, &files);
    }
}

fn highest_operation_id(p: &Pipeline) -> i64 {
    p.api
        .lines("SELECT CAST(COALESCE(MAX(id), 0) AS TEXT) AS line FROM operations")[0]
        .parse()
        .unwrap()
}

/// An S3 server that stops answering does not hold an operation: each request is abandoned at
/// the client's timeout and retried, the operation ends FAILED after the cap with a message
/// saying so, and once the server answers again an operator's retry completes it. Without the
/// timeout the stalled requests would never return and the queue would not settle.
fn stalled_s3_requests_time_out_then_fail_clearly(backend: TestBackend) {
    let p = Pipeline::start_with(backend, 2, Duration::from_millis(300));
    p.api.product(&p.admin, "demo");
    let files = round_files(0);
    let build = p.build("demo", &["main"], &borrowed(&files));
    p.s3.traffic
        .stall_next_under(u32::MAX, "PUT", "/v/__main/", Duration::from_secs(3600));
    let counts = p.run_queue_within(Duration::from_secs(120));
    assert_eq!(counts.failed, 1, "{counts:?}");
    let message = p
        .api
        .lines("SELECT COALESCE(message, '') AS line FROM operations WHERE kind NOT IN ('seal_build', 'write_record', 'dashboard')")[0]
        .to_lowercase();
    assert!(message.contains("gave up after 2 attempts"), "{message}");
    assert!(
        message.contains("timeout") || message.contains("timed out"),
        "{message}"
    );
    assert!(
        edition(&p.api, "demo", "__main")["build_url"].is_null(),
        "a rebuild that never copied was recorded"
    );

    p.s3.traffic.stall_next(0, "", Duration::ZERO);
    retry_first_operation(&p);
    p.drain();
    assert_edition_holds(&p, "__main", &build, &files);
}

/// A Fastly API that does not answer does not hold an operation either: the purge request is
/// abandoned at the client's timeout, the attempt is retried, and the rebuild completes with one
/// purge recorded.
fn a_stalled_fastly_purge_times_out_and_is_retried(backend: TestBackend) {
    let p = Pipeline::start_with(backend, 4, Duration::from_millis(300));
    p.api.product(&p.admin, "demo");
    let files = round_files(0);
    p.fault_only_the_main_edition("demo");
    let build = p.build("demo", &["main"], &borrowed(&files));
    p.fastly.stall_next(1);
    let counts = p.run_queue_within(Duration::from_secs(120));
    assert_eq!(counts, Default::default());
    assert_eq!(p.fastly.stalls_left(), 0);
    assert!(last_operation_attempts(&p) > 1, "no attempt timed out");
    assert_edition_holds(&p, "__main", &build, &files);
    let key = p.edition_key("demo", "__main");
    assert_eq!(p.fastly.purges_of(&key).len(), 1);
}

/// Several workers, each with its own connection pool, drain one queue: every operation runs
/// once (one attempt, one set of copies, one purge per edition) and the work is shared.
fn several_workers_share_the_queue_without_double_work(backend: TestBackend) {
    const EDITIONS: usize = 8;
    let p = Pipeline::start(backend, 3);
    p.api.product(&p.admin, "demo");
    for n in 0..EDITIONS {
        let created = p.api.post(
            "/products/demo/editions/",
            &p.admin,
            json!({"slug": format!("track{n}"), "title": format!("track {n}"), "mode": "git_refs", "tracked_refs": ["main"]}),
        );
        assert_eq!(created.status, 201, "{created:?}");
    }
    p.s3.traffic.record(true);
    let files = round_files(0);
    let build = p.build("demo", &["main"], &borrowed(&files));
    let queued = p
        .api
        .lines("SELECT CAST(COUNT(*) AS TEXT) AS line FROM operations WHERE kind NOT IN ('seal_build', 'write_record', 'dashboard') AND state = 'READY'");
    assert_eq!(queued, vec![(EDITIONS + 1).to_string()]);

    let config = p.api.db.config(&[]);
    let workers: Vec<keeper::ops::worker::Worker> = (0..3)
        .map(|_| {
            keeper::ops::worker::Worker::new(keeper::ops::Services {
                pool: keeper::db::build_pool(&config.database),
                ..p.services.clone()
            })
        })
        .collect();
    let drained = p.runtime.block_on(futures::future::join_all(
        workers.iter().map(|worker| worker.drain()),
    ));
    for counts in drained {
        assert_eq!(counts.unwrap(), Default::default());
    }

    let runs = p.api.lines(
        "SELECT state || ' ' || CAST(attempts AS TEXT) || ' ' || COALESCE(worker_id, '-') AS line          FROM operations WHERE kind NOT IN ('seal_build', 'write_record', 'dashboard') ORDER BY id",
    );
    assert_eq!(runs.len(), EDITIONS + 1);
    assert!(
        runs.iter().all(|run| run.starts_with("OK 1 ")),
        "an operation ran twice or not at all: {runs:#?}"
    );
    let ids: std::collections::BTreeSet<&str> = runs
        .iter()
        .map(|run| run.rsplit(' ').next().unwrap())
        .collect();
    assert!(ids.len() > 1, "one worker did all the work: {runs:#?}");
    let copies =
        p.s3.traffic
            .log()
            .into_iter()
            .filter(|request| {
                request.method == "PUT"
                    && request.path.contains("/demo/v/")
                    && !ops_support::is_dashboard_file(&request.path)
            })
            .count();
    assert_eq!(copies, (EDITIONS + 1) * files.len(), "copies made");
    let mut editions: Vec<String> = (0..EDITIONS).map(|n| format!("track{n}")).collect();
    editions.push("__main".into());
    for slug in editions {
        assert_edition_holds(&p, &slug, &build, &files);
        let key = p.edition_key("demo", &slug);
        assert_eq!(p.fastly.purges_of(&key).len(), 1, "purges of {slug}");
    }
}

/// Build files whose bodies name the round, so that each round's rebuild is visible.
fn round_files(round: usize) -> Vec<(&'static str, String, &'static str)> {
    BUILD_FILES
        .iter()
        .map(|(path, body, content_type)| (*path, format!("{body} round {round}"), *content_type))
        .collect()
}

fn borrowed<'a>(
    files: &'a [(&'static str, String, &'static str)],
) -> Vec<(&'a str, &'a str, &'a str)> {
    files
        .iter()
        .map(|(path, body, content_type)| (*path, body.as_str(), *content_type))
        .collect()
}

/// An admin's `POST /operations/<id>/retry` of the first operation puts it back to READY.
fn retry_first_operation(p: &Pipeline) {
    let id = p
        .api
        .lines("SELECT CAST(id AS TEXT) AS line FROM operations WHERE kind NOT IN ('seal_build', 'write_record', 'dashboard') ORDER BY id")[0]
        .clone();
    let retried = p
        .api
        .post(&format!("/operations/{id}/retry"), &p.admin, json!({}));
    assert_eq!(retried.status, 200, "{retried:?}");
    assert_eq!(retried.body["state"], "READY");
}

fn last_operation_attempts(p: &Pipeline) -> i32 {
    p.api
        .lines("SELECT CAST(attempts AS TEXT) AS line FROM operations WHERE kind NOT IN ('seal_build', 'write_record', 'dashboard') ORDER BY id DESC")[0]
        .parse()
        .unwrap()
}

/// The edition is on `build` and its prefix holds exactly `files`, byte for byte.
fn assert_edition_holds(
    p: &Pipeline,
    slug: &str,
    build: &Value,
    files: &[(&'static str, String, &'static str)],
) {
    assert_eq!(
        edition(&p.api, "demo", slug)["build_url"],
        build["self_url"],
        "{slug}"
    );
    let prefix = format!("demo/v/{slug}/");
    let mut expected: Vec<String> = files.iter().map(|(path, ..)| (*path).to_owned()).collect();
    expected.sort();
    assert_eq!(p.keys(&prefix), expected, "{slug}");
    for (path, body, content_type) in files {
        let (head, bytes) = p.object(&format!("{prefix}{path}"));
        assert_eq!(bytes, body.as_bytes(), "{slug}/{path}");
        assert_eq!(head.headers.content_type.as_deref(), Some(*content_type));
    }
}

on_both_backends!(
    s3_throttling_is_retried_until_it_clears,
    stalled_s3_requests_time_out_then_fail_clearly,
    a_stalled_fastly_purge_times_out_and_is_retried,
    several_workers_share_the_queue_without_double_work,
    retry_needs_admin_product,
    rebuild_publishes_exactly_the_build,
    rename_and_delete_touch_only_their_prefix,
    transient_faults_are_retried_until_they_clear,
    persistent_faults_end_failed_and_can_be_retried,
    a_deprecated_build_is_never_published,
    concurrent_repoints_end_on_the_last_committed_build,
);
