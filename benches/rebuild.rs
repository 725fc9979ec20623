//! Rebuild time of a 10,000-object build into an edition against the in-process S3 server
//! (s3s + s3s-fs, SigV4 checked), side by side with:
//! - the baseline: the original Keeper's algorithm re-created here: delete the edition first,
//!   then for each object, sequentially, HeadObject then CopyObject;
//! - the ceiling: a bare concurrent CopyObject loop (no HEAD, no listing), the server's limit.
//!
//! Two settings: loopback as is (the server's CPU is the limit), and a fixed 20 ms delay on every
//! S3 request (a stand-in for a real S3 round trip). keeper's figure is the storage part of
//! `rebuild_edition` from a sealed build (the purge and the database writes are a constant few
//! requests): the manifest read (checked against its digest), one conditional CopyObject per
//! object with `CONCURRENCY` in flight, and the leftovers found from the previous build's
//! manifest (the edition showed the same build before, so none). The seal's own cost (listing,
//! a HEAD per object, the manifest's write), paid once per build, is printed beside it, and so
//! is the unsealed pipeline keeper used before builds were sealed (`ops::copy::mirror`: a HEAD
//! and a copy per object, plus listings). The ceiling has `CONCURRENCY` copies in flight.
//!
//! Memory: during a sealed rebuild of 2,000 and of 10,000 objects, the peak growth of the heap in
//! use (counted by this binary's allocator while the rebuild runs, the in-process server's
//! allocations included) and the process's peak RSS (reset before each through
//! `/proc/self/clear_refs`; it also keeps what the allocator retained from earlier work).
//! `BENCH_MEMORY_ONLY=1` stops after these two figures.
//!
//! Under the delay the sequential baseline is measured on a slice of 500 objects and scaled
//! linearly to 10,000 (it is sequential, so its time is linear in the object count; all of it
//! takes about 8 minutes). `BENCH_FULL_BASELINE=1` measures all 10,000.
//!
//! With `KEEPER_TEST_GARAGE` set to a `garage` binary (as `./scripts/test` installs), a third
//! setting runs the same on loopback against Garage, a production S3 server in its own process,
//! whose listing is indexed (s3s-fs walks the whole bucket for every listing page).
//!
//! `cargo bench --bench rebuild` runs it; under `cargo test`/`nextest` it does nothing.

#[path = "../tests/storage_support/mod.rs"]
mod storage_support;

mod harness;

#[allow(dead_code)] // The benchmark uses part of the tests' helper.
#[path = "../tests/common/garage.rs"]
mod garage;

/// What `garage` needs of the tests' process helpers.
mod process {
    pub fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    }
}

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::types::MetadataDirective;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use keeper::domain::{BucketPrefix, BuildSlug, EditionSlug, ProductSlug};
use keeper::ops::copy::{
    copy_manifest, delete_missing_from, delete_prefix, manifest_keys, mirror, remove_leftovers,
    LEFTOVER_LIMIT,
};
use keeper::ops::manifest;
use keeper::ops::ProgressCounter;
use keeper::storage::s3::S3Store;
use keeper::storage::{Metadata, ObjectHeaders, ObjectStore, ObjectSummary};

const OBJECTS: usize = 10_000;
const CONCURRENCY: usize = 32;
const RUNS: usize = 5;
const DELAY: Duration = Duration::from_millis(20);
/// Objects the baseline copies under the delay before its time is scaled to `OBJECTS`.
const BASELINE_SLICE_WITH_DELAY: usize = 500;

fn main() {
    harness::run("rebuild", run);
}

struct Bench {
    s3: S3Store,
    store: Arc<dyn ObjectStore>,
    product: ProductSlug,
    build_slug: BuildSlug,
    build: BucketPrefix,
    sources: Vec<String>,
}

async fn run() {
    // The server's files on a tmpfs when there is one: on loopback the measurement is then bound
    // by CPU, not by the disk's writeback, which made run-to-run figures differ by half.
    let shm = std::path::Path::new("/dev/shm");
    let root = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let server = storage_support::S3TestServer::start_in(&root, false).await;
    println!(
        "rebuild of a {OBJECTS}-object build into an edition over loopback HTTP, concurrency \
         {CONCURRENCY}, median of {RUNS} runs"
    );
    let bench = Bench::new(server.store(1000).await, "1", OBJECTS).await;
    bench
        .memory(&Bench::new(server.store(1000).await, "2", 2_000).await)
        .await;
    if std::env::var_os("BENCH_MEMORY_ONLY").is_some() {
        return;
    }

    println!(
        "\ns3s-fs (in-process, files in {}), loopback, no delay per S3 request:",
        root.display()
    );
    bench.setting("s3s", false).await;
    server.traffic.set_delay(DELAY);
    println!(
        "\ns3s-fs (in-process), {} ms delay per S3 request:",
        DELAY.as_millis()
    );
    bench.setting("s3sdelay", true).await;
    // A production S3 server too, in its own process, when the test suite's Garage is at hand.
    match std::env::var_os("KEEPER_TEST_GARAGE") {
        Some(_) => {
            let garage = tokio::task::block_in_place(garage::Garage::start);
            let bench = Bench::new(garage.store().await, "1", OBJECTS).await;
            println!("\nGarage 2.5.0 (its own process, sqlite metadata), loopback, no delay:");
            bench.setting("garage", false).await;
        }
        None => println!("\n(set KEEPER_TEST_GARAGE to a garage binary to measure Garage too)"),
    }
}

impl Bench {
    /// Uploads a build of `objects` objects to the store `s3` is connected to.
    async fn new(s3: S3Store, slug: &str, objects: usize) -> Self {
        let store: Arc<dyn ObjectStore> = Arc::new(s3.clone());
        let product = ProductSlug::parse("bench").expect("slug");
        let build_slug = BuildSlug::parse(slug).expect("slug");
        let build = BucketPrefix::build(&product, &build_slug);
        let headers = ObjectHeaders {
            content_type: Some("text/html".into()),
            cache_control: Some("max-age=31536000".into()),
            metadata: Metadata::from([("surrogate-key".into(), "buildkey".into())]),
            ..ObjectHeaders::default()
        };
        let sources: Vec<String> = (0..objects)
            .map(|i| format!("{}d{}/page{i:05}.html", build.as_str(), i % 20))
            .collect();
        futures::stream::iter(sources.clone())
            .map(|key| {
                let (store, headers) = (store.clone(), headers.clone());
                async move {
                    let body = Bytes::from(format!("<p>{key}</p>").repeat(20));
                    store.put(&key, body, &headers).await
                }
            })
            .buffer_unordered(64)
            .try_collect::<Vec<()>>()
            .await
            .expect("upload the build");
        Bench {
            s3,
            store,
            product,
            build_slug,
            build,
            sources,
        }
    }

    /// Peak heap growth and peak RSS during a sealed rebuild of `small`'s build and of this one's.
    async fn memory(&self, small: &Bench) {
        let mut line = String::from("memory during a sealed rebuild:");
        for bench in [small, self] {
            let digest = bench.seal().await.0;
            let edition = BucketPrefix::edition(
                &bench.product,
                &EditionSlug::parse(&format!("rss{}", bench.build_slug)).expect("slug"),
            );
            reset_peak_rss();
            counting::start();
            bench.sealed_into(&edition, &digest).await;
            let heap = counting::stop();
            bench.clear(&edition).await;
            counting::start();
            bench.ceiling_into(&edition).await;
            let ceiling_heap = counting::stop();
            bench.clear(&edition).await;
            line.push_str(&format!(
                " {} objects: heap +{:.1} MiB at most (a bare copy loop: +{:.1} MiB), peak RSS \
                 {:.1} MiB;",
                bench.sources.len(),
                heap as f64 / (1024.0 * 1024.0),
                ceiling_heap as f64 / (1024.0 * 1024.0),
                peak_rss_kib() as f64 / 1024.0
            ));
        }
        println!("{}", line.trim_end_matches(';'));
    }

    /// Seals the build; returns the digest and the time it took.
    async fn seal(&self) -> (String, f64) {
        let started = Instant::now();
        let sealed = manifest::seal(&self.store, &self.product, &self.build_slug, CONCURRENCY)
            .await
            .expect("seal");
        assert_eq!(sealed.objects as usize, self.sources.len());
        (sealed.digest, started.elapsed().as_secs_f64())
    }

    /// [`Bench::sealed_into`], then the edition emptied again.
    async fn sealed(&self, edition: &BucketPrefix, digest: &str) -> f64 {
        let elapsed = self.sealed_into(edition, digest).await;
        self.clear(edition).await;
        elapsed
    }

    /// keeper's rebuild from the sealed build: the manifest read, one conditional copy per
    /// object, the leftovers from the previous build's manifest (the same build: none).
    async fn sealed_into(&self, edition: &BucketPrefix, digest: &str) -> f64 {
        let progress = Arc::new(ProgressCounter::new());
        let open = || manifest::open(&self.store, &self.product, &self.build_slug, digest);
        let started = Instant::now();
        let entries = open().await.expect("open the manifest").entries;
        copy_manifest(
            &self.store,
            entries,
            &self.build,
            edition,
            "editionkey",
            CONCURRENCY,
            &progress,
        )
        .await
        .expect("copy");
        let present = manifest_keys(open().await.expect("open the manifest").entries);
        let kept = manifest_keys(open().await.expect("open the manifest").entries);
        let removed = delete_missing_from(&self.store, edition, present, kept, CONCURRENCY)
            .await
            .expect("leftovers");
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(removed, 0);
        assert_eq!(progress.snapshot().done as usize, self.sources.len());
        elapsed
    }

    /// Measures and prints one setting; `name` keeps its editions apart from other settings'.
    /// With `delayed` the sequential baseline is timed on a slice and scaled, unless
    /// `BENCH_FULL_BASELINE=1`.
    async fn setting(&self, name: &str, delayed: bool) {
        let mut edition = 0usize;
        let mut next_edition = || {
            edition += 1;
            BucketPrefix::edition(
                &self.product,
                &EditionSlug::parse(&format!("{name}{edition}")).expect("slug"),
            )
        };
        let mut sealed = Vec::new();
        let mut keeper = Vec::new();
        let mut ceiling = Vec::new();
        let mut baseline = Vec::new();
        let mut seals = Vec::new();
        let mut digest = String::new();
        for _ in 0..3 {
            let (sealed_with, seconds) = self.seal().await;
            (digest, seals) = (sealed_with, [seals, vec![seconds]].concat());
        }
        for _ in 0..RUNS {
            sealed.push(self.sealed(&next_edition(), &digest).await);
            ceiling.push(self.ceiling(&next_edition()).await);
            keeper.push(self.keeper(&next_edition()).await);
        }
        let full_baseline = std::env::var("BENCH_FULL_BASELINE").is_ok_and(|value| value == "1");
        let slice = if !delayed || full_baseline {
            OBJECTS
        } else {
            BASELINE_SLICE_WITH_DELAY
        };
        let baseline_runs = if delayed { 1 } else { RUNS };
        for _ in 0..baseline_runs {
            let seconds = self.baseline(&next_edition(), slice).await;
            baseline.push(seconds * OBJECTS as f64 / slice as f64);
        }
        let mut listing = Vec::new();
        let mut heads = Vec::new();
        for _ in 0..RUNS {
            listing.push(self.listing().await);
            heads.push(self.heads().await);
        }
        let (listing, heads) = (median(listing), median(heads));
        let (k, c, b) = (median(keeper), median(ceiling), median(baseline));
        let (s, seal) = (median(sealed), median(seals));
        println!(
            "  keeper rebuild, sealed build {s:>8.2} s  {:>7.0} objects/s  = {:.0}% of the ceiling, \
             {:.1}x the baseline",
            OBJECTS as f64 / s,
            100.0 * c / s,
            b / s
        );
        println!(
            "  the seal (once per build: listing + HEAD per object + manifest write) {seal:.2} s"
        );
        println!(
            "  unsealed pipeline (HEAD + copy per object, as before) {k:>8.2} s  {:>7.0} objects/s",
            OBJECTS as f64 / k
        );
        println!(
            "  ceiling (bare copy) {c:>8.2} s  {:>7.0} objects/s",
            OBJECTS as f64 / c
        );
        println!(
            "  baseline (original) {b:>8.2} s  {:>7.0} objects/s{}",
            OBJECTS as f64 / b,
            if slice < OBJECTS {
                format!(" (measured on {slice} objects, scaled)")
            } else {
                String::new()
            }
        );
        println!(
            "  unsealed pipeline vs baseline: {:.1}x faster; {:.0}% of the ceiling",
            b / k,
            100.0 * c / k
        );
        println!(
            "  (one listing of the build alone, {} pages, takes {listing:.2} s: part of keeper's \
             and the baseline's work, not of the ceiling's)",
            OBJECTS.div_ceil(1000)
        );
        println!(
            "  (a bare concurrent HeadObject loop over the build takes {heads:.2} s: each copy needs \
             one, since a copy's headers are resent whole)"
        );
        if !delayed {
            // When the CPU is the limit, work adds up: a rebuild that reads each object's
            // headers does at least the ceiling's copies, a HEAD per object and one listing.
            let floor = c + heads + listing;
            println!(
                "  unsealed pipeline = {:.0}% of its work floor (ceiling + HEAD loop + listing = \
                 {floor:.2} s)",
                100.0 * floor / k
            );
        }
    }

    /// A bare concurrent HeadObject loop over the build's keys.
    async fn heads(&self) -> f64 {
        let started = Instant::now();
        futures::stream::iter(self.sources.iter())
            .map(|key| self.store.head(key))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await
            .expect("head");
        started.elapsed().as_secs_f64()
    }

    /// keeper's rebuild storage steps: one listing pass of each prefix, concurrent copies with
    /// the edition's surrogate key, then the leftovers' deletion.
    async fn keeper(&self, edition: &BucketPrefix) -> f64 {
        let progress = Arc::new(ProgressCounter::new());
        let started = Instant::now();
        let leftovers = mirror(
            &self.store,
            &self.build,
            edition,
            "editionkey",
            CONCURRENCY,
            LEFTOVER_LIMIT,
            &progress,
        )
        .await
        .expect("mirror");
        remove_leftovers(&self.store, &self.build, edition, leftovers, CONCURRENCY)
            .await
            .expect("leftovers");
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(progress.snapshot().done as usize, OBJECTS);
        self.clear(edition).await;
        elapsed
    }

    /// One listing pass of the build prefix, as a rebuild starts with.
    async fn listing(&self) -> f64 {
        let started = Instant::now();
        let pages: Vec<Vec<ObjectSummary>> = self
            .store
            .list(self.build.as_str())
            .try_collect()
            .await
            .expect("list");
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(pages.iter().map(Vec::len).sum::<usize>(), OBJECTS);
        elapsed
    }

    /// [`Bench::ceiling_into`], then the edition emptied again.
    async fn ceiling(&self, edition: &BucketPrefix) -> f64 {
        let elapsed = self.ceiling_into(edition).await;
        self.clear(edition).await;
        elapsed
    }

    /// A bare concurrent CopyObject (REPLACE) loop over known keys and headers.
    async fn ceiling_into(&self, edition: &BucketPrefix) -> f64 {
        let started = Instant::now();
        futures::stream::iter(self.sources.iter())
            .map(|from| {
                let to = format!("{}{}", edition.as_str(), &from[self.build.as_str().len()..]);
                let client = self.s3.client().clone();
                let bucket = self.s3.bucket().to_owned();
                async move {
                    client
                        .copy_object()
                        .bucket(&bucket)
                        .key(to)
                        .copy_source(format!("{bucket}/{from}"))
                        .metadata_directive(MetadataDirective::Replace)
                        .content_type("text/html")
                        .cache_control("max-age=31536000")
                        .metadata("surrogate-key", "editionkey")
                        .send()
                        .await
                        .map(|_| ())
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .expect("copy");
        started.elapsed().as_secs_f64()
    }

    /// The original algorithm: delete the edition, then HEAD + COPY each object in turn.
    async fn baseline(&self, edition: &BucketPrefix, objects: usize) -> f64 {
        let overrides = Metadata::from([("surrogate-key".into(), "editionkey".into())]);
        let started = Instant::now();
        delete_prefix(&self.store, edition, 1)
            .await
            .expect("delete the edition");
        for from in self.sources.iter().take(objects) {
            let to = format!("{}{}", edition.as_str(), &from[self.build.as_str().len()..]);
            // S3Store::copy is HeadObject then CopyObject with the headers read.
            self.store.copy(from, &to, &overrides).await.expect("copy");
        }
        let elapsed = started.elapsed().as_secs_f64();
        self.clear(edition).await;
        elapsed
    }

    async fn clear(&self, edition: &BucketPrefix) {
        delete_prefix(&self.store, edition, CONCURRENCY)
            .await
            .expect("clear");
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Resets the process's peak RSS (VmHWM) to its current RSS (Linux 4.0 and later).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak RSS since the last reset, in KiB (0 where /proc is missing).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Counts the heap in use while switched on: the peak growth over a window of the benchmark.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

    struct Counting;

    static ON: AtomicBool = AtomicBool::new(false);
    static CURRENT: AtomicIsize = AtomicIsize::new(0);
    static PEAK: AtomicIsize = AtomicIsize::new(0);

    fn grew(bytes: usize) {
        if ON.load(Ordering::Relaxed) {
            let now = CURRENT.fetch_add(bytes as isize, Ordering::Relaxed) + bytes as isize;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
    }

    fn shrank(bytes: usize) {
        if ON.load(Ordering::Relaxed) {
            CURRENT.fetch_sub(bytes as isize, Ordering::Relaxed);
        }
    }

    // SAFETY: every call is forwarded to the system allocator unchanged; only counters move.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: as the caller promised for `layout`.
            let pointer = unsafe { System.alloc(layout) };
            if !pointer.is_null() {
                grew(layout.size());
            }
            pointer
        }

        unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
            shrank(layout.size());
            // SAFETY: `pointer` was allocated by `System` with `layout`.
            unsafe { System.dealloc(pointer, layout) }
        }

        unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
            // SAFETY: as the caller promised for `pointer` and `layout`.
            let moved = unsafe { System.realloc(pointer, layout, size) };
            if !moved.is_null() {
                shrank(layout.size());
                grew(size);
            }
            moved
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    /// Counts from zero from now on.
    pub fn start() {
        CURRENT.store(0, Ordering::SeqCst);
        PEAK.store(0, Ordering::SeqCst);
        ON.store(true, Ordering::SeqCst);
    }

    /// Stops counting; the peak growth of the heap in use since [`start`], in bytes.
    pub fn stop() -> usize {
        ON.store(false, Ordering::SeqCst);
        PEAK.load(Ordering::SeqCst).max(0) as usize
    }
}
