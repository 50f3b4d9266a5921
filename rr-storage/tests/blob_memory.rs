//! `MemoryBlobStore` beyond the conformance suite: limits, accounting and
//! arbitrary chunkings.

use std::io;

use bytes::Bytes;
use futures::StreamExt;
use proptest::prelude::*;
use rr_core::{BlobError, BlobStore, ByteStream, ContentId};
use rr_storage::MemoryBlobStore;
use sha2::{Digest as _, Sha256};

fn split(data: &[u8], cuts: &[usize]) -> ByteStream {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut at = 0;
    for cut in cuts.into_iter().chain([data.len()]) {
        chunks.push(Ok::<_, io::Error>(Bytes::copy_from_slice(&data[at..cut])));
        at = cut;
    }
    Box::pin(futures::stream::iter(chunks))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #[test]
    fn any_chunking_gives_the_sha256_id_and_reads_back(
        data in proptest::collection::vec(any::<u8>(), 0..5000),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let (cid, back) = runtime().block_on(async {
            let store = MemoryBlobStore::new();
            let cid = store.put(split(&data, &cuts)).await.unwrap();
            (cid, store.get_bytes(&cid, u64::MAX).await.unwrap())
        });
        prop_assert_eq!(cid, ContentId::from_sha256(Sha256::digest(&data).into()));
        prop_assert_eq!(back, data);
    }
}

#[tokio::test]
async fn the_limit_refuses_larger_blobs_and_stores_nothing() {
    let store = MemoryBlobStore::with_limit(1000);
    assert_eq!(store.max_blob_size(), Some(1000));
    let err = store
        .put(split(&[1u8; 1001], &[10, 500]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BlobError::TooLarge { limit: 1000 }),
        "{err:?}"
    );
    assert!(store.is_empty());

    let cid = store.put(split(&[1u8; 1000], &[10, 500])).await.unwrap();
    assert_eq!(store.len(), 1);
    assert_eq!(store.total_bytes(), 1000);
    assert_eq!(store.get_bytes(&cid, 1000).await.unwrap(), vec![1u8; 1000]);
}

#[tokio::test]
async fn blobs_are_stored_once_and_accounted() {
    let store = MemoryBlobStore::default();
    assert!(store.is_empty());
    let a = store.put_bytes(Bytes::from_static(b"aaaa")).await.unwrap();
    let again = store.put(split(b"aaaa", &[1, 2])).await.unwrap();
    let b = store.put_bytes(Bytes::from_static(b"bb")).await.unwrap();
    assert_eq!(a, again);
    assert_ne!(a, b);
    assert_eq!(store.len(), 2);
    assert_eq!(store.total_bytes(), 6);
    assert!(store.delete(&a).await.unwrap());
    assert_eq!(store.len(), 1);
    assert_eq!(store.total_bytes(), 2);
}

#[tokio::test]
async fn get_streams_a_large_blob_in_bounded_chunks() {
    let store = MemoryBlobStore::new();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let cid = store.put_bytes(Bytes::from(data.clone())).await.unwrap();
    let mut stream = store.get(&cid).await.unwrap();
    let mut back = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.len() <= 256 * 1024, "{}", chunk.len());
        back.extend_from_slice(&chunk);
        chunks += 1;
    }
    assert_eq!(chunks, 12);
    assert_eq!(back, data);
}

#[test]
fn debug_shows_no_contents() {
    let store = MemoryBlobStore::new();
    runtime()
        .block_on(store.put_bytes(Bytes::from_static(b"secret ciphertext")))
        .unwrap();
    let shown = format!("{store:?}");
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains("blobs: 1"), "{shown}");
}
