//! The conformance suite of [`BlobStore`]: every backend should pass it.
//!
//! In the spirit of openraft's `Suite::test_all`: hand [`test_all`] a function
//! that makes a fresh, empty store, and it runs every case against its own
//! store, panicking with a message that names the case on the first failure.
//!
//! ```
//! use rr_storage::{blob::suite, MemoryBlobStore};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! suite::test_all(|| async { MemoryBlobStore::new() }).await;
//! # });
//! ```
//!
//! The cases are public too, to run one alone. They take `&S` with
//! `S: BlobStore + ?Sized`, so `&dyn BlobStore` works. The suite drives the
//! store with `futures` alone; run it on the runtime the backend needs (Tokio
//! for [`FsBlobStore`](crate::FsBlobStore)).
//!
//! Available in this crate's tests and, to other crates, with the `testing`
//! feature.

// Only `rr_core`, `bytes`, `futures` and `sha2` paths here (no `crate::` in
// code): this file is also compiled straight into `tests/blob_suite.rs`.

use std::future::Future;
use std::io;

use bytes::Bytes;
use futures::future::{self, Either};
use futures::StreamExt;
use rr_core::{BlobError, BlobStore, ByteStream, ContentId};
use sha2::{Digest as _, Sha256};

/// Runs every case of the suite, each against a fresh store from `make`.
///
/// # Panics
/// On the first case that fails, with a message naming the case.
pub async fn test_all<S, F, Fut>(make: F)
where
    S: BlobStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    macro_rules! run {
        ($($case:ident),* $(,)?) => {$(
            {
                let store = make().await;
                $case(&store).await;
            }
        )*};
    }
    run!(
        round_trip,
        known_ids,
        same_bytes_twice,
        contains_and_delete,
        unknown_cid,
        source_error,
        get_bytes_limit,
        concurrent_puts,
        abandoned_put,
    );
}

/// Put then get at sizes 0, 1, 64 KiB - 1 and 1 MiB + 3, each put whole, in
/// random chunks (some empty) and, for small sizes, in tiny chunks.
pub async fn round_trip<S: BlobStore + ?Sized>(store: &S) {
    const CASE: &str = "round_trip";
    let mut rng = Rng::new(1);
    for size in [0usize, 1, 64 * 1024 - 1, 1024 * 1024 + 3] {
        let data = rng.bytes(size);
        let want = content_id_of(&data);
        let mut splits = vec![Split::Whole, Split::Random];
        if size <= 64 * 1024 {
            splits.push(Split::Tiny);
        }
        for split in splits {
            let what = format!("{size} bytes put {split:?}");
            let cid = store
                .put(chunked(&data, split, &mut rng))
                .await
                .unwrap_or_else(|e| fail(CASE, &format!("put of {what} failed: {e}")));
            check(
                CASE,
                cid == want,
                &format!("put of {what} returned {cid}, expected {want}"),
            );
            check(
                CASE,
                contains(CASE, store, &cid).await,
                &format!("contains is false after a put of {what}"),
            );
            let back = read_all(CASE, store, &cid).await;
            check(
                CASE,
                back == data,
                &format!("get of {what} returned {} different bytes", back.len()),
            );
            let back = store
                .get_bytes(&cid, size as u64)
                .await
                .unwrap_or_else(|e| {
                    fail(
                        CASE,
                        &format!("get_bytes of {what} at its size failed: {e}"),
                    )
                });
            check(
                CASE,
                back == data,
                &format!("get_bytes of {what} returned different bytes"),
            );
        }
    }
    // The empty blob as a stream of no chunks at all.
    let cid = store
        .put(Box::pin(futures::stream::empty()))
        .await
        .unwrap_or_else(|e| fail(CASE, &format!("put of an empty stream failed: {e}")));
    check(
        CASE,
        cid == content_id_of(b""),
        "put of an empty stream returned the wrong id",
    );
    check(
        CASE,
        read_all(CASE, store, &cid).await.is_empty(),
        "the empty blob reads back non-empty",
    );
}

/// Ids are the ones IPFS gives (`ipfs block put --cid-codec raw --mhtype sha2-256`).
pub async fn known_ids<S: BlobStore + ?Sized>(store: &S) {
    const CASE: &str = "known_ids";
    for (data, want) in [
        (
            &b"hello world"[..],
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
        ),
        (
            &b""[..],
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        ),
    ] {
        let cid = store
            .put_bytes(Bytes::copy_from_slice(data))
            .await
            .unwrap_or_else(|e| fail(CASE, &format!("put of {data:?} failed: {e}")));
        check(
            CASE,
            cid.to_string() == want,
            &format!("put of {data:?} returned {cid}, IPFS gives {want}"),
        );
    }
}

/// The same bytes put twice (chunked differently) give the same id and are
/// stored once: one delete removes them.
pub async fn same_bytes_twice<S: BlobStore + ?Sized>(store: &S) {
    const CASE: &str = "same_bytes_twice";
    let mut rng = Rng::new(2);
    let data = rng.bytes(300_000);
    let first = put(CASE, store, chunked(&data, Split::Whole, &mut rng)).await;
    let second = put(CASE, store, chunked(&data, Split::Random, &mut rng)).await;
    check(
        CASE,
        first == second,
        &format!("the same bytes got ids {first} and {second}"),
    );
    check(
        CASE,
        read_all(CASE, store, &first).await == data,
        "the blob reads back different bytes",
    );
    check(
        CASE,
        delete(CASE, store, &first).await,
        "delete of a stored blob returned false",
    );
    check(
        CASE,
        !contains(CASE, store, &first).await,
        "a blob put twice is still there after one delete: stored twice?",
    );
    check(
        CASE,
        !delete(CASE, store, &first).await,
        "a second delete returned true",
    );
}

/// `contains`, `size` and `delete`: delete of an absent blob is `false`; a
/// stored blob's size is its length; after a delete the blob is gone, its
/// size is `None` and `get` says `NotFound` with its id.
pub async fn contains_and_delete<S: BlobStore + ?Sized>(store: &S) {
    const CASE: &str = "contains_and_delete";
    let mut rng = Rng::new(3);
    let data = rng.bytes(1000);
    let cid = content_id_of(&data);
    check(
        CASE,
        !contains(CASE, store, &cid).await,
        "contains is true before any put",
    );
    check(
        CASE,
        !delete(CASE, store, &cid).await,
        "delete of an absent blob returned true",
    );
    let other = put(CASE, store, chunked(&rng.bytes(10), Split::Whole, &mut rng)).await;
    check(
        CASE,
        put(CASE, store, chunked(&data, Split::Random, &mut rng)).await == cid,
        "wrong id",
    );
    check(
        CASE,
        contains(CASE, store, &cid).await,
        "contains is false after put",
    );
    check(
        CASE,
        size(CASE, store, &cid).await == Some(data.len() as u64),
        "size is not the stored blob's length",
    );
    check(
        CASE,
        delete(CASE, store, &cid).await,
        "delete of a stored blob returned false",
    );
    check(
        CASE,
        !contains(CASE, store, &cid).await,
        "contains is true after delete",
    );
    check(
        CASE,
        size(CASE, store, &cid).await.is_none(),
        "size of a deleted blob is not None",
    );
    expect_not_found(CASE, store, &cid).await;
    check(
        CASE,
        !delete(CASE, store, &cid).await,
        "delete after delete returned true",
    );
    check(
        CASE,
        contains(CASE, store, &other).await,
        "delete removed another blob",
    );
}

/// Reading an id never stored is `NotFound` with that id.
pub async fn unknown_cid<S: BlobStore + ?Sized>(store: &S) {
    const CASE: &str = "unknown_cid";
    let cid = content_id_of(b"never stored");
    check(
        CASE,
        !contains(CASE, store, &cid).await,
        "contains is true for an unknown id",
    );
    expect_not_found(CASE, store, &cid).await;
}

/// A source stream that fails gives `BlobError::Source` with its error, and
/// stores nothing: neither what came before the error nor anything else.
pub async fn source_error<S: BlobStore + ?Sized>(store: &S) {
    const CASE: &str = "source_error";
    let mut rng = Rng::new(4);
    let head = rng.bytes(200_000);
    for at_start in [true, false] {
        let mut items: Vec<io::Result<Bytes>> = Vec::new();
        if !at_start {
            items.push(Ok(Bytes::copy_from_slice(&head[..150_000])));
            items.push(Ok(Bytes::copy_from_slice(&head[150_000..])));
        }
        items.push(Err(io::Error::other("the source broke")));
        items.push(Ok(Bytes::from_static(b"after the error")));
        let err = store
            .put(Box::pin(futures::stream::iter(items)))
            .await
            .expect_err("[blob suite: source_error] a put whose stream failed succeeded");
        match err {
            BlobError::Source(e) => check(
                CASE,
                e.to_string() == "the source broke",
                &format!("BlobError::Source holds {e}, not the source's error"),
            ),
            other => fail(CASE, &format!("expected BlobError::Source, got {other:?}")),
        }
    }
    for data in [&head[..], &head[..150_000], &b""[..]] {
        check(
            CASE,
            !contains(CASE, store, &content_id_of(data)).await,
            "a put whose stream failed left a blob",
        );
    }
}

/// `get_bytes` refuses a blob over its limit with `TooLarge`, and takes one
/// exactly at it.
pub async fn get_bytes_limit<S: BlobStore + ?Sized>(store: &S) {
    const CASE: &str = "get_bytes_limit";
    let mut rng = Rng::new(5);
    let data = rng.bytes(1000);
    let cid = put(CASE, store, chunked(&data, Split::Random, &mut rng)).await;
    match store.get_bytes(&cid, 999).await {
        Err(BlobError::TooLarge { limit: 999 }) => {}
        other => fail(
            CASE,
            &format!(
                "get_bytes(limit 999) of 1000 bytes gave {:?}, not TooLarge",
                other.map(|v| v.len())
            ),
        ),
    }
    match store.get_bytes(&cid, 1000).await {
        Ok(back) => check(CASE, back == data, "get_bytes returned different bytes"),
        Err(e) => fail(
            CASE,
            &format!("get_bytes(limit 1000) of 1000 bytes failed: {e}"),
        ),
    }
}

/// 16 different blobs put at once all get their own id and read back.
pub async fn concurrent_puts<S: BlobStore + ?Sized>(store: &S) {
    const CASE: &str = "concurrent_puts";
    let mut rng = Rng::new(6);
    let blobs: Vec<Vec<u8>> = (0..16).map(|i| rng.bytes(1 + i * 20_011)).collect();
    let streams: Vec<ByteStream> = blobs
        .iter()
        .map(|b| chunked(b, Split::Random, &mut rng))
        .collect();
    let results = future::join_all(streams.into_iter().map(|s| store.put(s))).await;
    for (i, (result, data)) in results.into_iter().zip(&blobs).enumerate() {
        let cid = result.unwrap_or_else(|e| fail(CASE, &format!("concurrent put {i} failed: {e}")));
        check(
            CASE,
            cid == content_id_of(data),
            &format!("concurrent put {i} got the wrong id"),
        );
        check(
            CASE,
            read_all(CASE, store, &cid).await == *data,
            &format!("blob {i} of the concurrent puts reads back different bytes"),
        );
    }
}

/// A put dropped midway (its stream stalls after 192 KiB) leaves no blob, and
/// the store goes on working.
pub async fn abandoned_put<S: BlobStore + ?Sized>(store: &S) {
    const CASE: &str = "abandoned_put";
    let mut rng = Rng::new(7);
    let data = rng.bytes(3 * 64 * 1024);
    let (reached, stalled) = futures::channel::oneshot::channel::<()>();
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stalling: ByteStream = Box::pin(futures::stream::iter(chunks).chain(
        futures::stream::once(async move {
            let _ = reached.send(());
            future::pending::<io::Result<Bytes>>().await
        }),
    ));
    match future::select(store.put(stalling), stalled).await {
        Either::Left((result, _)) => fail(
            CASE,
            &format!("put of a stream that never ends finished: {result:?}"),
        ),
        Either::Right((_, pending_put)) => drop(pending_put),
    }
    check(
        CASE,
        !contains(CASE, store, &content_id_of(&data)).await,
        "an abandoned put left a blob",
    );
    let cid = put(CASE, store, chunked(&data, Split::Random, &mut rng)).await;
    check(
        CASE,
        read_all(CASE, store, &cid).await == data,
        "a put after an abandoned one reads back different bytes",
    );
}

// ---------------------------------------------------------------- helpers

/// The content id of `data`.
pub fn content_id_of(data: &[u8]) -> ContentId {
    ContentId::from_sha256(Sha256::digest(data).into())
}

/// How [`chunked`] splits bytes into a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    /// One chunk.
    Whole,
    /// Chunks of 0 to 100 000 bytes.
    Random,
    /// Chunks of 0 to 7 bytes.
    Tiny,
}

fn chunked(data: &[u8], split: Split, rng: &mut Rng) -> ByteStream {
    let all = Bytes::copy_from_slice(data);
    let max = match split {
        Split::Whole => {
            return Box::pin(futures::stream::iter([Ok::<_, io::Error>(all)]));
        }
        Split::Random => 100_000,
        Split::Tiny => 7,
    };
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < all.len() {
        // One chunk in eight is empty.
        let len = if rng.below(8) == 0 {
            0
        } else {
            rng.below(max) as usize + 1
        };
        let end = all.len().min(at + len);
        chunks.push(Ok::<_, io::Error>(all.slice(at..end)));
        at = end;
    }
    Box::pin(futures::stream::iter(chunks))
}

/// A small deterministic generator (splitmix64): the suite needs no `rand`.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

fn fail(case: &str, msg: &str) -> ! {
    panic!("[blob suite: {case}] {msg}")
}

fn check(case: &str, ok: bool, msg: &str) {
    if !ok {
        fail(case, msg);
    }
}

async fn put<S: BlobStore + ?Sized>(case: &str, store: &S, data: ByteStream) -> ContentId {
    store
        .put(data)
        .await
        .unwrap_or_else(|e| fail(case, &format!("put failed: {e}")))
}

async fn contains<S: BlobStore + ?Sized>(case: &str, store: &S, cid: &ContentId) -> bool {
    store
        .contains(cid)
        .await
        .unwrap_or_else(|e| fail(case, &format!("contains({cid}) failed: {e}")))
}

async fn size<S: BlobStore + ?Sized>(case: &str, store: &S, cid: &ContentId) -> Option<u64> {
    store
        .size(cid)
        .await
        .unwrap_or_else(|e| fail(case, &format!("size({cid}) failed: {e}")))
}

async fn delete<S: BlobStore + ?Sized>(case: &str, store: &S, cid: &ContentId) -> bool {
    store
        .delete(cid)
        .await
        .unwrap_or_else(|e| fail(case, &format!("delete({cid}) failed: {e}")))
}

/// Reads a blob through `get`, failing on any error, including a stream that
/// does not end cleanly.
async fn read_all<S: BlobStore + ?Sized>(case: &str, store: &S, cid: &ContentId) -> Vec<u8> {
    let mut stream = store
        .get(cid)
        .await
        .unwrap_or_else(|e| fail(case, &format!("get({cid}) failed: {e}")));
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(e) => fail(
                case,
                &format!("reading {cid} failed after {} bytes: {e}", out.len()),
            ),
        }
    }
    out
}

async fn expect_not_found<S: BlobStore + ?Sized>(case: &str, store: &S, cid: &ContentId) {
    match store.get(cid).await {
        Err(BlobError::NotFound(got)) => check(
            case,
            got == *cid,
            &format!("NotFound names {got}, not {cid}"),
        ),
        Err(e) => fail(
            case,
            &format!("get of an absent blob gave {e}, not NotFound"),
        ),
        Ok(_) => fail(case, &format!("get of an absent blob {cid} gave a stream")),
    }
    match store.get_bytes(cid, u64::MAX).await {
        Err(BlobError::NotFound(_)) => {}
        other => fail(
            case,
            &format!(
                "get_bytes of an absent blob gave {:?}, not NotFound",
                other.map(|v| v.len())
            ),
        ),
    }
}
