//! Readers find their way (issue 15), end to end with real tools: a Sphinx site built with
//! pydata-sphinx-theme (`KEEPER_TEST_SPHINX`, installed by `scripts/install-sphinx`) reading
//! keeper's `switcher.json`, uploaded for two versions with the real `ltd upload`
//! (`KEEPER_TEST_LTD`) to a real `keeper serve`, opened in headless Chromium. Screenshots of the
//! dashboard and the open switcher are written under `target/screenshots/`.

mod common;

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::chrome::Browser;
use common::client;
use common::process::{ltd_upload_succeeds, output_text, wait_for, KeeperProcess};

fn tool(variable: &str, script: &str) -> PathBuf {
    let path = std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: ./scripts/test sets it (scripts/{script} installs the tool)")
    });
    assert!(
        Path::new(&path).exists(),
        "{variable}={path} does not exist"
    );
    PathBuf::from(path)
}

/// A small Sphinx project whose version switcher reads `switcher_url`, with a `404.html` of
/// its own; built into `out` as edition `edition`.
fn build_site(sphinx: &Path, work: &Path, switcher_url: &str, edition: &str, out: &Path) {
    let source = work.join("source");
    std::fs::create_dir_all(source.join("extra")).unwrap();
    std::fs::write(
        source.join("conf.py"),
        r#"import os
project = "Demo"
html_theme = "pydata_sphinx_theme"
html_theme_options = {
    # The two lines a project adds to read keeper's version list (see the README).
    "switcher": {"json_url": os.environ["SWITCHER_URL"], "version_match": os.environ["EDITION"]},
    "navbar_end": ["version-switcher", "navbar-icon-links"],
    "check_switcher": False,
}
# Without it the theme itself logs a console error on a first visit ("Got invalid theme
# mode"), whatever serves it.
html_context = {"default_mode": "auto"}
html_extra_path = ["extra"]
"#,
    )
    .unwrap();
    std::fs::write(
        source.join("index.rst"),
        format!("Demo {edition}\n==========\n\nThe {edition} docs.\n\n.. toctree::\n\n   guide\n"),
    )
    .unwrap();
    std::fs::write(source.join("guide.rst"), "Guide\n=====\n\nHow to use it.\n").unwrap();
    std::fs::write(
        source.join("extra/404.html"),
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not in the demo \
         docs</title></head><body><h1>Not in the demo docs</h1><p><a href=\"/docs/demo/\">Back \
         to the demo docs</a></p></body></html>\n",
    )
    .unwrap();
    let output = Command::new(sphinx)
        .args(["-b", "html", "-q"])
        .arg(&source)
        .arg(out)
        .env("SWITCHER_URL", switcher_url)
        .env("EDITION", edition)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", output_text(&output));
}

fn settle(keeper: &KeeperProcess) {
    wait_for("the operations queue", Duration::from_secs(120), || {
        keeper
            .lines("SELECT state AS line FROM operations WHERE state IN ('READY', 'WORKING')")
            .is_empty()
    });
    let failed = keeper.lines(
        "SELECT kind || ': ' || COALESCE(message, '') AS line FROM operations WHERE state = 'FAILED'",
    );
    assert!(failed.is_empty(), "{failed:?}\n{}", keeper.log());
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")
}

/// `href` and `src` attribute values of an HTML page.
fn links(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["href=\"", "src=\""] {
        let mut rest = html;
        while let Some(start) = rest.find(attribute) {
            rest = &rest[start + attribute.len()..];
            let Some(end) = rest.find('"') else { break };
            found.push(rest[..end].replace("&amp;", "&"));
            rest = &rest[end..];
        }
    }
    found
}

/// Every same-origin link reachable from `start` (pages under `/docs/` followed), each fetched;
/// the ones that do not answer 200 after redirects, with the page that linked them.
fn broken_links(start: &str) -> (usize, Vec<String>) {
    let origin = url::Url::parse(start).unwrap();
    // Redirects are followed: a link that ends on a page is not broken.
    let http = reqwest::blocking::Client::new();
    let mut seen = BTreeSet::from([start.to_owned()]);
    let mut queue = VecDeque::from([(start.to_owned(), String::from("(start)"))]);
    let mut broken = Vec::new();
    while let Some((url, from)) = queue.pop_front() {
        assert!(seen.len() < 2_000, "the crawl does not end");
        let response = http.get(&url).send().unwrap();
        if response.status() != 200 {
            broken.push(format!("{url} ({}) linked from {from}", response.status()));
            continue;
        }
        let html = response
            .headers()
            .get("content-type")
            .is_some_and(|t| t.to_str().unwrap_or_default().starts_with("text/html"));
        let page = response.url().clone();
        let body = response.text().unwrap();
        if !html || !page.path().starts_with("/docs/") {
            continue;
        }
        for link in links(&body) {
            if link.starts_with("mailto:") || link.starts_with("javascript:") {
                continue;
            }
            let Ok(mut target) = page.join(&link) else {
                broken.push(format!("{link:?} (unparsable) linked from {page}"));
                continue;
            };
            target.set_fragment(None);
            if target.origin() != origin.origin() {
                continue;
            }
            if seen.insert(target.to_string()) {
                queue.push_back((target.to_string(), page.to_string()));
            }
        }
    }
    (seen.len(), broken)
}

/// Errors other than the page's own 404 (a 404 page's document load is reported as one).
fn errors_besides_own_404(browser: &mut Browser, url: &str) -> Vec<String> {
    browser
        .errors()
        .into_iter()
        .filter(|error| !(error.starts_with(&format!("network {url}:")) && error.contains("404")))
        .collect()
}

#[test]
fn a_real_theme_lists_keepers_editions_and_the_embedded_site_has_no_broken_link() {
    let sphinx = tool("KEEPER_TEST_SPHINX", "install-sphinx");
    let keeper = KeeperProcess::start(&[("KEEPER_SERVE_RUNS_WORKER", "true")]);
    keeper.create_product("demo");
    keeper.create_product("plain");
    let work = tempfile::tempdir().unwrap();
    let switcher_url = keeper.url("/docs/demo/v/switcher.json");
    for (edition, git_ref) in [("v1.0", "v1.0"), ("__main", "main")] {
        let out = work.path().join(format!("html-{edition}"));
        build_site(
            &sphinx,
            &work.path().join(edition),
            &switcher_url,
            edition,
            &out,
        );
        ltd_upload_succeeds(&keeper, "demo", &out, git_ref);
    }
    settle(&keeper);

    let mut browser = Browser::launch();
    let main_url = keeper.url("/docs/demo/");
    browser.open(&main_url);
    // The theme fetches switcher.json and fills the menu.
    let entries = browser.eval(
        "new Promise((done, fail) => {
            const started = Date.now();
            const look = () => {
                // The theme fills one menu in the header and a copy for narrow screens.
                const menu = document.querySelector('.version-switcher__menu');
                const items = [...menu.querySelectorAll('a')];
                if (items.length >= 2) {
                    done(items.map(a => ({name: a.textContent, href: a.href,
                        active: a.classList.contains('active')})));
                } else if (Date.now() - started > 20000) {
                    fail(new Error('the version switcher was not filled'));
                } else {
                    setTimeout(look, 50);
                }
            };
            look();
        })",
    );
    let entries = entries.as_array().unwrap();
    let hrefs: Vec<&str> = entries
        .iter()
        .map(|e| e["href"].as_str().unwrap())
        .collect();
    assert_eq!(
        hrefs,
        [
            keeper.url("/docs/demo/index.html"),
            keeper.url("/docs/demo/v/v1.0/index.html")
        ]
    );
    assert_eq!(entries[0]["name"], "Latest");
    assert_eq!(entries[0]["active"], true, "{entries:?}");
    assert_eq!(entries[1]["name"], "v1.0");
    assert_eq!(browser.errors(), Vec::<String>::new());
    browser.eval("document.querySelector('.version-switcher__button').click()");
    browser.eval("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))");
    browser.screenshot(&screenshots().join("version-switcher.png"));
    for href in &hrefs {
        assert_eq!(client().get(*href).send().unwrap().status(), 200, "{href}");
        browser.open(href);
        assert_eq!(browser.errors(), Vec::<String>::new(), "{href}");
    }
    // The v1.0 pages' switcher marks v1.0.
    let active = browser.eval(
        "new Promise(done => { const look = () => { const a = document.querySelector(\
         '.version-switcher__menu a.active'); a ? done(a.textContent) : setTimeout(look, 50); }; \
         look(); })",
    );
    assert_eq!(active, "v1.0");

    // The dashboards, the product list, keeper's 404 and the product's own 404.html.
    browser.open(&keeper.url("/docs/demo/v/"));
    assert_eq!(browser.errors(), Vec::<String>::new());
    let titles = browser.eval("[...document.querySelectorAll('a.title')].map(a => a.textContent)");
    assert_eq!(titles, serde_json::json!(["Latest", "v1.0"]));
    browser.screenshot(&screenshots().join("dashboard.png"));
    browser.open(&keeper.url("/docs/"));
    assert_eq!(browser.errors(), Vec::<String>::new());
    let products =
        browser.eval("[...document.querySelectorAll('a.title')].map(a => a.textContent)");
    assert_eq!(products, serde_json::json!(["demo", "plain"]));

    let keeper_404 = keeper.url("/docs/plain/missing.html");
    browser.open(&keeper_404);
    assert_eq!(
        errors_besides_own_404(&mut browser, &keeper_404),
        Vec::<String>::new()
    );
    let heading = browser.eval("document.querySelector('h1').textContent");
    assert_eq!(heading, "Page not found");
    let back = browser.eval("[...document.querySelectorAll('main a')].map(a => a.href)");
    assert_eq!(
        back,
        serde_json::json!([
            keeper.url("/docs/plain/"),
            keeper.url("/docs/plain/v/"),
            keeper.url("/docs/plain/builds/"),
            keeper.url("/docs/")
        ])
    );
    let own_404 = keeper.url("/docs/demo/v/v1.0/no/such/page.html");
    let response = client().get(&own_404).send().unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().unwrap().contains("Not in the demo docs"));
    browser.open(&own_404);
    assert_eq!(
        errors_besides_own_404(&mut browser, &own_404),
        Vec::<String>::new()
    );
    assert_eq!(
        browser.eval("document.title"),
        serde_json::json!("Not in the demo docs")
    );

    // A browser at keeper's root is sent to the product list; every link from it works.
    let root = client()
        .get(keeper.url("/"))
        .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .unwrap();
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()["location"], keeper.url("/docs/").as_str());
    let (crawled, broken) = broken_links(&keeper.url("/docs/"));
    assert!(
        broken.is_empty(),
        "{} broken links:\n{}",
        broken.len(),
        broken.join("\n")
    );
    assert!(crawled > 40, "only {crawled} links were crawled");
    eprintln!(
        "crawled {crawled} links; screenshots in {}",
        screenshots().display()
    );
}
