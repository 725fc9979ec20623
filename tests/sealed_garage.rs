//! S3 mode, Garage: a presigned upload form cannot be revoked, so a client can still overwrite
//! an object of a sealed build through it. The next rebuild from that build fails naming the
//! key, the edition it would have changed keeps serving its pages, and `keeper verify` reports
//! the object (exit code 1).
//!
//! Needs `KEEPER_TEST_GARAGE` (set by `./scripts/test`); fails without it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::garage::Garage;
use common::process::{
    generate_site, keeper_upload_succeeds, output_text, wait_for, KeeperProcess,
};
use serde_json::{json, Value};

fn count(keeper: &KeeperProcess, sql: &str) -> i64 {
    keeper.lines(sql)[0].parse().unwrap()
}

fn settled(keeper: &KeeperProcess) -> bool {
    count(
        keeper,
        "SELECT CAST(COUNT(*) AS TEXT) AS line FROM operations WHERE state IN ('READY', 'WORKING')",
    ) == 0
}

/// Posts one file through a presigned form (as `ltd upload` does).
fn post_file(form: &Value, name: &str, body: &'static [u8]) -> u16 {
    let mut multipart = reqwest::blocking::multipart::Form::new();
    for (field, value) in form["fields"].as_object().unwrap() {
        multipart = multipart.text(field.clone(), value.as_str().unwrap().to_owned());
    }
    multipart = multipart.text("Content-Type", "text/html").part(
        "file",
        reqwest::blocking::multipart::Part::bytes(body).file_name(name.to_owned()),
    );
    common::client()
        .post(form["url"].as_str().unwrap())
        .multipart(multipart)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn page(url: &str) -> (u16, String) {
    let response = common::client().get(url).send().unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

#[test]
fn an_object_overwritten_through_a_valid_form_is_never_published() {
    let garage = Garage::start();
    let mut env: Vec<(&str, String)> = garage.keeper_env();
    env.extend([
        ("KEEPER_SERVE_RUNS_WORKER", "true".to_owned()),
        ("KEEPER_WORKER_POLL_MS", "20".to_owned()),
        ("KEEPER_WORKER_BACKOFF_MS", "10".to_owned()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let keeper = KeeperProcess::start(&env);
    keeper.create_product("demo");
    let work = tempfile::tempdir().unwrap();
    generate_site(&work.path().join("a"), 40);
    keeper_upload_succeeds(&keeper, "demo", &work.path().join("a"), "main");
    wait_for("build A on __main", Duration::from_secs(60), || {
        settled(&keeper)
    });
    let a = keeper.builds("demo")[0].clone();
    let token = keeper.token();
    let created = common::client()
        .post(keeper.url("/products/demo/editions/"))
        .basic_auth(&token, Some(""))
        .json(&json!({"slug": "pinned", "title": "pinned", "mode": "manual", "build_url": a["self_url"]}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let pinned: Value = created.json().unwrap();
    wait_for("pinned on A", Duration::from_secs(60), || settled(&keeper));
    let pinned_page = format!(
        "{}/index.html",
        pinned["published_url"]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
    );
    let before = page(&pinned_page);
    assert_eq!(before.0, 200, "{}", keeper.log());

    // Build B, uploaded through its forms by hand and confirmed: it is sealed.
    let b: Value = common::client()
        .post(keeper.url("/products/demo/builds/"))
        .basic_auth(&token, Some(""))
        .header("Accept", "application/vnd.ltdkeeper.v2+json")
        .json(&json!({"git_refs": ["feature"], "directories": ["/"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let form = b["post_prefix_urls"]["/"].clone();
    assert_eq!(
        post_file(&form, "index.html", b"<p>B as confirmed</p>"),
        204
    );
    assert_eq!(post_file(&form, "other.html", b"<p>B other</p>"), 204);
    let confirmed = common::client()
        .patch(b["self_url"].as_str().unwrap())
        .basic_auth(&token, Some(""))
        .json(&json!({"uploaded": true}))
        .send()
        .unwrap();
    assert_eq!(confirmed.status(), 200);
    wait_for("B sealed", Duration::from_secs(60), || {
        settled(&keeper)
            && count(
                &keeper,
                "SELECT CAST(COUNT(*) AS TEXT) AS line FROM builds WHERE manifest_digest IS NOT NULL",
            ) == 2
    });

    // The form is still valid: Garage takes the overwrite.
    assert_eq!(post_file(&form, "index.html", b"<p>not confirmed</p>"), 204);
    let repointed = common::client()
        .patch(pinned["self_url"].as_str().unwrap())
        .basic_auth(&token, Some(""))
        .json(&json!({"build_url": b["self_url"]}))
        .send()
        .unwrap();
    assert_eq!(repointed.status(), 200);
    wait_for("the rebuild to end", Duration::from_secs(60), || {
        settled(&keeper)
    });
    let failed =
        keeper.lines("SELECT COALESCE(message, '') AS line FROM operations WHERE state = 'FAILED'");
    assert_eq!(failed.len(), 1, "{failed:?}\n{}", keeper.log());
    assert!(failed[0].contains("index.html"), "{}", failed[0]);
    assert_eq!(page(&pinned_page), before, "the edition's page changed");
    assert_eq!(
        keeper.get(pinned["self_url"].as_str().unwrap())["build_url"],
        a["self_url"]
    );

    let mut verify = Command::new(env!("CARGO_BIN_EXE_keeper"));
    verify
        .arg("verify")
        .current_dir(keeper.dir.path())
        .env("KEEPER_SECRET_KEY", common::process::SECRET_KEY)
        .env("KEEPER_LOG", "warn");
    for (name, value) in &env {
        verify.env(name, value);
    }
    let verified = verify.output().unwrap();
    let text = output_text(&verified);
    assert_eq!(verified.status.code(), Some(1), "{text}");
    let slug = b["slug"].as_str().unwrap();
    assert!(
        text.contains(&format!("demo: build {slug}: index.html:")),
        "{text}"
    );
}
