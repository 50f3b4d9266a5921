//! Async adapters: envelopes over [`ByteStream`]s, with `futures` only.

use std::io::{self, Read};
use std::sync::mpsc;

use bytes::{Buf, Bytes};
use futures::channel::oneshot;
use futures::future::{self, BoxFuture};
use futures::{FutureExt, SinkExt, Stream, StreamExt, TryStreamExt};
use rand_core::CryptoRngCore;
use rr_core::{ByteStream, DataKey};

use super::io::fill;
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

/// How many chunks an envelope stream keeps in flight (read, being sealed or
/// opened, or done and waiting to be taken). Enough for the input, the AEAD
/// and the consumer to work at once; bounded, so memory stays at a few
/// chunks whatever the consumer's pace.
const IN_FLIGHT: usize = 3;

/// Seals or opens one chunk in place, told whether it is the final one.
type ChunkOp = Box<dyn FnMut(&mut Vec<u8>, bool) -> Result<(), EnvelopeError> + Send>;

/// The result of one chunk, handed back by the AEAD thread.
type Done = Result<Vec<u8>, EnvelopeError>;

/// An output item on its way: ready, or being worked on by the AEAD thread.
type Pending = BoxFuture<'static, io::Result<Bytes>>;

/// One chunk for the AEAD thread.
struct Job {
    buf: Vec<u8>,
    last: bool,
    reply: oneshot::Sender<Done>,
}

/// Runs an envelope's AEAD, chunk after chunk in order, on a thread of its
/// own: the stream's consumer (a socket, a file) and its input keep going on
/// the caller's task meanwhile, and the crypto stays off any async runtime.
enum Worker {
    /// Not started: the first non-final chunk starts the thread, so a
    /// one-chunk envelope is handled inline and needs none.
    Idle(ChunkOp),
    /// The thread, fed in order.
    Running(mpsc::Sender<Job>),
    /// The final chunk was submitted.
    Finished,
}

impl Worker {
    /// Hands `buf` to the AEAD; the future resolves to the sealed or opened
    /// chunk.
    fn submit(&mut self, mut buf: Vec<u8>, last: bool) -> Pending {
        let state = std::mem::replace(self, Worker::Finished);
        let jobs = match state {
            Worker::Idle(mut op) if last => {
                let result = op(&mut buf, true).map(|()| Bytes::from(buf));
                return future::ready(result.map_err(io::Error::from)).boxed();
            }
            Worker::Idle(op) => match spawn(op) {
                Ok(jobs) => jobs,
                Err(e) => return future::ready(Err(e)).boxed(),
            },
            Worker::Running(jobs) => jobs,
            Worker::Finished => {
                return future::ready(Err(io::Error::other(
                    "envelope stream: a chunk after the final one",
                )))
                .boxed()
            }
        };
        let (reply, done) = oneshot::channel();
        // A send fails only if the thread has stopped after an error, which
        // was already handed out: this item is never reached.
        let _ = jobs.send(Job { buf, last, reply });
        if !last {
            *self = Worker::Running(jobs);
        }
        done.map(|done| match done {
            Ok(Ok(buf)) => Ok(Bytes::from(buf)),
            Ok(Err(e)) => Err(e.into()),
            Err(oneshot::Canceled) => Err(io::Error::other(
                "envelope stream: the encryption thread stopped",
            )),
        })
        .boxed()
    }
}

/// Starts the AEAD thread running `op`; it stops after the final chunk, after
/// an error, or once the stream is dropped.
fn spawn(mut op: ChunkOp) -> io::Result<mpsc::Sender<Job>> {
    let (jobs, queue) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("rr-envelope".into())
        .spawn(move || {
            while let Ok(Job {
                mut buf,
                last,
                reply,
            }) = queue.recv()
            {
                let result = op(&mut buf, last).map(|()| buf);
                let stop = last || result.is_err();
                if reply.send(result).is_err() || stop {
                    break;
                }
            }
        })
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start the envelope thread: {e}")))?;
    Ok(jobs)
}

/// Turns a stream of pending chunks into the output: at most [`IN_FLIGHT`]
/// at once, in order, ending after the first error and skipping an empty
/// final chunk.
fn pipeline(pending: impl Stream<Item = Pending> + Send + 'static) -> ByteStream {
    Box::pin(
        pending
            .buffered(IN_FLIGHT)
            .scan(false, |failed, item| {
                if *failed {
                    return future::ready(None);
                }
                *failed = item.is_err();
                future::ready(Some(item))
            })
            .try_filter(|item| future::ready(!item.is_empty())),
    )
}

struct EncryptState {
    input: Rechunker,
    chunk_size: usize,
    worker: Worker,
}

/// Where an envelope stream's chunks come from: reads the next one and hands
/// it to the AEAD; `None` after the final one.
trait ChunkSource: Send + Sized + 'static {
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = io::Result<Option<Pending>>> + Send;
}

/// The pending chunks of `source`, ending after the final one or the first
/// error.
fn chunks_of<S: ChunkSource>(source: S) -> impl Stream<Item = Pending> + Send + 'static {
    futures::stream::unfold(Some(source), |state| async move {
        let mut state = state?;
        match state.next_chunk().await {
            Ok(Some(pending)) => Some((pending, Some(state))),
            Ok(None) => None,
            Err(e) => Some((future::ready(Err(e)).boxed(), None)),
        }
    })
}

impl ChunkSource for EncryptState {
    /// Reads the next chunk and submits it; `None` after the final one.
    async fn next_chunk(&mut self) -> io::Result<Option<Pending>> {
        if matches!(self.worker, Worker::Finished) {
            return Ok(None);
        }
        let mut buf = Vec::with_capacity(self.chunk_size + TAG_LEN);
        self.input.fill(&mut buf, self.chunk_size).await?;
        // A chunk is final if the input ended within it or right after it.
        let last = buf.len() < self.chunk_size || self.input.at_end().await?;
        Ok(Some(self.worker.submit(buf, last)))
    }
}

/// Encrypts a plaintext stream into an envelope stream under `key`, with
/// chunks of `chunk_size` bytes
/// ([`DEFAULT_CHUNK_SIZE`](super::DEFAULT_CHUNK_SIZE) is a good choice). The
/// nonce prefix is drawn from `rng` now; the returned stream does not keep
/// `rng`.
///
/// The input may come in items of any sizes; the output is the header, then
/// one item per chunk. An error from the input ends the output stream with
/// that error: the envelope is then incomplete and will not open.
///
/// The chunks are sealed on a thread the stream starts for itself (none for
/// a one-chunk envelope), while the input is read and the output consumed on
/// the caller's task: the stream needs no runtime and the crypto does not
/// hold up an async executor. A few chunks are in flight at most, so memory
/// stays constant (about four chunks).
pub fn encrypt_stream(
    key: &DataKey,
    rng: &mut dyn CryptoRngCore,
    plaintext: ByteStream,
    chunk_size: usize,
) -> Result<ByteStream, EnvelopeError> {
    let (enc, header) = EnvelopeEncryptor::new(key, rng, chunk_size)?;
    let mut enc = Some(enc);
    let op: ChunkOp = Box::new(move |buf, last| match (last, enc.as_mut()) {
        (false, Some(enc)) => enc.encrypt_next_in_place(buf),
        (true, Some(_)) => enc.take().expect("checked").encrypt_last_in_place(buf),
        (_, None) => Err(EnvelopeError::TrailingData),
    });
    let state = EncryptState {
        input: Rechunker::new(plaintext),
        chunk_size,
        worker: Worker::Idle(op),
    };
    let header: Pending = future::ready(Ok(Bytes::copy_from_slice(&header))).boxed();
    let chunks = chunks_of(state);
    Ok(pipeline(
        futures::stream::once(future::ready(header)).chain(chunks),
    ))
}

struct DecryptState {
    input: Rechunker,
    key: DataKey,
    /// The sealed chunk length, once the header has been read.
    sealed_chunk: Option<usize>,
    worker: Worker,
}

impl ChunkSource for DecryptState {
    /// Reads the next chunk (the header first) and submits it; `None` after
    /// the final one.
    async fn next_chunk(&mut self) -> io::Result<Option<Pending>> {
        let sealed_chunk = match self.sealed_chunk {
            Some(len) => len,
            None => {
                let mut header = Vec::with_capacity(HEADER_LEN);
                self.input.fill(&mut header, HEADER_LEN).await?;
                let dec = EnvelopeDecryptor::new(&self.key, &header)?;
                let len = dec.sealed_chunk_len();
                self.sealed_chunk = Some(len);
                let mut dec = Some(dec);
                self.worker = Worker::Idle(Box::new(move |buf, last| match (last, dec.as_mut()) {
                    (false, Some(dec)) => dec.decrypt_next_in_place(buf),
                    (true, Some(_)) => dec.take().expect("checked").decrypt_last_in_place(buf),
                    (_, None) => Err(EnvelopeError::TrailingData),
                }));
                len
            }
        };
        if matches!(self.worker, Worker::Finished) {
            return Ok(None);
        }
        let mut buf = Vec::with_capacity(sealed_chunk);
        self.input.fill(&mut buf, sealed_chunk).await?;
        // An input that ends right after the header gives an empty final
        // chunk, which the decryptor refuses as truncated.
        let last = buf.len() < sealed_chunk || self.input.at_end().await?;
        Ok(Some(self.worker.submit(buf, last)))
    }
}

/// Decrypts an envelope stream under `key` into a plaintext stream.
///
/// The input may come in items of any sizes; the output has one item per
/// chunk, each handed out only once it has authenticated. The plaintext is
/// complete only if the stream ends cleanly: an envelope error ends it with
/// an [`io::ErrorKind::InvalidData`] error from which
/// [`EnvelopeError::from_io`] recovers the [`EnvelopeError`] (a truncated
/// envelope ends with [`EnvelopeError::Truncated`], never a clean end), and
/// the consumer must discard what it has read. Errors from the input are
/// passed on as they are.
///
/// Like [`encrypt_stream`], the chunks are opened on a thread of the
/// stream's own, a few at most in flight (about four chunks in memory).
pub fn decrypt_stream(key: &DataKey, ciphertext: ByteStream) -> ByteStream {
    let state = DecryptState {
        input: Rechunker::new(ciphertext),
        key: key.clone(),
        sealed_chunk: None,
        // Replaced once the header is read.
        worker: Worker::Idle(Box::new(|_, _| Err(EnvelopeError::Truncated))),
    };
    let chunks = chunks_of(state);
    pipeline(chunks)
}

/// Encrypts everything `reader` yields into an envelope stream under `key`,
/// like [`encrypt_stream`] but reading on the stream's own thread: each chunk
/// is read straight into the buffer it is sealed in, so a file goes to the
/// stream with one copy and no async file I/O. The nonce prefix is drawn from
/// `rng` now.
///
/// The output is the header, then one item per chunk. The thread reads and
/// seals a few chunks ahead of the consumer at most (about four chunks in
/// memory), and stops when the stream is dropped. A read error ends the
/// stream with that error: the envelope is then incomplete and will not open.
pub fn encrypt_reader_stream<R: Read + Send + 'static>(
    key: &DataKey,
    rng: &mut dyn CryptoRngCore,
    reader: R,
    chunk_size: usize,
) -> Result<ByteStream, EnvelopeError> {
    let (enc, header) = EnvelopeEncryptor::new(key, rng, chunk_size)?;
    let (mut sender, chunks) = futures::channel::mpsc::channel(IN_FLIGHT - 1);
    let header = futures::stream::once(future::ready(Ok(Bytes::copy_from_slice(&header))));
    let spawned = std::thread::Builder::new()
        .name("rr-envelope".into())
        .spawn(move || {
            let mut send = |item: io::Result<Vec<u8>>| {
                futures::executor::block_on(sender.send(item.map(Bytes::from))).is_ok()
            };
            let mut chunks = SealedChunks::new(enc, reader);
            while let Some(item) = chunks.next() {
                if !send(item) {
                    break;
                }
            }
        });
    match spawned {
        Ok(_) => Ok(Box::pin(header.chain(chunks))),
        Err(e) => {
            let err = io::Error::new(e.kind(), format!("cannot start the envelope thread: {e}"));
            Ok(Box::pin(
                header.chain(futures::stream::once(future::ready(Err(err)))),
            ))
        }
    }
}

/// The sealed chunks of what a reader yields, one at a time; ends after the
/// final chunk or the first error.
struct SealedChunks<R> {
    reader: R,
    enc: Option<EnvelopeEncryptor>,
    /// The next chunk's plaintext, read ahead to tell whether the current
    /// one is final.
    next: Vec<u8>,
    started: bool,
}

impl<R: Read> SealedChunks<R> {
    fn new(enc: EnvelopeEncryptor, reader: R) -> Self {
        Self {
            reader,
            enc: Some(enc),
            next: Vec::new(),
            started: false,
        }
    }

    fn fresh(&self) -> Vec<u8> {
        let size = self.enc.as_ref().map_or(0, EnvelopeEncryptor::chunk_size);
        Vec::with_capacity(size + TAG_LEN)
    }

    fn next(&mut self) -> Option<io::Result<Vec<u8>>> {
        let chunk_size = self.enc.as_ref()?.chunk_size();
        let result = self.step(chunk_size);
        if result.is_err() {
            self.enc = None;
        }
        Some(result)
    }

    fn step(&mut self, chunk_size: usize) -> io::Result<Vec<u8>> {
        if !self.started {
            self.started = true;
            self.next = self.fresh();
            fill(&mut self.reader, &mut self.next, chunk_size)?;
        }
        let fresh = self.fresh();
        let mut cur = std::mem::replace(&mut self.next, fresh);
        // A chunk is final if the reader ended within it or right after it.
        if cur.len() == chunk_size {
            fill(&mut self.reader, &mut self.next, chunk_size)?;
        }
        if self.next.is_empty() {
            let enc = self.enc.take().ok_or(EnvelopeError::TrailingData)?;
            enc.encrypt_last_in_place(&mut cur)?;
        } else {
            let enc = self.enc.as_mut().ok_or(EnvelopeError::TrailingData)?;
            enc.encrypt_next_in_place(&mut cur)?;
        }
        Ok(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{open, MIN_CHUNK_SIZE};

    const CS: usize = MIN_CHUNK_SIZE;

    fn key() -> DataKey {
        DataKey::generate(&mut rand_core::OsRng)
    }

    fn collect(stream: ByteStream) -> io::Result<Vec<u8>> {
        futures::executor::block_on(stream.try_fold(Vec::new(), |mut out, item| {
            out.extend_from_slice(&item);
            future::ready(Ok(out))
        }))
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + 7) as u8).collect()
    }

    #[test]
    fn reader_stream_opens_at_every_length_around_the_chunk_size() {
        let k = key();
        for len in [0, 1, CS - 1, CS, CS + 1, 3 * CS, 3 * CS + 5] {
            let plain = data(len);
            let reader = io::Cursor::new(plain.clone());
            let sealed = encrypt_reader_stream(&k, &mut rand_core::OsRng, reader, CS)
                .map(collect)
                .unwrap_or_else(|e| panic!("{len}: {e}"))
                .unwrap();
            assert_eq!(
                sealed.len() as u64,
                super::super::sealed_len(len as u64, CS)
            );
            assert_eq!(open(&k, &sealed).unwrap(), plain, "{len}");
            // And the async decryptor agrees, whatever the item sizes.
            let items: Vec<io::Result<Bytes>> = sealed
                .chunks(7777)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let opened = collect(decrypt_stream(&k, Box::pin(futures::stream::iter(items))));
            assert_eq!(opened.unwrap(), plain, "{len}");
        }
    }

    #[test]
    fn a_read_error_ends_the_reader_stream_with_it() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(io::ErrorKind::ConnectionReset, "gone"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(1);
                self.0 -= n;
                Ok(n)
            }
        }
        let stream =
            encrypt_reader_stream(&key(), &mut rand_core::OsRng, Failing(3 * CS), CS).unwrap();
        let items: Vec<io::Result<Bytes>> = futures::executor::block_on(stream.collect());
        let (last, good) = items.split_last().unwrap();
        assert!(good.iter().all(Result::is_ok));
        assert_eq!(
            last.as_ref().unwrap_err().kind(),
            io::ErrorKind::ConnectionReset
        );
    }

    #[test]
    fn dropping_a_reader_stream_midway_stops_its_thread() {
        // An endless reader: the thread must stop once the stream is gone.
        let stream =
            encrypt_reader_stream(&key(), &mut rand_core::OsRng, io::repeat(0), CS).unwrap();
        let first: Vec<_> = futures::executor::block_on(stream.take(3).collect());
        assert!(first.iter().all(Result::is_ok));
    }
}
