//! [`MemoryBlobStore`]: blobs in a map in memory.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use rr_core::{BlobError, BlobStore, ByteStream, ContentId};
use sha2::{Digest as _, Sha256};

use super::{content_id, verified, TARGET};

/// Size of the chunks [`MemoryBlobStore::get`](BlobStore::get) streams.
const READ_CHUNK: usize = 256 * 1024;

/// A [`BlobStore`] that keeps blobs in memory, for tests and throwaway nodes.
///
/// Nothing survives the process. Reads are checked against the content id like
/// any store's, and stream the blob in 256 KiB slices of the stored buffer
/// (no copies). `Debug` shows the number of blobs, never their contents.
pub struct MemoryBlobStore {
    blobs: RwLock<BTreeMap<ContentId, Bytes>>,
    max_blob_size: Option<u64>,
}

impl MemoryBlobStore {
    /// An empty store that takes blobs of any size.
    pub fn new() -> Self {
        Self {
            blobs: RwLock::new(BTreeMap::new()),
            max_blob_size: None,
        }
    }

    /// An empty store that refuses blobs over `max_blob_size` bytes with
    /// [`BlobError::TooLarge`].
    pub fn with_limit(max_blob_size: u64) -> Self {
        Self {
            max_blob_size: Some(max_blob_size),
            ..Self::new()
        }
    }

    /// The largest blob this store takes, if limited.
    pub fn max_blob_size(&self) -> Option<u64> {
        self.max_blob_size
    }

    /// Number of blobs stored.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no blob is stored.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Total size of the stored blobs, in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.read().values().map(|b| b.len() as u64).sum()
    }

    // The map is consistent at every instant (one insert or remove at a time),
    // so a panic elsewhere while holding the lock leaves nothing to repair.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<ContentId, Bytes>> {
        self.blobs.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<ContentId, Bytes>> {
        self.blobs.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryBlobStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBlobStore")
            .field("blobs", &self.len())
            .field("max_blob_size", &self.max_blob_size)
            .finish()
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn put(&self, mut data: ByteStream) -> Result<ContentId, BlobError> {
        let mut hasher = Sha256::new();
        let mut parts: Vec<Bytes> = Vec::new();
        let mut size: u64 = 0;
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(BlobError::Source)?;
            size = size.saturating_add(chunk.len() as u64);
            if let Some(limit) = self.max_blob_size {
                if size > limit {
                    tracing::debug!(target: TARGET, limit, "refused a blob over the limit");
                    return Err(BlobError::TooLarge { limit });
                }
            }
            hasher.update(&chunk);
            if !chunk.is_empty() {
                parts.push(chunk);
            }
        }
        // One chunk (the `put_bytes` case) is kept as is; several are joined.
        let blob = match parts.len() {
            0 => Bytes::new(),
            1 => parts.swap_remove(0),
            _ => {
                let mut joined = BytesMut::with_capacity(size as usize);
                for part in &parts {
                    joined.extend_from_slice(part);
                }
                joined.freeze()
            }
        };
        let cid = content_id(hasher);
        self.write().entry(cid).or_insert(blob);
        tracing::debug!(target: TARGET, %cid, size, "stored blob in memory");
        Ok(cid)
    }

    async fn get(&self, cid: &ContentId) -> Result<ByteStream, BlobError> {
        let blob = self
            .read()
            .get(cid)
            .cloned()
            .ok_or(BlobError::NotFound(*cid))?;
        let len = blob.len();
        let chunks = (0..len)
            .step_by(READ_CHUNK)
            .map(move |start| Ok(blob.slice(start..len.min(start + READ_CHUNK))));
        Ok(verified(Box::pin(futures::stream::iter(chunks)), *cid))
    }

    async fn contains(&self, cid: &ContentId) -> Result<bool, BlobError> {
        Ok(self.read().contains_key(cid))
    }

    async fn size(&self, cid: &ContentId) -> Result<Option<u64>, BlobError> {
        Ok(self.read().get(cid).map(|b| b.len() as u64))
    }

    async fn delete(&self, cid: &ContentId) -> Result<bool, BlobError> {
        let removed = self.write().remove(cid).is_some();
        if removed {
            tracing::debug!(target: TARGET, %cid, "deleted blob from memory");
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_passes_the_suite() {
        crate::blob::suite::test_all(|| async { MemoryBlobStore::new() }).await;
    }

    #[tokio::test]
    async fn debug_never_shows_contents() {
        let store = MemoryBlobStore::with_limit(1 << 20);
        store
            .put_bytes(Bytes::from_static(b"top secret ciphertext"))
            .await
            .unwrap();
        let shown = format!("{store:?}");
        assert_eq!(
            shown,
            "MemoryBlobStore { blobs: 1, max_blob_size: Some(1048576) }"
        );
    }
}
