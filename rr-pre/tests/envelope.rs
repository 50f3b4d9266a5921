//! The envelope: round trips on every path, and every kind of damage.

use std::io::{self, Read};

use bytes::Bytes;
use futures::executor::block_on;
use futures::{StreamExt, TryStreamExt};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use rr_core::{ByteStream, DataKey};
use rr_pre::envelope::{
    self, decrypt_reader, decrypt_stream, encrypt_reader, encrypt_stream, open,
    seal_with_chunk_size, sealed_len, EnvelopeDecryptor, EnvelopeEncryptor, EnvelopeError,
    EnvelopeHeader, DEFAULT_CHUNK_SIZE, HEADER_LEN, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, TAG_LEN,
};

/// The chunk size of most tests: the smallest, so a few chunks stay small.
const CS: usize = MIN_CHUNK_SIZE;
/// A chunk's sealed length.
const SC: usize = CS + TAG_LEN;
/// The interesting plaintext sizes.
const SIZES: [usize; 6] = [0, 1, CS - 1, CS, CS + 1, 3 * CS + 5];

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn key(seed: u64) -> DataKey {
    DataKey::generate(&mut rng(seed))
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0; len];
    rng(seed).fill_bytes(&mut v);
    v
}

/// Splits `bytes` into items at random points (including empty items).
fn split(bytes: &[u8], rng: &mut StdRng, max_item: usize) -> Vec<Bytes> {
    let mut items = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = rng.gen_range(0..=max_item.min(rest.len()));
        items.push(Bytes::copy_from_slice(&rest[..n]));
        rest = &rest[n..];
    }
    items
}

fn stream_of(items: Vec<Bytes>) -> ByteStream {
    Box::pin(futures::stream::iter(items.into_iter().map(Ok)))
}

fn collect(stream: ByteStream) -> io::Result<Vec<u8>> {
    block_on(async {
        let mut out = Vec::new();
        let mut stream = stream;
        while let Some(item) = stream.next().await {
            out.extend_from_slice(&item?);
        }
        Ok(out)
    })
}

/// A reader that hands out at most a random few bytes per read.
struct Dribble<'a> {
    rest: &'a [u8],
    rng: StdRng,
    max: usize,
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .rng
            .gen_range(1..=self.max)
            .min(buf.len())
            .min(self.rest.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

fn envelope_error(e: io::Error) -> EnvelopeError {
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    EnvelopeError::from_io(&e)
        .cloned()
        .unwrap_or_else(|| panic!("not an envelope error: {e}"))
}

/// Opens `sealed` on the sync, io and async paths; they must agree.
fn open_all_ways(key: &DataKey, sealed: &[u8], seed: u64) -> Result<Vec<u8>, EnvelopeError> {
    let sync = open(key, sealed);

    let mut out = Vec::new();
    let reader = Dribble {
        rest: sealed,
        rng: rng(seed),
        max: 3 * SC,
    };
    let via_io = decrypt_reader(key, reader, &mut out)
        .map_err(envelope_error)
        .map(|n| {
            assert_eq!(n as usize, out.len());
            out
        });

    let items = split(sealed, &mut rng(seed + 1), 2 * SC);
    let via_stream = collect(decrypt_stream(key, stream_of(items))).map_err(envelope_error);

    assert_eq!(sync, via_io, "sync and io paths disagree");
    assert_eq!(sync, via_stream, "sync and async paths disagree");
    sync
}

/// Seals `plaintext` on the sync, io and async paths; returns the three.
fn seal_all_ways(key: &DataKey, plaintext: &[u8], seed: u64) -> [Vec<u8>; 3] {
    let sync = seal_with_chunk_size(key, &mut rng(seed), plaintext, CS).unwrap();

    let mut via_io = Vec::new();
    let reader = Dribble {
        rest: plaintext,
        rng: rng(seed),
        max: 2 * CS,
    };
    let n = encrypt_reader(key, &mut rng(seed + 1), reader, &mut via_io, CS).unwrap();
    assert_eq!(n as usize, via_io.len());

    let items = split(plaintext, &mut rng(seed + 2), 2 * CS);
    let via_stream =
        collect(encrypt_stream(key, &mut rng(seed + 3), stream_of(items), CS).unwrap()).unwrap();

    for sealed in [&sync, &via_io, &via_stream] {
        assert_eq!(sealed.len() as u64, sealed_len(plaintext.len() as u64, CS));
    }
    [sync, via_io, via_stream]
}

#[test]
fn round_trip_every_size_every_path() {
    let k = key(1);
    for (i, &size) in SIZES.iter().enumerate() {
        let plaintext = data(size, i as u64);
        for (j, sealed) in seal_all_ways(&k, &plaintext, 10 * i as u64)
            .iter()
            .enumerate()
        {
            assert_eq!(
                open_all_ways(&k, sealed, i as u64).unwrap(),
                plaintext,
                "size {size}, sealer {j}"
            );
        }
    }
}

#[test]
fn layout() {
    let k = key(2);
    let sealed = seal_with_chunk_size(&k, &mut rng(2), &data(3 * CS + 5, 2), CS).unwrap();
    assert_eq!(&sealed[..4], b"RRE1");
    assert_eq!(sealed[4], 1);
    assert_eq!(
        u32::from_le_bytes(sealed[5..9].try_into().unwrap()) as usize,
        CS
    );
    assert_eq!(sealed.len(), HEADER_LEN + 3 * SC + 5 + TAG_LEN);
    // An empty plaintext is the header and one tag.
    let empty = seal_with_chunk_size(&k, &mut rng(2), &[], CS).unwrap();
    assert_eq!(empty.len(), HEADER_LEN + TAG_LEN);
    // The nonce prefix is random: the same plaintext seals differently.
    let again = seal_with_chunk_size(&k, &mut rng(3), &[], CS).unwrap();
    assert_ne!(empty, again);
    // The default chunk size.
    let default = envelope::seal(&k, &mut rng(4), b"x");
    assert_eq!(
        EnvelopeHeader::parse(&default).unwrap().chunk_size(),
        DEFAULT_CHUNK_SIZE
    );
}

#[test]
fn chunk_at_a_time_matches_seal() {
    let k = key(3);
    let plaintext = data(2 * CS + 7, 3);
    let (mut enc, header) = EnvelopeEncryptor::new(&k, &mut rng(3), CS).unwrap();
    let mut sealed = header.to_vec();
    let mut buf = plaintext[..CS].to_vec();
    enc.encrypt_next_in_place(&mut buf).unwrap();
    assert_eq!(buf.len(), SC);
    sealed.extend_from_slice(&buf);
    enc.encrypt_next(&plaintext[CS..2 * CS], &mut sealed)
        .unwrap();
    enc.encrypt_last(&plaintext[2 * CS..], &mut sealed).unwrap();
    // Same key and nonce prefix: the same bytes as `seal`.
    let sealed_whole = seal_with_chunk_size(&k, &mut rng(3), &plaintext, CS).unwrap();
    assert_eq!(sealed, sealed_whole);

    let mut dec = EnvelopeDecryptor::new(&k, &sealed).unwrap();
    let body = &sealed[HEADER_LEN..];
    let mut buf = body[..SC].to_vec();
    dec.decrypt_next_in_place(&mut buf).unwrap();
    assert_eq!(buf, plaintext[..CS]);
    let mut out = Vec::new();
    dec.decrypt_next(&body[SC..2 * SC], &mut out).unwrap();
    assert_eq!(dec.chunks(), 2);
    let mut last = body[2 * SC..].to_vec();
    dec.decrypt_last_in_place(&mut last).unwrap();
    assert_eq!(last, plaintext[2 * CS..]);
}

#[test]
fn misuse_of_the_chunk_interface() {
    let k = key(4);
    let (mut enc, header) = EnvelopeEncryptor::new(&k, &mut rng(4), CS).unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        enc.encrypt_next(&[0; 10], &mut out),
        Err(EnvelopeError::ChunkLength { len: 10, .. })
    ));
    assert!(out.is_empty());
    let mut buf = vec![0; CS + 1];
    assert!(matches!(
        enc.encrypt_next_in_place(&mut buf),
        Err(EnvelopeError::ChunkLength { .. })
    ));
    assert!(matches!(
        enc.encrypt_last(&[0; CS + 1], &mut out),
        Err(EnvelopeError::ChunkLength { .. })
    ));

    let mut dec = EnvelopeDecryptor::new(&k, &header).unwrap();
    let mut buf = vec![0; SC - 1];
    assert!(matches!(
        dec.decrypt_next_in_place(&mut buf),
        Err(EnvelopeError::ChunkLength { .. })
    ));
}

#[test]
fn chunk_size_limits() {
    let k = key(5);
    for size in [0, 1, MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1, usize::MAX] {
        let expected = EnvelopeError::InvalidChunkSize { size };
        assert_eq!(
            seal_with_chunk_size(&k, &mut rng(5), b"x", size).unwrap_err(),
            expected
        );
        assert_eq!(
            EnvelopeEncryptor::new(&k, &mut rng(5), size).unwrap_err(),
            expected
        );
        let e = encrypt_reader(&k, &mut rng(5), &b"x"[..], Vec::new(), size).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(EnvelopeError::from_io(&e), Some(&expected));
        assert_eq!(
            encrypt_stream(&k, &mut rng(5), stream_of(vec![]), size).err(),
            Some(expected)
        );
    }
    for size in [MIN_CHUNK_SIZE, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, 100_000] {
        let sealed = seal_with_chunk_size(&k, &mut rng(5), &data(size + 3, 5), size).unwrap();
        assert_eq!(open(&k, &sealed).unwrap(), data(size + 3, 5));
    }
}

/// A 3*CS+5 byte envelope: chunks 0, 1, 2 full and chunk 3 of 5 bytes.
fn four_chunks() -> (DataKey, Vec<u8>) {
    let k = key(6);
    let sealed = seal_with_chunk_size(&k, &mut rng(6), &data(3 * CS + 5, 6), CS).unwrap();
    (k, sealed)
}

#[test]
fn flipped_header_bytes() {
    let (k, sealed) = four_chunks();
    for i in 0..HEADER_LEN {
        let mut bad = sealed.clone();
        bad[i] ^= 0x40;
        let err = open_all_ways(&k, &bad, i as u64).unwrap_err();
        match i {
            // Magic, version, and the chunk size's bytes that push it out of range.
            0..=4 | 6..=8 => assert!(
                matches!(err, EnvelopeError::BadHeader(_)),
                "byte {i}: {err:?}"
            ),
            // Another valid chunk size, or another nonce prefix: the first
            // chunk no longer authenticates.
            _ => assert_eq!(err, EnvelopeError::Corrupt { chunk: 0 }, "byte {i}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn flipped_body_byte_is_corrupt(pos in 0usize..(3 * SC + 5 + TAG_LEN), bit in 0u8..8) {
        let (k, mut sealed) = four_chunks();
        sealed[HEADER_LEN + pos] ^= 1 << bit;
        let chunk = (pos / SC) as u64;
        prop_assert_eq!(open_all_ways(&k, &sealed, pos as u64), Err(EnvelopeError::Corrupt { chunk }));
    }

    #[test]
    fn async_round_trip_any_boundaries(
        size_index in 0usize..SIZES.len(),
        seed in any::<u64>(),
        max_item in 1usize..(3 * CS),
    ) {
        let k = key(seed);
        let plaintext = data(SIZES[size_index], seed);
        let items = split(&plaintext, &mut rng(seed), max_item);
        let sealed = collect(encrypt_stream(&k, &mut rng(seed), stream_of(items), CS).unwrap()).unwrap();
        prop_assert_eq!(sealed.len() as u64, sealed_len(plaintext.len() as u64, CS));
        let items = split(&sealed, &mut rng(seed ^ 1), max_item);
        let opened = collect(decrypt_stream(&k, stream_of(items))).unwrap();
        prop_assert_eq!(&opened, &plaintext);
        prop_assert_eq!(open(&k, &sealed).unwrap(), plaintext);
    }

    #[test]
    fn io_round_trip_any_boundaries(size_index in 0usize..SIZES.len(), seed in any::<u64>(), max in 1usize..(3 * CS)) {
        let k = key(seed);
        let plaintext = data(SIZES[size_index], seed);
        let mut sealed = Vec::new();
        let reader = Dribble { rest: &plaintext, rng: rng(seed), max };
        encrypt_reader(&k, &mut rng(seed), reader, &mut sealed, CS).unwrap();
        let mut opened = Vec::new();
        let reader = Dribble { rest: &sealed, rng: rng(seed ^ 1), max };
        decrypt_reader(&k, reader, &mut opened).unwrap();
        prop_assert_eq!(opened, plaintext);
    }
}

#[test]
fn dropped_final_chunk_is_truncated() {
    let (k, sealed) = four_chunks();
    // Drop chunk 3: chunk 2 is now last but was not sealed as final.
    let cut = &sealed[..HEADER_LEN + 3 * SC];
    assert_eq!(open_all_ways(&k, cut, 1), Err(EnvelopeError::Truncated));
    // Drop chunks 2 and 3.
    let cut = &sealed[..HEADER_LEN + 2 * SC];
    assert_eq!(open_all_ways(&k, cut, 2), Err(EnvelopeError::Truncated));
    // Only the header left.
    assert_eq!(
        open_all_ways(&k, &sealed[..HEADER_LEN], 3),
        Err(EnvelopeError::Truncated)
    );

    // When the final chunk is full, dropping it is caught the same way.
    let sealed = seal_with_chunk_size(&k, &mut rng(7), &data(2 * CS, 7), CS).unwrap();
    assert_eq!(sealed.len(), HEADER_LEN + 2 * SC);
    assert_eq!(
        open_all_ways(&k, &sealed[..HEADER_LEN + SC], 4),
        Err(EnvelopeError::Truncated)
    );
}

#[test]
fn truncated_mid_chunk() {
    let (k, sealed) = four_chunks();
    // Cut inside chunk 2: what is left of it cannot authenticate.
    let cut = &sealed[..HEADER_LEN + 2 * SC + 1000];
    assert_eq!(
        open_all_ways(&k, cut, 1),
        Err(EnvelopeError::Corrupt { chunk: 2 })
    );
    // Cut inside the final chunk.
    let cut = &sealed[..sealed.len() - 1];
    assert_eq!(
        open_all_ways(&k, cut, 2),
        Err(EnvelopeError::Corrupt { chunk: 3 })
    );
    // Less than a tag left of a chunk.
    let cut = &sealed[..HEADER_LEN + SC + 7];
    assert_eq!(open_all_ways(&k, cut, 3), Err(EnvelopeError::Truncated));
    let cut = &sealed[..HEADER_LEN + 5];
    assert_eq!(open_all_ways(&k, cut, 4), Err(EnvelopeError::Truncated));
}

#[test]
fn swapped_or_repeated_chunks_are_corrupt() {
    let (k, sealed) = four_chunks();
    let body = HEADER_LEN;
    let chunk = |i: usize| &sealed[body + i * SC..body + (i + 1) * SC];

    let mut swapped = sealed[..body].to_vec();
    for i in [1, 0, 2] {
        swapped.extend_from_slice(chunk(i));
    }
    swapped.extend_from_slice(&sealed[body + 3 * SC..]);
    assert_eq!(
        open_all_ways(&k, &swapped, 1),
        Err(EnvelopeError::Corrupt { chunk: 0 })
    );

    let mut swapped = sealed[..body].to_vec();
    for i in [0, 2, 1] {
        swapped.extend_from_slice(chunk(i));
    }
    swapped.extend_from_slice(&sealed[body + 3 * SC..]);
    assert_eq!(
        open_all_ways(&k, &swapped, 2),
        Err(EnvelopeError::Corrupt { chunk: 1 })
    );

    let mut repeated = sealed[..body].to_vec();
    for i in [0, 0, 1, 2] {
        repeated.extend_from_slice(chunk(i));
    }
    repeated.extend_from_slice(&sealed[body + 3 * SC..]);
    assert_eq!(
        open_all_ways(&k, &repeated, 3),
        Err(EnvelopeError::Corrupt { chunk: 1 })
    );

    // A chunk of another envelope under the same key (another nonce prefix).
    let other = seal_with_chunk_size(&k, &mut rng(99), &data(3 * CS + 5, 6), CS).unwrap();
    let mut spliced = sealed.clone();
    spliced[body + SC..body + 2 * SC].copy_from_slice(&other[body + SC..body + 2 * SC]);
    assert_eq!(
        open_all_ways(&k, &spliced, 4),
        Err(EnvelopeError::Corrupt { chunk: 1 })
    );
}

#[test]
fn wrong_key_is_corrupt() {
    let (_, sealed) = four_chunks();
    assert_eq!(
        open_all_ways(&key(1000), &sealed, 1),
        Err(EnvelopeError::Corrupt { chunk: 0 })
    );
    let empty = seal_with_chunk_size(&key(6), &mut rng(6), &[], CS).unwrap();
    assert_eq!(
        open_all_ways(&key(1000), &empty, 2),
        Err(EnvelopeError::Corrupt { chunk: 0 })
    );
}

#[test]
fn garbage_and_short_headers() {
    let k = key(8);
    let mut r = rng(8);
    let valid = seal_with_chunk_size(&k, &mut r, b"hello", CS).unwrap();
    let mut cases: Vec<Vec<u8>> = vec![
        vec![],
        b"RRE1".to_vec(),
        valid[..HEADER_LEN - 1].to_vec(),
        vec![0; 100],
        data(1000, 8),
        b"RRE2".iter().chain(&valid[4..]).copied().collect(),
    ];
    for (at, value) in [(4, 0u8), (4, 2), (6, 0), (8, 0xff)] {
        let mut v = valid.clone();
        v[at] = value;
        cases.push(v);
    }
    // Chunk size below the minimum (1 byte) and above the maximum.
    for size in [
        1u32,
        (MIN_CHUNK_SIZE - 1) as u32,
        (MAX_CHUNK_SIZE + 1) as u32,
    ] {
        let mut v = valid.clone();
        v[5..9].copy_from_slice(&size.to_le_bytes());
        cases.push(v);
    }
    for (i, case) in cases.iter().enumerate() {
        let err = open_all_ways(&k, case, i as u64).unwrap_err();
        assert!(
            matches!(err, EnvelopeError::BadHeader(_)),
            "case {i}: {err:?}"
        );
    }
    assert!(matches!(
        EnvelopeDecryptor::new(&k, &valid[..10]),
        Err(EnvelopeError::BadHeader(_))
    ));
}

#[test]
fn appended_data_is_refused() {
    let k = key(9);
    // After a full final chunk: recognised as trailing data.
    let sealed = seal_with_chunk_size(&k, &mut rng(9), &data(CS, 9), CS).unwrap();
    for extra in [&[0u8][..], &[1; 100], &sealed[HEADER_LEN..]] {
        let mut v = sealed.clone();
        v.extend_from_slice(extra);
        assert_eq!(
            open_all_ways(&k, &v, extra.len() as u64),
            Err(EnvelopeError::TrailingData)
        );
    }
    // After a short final chunk the extra bytes become part of it.
    let (k, sealed) = four_chunks();
    let mut v = sealed.clone();
    v.push(0);
    assert_eq!(
        open_all_ways(&k, &v, 1),
        Err(EnvelopeError::Corrupt { chunk: 3 })
    );
    let mut v = sealed.clone();
    v.extend_from_slice(&[7; SC]);
    assert_eq!(
        open_all_ways(&k, &v, 2),
        Err(EnvelopeError::Corrupt { chunk: 3 })
    );
    // A whole second envelope appended.
    let mut v = sealed.clone();
    v.extend_from_slice(&sealed);
    assert_eq!(
        open_all_ways(&k, &v, 3),
        Err(EnvelopeError::Corrupt { chunk: 3 })
    );
}

#[test]
fn error_messages_say_what_happened() {
    let corrupt = EnvelopeError::Corrupt { chunk: 3 }.to_string();
    assert_eq!(
        corrupt,
        "chunk 3 failed authentication: the ciphertext was modified, truncated or reordered, or the key is wrong"
    );
    assert!(EnvelopeError::Truncated.to_string().contains("truncated"));
    assert!(EnvelopeError::TrailingData
        .to_string()
        .contains("after its final chunk"));
}

#[test]
fn input_errors_pass_through_the_streams() {
    let k = key(10);
    let failing = || -> ByteStream {
        Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from(vec![1; 100])),
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "source failed",
            )),
        ]))
    };
    let err = collect(encrypt_stream(&k, &mut rng(10), failing(), CS).unwrap()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert!(EnvelopeError::from_io(&err).is_none());
    // A valid header and part of a chunk, then the source fails.
    let sealed = seal_with_chunk_size(&k, &mut rng(10), &data(CS, 10), CS).unwrap();
    let failing: ByteStream = Box::pin(futures::stream::iter(vec![
        Ok(Bytes::copy_from_slice(&sealed[..1000])),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "source failed",
        )),
    ]));
    let err = collect(decrypt_stream(&k, failing)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert!(EnvelopeError::from_io(&err).is_none());

    // After an error the stream ends.
    let mut s = decrypt_stream(&k, stream_of(vec![Bytes::from_static(b"junk")]));
    block_on(async {
        assert!(s.next().await.unwrap().is_err());
        assert!(s.next().await.is_none());
    });
}

#[test]
fn decrypt_stream_yields_chunks_as_they_authenticate() {
    let (k, sealed) = four_chunks();
    // Corrupt the last chunk: the first three come out, then the error.
    let mut bad = sealed.clone();
    *bad.last_mut().unwrap() ^= 1;
    let items: Vec<io::Result<Bytes>> =
        block_on(decrypt_stream(&k, stream_of(vec![Bytes::from(bad)])).collect());
    assert_eq!(items.len(), 4);
    for item in &items[..3] {
        assert_eq!(item.as_ref().unwrap().len(), CS);
    }
    let err = items.into_iter().nth(3).unwrap().unwrap_err();
    assert_eq!(envelope_error(err), EnvelopeError::Corrupt { chunk: 3 });
}

/// 64 MiB of pseudo-random data in odd-sized items, generated on the fly.
fn generated(total: usize, item: usize) -> ByteStream {
    let mut xof = blake3::Hasher::new_derive_key("rr-pre test data").finalize_xof();
    let mut left = total;
    Box::pin(futures::stream::iter(std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = item.min(left);
        left -= n;
        let mut buf = vec![0; n];
        xof.fill(&mut buf);
        Some(Ok(Bytes::from(buf)))
    })))
}

#[tokio::test]
async fn sixty_four_mib_async_round_trip() {
    const TOTAL: usize = 64 * 1024 * 1024;
    let k = key(11);
    let mut expected = blake3::Hasher::new();
    let mut source = generated(TOTAL, 1_000_003);
    while let Some(item) = source.next().await {
        expected.update(&item.unwrap());
    }

    let sealed = encrypt_stream(
        &k,
        &mut rng(11),
        generated(TOTAL, 1_000_003),
        DEFAULT_CHUNK_SIZE,
    )
    .unwrap();
    let mut opened = decrypt_stream(&k, sealed);
    let mut actual = blake3::Hasher::new();
    let mut len = 0usize;
    let mut items = 0usize;
    while let Some(item) = opened.try_next().await.unwrap() {
        assert!(item.len() <= DEFAULT_CHUNK_SIZE);
        len += item.len();
        items += 1;
        actual.update(&item);
    }
    assert_eq!(len, TOTAL);
    assert_eq!(items, TOTAL / DEFAULT_CHUNK_SIZE);
    assert_eq!(actual.finalize(), expected.finalize());
}
