//! `/metrics` scraped by a real Prometheus (Debian's `prometheus`, started here on loopback)
//! while a real `keeper serve` takes an upload and rebuilds the default edition; the series are
//! then read back through Prometheus's HTTP API (issue 16, item 4).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::client;
use common::process::{free_port, generate_site, keeper_upload_succeeds, wait_for, KeeperProcess};
use serde_json::Value;

const PROMETHEUS: &str = "/usr/bin/prometheus";

struct Prometheus {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target` (`host:port`) every second.
    fn start(target: &str) -> Self {
        assert!(
            Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing: ./scripts/test installs Debian's prometheus package"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - \
                 job_name: keeper\n    metrics_path: /metrics\n    static_configs:\n      - \
                 targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let ready = format!("{base}/-/ready");
        wait_for("Prometheus to be ready", Duration::from_secs(60), || {
            client()
                .get(&ready)
                .send()
                .is_ok_and(|response| response.status() == 200)
        });
        Self {
            child,
            base,
            _dir: dir,
        }
    }

    /// The result vector of an instant query.
    fn query(&self, promql: &str) -> Vec<Value> {
        let response: Value = client()
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", promql)])
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(response["status"], "success", "{promql}: {response}");
        response["data"]["result"].as_array().unwrap().clone()
    }

    /// The value of a query that returns one sample, once it does and meets `wanted`.
    fn wait_for_value(&self, promql: &str, wanted: impl Fn(f64) -> bool) -> f64 {
        let mut last = None;
        wait_for(promql, Duration::from_secs(60), || {
            last = self
                .query(promql)
                .first()
                .map(|sample| sample["value"][1].as_str().unwrap().parse::<f64>().unwrap());
            last.is_some_and(&wanted)
        });
        last.unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_scrapes_requests_operations_and_the_queue() {
    let keeper = KeeperProcess::start(&[("KEEPER_SERVE_RUNS_WORKER", "true")]);
    let target = keeper.base.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&target);
    prometheus.wait_for_value("up{job=\"keeper\"}", |up| up == 1.0);

    keeper.create_product("demo");
    let work = tempfile::tempdir().unwrap();
    let files = generate_site(work.path(), 30);
    keeper_upload_succeeds(&keeper, "demo", work.path(), "main");
    wait_for("the rebuild of __main", Duration::from_secs(60), || {
        keeper
            .lines("SELECT state AS line FROM operations WHERE state IN ('READY', 'WORKING')")
            .is_empty()
    });
    assert_eq!(
        client()
            .get(keeper.url("/docs/demo/"))
            .send()
            .unwrap()
            .status(),
        200
    );

    // Operations this process ran, by kind and outcome, and what they copied.
    prometheus.wait_for_value(
        "keeper_operation_attempts_total{kind=\"rebuild_edition\",outcome=\"ok\"}",
        |count| count == 1.0,
    );
    let copied = prometheus.wait_for_value("keeper_objects_copied_total", |n| n > 0.0);
    assert!(copied >= files.len() as f64, "{copied} < {}", files.len());
    prometheus.wait_for_value(
        "sum(keeper_operation_duration_seconds_count{kind=\"rebuild_edition\"})",
        |count| count >= 1.0,
    );
    // The queue, read from the database at scrape time: nothing waiting.
    prometheus.wait_for_value(
        "keeper_operations{kind=\"rebuild_edition\",state=\"OK\"}",
        |count| count == 1.0,
    );
    prometheus.wait_for_value("keeper_queue_oldest_ready_age_seconds", |age| age == 0.0);
    // Requests by route template and status: the upload's, and the published page's.
    prometheus.wait_for_value(
        "keeper_http_requests_total{method=\"POST\",route=\"/products/{slug}/builds/\",status=\"201\"}",
        |count| count == 1.0,
    );
    prometheus.wait_for_value(
        "sum(keeper_http_requests_total{route=\"site\",status=\"200\"})",
        |count| count >= 1.0,
    );
    prometheus.wait_for_value("keeper_build_info", |one| one == 1.0);
    prometheus.wait_for_value("sum(keeper_db_pool_connections)", |n| n >= 1.0);
    // Cardinality is bounded: no label carries a slug, an id or a path.
    let series = prometheus.query("{__name__=~\"keeper_.*\"}");
    assert!(!series.is_empty());
    for sample in &series {
        let metric = &sample["metric"];
        for (label, value) in metric.as_object().unwrap() {
            let value = value.as_str().unwrap();
            if label == "route" {
                assert!(
                    value == "site" || value == "unmatched" || value.starts_with('/'),
                    "{metric}"
                );
            }
            assert!(
                !value.contains("demo") && !value.contains("/builds/1"),
                "a label holds a slug or an id: {metric}"
            );
        }
    }
}
