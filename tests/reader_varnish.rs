//! Readers through a CDN, end to end (issue 6, item 4): a real Varnish running
//! `deploy/cdn/varnish.vcl` in front of the real `keeper serve` (SQLite, the local store, the
//! worker in-process, `KEEPER_CDN=varnish` purging that Varnish, the subdomain layout), and the
//! real `keeper upload` CLI.
//!
//! What it proves: a reader who has the default edition's pages cached in Varnish
//! - never gets anything but a 200 with the old or the new page while a new build for `main` is
//!   uploaded and `__main` is rebuilt (a poller requests the pages in a tight loop throughout,
//!   both the cached URLs and cache-missing ones that reach keeper's site server, which is being
//!   rewritten underneath);
//! - never sees the old page again once it has seen the new one;
//! - gets the new page as soon as the rebuild operation is OK: only keeper's purge can evict the
//!   cached page (Varnish keeps it for a year otherwise), so with the purge missing
//!   (`KEEPER_CDN=none`) the last check fails with the old page.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::process::{free_port, generate_site, keeper_upload_succeeds, KeeperProcess};
use common::varnish::{keeper_vcl, Varnish};
use serde_json::Value;

const PRODUCT: &str = "demo";
const ROOT_DOMAIN: &str = "example.org";
/// Files in each build: enough that the rebuild (a copy per file) takes a noticeable time.
const SITE_FILES: usize = 1500;
/// The pages present in both builds, with different content, that the readers request.
const PAGES: [(&str, &str); 2] = [("/", "index.html"), ("/guide/page.html", "guide/page.html")];
/// The fewest poller requests during the rebuild for the check not to be vacuous.
const MIN_REQUESTS_DURING_REBUILD: usize = 20;
const LIMIT: Duration = Duration::from_secs(180);

/// The content of `file` in build `build` of the generated site.
fn page_body(build: u32, file: &str) -> String {
    format!("<html><body><h1>build {build}</h1><p>{file}</p></body></html>\n")
}

/// Build `build` of the site in `dir`: the generated files, with the readers' pages marked with
/// the build number.
fn write_site(dir: &Path, build: u32) -> std::path::PathBuf {
    let root = dir.join(format!("site-{build}"));
    generate_site(&root, SITE_FILES);
    for (_, file) in PAGES {
        std::fs::write(root.join(file), page_body(build, file)).unwrap();
    }
    root
}

/// Runs the real `keeper upload` of `root` for ref `main`; it must succeed (the build is then
/// confirmed and the rebuild of `__main` queued).
fn upload_for_main(keeper: &KeeperProcess, root: &Path) {
    keeper_upload_succeeds(keeper, PRODUCT, root, "main");
}

/// The build of the product whose slug is `slug`, from the API.
fn build(keeper: &KeeperProcess, slug: &str) -> Value {
    keeper
        .builds(PRODUCT)
        .into_iter()
        .find(|build| build["slug"] == slug)
        .unwrap_or_else(|| panic!("no build {slug}"))
}

fn main_edition(keeper: &KeeperProcess) -> Value {
    keeper
        .editions(PRODUCT)
        .into_iter()
        .find(|edition| edition["slug"] == "__main")
        .unwrap()
}

/// What the main thread saw of an operation while waiting for it to be OK.
struct Watched {
    /// Every distinct `state done/total` observed, in order.
    states: Vec<String>,
    /// When the operation was first seen `WORKING`.
    working_at: Option<Instant>,
    /// When it was first seen `OK`.
    ok_at: Instant,
}

/// Polls `GET /operations/<id>` (a bounded loop on its state) until it is OK; panics if it fails.
fn wait_until_ok(keeper: &KeeperProcess, id: u32) -> Watched {
    let deadline = Instant::now() + LIMIT;
    let mut states: Vec<String> = Vec::new();
    let mut working_at = None;
    loop {
        let operation = keeper.get(&format!("/operations/{id}"));
        let state = operation["state"].as_str().unwrap().to_owned();
        let seen = format!(
            "{state} {}/{}",
            operation["progress"]["done"], operation["progress"]["total"]
        );
        if states.last() != Some(&seen) {
            states.push(seen);
        }
        match state.as_str() {
            "OK" => {
                return Watched {
                    states,
                    working_at,
                    ok_at: Instant::now(),
                }
            }
            "WORKING" => {
                working_at.get_or_insert_with(Instant::now);
            }
            "READY" => {}
            other => panic!("operation {id} is {other}: {operation}\n{}", keeper.log()),
        }
        assert!(
            Instant::now() < deadline,
            "operation {id} is not OK: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The rebuild operation `id` is the rebuild of `__main` with `build`.
fn assert_main_rebuild(keeper: &KeeperProcess, id: u32, build: &Value) {
    let operation = keeper.get(&format!("/operations/{id}"));
    assert_eq!(operation["kind"], "rebuild_edition", "{operation}");
    assert_eq!(operation["build_url"], build["self_url"], "{operation}");
    assert_eq!(
        operation["edition_url"],
        main_edition(keeper)["self_url"],
        "{operation}"
    );
}

/// One response to a reader.
#[derive(Debug)]
struct Read {
    status: u16,
    cache: String,
    body: String,
}

/// A reader of `demo.example.org` through Varnish.
struct Reader {
    http: reqwest::blocking::Client,
    base: String,
}

impl Reader {
    fn new(varnish: &Varnish) -> Self {
        Self {
            http: common::client(),
            base: varnish.url(""),
        }
    }

    fn read(&self, path: &str) -> Read {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Host", format!("{PRODUCT}.{ROOT_DOMAIN}"))
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let cache = response
            .headers()
            .get("x-cache")
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        Read {
            status,
            cache,
            body: response.text().unwrap(),
        }
    }
}

/// One poller request: when it was answered, which page, by which URL, and the answer.
#[derive(Debug)]
struct Sample {
    at: Instant,
    file: &'static str,
    path: String,
    read: Read,
}

/// A thread requesting every page of [`PAGES`] through Varnish in a tight loop until stopped:
/// each at its cached URL, and at a URL with a fresh query string (a miss that reaches keeper).
struct Poller {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Sample>>,
}

impl Poller {
    fn start(reader: Reader) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            let mut round = 0u64;
            while !stopped.load(Ordering::SeqCst) {
                round += 1;
                for (path, file) in PAGES {
                    for path in [path.to_owned(), format!("{path}?poll={round}")] {
                        let read = reader.read(&path);
                        samples.push(Sample {
                            at: Instant::now(),
                            file,
                            path,
                            read,
                        });
                    }
                }
            }
            samples
        });
        Self { stop, thread }
    }

    fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// Every sample was a 200 with build 1's or build 2's page, and once a URL family (cached or
/// cache-missing, per page) showed build 2 it never showed build 1 again.
fn assert_only_old_or_new_pages(samples: &[Sample]) {
    for sample in samples {
        assert_eq!(sample.read.status, 200, "{sample:?}");
        assert!(
            sample.read.body == page_body(1, sample.file)
                || sample.read.body == page_body(2, sample.file),
            "neither build's page: {sample:?}"
        );
    }
    for (path, file) in PAGES {
        for cached in [true, false] {
            let family = samples
                .iter()
                .filter(|s| s.file == file && (s.path == path) == cached);
            let mut new_seen: Option<&Sample> = None;
            for sample in family {
                let is_new = sample.read.body == page_body(2, file);
                if let (Some(first_new), false) = (new_seen, is_new) {
                    panic!("old page after the new one: {first_new:?} then {sample:?}");
                }
                if is_new {
                    new_seen.get_or_insert(sample);
                }
            }
        }
    }
}

#[test]
fn readers_through_varnish_see_no_missing_and_no_stale_page_across_a_rebuild() {
    let started = Instant::now();
    let varnish_port = free_port();
    let varnish_url = format!("http://127.0.0.1:{varnish_port}");
    let keeper = KeeperProcess::start(&[
        ("KEEPER_SERVE_RUNS_WORKER", "true"),
        ("KEEPER_WORKER_POLL_MS", "50"),
        // Fewer copies at once: a longer rebuild (about a second), so more reads land in it.
        ("KEEPER_COPY_CONCURRENCY", "2"),
        ("KEEPER_SITES_ROOT_DOMAIN", ROOT_DOMAIN),
        ("KEEPER_CDN", "varnish"),
        ("KEEPER_VARNISH_URLS", &varnish_url),
    ]);
    let keeper_port: u16 = keeper.base.rsplit(':').next().unwrap().parse().unwrap();
    let varnish = Varnish::start_on(keeper_vcl(keeper_port), varnish_port);
    keeper.create_product(PRODUCT);
    let work = tempfile::tempdir().unwrap();

    // Build 1 published on __main: its rebuild runs to OK.
    upload_for_main(&keeper, &write_site(work.path(), 1));
    let build_1 = build(&keeper, "1");
    let first = keeper.rebuild_id("__main", "1");
    assert_main_rebuild(&keeper, first, &build_1);
    wait_until_ok(&keeper, first);
    assert_eq!(main_edition(&keeper)["build_url"], build_1["self_url"]);

    // A reader reads the pages twice: the second read is served from Varnish's cache.
    let reader = Reader::new(&varnish);
    for (path, file) in PAGES {
        let first = reader.read(path);
        assert_eq!(
            (first.status, first.body.as_str()),
            (200, page_body(1, file).as_str())
        );
        let second = reader.read(path);
        assert_eq!(
            (second.status, second.cache.as_str(), second.body.as_str()),
            (200, "HIT", page_body(1, file).as_str()),
            "{path} is not cached"
        );
    }

    // Build 2 for main, uploaded and rebuilt on __main while a poller reads the pages.
    let site_2 = write_site(work.path(), 2);
    let poller = Poller::start(Reader::new(&varnish));
    upload_for_main(&keeper, &site_2);
    let confirmed_at = Instant::now();
    let build_2 = build(&keeper, "2");
    let second = keeper.rebuild_id("__main", "2");
    assert_main_rebuild(&keeper, second, &build_2);
    let rebuild = wait_until_ok(&keeper, second);
    let samples = poller.stop();

    let during_rebuild = samples
        .iter()
        .filter(|s| s.at > confirmed_at && s.at < rebuild.ok_at)
        .count();
    let while_working = rebuild.working_at.map_or(0, |working_at| {
        samples
            .iter()
            .filter(|s| s.at > working_at && s.at < rebuild.ok_at)
            .count()
    });
    eprintln!(
        "{} poller requests, {during_rebuild} between build 2's confirmation and the rebuild's \
         OK, {while_working} while it was seen WORKING; operation states {:?}; rebuild observed \
         for {:?}",
        samples.len(),
        rebuild.states,
        rebuild.ok_at - confirmed_at
    );
    assert!(
        rebuild.working_at.is_some(),
        "the rebuild was never seen WORKING: {:?}",
        rebuild.states
    );
    assert!(
        while_working >= MIN_REQUESTS_DURING_REBUILD,
        "only {while_working} poller requests while the rebuild was WORKING"
    );
    assert_only_old_or_new_pages(&samples);
    assert_eq!(main_edition(&keeper)["build_url"], build_2["self_url"]);

    // Once the operation is OK, the reader gets build 2's pages: the purge evicted build 1's.
    for (path, file) in PAGES {
        let read = reader.read(path);
        assert_eq!(
            (read.status, read.body.as_str()),
            (200, page_body(2, file).as_str()),
            "stale {path} after the rebuild: {read:?}\n{}",
            keeper.log()
        );
    }
    eprintln!("the test took {:?}", started.elapsed());
    drop(varnish);
}
