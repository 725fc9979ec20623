//! `keeper verify [--product P] [--repair]`: checks the bucket against the catalogue. Every
//! published build against its manifest (keys, sizes, ETags), and every edition against its
//! build's manifest (keys, sizes, ETags, and the edition's surrogate key on each object).
//! Differences are reported one per line; `--repair` queues, for each edition that differs, a
//! rebuild that lists its prefix (so leftovers go too), and a seal for each unsealed build.
//! Nothing else is changed: a build that differs from its manifest cannot be repaired (its
//! confirmed bytes are gone), so its editions must be pointed at another build.

use std::cmp::Ordering;
use std::sync::Arc;

use anyhow::Context;
use futures::stream::{BoxStream, FuturesUnordered};
use futures::{StreamExt, TryStreamExt};

use crate::backends::OrgBackends;
use crate::db::builds::list_active_builds;
use crate::db::editions::{list_editions, set_prefix_matches_build};
use crate::db::models::{Build, Edition};
use crate::db::operations::with_cause;
use crate::db::organizations::find_settings_of_product;
use crate::db::products::find_product_by_slug;
use crate::db::reads::product_slugs;
use crate::db::DbPool;
use crate::domain::{BucketPrefix, BuildSlug, EditionSlug, ProductSlug};
use crate::ops::copy::SURROGATE_KEY;
use crate::ops::manifest::{self, Entry};
use crate::ops::{rebuild, seal, with_db};
use crate::storage::{ObjectStore, ObjectSummary, StorageError};

/// What the operations `--repair` queues name as their cause.
const REPAIR: &str = "keeper verify --repair";

/// One thing that is not as the catalogue says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub product: String,
    /// `build 3` or `edition __main`.
    pub subject: String,
    pub key: Option<String>,
    pub problem: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.product, self.subject)?;
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// What a run checked and found.
#[derive(Debug, Default)]
pub struct Report {
    pub products: usize,
    pub builds: usize,
    pub editions: usize,
    pub objects: u64,
    pub differences: Vec<Difference>,
    /// Operations queued by `--repair`, as `kind id` lines.
    pub queued: Vec<String>,
}

/// Where to look and how hard.
pub struct Verifier {
    pub pool: DbPool,
    /// The default organization's store.
    pub store: Arc<dyn ObjectStore>,
    pub organizations: OrgBackends,
    pub concurrency: usize,
}

impl Verifier {
    /// Checks every product, or only `product`; with `repair`, queues the fixes.
    pub async fn run(&self, product: Option<&str>, repair: bool) -> anyhow::Result<Report> {
        let slugs = match product {
            Some(slug) => vec![slug.to_owned()],
            None => with_db(&self.pool, |conn| Ok(product_slugs(conn)?)).await?,
        };
        let mut report = Report::default();
        for slug in slugs {
            self.product(&slug, repair, &mut report)
                .await
                .with_context(|| format!("verifying {slug}"))?;
        }
        Ok(report)
    }

    async fn product(&self, slug: &str, repair: bool, report: &mut Report) -> anyhow::Result<()> {
        let wanted = slug.to_owned();
        let (product, settings, builds, editions) = with_db(&self.pool, move |conn| {
            let product = find_product_by_slug(conn, &wanted)
                .with_context(|| format!("no product named {wanted:?}"))?;
            let (_, settings) = find_settings_of_product(conn, product.id)?;
            let builds = list_active_builds(conn, product.id)?;
            let editions = list_editions(conn, product.id)?;
            Ok((product, settings, builds, editions))
        })
        .await?;
        let store = if OrgBackends::is_default(&settings) {
            self.store.clone()
        } else {
            self.organizations.for_organization(&settings).await?.store
        };
        let product_slug = ProductSlug::parse(&product.slug)?;
        report.products += 1;
        let mut check = Check {
            store: &store,
            product: &product_slug,
            concurrency: self.concurrency,
            report,
        };
        for build in builds.iter().filter(|build| build.uploaded) {
            let sealed = check.build(build).await?;
            if !sealed && repair {
                let (product, build) = (product.clone(), build.clone());
                let queued = with_db(&self.pool, move |conn| {
                    Ok(with_cause(REPAIR, || {
                        seal::enqueue(conn, &product, &build)
                    })?)
                })
                .await?;
                check
                    .report
                    .queued
                    .push(format!("seal_build {}", queued.id));
            }
        }
        for edition in &editions {
            let Some(build) = edition
                .build_id
                .and_then(|id| builds.iter().find(|build| build.id == id))
            else {
                if edition.build_id.is_some() {
                    check.differ(
                        edition_subject(edition),
                        None,
                        "its build is deprecated; point the edition at another build".into(),
                    );
                }
                continue;
            };
            let matches = check.edition(edition, build).await?;
            if !matches && repair {
                let (product, edition, build) = (product.clone(), edition.clone(), build.clone());
                let queued = with_db(&self.pool, move |conn| {
                    with_cause(REPAIR, || {
                        conn.write_transaction(|conn| {
                            set_prefix_matches_build(conn, edition.id, false)?;
                            rebuild::enqueue(
                                conn,
                                &product,
                                &edition,
                                &build,
                                crate::domain::HistoryReason::Repair,
                            )
                        })
                    })
                    .map_err(anyhow::Error::from)
                })
                .await?;
                check
                    .report
                    .queued
                    .push(format!("rebuild_edition {}", queued.id));
            }
        }
        Ok(())
    }
}

fn edition_subject(edition: &Edition) -> String {
    format!("edition {}", edition.slug)
}

/// The checks of one product.
struct Check<'a> {
    store: &'a Arc<dyn ObjectStore>,
    product: &'a ProductSlug,
    concurrency: usize,
    report: &'a mut Report,
}

impl Check<'_> {
    fn differ(&mut self, subject: String, key: Option<String>, problem: String) {
        self.report.differences.push(Difference {
            product: self.product.to_string(),
            subject,
            key,
            problem,
        });
    }

    /// Checks a confirmed build against its manifest; `false` when it is not sealed.
    async fn build(&mut self, build: &Build) -> anyhow::Result<bool> {
        self.report.builds += 1;
        let subject = format!("build {}", build.slug);
        let Some(digest) = &build.manifest_digest else {
            self.differ(subject, None, "not sealed yet (no manifest)".into());
            return Ok(false);
        };
        let slug = BuildSlug::parse(&build.slug)?;
        let prefix = BucketPrefix::build(self.product, &slug);
        let opened = manifest::open(self.store, self.product, &slug, digest).await;
        let manifest = match opened {
            Ok(manifest) => manifest,
            Err(err) => {
                self.differ(subject, None, format!("{err:#}"));
                return Ok(true);
            }
        };
        let mut pairs = paired(listing(self.store.as_ref(), &prefix), manifest.entries);
        while let Some(pair) = pairs.try_next().await? {
            match pair {
                Paired::Extra(summary) => self.differ(
                    subject.clone(),
                    Some(summary.relative),
                    "not in the manifest".into(),
                ),
                Paired::Missing(entry) => {
                    self.differ(subject.clone(), Some(entry.key), "missing".into())
                }
                Paired::Both(summary, entry) => {
                    self.report.objects += 1;
                    let etag = match &summary.object.etag {
                        Some(etag) => Some(etag.clone()),
                        // Some servers list no ETags: ask for this one.
                        None => self.store.head(&summary.object.key).await?.summary.etag,
                    };
                    if let Some(problem) =
                        content_differs(summary.object.size, etag.as_deref(), &entry)
                    {
                        self.differ(subject.clone(), Some(entry.key), problem);
                    }
                }
            }
        }
        Ok(true)
    }

    /// Checks an edition against its build's manifest; `false` on any difference.
    async fn edition(&mut self, edition: &Edition, build: &Build) -> anyhow::Result<bool> {
        self.report.editions += 1;
        let subject = edition_subject(edition);
        let before = self.report.differences.len();
        let Some(digest) = &build.manifest_digest else {
            self.differ(
                subject,
                None,
                format!("its build {} is not sealed yet", build.slug),
            );
            return Ok(false);
        };
        let slug = BuildSlug::parse(&build.slug)?;
        let prefix = BucketPrefix::edition(self.product, &EditionSlug::parse(&edition.slug)?);
        let manifest = match manifest::open(self.store, self.product, &slug, digest).await {
            Ok(manifest) => manifest,
            Err(err) => {
                self.differ(subject, None, format!("{err:#}"));
                return Ok(false);
            }
        };
        let mut heads = FuturesUnordered::new();
        let mut pairs = paired(listing(self.store.as_ref(), &prefix), manifest.entries);
        while let Some(pair) = pairs.try_next().await? {
            match pair {
                Paired::Extra(summary) => self.differ(
                    subject.clone(),
                    Some(summary.relative),
                    format!("not in build {}", build.slug),
                ),
                Paired::Missing(entry) => {
                    self.differ(subject.clone(), Some(entry.key), "missing".into())
                }
                Paired::Both(summary, entry) => {
                    self.report.objects += 1;
                    let store = self.store.clone();
                    heads.push(async move {
                        let head = store.head(&summary.object.key).await;
                        (entry, head)
                    });
                    if heads.len() >= self.concurrency.max(1) {
                        if let Some((entry, head)) = heads.next().await {
                            self.check_copy(&subject, edition, entry, head)?;
                        }
                    }
                }
            }
        }
        while let Some((entry, head)) = heads.next().await {
            self.check_copy(&subject, edition, entry, head)?;
        }
        Ok(self.report.differences.len() == before)
    }

    /// Checks an edition's copy of `entry`: size, ETag and the edition's surrogate key.
    fn check_copy(
        &mut self,
        subject: &str,
        edition: &Edition,
        entry: Entry,
        head: Result<crate::storage::ObjectHead, StorageError>,
    ) -> anyhow::Result<()> {
        let key = entry.key.clone();
        match head {
            Ok(head) => {
                let etag = head.summary.etag.as_deref();
                if let Some(problem) = content_differs(head.summary.size, etag, &entry) {
                    self.differ(subject.to_owned(), Some(key.clone()), problem);
                }
                let found = head.headers.metadata.get(SURROGATE_KEY);
                if found.map(String::as_str) != Some(edition.surrogate_key.as_str()) {
                    self.differ(
                        subject.to_owned(),
                        Some(key),
                        format!(
                            "surrogate key is {}, not the edition's {}",
                            found.map_or("missing", String::as_str),
                            edition.surrogate_key
                        ),
                    );
                }
                Ok(())
            }
            Err(err) if err.is_not_found() => {
                self.differ(subject.to_owned(), Some(key), "missing".into());
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// A size and ETag found against the manifest's.
fn content_differs(size: u64, etag: Option<&str>, entry: &Entry) -> Option<String> {
    if size != entry.size {
        Some(format!(
            "size {size} differs from the sealed {}",
            entry.size
        ))
    } else if etag.map(|etag| etag.trim_matches('"')) != Some(entry.etag.trim_matches('"')) {
        Some(format!(
            "ETag {} differs from the sealed {}",
            etag.unwrap_or("(none)"),
            entry.etag
        ))
    } else {
        None
    }
}

/// An object found under a prefix, with its key relative to the prefix.
struct Listed {
    relative: String,
    object: ObjectSummary,
}

/// The objects under `prefix`, a page at a time.
fn listing<'a>(
    store: &'a dyn ObjectStore,
    prefix: &'a BucketPrefix,
) -> BoxStream<'a, anyhow::Result<Listed>> {
    store
        .list(prefix.as_str())
        .map_ok(|page| futures::stream::iter(page.into_iter().map(Ok::<_, StorageError>)))
        .try_flatten()
        .map_err(anyhow::Error::from)
        .map_ok(move |object| Listed {
            relative: prefix
                .relative(&object.key)
                .unwrap_or(&object.key)
                .to_owned(),
            object,
        })
        .boxed()
}

/// One step of a listing merged with a manifest (both in key order).
enum Paired {
    /// Listed, not in the manifest.
    Extra(Listed),
    /// In the manifest, not listed.
    Missing(Entry),
    Both(Listed, Entry),
}

/// The listing and the manifest merged by key, one step at a time.
fn paired<'a>(
    listed: BoxStream<'a, anyhow::Result<Listed>>,
    entries: BoxStream<'static, anyhow::Result<Entry>>,
) -> BoxStream<'a, anyhow::Result<Paired>> {
    struct Merge<'a> {
        listed: BoxStream<'a, anyhow::Result<Listed>>,
        entries: BoxStream<'static, anyhow::Result<Entry>>,
        /// The next of each side, read ahead; `None` once that side is done.
        object: Option<Listed>,
        entry: Option<Entry>,
        /// Whether that side's next item is still to be read.
        read_object: bool,
        read_entry: bool,
    }
    let merge = Merge {
        listed,
        entries,
        object: None,
        entry: None,
        read_object: true,
        read_entry: true,
    };
    futures::stream::try_unfold(merge, |mut merge| async move {
        if std::mem::take(&mut merge.read_object) {
            merge.object = merge.listed.try_next().await?;
        }
        if std::mem::take(&mut merge.read_entry) {
            merge.entry = merge.entries.try_next().await?;
        }
        let step = match (merge.object.take(), merge.entry.take()) {
            (None, None) => return Ok(None),
            (Some(object), None) => {
                merge.read_object = true;
                Paired::Extra(object)
            }
            (None, Some(entry)) => {
                merge.read_entry = true;
                Paired::Missing(entry)
            }
            (Some(object), Some(entry)) => match object.relative.cmp(&entry.key) {
                Ordering::Less => {
                    merge.read_object = true;
                    merge.entry = Some(entry);
                    Paired::Extra(object)
                }
                Ordering::Greater => {
                    merge.read_entry = true;
                    merge.object = Some(object);
                    Paired::Missing(entry)
                }
                Ordering::Equal => {
                    (merge.read_object, merge.read_entry) = (true, true);
                    Paired::Both(object, entry)
                }
            },
        };
        Ok(Some((step, merge)))
    })
    .boxed()
}
