//! The process's Prometheus metrics (`prometheus-client`), exposed at `/metrics` by
//! `keeper serve` (and by `keeper worker` on `KEEPER_WORKER_METRICS_BIND`).
//!
//! One registry per process, reached through [`metrics()`], so that every layer counts where
//! the event happens without passing a handle down. Labels hold closed vocabularies only:
//! route templates (never paths), operation kinds and outcomes, error kinds, so the number of
//! series is bounded whatever the traffic. The queue's gauges (operations by kind and state,
//! the oldest READY operation's age) are read from the database when `/metrics` is scraped.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The matched route's template (`/products/{slug}`), `site` for published pages, or
    /// `unmatched`.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub kind: String,
    /// `ok`, `retry` (the attempt failed, another follows) or `failed`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub kind: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// A closed vocabulary per source: `timeout`, `throttled`, `server`, `client`, `network`...
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `idle` or `in_use`.
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildInfoLabels {
    pub version: String,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram>,
    pub operations_run: Family<OperationLabels, Counter>,
    pub operation_duration: Family<OperationLabels, Histogram>,
    pub objects_copied: Counter,
    pub storage_errors: Family<ErrorLabels, Counter>,
    pub cdn_errors: Family<ErrorLabels, Counter>,
    pub purges: Counter,
    pub logins_failed: Counter,
    pub logins_throttled: Counter,
    pub operations: Family<QueueLabels, Gauge>,
    pub oldest_ready_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub db_connections: Family<PoolLabels, Gauge>,
}

fn seconds_histogram() -> Histogram {
    // 1 ms to about 9 minutes.
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("keeper");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests handled, by method, route template and status",
            http_requests.clone(),
        );
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to handle an HTTP request, by method and route template",
            http_duration.clone(),
        );
        let operations_run = Family::<OperationLabels, Counter>::default();
        registry.register(
            "operation_attempts",
            "Operation attempts this process ran, by kind and outcome",
            operations_run.clone(),
        );
        let operation_duration = Family::<OperationLabels, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        registry.register(
            "operation_duration_seconds",
            "Time an operation attempt took, by kind and outcome",
            operation_duration.clone(),
        );
        let objects_copied = Counter::default();
        registry.register(
            "objects_copied",
            "Objects copied into editions (rebuilds and renames)",
            objects_copied.clone(),
        );
        let storage_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "storage_errors",
            "Failed object-store requests (after the client's own retries), by kind",
            storage_errors.clone(),
        );
        let cdn_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "cdn_errors",
            "Failed CDN purge requests, by kind",
            cdn_errors.clone(),
        );
        let purges = Counter::default();
        registry.register("purges", "CDN purges that succeeded", purges.clone());
        let logins_failed = Counter::default();
        registry.register(
            "logins_failed",
            "Password logins refused for a wrong user name or password",
            logins_failed.clone(),
        );
        let logins_throttled = Counter::default();
        registry.register(
            "logins_throttled",
            "Password logins answered 429 before any check (too many failures)",
            logins_throttled.clone(),
        );
        let operations = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "operations",
            "Operations in the database, by kind and state (read at scrape time)",
            operations.clone(),
        );
        let oldest_ready_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "queue_oldest_ready_age_seconds",
            "Age of the oldest READY operation that is due, 0 when none (read at scrape time)",
            oldest_ready_age.clone(),
        );
        let db_connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections, idle or in use",
            db_connections.clone(),
        );
        let build_info = Family::<BuildInfoLabels, Gauge>::default();
        registry.register(
            "build_info",
            "Always 1; the version keeper was built as",
            build_info.clone(),
        );
        build_info
            .get_or_create(&BuildInfoLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        Self {
            registry,
            http_requests,
            http_duration,
            operations_run,
            operation_duration,
            objects_copied,
            storage_errors,
            cdn_errors,
            purges,
            logins_failed,
            logins_throttled,
            operations,
            oldest_ready_age,
            db_connections,
        }
    }

    /// Counts a handled request.
    pub fn record_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts an operation attempt of `kind` that ended with `outcome`.
    pub fn record_operation(&self, kind: &str, outcome: &str, elapsed: Duration) {
        let labels = OperationLabels {
            kind: kind.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.operations_run.get_or_create(&labels).inc();
        self.operation_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a failed object-store request.
    pub fn storage_error(&self, kind: &str) {
        self.storage_errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts a failed CDN purge request.
    pub fn cdn_error(&self, kind: &str) {
        self.cdn_errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Replaces the queue's gauges with `counts` (kind, state, count) and the oldest READY age.
    pub fn set_queue(&self, counts: &[(String, String, i64)], oldest_ready: Option<Duration>) {
        self.operations.clear();
        for (kind, state, count) in counts {
            self.operations
                .get_or_create(&QueueLabels {
                    kind: kind.clone(),
                    state: state.clone(),
                })
                .set(*count);
        }
        self.oldest_ready_age
            .set(oldest_ready.map_or(0.0, |age| age.as_secs_f64()));
    }

    /// Sets the pool gauges.
    pub fn set_pool(&self, idle: u32, in_use: u32) {
        for (state, value) in [("idle", idle), ("in_use", in_use)] {
            self.db_connections
                .get_or_create(&PoolLabels {
                    state: state.to_owned(),
                })
                .set(i64::from(value));
        }
    }

    /// The Prometheus text format (OpenMetrics) of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// What `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_with_bounded_labels() {
        let metrics = Metrics::new();
        metrics.record_request("GET", "/products/{slug}", 200, Duration::from_millis(3));
        metrics.record_operation("rebuild_edition", "ok", Duration::from_millis(40));
        metrics.storage_error("timeout");
        metrics.set_queue(
            &[("dashboard".into(), "READY".into(), 2)],
            Some(Duration::from_secs(5)),
        );
        metrics.set_pool(3, 1);
        let text = metrics.encode();
        for line in [
            "keeper_http_requests_total{method=\"GET\",route=\"/products/{slug}\",status=\"200\"} 1",
            "keeper_operation_attempts_total{kind=\"rebuild_edition\",outcome=\"ok\"} 1",
            "keeper_storage_errors_total{kind=\"timeout\"} 1",
            "keeper_operations{kind=\"dashboard\",state=\"READY\"} 2",
            "keeper_queue_oldest_ready_age_seconds 5.0",
            "keeper_db_pool_connections{state=\"in_use\"} 1",
            "keeper_build_info{version=\"",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(text.contains("keeper_http_request_duration_seconds_bucket"));
        assert!(text.ends_with("# EOF\n"));
        // A state that is gone is not reported as its last value.
        metrics.set_queue(&[], None);
        assert!(!metrics.encode().contains("state=\"READY\""));
    }
}
