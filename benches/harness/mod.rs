//! The entry point the benchmarks share (they run without libtest's harness).

use std::future::Future;

/// Runs `bench` on a two-thread runtime under `cargo bench`; under `cargo test`/`nextest`
/// (which list and run every target) it does nothing.
pub fn run<F: Future<Output = ()>>(name: &str, bench: impl FnOnce() -> F) {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|arg| arg == "--list") {
        // Test runners list a harness-less target's tests: there are none.
        return;
    }
    if !args.iter().any(|arg| arg == "--bench") {
        println!("{name} benchmark: run it with `cargo bench --bench {name}`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}
