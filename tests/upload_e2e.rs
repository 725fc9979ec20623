//! The CI upload flow end to end against the real `keeper serve` (embedded default: SQLite, the
//! local store, keeper's own upload endpoint): the unchanged `ltd upload` from ltd-conveyor
//! 0.8.4, and `keeper upload`, for a generated site of a few hundred files in nested
//! directories; and failed uploads, which must leave the build unconfirmed and queue nothing.
//!
//! `ltd` comes from `KEEPER_TEST_LTD` (the path of the `ltd` executable), which `./scripts/test`
//! sets after installing ltd-conveyor in a virtual environment. Without it the test fails: it
//! never passes by skipping.

mod common;

use std::path::Path;
use std::process::Command;

use common::process::{
    assert_build_uploaded, generate_site, keeper_upload_site, keeper_upload_succeeds,
    ltd_upload_succeeds, output_text, wait_for, KeeperProcess, PASSWORD, USER,
};
use serde_json::Value;

const SITE_FILES: usize = 300;

fn only_build(keeper: &KeeperProcess) -> Value {
    let builds = keeper.builds("demo");
    assert_eq!(builds.len(), 1, "{builds:?}");
    builds.into_iter().next().unwrap()
}

/// The default edition (`__main`, tracking `main`) has a rebuild queued for build `slug`, and
/// nothing else is queued.
fn assert_main_rebuild_queued(keeper: &KeeperProcess, slug: &str) {
    assert_eq!(
        keeper.operations(),
        [format!("rebuild_edition READY __main {slug}")]
    );
    let main = keeper
        .editions("demo")
        .into_iter()
        .find(|edition| edition["slug"] == "__main")
        .unwrap();
    assert_eq!(main["pending_rebuild"], true, "{main}");
}

fn site(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("site");
    generate_site(&root, SITE_FILES);
    root
}

#[test]
fn ltd_upload_publishes_a_build_to_keeper_serve() {
    let keeper = KeeperProcess::start(&[]);
    keeper.create_product("demo");
    let work = tempfile::tempdir().unwrap();
    let root = site(work.path());

    ltd_upload_succeeds(&keeper, "demo", &root, "main");

    let build = only_build(&keeper);
    assert_eq!(build["uploaded"], true, "{build}");
    assert_eq!(build["git_refs"], serde_json::json!(["main"]));
    assert_build_uploaded(&keeper.store_dir(), "demo", &build, &root);
    assert_main_rebuild_queued(&keeper, build["slug"].as_str().unwrap());

    // The build is published at its own URL by the built-in site server.
    let published = build["published_url"].as_str().unwrap();
    let page = common::client()
        .get(format!("{published}/guide/index.html"))
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("guide/index.html"));
    let redirect = common::client()
        .get(format!("{published}/guide"))
        .send()
        .unwrap();
    assert!(redirect.status().is_redirection(), "{redirect:?}");
}

#[test]
fn keeper_upload_publishes_a_build_to_keeper_serve() {
    let keeper = KeeperProcess::start(&[]);
    keeper.create_product("demo");
    let work = tempfile::tempdir().unwrap();
    let root = site(work.path());

    // Dry run: a report, no build.
    let output = keeper_upload_site(&keeper, "demo", &root, "main", &["--dry-run"]);
    assert!(output.status.success(), "{}", output_text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains(&format!("would upload {SITE_FILES} files")),
        "{}",
        output_text(&output)
    );
    assert!(keeper.builds("demo").is_empty());

    // The `ltd` command line, with `ltd` replaced by `keeper`.
    let output = keeper_upload_succeeds(&keeper, "demo", &root, "main");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("uploaded {SITE_FILES} files")) && stdout.contains("confirmed"),
        "{}",
        output_text(&output)
    );
    // The summary says where the docs will be: the editions the build updates.
    assert!(
        stdout.contains(&format!(
            "updating 1 edition(s):\n  __main: {}/\n",
            keeper.url("/docs/demo")
        )),
        "{}",
        output_text(&output)
    );
    let build = only_build(&keeper);
    assert_eq!(build["uploaded"], true, "{build}");
    assert_build_uploaded(&keeper.store_dir(), "demo", &build, &root);
    assert_main_rebuild_queued(&keeper, build["slug"].as_str().unwrap());
    // No bar in a pipe: plain progress lines, ending with every file.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{SITE_FILES}/{SITE_FILES} files")),
        "{}",
        output_text(&output)
    );
    for secret in [PASSWORD, "x-amz-signature", "policy"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} printed"
        );
    }

    // With an API token instead of a password, options after `upload`, LTD_HOST from the
    // environment, and a new ref: an edition for it is made and its rebuild queued.
    let created = common::client()
        .post(keeper.url("/tokens/"))
        .basic_auth(keeper.token(), Some(""))
        .json(&serde_json::json!({"name": "ci"}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let api_token = created.json::<Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let output = Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args([
            "upload",
            "--product",
            "demo",
            "--dir",
            root.to_str().unwrap(),
        ])
        .args(["--git-ref", "tickets/DM-1", "--jobs", "4"])
        .env("LTD_HOST", &keeper.base)
        .env("KEEPER_UPLOAD_TOKEN", &api_token)
        .env_remove("LTD_USERNAME")
        .env_remove("LTD_PASSWORD")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        output_text(&output),
        keeper.log()
    );
    assert!(
        !output_text(&output).contains(&api_token),
        "the token was printed"
    );
    let second = keeper
        .builds("demo")
        .into_iter()
        .find(|build| build["git_refs"] == serde_json::json!(["tickets/DM-1"]))
        .unwrap();
    assert_eq!(second["uploaded"], true);
    assert_build_uploaded(&keeper.store_dir(), "demo", &second, &root);
    let operations = keeper.operations();
    assert_eq!(operations.len(), 2, "{operations:?}");
    assert_eq!(
        operations[1],
        format!(
            "rebuild_edition READY DM-1 {}",
            second["slug"].as_str().unwrap()
        )
    );
}

/// One file is refused (too large for the server's limit): the upload fails with a clear
/// message, the build stays unconfirmed, nothing is queued.
#[test]
fn a_rejected_file_leaves_the_build_unconfirmed() {
    let keeper = KeeperProcess::start(&[("KEEPER_UPLOAD_MAX_BYTES", "4096")]);
    keeper.create_product("demo");
    let work = tempfile::tempdir().unwrap();
    let root = site(work.path());
    std::fs::write(root.join("guide/huge.bin"), vec![b'x'; 10_000]).unwrap();

    let output = keeper_upload_site(&keeper, "demo", &root, "main", &[]);
    assert!(!output.status.success(), "{}", output_text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("huge.bin") && stderr.contains("413"),
        "{}",
        output_text(&output)
    );
    assert!(
        stderr.contains("left unconfirmed"),
        "{}",
        output_text(&output)
    );
    let build = only_build(&keeper);
    assert_eq!(build["uploaded"], false, "{build}");
    assert!(keeper.operations().is_empty(), "{:?}", keeper.operations());
}

/// The server dies midway: the client gives up after its retries, the build stays unconfirmed,
/// and nothing is queued.
#[test]
fn a_server_gone_midway_leaves_the_build_unconfirmed() {
    let mut keeper = KeeperProcess::start(&[]);
    keeper.create_product("demo");
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("site");
    generate_site(&root, 3000);

    let upload = Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["--host", &keeper.base, "-u", USER, "-p", PASSWORD, "upload"])
        .args([
            "--product",
            "demo",
            "--dir",
            root.to_str().unwrap(),
            "--git-ref",
            "main",
        ])
        .args(["--jobs", "1", "--retries", "2", "--retry-delay-ms", "50"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let objects = keeper.store_dir().join("objects/demo/builds/1");
    wait_for(
        "the first uploads",
        std::time::Duration::from_secs(60),
        || std::fs::read_dir(&objects).map_or(0, |dir| dir.count()) >= 3,
    );
    keeper.kill();
    let output = upload.wait_with_output().unwrap();
    assert!(!output.status.success(), "{}", output_text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("left unconfirmed"),
        "{}",
        output_text(&output)
    );
    assert!(stderr.contains("retry 2 of 2"), "{}", output_text(&output));

    // Back up on the same database and store: the build is there, unconfirmed; no operation.
    let dir = std::mem::replace(&mut keeper.dir, tempfile::tempdir().unwrap());
    drop(keeper);
    let keeper = KeeperProcess::start_in(dir, &[]);
    let build = only_build(&keeper);
    assert_eq!(build["uploaded"], false, "{build}");
    assert!(keeper.operations().is_empty(), "{:?}", keeper.operations());
}

#[test]
fn ltd_upload_then_the_worker_publishes_the_default_edition() {
    // This time `keeper serve` runs the operations worker, as it does by default.
    let keeper = KeeperProcess::start(&[
        ("KEEPER_SERVE_RUNS_WORKER", "true"),
        ("KEEPER_WORKER_POLL_MS", "50"),
    ]);
    keeper.create_product("demo");
    let work = tempfile::tempdir().unwrap();
    let root = site(work.path());
    ltd_upload_succeeds(&keeper, "demo", &root, "main");
    let build = only_build(&keeper);

    // The rebuild of __main runs to OK; then the edition shows the build and serves its pages.
    common::process::wait_for(
        "the rebuild of __main",
        std::time::Duration::from_secs(120),
        || {
            let operations = keeper.operations();
            !operations.is_empty()
                && operations
                    .iter()
                    .all(|op| op.starts_with("rebuild_edition OK"))
        },
    );
    let main = keeper
        .editions("demo")
        .into_iter()
        .find(|e| e["slug"] == "__main")
        .unwrap();
    assert_eq!(main["pending_rebuild"], false, "{main}");
    assert_eq!(main["build_url"], build["self_url"], "{main}");
    let published = main["published_url"].as_str().unwrap();
    let page = common::client()
        .get(format!("{published}/guide/index.html"))
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("guide/index.html"));
    let index = common::client()
        .get(format!("{published}/"))
        .send()
        .unwrap();
    assert_eq!(index.status(), 200, "the edition root serves index.html");
}
