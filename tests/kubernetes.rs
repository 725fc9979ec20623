//! The Kubernetes manifests' intent, carried out on this machine (issue 16, item 3): the
//! Deployments' and the Job's commands are started with their environment (the ConfigMap, a
//! test Secret and the containers' own variables) against a throwaway PostgreSQL and a Garage
//! bucket, in the order `deploy/kubernetes/README.md` gives: the Job migrates, two API replicas
//! and two workers start and answer their probes as the manifests probe them, a build uploaded
//! through one replica is rebuilt by a worker and read through the other, and SIGTERM stops
//! each within its grace period. What a cluster provides differently is replaced, and only
//! that: addresses (one machine, so one port each), the database, the bucket and the CDN.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::garage::Garage;
use common::process::{free_port, output_text, wait_for};
use common::{client, TestBackend, TestDatabase};
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;

const ADMIN: &str = "admin";
const PASSWORD: &str = "kubernetes-test-password";

fn manifests() -> Vec<Yaml> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut documents = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            for document in serde_yaml::Deserializer::from_str(&text) {
                let value = <Yaml as serde::Deserialize>::deserialize(document).unwrap();
                if !value.is_null() {
                    documents.push(value);
                }
            }
        }
    }
    documents
}

fn find<'a>(documents: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    documents
        .iter()
        .find(|doc| doc["kind"] == kind && doc["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
}

fn strings(map: &Yaml) -> BTreeMap<String, String> {
    map.as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A workload's one container and its pod spec.
fn container(workload: &Yaml) -> (&Yaml, &Yaml) {
    let pod = &workload["spec"]["template"]["spec"];
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    (&containers[0], pod)
}

/// What the container runs: command and args.
fn argv(container: &Yaml) -> Vec<String> {
    let words = |key: &str| -> Vec<String> {
        container[key]
            .as_sequence()
            .map(|seq| seq.iter().map(|w| w.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    let mut argv = words("command");
    argv.extend(words("args"));
    assert_eq!(argv[0], "/usr/local/bin/keeper", "{argv:?}");
    argv
}

/// The container's environment: its envFrom sources in order, then its own `env`.
fn environment(
    container: &Yaml,
    config: &BTreeMap<String, String>,
    secret: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for source in container["envFrom"].as_sequence().unwrap() {
        if source["configMapRef"]["name"] == "keeper-config" {
            env.extend(config.clone());
        } else if source["secretRef"]["name"] == "keeper-secrets" {
            env.extend(secret.clone());
        } else {
            panic!("unknown envFrom {source:?}");
        }
    }
    for variable in container["env"].as_sequence().into_iter().flatten() {
        env.insert(
            variable["name"].as_str().unwrap().to_owned(),
            variable["value"].as_str().unwrap().to_owned(),
        );
    }
    env
}

/// A probe's path and the port it names (by name or number), resolved to the container port.
fn probe(container: &Yaml, which: &str) -> (String, u16) {
    let get = &container[which]["httpGet"];
    let port = &get["port"];
    let number = match port.as_u64() {
        Some(number) => number,
        None => container["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|p| p["name"] == *port)
            .unwrap_or_else(|| panic!("{which} names port {port:?}, which is not declared"))
            ["containerPort"]
            .as_u64()
            .unwrap(),
    };
    (
        get["path"].as_str().unwrap().to_owned(),
        u16::try_from(number).unwrap(),
    )
}

struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn start(name: &str, argv: &[String], env: &BTreeMap<String, String>, dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_keeper"))
            .args(&argv[1..])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The most memory the process has held (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// SIGTERM, then the time it took to exit; panics past `grace`.
    fn terminate(&mut self, grace: Duration) -> Duration {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{} exited {status}:\n{}",
                    self.name,
                    self.log()
                );
                return started.elapsed();
            }
            assert!(
                started.elapsed() < grace,
                "{} did not stop within its grace period of {grace:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn answers(url: &str) -> bool {
    client().get(url).send().is_ok_and(|r| r.status() == 200)
}

/// Every variable the manifests set is one keeper reads and the README documents.
fn assert_variables_are_read_and_documented(names: impl IntoIterator<Item = String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut config_sources = String::new();
    for entry in std::fs::read_dir(root.join("keeper/config")).unwrap() {
        config_sources.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    for name in names {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} is set by the manifests but not in the README's table"
        );
        assert!(
            config_sources.contains(&format!("\"{name}\"")),
            "{name} is set by the manifests but keeper/config does not read it"
        );
    }
}

#[test]
fn the_manifests_run_as_their_readme_says() {
    let documents = manifests();
    let config = strings(&find(&documents, "ConfigMap", "keeper-config")["data"]);
    let secret_template = strings(&find(&documents, "Secret", "keeper-secrets")["stringData"]);
    let job = find(&documents, "Job", "keeper-migrate");
    let api = find(&documents, "Deployment", "keeper-api");
    let worker = find(&documents, "Deployment", "keeper-worker");
    let (job_container, _) = container(job);
    let (api_container, api_pod) = container(api);
    let (worker_container, worker_pod) = container(worker);
    let mut set: Vec<String> = config
        .keys()
        .chain(secret_template.keys())
        .cloned()
        .collect();
    for c in [job_container, api_container, worker_container] {
        for variable in c["env"].as_sequence().into_iter().flatten() {
            set.push(variable["name"].as_str().unwrap().to_owned());
        }
    }
    assert_variables_are_read_and_documented(set);
    assert_eq!(api["spec"]["replicas"], 2);
    assert_eq!(worker["spec"]["replicas"], 2);

    // The test Secret: the template's keys, with values for this machine.
    let database = TestDatabase::new(TestBackend::Postgres);
    let garage = Garage::start();
    let mut secret = secret_template.clone();
    for (name, value) in [
        ("KEEPER_DATABASE_URL", database.url.clone()),
        ("KEEPER_SECRET_KEY", "k".repeat(40)),
        (
            "KEEPER_ENCRYPTION_KEYS",
            keeper::crypto::EncryptionKeys::generate_key(),
        ),
        ("KEEPER_FASTLY_API_KEY", "unused-here".to_owned()),
        ("KEEPER_BOOTSTRAP_USER", ADMIN.to_owned()),
        ("KEEPER_BOOTSTRAP_PASSWORD", PASSWORD.to_owned()),
    ] {
        assert!(
            secret.contains_key(name),
            "the Secret template lacks {name}"
        );
        secret.insert(name.to_owned(), value);
    }
    for (name, value) in garage.keeper_env() {
        if name.starts_with("KEEPER_S3_ACCESS") || name.starts_with("KEEPER_S3_SECRET") {
            secret.insert(name.to_owned(), value);
        }
    }
    // What the cluster provides differently: the bucket's address and the CDN.
    let mut config = config.clone();
    for (name, value) in garage.keeper_env() {
        if !name.starts_with("KEEPER_S3_ACCESS") && !name.starts_with("KEEPER_S3_SECRET") {
            config.insert(name.to_owned(), value);
        }
    }
    config.insert("KEEPER_CDN".into(), "none".into());
    let dir = tempfile::tempdir().unwrap();

    // 1. The Job migrates the empty database.
    let migrate = Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(&argv(job_container)[1..])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(environment(job_container, &config, &secret))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{}", output_text(&migrate));

    // 2. Two API replicas and two workers, all at once, as a Deployment starts them; one port
    // each, on loopback.
    let (api_path, api_port) = probe(api_container, "readinessProbe");
    let (live_path, live_port) = probe(api_container, "livenessProbe");
    assert_eq!((api_port, live_port), (8080, 8080));
    let (worker_ready, worker_port) = probe(worker_container, "readinessProbe");
    let (worker_live, _) = probe(worker_container, "livenessProbe");
    let api_ports = [free_port(), free_port()];
    let public_url = format!("http://127.0.0.1:{}", api_ports[0]);
    let mut processes = Vec::new();
    for (n, port) in api_ports.iter().enumerate() {
        let mut env = environment(api_container, &config, &secret);
        assert_eq!(env["KEEPER_SERVE_RUNS_WORKER"], "false");
        assert_eq!(env["KEEPER_BIND"], format!("0.0.0.0:{api_port}"));
        env.insert("KEEPER_BIND".into(), format!("127.0.0.1:{port}"));
        env.insert("KEEPER_PUBLIC_URL".into(), public_url.clone());
        processes.push(Process::start(
            &format!("api-{n}"),
            &argv(api_container),
            &env,
            dir.path(),
        ));
    }
    let worker_ports = [free_port(), free_port()];
    for (n, port) in worker_ports.iter().enumerate() {
        let mut env = environment(worker_container, &config, &secret);
        assert_eq!(
            env["KEEPER_WORKER_METRICS_BIND"],
            format!("0.0.0.0:{worker_port}")
        );
        env.insert(
            "KEEPER_WORKER_METRICS_BIND".into(),
            format!("127.0.0.1:{port}"),
        );
        env.insert("KEEPER_PUBLIC_URL".into(), public_url.clone());
        processes.push(Process::start(
            &format!("worker-{n}"),
            &argv(worker_container),
            &env,
            dir.path(),
        ));
    }
    let logs = |processes: &[Process]| {
        processes
            .iter()
            .map(|p| format!("--- {}\n{}", p.name, p.log()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut probes = Vec::new();
    for port in api_ports {
        probes.push(format!("http://127.0.0.1:{port}{api_path}"));
        probes.push(format!("http://127.0.0.1:{port}{live_path}"));
    }
    for port in worker_ports {
        probes.push(format!("http://127.0.0.1:{port}{worker_ready}"));
        probes.push(format!("http://127.0.0.1:{port}{worker_live}"));
    }
    for url in &probes {
        let started = Instant::now();
        while !answers(url) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{url} never answered 200\n{}",
                logs(&processes)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // 3. A build uploaded through the first replica, rebuilt by a worker, read through the
    // second.
    let first = |path: &str| format!("http://127.0.0.1:{}{path}", api_ports[0]);
    let second = |path: &str| format!("http://127.0.0.1:{}{path}", api_ports[1]);
    let token: Value = client()
        .get(first("/token"))
        .basic_auth(ADMIN, Some(PASSWORD))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let created = client()
        .post(first("/products/"))
        .basic_auth(&token, Some(""))
        .json(&json!({"slug": "demo", "title": "Demo", "doc_repo": ""}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), "<h1>deployed</h1>").unwrap();
    let upload = Command::new(env!("CARGO_BIN_EXE_keeper"))
        .args(["--host", &first(""), "-u", ADMIN, "-p", PASSWORD, "upload"])
        .args(["--product", "demo", "--git-ref", "main", "--dir"])
        .arg(site.path())
        .output()
        .unwrap();
    assert!(
        upload.status.success(),
        "{}\n{}",
        output_text(&upload),
        logs(&processes)
    );
    wait_for(
        "the rebuild, read through the second replica",
        Duration::from_secs(60),
        || {
            client().get(second("/docs/demo/")).send().is_ok_and(|r| {
                r.status() == 200 && r.text().unwrap_or_default() == "<h1>deployed</h1>"
            })
        },
    );
    // The workers ran it (the replicas run no worker).
    let attempts = |port: u16| -> f64 {
        let text = client()
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .filter(|line| {
                line.starts_with("keeper_operation_attempts_total{kind=\"rebuild_edition\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    // The page is readable once the copy is done; the attempt is counted when the operation's
    // outcome is recorded, after the purge.
    wait_for(
        "the rebuild's outcome, counted by a worker",
        Duration::from_secs(60),
        || worker_ports.iter().map(|port| attempts(*port)).sum::<f64>() >= 1.0,
    );
    let by_workers: f64 = worker_ports.iter().map(|port| attempts(*port)).sum();
    let by_replicas: f64 = api_ports.iter().map(|port| attempts(*port)).sum();
    assert_eq!((by_workers, by_replicas), (1.0, 0.0));

    // 4. SIGTERM: each stops within its pod's grace period.
    let grace =
        |pod: &Yaml| Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    let graces = [
        grace(api_pod),
        grace(api_pod),
        grace(worker_pod),
        grace(worker_pod),
    ];
    let shutdown: u64 = config["KEEPER_SHUTDOWN_TIMEOUT_SECS"].parse().unwrap();
    assert!(
        Duration::from_secs(shutdown) < graces[0],
        "the API's shutdown timeout outlasts its grace period"
    );
    for (process, grace) in processes.iter_mut().zip(graces) {
        let peak = process.peak_rss_kib();
        let took = process.terminate(grace);
        eprintln!(
            "{}: peak RSS {} MiB, stopped {:.2} s after SIGTERM",
            process.name,
            peak / 1024,
            took.as_secs_f64()
        );
    }
}
