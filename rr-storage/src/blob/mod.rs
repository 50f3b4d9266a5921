//! Content-addressed blob stores: [`MemoryBlobStore`] and [`FsBlobStore`].
//!
//! Both implement [`rr_core::BlobStore`]: a blob's id is the IPFS CIDv1 (raw
//! codec, sha2-256) of its bytes, computed while the blob streams in, and every
//! read is checked against that id as it streams out. A read of a damaged copy
//! ends with [`BlobError::Integrity`] (wrapped in an `io::Error`, see
//! [`BlobError::from_io`]) instead of a clean end of stream.
//!
//! ```
//! use bytes::Bytes;
//! use rr_core::BlobStore;
//! use rr_storage::MemoryBlobStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryBlobStore::new();
//! let cid = store.put_bytes(Bytes::from_static(b"hello world")).await?;
//! assert_eq!(
//!     cid.to_string(),
//!     "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
//! );
//! assert_eq!(store.get_bytes(&cid, 1024).await?, b"hello world");
//! # Ok::<(), rr_core::BlobError>(())
//! # }).unwrap();
//! ```
//!
//! With the `testing` feature (or in this crate's own tests), the module
//! `suite` holds the conformance suite every `BlobStore` backend should pass.
//!
//! Log lines use the `tracing` target `rr_storage::blob` and never contain
//! blob contents.

mod fs;
mod memory;
#[cfg(any(test, feature = "testing"))]
pub mod suite;

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures::Stream;
use rr_core::{BlobError, ByteStream, ContentId};
use sha2::{Digest as _, Sha256};

pub use fs::{FsBlobStore, FsBlobStoreConfig, FsBlobStoreConfigError};
pub use memory::MemoryBlobStore;

/// The `tracing` target of every log line of the blob stores.
const TARGET: &str = "rr_storage::blob";

/// The content id of bytes whose running sha2-256 state is `hasher`.
fn content_id(hasher: Sha256) -> ContentId {
    ContentId::from_sha256(hasher.finalize().into())
}

/// `None` if the bytes whose running sha2-256 state is `hasher` have the
/// content id `cid`, else the [`BlobError::Integrity`] (as an `io::Error`) a
/// read of them must end with.
fn check_integrity(hasher: Sha256, cid: ContentId) -> Option<io::Error> {
    let actual = content_id(hasher);
    if actual == cid {
        return None;
    }
    tracing::warn!(
        target: TARGET,
        %cid,
        %actual,
        "blob failed its integrity check on read"
    );
    Some(BlobError::Integrity { cid, actual }.into_io())
}

/// Wraps `inner` so that it hashes what it yields and, at its end, checks the
/// hash against `cid`: a mismatch ends the stream with
/// [`BlobError::Integrity`] (as an `io::Error`, see [`BlobError::from_io`])
/// instead of a clean end. For a reader that gets a blob's bytes from
/// somewhere it does not trust, or from several places.
pub fn verified(inner: ByteStream, cid: ContentId) -> ByteStream {
    Box::pin(Verified {
        inner,
        cid,
        hasher: Some(Sha256::new()),
    })
}

/// See [`verified`].
struct Verified {
    inner: ByteStream,
    cid: ContentId,
    /// `None` once the stream has ended (cleanly or not).
    hasher: Option<Sha256>,
}

impl Stream for Verified {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.hasher.is_none() {
            return Poll::Ready(None);
        }
        match ready!(this.inner.as_mut().poll_next(cx)) {
            Some(Ok(chunk)) => {
                if let Some(hasher) = this.hasher.as_mut() {
                    hasher.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Some(Err(err)) => {
                this.hasher = None;
                Poll::Ready(Some(Err(err)))
            }
            None => {
                let Some(hasher) = this.hasher.take() else {
                    return Poll::Ready(None);
                };
                Poll::Ready(check_integrity(hasher, this.cid).map(Err))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.hasher.is_none() {
            return (0, Some(0));
        }
        // One more item is possible at the end: the integrity error.
        let (low, high) = self.inner.size_hint();
        (low, high.and_then(|h| h.checked_add(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn chunks(parts: &[&'static [u8]]) -> ByteStream {
        let items: Vec<io::Result<Bytes>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(futures::stream::iter(items))
    }

    fn cid_of(bytes: &[u8]) -> ContentId {
        ContentId::from_sha256(Sha256::digest(bytes).into())
    }

    #[test]
    fn verified_stream_ends_cleanly_on_a_match() {
        let out: Vec<_> = futures::executor::block_on(
            verified(chunks(&[b"hello ", b"world"]), cid_of(b"hello world")).collect(),
        );
        let out: Vec<Bytes> = out.into_iter().map(|c| c.unwrap()).collect();
        assert_eq!(out.concat(), b"hello world");
    }

    #[test]
    fn verified_stream_ends_with_an_integrity_error_on_a_mismatch() {
        let want = cid_of(b"hello world");
        let mut out: Vec<_> =
            futures::executor::block_on(verified(chunks(&[b"hello ", b"w0rld"]), want).collect());
        let last = out.pop().expect("an item").expect_err("an integrity error");
        assert!(out.iter().all(|c| c.is_ok()));
        match BlobError::from_io(&last) {
            Some(BlobError::Integrity { cid, actual }) => {
                assert_eq!(*cid, want);
                assert_eq!(*actual, cid_of(b"hello w0rld"));
            }
            other => panic!("expected an integrity error, got {other:?}"),
        }
    }

    #[test]
    fn verified_stream_passes_source_errors_and_stops() {
        let items: Vec<io::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"x")),
            Err(io::Error::other("disk on fire")),
            Ok(Bytes::from_static(b"y")),
        ];
        let out: Vec<_> = futures::executor::block_on(
            verified(Box::pin(futures::stream::iter(items)), cid_of(b"xy")).collect(),
        );
        assert_eq!(out.len(), 2);
        assert!(out[0].is_ok());
        let err = out[1].as_ref().unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
    }
}
