//! [`FsBlobStore`]: a content-addressed directory, the embedded default.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use rr_core::{BlobError, BlobStore, ByteStream, ContentId};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio_util::io::ReaderStream;

use super::{content_id, verified, TARGET};

/// Name of the directory, under the root, that holds the blobs.
const BLOBS_DIR: &str = "blobs";
/// Name of the directory, under the root, that holds in-progress writes.
const TMP_DIR: &str = "tmp";
/// Extension of temp files.
const TMP_EXT: &str = "put";

/// Configuration of an [`FsBlobStore`].
///
/// Build one with [`FsBlobStoreConfig::new`] or as a struct literal with
/// `..Default::default()`; [`FsBlobStore::open`] checks it with
/// [`FsBlobStoreConfig::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsBlobStoreConfig {
    /// The store's directory; created if missing. No default: the default
    /// config's empty root does not validate.
    pub root: PathBuf,
    /// The largest blob the store takes, in bytes; larger puts fail with
    /// [`BlobError::TooLarge`]. `None` (the default) for no limit.
    pub max_blob_size: Option<u64>,
    /// Size of the chunks a read streams, in bytes (default 128 KiB).
    pub read_chunk_size: usize,
    /// Size of the write buffer of a put, in bytes (default 256 KiB).
    pub write_buffer_size: usize,
    /// Whether to fsync each blob file and its directory before a put or
    /// delete returns (default `true`). Turning it off trades the durability
    /// promised by [`BlobStore::put`] for speed: only for throwaway stores.
    pub fsync: bool,
}

impl FsBlobStoreConfig {
    /// Default [`read_chunk_size`](Self::read_chunk_size): 128 KiB.
    pub const DEFAULT_READ_CHUNK_SIZE: usize = 128 * 1024;
    /// Default [`write_buffer_size`](Self::write_buffer_size): 256 KiB.
    pub const DEFAULT_WRITE_BUFFER_SIZE: usize = 256 * 1024;
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
/// A put streams into a fresh file in `tmp/` through a buffer (constant
/// memory), hashing as it goes, then fsyncs the file, renames it into place
/// and fsyncs the shard directory. A put that fails, is refused or is dropped
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
/// [`read_chunk_size`](FsBlobStoreConfig::read_chunk_size) chunks, hashed as
/// they are read; a copy that does not hash to its id ends the stream with
/// [`BlobError::Integrity`].
///
/// # Use
/// Puts and gets use `tokio::fs`, so they must run on a Tokio runtime (either
/// flavour). A root must be opened by one store at a time: opening it clears
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
    async fn create_temp(&self) -> Result<(TempFile, tokio::fs::File), BlobError> {
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
        Ok((TempFile(Some(path)), tokio::fs::File::from_std(file)))
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, mut data: ByteStream) -> Result<ContentId, BlobError> {
        // Declared before the writer so that the file is closed before the
        // guard deletes it on an early return or a drop.
        let (mut temp, file) = self.create_temp().await?;
        let mut writer = BufWriter::with_capacity(self.config.write_buffer_size, file);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
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
            writer.write_all(&chunk).await?;
        }
        writer.flush().await?;
        let file = writer.into_inner();
        if self.config.fsync {
            file.sync_all().await?;
        }
        drop(file);

        let cid = content_id(hasher);
        let dest = self.blob_path(&cid);
        let from = temp.path().to_path_buf();
        let blobs_dir = self.blobs_dir.clone();
        let fsync = self.config.fsync;
        blocking(move || {
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
        let stream = ReaderStream::with_capacity(file, self.config.read_chunk_size);
        Ok(verified(Box::pin(stream), *cid))
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
