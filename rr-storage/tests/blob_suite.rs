//! The `BlobStore` conformance suite against both stores.

use std::sync::atomic::{AtomicUsize, Ordering};

use rr_storage::{FsBlobStore, FsBlobStoreConfig, MemoryBlobStore};

use rr_storage::blob::suite;

#[tokio::test]
async fn memory_store_passes_the_suite() {
    suite::test_all(|| async { MemoryBlobStore::new() }).await;
}

#[tokio::test]
async fn memory_store_with_a_limit_passes_the_suite() {
    suite::test_all(|| async { MemoryBlobStore::with_limit(2 * 1024 * 1024) }).await;
}

#[tokio::test]
async fn fs_store_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    suite::test_all(|| {
        let root = dir
            .path()
            .join(format!("store-{}", n.fetch_add(1, Ordering::Relaxed)));
        async move { FsBlobStore::open(FsBlobStoreConfig::new(root)).unwrap() }
    })
    .await;
    assert!(n.load(Ordering::Relaxed) >= 9, "one fresh store per case");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_store_passes_the_suite_on_a_multi_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    suite::test_all(|| {
        let root = dir
            .path()
            .join(format!("store-{}", n.fetch_add(1, Ordering::Relaxed)));
        async move {
            let config = {
                let mut config = FsBlobStoreConfig::default();
                config.root = root;
                config.read_chunk_size = 4096;
                config.write_buffer_size = 4096;
                config
            };
            FsBlobStore::open(config).unwrap()
        }
    })
    .await;
}

#[tokio::test]
async fn the_suite_runs_through_dyn_blob_store() {
    let store: Box<dyn rr_core::BlobStore> = Box::new(MemoryBlobStore::new());
    suite::round_trip(&*store).await;
    suite::concurrent_puts(&*store).await;
}
