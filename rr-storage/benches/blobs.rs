//! Put and get throughput of `FsBlobStore` and `MemoryBlobStore` at 1 MiB and
//! 16 MiB. Puts stream the blob in 256 KiB chunks; the fs store fsyncs (its
//! default), so its put numbers include two fsyncs per blob.
//!
//! `cargo bench -p rr-storage --bench blobs`

use std::hint::black_box;
use std::io;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::StreamExt;
use rr_core::{BlobStore, ByteStream};
use rr_storage::{FsBlobStore, FsBlobStoreConfig, MemoryBlobStore};

const SIZES: [(usize, &str); 2] = [(1 << 20, "1MiB"), (16 << 20, "16MiB")];
const SOURCE_CHUNK: usize = 256 * 1024;

fn data(len: usize) -> Vec<Bytes> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let all = Bytes::from(bytes);
    (0..len)
        .step_by(SOURCE_CHUNK)
        .map(|at| all.slice(at..len.min(at + SOURCE_CHUNK)))
        .collect()
}

fn stream(chunks: &[Bytes]) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = chunks.iter().cloned().map(Ok).collect();
    Box::pin(futures::stream::iter(chunks))
}

async fn drain(store: &dyn BlobStore, cid: &rr_core::ContentId) -> usize {
    let mut s = store.get(cid).await.unwrap();
    let mut n = 0;
    while let Some(chunk) = s.next().await {
        n += black_box(chunk.unwrap()).len();
    }
    n
}

fn stores(dir: &std::path::Path) -> Vec<(&'static str, Box<dyn BlobStore>)> {
    vec![
        ("memory", Box::new(MemoryBlobStore::new())),
        (
            "fs",
            Box::new(FsBlobStore::open(FsBlobStoreConfig::new(dir.join("fs"))).unwrap()),
        ),
    ]
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stores = stores(dir.path());

    let mut put = c.benchmark_group("blob_put");
    put.sample_size(10);
    for (size, label) in SIZES {
        let chunks = data(size);
        put.throughput(Throughput::Bytes(size as u64));
        for (name, store) in &stores {
            put.bench_with_input(BenchmarkId::new(*name, label), &chunks, |b, chunks| {
                b.iter(|| rt.block_on(store.put(stream(chunks))).unwrap());
            });
        }
    }
    put.finish();

    let mut get = c.benchmark_group("blob_get");
    get.sample_size(10);
    for (size, label) in SIZES {
        let chunks = data(size);
        get.throughput(Throughput::Bytes(size as u64));
        for (name, store) in &stores {
            let cid = rt.block_on(store.put(stream(&chunks))).unwrap();
            get.bench_with_input(BenchmarkId::new(*name, label), &cid, |b, cid| {
                b.iter(|| assert_eq!(rt.block_on(drain(store.as_ref(), cid)), size));
            });
        }
    }
    get.finish();
}

criterion_group!(blobs, benches);
criterion_main!(blobs);
