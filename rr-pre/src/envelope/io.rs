//! [`std::io`] adapters: envelopes from readers to writers in constant memory.

use std::io::{self, Read, Write};

use rand_core::CryptoRngCore;
use rr_core::DataKey;

use super::{EnvelopeDecryptor, EnvelopeEncryptor, EnvelopeError, HEADER_LEN};

/// Reads into `buf` until it holds `target` bytes or the reader ends.
pub(super) fn fill<R: Read>(reader: &mut R, buf: &mut Vec<u8>, target: usize) -> io::Result<()> {
    let want = target.saturating_sub(buf.len()) as u64;
    // `read_to_end` keeps reading until the limit or the end of the reader,
    // into the spare capacity and without zeroing it first.
    reader.by_ref().take(want).read_to_end(buf)?;
    Ok(())
}

/// Encrypts everything `reader` yields into an envelope written to `writer`,
/// with chunks of `chunk_size` bytes
/// ([`DEFAULT_CHUNK_SIZE`](super::DEFAULT_CHUNK_SIZE) is a good choice).
///
/// Holds two chunks in memory at most. Returns the number of bytes written.
/// Does not flush `writer`.
pub fn encrypt_reader<R: Read, W: Write>(
    key: &DataKey,
    rng: &mut dyn CryptoRngCore,
    mut reader: R,
    mut writer: W,
    chunk_size: usize,
) -> io::Result<u64> {
    let (mut enc, header) = EnvelopeEncryptor::new(key, rng, chunk_size)?;
    writer.write_all(&header)?;
    let mut written = HEADER_LEN as u64;
    let mut cur = Vec::with_capacity(chunk_size + super::TAG_LEN);
    let mut next = Vec::with_capacity(chunk_size + super::TAG_LEN);
    fill(&mut reader, &mut cur, chunk_size)?;
    loop {
        // A chunk is final if the reader ended within it or right after it.
        if cur.len() == chunk_size {
            fill(&mut reader, &mut next, chunk_size)?;
        }
        if next.is_empty() {
            enc.encrypt_last_in_place(&mut cur)?;
            writer.write_all(&cur)?;
            return Ok(written + cur.len() as u64);
        }
        enc.encrypt_next_in_place(&mut cur)?;
        writer.write_all(&cur)?;
        written += cur.len() as u64;
        std::mem::swap(&mut cur, &mut next);
        next.clear();
    }
}

/// Decrypts the envelope `reader` yields, under `key`, writing the plaintext
/// to `writer`. Returns the number of plaintext bytes written.
///
/// Holds two chunks in memory at most. Each chunk is written once it has
/// authenticated, so on error `writer` has received an authentic but
/// incomplete prefix of the plaintext: discard it. Envelope errors come back
/// as [`io::ErrorKind::InvalidData`] errors from which
/// [`EnvelopeError::from_io`] recovers the [`EnvelopeError`].
pub fn decrypt_reader<R: Read, W: Write>(
    key: &DataKey,
    mut reader: R,
    mut writer: W,
) -> io::Result<u64> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    fill(&mut reader, &mut header, HEADER_LEN)?;
    let mut dec = EnvelopeDecryptor::new(key, &header)?;
    let sealed_chunk = dec.sealed_chunk_len();
    let mut written = 0u64;
    let mut cur = Vec::with_capacity(sealed_chunk);
    let mut next = Vec::with_capacity(sealed_chunk);
    fill(&mut reader, &mut cur, sealed_chunk)?;
    if cur.is_empty() {
        return Err(EnvelopeError::Truncated.into());
    }
    loop {
        if cur.len() == sealed_chunk {
            fill(&mut reader, &mut next, sealed_chunk)?;
        }
        if next.is_empty() {
            dec.decrypt_last_in_place(&mut cur)?;
            writer.write_all(&cur)?;
            return Ok(written + cur.len() as u64);
        }
        dec.decrypt_next_in_place(&mut cur)?;
        writer.write_all(&cur)?;
        written += cur.len() as u64;
        std::mem::swap(&mut cur, &mut next);
        next.clear();
    }
}
