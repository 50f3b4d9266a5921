//! Async adapters: envelopes over [`ByteStream`]s, with `futures` only.

use std::io;

use bytes::{Buf, Bytes};
use futures::StreamExt;
use rand_core::CryptoRngCore;
use rr_core::{ByteStream, DataKey};

use super::{EnvelopeDecryptor, EnvelopeEncryptor, EnvelopeError, HEADER_LEN, TAG_LEN};

/// Re-chunks an input byte stream: copies its items, whatever their sizes,
/// into chunk buffers, and looks ahead to tell whether the input has ended.
struct Rechunker {
    input: ByteStream,
    /// What is left of the last input item.
    pending: Bytes,
    /// The input has ended (it is never polled again).
    ended: bool,
}

impl Rechunker {
    fn new(input: ByteStream) -> Self {
        Self {
            input,
            pending: Bytes::new(),
            ended: false,
        }
    }

    /// Makes `pending` non-empty unless the input has ended.
    async fn refill(&mut self) -> io::Result<()> {
        while self.pending.is_empty() && !self.ended {
            match self.input.next().await {
                Some(Ok(item)) => self.pending = item,
                Some(Err(e)) => return Err(e),
                None => self.ended = true,
            }
        }
        Ok(())
    }

    /// Appends input to `buf` until it holds `target` bytes or the input ends.
    async fn fill(&mut self, buf: &mut Vec<u8>, target: usize) -> io::Result<()> {
        while buf.len() < target {
            self.refill().await?;
            if self.pending.is_empty() {
                break;
            }
            let n = (target - buf.len()).min(self.pending.len());
            buf.extend_from_slice(&self.pending[..n]);
            self.pending.advance(n);
        }
        Ok(())
    }

    /// Whether the input has ended (waits for the next item to tell).
    async fn at_end(&mut self) -> io::Result<bool> {
        self.refill().await?;
        Ok(self.pending.is_empty())
    }
}

/// Runs one step of a stream state machine as an `unfold` item: an item and
/// whether more follow, or an error that ends the stream.
fn unfold_step<S>(
    state: Option<S>,
    result: io::Result<Option<(Bytes, bool)>>,
) -> Option<(io::Result<Bytes>, Option<S>)> {
    match result {
        Ok(Some((item, more))) => Some((Ok(item), if more { state } else { None })),
        Ok(None) => None,
        Err(e) => Some((Err(e), None)),
    }
}

struct EncryptState {
    input: Rechunker,
    enc: Option<EnvelopeEncryptor>,
    header_sent: bool,
}

impl EncryptState {
    /// The next output item and whether more follow.
    async fn step(&mut self) -> io::Result<Option<(Bytes, bool)>> {
        let Some(enc) = self.enc.as_mut() else {
            return Ok(None);
        };
        if !self.header_sent {
            self.header_sent = true;
            return Ok(Some((Bytes::copy_from_slice(enc.header()), true)));
        }
        let chunk_size = enc.chunk_size();
        let mut buf = Vec::with_capacity(chunk_size + TAG_LEN);
        self.input.fill(&mut buf, chunk_size).await?;
        if buf.len() == chunk_size && !self.input.at_end().await? {
            enc.encrypt_next_in_place(&mut buf)?;
            Ok(Some((buf.into(), true)))
        } else {
            let enc = self.enc.take().expect("checked above");
            enc.encrypt_last_in_place(&mut buf)?;
            Ok(Some((buf.into(), false)))
        }
    }
}

/// Encrypts a plaintext stream into an envelope stream under `key`, with
/// chunks of `chunk_size` bytes
/// ([`DEFAULT_CHUNK_SIZE`](super::DEFAULT_CHUNK_SIZE) is a good choice). The
/// nonce prefix is drawn from `rng` now; the returned stream does not keep
/// `rng`.
///
/// The input may come in items of any sizes; the output is the header, then
/// one item per chunk. At most about two chunks are held in memory (the one
/// being filled and the input item being read). An error from the input ends
/// the output stream with that error: the envelope is then incomplete and
/// will not open. Encryption runs inline in `poll_next`, about a
/// millisecond per 256 KiB chunk at most.
pub fn encrypt_stream(
    key: &DataKey,
    rng: &mut dyn CryptoRngCore,
    plaintext: ByteStream,
    chunk_size: usize,
) -> Result<ByteStream, EnvelopeError> {
    let (enc, _header) = EnvelopeEncryptor::new(key, rng, chunk_size)?;
    let state = EncryptState {
        input: Rechunker::new(plaintext),
        enc: Some(enc),
        header_sent: false,
    };
    Ok(Box::pin(futures::stream::unfold(
        Some(state),
        |state| async move {
            let mut state = state?;
            let result = state.step().await;
            unfold_step(Some(state), result)
        },
    )))
}

struct DecryptState {
    input: Rechunker,
    key: DataKey,
    dec: Option<EnvelopeDecryptor>,
    started: bool,
}

impl DecryptState {
    /// The next output item and whether more follow.
    async fn step(&mut self) -> io::Result<Option<(Bytes, bool)>> {
        if !self.started {
            self.started = true;
            let mut header = Vec::with_capacity(HEADER_LEN);
            self.input.fill(&mut header, HEADER_LEN).await?;
            self.dec = Some(EnvelopeDecryptor::new(&self.key, &header)?);
        }
        let Some(dec) = self.dec.as_mut() else {
            return Ok(None);
        };
        let sealed_chunk = dec.sealed_chunk_len();
        let mut buf = Vec::with_capacity(sealed_chunk);
        self.input.fill(&mut buf, sealed_chunk).await?;
        if buf.is_empty() && dec.chunks() == 0 {
            return Err(EnvelopeError::Truncated.into());
        }
        if buf.len() == sealed_chunk && !self.input.at_end().await? {
            dec.decrypt_next_in_place(&mut buf)?;
            Ok(Some((buf.into(), true)))
        } else {
            let dec = self.dec.take().expect("checked above");
            dec.decrypt_last_in_place(&mut buf)?;
            if buf.is_empty() {
                // An empty final chunk: nothing to hand out, the stream is done.
                Ok(None)
            } else {
                Ok(Some((buf.into(), false)))
            }
        }
    }
}

/// Decrypts an envelope stream under `key` into a plaintext stream.
///
/// The input may come in items of any sizes; the output has one item per
/// chunk, each handed out only once it has authenticated. At most about two
/// chunks are held in memory. The plaintext is complete only if the stream
/// ends cleanly: an envelope error ends it with an
/// [`io::ErrorKind::InvalidData`] error from which [`EnvelopeError::from_io`]
/// recovers the [`EnvelopeError`] (a truncated envelope ends with
/// [`EnvelopeError::Truncated`], never a clean end), and the consumer must
/// discard what it has read. Errors from the input are passed on as they are.
pub fn decrypt_stream(key: &DataKey, ciphertext: ByteStream) -> ByteStream {
    let state = DecryptState {
        input: Rechunker::new(ciphertext),
        key: key.clone(),
        dec: None,
        started: false,
    };
    Box::pin(futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        let result = state.step().await;
        unfold_step(Some(state), result)
    }))
}
