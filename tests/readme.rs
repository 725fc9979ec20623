//! The README's "Uploading docs" walkthrough, run as written (with a free port instead of 8080):
//! `keeper serve`, a product made with curl, `keeper upload`, and the page fetched.

mod common;

use std::process::Command;

#[test]
fn the_upload_walkthrough_works_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("walkthrough start marker");
    let end = readme
        .find("<!-- walkthrough:end -->")
        .expect("walkthrough end marker");
    let block = &readme[start..end];
    let script = block
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a sh code block in the walkthrough");

    let port = common::process::free_port();
    let script = script.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("_build/html");
    std::fs::create_dir_all(html.join("guide")).unwrap();
    std::fs::write(
        html.join("index.html"),
        "<h1>Hello from the walkthrough</h1>\n",
    )
    .unwrap();
    std::fs::write(html.join("guide/index.html"), "<h1>Guide</h1>\n").unwrap();

    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_keeper"));
    let path = format!(
        "{}:{}",
        binary.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Bounded: `timeout` ends the script if the server never answers.
    let output = Command::new("timeout")
        .arg("120")
        .arg("bash")
        .arg("-c")
        .arg(format!(
            "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n{script}"
        ))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("KEEPER_BIND", format!("127.0.0.1:{port}"))
        .output()
        .expect("run bash (and coreutils' timeout)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the walkthrough failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("<h1>Hello from the walkthrough</h1>"),
        "{stdout}"
    );
    assert!(stdout.contains("uploaded 2 files"), "{stdout}");
}
