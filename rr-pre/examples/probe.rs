//! Temporary probe.
use chacha20poly1305::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use rr_core::DataKey;
use rr_pre::envelope::{EnvelopeEncryptor, TAG_LEN};
use std::time::Instant;

fn time(name: &str, size: usize, iters: usize, mut f: impl FnMut()) {
    f();
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{name:<40} {:.3} GiB/s",
        size as f64 * iters as f64 / s / (1u64 << 30) as f64
    );
}

fn main() {
    let mut rng = StdRng::seed_from_u64(1);
    let key = DataKey::generate(&mut rng);
    let size = 1usize << 20;
    let cs = 1usize << 20;
    let iters = 3000;
    let mut data = vec![0u8; size];
    rng.fill_bytes(&mut data);
    let raw = XChaCha20Poly1305::new(Key::from_slice(key.expose()));
    let nonce = XNonce::from_slice(&[7; 24]);
    let hdr = [3u8; 28];
    let mut v = Vec::with_capacity(size + TAG_LEN);
    v.extend_from_slice(&data);
    let stream: StreamBE32<XChaCha20Poly1305> =
        StreamBE32::from_aead(raw.clone(), (&[5u8; 19]).into());
    for _ in 0..2 {
        time("A raw detached", size, iters, || {
            std::hint::black_box(
                raw.encrypt_in_place_detached(nonce, b"", &mut data)
                    .unwrap(),
            );
        });
        time("B raw detached aad28", size, iters, || {
            std::hint::black_box(
                raw.encrypt_in_place_detached(nonce, &hdr, &mut data)
                    .unwrap(),
            );
        });
        time("C raw encrypt_in_place vec", size, iters, || {
            v.truncate(size);
            raw.encrypt_in_place(nonce, &hdr, &mut v).unwrap();
        });
        time("C2 raw detached on vec", size, iters, || {
            v.truncate(size);
            std::hint::black_box(raw.encrypt_in_place_detached(nonce, &hdr, &mut v).unwrap());
        });
        time("D StreamBE32", size, iters, || {
            v.truncate(size);
            stream.encrypt_in_place(0, true, &hdr, &mut v).unwrap();
        });
        time("E EnvelopeEncryptor", size, iters, || {
            v.truncate(size);
            let (e, _) = EnvelopeEncryptor::new(&key, &mut rng, cs).unwrap();
            e.encrypt_last_in_place(&mut v).unwrap();
        });
        time("F raw detached on data", size, iters, || {
            std::hint::black_box(
                raw.encrypt_in_place_detached(nonce, b"", &mut data)
                    .unwrap(),
            );
        });
        println!();
    }
}
