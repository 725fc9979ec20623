//! S3 mode end to end: `keeper serve` storing in Garage (a real S3-compatible server that checks
//! signatures and POST policies and substitutes `${filename}`), the unchanged `ltd upload`
//! (ltd-conveyor 0.8.4) and `keeper upload` posting straight to the bucket.
//!
//! Needs `KEEPER_TEST_GARAGE` and `KEEPER_TEST_LTD` (set by `./scripts/test`); fails without them.

mod common;

use std::process::Command;

use common::garage::Garage;
use common::process::{assert_build_in_store, generate_site, KeeperProcess, PASSWORD, USER};
use serde_json::json;

fn ltd_executable() -> String {
    std::env::var("KEEPER_TEST_LTD").unwrap_or_else(|_| {
        panic!(
            "KEEPER_TEST_LTD is not set: run the suite with ./scripts/test, which installs \
             ltd-conveyor==0.8.4 (scripts/install-ltd-conveyor)"
        )
    })
}

#[test]
fn ltd_upload_and_keeper_upload_into_garage() {
    let ltd = ltd_executable();
    let garage = Garage::start();
    let env = garage.keeper_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let keeper = KeeperProcess::start(&env);
    keeper.create_product("demo");
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("site");
    generate_site(&root, 200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(garage.store());

    let output = Command::new(&ltd)
        .args(["--host", &keeper.base, "-u", USER, "-p", PASSWORD, "upload"])
        .args([
            "--product",
            "demo",
            "--dir",
            root.to_str().unwrap(),
            "--git-ref",
            "main",
        ])
        .env_remove("LTD_SKIP_UPLOAD")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ltd upload failed: {}\n{}\nkeeper:\n{}\ngarage:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        keeper.log(),
        garage.log()
    );
    let build = keeper
        .builds("demo")
        .into_iter()
        .find(|build| build["git_refs"] == json!(["main"]))
        .unwrap();
    assert_eq!(build["uploaded"], true);
    let post_url = format!("{}/{}", garage.s3_endpoint, common::garage::BUCKET);
    assert_build_in_store(&runtime, &store, "demo", &build, &root);
    assert_eq!(
        keeper.operations(),
        [format!(
            "rebuild_edition READY __main {}",
            build["slug"].as_str().unwrap()
        )]
    );
    // The site server reads the build back out of the bucket.
    let page = common::client()
        .get(format!(
            "{}/guide/index.html",
            build["published_url"].as_str().unwrap()
        ))
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);

    let output = Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["--host", &keeper.base, "-u", USER, "-p", PASSWORD, "upload"])
        .args(["--product", "demo", "--dir", root.to_str().unwrap()])
        .args(["--git-ref", "tickets/DM-7"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "keeper upload failed: {}\n{}\ngarage:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        garage.log()
    );
    let second = keeper
        .builds("demo")
        .into_iter()
        .find(|build| build["git_refs"] == json!(["tickets/DM-7"]))
        .unwrap();
    assert_eq!(second["uploaded"], true);
    assert_build_in_store(&runtime, &store, "demo", &second, &root);
    // The forms did point at the bucket, not at keeper.
    let direct = common::client()
        .post(keeper.url("/products/demo/builds/"))
        .basic_auth(keeper.token(), Some(""))
        .header("Accept", "application/vnd.ltdkeeper.v2+json")
        .json(&json!({"git_refs": ["main"]}))
        .send()
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap();
    assert_eq!(direct["post_prefix_urls"]["/"]["url"], post_url);
}
