//! Mirroring one prefix onto another: the copy step shared by rebuilds and renames.
//!
//! Both prefixes are listed once, page by page, and merged in key order (both listings are
//! sorted and share their layout under the prefix), so memory holds a page of each listing, the
//! copies in flight, and up to [`LEFTOVER_LIMIT`] keys to delete afterwards (the destination's
//! leftovers; beyond that they are found again by a second listing) — never the whole build.
//!
//! Each object costs a `HeadObject` (its headers) and a `CopyObject` with the metadata REPLACE
//! directive resending them with the destination's surrogate key; the two run as a pipeline, so
//! reading headers overlaps copying.

use std::cmp::Ordering;
use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};

use crate::domain::BucketPrefix;
use crate::ops::manifest::Entry;
use crate::ops::ProgressCounter;
use crate::storage::{Metadata, ObjectHeaders, ObjectStore, StorageError, DELETE_BATCH};

/// The user-metadata entry that becomes the `Surrogate-Key` header at the edge.
pub const SURROGATE_KEY: &str = "surrogate-key";

/// At most this many leftover keys are kept in memory during a mirror; beyond it they are found
/// again by a second listing pass ([`remove_leftovers`]).
pub const LEFTOVER_LIMIT: usize = 10_000;

/// Source keys listed ahead of the copies: two listing pages, so that the next page is fetched
/// while the copies work through the previous one instead of waiting for it.
const KEYS_AHEAD: usize = 2 * DELETE_BATCH;

/// The keys under the destination that the source lacks, found while mirroring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftovers {
    /// All of them (at most the limit given to [`mirror`]).
    Listed(Vec<String>),
    /// More than the limit: [`remove_leftovers`] lists both prefixes again to find them, so
    /// memory stays bounded whatever the destination held.
    TooMany,
}

/// Copies every object under `from` to the same relative key under `to` with `surrogate_key`,
/// `concurrency` copies in flight. Returns the keys under `to` that `from` lacks (to delete once
/// every copy succeeded), keeping at most `leftover_limit` of them. Fails on the first copy that
/// fails; nothing is deleted here.
pub fn mirror<'a>(
    store: &'a Arc<dyn ObjectStore>,
    from: &'a BucketPrefix,
    to: &'a BucketPrefix,
    surrogate_key: &'a str,
    concurrency: usize,
    leftover_limit: usize,
    progress: &'a Arc<ProgressCounter>,
) -> BoxFuture<'a, anyhow::Result<Leftovers>> {
    async move {
        let (jobs, receiver) =
            tokio::sync::mpsc::channel::<String>(KEYS_AHEAD.max(concurrency.max(1) * 4));
        let metadata = Metadata::from([(SURROGATE_KEY.to_owned(), surrogate_key.to_owned())]);
        let plan = async move {
            let mut steps = std::pin::pin!(merged(store.as_ref(), from, to));
            let mut leftovers = Leftovers::Listed(Vec::new());
            let mut total = 0i64;
            while let Some(step) = steps.try_next().await? {
                match step {
                    Merged::Source(key) => {
                        total += 1;
                        if jobs.send(key).await.is_err() {
                            // The copier stopped on an error; it reports it.
                            break;
                        }
                    }
                    Merged::Leftover(key) => {
                        if let Leftovers::Listed(keys) = &mut leftovers {
                            if keys.len() < leftover_limit {
                                keys.push(key);
                            } else {
                                leftovers = Leftovers::TooMany;
                            }
                        }
                    }
                }
            }
            drop(jobs);
            progress.set_total(total);
            Ok::<_, anyhow::Error>(leftovers)
        };
        let metadata = Arc::new(metadata);
        let concurrency = concurrency.max(1);
        // Two stages, each with `concurrency` requests in flight: the source's headers are read
        // (S3 cannot replace one metadata entry, so a copy must resend them all) while earlier
        // objects are being copied, so neither kind of request waits for the other.
        let copies = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|key| (key, receiver))
        })
        .map(|source_key| {
            tokio::spawn(plan_copy(
                store.clone(),
                from.clone(),
                to.clone(),
                source_key,
                metadata.clone(),
            ))
            .map(joined)
        })
        .buffer_unordered(concurrency)
        .map_ok(|copy| tokio::spawn(copy_one(store.clone(), copy, progress.clone())).map(joined))
        .try_buffer_unordered(concurrency)
        .try_for_each(|()| futures::future::ready(Ok(())));
        let (leftovers, ()) = tokio::try_join!(plan, copies)?;
        Ok(leftovers)
    }
    .boxed()
}

/// Copies every entry of a sealed build's manifest from `from` to the same relative key under
/// `to`, with the manifest's headers and `surrogate_key`, each on the condition that the source
/// still has the sealed ETag: one `CopyObject` per object and nothing else. `concurrency`
/// copies in flight, all in this task (on loopback the client shares the CPU with the server,
/// and spawning each copy cost a quarter of the throughput). After the first failure no new
/// copy starts and the ones in flight are waited for, so that nothing lands after this returns;
/// nothing is deleted here. A source that changed or vanished since the seal fails with the
/// [`StorageError`] in the chain, so the caller can tell it from a transient failure
/// ([`changed_since_seal`]).
pub fn copy_manifest<'a>(
    store: &'a Arc<dyn ObjectStore>,
    entries: BoxStream<'static, anyhow::Result<Entry>>,
    from: &'a BucketPrefix,
    to: &'a BucketPrefix,
    surrogate_key: &'a str,
    concurrency: usize,
    progress: &'a Arc<ProgressCounter>,
) -> BoxFuture<'a, anyhow::Result<()>> {
    let metadata = Metadata::from([(SURROGATE_KEY.to_owned(), surrogate_key.to_owned())]);
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = failed.clone();
    entries
        .take_while(move |_| {
            futures::future::ready(!stop.load(std::sync::atomic::Ordering::SeqCst))
        })
        .map(move |entry| {
            let (metadata, failed) = (metadata.clone(), failed.clone());
            async move {
                let outcome = async {
                    let entry = entry?;
                    let source_key = from.key(&entry.key)?;
                    let target_key = to.key(&entry.key)?;
                    let headers = entry.headers.with_metadata(&metadata);
                    store
                        .copy_with_headers(&source_key, &target_key, &headers, Some(&entry.etag))
                        .await
                        .map_err(|err| {
                            anyhow::Error::new(err)
                                .context(format!("copying {source_key:?} to {target_key:?}"))
                        })?;
                    progress.add_done(1);
                    Ok(())
                }
                .await;
                if outcome.is_err() {
                    failed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                outcome
            }
        })
        .buffer_unordered(concurrency.max(1))
        .fold(Ok(()), |first, outcome| {
            futures::future::ready(first.and(outcome))
        })
        .boxed()
}

/// The key a failed [`copy_manifest`] names when its source changed or vanished since the seal.
pub fn changed_since_seal(err: &anyhow::Error) -> Option<&str> {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<StorageError>())
        .find_map(|storage| match storage {
            StorageError::Changed { key, .. } | StorageError::NotFound { key } => {
                Some(key.as_str())
            }
            _ => None,
        })
}

/// Relative keys, one at a time.
pub type KeyStream<'a> = BoxStream<'a, anyhow::Result<String>>;

/// The relative keys of a manifest.
pub fn manifest_keys(entries: BoxStream<'static, anyhow::Result<Entry>>) -> KeyStream<'static> {
    entries.map_ok(|entry| entry.key).boxed()
}

/// The relative keys under `prefix` in the store, read a page at a time.
pub fn listed_keys<'a>(store: &'a dyn ObjectStore, prefix: &'a BucketPrefix) -> KeyStream<'a> {
    objects(store, prefix.as_str())
        .map_ok(move |key| relative(prefix, &key).to_owned())
        .boxed()
}

/// Deletes from `to` every key of `present` that `kept` lacks; both streams are relative keys
/// in the store's order. Memory holds a batch; `concurrency` batches in flight. Returns how many
/// were deleted.
pub fn delete_missing_from<'a>(
    store: &'a Arc<dyn ObjectStore>,
    to: &'a BucketPrefix,
    present: KeyStream<'a>,
    kept: KeyStream<'a>,
    concurrency: usize,
) -> BoxFuture<'a, anyhow::Result<u64>> {
    let keys = only_in(present, kept)
        .and_then(move |relative| {
            futures::future::ready(to.key(&relative).map_err(anyhow::Error::from))
        })
        .boxed();
    delete_streamed(store, keys, concurrency)
}

/// Deletes the full keys of `keys` in batches of [`DELETE_BATCH`], `concurrency` batches in
/// flight, holding one batch per request in memory. Returns how many were deleted.
fn delete_streamed<'a>(
    store: &'a Arc<dyn ObjectStore>,
    keys: KeyStream<'a>,
    concurrency: usize,
) -> BoxFuture<'a, anyhow::Result<u64>> {
    keys.try_chunks(DELETE_BATCH)
        .map_err(|err| err.1)
        .map_ok(|batch| {
            let deleted = batch.len() as u64;
            tokio::spawn(delete_batch(store.clone(), batch))
                .map(move |outcome| joined(outcome).map(|()| deleted))
        })
        .try_buffer_unordered(concurrency.max(1))
        .try_fold(0u64, |total, deleted| async move { Ok(total + deleted) })
        .boxed()
}

/// The keys of `left` that `right` lacks (both sorted the same way).
pub fn only_in<'a>(left: KeyStream<'a>, right: KeyStream<'a>) -> KeyStream<'a> {
    futures::stream::try_unfold(
        (left, right, None::<(Option<String>, Option<String>)>),
        |(mut left, mut right, heads)| async move {
            let (mut l, mut r) = match heads {
                Some(heads) => heads,
                None => (left.try_next().await?, right.try_next().await?),
            };
            loop {
                match (&l, &r) {
                    (None, _) => return Ok(None),
                    (Some(_), None) => {
                        let key = l.take();
                        l = left.try_next().await?;
                        return Ok(key.map(|key| (key, (left, right, Some((l, r))))));
                    }
                    (Some(a), Some(b)) => match a.cmp(b) {
                        Ordering::Less => {
                            let key = l.take();
                            l = left.try_next().await?;
                            return Ok(key.map(|key| (key, (left, right, Some((l, r))))));
                        }
                        Ordering::Equal => {
                            l = left.try_next().await?;
                            r = right.try_next().await?;
                        }
                        Ordering::Greater => r = right.try_next().await?,
                    },
                }
            }
        },
    )
    .boxed()
}

/// One object to copy: where from, where to, and the headers the copy is stored with.
struct PlannedCopy {
    source_key: String,
    target_key: String,
    headers: ObjectHeaders,
}

/// Maps `source_key` under `to` and reads its headers, with `metadata` merged in.
async fn plan_copy(
    store: Arc<dyn ObjectStore>,
    from: BucketPrefix,
    to: BucketPrefix,
    source_key: String,
    metadata: Arc<Metadata>,
) -> anyhow::Result<PlannedCopy> {
    let target_key = match to.key(relative(&from, &source_key)) {
        Ok(key) => key,
        Err(err) => anyhow::bail!("mapping {source_key:?} under {to}: {err}"),
    };
    let head = match store.head(&source_key).await {
        Ok(head) => head,
        Err(err) => anyhow::bail!("reading the headers of {source_key:?}: {err}"),
    };
    Ok(PlannedCopy {
        source_key,
        target_key,
        headers: head.headers.with_metadata(&metadata),
    })
}

async fn copy_one(
    store: Arc<dyn ObjectStore>,
    copy: PlannedCopy,
    progress: Arc<ProgressCounter>,
) -> anyhow::Result<()> {
    let PlannedCopy {
        source_key,
        target_key,
        headers,
    } = copy;
    if let Err(err) = store
        .copy_with_headers(&source_key, &target_key, &headers, None)
        .await
    {
        anyhow::bail!("copying {source_key:?} to {target_key:?}: {err}");
    }
    progress.add_done(1);
    Ok(())
}

/// A spawned task's result, with a panic or cancellation as an error.
fn joined<T>(outcome: Result<anyhow::Result<T>, tokio::task::JoinError>) -> anyhow::Result<T> {
    outcome
        .map_err(anyhow::Error::from)
        .and_then(|result| result)
}

async fn delete_batch(store: Arc<dyn ObjectStore>, batch: Vec<String>) -> anyhow::Result<()> {
    let report = match store.delete(&batch).await {
        Ok(report) => report,
        Err(err) => anyhow::bail!("deleting objects: {err}"),
    };
    match report.failed.first() {
        None => Ok(()),
        Some(failure) => Err(anyhow::anyhow!(
            "could not delete {} objects, e.g. {:?}: {} {}",
            report.failed.len(),
            failure.key,
            failure.code,
            failure.message
        )),
    }
}

/// Deletes `keys` in batches of up to 1000, `concurrency` batches in flight; any key the store
/// could not delete fails the step.
pub fn delete_keys<'a>(
    store: &'a Arc<dyn ObjectStore>,
    keys: &[String],
    concurrency: usize,
) -> BoxFuture<'a, anyhow::Result<()>> {
    let batches: Vec<Vec<String>> = keys.chunks(DELETE_BATCH).map(<[String]>::to_vec).collect();
    futures::stream::iter(batches)
        .map(|batch| tokio::spawn(delete_batch(store.clone(), batch)).map(joined))
        .buffer_unordered(concurrency.max(1))
        .try_for_each(|()| futures::future::ready(Ok(())))
        .boxed()
}

/// Deletes everything under `prefix` (which ends in `/`, so `v/1/` never touches `v/10/`).
pub fn delete_prefix<'a>(
    store: &'a Arc<dyn ObjectStore>,
    prefix: &'a BucketPrefix,
    concurrency: usize,
) -> BoxFuture<'a, anyhow::Result<u64>> {
    async move {
        let mut deleted = 0u64;
        let mut pages = store.list(prefix.as_str());
        while let Some(page) = pages
            .try_next()
            .await
            .with_context(|| format!("listing {prefix}"))?
        {
            let keys: Vec<String> = page.into_iter().map(|object| object.key).collect();
            delete_keys(store, &keys, concurrency).await?;
            deleted += keys.len() as u64;
        }
        Ok(deleted)
    }
    .boxed()
}

/// Deletes the leftovers [`mirror`] found under `to`: the listed keys, or, when there were too
/// many to keep, every key under `to` that `from` lacks, found by listing both again and deleted
/// a batch at a time. Returns how many were deleted.
pub fn remove_leftovers<'a>(
    store: &'a Arc<dyn ObjectStore>,
    from: &'a BucketPrefix,
    to: &'a BucketPrefix,
    leftovers: Leftovers,
    concurrency: usize,
) -> BoxFuture<'a, anyhow::Result<u64>> {
    async move {
        match leftovers {
            Leftovers::Listed(keys) => {
                delete_keys(store, &keys, concurrency).await?;
                Ok(keys.len() as u64)
            }
            Leftovers::TooMany => {
                let keys = merged(store.as_ref(), from, to)
                    .try_filter_map(|step| async move {
                        Ok(match step {
                            Merged::Leftover(key) => Some(key),
                            Merged::Source(_) => None,
                        })
                    })
                    .boxed();
                delete_streamed(store, keys, concurrency).await
            }
        }
    }
    .boxed()
}

/// One step of the merge of the listings of a mirror's two prefixes.
enum Merged {
    /// A key under the source (to copy).
    Source(String),
    /// A key under the destination that the source lacks.
    Leftover(String),
}

/// The listings of `from` and `to` merged in key order (both are sorted and share their layout
/// under the prefix), one step per source key and per leftover; memory holds a page of each.
fn merged<'a>(
    store: &'a dyn ObjectStore,
    from: &'a BucketPrefix,
    to: &'a BucketPrefix,
) -> impl Stream<Item = anyhow::Result<Merged>> + Send + 'a {
    let sources = objects(store, from.as_str());
    let targets = objects(store, to.as_str());
    futures::stream::try_unfold(
        (sources, targets, None::<(Option<String>, Option<String>)>),
        move |(mut sources, mut targets, heads)| async move {
            let (mut source, mut target) = match heads {
                Some(heads) => heads,
                None => (sources.try_next().await?, targets.try_next().await?),
            };
            let order = match (&source, &target) {
                (None, None) => return Ok(None),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(s), Some(t)) => relative(from, s).cmp(relative(to, t)),
            };
            let step = match order {
                Ordering::Greater => {
                    let key = target.take();
                    target = targets.try_next().await?;
                    key.map(Merged::Leftover)
                }
                Ordering::Equal | Ordering::Less => {
                    let key = source.take();
                    source = sources.try_next().await?;
                    if order == Ordering::Equal {
                        target = targets.try_next().await?;
                    }
                    key.map(Merged::Source)
                }
            };
            Ok(step.map(|step| (step, (sources, targets, Some((source, target))))))
        },
    )
}

/// The keys under `prefix`, one at a time, read a page at a time.
fn objects<'a>(
    store: &'a dyn ObjectStore,
    prefix: &'a str,
) -> impl Stream<Item = anyhow::Result<String>> + Unpin + Send + 'a {
    store
        .list(prefix)
        .map_ok(|page| {
            futures::stream::iter(page.into_iter().map(|o| Ok::<_, StorageError>(o.key)))
        })
        .try_flatten()
        .map(move |item| item.with_context(|| format!("listing {prefix}")))
}

fn relative<'k>(prefix: &BucketPrefix, key: &'k str) -> &'k str {
    prefix.relative(key).unwrap_or(key)
}
