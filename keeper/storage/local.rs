//! The embedded default store: objects in a directory tree.
//!
//! Layout under the root:
//! - `objects/<key>%`: the object's bytes. Each key segment is stored with `%` written as `%25`,
//!   and the object's own file name ends in a lone `%`, so the object `guide` (a directory
//!   redirect) and the objects under `guide/` live side by side as the file `guide%` and the
//!   directory `guide`, as they do in a bucket.
//! - `meta/<key>%`: a JSON sidecar with the object's headers, user metadata, size and ETag, and
//!   the inode of the data file it describes.
//! - `tmp/`: every write goes to a temporary file here first and is renamed into place, so a
//!   reader sees the old or the new object, never a part. A write installs the sidecar first
//!   (keeping the description of the data file it replaces beside the new one), then the data;
//!   a reader opens the data file and takes the description with its inode, so the headers and
//!   the bytes it serves are always of the same version.
//!
//! Keys are checked by [`validate_key`] first: nothing can name a path outside the root, and a
//! segment too long for a file name is an invalid key, not an I/O error.
//! Listing walks the tree depth first in key order, holding one directory's entries per level, so
//! memory follows the tree's depth and width, not the number of objects.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{
    validate_key, validate_prefix, DeleteFailure, DeleteReport, Metadata, Object, ObjectHead,
    ObjectHeaders, ObjectStore, ObjectSummary, PageStream, StorageError, DELETE_BATCH,
};

/// Objects per listing page.
pub const DEFAULT_PAGE_SIZE: usize = 1000;
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    page_size: usize,
}

/// The sidecar file: the object's description, and while a write is between its two renames,
/// also the description of the data file it replaces.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SidecarFile {
    versions: Vec<Sidecar>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Sidecar {
    etag: String,
    size: u64,
    /// The inode of the data file this version describes (0: unknown).
    #[serde(default)]
    inode: u64,
    #[serde(flatten)]
    headers: ObjectHeaders,
}

/// The headers a copy is stored with.
enum CopiedHeaders {
    /// The source's, read with its data, with these user metadata entries added or replaced.
    SourceWith(Metadata),
    /// Exactly these; with an ETag, only if the source still has it.
    Exactly(ObjectHeaders, Option<String>),
}

impl LocalStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        Self::with_page_size(root, DEFAULT_PAGE_SIZE)
    }

    pub fn with_page_size(root: impl Into<PathBuf>, page_size: usize) -> io::Result<Self> {
        let root = root.into();
        for dir in ["objects", "meta", "tmp"] {
            fs::create_dir_all(root.join(dir))?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                page_size: page_size.max(1),
            }),
        })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Removes the temporary files under `tmp/` last modified more than `older_than` ago: what a
    /// write killed between creating its temporary file and renaming it into place left
    /// behind. A write in progress (its file younger than that) is left alone, so this is safe
    /// while other processes write to the same store. Returns how many files were removed.
    pub fn remove_abandoned_temp_files(
        &self,
        older_than: std::time::Duration,
    ) -> io::Result<usize> {
        let cutoff = std::time::SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(std::time::UNIX_EPOCH);
        let mut removed = 0;
        for entry in fs::read_dir(self.inner.root.join("tmp"))? {
            let entry = entry?;
            let metadata = match entry.metadata() {
                Ok(metadata) => metadata,
                // Renamed into place (or removed) since the listing: not abandoned.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            if !metadata.is_file() || metadata.modified()? > cutoff {
                continue;
            }
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        Ok(removed)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        operation: &'static str,
        key: &str,
        work: impl FnOnce(&Inner) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|err| StorageError::Io {
                operation,
                key: key.to_owned(),
                source: io::Error::other(err),
            })?
    }

    /// Copies `from` to `to` (both checked) with `headers`, on the blocking pool.
    async fn copy_as(
        &self,
        from: &str,
        to: &str,
        headers: CopiedHeaders,
    ) -> Result<(), StorageError> {
        local_key(from)?;
        local_key(to)?;
        let (from_owned, to_owned) = (from.to_owned(), to.to_owned());
        self.blocking("copy", from, move |inner| {
            inner.copy(&from_owned, &to_owned, headers)
        })
        .await
    }
}

fn encode_segment(segment: &str) -> String {
    segment.replace('%', "%25")
}

fn decode_segment(name: &str) -> String {
    name.replace("%25", "%")
}

/// Most bytes in one file name (Linux's `NAME_MAX`).
const MAX_FILE_NAME: usize = 255;

/// [`validate_key`], and every segment fits in a file name once encoded (`%` as `%25`, and the
/// object's own `%`): a longer key is refused as invalid, before the file system is asked,
/// instead of failing there as an I/O error.
fn local_key(key: &str) -> Result<(), StorageError> {
    validate_key(key)?;
    let too_long = key
        .split('/')
        .any(|segment| encode_segment(segment).len() + 1 > MAX_FILE_NAME);
    if too_long {
        return Err(StorageError::InvalidKey {
            key: key.to_owned(),
            reason: "a segment is longer than a file name may be (255 bytes)",
        });
    }
    Ok(())
}

/// `a/b/c` -> `a/b/c%` (with `%` escaped in each segment).
fn relative_file(key: &str) -> PathBuf {
    let mut path = PathBuf::new();
    let mut segments = key.split('/').peekable();
    while let Some(segment) = segments.next() {
        let mut name = encode_segment(segment);
        if segments.peek().is_none() {
            name.push('%');
        }
        path.push(name);
    }
    path
}

fn relative_dir(prefix: &str) -> PathBuf {
    prefix
        .trim_end_matches('/')
        .split('/')
        .map(encode_segment)
        .collect()
}

fn io_error<'a>(
    operation: &'static str,
    key: &'a str,
) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| {
        if source.kind() == io::ErrorKind::NotFound {
            StorageError::NotFound {
                key: key.to_owned(),
            }
        } else {
            StorageError::Io {
                operation,
                key: key.to_owned(),
                source,
            }
        }
    }
}

#[cfg(unix)]
fn inode(metadata: &fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(metadata)
}

#[cfg(not(unix))]
fn inode(_metadata: &fs::Metadata) -> u64 {
    0
}

fn temp_inode(path: &Path) -> u64 {
    fs::metadata(path)
        .map(|metadata| inode(&metadata))
        .unwrap_or(0)
}

/// ETags compared as S3 compares them: with or without their quotes.
fn same_etag(stored: &str, expected: &str) -> bool {
    stored.trim_matches('"') == expected.trim_matches('"')
}

fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

impl Inner {
    fn data_path(&self, key: &str) -> PathBuf {
        self.root.join("objects").join(relative_file(key))
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.root.join("meta").join(relative_file(key))
    }

    fn temp_path(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The sidecar's versions, newest first (the object's, and during a write the one before).
    fn read_sidecars(&self, key: &str) -> Result<Vec<Sidecar>, StorageError> {
        let raw = fs::read(self.meta_path(key)).map_err(io_error("head", key))?;
        let file: SidecarFile = serde_json::from_slice(&raw).map_err(|err| StorageError::Io {
            operation: "head",
            key: key.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, err),
        })?;
        Ok(file.versions)
    }

    /// Opens the object's data file and finds the sidecar version that describes it (by inode).
    fn open_consistent(
        &self,
        operation: &'static str,
        key: &str,
    ) -> Result<(fs::File, fs::Metadata, Sidecar), StorageError> {
        let mut attempts = 0;
        loop {
            let file = fs::File::open(self.data_path(key)).map_err(io_error(operation, key))?;
            let data = file.metadata().map_err(io_error(operation, key))?;
            let mut versions = self.read_sidecars(key)?;
            let found = versions
                .iter()
                .position(|sidecar| sidecar.inode == inode(&data) || sidecar.inode == 0);
            match found {
                Some(index) => return Ok((file, data, versions.swap_remove(index))),
                // Only when writers of the same key race, or a write died between its renames:
                // read again for a while, then serve the newest description.
                None if attempts >= 100 || versions.is_empty() => {
                    let newest = versions
                        .into_iter()
                        .next()
                        .ok_or_else(|| io_error(operation, key)(io::ErrorKind::NotFound.into()))?;
                    return Ok((file, data, newest));
                }
                None => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }

    fn head(&self, key: &str) -> Result<ObjectHead, StorageError> {
        let (_, data, sidecar) = self.open_consistent("head", key)?;
        Ok(Self::head_of(key, &data, sidecar))
    }

    fn head_of(key: &str, data: &fs::Metadata, sidecar: Sidecar) -> ObjectHead {
        ObjectHead {
            summary: ObjectSummary {
                key: key.to_owned(),
                size: data.len(),
                etag: Some(sidecar.etag),
                last_modified: data.modified().ok().map(DateTime::<Utc>::from),
            },
            headers: sidecar.headers,
        }
    }

    /// Writes bytes to a fresh temporary file and returns its path.
    fn write_temp(&self, bytes: &[u8], key: &str) -> Result<PathBuf, StorageError> {
        let path = self.temp_path();
        fs::write(&path, bytes).map_err(io_error("put", key))?;
        Ok(path)
    }

    /// Renames `temp` to `target`, creating the parent directory; retried if a concurrent delete
    /// prunes the parent in between.
    fn install(&self, temp: &Path, target: &Path, key: &str) -> Result<(), StorageError> {
        let mut attempts = 0;
        loop {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(io_error("put", key))?;
            }
            match fs::rename(temp, target) {
                Ok(()) => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
                Err(err) => {
                    let _ = fs::remove_file(temp);
                    return Err(StorageError::Io {
                        operation: "put",
                        key: key.to_owned(),
                        source: err,
                    });
                }
            }
        }
    }

    /// Installs the metadata first, then the data file (whose presence makes the object exist).
    fn put_parts(
        &self,
        key: &str,
        data_temp: &Path,
        sidecar: &Sidecar,
    ) -> Result<(), StorageError> {
        // Keep the description of the data file in place now: a reader that opens it between
        // the two renames below still finds it.
        let current = fs::metadata(self.data_path(key))
            .ok()
            .map(|data| inode(&data));
        let previous = match current {
            Some(current) => self
                .read_sidecars(key)
                .unwrap_or_default()
                .into_iter()
                .find(|version| version.inode == current),
            None => None,
        };
        let file = SidecarFile {
            versions: std::iter::once(sidecar.clone()).chain(previous).collect(),
        };
        let meta = serde_json::to_vec(&file).map_err(|err| StorageError::Io {
            operation: "put",
            key: key.to_owned(),
            source: io::Error::other(err),
        })?;
        let meta_temp = match self.write_temp(&meta, key) {
            Ok(path) => path,
            Err(err) => {
                let _ = fs::remove_file(data_temp);
                return Err(err);
            }
        };
        if let Err(err) = self.install(&meta_temp, &self.meta_path(key), key) {
            let _ = fs::remove_file(data_temp);
            return Err(err);
        }
        self.install(data_temp, &self.data_path(key), key)
    }

    fn put(&self, key: &str, body: &[u8], headers: ObjectHeaders) -> Result<(), StorageError> {
        let temp = self.write_temp(body, key)?;
        let sidecar = Sidecar {
            etag: etag_of(body),
            size: body.len() as u64,
            inode: temp_inode(&temp),
            headers,
        };
        self.put_parts(key, &temp, &sidecar)
    }

    fn copy(&self, from: &str, to: &str, headers: CopiedHeaders) -> Result<(), StorageError> {
        let (mut source, _, mut sidecar) = self.open_consistent("copy", from)?;
        if let CopiedHeaders::Exactly(_, Some(expected)) = &headers {
            if !same_etag(&sidecar.etag, expected) {
                return Err(StorageError::Changed {
                    key: from.to_owned(),
                    expected: expected.clone(),
                });
            }
        }
        let temp = self.temp_path();
        let copied =
            fs::File::create(&temp).and_then(|mut target| io::copy(&mut source, &mut target));
        if let Err(err) = copied {
            let _ = fs::remove_file(&temp);
            return Err(io_error("copy", from)(err));
        }
        sidecar.inode = temp_inode(&temp);
        sidecar.headers = match headers {
            CopiedHeaders::SourceWith(overrides) => sidecar.headers.with_metadata(&overrides),
            CopiedHeaders::Exactly(headers, _) => headers,
        };
        self.put_parts(to, &temp, &sidecar)
    }

    fn delete_one(&self, key: &str) -> io::Result<()> {
        for path in [self.data_path(key), self.meta_path(key)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
            self.prune(&path);
        }
        Ok(())
    }

    /// Removes the now empty directories above a deleted file, up to the tree's root.
    fn prune(&self, path: &Path) {
        let stops = [self.root.join("objects"), self.root.join("meta")];
        let mut dir = path.parent();
        while let Some(current) = dir {
            if stops.iter().any(|stop| stop == current) || fs::remove_dir(current).is_err() {
                break;
            }
            dir = current.parent();
        }
    }
}

/// One directory entry in listing order.
struct Entry {
    /// The key segment, `/`-terminated for directories so that `a-b` sorts before `a/`.
    order: String,
    file_name: std::ffi::OsString,
    segment: String,
    is_dir: bool,
}

/// Depth-first walk in key order: a stack of directories, each with its remaining entries.
struct Walker {
    /// (key prefix of the directory, its directory path, entries left in reverse order)
    stack: Vec<(String, PathBuf, Vec<Entry>)>,
}

impl Walker {
    fn start(inner: &Inner, prefix: &str) -> io::Result<Self> {
        let dir = inner.root.join("objects").join(relative_dir(prefix));
        let mut walker = Self { stack: Vec::new() };
        match read_entries(&dir) {
            Ok(entries) => walker.stack.push((prefix.to_owned(), dir, entries)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        Ok(walker)
    }

    fn next_page(
        &mut self,
        inner: &Inner,
        size: usize,
    ) -> Result<Vec<ObjectSummary>, StorageError> {
        let mut page = Vec::with_capacity(size.min(DEFAULT_PAGE_SIZE));
        while page.len() < size {
            let Some((prefix, dir, entries)) = self.stack.last_mut() else {
                break;
            };
            let Some(entry) = entries.pop() else {
                self.stack.pop();
                continue;
            };
            let path = dir.join(&entry.file_name);
            if entry.is_dir {
                let key_prefix = format!("{prefix}{}/", entry.segment);
                match read_entries(&path) {
                    Ok(children) => self.stack.push((key_prefix, path, children)),
                    // Deleted since the parent was read.
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(io_error("list", &key_prefix)(err)),
                }
            } else {
                let key = format!("{prefix}{}", entry.segment);
                match inner.head(&key) {
                    Ok(head) => page.push(head.summary),
                    Err(StorageError::NotFound { .. }) => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(page)
    }
}

/// A directory's entries in reverse key order (so `pop` yields the next one).
fn read_entries(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        let is_dir = entry.file_type()?.is_dir();
        let (segment, order) = if is_dir {
            let segment = decode_segment(name);
            let order = format!("{segment}/");
            (segment, order)
        } else if let Some(stem) = name.strip_suffix('%') {
            let segment = decode_segment(stem);
            (segment.clone(), segment)
        } else {
            continue;
        };
        entries.push(Entry {
            order,
            file_name,
            segment,
            is_dir,
        });
    }
    entries.sort_by(|a, b| b.order.cmp(&a.order));
    Ok(entries)
}

fn read_chunk(file: &mut fs::File) -> io::Result<Option<Bytes>> {
    let mut buffer = vec![0; READ_CHUNK];
    let read = file.read(&mut buffer)?;
    if read == 0 {
        return Ok(None);
    }
    buffer.truncate(read);
    Ok(Some(Bytes::from(buffer)))
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn list<'a>(&'a self, prefix: &'a str) -> PageStream<'a> {
        let prefix = prefix.to_owned();
        let inner = self.inner.clone();
        let state: Option<Walker> = None;
        Box::pin(futures::stream::try_unfold(
            (state, false),
            move |(walker, done)| {
                let prefix = prefix.clone();
                let inner = inner.clone();
                async move {
                    if done {
                        return Ok(None);
                    }
                    validate_prefix(&prefix)?;
                    let result = tokio::task::spawn_blocking(move || {
                        let mut walker = match walker {
                            Some(walker) => walker,
                            None => {
                                Walker::start(&inner, &prefix).map_err(io_error("list", &prefix))?
                            }
                        };
                        let page = walker.next_page(&inner, inner.page_size)?;
                        Ok::<_, StorageError>((page, walker))
                    })
                    .await
                    .map_err(|err| StorageError::Io {
                        operation: "list",
                        key: String::new(),
                        source: io::Error::other(err),
                    })?;
                    let (page, walker) = result?;
                    if page.is_empty() {
                        return Ok(None);
                    }
                    let done = walker.stack.is_empty();
                    Ok(Some((page, (Some(walker), done))))
                }
            },
        ))
    }

    async fn head(&self, key: &str) -> Result<ObjectHead, StorageError> {
        local_key(key)?;
        let owned = key.to_owned();
        self.blocking("head", key, move |inner| inner.head(&owned))
            .await
    }

    async fn get(&self, key: &str) -> Result<Object, StorageError> {
        local_key(key)?;
        let owned = key.to_owned();
        let (head, file) = self
            .blocking("get", key, move |inner| {
                // The open file stays readable even if the object is replaced meanwhile.
                let (file, data, sidecar) = inner.open_consistent("get", &owned)?;
                Ok((Inner::head_of(&owned, &data, sidecar), file))
            })
            .await?;
        let key = key.to_owned();
        let body = futures::stream::try_unfold(Some(file), move |file| {
            let key = key.clone();
            async move {
                let Some(mut file) = file else {
                    return Ok(None);
                };
                let chunk = tokio::task::spawn_blocking(move || {
                    read_chunk(&mut file).map(|chunk| chunk.map(|chunk| (chunk, file)))
                })
                .await
                .map_err(io::Error::other)
                .and_then(|result| result)
                .map_err(|source| StorageError::Io {
                    operation: "get",
                    key,
                    source,
                })?;
                Ok(chunk.map(|(chunk, file)| (chunk, Some(file))))
            }
        });
        Ok(Object {
            head,
            body: Box::pin(body),
        })
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        headers: &ObjectHeaders,
    ) -> Result<(), StorageError> {
        local_key(key)?;
        let owned = key.to_owned();
        let headers = normalize(headers.clone());
        self.blocking("put", key, move |inner| inner.put(&owned, &body, headers))
            .await
    }

    async fn copy(&self, from: &str, to: &str, metadata: &Metadata) -> Result<(), StorageError> {
        self.copy_as(from, to, CopiedHeaders::SourceWith(metadata.clone()))
            .await
    }

    async fn copy_with_headers(
        &self,
        from: &str,
        to: &str,
        headers: &ObjectHeaders,
        if_match: Option<&str>,
    ) -> Result<(), StorageError> {
        let copied = CopiedHeaders::Exactly(headers.clone(), if_match.map(str::to_owned));
        self.copy_as(from, to, copied).await
    }

    async fn first_keys(&self, count: usize) -> Result<Vec<String>, StorageError> {
        self.blocking("list", "", move |inner| {
            let mut walker = Walker::start(inner, "").map_err(io_error("list", ""))?;
            Ok(walker
                .next_page(inner, count)?
                .into_iter()
                .map(|summary| summary.key)
                .collect())
        })
        .await
    }

    async fn delete(&self, keys: &[String]) -> Result<DeleteReport, StorageError> {
        let mut report = DeleteReport::default();
        for batch in keys.chunks(DELETE_BATCH) {
            let batch = batch.to_vec();
            let first = batch.first().cloned().unwrap_or_default();
            let part = self
                .blocking("delete", &first, move |inner| {
                    let mut report = DeleteReport::default();
                    for key in batch {
                        let outcome = local_key(&key)
                            .map_err(|err| ("InvalidKey".to_owned(), err.to_string()))
                            .and_then(|()| {
                                inner
                                    .delete_one(&key)
                                    .map_err(|err| ("InternalError".to_owned(), err.to_string()))
                            });
                        match outcome {
                            Ok(()) => report.deleted.push(key),
                            Err((code, message)) => {
                                report.failed.push(DeleteFailure { key, code, message })
                            }
                        }
                    }
                    Ok(report)
                })
                .await?;
            report.deleted.extend(part.deleted);
            report.failed.extend(part.failed);
        }
        Ok(report)
    }
}

/// Stored metadata names are lower case, as S3 returns them.
fn normalize(mut headers: ObjectHeaders) -> ObjectHeaders {
    headers.metadata = headers
        .metadata
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_files_and_directories_do_not_collide() {
        assert_eq!(relative_file("a/guide"), PathBuf::from("a/guide%"));
        assert_eq!(
            relative_file("a/guide/index.html"),
            PathBuf::from("a/guide/index.html%")
        );
        assert_eq!(relative_file("50%/x%"), PathBuf::from("50%25/x%25%"));
        assert_eq!(decode_segment("50%25"), "50%");
        assert_eq!(relative_dir("a/b/"), PathBuf::from("a/b"));
    }
}
