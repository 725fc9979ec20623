//! The `keeper` binary as an operator runs it: no environment at all, PostgreSQL, signals, the
//! migration refusals, `keeper db ...` and `keeper user create`, and no secret in any output.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use common::{client, TestBackend, TestDatabase};

const KEEPER: &str = env!("CARGO_BIN_EXE_keeper");
/// Upper bound for a process to reach a state; a hang fails the test instead of blocking it.
const PATIENCE: Duration = Duration::from_secs(60);

fn keeper(cwd: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(KEEPER);
    command
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// A running `keeper` whose stderr lines arrive on a channel (and are kept for later checks).
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing `needle` and returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The base URL from the "listening on http://..." line.
    fn wait_for_address(&mut self) -> String {
        let line = self.wait_for("listening on http://");
        let start = line.find("http://").unwrap();
        line[start..].split_whitespace().next().unwrap().to_owned()
    }

    fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        (status, self.seen)
    }
}

fn get_status(url: &str) -> u16 {
    client().get(url).send().unwrap().status().as_u16()
}

#[test]
fn version_flag_prints_the_version() {
    let output = Command::new(KEEPER).arg("--version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        format!("keeper {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn serve_with_no_environment_creates_sqlite_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    // Only the port is chosen by the test (8080 may be taken); everything else is default.
    let mut server = Running::spawn({
        let mut command = keeper(dir.path(), &[("KEEPER_BIND", "127.0.0.1:0")]);
        command.arg("serve");
        command
    });
    let base = server.wait_for_address();
    assert_eq!(get_status(&format!("{base}/")), 200);
    assert_eq!(get_status(&format!("{base}/health/ready")), 200);
    assert!(
        dir.path().join("keeper.sqlite3").is_file(),
        "the SQLite database is created"
    );
    let (status, log) = server.terminate();
    assert!(
        status.success(),
        "graceful exit on SIGTERM: {status:?}\n{}",
        log.join("\n")
    );
    assert!(
        log.iter().any(|l| l.contains("stopped")),
        "{}",
        log.join("\n")
    );
}

#[test]
fn serve_on_postgres_works_the_same_and_logs_no_secret() {
    let db = TestDatabase::new(TestBackend::Postgres);
    // The test cluster trusts local connections, so the password is accepted and must not leak.
    let url = db
        .url
        .replacen("postgres@", "postgres:hunter2-database@", 1);
    let dir = tempfile::tempdir().unwrap();
    let mut server = Running::spawn({
        let mut command = keeper(
            dir.path(),
            &[
                ("KEEPER_BIND", "127.0.0.1:0"),
                ("KEEPER_DATABASE_URL", &url),
                ("KEEPER_BOOTSTRAP_USER", "admin"),
                ("KEEPER_BOOTSTRAP_PASSWORD", "hunter2-bootstrap"),
                (
                    "KEEPER_SECRET_KEY",
                    "hunter2-signing-key-hunter2-signing-key",
                ),
                ("KEEPER_LOG", "debug"),
            ],
        );
        command.arg("serve");
        command
    });
    let base = server.wait_for_address();
    assert_eq!(get_status(&format!("{base}/")), 200);
    assert_eq!(get_status(&format!("{base}/health/ready")), 200);
    assert!(
        !dir.path().join("keeper.sqlite3").exists(),
        "no SQLite file when on PostgreSQL"
    );
    let (status, log) = server.terminate();
    assert!(status.success());
    let log = log.join("\n");
    assert!(log.contains("created the schema"), "{log}");
    assert!(log.contains("created the bootstrap administrator"), "{log}");
    for secret in [
        "hunter2-database",
        "hunter2-bootstrap",
        "hunter2-signing-key",
    ] {
        assert!(
            !log.contains(secret),
            "{secret} leaked into the log:\n{log}"
        );
    }
}

#[test]
fn worker_stops_on_sigterm() {
    let db = TestDatabase::new(TestBackend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let mut worker = Running::spawn({
        let mut command = keeper(dir.path(), &[("KEEPER_DATABASE_URL", &db.url)]);
        command.arg("worker");
        command
    });
    worker.wait_for("worker started");
    let (status, log) = worker.terminate();
    assert!(status.success(), "{}", log.join("\n"));
}

fn run(command: &mut Command) -> (i32, String, String) {
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn a_bad_variable_is_named_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(keeper(dir.path(), &[("KEEPER_BIND", "nonsense")]).arg("serve"));
    assert_eq!(code, 2);
    assert!(stderr.contains("KEEPER_BIND"), "{stderr}");
}

#[test]
fn serve_refuses_a_database_ahead_of_the_binary() {
    for backend in [TestBackend::Sqlite, TestBackend::Postgres] {
        let db = TestDatabase::new(backend);
        keeper::startup::prepare(&db.config(&[])).unwrap();
        let mut conn = db.connect();
        keeper::with_connection!(&mut conn, c => diesel::RunQueryDsl::execute(
            diesel::sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231235959')"),
            c
        ))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("KEEPER_DATABASE_URL", db.url.as_str()),
            ("KEEPER_BIND", "127.0.0.1:0"),
        ];
        let (code, _, stderr) = run(keeper(dir.path(), &env).arg("serve"));
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("29991231235959"), "{stderr}");
        assert!(stderr.contains(&migrations_on_disk().1), "{stderr}");
    }
}

/// The embedded migrations (one directory each) and the newest one's version, e.g.
/// `20261122000004`, read from the source tree so that adding a migration changes no test.
fn migrations_on_disk() -> (usize, String) {
    let mut names: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    names.sort();
    let newest = names.last().unwrap();
    let version: String = newest[..17].chars().filter(char::is_ascii_digit).collect();
    (names.len(), version)
}

#[test]
fn db_commands_on_postgres() {
    let (count, head) = migrations_on_disk();
    let db = TestDatabase::new(TestBackend::Postgres);
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("KEEPER_DATABASE_URL", db.url.as_str()),
        ("KEEPER_BIND", "127.0.0.1:0"),
    ];
    let keeper_db = |args: &[&str]| run(keeper(dir.path(), &env).arg("db").args(args));

    let (code, stdout, _) = keeper_db(&["status"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.matches("pending ").count(), count, "{stdout}");
    assert!(stdout.contains(&format!("{count} pending")), "{stdout}");

    let (code, stdout, _) = keeper_db(&["upgrade"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.matches("applied ").count(), count, "{stdout}");
    let (_, stdout, _) = keeper_db(&["status"]);
    assert_eq!(stdout.matches("applied ").count(), count, "{stdout}");
    assert!(stdout.contains("0 pending"), "{stdout}");

    let (code, stdout, _) = keeper_db(&["downgrade", "1"]);
    assert_eq!(code, 0);
    assert!(stdout.contains(&format!("reverted {head}")), "{stdout}");

    // Behind on PostgreSQL without KEEPER_AUTO_MIGRATE: refuse and say what to run.
    let (code, _, stderr) = run(keeper(dir.path(), &env).arg("serve"));
    assert_eq!(code, 1);
    assert!(stderr.contains("keeper db upgrade"), "{stderr}");

    let (code, stdout, _) = keeper_db(&["upgrade"]);
    assert_eq!(code, 0);
    assert!(stdout.contains(&format!("applied {head}")), "{stdout}");

    let too_many = (count + 1).to_string();
    let (code, _, stderr) = keeper_db(&["downgrade", &too_many]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("only {count} are applied")),
        "{stderr}"
    );
}

#[test]
fn user_create_reads_the_password_from_stdin_and_prints_no_secret() {
    let db = TestDatabase::new(TestBackend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let env = [("KEEPER_DATABASE_URL", db.url.as_str())];
    let create = |stdin: &str, extra: &[&str]| {
        let mut child = keeper(dir.path(), &env)
            .args([
                "user",
                "create",
                "--username",
                "ci-bot",
                "--permissions",
                "upload_build,admin_edition",
            ])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8(output.stdout).unwrap() + &String::from_utf8(output.stderr).unwrap(),
        )
    };

    let (code, output) = create("a-very-secret-password\n", &["--password-stdin"]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("created user ci-bot"), "{output}");
    assert!(output.contains("admin_edition,upload_build"), "{output}");
    assert!(!output.contains("a-very-secret-password"), "{output}");

    let user = keeper::db::users::find_user(
        &mut db.connect(),
        &keeper::domain::Username::parse("ci-bot").unwrap(),
    )
    .unwrap()
    .unwrap();
    assert!(keeper::auth::password::verify_password(
        &secrecy::SecretString::from("a-very-secret-password"),
        &user.password_hash
    ));

    let (code, output) = create("another-password\n", &["--password-stdin"]);
    assert_eq!(code, 1);
    assert!(output.contains("already exists"), "{output}");

    // No terminal and no --password-stdin: refuse instead of hanging or inventing a password.
    let (code, output) = create("", &[]);
    assert_eq!(code, 1);
    assert!(output.contains("--password-stdin"), "{output}");
}

#[test]
fn user_create_rejects_unknown_permissions() {
    let db = TestDatabase::new(TestBackend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(
        keeper(dir.path(), &[("KEEPER_DATABASE_URL", &db.url)]).args([
            "user",
            "create",
            "--username",
            "x",
            "--permissions",
            "superuser",
            "--password-stdin",
        ]),
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("deprecate_build"),
        "lists the valid names: {stderr}"
    );
}

#[test]
fn token_create_prints_a_working_token_once() {
    let db = TestDatabase::new(TestBackend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let env = [("KEEPER_DATABASE_URL", db.url.as_str())];
    let mut create_user = keeper(dir.path(), &env)
        .args([
            "user",
            "create",
            "--username",
            "ci",
            "--permissions",
            "upload_build,admin_edition",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    create_user
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long password\n")
        .unwrap();
    assert!(create_user.wait().unwrap().success());

    let (code, stdout, stderr) = run(keeper(dir.path(), &env).args([
        "token",
        "create",
        "--username",
        "ci",
        "--name",
        "github-actions",
        "--permissions",
        "upload_build",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let token = stdout.trim();
    assert!(token.starts_with("ltdk_"), "{stdout}");
    assert!(
        !stderr.contains(token),
        "the token is printed once, on stdout"
    );
    let stored = keeper::db::tokens::find_by_hash(
        &mut db.connect(),
        &keeper::auth::api_token::hash_api_token(token),
    )
    .unwrap()
    .expect("the hash is stored");
    assert_eq!(
        stored.permissions,
        Some(keeper::domain::Permissions::UPLOAD_BUILD.bits())
    );

    let (code, _, stderr) = run(keeper(dir.path(), &env).args([
        "token",
        "create",
        "--username",
        "ci",
        "--name",
        "too-much",
        "--permissions",
        "admin_user",
    ]));
    assert_eq!(code, 1);
    assert!(stderr.contains("permissions its owner lacks"), "{stderr}");
}

/// The wiped-database guard: an empty database beside a store that already holds objects stops
/// `keeper serve` (exit 1, naming what to do), until `--allow-empty-database` says the store's
/// content may be overwritten. An empty store beside an empty database is a first start.
#[test]
fn serve_refuses_an_empty_database_beside_a_store_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = keeper::storage::local::LocalStore::open(dir.path().join("keeper-data")).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(keeper::storage::ObjectStore::put(
            &store,
            "demo/builds/1/index.html",
            bytes::Bytes::from_static(b"<h1>published before the wipe</h1>"),
            &keeper::storage::ObjectHeaders::default(),
        ))
        .unwrap();
    let env = [("KEEPER_BIND", "127.0.0.1:0")];

    let output = keeper(dir.path(), &env).arg("serve").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for needle in [
        "the database has no product",
        "demo/builds/1/index.html",
        "--allow-empty-database",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
    assert!(
        dir.path()
            .join("keeper-data/objects/demo/builds/1/index.html%")
            .exists(),
        "the store is left as it was"
    );

    let mut server = Running::spawn({
        let mut command = keeper(dir.path(), &env);
        command.args(["serve", "--allow-empty-database"]);
        command
    });
    let base = server.wait_for_address();
    assert_eq!(get_status(&format!("{base}/products/")), 200);
    let (status, log) = server.terminate();
    assert!(status.success(), "{status:?}\n{}", log.join("\n"));
    assert!(
        log.iter()
            .any(|line| line.contains("--allow-empty-database")),
        "starting anyway is logged: {}",
        log.join("\n")
    );
}

/// A second replica starting beside the first on a new deployment (as a Kubernetes Deployment
/// starts two at once) finds only the first's deployment record in the store: that is not a
/// wiped database, and it starts.
#[test]
fn a_second_replica_on_a_new_deployment_starts() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("KEEPER_BIND", "127.0.0.1:0")];
    let mut first = Running::spawn({
        let mut command = keeper(dir.path(), &env);
        command.arg("serve");
        command
    });
    let first_base = first.wait_for_address();
    assert!(
        dir.path()
            .join("keeper-data/objects/__keeper/deployment.json%")
            .exists(),
        "the first replica records the deployment"
    );
    let mut second = Running::spawn({
        let mut command = keeper(dir.path(), &env);
        command.arg("serve");
        command
    });
    let second_base = second.wait_for_address();
    assert_eq!(get_status(&format!("{second_base}/health/ready")), 200);
    assert_eq!(get_status(&format!("{first_base}/health/ready")), 200);
    for server in [first, second] {
        let (status, log) = server.terminate();
        assert!(status.success(), "{status:?}\n{}", log.join("\n"));
    }
}
