//! The ciphertext envelope: a record's bytes under its [`DataKey`], chunked so
//! that it can be encrypted and decrypted as a stream in constant memory.
//!
//! # Construction
//!
//! STREAM (Hoang, Reyhanitabar, Rogaway and Vizár, "Online
//! Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance") over
//! XChaCha20-Poly1305, as implemented by
//! [`chacha20poly1305::aead::stream::EncryptorBE32`]: each chunk is sealed under
//! the nonce `prefix || chunk index (u32, big endian) || last-chunk flag`. A
//! chunk therefore authenticates only at its own position, and only the final
//! chunk authenticates as final: reordering, dropping, duplicating or
//! truncating chunks is detected, not just flipping bytes.
//!
//! # Format
//!
//! ```text
//! header (28 bytes; zero-padded to 64, the associated data of every chunk):
//!   magic "RRE1" | version u8 = 1 | chunk size u32 LE | nonce prefix (19 bytes)
//! chunks:
//!   chunk 0 .. chunk k-1   exactly chunk size + 16 bytes each
//!   final chunk            16 ..= chunk size + 16 bytes (16: empty plaintext)
//! ```
//!
//! Every envelope has at least one (final) chunk; an empty plaintext seals to
//! the header and a 16-byte tag. Since the header is the associated data of
//! every chunk, changing the version or the chunk size is detected too.
//!
//! # Interfaces
//!
//! - [`seal`] / [`open`]: whole buffers in memory.
//! - [`encrypt_reader`] / [`decrypt_reader`]: [`std::io`], constant memory.
//! - [`encrypt_stream`] / [`decrypt_stream`]: [`ByteStream`](rr_core::ByteStream)s,
//!   constant memory, no runtime dependency; the AEAD runs on a thread of the
//!   stream's own. [`encrypt_reader_stream`] reads a [`std::io::Read`] on that
//!   thread too.
//! - [`EnvelopeEncryptor`] / [`EnvelopeDecryptor`]: the chunk-at-a-time core
//!   the others are built on, encrypting in place.
//!
//! ```
//! use rr_core::DataKey;
//! use rr_pre::envelope::{self, EnvelopeError};
//!
//! let mut rng = rand_core::OsRng;
//! let key = DataKey::generate(&mut rng);
//! let sealed = envelope::seal(&key, &mut rng, b"blood type: AB-");
//! assert_eq!(envelope::open(&key, &sealed)?, b"blood type: AB-");
//!
//! // A flipped bit anywhere is caught.
//! let mut tampered = sealed.clone();
//! *tampered.last_mut().unwrap() ^= 1;
//! assert_eq!(envelope::open(&key, &tampered), Err(EnvelopeError::Corrupt { chunk: 0 }));
//! # Ok::<(), EnvelopeError>(())
//! ```

use chacha20poly1305::aead::stream::{
    DecryptorBE32, EncryptorBE32, NewStream, StreamBE32, StreamPrimitive,
};
use chacha20poly1305::aead::{self, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305};
use rand_core::CryptoRngCore;
use rr_core::DataKey;

mod io;
mod stream;

pub use io::{decrypt_reader, encrypt_reader};
pub use stream::{decrypt_stream, encrypt_reader_stream, encrypt_stream};

/// The first bytes of every envelope.
pub const MAGIC: [u8; 4] = *b"RRE1";
/// The format version this crate writes and reads.
pub const VERSION: u8 = 1;
/// Length of the STREAM nonce prefix: XChaCha20's 24-byte nonce less the
/// 4-byte counter and 1-byte last-chunk flag.
pub const NONCE_PREFIX_LEN: usize = 19;
/// Length of the header: magic, version, chunk size, nonce prefix.
pub const HEADER_LEN: usize = 4 + 1 + 4 + NONCE_PREFIX_LEN;
/// Length of the Poly1305 tag that ends every chunk.
pub const TAG_LEN: usize = 16;
/// The default plaintext chunk size, 1 MiB (as Tink's streaming AEAD
/// segments). Larger chunks mean fewer hand-offs between the reader, the
/// AEAD and the writer; a 1 GiB record through `rr` went from 41–45% to over
/// half of this crate's raw envelope throughput with it (and buffer reuse).
/// Every envelope names its own chunk size, so ones sealed with another size
/// still open.
pub const DEFAULT_CHUNK_SIZE: usize = 1024 * 1024;
/// The smallest plaintext chunk size accepted, 16 KiB.
pub const MIN_CHUNK_SIZE: usize = 16 * 1024;
/// The largest plaintext chunk size accepted, 4 MiB.
pub const MAX_CHUNK_SIZE: usize = 4 * 1024 * 1024;

/// Length of the associated data of every chunk: the header, zero-padded to
/// four Poly1305 blocks. Poly1305's AVX2 backend hashes four blocks at a time
/// and falls back to a slower path for the whole chunk when the associated
/// data leaves it part-way through a batch; 28 bytes would cost ~15%.
const AAD_LEN: usize = 64;

/// The associated data of every chunk of the envelope with this header.
fn associated_data(header: &[u8; HEADER_LEN]) -> [u8; AAD_LEN] {
    let mut aad = [0u8; AAD_LEN];
    aad[..HEADER_LEN].copy_from_slice(header);
    aad
}

/// Chunks per envelope: STREAM's 32-bit counter, less the value it reserves.
const MAX_CHUNKS: u64 = u32::MAX as u64;

/// Why an envelope could not be made or opened.
///
/// Inside the [`std::io`] and stream adapters it travels as an
/// [`std::io::Error`] of kind [`InvalidData`](std::io::ErrorKind::InvalidData);
/// [`EnvelopeError::from_io`] gets it back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The bytes do not start with a header this crate can read.
    #[error("not a readable ciphertext envelope: {0}")]
    BadHeader(String),
    /// The envelope ends before its final chunk.
    #[error("the ciphertext envelope is truncated: it ends before its final chunk")]
    Truncated,
    /// A chunk failed authentication.
    #[error("chunk {chunk} failed authentication: the ciphertext was modified, truncated or reordered, or the key is wrong")]
    Corrupt {
        /// Index of the chunk, from 0.
        chunk: u64,
    },
    /// More bytes follow the final chunk.
    #[error(
        "the ciphertext envelope has data after its final chunk: it was appended to or spliced"
    )]
    TrailingData,
    /// A chunk size outside [`MIN_CHUNK_SIZE`]..=[`MAX_CHUNK_SIZE`] was asked for.
    #[error("chunk size {size} is out of range: use {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} bytes")]
    InvalidChunkSize {
        /// The size asked for.
        size: usize,
    },
    /// The plaintext needs more chunks than STREAM's 32-bit counter allows.
    #[error(
        "the plaintext is too long for one envelope at this chunk size (at most 2^32 - 1 chunks)"
    )]
    TooLong,
    /// A chunk handed to the chunk-at-a-time interface has the wrong length.
    #[error("chunk has {len} bytes where {expected} were expected")]
    ChunkLength {
        /// Length given.
        len: usize,
        /// Length required.
        expected: &'static str,
    },
}

impl EnvelopeError {
    /// Wraps the error as an [`std::io::Error`] of kind
    /// [`InvalidData`](std::io::ErrorKind::InvalidData) (or
    /// [`InvalidInput`](std::io::ErrorKind::InvalidInput) for a bad argument).
    pub fn into_io(self) -> std::io::Error {
        let kind = match self {
            Self::InvalidChunkSize { .. } | Self::TooLong | Self::ChunkLength { .. } => {
                std::io::ErrorKind::InvalidInput
            }
            _ => std::io::ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, self)
    }

    /// The envelope error inside an [`std::io::Error`] made by
    /// [`EnvelopeError::into_io`], if it is one.
    pub fn from_io(err: &std::io::Error) -> Option<&EnvelopeError> {
        err.get_ref()
            .and_then(|e| e.downcast_ref::<EnvelopeError>())
    }
}

impl From<EnvelopeError> for std::io::Error {
    fn from(e: EnvelopeError) -> Self {
        e.into_io()
    }
}

/// Checks a plaintext chunk size.
pub fn check_chunk_size(size: usize) -> Result<(), EnvelopeError> {
    if (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(EnvelopeError::InvalidChunkSize { size })
    }
}

/// The length of the envelope of a `plaintext_len`-byte plaintext.
pub fn sealed_len(plaintext_len: u64, chunk_size: usize) -> u64 {
    let chunks = plaintext_len.div_ceil(chunk_size as u64).max(1);
    HEADER_LEN as u64 + plaintext_len + chunks * TAG_LEN as u64
}

/// A parsed envelope header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeHeader {
    chunk_size: usize,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl EnvelopeHeader {
    /// A header, checking the chunk size.
    pub fn new(
        chunk_size: usize,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    ) -> Result<Self, EnvelopeError> {
        check_chunk_size(chunk_size)?;
        Ok(Self {
            chunk_size,
            nonce_prefix,
        })
    }

    /// Parses the first [`HEADER_LEN`] bytes of `bytes` (more may follow).
    pub fn parse(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let bad = |why: String| Err(EnvelopeError::BadHeader(why));
        if bytes.len() < HEADER_LEN {
            return bad(format!(
                "{} bytes is shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            ));
        }
        if bytes[..4] != MAGIC {
            return bad("missing the \"RRE1\" magic bytes".into());
        }
        if bytes[4] != VERSION {
            return bad(format!(
                "unknown version {} (this build reads version {VERSION})",
                bytes[4]
            ));
        }
        let size = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
        if check_chunk_size(size).is_err() {
            return bad(format!(
                "chunk size {size} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}"
            ));
        }
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&bytes[9..HEADER_LEN]);
        Ok(Self {
            chunk_size: size,
            nonce_prefix,
        })
    }

    /// The header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4] = VERSION;
        // The chunk size was checked to be at most 4 MiB, so it fits.
        out[5..9].copy_from_slice(&(self.chunk_size as u32).to_le_bytes());
        out[9..].copy_from_slice(&self.nonce_prefix);
        out
    }

    /// The plaintext chunk size.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// The ciphertext length of every chunk but the final one.
    pub fn sealed_chunk_len(&self) -> usize {
        self.chunk_size + TAG_LEN
    }
}

/// An [`aead::Buffer`] over the tail of a vector from `start` on, so chunks are
/// encrypted or decrypted in place where they will stay.
struct Tail<'a> {
    vec: &'a mut Vec<u8>,
    start: usize,
}

impl AsRef<[u8]> for Tail<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.vec[self.start..]
    }
}

impl AsMut<[u8]> for Tail<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..]
    }
}

impl aead::Buffer for Tail<'_> {
    fn extend_from_slice(&mut self, other: &[u8]) -> aead::Result<()> {
        self.vec.extend_from_slice(other);
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        self.vec.truncate(self.start + len);
    }
}

fn cipher(key: &DataKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(Key::from_slice(key.expose()))
}

/// Encrypts an envelope one chunk at a time.
///
/// Write [`header`](Self::header) first, then pass every full chunk of
/// exactly [`chunk_size`](Self::chunk_size) plaintext bytes to
/// [`encrypt_next_in_place`](Self::encrypt_next_in_place) (or
/// [`encrypt_next`](Self::encrypt_next)), and the final chunk (0 ..=
/// chunk size bytes; it may be full) to
/// [`encrypt_last_in_place`](Self::encrypt_last_in_place) (or
/// [`encrypt_last`](Self::encrypt_last)). The final chunk must be encrypted
/// last or the envelope will not open.
pub struct EnvelopeEncryptor {
    inner: EncryptorBE32<XChaCha20Poly1305>,
    header: EnvelopeHeader,
    header_bytes: [u8; HEADER_LEN],
    aad: [u8; AAD_LEN],
    chunks: u64,
}

impl std::fmt::Debug for EnvelopeEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeEncryptor")
            .field("chunk_size", &self.header.chunk_size)
            .field("chunks", &self.chunks)
            .finish_non_exhaustive()
    }
}

impl EnvelopeEncryptor {
    /// Starts an envelope under `key` with a random nonce prefix from `rng`.
    /// Returns the encryptor and the header to write before the chunks.
    pub fn new(
        key: &DataKey,
        rng: &mut dyn CryptoRngCore,
        chunk_size: usize,
    ) -> Result<(Self, [u8; HEADER_LEN]), EnvelopeError> {
        let mut prefix = [0u8; NONCE_PREFIX_LEN];
        rng.fill_bytes(&mut prefix);
        let header = EnvelopeHeader::new(chunk_size, prefix)?;
        let enc = Self::with_header(key, header);
        let bytes = enc.header_bytes;
        Ok((enc, bytes))
    }

    /// Starts an envelope with a given header. The header's nonce prefix must
    /// never be used twice with one key: prefer [`EnvelopeEncryptor::new`].
    pub fn with_header(key: &DataKey, header: EnvelopeHeader) -> Self {
        let stream = StreamBE32::from_aead(cipher(key), (&header.nonce_prefix).into());
        Self {
            inner: EncryptorBE32::from_stream_primitive(stream),
            header,
            header_bytes: header.to_bytes(),
            aad: associated_data(&header.to_bytes()),
            chunks: 0,
        }
    }

    /// The header bytes, which go before the first chunk.
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header_bytes
    }

    /// The plaintext chunk size.
    pub fn chunk_size(&self) -> usize {
        self.header.chunk_size
    }

    /// Encrypts a full non-final chunk in place: `buf` holds exactly
    /// [`chunk_size`](Self::chunk_size) plaintext bytes and afterwards holds
    /// their `chunk_size + 16` ciphertext bytes.
    pub fn encrypt_next_in_place(&mut self, buf: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        self.encrypt_next_at(buf, 0)
    }

    /// Encrypts a full non-final chunk (exactly
    /// [`chunk_size`](Self::chunk_size) bytes), appending its ciphertext to `out`.
    pub fn encrypt_next(
        &mut self,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EnvelopeError> {
        let start = out.len();
        out.reserve(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        self.encrypt_next_at(out, start)
            .inspect_err(|_| out.truncate(start))
    }

    /// Encrypts the final chunk in place: `buf` holds 0 ..=
    /// [`chunk_size`](Self::chunk_size) plaintext bytes and afterwards holds
    /// their ciphertext, 16 bytes longer.
    pub fn encrypt_last_in_place(self, buf: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        self.encrypt_last_at(buf, 0)
    }

    /// Encrypts the final chunk (0 ..= [`chunk_size`](Self::chunk_size)
    /// bytes), appending its ciphertext to `out`.
    pub fn encrypt_last(self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        let start = out.len();
        out.reserve(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        self.encrypt_last_at(out, start)
            .inspect_err(|_| out.truncate(start))
    }

    fn encrypt_next_at(&mut self, vec: &mut Vec<u8>, start: usize) -> Result<(), EnvelopeError> {
        let len = vec.len() - start;
        if len != self.header.chunk_size {
            return Err(EnvelopeError::ChunkLength {
                len,
                expected: "exactly the chunk size (only the final chunk may be shorter)",
            });
        }
        if self.chunks >= MAX_CHUNKS {
            return Err(EnvelopeError::TooLong);
        }
        vec.reserve(TAG_LEN);
        self.inner
            .encrypt_next_in_place(&self.aad, &mut Tail { vec, start })
            // Encryption fails only on counter overflow, checked above.
            .map_err(|_| EnvelopeError::TooLong)?;
        self.chunks += 1;
        Ok(())
    }

    fn encrypt_last_at(self, vec: &mut Vec<u8>, start: usize) -> Result<(), EnvelopeError> {
        let len = vec.len() - start;
        if len > self.header.chunk_size {
            return Err(EnvelopeError::ChunkLength {
                len,
                expected: "at most the chunk size",
            });
        }
        vec.reserve(TAG_LEN);
        self.inner
            .encrypt_last_in_place(&self.aad, &mut Tail { vec, start })
            .map_err(|_| EnvelopeError::TooLong)
    }
}

/// Decrypts an envelope one chunk at a time.
///
/// Make it from the header, then pass every chunk but the final one (exactly
/// [`sealed_chunk_len`](Self::sealed_chunk_len) bytes each) to
/// [`decrypt_next_in_place`](Self::decrypt_next_in_place) (or
/// [`decrypt_next`](Self::decrypt_next)), and the final chunk to
/// [`decrypt_last_in_place`](Self::decrypt_last_in_place) (or
/// [`decrypt_last`](Self::decrypt_last)). The plaintext is complete only once
/// the final chunk has authenticated: a stream that stops earlier is
/// truncated.
///
/// Telling which chunk is the final one needs one chunk of lookahead: a chunk
/// followed by more bytes is not final.
pub struct EnvelopeDecryptor {
    inner: DecryptorBE32<XChaCha20Poly1305>,
    // Kept to tell apart, once a chunk has failed, a truncated or extended
    // envelope from a corrupt one.
    key: DataKey,
    header: EnvelopeHeader,
    aad: [u8; AAD_LEN],
    chunks: u64,
}

impl std::fmt::Debug for EnvelopeDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeDecryptor")
            .field("chunk_size", &self.header.chunk_size)
            .field("chunks", &self.chunks)
            .finish_non_exhaustive()
    }
}

impl EnvelopeDecryptor {
    /// Starts decrypting the envelope whose header is the first
    /// [`HEADER_LEN`] bytes of `header` (more may follow; they are ignored).
    pub fn new(key: &DataKey, header: &[u8]) -> Result<Self, EnvelopeError> {
        let header = EnvelopeHeader::parse(header)?;
        let stream = StreamBE32::from_aead(cipher(key), (&header.nonce_prefix).into());
        Ok(Self {
            inner: DecryptorBE32::from_stream_primitive(stream),
            key: key.clone(),
            header,
            aad: associated_data(&header.to_bytes()),
            chunks: 0,
        })
    }

    /// The parsed header.
    pub fn header(&self) -> &EnvelopeHeader {
        &self.header
    }

    /// The plaintext chunk size.
    pub fn chunk_size(&self) -> usize {
        self.header.chunk_size
    }

    /// The ciphertext length of every chunk but the final one.
    pub fn sealed_chunk_len(&self) -> usize {
        self.header.sealed_chunk_len()
    }

    /// How many chunks have been decrypted so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Decrypts a non-final chunk in place: `buf` holds exactly
    /// [`sealed_chunk_len`](Self::sealed_chunk_len) ciphertext bytes and
    /// afterwards their plaintext. On error `buf` is emptied.
    pub fn decrypt_next_in_place(&mut self, buf: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        self.decrypt_next_at(buf, 0)
    }

    /// Decrypts a non-final chunk (exactly
    /// [`sealed_chunk_len`](Self::sealed_chunk_len) bytes), appending its
    /// plaintext to `out`. On error `out` is left as it was.
    pub fn decrypt_next(
        &mut self,
        ciphertext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EnvelopeError> {
        let start = out.len();
        out.extend_from_slice(ciphertext);
        self.decrypt_next_at(out, start)
    }

    /// Decrypts the final chunk (16 ..= `sealed_chunk_len` bytes) in place. On
    /// error `buf` is emptied.
    pub fn decrypt_last_in_place(self, buf: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        self.decrypt_last_at(buf, 0)
    }

    /// Decrypts the final chunk, appending its plaintext to `out`. On error
    /// `out` is left as it was.
    pub fn decrypt_last(self, ciphertext: &[u8], out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        let start = out.len();
        out.extend_from_slice(ciphertext);
        self.decrypt_last_at(out, start)
    }

    fn decrypt_next_at(&mut self, vec: &mut Vec<u8>, start: usize) -> Result<(), EnvelopeError> {
        let result = self.try_decrypt_next(vec, start);
        if result.is_err() {
            vec.truncate(start);
        }
        result
    }

    fn try_decrypt_next(&mut self, vec: &mut Vec<u8>, start: usize) -> Result<(), EnvelopeError> {
        let len = vec.len() - start;
        if len != self.sealed_chunk_len() {
            return Err(EnvelopeError::ChunkLength {
                len,
                expected: "exactly the chunk size + 16 (only the final chunk may be shorter)",
            });
        }
        if self.chunks >= MAX_CHUNKS {
            return Err(EnvelopeError::TooLong);
        }
        let index = self.chunks;
        let mut buf = Tail { vec, start };
        match self.inner.decrypt_next_in_place(&self.aad, &mut buf) {
            Ok(()) => {
                self.chunks += 1;
                Ok(())
            }
            // A full chunk that authenticates as the final one: the envelope
            // ended here and the bytes after it were added.
            Err(_) if self.authenticates_at(index, true, &mut buf) => {
                Err(EnvelopeError::TrailingData)
            }
            Err(_) => Err(EnvelopeError::Corrupt { chunk: index }),
        }
    }

    fn decrypt_last_at(self, vec: &mut Vec<u8>, start: usize) -> Result<(), EnvelopeError> {
        let len = vec.len() - start;
        let result = if len < TAG_LEN {
            // Not even a tag: the envelope was cut short.
            Err(EnvelopeError::Truncated)
        } else if len > self.sealed_chunk_len() {
            Err(EnvelopeError::ChunkLength {
                len,
                expected: "at most the chunk size + 16",
            })
        } else {
            let Self {
                inner,
                key,
                header,
                aad,
                chunks,
            } = self;
            let mut buf = Tail { vec, start };
            match inner.decrypt_last_in_place(&aad, &mut buf) {
                Ok(()) => Ok(()),
                // A full chunk that authenticates as a non-final one: the
                // chunks after it were cut off.
                Err(_)
                    if len == header.sealed_chunk_len()
                        && authenticates(&key, &header, &aad, chunks, false, &mut buf) =>
                {
                    Err(EnvelopeError::Truncated)
                }
                Err(_) => Err(EnvelopeError::Corrupt { chunk: chunks }),
            }
        };
        if result.is_err() {
            vec.truncate(start);
        }
        result
    }

    fn authenticates_at(&self, index: u64, last: bool, buf: &mut Tail<'_>) -> bool {
        authenticates(&self.key, &self.header, &self.aad, index, last, buf)
    }
}

/// Whether `buf` authenticates as chunk `index` (final or not) of the envelope.
/// Used only to explain a failure; `buf` is then discarded either way.
fn authenticates(
    key: &DataKey,
    header: &EnvelopeHeader,
    aad: &[u8; AAD_LEN],
    index: u64,
    last: bool,
    buf: &mut Tail<'_>,
) -> bool {
    let Ok(position) = u32::try_from(index) else {
        return false;
    };
    let stream: StreamBE32<XChaCha20Poly1305> =
        StreamBE32::from_aead(cipher(key), (&header.nonce_prefix).into());
    stream.decrypt_in_place(position, last, aad, buf).is_ok()
}

/// Seals `plaintext` into an envelope under `key` with the default chunk size.
pub fn seal(key: &DataKey, rng: &mut dyn CryptoRngCore, plaintext: &[u8]) -> Vec<u8> {
    seal_with_chunk_size(key, rng, plaintext, DEFAULT_CHUNK_SIZE)
        .expect("the default chunk size is valid and a slice in memory has fewer than 2^32 chunks")
}

/// Seals `plaintext` into an envelope under `key` with chunks of
/// `chunk_size` bytes.
pub fn seal_with_chunk_size(
    key: &DataKey,
    rng: &mut dyn CryptoRngCore,
    plaintext: &[u8],
    chunk_size: usize,
) -> Result<Vec<u8>, EnvelopeError> {
    let (mut enc, header) = EnvelopeEncryptor::new(key, rng, chunk_size)?;
    let len = usize::try_from(sealed_len(plaintext.len() as u64, chunk_size))
        .map_err(|_| EnvelopeError::TooLong)?;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&header);
    let mut chunks = plaintext.chunks(chunk_size);
    let last = chunks.next_back().unwrap_or(&[]);
    for chunk in chunks {
        enc.encrypt_next(chunk, &mut out)?;
    }
    enc.encrypt_last(last, &mut out)?;
    debug_assert_eq!(out.len(), len);
    Ok(out)
}

/// Opens an envelope made under `key`, checking every chunk.
pub fn open(key: &DataKey, envelope: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let mut dec = EnvelopeDecryptor::new(key, envelope)?;
    let body = &envelope[HEADER_LEN..];
    if body.is_empty() {
        return Err(EnvelopeError::Truncated);
    }
    let sealed_chunk = dec.sealed_chunk_len();
    let chunks = body.len().div_ceil(sealed_chunk) as u64;
    // Each chunk is copied in with its tag, then decrypted in place and the
    // tag dropped: room for the plaintext and one tag avoids a reallocation.
    let mut out =
        Vec::with_capacity(body.len().saturating_sub(chunks as usize * TAG_LEN) + TAG_LEN);
    let mut pieces = body.chunks(sealed_chunk);
    let last = pieces.next_back().unwrap_or(&[]);
    for piece in pieces {
        dec.decrypt_next(piece, &mut out)?;
    }
    dec.decrypt_last(last, &mut out)?;
    Ok(out)
}
