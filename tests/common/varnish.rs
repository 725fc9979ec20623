//! A real Varnish (`varnishd` with the xkey vmod, Debian packages `varnish` and
//! `varnish-modules`, which `./scripts/test` installs) on a loopback port, running a VCL such as
//! `deploy/cdn/varnish.vcl`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::free_port;

/// `deploy/cdn/varnish.vcl`, as shipped.
pub const KEEPER_VCL: &str = include_str!("../../deploy/cdn/varnish.vcl");

/// `deploy/cdn/varnish.vcl` with its backend (keeper's site server) on `port` of 127.0.0.1.
pub fn keeper_vcl(port: u16) -> String {
    let vcl = KEEPER_VCL.replace(".port = \"8080\";", &format!(".port = \"{port}\";"));
    assert_ne!(vcl, KEEPER_VCL, "the VCL's backend port was not found");
    vcl
}

/// The installed `varnishd`; panics with instructions when there is none.
pub fn varnishd() -> PathBuf {
    for candidate in ["/usr/sbin/varnishd", "/usr/local/sbin/varnishd"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!(
        "varnishd is not installed: run ./scripts/test, which installs the Debian packages \
         varnish and varnish-modules, or install them with apt-get"
    );
}

/// `varnishd -F` as the test's child, in its own working directory; stopped on drop.
pub struct Varnish {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Varnish {
    /// Runs `vcl` on a free loopback port, once Varnish answers HTTP.
    pub fn start(vcl: String) -> Self {
        Self::start_on(vcl, free_port())
    }

    /// Runs `vcl` on `port` of 127.0.0.1 (chosen beforehand when the backend must know it).
    pub fn start_on(vcl: String, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let vcl_path = dir.path().join("keeper.vcl");
        std::fs::write(&vcl_path, vcl).unwrap();
        let log = std::fs::File::create(dir.path().join("varnishd.log")).unwrap();
        // `-j none`: no privilege separation, so that it also runs as root in CI containers.
        let child = Command::new(varnishd())
            .arg("-F")
            .args(["-j", "none"])
            .arg("-n")
            .arg(dir.path().join("work"))
            .args(["-a", &format!("127.0.0.1:{port}")])
            .args(["-T", "none"])
            .arg("-f")
            .arg(&vcl_path)
            .args(["-s", "malloc,32m"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start varnishd");
        let mut varnish = Self { child, port, dir };
        varnish.wait_until_ready();
        varnish
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("varnishd.log")).unwrap_or_default()
    }

    /// Polls until Varnish answers HTTP (any status: the backend may not be up yet), within a
    /// deadline.
    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let probe = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("varnishd exited with {status}:\n{}", self.log());
            }
            if probe.get(self.url("/health")).send().is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "varnishd did not answer within a minute:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Varnish {
    fn drop(&mut self) {
        // SIGTERM lets the manager stop its worker process; SIGKILL if it does not in time.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
