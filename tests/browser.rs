//! Published pages in a real browser (headless Chromium from Debian): on keeper's own origin a
//! page's scripts may fetch published content but not the API (issue 14, item 4).

mod common;

use common::api::Api;
use common::chrome::{require_chromium, CHROMIUM, HEADLESS};
use common::TestBackend;
use keeper::domain::Permissions;
use keeper::storage::{ObjectHeaders, ObjectStore};

/// The page's DOM after its scripts ran, as headless Chromium renders `url`.
fn rendered(url: &str) -> String {
    require_chromium();
    let profile = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(CHROMIUM)
        .args(HEADLESS)
        .args(["--virtual-time-budget=10000", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_published_page_cannot_call_the_api_from_keepers_origin() {
    let api = Api::start_with_storage(TestBackend::Sqlite, &[]);
    let admin = api.user("admin", Permissions::ALL);
    api.product(&admin, "demo");
    let page = br#"<!doctype html><html><body><pre id="out">pending</pre><script>
Promise.allSettled([
  fetch('/token').then(r => 'token:' + r.status),
  fetch('/products/').then(r => 'products:' + r.status),
  fetch('/docs/demo/other.html').then(r => r.text()).then(t => 'docs:' + t.trim()),
]).then(results => {
  document.getElementById('out').textContent =
    results.map(r => r.status === 'fulfilled' ? r.value : 'blocked').join(' ');
});
</script></body></html>"#;
    let store = api.local_store();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let html = ObjectHeaders {
        content_type: Some("text/html".into()),
        ..ObjectHeaders::default()
    };
    for (key, body) in [
        ("demo/v/__main/index.html", &page[..]),
        ("demo/v/__main/other.html", &b"<p>other</p>"[..]),
    ] {
        runtime
            .block_on(store.put(key, bytes::Bytes::copy_from_slice(body), &html))
            .unwrap();
    }

    let dom = rendered(&api.url("/docs/demo/"));
    // The page's own content is reachable; the API is not, not even its public listing.
    assert!(
        dom.contains("blocked blocked docs:<p>other</p>")
            || dom.contains("blocked blocked docs:&lt;p&gt;other&lt;/p&gt;"),
        "{dom}"
    );
}
