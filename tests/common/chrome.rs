//! Headless Chromium (Debian's `chromium`) driven over the DevTools protocol: open a page, wait
//! for its load event, evaluate script, take a screenshot, and collect every console error,
//! uncaught exception and failed load the page caused.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

use super::process::wait_for;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless, in a container, with nothing fetched but what a page asks for.
pub const HEADLESS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Fails the test with what to do when Debian's Chromium is not installed.
pub fn require_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: ./scripts/test installs Debian's chromium package"
    );
}

/// A browser process and one tab, attached.
pub struct Browser {
    child: Child,
    socket: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
    /// Errors reported since the last [`Browser::open`].
    errors: Vec<String>,
    loaded: bool,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn launch() -> Self {
        require_chromium();
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(CHROMIUM)
            .args(HEADLESS)
            .args(["--window-size=1280,900", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Chromium writes its port and browser endpoint here once it listens.
        let active = profile.path().join("DevToolsActivePort");
        wait_for("Chromium's DevTools port", Duration::from_secs(60), || {
            std::fs::read_to_string(&active).is_ok_and(|text| text.lines().count() >= 2)
        });
        let text = std::fs::read_to_string(&active).unwrap();
        let mut lines = text.lines();
        let port = lines.next().unwrap().trim().to_owned();
        let path = lines.next().unwrap().trim().to_owned();
        let stream = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let (socket, _) =
            tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream).unwrap();
        let mut browser = Self {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            errors: Vec::new(),
            loaded: false,
            _profile: profile,
        };
        let target = browser.browser_call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = browser.browser_call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            browser.call(domain, json!({}));
        }
        browser
    }

    fn send(&mut self, method: &str, params: Value, session: bool) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if session {
            message["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .unwrap();
        loop {
            let reply = self.read();
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    fn browser_call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, false)
    }

    /// A command to the tab.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, true)
    }

    /// The next message; events are recorded on the way.
    fn read(&mut self) -> Value {
        loop {
            let message = self.socket.read().unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str()).unwrap();
            self.record(&value);
            return value;
        }
    }

    fn record(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str() {
            Some("Page.loadEventFired") => self.loaded = true,
            Some("Runtime.exceptionThrown") => self.errors.push(format!(
                "exception: {}",
                params["exceptionDetails"]["exception"]["description"]
                    .as_str()
                    .or(params["exceptionDetails"]["text"].as_str())
                    .unwrap_or_default()
            )),
            Some("Runtime.consoleAPICalled") if params["type"] == "error" => self
                .errors
                .push(format!("console.error: {}", params["args"])),
            Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
                self.errors.push(format!(
                    "{} {}: {}",
                    params["entry"]["source"].as_str().unwrap_or_default(),
                    params["entry"]["url"].as_str().unwrap_or_default(),
                    params["entry"]["text"].as_str().unwrap_or_default()
                ))
            }
            _ => {}
        }
    }

    /// Opens `url` and waits for its load event.
    pub fn open(&mut self, url: &str) {
        self.errors.clear();
        self.loaded = false;
        let navigated = self.call("Page.navigate", json!({"url": url}));
        assert!(navigated.get("errorText").is_none(), "{url}: {navigated}");
        while !self.loaded {
            self.read();
        }
    }

    /// The value of `expression` (a promise is awaited).
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Every console error, uncaught exception and failed load since the page was opened.
    pub fn errors(&mut self) -> Vec<String> {
        // Events already sent are read by a round trip.
        self.eval("0");
        self.errors.clone()
    }

    /// A PNG of the viewport, written to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
