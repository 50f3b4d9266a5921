//! A blob store of your own behind a node: every ciphertext kept in two
//! places (a fast local disk and an archive), read from the archive when the
//! local copy is gone.
//!
//! A node takes any [`rr_core::BlobStore`]: implement its four methods
//! (`put`, `get`, `contains`, `delete`) and open the node with
//! [`Node::open_dev_with_blobs`]. Content ids are checked by the node and by
//! the client, so a store never has to be trusted with integrity. Check your
//! store with the conformance suite, `rr_storage::blob::suite` (feature
//! `testing` of rr-storage), as `rr-storage/tests/blob_suite.rs` does.
//!
//! ```text
//! cargo run --release --example custom_blob_store
//! ```
//!
//! Exits 0 only if the record is read back after its local copy was lost.

use std::sync::Arc;

use anyhow::{ensure, Context};
use rr_core::{BlobError, BlobStore, ByteStream, ContentId, Purpose};
use rr_node::{async_trait, collect, Client, DevConfig, GrantOptions, Identity, Node};
use rr_storage::{FsBlobStore, FsBlobStoreConfig};

/// Writes every blob to `local` and `archive`; reads `local` first.
struct Mirrored {
    local: FsBlobStore,
    archive: FsBlobStore,
}

#[async_trait]
impl BlobStore for Mirrored {
    async fn put(&self, data: ByteStream) -> Result<ContentId, BlobError> {
        // A stream is read once: store it locally, then copy that copy.
        let cid = self.local.put(data).await?;
        if !self.archive.contains(&cid).await? {
            let copied = self.archive.put(self.local.get(&cid).await?).await?;
            if copied != cid {
                return Err(BlobError::Integrity {
                    cid,
                    actual: copied,
                });
            }
        }
        Ok(cid)
    }

    async fn get(&self, cid: &ContentId) -> Result<ByteStream, BlobError> {
        match self.local.get(cid).await {
            Err(BlobError::NotFound(_)) => self.archive.get(cid).await,
            other => other,
        }
    }

    async fn contains(&self, cid: &ContentId) -> Result<bool, BlobError> {
        Ok(self.local.contains(cid).await? || self.archive.contains(cid).await?)
    }

    async fn delete(&self, cid: &ContentId) -> Result<bool, BlobError> {
        let local = self.local.delete(cid).await?;
        let archived = self.archive.delete(cid).await?;
        Ok(local || archived)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let store = Mirrored {
        local: FsBlobStore::open(FsBlobStoreConfig::new(tmp.path().join("local")))?,
        archive: FsBlobStore::open(FsBlobStoreConfig::new(tmp.path().join("archive")))?,
    };
    let node = Node::open_dev_with_blobs(
        DevConfig::new(tmp.path().join("node")),
        rr_pre::Umbral,
        store,
        Arc::new(rr_consensus::SystemClock),
    )
    .await
    .context("opening the node")?;
    let alice = Client::in_process(&node, Identity::generate(&rr_pre::Umbral));
    let bob = Client::in_process(&node, Identity::generate(&rr_pre::Umbral));

    let record = b"2026-12-05 MRI report: no findings".to_vec();
    let put = alice
        .put(rr_core::byte_stream_of(record.clone()), "text/plain")
        .await?;
    println!("record {} stored as {}", put.record_id, put.cid);
    let treatment = Purpose::new("treatment")?;
    let grant = alice
        .grant(
            put.record_id,
            &bob.card(),
            GrantOptions {
                purpose: treatment.clone(),
                expires_at: None,
                threshold: None,
            },
        )
        .await?;

    // The local disk loses its copy; the archive still has one.
    ensure!(
        node.blobs().local.delete(&put.cid).await?,
        "the local copy was there"
    );
    let read = collect(bob.retrieve(grant, treatment).await?).await?;
    ensure!(read == record, "Bob read other bytes than Alice stored");
    println!("Bob read the record from the archive after the local copy was lost");
    node.shutdown().await?;
    Ok(())
}
