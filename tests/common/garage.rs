//! Garage, a production S3-compatible server, as one node on loopback (DESIGN.md section 9): it
//! checks SigV4 signatures and POST policies and substitutes `${filename}`, as S3 does.
//!
//! The binary comes from `KEEPER_TEST_GARAGE`, which `./scripts/test` sets after
//! `scripts/install-garage`. Without it a test fails: it never passes by skipping.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::free_port;

pub const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
pub const SECRET_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub const REGION: &str = "us-east-1";
pub const BUCKET: &str = "keeper-docs";

pub struct Garage {
    binary: String,
    config: PathBuf,
    child: Option<Child>,
    pub s3_endpoint: String,
    dir: tempfile::TempDir,
}

pub fn garage_executable() -> String {
    std::env::var("KEEPER_TEST_GARAGE").unwrap_or_else(|_| {
        panic!(
            "KEEPER_TEST_GARAGE is not set: run the suite with ./scripts/test, which builds \
             Garage 2.5.0 into ~/.cache/keeper-tools (scripts/install-garage), or set it to the \
             path of a `garage` executable"
        )
    })
}

impl Garage {
    /// Starts a node, lays it out, imports the key and creates the bucket.
    pub fn start() -> Self {
        // The ports are free when chosen but not held: another process may bind one before
        // Garage does, and Garage then exits (AddrInUse). Such a node is started again on others.
        const TRIES: usize = 5;
        for _ in 0..TRIES {
            if let Some(garage) = Self::spawn_node() {
                return garage.set_up();
            }
        }
        panic!("garage exited at start {TRIES} times (its ports were taken each time)");
    }

    /// A node on fresh ports whose `garage status` answers; `None` when it exited first.
    fn spawn_node() -> Option<Self> {
        let binary = garage_executable();
        let dir = tempfile::tempdir().unwrap();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "{secret}"
"#,
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("garage.log")).unwrap();
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut garage = Self {
            binary,
            config,
            child: Some(child),
            s3_endpoint: format!("http://127.0.0.1:{s3}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = garage.cli(&["status"]);
            if status.is_ok() {
                return Some(garage);
            }
            let exited = garage
                .child
                .as_mut()
                .is_some_and(|child| matches!(child.try_wait(), Ok(Some(_))));
            if exited {
                return None;
            }
            if Instant::now() >= deadline {
                panic!("garage status kept failing: {status:?}\n{}", garage.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn set_up(self) -> Self {
        let garage = self;
        let node = garage.cli(&["node", "id", "-q"]).unwrap();
        let node = node.trim().split('@').next().unwrap().to_owned();
        garage
            .cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])
            .unwrap();
        garage.cli(&["layout", "apply", "--version", "1"]).unwrap();
        garage.retry("garage key import", |g| {
            g.cli(&["key", "import", "--yes", "-n", "ci", ACCESS_KEY, SECRET_KEY])
        });
        garage.retry("garage bucket create", |g| {
            g.cli(&["bucket", "create", BUCKET])
        });
        garage
            .cli(&[
                "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "ci",
            ])
            .unwrap();
        garage
    }

    /// Runs `garage -c <config> args...`; its standard output, or its error output.
    fn cli(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .map_err(|err| err.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "garage {}: {}\n{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// Polls `step` until it succeeds (the node settles in under a second), 60 s at most.
    fn retry(&self, what: &str, step: impl Fn(&Self) -> Result<String, String>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match step(self) {
                Ok(_) => return,
                Err(err) if Instant::now() >= deadline => {
                    panic!("{what} kept failing: {err}\n{}", self.log())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    /// The variables that point keeper at this node.
    pub fn keeper_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KEEPER_STORAGE_BACKEND", "s3".into()),
            ("KEEPER_S3_BUCKET", BUCKET.into()),
            ("KEEPER_S3_REGION", REGION.into()),
            ("KEEPER_S3_ENDPOINT_URL", self.s3_endpoint.clone()),
            ("KEEPER_S3_PATH_STYLE", "true".into()),
            ("KEEPER_S3_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("KEEPER_S3_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ]
    }

    pub async fn store(&self) -> keeper::storage::s3::S3Store {
        keeper::storage::s3::S3Store::connect(keeper::storage::s3::S3Settings {
            bucket: BUCKET.into(),
            region: REGION.into(),
            endpoint_url: Some(self.s3_endpoint.clone()),
            path_style: true,
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(secrecy::SecretString::from(SECRET_KEY)),
            page_size: 1000,
            attempt_timeout: keeper::storage::s3::S3Settings::DEFAULT_ATTEMPT_TIMEOUT,
        })
        .await
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
