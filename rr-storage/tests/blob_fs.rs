//! `FsBlobStore` beyond the conformance suite: integrity on damaged copies,
//! limits, temp files, reopening, layout, large blobs and configuration.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use rand::{RngCore, SeedableRng};
use rr_core::{BlobError, BlobStore, ByteStream, ContentId};
use rr_storage::blob::FsBlobStoreConfigError;
use rr_storage::{FsBlobStore, FsBlobStoreConfig};
use sha2::{Digest as _, Sha256};

fn open(root: &Path) -> FsBlobStore {
    FsBlobStore::open(FsBlobStoreConfig::new(root)).unwrap()
}

fn cid_of(data: &[u8]) -> ContentId {
    ContentId::from_sha256(Sha256::digest(data).into())
}

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut out);
    out
}

fn stream_of(chunks: Vec<Vec<u8>>) -> ByteStream {
    Box::pin(futures::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, io::Error>(Bytes::from(c))),
    ))
}

/// Every file (not directory) under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn entries_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Reads a stream to its end: the bytes, the chunk sizes and the error it
/// ended with, if any (checked to be the last item).
async fn drain(mut stream: ByteStream) -> (Vec<u8>, Vec<usize>, Option<io::Error>) {
    let mut data = Vec::new();
    let mut sizes = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => {
                sizes.push(chunk.len());
                data.extend_from_slice(&chunk);
            }
            Err(e) => {
                assert!(stream.next().await.is_none(), "items after the error");
                return (data, sizes, Some(e));
            }
        }
    }
    (data, sizes, None)
}

fn assert_integrity(err: &io::Error, want_cid: &ContentId, want_actual: &ContentId) {
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    match BlobError::from_io(err) {
        Some(BlobError::Integrity { cid, actual }) => {
            assert_eq!(cid, want_cid);
            assert_eq!(actual, want_actual);
        }
        other => panic!("expected an integrity error, got {other:?} from {err}"),
    }
}

#[tokio::test]
async fn hello_world_has_the_ipfs_id_and_the_documented_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cid = store
        .put_bytes(Bytes::from_static(b"hello world"))
        .await
        .unwrap();
    assert_eq!(
        cid.to_string(),
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    );
    let path = dir
        .path()
        .join("blobs/b9/bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e");
    assert_eq!(store.blob_path(&cid), path);
    assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
    assert_eq!(files_under(&dir.path().join("blobs")), vec![path]);
    assert_eq!(entries_in(store.tmp_dir()), 0);
}

#[tokio::test]
async fn a_flipped_byte_on_disk_is_an_integrity_error_and_a_put_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = random_bytes(1, 300_000);
    let cid = store.put(stream_of(vec![data.clone()])).await.unwrap();

    let path = store.blob_path(&cid);
    let mut damaged = std::fs::read(&path).unwrap();
    damaged[150_000] ^= 0x01;
    std::fs::write(&path, &damaged).unwrap();

    let (read, _, err) = drain(store.get(&cid).await.unwrap()).await;
    assert_eq!(read, damaged, "the bytes stream before the verdict");
    let err = err.expect("the stream of a damaged copy must end with an error");
    assert_integrity(&err, &cid, &cid_of(&damaged));

    match store.get_bytes(&cid, u64::MAX).await {
        Err(BlobError::Integrity { cid: got, actual }) => {
            assert_eq!(got, cid);
            assert_eq!(actual, cid_of(&damaged));
        }
        other => panic!(
            "expected BlobError::Integrity, got {:?}",
            other.map(|v| v.len())
        ),
    }

    // Putting the original bytes again replaces the damaged copy.
    assert_eq!(
        store.put_bytes(Bytes::from(data.clone())).await.unwrap(),
        cid
    );
    assert_eq!(store.get_bytes(&cid, u64::MAX).await.unwrap(), data);
    assert_eq!(entries_in(store.tmp_dir()), 0);
}

#[tokio::test]
async fn truncated_extended_and_emptied_files_are_integrity_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = random_bytes(2, 200_000);
    let cid = store.put_bytes(Bytes::from(data.clone())).await.unwrap();
    let path = store.blob_path(&cid);

    let mut longer = data.clone();
    longer.push(0);
    for damaged in [data[..1000].to_vec(), longer, Vec::new()] {
        std::fs::write(&path, &damaged).unwrap();
        let (read, _, err) = drain(store.get(&cid).await.unwrap()).await;
        assert_eq!(read.len(), damaged.len());
        let err = err.expect("a damaged copy must not end cleanly");
        assert_integrity(&err, &cid, &cid_of(&damaged));
        assert!(matches!(
            store.get_bytes(&cid, u64::MAX).await,
            Err(BlobError::Integrity { .. })
        ));
    }
}

#[tokio::test]
async fn an_oversized_put_is_refused_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 1024 * 1024;
    let store = FsBlobStore::open({
        let mut config = FsBlobStoreConfig::new(dir.path());
        config.max_blob_size = Some(limit);
        config
    })
    .unwrap();

    // One byte over, in 64 KiB chunks plus one.
    let mut chunks: Vec<Vec<u8>> = (0..16).map(|i| random_bytes(i, 64 * 1024)).collect();
    chunks.push(vec![7]);
    match store.put(stream_of(chunks)).await {
        Err(BlobError::TooLarge { limit: l }) => assert_eq!(l, limit),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Far over, in one chunk.
    let err = store
        .put_bytes(Bytes::from(vec![0u8; 3 * 1024 * 1024]))
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("1048576"), "{err}");

    assert!(files_under(store.blobs_dir()).is_empty());
    assert_eq!(entries_in(store.tmp_dir()), 0);

    // Exactly at the limit is fine.
    let data = random_bytes(99, limit as usize);
    let cid = store.put_bytes(Bytes::from(data.clone())).await.unwrap();
    assert_eq!(store.get_bytes(&cid, limit).await.unwrap(), data);
}

#[tokio::test]
async fn a_failed_or_abandoned_put_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());

    let items = vec![
        Ok(Bytes::from(random_bytes(3, 500_000))),
        Err(io::Error::other("network dropped")),
    ];
    let err = store
        .put(Box::pin(futures::stream::iter(items)))
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Source(_)), "{err:?}");
    assert_eq!(entries_in(store.tmp_dir()), 0);

    // A put whose source stalls after 512 KiB, dropped while it waits.
    let (reached, stalled) = futures::channel::oneshot::channel::<()>();
    let chunks = (0..8).map(|i| Ok::<_, io::Error>(Bytes::from(random_bytes(i, 64 * 1024))));
    let stalling: ByteStream = Box::pin(futures::stream::iter(chunks).chain(
        futures::stream::once(async move {
            let _ = reached.send(());
            futures::future::pending::<io::Result<Bytes>>().await
        }),
    ));
    let put = store.put(stalling);
    match futures::future::select(put, stalled).await {
        futures::future::Either::Left((result, _)) => panic!("the put finished: {result:?}"),
        futures::future::Either::Right((_, put)) => {
            assert_eq!(
                entries_in(store.tmp_dir()),
                1,
                "the put was writing a temp file"
            );
            drop(put);
        }
    }
    assert_eq!(entries_in(store.tmp_dir()), 0);
    assert!(files_under(store.blobs_dir()).is_empty());
}

#[tokio::test]
async fn stale_temp_files_are_never_blobs_and_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let kept = store.put_bytes(Bytes::from_static(b"kept")).await.unwrap();

    // What a crash mid-put leaves: temp files, even one holding a whole blob
    // and named like it.
    let hello = cid_of(b"hello world");
    let tmp = store.tmp_dir().to_path_buf();
    std::fs::write(tmp.join("4242-0.put"), b"hello world").unwrap();
    std::fs::write(tmp.join(hello.to_string()), b"hello world").unwrap();
    std::fs::create_dir(tmp.join("odd")).unwrap();
    std::fs::write(tmp.join("odd/file"), b"x").unwrap();

    assert!(!store.contains(&hello).await.unwrap());
    assert!(matches!(store.get(&hello).await, Err(BlobError::NotFound(c)) if c == hello));
    drop(store);

    let store = open(dir.path());
    assert_eq!(
        entries_in(store.tmp_dir()),
        0,
        "open removes stale temp files"
    );
    assert!(!store.contains(&hello).await.unwrap());
    assert_eq!(store.get_bytes(&kept, 100).await.unwrap(), b"kept");
}

#[tokio::test]
async fn a_reopened_store_has_everything_put_before() {
    let dir = tempfile::tempdir().unwrap();
    let blobs: Vec<Vec<u8>> = (0..20)
        .map(|i| random_bytes(i, (i as usize) * 9_973))
        .collect();
    let mut cids = Vec::new();
    {
        let store = open(dir.path());
        for b in &blobs {
            cids.push(store.put_bytes(Bytes::from(b.clone())).await.unwrap());
        }
    }
    let store = open(dir.path());
    for (cid, b) in cids.iter().zip(&blobs) {
        assert_eq!(&store.get_bytes(cid, u64::MAX).await.unwrap(), b);
    }
    assert!(store.delete(&cids[5]).await.unwrap());
    assert!(!store.blob_path(&cids[5]).exists());
    drop(store);

    let store = open(dir.path());
    assert!(!store.contains(&cids[5]).await.unwrap());
    for (i, cid) in cids.iter().enumerate().filter(|(i, _)| *i != 5) {
        assert!(store.contains(cid).await.unwrap(), "blob {i} lost");
    }
    assert_eq!(files_under(store.blobs_dir()).len(), 19);
}

#[tokio::test]
async fn get_streams_in_configured_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open({
        let mut config = FsBlobStoreConfig::new(dir.path());
        config.read_chunk_size = 4096;
        config
    })
    .unwrap();
    let data = random_bytes(4, 100_000);
    let cid = store.put_bytes(Bytes::from(data.clone())).await.unwrap();
    let (read, sizes, err) = drain(store.get(&cid).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(read, data);
    assert!(sizes.len() >= 25, "{} chunks", sizes.len());
    assert!(sizes.iter().all(|&s| s <= 4096), "{sizes:?}");
}

#[tokio::test]
async fn a_store_without_fsync_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open({
        let mut config = FsBlobStoreConfig::new(dir.path());
        config.fsync = false;
        config
    })
    .unwrap();
    let cid = store.put_bytes(Bytes::from_static(b"quick")).await.unwrap();
    assert_eq!(store.get_bytes(&cid, 5).await.unwrap(), b"quick");
    assert!(store.delete(&cid).await.unwrap());
    assert!(!store.contains(&cid).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_blob_streams_in_and_out() {
    const CHUNK: usize = 1024 * 1024;
    const CHUNKS: u64 = 64;
    let base = Bytes::from(random_bytes(5, CHUNK));
    // Chunk i is the base with i in its first 8 bytes: 64 MiB of distinct
    // chunks, made as the store asks for them.
    let chunk = move |i: u64| {
        let mut c = base.to_vec();
        c[..8].copy_from_slice(&i.to_le_bytes());
        Bytes::from(c)
    };
    let mut want = Sha256::new();
    for i in 0..CHUNKS {
        want.update(chunk(i));
    }
    let want = ContentId::from_sha256(want.finalize().into());

    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let source = futures::stream::iter(0..CHUNKS).map(move |i| Ok::<_, io::Error>(chunk(i)));
    let cid = store.put(Box::pin(source)).await.unwrap();
    assert_eq!(cid, want);
    assert_eq!(
        std::fs::metadata(store.blob_path(&cid)).unwrap().len(),
        CHUNKS * CHUNK as u64
    );

    let mut stream = store.get(&cid).await.unwrap();
    let mut got = Sha256::new();
    let mut len = 0u64;
    let mut largest = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        largest = largest.max(chunk.len());
        len += chunk.len() as u64;
        got.update(&chunk);
    }
    assert_eq!(len, CHUNKS * CHUNK as u64);
    assert_eq!(ContentId::from_sha256(got.finalize().into()), want);
    assert!(
        largest <= FsBlobStoreConfig::DEFAULT_READ_CHUNK_SIZE,
        "{largest}"
    );
}

#[test]
fn config_errors_say_what_is_wrong() {
    let err = FsBlobStoreConfig::default().validate().unwrap_err();
    assert_eq!(err, FsBlobStoreConfigError::EmptyRoot);
    assert!(err.to_string().contains("`root` is empty"), "{err}");

    let ok = FsBlobStoreConfig::new("/var/lib/rr/blobs");
    assert_eq!(ok.validate(), Ok(()));

    let err = {
        let mut config = ok.clone();
        config.max_blob_size = Some(0);
        config
    }
    .validate()
    .unwrap_err();
    assert!(err.to_string().contains("`max_blob_size` is 0"), "{err}");
    assert!(err.to_string().contains("use None for no limit"), "{err}");

    let err = {
        let mut config = ok.clone();
        config.read_chunk_size = 0;
        config
    }
    .validate()
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid blob store config: `read_chunk_size` is 0 bytes; it must be between 4096 and 16777216 bytes"
    );

    let err = {
        let mut config = ok;
        config.write_buffer_size = 1 << 30;
        config
    }
    .validate()
    .unwrap_err();
    assert!(
        matches!(err, FsBlobStoreConfigError::BufferSize { field: "write_buffer_size", value, .. } if value == 1 << 30),
        "{err:?}"
    );
}

#[test]
fn open_refuses_a_bad_config_or_root_clearly() {
    match FsBlobStore::open(FsBlobStoreConfig::default()) {
        Err(BlobError::Backend(e)) => {
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains("`root` is empty"), "{e}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    match FsBlobStore::open(FsBlobStoreConfig::new(&file)) {
        Err(BlobError::Backend(e)) => {
            assert!(e.to_string().contains("not-a-dir"), "{e}");
        }
        other => panic!("expected an I/O error naming the path, got {other:?}"),
    }
}
