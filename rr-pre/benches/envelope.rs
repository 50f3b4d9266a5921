//! Envelope throughput next to one-shot XChaCha20-Poly1305 over the same
//! buffer size.
//!
//! - `raw/*`: `encrypt_in_place_detached` / `decrypt_in_place_detached` over
//!   the whole buffer at once: the ceiling.
//! - `envelope-in-place/*`: the chunk-at-a-time path the io and stream adapters
//!   use, each chunk encrypted or decrypted in its own buffer in place.
//! - `envelope-seal` / `envelope-open`: whole-buffer convenience functions
//!   (one copy of the data into the output on top of the crypto).

use std::hint::black_box;
use std::time::Duration;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use rr_core::DataKey;
use rr_pre::envelope::{
    self, EnvelopeDecryptor, EnvelopeEncryptor, DEFAULT_CHUNK_SIZE, HEADER_LEN, TAG_LEN,
};

const MIB: usize = 1024 * 1024;

/// Plaintext split into chunk buffers with room for their tags.
fn chunk_buffers(data: &[u8], chunk_size: usize) -> Vec<Vec<u8>> {
    data.chunks(chunk_size)
        .map(|c| {
            let mut v = Vec::with_capacity(chunk_size + TAG_LEN);
            v.extend_from_slice(c);
            v
        })
        .collect()
}

fn encrypt_chunks(
    key: &DataKey,
    rng: &mut StdRng,
    chunks: &mut [Vec<u8>],
    chunk_size: usize,
) -> [u8; HEADER_LEN] {
    let (mut enc, header) = EnvelopeEncryptor::new(key, rng, chunk_size).unwrap();
    let (last, rest) = chunks.split_last_mut().unwrap();
    for c in rest {
        c.truncate(chunk_size);
        enc.encrypt_next_in_place(c).unwrap();
    }
    last.truncate(last.len().min(chunk_size));
    enc.encrypt_last_in_place(last).unwrap();
    header
}

fn bench_size(c: &mut Criterion, size: usize) {
    let chunk_size = DEFAULT_CHUNK_SIZE;
    let mut rng = StdRng::seed_from_u64(1);
    let key = DataKey::generate(&mut rng);
    let mut data = vec![0u8; size];
    rng.fill_bytes(&mut data);

    let mut group = c.benchmark_group(format!("envelope/{}MiB", size / MIB));
    group.throughput(Throughput::Bytes(size as u64));
    if size >= 16 * MIB {
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
    } else {
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
    }
    let batch = if size >= 16 * MIB {
        BatchSize::PerIteration
    } else {
        BatchSize::LargeInput
    };

    let raw = XChaCha20Poly1305::new(Key::from_slice(key.expose()));
    let nonce = XNonce::from_slice(&[7; 24]);

    // ------------------------------------------------------------ encrypt
    let mut buf = data.clone();
    group.bench_function("raw/encrypt", |b| {
        b.iter(|| black_box(raw.encrypt_in_place_detached(nonce, b"", &mut buf).unwrap()))
    });
    drop(buf);

    let mut chunks = chunk_buffers(&data, chunk_size);
    group.bench_function("envelope-in-place/encrypt", |b| {
        b.iter(|| black_box(encrypt_chunks(&key, &mut rng, &mut chunks, chunk_size)))
    });

    group.bench_function("envelope-seal", |b| {
        b.iter(|| black_box(envelope::seal(&key, &mut rng, &data)))
    });

    // ------------------------------------------------------------ decrypt
    let mut sealed_raw = data.clone();
    let tag = raw
        .encrypt_in_place_detached(nonce, b"", &mut sealed_raw)
        .unwrap();
    group.bench_function("raw/decrypt", |b| {
        b.iter_batched_ref(
            || sealed_raw.clone(),
            |buf| {
                raw.decrypt_in_place_detached(nonce, b"", buf, &tag)
                    .unwrap()
            },
            batch,
        )
    });
    drop(sealed_raw);

    let mut chunks = chunk_buffers(&data, chunk_size);
    let header = encrypt_chunks(&key, &mut rng, &mut chunks, chunk_size);
    group.bench_function("envelope-in-place/decrypt", |b| {
        b.iter_batched_ref(
            || chunks.clone(),
            |chunks| {
                let mut dec = EnvelopeDecryptor::new(&key, &header).unwrap();
                let (last, rest) = chunks.split_last_mut().unwrap();
                for c in rest {
                    dec.decrypt_next_in_place(c).unwrap();
                }
                dec.decrypt_last_in_place(last).unwrap();
            },
            batch,
        )
    });
    drop(chunks);

    let sealed = envelope::seal(&key, &mut rng, &data);
    group.bench_function("envelope-open", |b| {
        b.iter(|| black_box(envelope::open(&key, &sealed).unwrap()))
    });
    group.finish();
}

fn envelope_throughput(c: &mut Criterion) {
    bench_size(c, MIB);
    bench_size(c, 64 * MIB);
}

criterion_group!(benches, envelope_throughput);
criterion_main!(benches);
