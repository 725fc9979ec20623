//! The uploader behind `keeper upload`: the protocol of `ltd upload` (ltd-conveyor 0.8.4), with
//! parallel uploads and per-file retries.
//!
//! 1. `GET /token` with the user name and password (or use an API token as it is);
//! 2. `POST /products/<p>/builds/` with the git refs and every directory of the site, asking for
//!    the v2 media type, which answers with one presigned form per directory;
//! 3. POST every file with its directory's form (`${filename}` names the object), `jobs` at a
//!    time, each retried with backoff on a network error or a 5xx/408/429;
//! 4. then every directory-redirect object;
//! 5. `PATCH <build> {"uploaded": true}`, expecting 200: only now do editions change.
//!
//! Any failure stops the upload before step 5: the build stays unconfirmed and no edition moves.

pub(crate) mod progress;
pub mod site;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures::{StreamExt, TryStreamExt};
use reqwest::{Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::retry::{Backoff, Jitter};
use crate::storage::presign::PresignedPost;
use progress::{Notes, Progress};
use site::{content_type, Site, SiteFile};

/// The media type that asks for upload forms (as `ltd upload` sends it).
const V2_MEDIA_TYPE: &str = "application/vnd.ltdkeeper.v2+json";
/// The name sent for the empty file of a directory-redirect form (its key is exact).
const DIRECTORY_FILE_NAME: &str = "directory";
/// Longest stretch of a server's error body quoted in a message.
const QUOTE_CHARS: usize = 300;

/// How the client proves who it is.
pub enum Credentials {
    /// A user name and password, exchanged for a token at `GET /token`.
    Password {
        username: String,
        password: SecretString,
    },
    /// An API token, sent as a Bearer token.
    Token(SecretString),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .finish_non_exhaustive(),
            Self::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// Everything `keeper upload` was asked to do.
#[derive(Debug)]
pub struct UploadSettings {
    /// Keeper's base URL (`https://keeper.example.org`).
    pub host: Url,
    pub credentials: Credentials,
    pub product: String,
    pub dir: PathBuf,
    pub git_refs: Vec<String>,
    /// Uploads in flight at once.
    pub jobs: usize,
    /// Extra attempts per request after the first.
    pub retries: u32,
    /// Delay before the first retry; doubled each time, with jitter, up to [`MAX_BACKOFF`].
    pub backoff: Duration,
    /// Only scan and report.
    pub dry_run: bool,
}

/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub directories: usize,
    pub bytes: u64,
    pub elapsed: Duration,
    /// The confirmed build (`None` on a dry run).
    pub build_url: Option<String>,
    pub published_url: Option<String>,
    /// The editions the build is being published to: slug and URL (what the server said).
    pub editions: Vec<(String, String)>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = indicatif::HumanBytes(self.bytes);
        let seconds = self.elapsed.as_secs_f64();
        match &self.build_url {
            None => write!(
                f,
                "dry run: would upload {} files ({size}, {} bytes) in {} directories",
                self.files, self.bytes, self.directories
            ),
            Some(build) => {
                write!(
                    f,
                    "uploaded {} files ({size}, {} bytes) and {} directory objects in {seconds:.1} s; \
                     build {build} confirmed",
                    self.files, self.bytes, self.directories
                )?;
                if let Some(published) = &self.published_url {
                    write!(f, "; published at {published}")?;
                }
                if self.editions.is_empty() {
                    write!(
                        f,
                        "\nno edition tracks these git refs, so no edition changes"
                    )
                } else {
                    write!(f, "\nupdating {} edition(s):", self.editions.len())?;
                    for (slug, url) in &self.editions {
                        write!(f, "\n  {slug}: {url}/")?;
                    }
                    Ok(())
                }
            }
        }
    }
}

/// The git refs of a GitHub Actions run (`--gh`): the pull request's head branch, else the
/// branch or tag of `GITHUB_REF`. `env` looks variables up.
pub fn github_actions_refs(env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Vec<String>> {
    let nonempty = |name: &str| env(name).filter(|value| !value.is_empty());
    if env("GITHUB_EVENT_NAME").as_deref() == Some("pull_request") {
        let head = nonempty("GITHUB_HEAD_REF")
            .ok_or_else(|| anyhow!("--gh on a pull request, but GITHUB_HEAD_REF is not set"))?;
        return Ok(vec![head]);
    }
    let github_ref =
        nonempty("GITHUB_REF").ok_or_else(|| anyhow!("--gh, but GITHUB_REF is not set"))?;
    ["refs/heads/", "refs/tags/", "refs/pull/"]
        .iter()
        .find_map(|prefix| github_ref.strip_prefix(prefix))
        .filter(|name| !name.is_empty())
        .map(|name| vec![name.to_owned()])
        .ok_or_else(|| anyhow!("cannot read a branch or tag from GITHUB_REF={github_ref:?}"))
}

/// The build JSON, as far as the uploader needs it.
#[derive(Debug, Deserialize)]
struct RegisteredBuild {
    self_url: String,
    #[serde(default)]
    published_url: Option<String>,
    #[serde(default)]
    post_prefix_urls: BTreeMap<String, PresignedPost>,
    #[serde(default)]
    post_dir_urls: BTreeMap<String, PresignedPost>,
}

/// The confirming answer, as far as the summary needs it.
#[derive(Debug, Default, Deserialize)]
struct ConfirmedBuild {
    #[serde(default)]
    editions_updated: Vec<UpdatedEdition>,
}

#[derive(Debug, Deserialize)]
struct UpdatedEdition {
    slug: String,
    published_url: String,
}

/// Runs the whole upload. On error, nothing was confirmed.
pub async fn upload(settings: &UploadSettings) -> anyhow::Result<Summary> {
    let started = Instant::now();
    if settings.git_refs.is_empty() {
        bail!("no git ref: pass --git-ref (or --gh in GitHub Actions)");
    }
    let site_dir = settings.dir.clone();
    let site = tokio::task::spawn_blocking(move || site::scan(&site_dir))
        .await
        .context("scanning the site")??;
    if site.files.is_empty() {
        bail!(
            "{} holds no file to upload (is --dir right?)",
            settings.dir.display()
        );
    }
    if settings.dry_run {
        return Ok(Summary {
            files: site.files.len(),
            directories: site.directories.len(),
            bytes: site.bytes(),
            elapsed: started.elapsed(),
            build_url: None,
            published_url: None,
            editions: Vec::new(),
        });
    }
    let jobs = settings.jobs.max(1);
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(jobs)
        .user_agent(concat!("keeper-upload/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    let client = Client {
        http,
        settings,
        notes: Notes::stderr(),
    };
    let token = client.token().await?;
    let build = client.register(&token, &site).await?;
    let progress = Progress::new(site.files.len() as u64, site.bytes());
    let client = Client {
        notes: progress.notes(),
        ..client
    };
    let uploaded = client.upload_files(&site, &build, progress).await;
    uploaded.with_context(|| {
        format!(
            "the upload failed; build {} is left unconfirmed and no edition changed",
            build.self_url
        )
    })?;
    client.upload_directories(&build).await.with_context(|| {
        format!(
            "uploading the directory objects failed; build {} is left unconfirmed and no \
             edition changed",
            build.self_url
        )
    })?;
    let confirmed = client.confirm(&token, &build.self_url).await?;
    Ok(Summary {
        files: site.files.len(),
        directories: build.post_dir_urls.len(),
        bytes: site.bytes(),
        elapsed: started.elapsed(),
        build_url: Some(build.self_url),
        published_url: build.published_url,
        editions: confirmed
            .editions_updated
            .into_iter()
            .map(|edition| (edition.slug, edition.published_url))
            .collect(),
    })
}

struct Client<'a> {
    http: reqwest::Client,
    settings: &'a UploadSettings,
    notes: Notes,
}

/// Why one attempt failed, and whether another may succeed.
struct Failure {
    message: String,
    retry: bool,
}

impl Client<'_> {
    fn url(&self, path: &str) -> anyhow::Result<Url> {
        let mut base = self.settings.host.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.join(path)
            .with_context(|| format!("joining {path} to {}", self.settings.host))
    }

    fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        token: &SecretString,
    ) -> reqwest::RequestBuilder {
        match &self.settings.credentials {
            Credentials::Token(_) => request.bearer_auth(token.expose_secret()),
            Credentials::Password { .. } => request.basic_auth(token.expose_secret(), Some("")),
        }
    }

    /// Sends the request `make` builds, retrying network errors and retryable statuses.
    async fn send(
        &self,
        what: &str,
        make: impl Fn() -> anyhow::Result<reqwest::RequestBuilder>,
    ) -> anyhow::Result<Response> {
        let mut attempt = 0;
        loop {
            let failure = match make()?.send().await {
                Ok(response) if retryable_status(response.status()) => Failure {
                    message: describe(response).await,
                    retry: true,
                },
                Ok(response) => return Ok(response),
                Err(err) => Failure {
                    retry: err.is_connect() || err.is_timeout() || err.is_request(),
                    message: error_chain(&err.without_url()),
                },
            };
            if !failure.retry || attempt >= self.settings.retries {
                bail!("{what}: {}", failure.message);
            }
            attempt += 1;
            let delay = backoff(self.settings.backoff, attempt);
            self.notes.note(&format!(
                "{what}: {}; retry {attempt} of {} in {:.1} s",
                failure.message,
                self.settings.retries,
                delay.as_secs_f64()
            ));
            tokio::time::sleep(delay).await;
        }
    }

    async fn token(&self) -> anyhow::Result<SecretString> {
        let (username, password) = match &self.settings.credentials {
            Credentials::Token(token) => return Ok(token.clone()),
            Credentials::Password { username, password } => (username, password),
        };
        let url = self.url("token")?;
        let response = self
            .send("logging in", || {
                Ok(self
                    .http
                    .get(url.clone())
                    .basic_auth(username, Some(password.expose_secret())))
            })
            .await?;
        if response.status() != StatusCode::OK {
            bail!(
                "logging in to {} as {username} failed: {}",
                self.settings.host,
                describe(response).await
            );
        }
        #[derive(Deserialize)]
        struct Token {
            token: SecretString,
        }
        let token: Token = response
            .json()
            .await
            .context("reading the token from GET /token")?;
        Ok(token.token)
    }

    async fn register(&self, token: &SecretString, site: &Site) -> anyhow::Result<RegisteredBuild> {
        let product = &self.settings.product;
        let url = self.url(&format!("products/{product}/builds/"))?;
        let body = json!({
            "git_refs": self.settings.git_refs,
            "directories": site.directories,
        });
        // Not retried: a lost answer to a POST that did create a build would make a second one.
        let response = self
            .authorize(self.http.post(url), token)
            .header(reqwest::header::ACCEPT, V2_MEDIA_TYPE)
            .json(&body)
            .send()
            .await
            .map_err(|err| {
                anyhow!(
                    "registering a build of {product}: {}",
                    error_chain(&err.without_url())
                )
            })?;
        if response.status() != StatusCode::CREATED {
            bail!(
                "registering a build of {product} failed: {}",
                describe(response).await
            );
        }
        let build: RegisteredBuild = response
            .json()
            .await
            .context("reading the new build's JSON")?;
        if let Some(missing) = site.directories.iter().find(|dir| {
            !build.post_prefix_urls.contains_key(*dir) || !build.post_dir_urls.contains_key(*dir)
        }) {
            bail!(
                "the server gave no upload form for directory {missing:?} of build {}; it may \
                 not support presigned uploads",
                build.self_url
            );
        }
        Ok(build)
    }

    async fn upload_files(
        &self,
        site: &Site,
        build: &RegisteredBuild,
        mut progress: Progress,
    ) -> anyhow::Result<()> {
        let mut uploads = futures::stream::iter(site.files.iter())
            .map(|file| async move {
                let form = &build.post_prefix_urls[&file.directory];
                self.upload_file(file, form).await.map(|()| file.size)
            })
            .buffer_unordered(self.settings.jobs.max(1));
        let result = loop {
            match uploads.try_next().await {
                Ok(Some(size)) => progress.file_done(size),
                Ok(None) => break Ok(()),
                Err(err) => break Err(err),
            }
        };
        // Dropping the stream cancels the uploads still in flight.
        drop(uploads);
        progress.finish();
        result
    }

    async fn upload_file(&self, file: &SiteFile, form: &PresignedPost) -> anyhow::Result<()> {
        let body = Arc::new(
            tokio::fs::read(&file.path)
                .await
                .with_context(|| format!("reading {}", file.path.display()))?,
        );
        let content_type = content_type(&file.name);
        let what = format!("uploading {}", file.path.display());
        let response = self
            .send(&what, || {
                let part = reqwest::multipart::Part::bytes(body.as_ref().clone())
                    .file_name(file.name.clone());
                let mut multipart = reqwest::multipart::Form::new();
                for (name, value) in &form.fields {
                    multipart = multipart.text(name.clone(), value.clone());
                }
                multipart = multipart
                    .text("Content-Type", content_type.clone())
                    .part("file", part);
                Ok(self.http.post(&form.url).multipart(multipart))
            })
            .await?;
        expect_success(response, &what).await
    }

    async fn upload_directories(&self, build: &RegisteredBuild) -> anyhow::Result<()> {
        futures::stream::iter(build.post_dir_urls.iter())
            .map(|(name, form)| async move {
                let what = format!("uploading the directory object of {name}");
                let response = self
                    .send(&what, || {
                        let mut multipart = reqwest::multipart::Form::new();
                        for (field, value) in &form.fields {
                            multipart = multipart.text(field.clone(), value.clone());
                        }
                        let part = reqwest::multipart::Part::bytes(Vec::new())
                            .file_name(DIRECTORY_FILE_NAME);
                        Ok(self
                            .http
                            .post(&form.url)
                            .multipart(multipart.part("file", part)))
                    })
                    .await?;
                expect_success(response, &what).await
            })
            .buffer_unordered(self.settings.jobs.max(1))
            .try_collect::<()>()
            .await
    }

    async fn confirm(
        &self,
        token: &SecretString,
        build_url: &str,
    ) -> anyhow::Result<ConfirmedBuild> {
        let url = Url::parse(build_url).with_context(|| format!("the build URL {build_url:?}"))?;
        // Confirming is idempotent on the server, so it is safe to retry.
        let response = self
            .send("confirming the build", || {
                Ok(self
                    .authorize(self.http.patch(url.clone()), token)
                    .json(&json!({"uploaded": true})))
            })
            .await?;
        if response.status() != StatusCode::OK {
            bail!(
                "confirming build {build_url} failed: {}",
                describe(response).await
            );
        }
        // A server that does not say (the original) leaves the list empty.
        Ok(response.json().await.unwrap_or_default())
    }
}

/// An error and its sources, `: `-separated (reqwest's own message alone says little).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn retryable_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

async fn expect_success(response: Response, what: &str) -> anyhow::Result<()> {
    if response.status().is_success() {
        Ok(())
    } else {
        bail!("{what}: {}", describe(response).await)
    }
}

/// `status: message` of a refused request: the JSON error's message, an S3 error's code and
/// message, or the start of the body.
async fn describe(response: Response) -> String {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|body| body["message"].as_str().map(str::to_owned))
        .or_else(|| {
            let tag = |name: &str| {
                let start = text.find(&format!("<{name}>"))? + name.len() + 2;
                let end = text[start..].find(&format!("</{name}>"))? + start;
                Some(text[start..end].to_owned())
            };
            tag("Code").map(|code| match tag("Message") {
                Some(message) => format!("{code}: {message}"),
                None => code,
            })
        })
        .unwrap_or_else(|| text.chars().take(QUOTE_CHARS).collect());
    if message.is_empty() {
        format!("{status}")
    } else {
        format!("{status}: {message}")
    }
}

/// The wait before retry `attempt` (1-based): `base * 2^(attempt-1)`, capped, with up to 50%
/// random jitter so parallel retries do not arrive together.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    Backoff::new(base, MAX_BACKOFF)
        .with_jitter(Jitter::DownTo(0.5))
        .delay(attempt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn github_refs_follow_ltd_conveyor() {
        let refs = |vars: &[(&str, &str)]| github_actions_refs(env(vars));
        assert_eq!(
            refs(&[("GITHUB_REF", "refs/heads/main")]).unwrap(),
            ["main"]
        );
        assert_eq!(
            refs(&[("GITHUB_REF", "refs/tags/v1.2.3")]).unwrap(),
            ["v1.2.3"]
        );
        assert_eq!(
            refs(&[("GITHUB_REF", "refs/heads/tickets/DM-1")]).unwrap(),
            ["tickets/DM-1"]
        );
        assert_eq!(
            refs(&[
                ("GITHUB_EVENT_NAME", "pull_request"),
                ("GITHUB_HEAD_REF", "feature/x"),
                ("GITHUB_REF", "refs/pull/3/merge"),
            ])
            .unwrap(),
            ["feature/x"]
        );
        assert!(refs(&[]).is_err());
        assert!(refs(&[("GITHUB_REF", "main")]).is_err());
        assert!(refs(&[("GITHUB_EVENT_NAME", "pull_request")]).is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let base = Duration::from_millis(100);
        for attempt in 1..=20 {
            let delay = backoff(base, attempt);
            let full = base
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(MAX_BACKOFF);
            assert!(delay <= full && delay >= full / 2, "{attempt}: {delay:?}");
        }
    }

    #[test]
    fn summaries_read_well() {
        let summary = Summary {
            files: 3,
            directories: 2,
            bytes: 2048,
            elapsed: Duration::from_millis(1500),
            build_url: Some("http://k/builds/1".into()),
            published_url: Some("http://k/docs/demo/builds/1".into()),
            editions: vec![
                ("__main".into(), "http://k/docs/demo".into()),
                ("v1".into(), "http://k/docs/demo/v/v1".into()),
            ],
        };
        assert_eq!(
            summary.to_string(),
            "uploaded 3 files (2.00 KiB, 2048 bytes) and 2 directory objects in 1.5 s; build \
             http://k/builds/1 confirmed; published at http://k/docs/demo/builds/1\n\
             updating 2 edition(s):\n  __main: http://k/docs/demo/\n  v1: http://k/docs/demo/v/v1/"
        );
        let untracked = Summary {
            editions: Vec::new(),
            ..summary.clone()
        };
        assert!(untracked
            .to_string()
            .ends_with("no edition tracks these git refs, so no edition changes"));
        let dry = Summary {
            build_url: None,
            ..summary
        };
        assert!(dry.to_string().starts_with("dry run: would upload 3 files"));
    }

    #[test]
    fn credentials_never_print() {
        let password = Credentials::Password {
            username: "ci".into(),
            password: SecretString::from("hunter2"),
        };
        let token = Credentials::Token(SecretString::from("tok-secret"));
        let printed = format!("{password:?} {token:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("tok-secret"));
    }
}
