//! [`FsBlobStore`]: a content-addressed directory, the embedded default.

use std::fmt;
use std::io::{self, IoSlice, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use rr_core::{BlobError, BlobStore, ByteStream, ContentId};
use sha2::{Digest as _, Sha256};

use super::{check_integrity, content_id, TARGET};

/// Name of the directory, under the root, that holds the blobs.
const BLOBS_DIR: &str = "blobs";
/// Name of the directory, under the root, that holds in-progress writes.
const TMP_DIR: &str = "tmp";
/// Extension of temp files.
const TMP_EXT: &str = "put";

/// Configuration of an [`FsBlobStore`].
///
/// Build one with [`FsBlobStoreConfig::new`] and set the fields that differ;
/// [`FsBlobStore::open`] checks it with [`FsBlobStoreConfig::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsBlobStoreConfig {
    /// The store's directory; created if missing. No default: the default
    /// config's empty root does not validate.
    pub root: PathBuf,
    /// The largest blob the store takes, in bytes; larger puts fail with
    /// [`BlobError::TooLarge`]. `None` (the default) for no limit.
    pub max_blob_size: Option<u64>,
    /// Size of the chunks a read streams, in bytes (default 512 KiB). A read
    /// holds up to three of them: one being read, two queued.
    pub read_chunk_size: usize,
    /// How many bytes a put gathers before handing them to its writer thread
    /// in one vectored write (default 1 MiB). A put holds up to about three
    /// such batches of the incoming chunks: one being gathered, two queued.
    pub write_buffer_size: usize,
    /// Whether to fsync each blob file and its directory before a put or
    /// delete returns (default `true`). Turning it off trades the durability
    /// promised by [`BlobStore::put`] for speed: only for throwaway stores.
    pub fsync: bool,
}

impl FsBlobStoreConfig {
    /// Default [`read_chunk_size`](Self::read_chunk_size): 512 KiB.
    pub const DEFAULT_READ_CHUNK_SIZE: usize = 512 * 1024;
    /// Default [`write_buffer_size`](Self::write_buffer_size): 1 MiB.
    pub const DEFAULT_WRITE_BUFFER_SIZE: usize = 1024 * 1024;
    /// Smallest chunk or buffer size accepted: 4 KiB.
    pub const MIN_BUFFER_SIZE: usize = 4 * 1024;
    /// Largest chunk or buffer size accepted: 16 MiB.
    pub const MAX_BUFFER_SIZE: usize = 16 * 1024 * 1024;

    /// The default configuration for a store at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            ..Self::default()
        }
    }

    /// Checks the configuration, saying which field is wrong and why.
    pub fn validate(&self) -> Result<(), FsBlobStoreConfigError> {
        if self.root.as_os_str().is_empty() {
            return Err(FsBlobStoreConfigError::EmptyRoot);
        }
        if self.max_blob_size == Some(0) {
            return Err(FsBlobStoreConfigError::ZeroMaxBlobSize);
        }
        for (field, value) in [
            ("read_chunk_size", self.read_chunk_size),
            ("write_buffer_size", self.write_buffer_size),
        ] {
            if !(Self::MIN_BUFFER_SIZE..=Self::MAX_BUFFER_SIZE).contains(&value) {
                return Err(FsBlobStoreConfigError::BufferSize {
                    field,
                    value,
                    min: Self::MIN_BUFFER_SIZE,
                    max: Self::MAX_BUFFER_SIZE,
                });
            }
        }
        Ok(())
    }
}

impl Default for FsBlobStoreConfig {
    /// Defaults for every field; `root` is empty and must be set.
    fn default() -> Self {
        Self {
            root: PathBuf::new(),
            max_blob_size: None,
            read_chunk_size: Self::DEFAULT_READ_CHUNK_SIZE,
            write_buffer_size: Self::DEFAULT_WRITE_BUFFER_SIZE,
            fsync: true,
        }
    }
}

/// Why an [`FsBlobStoreConfig`] is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FsBlobStoreConfigError {
    /// `root` is empty.
    #[error(
        "invalid blob store config: `root` is empty; set it to the directory to keep blobs in"
    )]
    EmptyRoot,
    /// `max_blob_size` is `Some(0)`.
    #[error("invalid blob store config: `max_blob_size` is 0, which refuses every non-empty blob; use None for no limit")]
    ZeroMaxBlobSize,
    /// A chunk or buffer size is out of range.
    #[error("invalid blob store config: `{field}` is {value} bytes; it must be between {min} and {max} bytes")]
    BufferSize {
        /// The field.
        field: &'static str,
        /// Its value.
        value: usize,
        /// The smallest value accepted.
        min: usize,
        /// The largest value accepted.
        max: usize,
    },
}

/// A [`BlobStore`] in a content-addressed directory, like IPFS's flatfs.
///
/// # Layout
/// ```text
/// <root>/blobs/<shard>/<cid>   one file per blob, holding exactly its bytes
/// <root>/tmp/<pid>-<n>.put     in-progress puts
/// ```
/// `<cid>` is the blob's content id in its base32 string form (`bafkrei...`)
/// and `<shard>` is the first two hex digits of the blob's sha2-256 digest
/// (256 shards, evenly filled). For example `b"hello world"` is stored at
/// `blobs/b9/bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e`.
///
/// # Writes
/// A put streams into a fresh file in `tmp/` (constant memory): it hashes
/// the incoming chunks as they arrive while a blocking thread writes the
/// previous ones, then fsyncs the file, renames it into place and fsyncs the
/// shard directory. A put that fails, is refused or is dropped
/// midway deletes its temp file (one dropped at the very moment its temp file
/// is being created may leave it empty in `tmp/`). Nothing under `tmp/` is
/// ever visible as a blob, and [`FsBlobStore::open`] deletes whatever a crash
/// left there.
///
/// Putting a blob that is already stored writes it again and renames it over
/// the old copy (atomically). That costs a write, but repairs a copy damaged on
/// disk without hashing it first: putting the original bytes again is how a
/// blob whose reads fail with [`BlobError::Integrity`] is fixed.
///
/// # Reads
/// A get opens the file and returns a stream of
/// [`read_chunk_size`](FsBlobStoreConfig::read_chunk_size) chunks, read and
/// hashed on a blocking thread a couple of chunks ahead of the consumer
/// (dropping the stream stops it); a copy that does not hash to its id ends the stream with
/// [`BlobError::Integrity`].
///
/// # Use
/// Puts and gets use Tokio's blocking pool, so they must run on a Tokio
/// runtime (either flavour). A root must be opened by one store at a time: opening it clears
/// `tmp/`, which would break another store's puts in progress.
pub struct FsBlobStore {
    config: FsBlobStoreConfig,
    blobs_dir: PathBuf,
    tmp_dir: PathBuf,
}

impl fmt::Debug for FsBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsBlobStore")
            .field("config", &self.config)
            .finish()
    }
}

impl FsBlobStore {
    /// Opens (creating if needed) the store at `config.root`, and deletes the
    /// temp files a crash may have left in `tmp/`.
    ///
    /// Blocking: call it at startup, or from `spawn_blocking`. An invalid
    /// config gives [`BlobError::Backend`] of kind `InvalidInput` holding the
    /// [`FsBlobStoreConfigError`].
    pub fn open(config: FsBlobStoreConfig) -> Result<Self, BlobError> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let blobs_dir = config.root.join(BLOBS_DIR);
        let tmp_dir = config.root.join(TMP_DIR);
        for dir in [&blobs_dir, &tmp_dir] {
            std::fs::create_dir_all(dir).map_err(|e| with_path(e, "cannot create", dir))?;
        }
        let stale = clear_dir(&tmp_dir).map_err(|e| with_path(e, "cannot clean", &tmp_dir))?;
        if config.fsync {
            sync_dir(&config.root)?;
            if stale > 0 {
                sync_dir(&tmp_dir)?;
            }
        }
        tracing::info!(
            target: TARGET,
            root = %config.root.display(),
            stale_temp_files_removed = stale,
            "opened filesystem blob store"
        );
        Ok(Self {
            config,
            blobs_dir,
            tmp_dir,
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.config.root
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &FsBlobStoreConfig {
        &self.config
    }

    /// The directory holding the blobs' shard directories (`<root>/blobs`).
    pub fn blobs_dir(&self) -> &Path {
        &self.blobs_dir
    }

    /// The directory holding in-progress puts (`<root>/tmp`).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp_dir
    }

    /// Where the blob `cid` is (or would be) stored:
    /// `<root>/blobs/<first two hex digits of its digest>/<cid>`.
    pub fn blob_path(&self, cid: &ContentId) -> PathBuf {
        let shard = hex::encode(&cid.sha256()[..1]);
        self.blobs_dir.join(shard).join(cid.to_string())
    }

    /// Creates a fresh temp file and the guard that deletes it.
    async fn create_temp(&self) -> Result<(TempFile, std::fs::File), BlobError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let tmp_dir = self.tmp_dir.clone();
        let (path, file) = blocking(move || loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = tmp_dir.join(format!("{}-{n}.{TMP_EXT}", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => return Ok((path, file)),
                // Left by an earlier process with the same pid: pick another name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(with_path(e, "cannot create", &path)),
            }
        })
        .await?;
        Ok((TempFile(Some(path)), file))
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, mut data: ByteStream) -> Result<ContentId, BlobError> {
        // Declared first, so that on an early return the writer's end of the
        // queue closes (and the writer thread with it) before the guard
        // deletes the file.
        let (mut temp, file) = self.create_temp().await?;
        let (queue, batches) = tokio::sync::mpsc::channel::<Vec<Bytes>>(WRITE_QUEUE);
        // The file is written on a blocking thread while this task receives
        // and hashes the next batch.
        let writer = tokio::task::spawn_blocking(move || write_batches(file, batches));
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let received = async {
            let mut batch = Vec::new();
            let mut batch_len = 0;
            while let Some(chunk) = data.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        tracing::debug!(target: TARGET, error = %e, "the stream being stored failed");
                        return Err(BlobError::Source(e));
                    }
                };
                size = size.saturating_add(chunk.len() as u64);
                if let Some(limit) = self.config.max_blob_size {
                    if size > limit {
                        tracing::debug!(target: TARGET, limit, "refused a blob over the limit");
                        return Err(BlobError::TooLarge { limit });
                    }
                }
                hasher.update(&chunk);
                batch_len += chunk.len();
                batch.push(chunk);
                if batch_len >= self.config.write_buffer_size {
                    batch_len = 0;
                    if queue.send(std::mem::take(&mut batch)).await.is_err() {
                        // The writer failed: its error is reported below.
                        return Ok(());
                    }
                }
            }
            if !batch.is_empty() {
                let _ = queue.send(batch).await;
            }
            Ok(())
        }
        .await;
        drop(queue);
        let written = match writer.await {
            Ok(written) => written,
            Err(e) => Err(io::Error::other(e)),
        };
        received?;
        let file = written.map_err(|e| with_path(e, "cannot write", temp.path()))?;

        let cid = content_id(hasher);
        let dest = self.blob_path(&cid);
        let from = temp.path().to_path_buf();
        let blobs_dir = self.blobs_dir.clone();
        let fsync = self.config.fsync;
        blocking(move || {
            if fsync {
                file.sync_all()
                    .map_err(|e| with_path(e, "cannot fsync", &from))?;
            }
            drop(file);
            let shard = dest.parent().unwrap_or(&blobs_dir);
            match std::fs::create_dir(shard) {
                Ok(()) if fsync => sync_dir(&blobs_dir)?,
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(with_path(e, "cannot create", shard)),
            }
            std::fs::rename(&from, &dest).map_err(|e| with_path(e, "cannot rename into", &dest))?;
            if fsync {
                sync_dir(shard)?;
            }
            Ok(())
        })
        .await?;
        temp.disarm();
        tracing::debug!(target: TARGET, %cid, size, "stored blob");
        Ok(cid)
    }

    async fn get(&self, cid: &ContentId) -> Result<ByteStream, BlobError> {
        let path = self.blob_path(cid);
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BlobError::NotFound(*cid)),
            Err(e) => return Err(with_path(e, "cannot open", &path).into()),
        };
        let file = file.into_std().await;
        let (sender, chunks) = tokio::sync::mpsc::channel(READ_AHEAD);
        let (chunk_size, cid) = (self.config.read_chunk_size, *cid);
        // Read and hashed on a blocking thread, a few chunks ahead of the
        // consumer; dropping the stream stops the thread.
        tokio::task::spawn_blocking(move || read_verified(file, cid, chunk_size, sender));
        let mut chunks: tokio::sync::mpsc::Receiver<io::Result<Bytes>> = chunks;
        Ok(Box::pin(futures::stream::poll_fn(move |cx| {
            chunks.poll_recv(cx)
        })))
    }

    async fn size(&self, cid: &ContentId) -> Result<Option<u64>, BlobError> {
        let path = self.blob_path(cid);
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(with_path(e, "cannot stat", &path).into()),
        }
    }

    async fn contains(&self, cid: &ContentId) -> Result<bool, BlobError> {
        let path = self.blob_path(cid);
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(meta.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(with_path(e, "cannot stat", &path).into()),
        }
    }

    async fn delete(&self, cid: &ContentId) -> Result<bool, BlobError> {
        let path = self.blob_path(cid);
        let fsync = self.config.fsync;
        let deleted = blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => {
                if fsync {
                    if let Some(shard) = path.parent() {
                        sync_dir(shard)?;
                    }
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(with_path(e, "cannot delete", &path)),
        })
        .await?;
        if deleted {
            tracing::debug!(target: TARGET, %cid, "deleted blob");
        }
        Ok(deleted)
    }
}

/// How many batches of [`write_buffer_size`](FsBlobStoreConfig::write_buffer_size)
/// bytes a put queues for its writer thread.
const WRITE_QUEUE: usize = 2;
/// How many chunks a get reads ahead of its consumer.
const READ_AHEAD: usize = 2;

/// Writes every batch from `batches` to `file`, until the queue closes.
fn write_batches(
    mut file: std::fs::File,
    mut batches: tokio::sync::mpsc::Receiver<Vec<Bytes>>,
) -> io::Result<std::fs::File> {
    while let Some(batch) = batches.blocking_recv() {
        let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|b| IoSlice::new(b)).collect();
        let mut slices = &mut slices[..];
        IoSlice::advance_slices(&mut slices, 0);
        while !slices.is_empty() {
            match file.write_vectored(slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(file)
}

/// Reads `file` in chunks of `chunk_size` bytes into `sender`, hashing them,
/// and ends with [`BlobError::Integrity`] if they do not hash to `cid`.
/// Stops early if the receiver is dropped.
fn read_verified(
    mut file: std::fs::File,
    cid: ContentId,
    chunk_size: usize,
    sender: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
) {
    let mut hasher = Sha256::new();
    let pool = BufferPool::new(chunk_size);
    loop {
        let mut buf = pool.take();
        match read_full(&mut file, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                buf.truncate(n);
                hasher.update(&buf);
                if sender.blocking_send(Ok(pool.share(buf))).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = sender.blocking_send(Err(e));
                return;
            }
        }
    }
    if let Some(err) = check_integrity(hasher, cid) {
        let _ = sender.blocking_send(Err(err));
    }
}

/// Reads until `buf` is full or the reader ends; returns how many bytes it
/// read.
fn read_full(reader: &mut impl io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Buffers of one size, handed out as [`Bytes`] and taken back once those are
/// dropped: a long read cycles through a few buffers instead of allocating
/// (and page-faulting in) a fresh one per chunk.
struct BufferPool {
    size: usize,
    free: std::sync::mpsc::Receiver<Vec<u8>>,
    home: std::sync::mpsc::Sender<Vec<u8>>,
}

impl BufferPool {
    fn new(size: usize) -> Self {
        let (home, free) = std::sync::mpsc::channel();
        Self { size, free, home }
    }

    /// A buffer of `size` initialized bytes: a returned one, or a new one.
    fn take(&self) -> Vec<u8> {
        match self.free.try_recv() {
            Ok(mut buf) => {
                buf.resize(self.size, 0);
                buf
            }
            Err(_) => vec![0; self.size],
        }
    }

    /// `buf` as [`Bytes`] that give the buffer back to the pool when dropped.
    fn share(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            home: self.home.clone(),
        })
    }
}

/// A pooled buffer lent out as [`Bytes`]; see [`BufferPool`].
struct Pooled {
    buf: Vec<u8>,
    home: std::sync::mpsc::Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // Once the pool is gone the buffer is simply freed.
        let _ = self.home.send(std::mem::take(&mut self.buf));
    }
}

/// A temp file, deleted on drop unless disarmed.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // One unlink: cheap enough to do inline, even on a runtime thread.
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(
                    target: TARGET,
                    path = %path.display(),
                    error = %e,
                    "cannot delete a temp file; the next open will"
                ),
            }
        }
    }
}

/// Runs blocking filesystem work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, BlobError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(BlobError::Backend),
        Err(e) => Err(BlobError::Backend(io::Error::other(e))),
    }
}

/// Deletes everything in `dir`; returns how many entries it deleted.
fn clear_dir(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
        removed += 1;
    }
    Ok(removed)
}

/// Makes a directory's entries durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| with_path(e, "cannot fsync", dir))
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened (and need no fsync) elsewhere.
        let _ = dir;
        Ok(())
    }
}

/// An I/O error that names the path and what was being done to it.
fn with_path(err: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{what} {}: {err}", path.display()))
}
