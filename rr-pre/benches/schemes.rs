//! The same [`PreScheme`] operations for every scheme, each next to the raw
//! crate calls it wraps, plus the scheme-independent envelope cost of a
//! record (seal and open, 1 KiB and 1 MiB).
//!
//! Each `schemes/<scheme>/<operation>` group has:
//! - `rr-pre`: the operation through the trait, on typed values;
//! - `raw`: the scheme crate's own calls for the same work (none for
//!   recrypt's `verify_capsule_frag`: recrypt checks a value only inside
//!   transform and decrypt).
//!
//! `schemes/<scheme>/reencrypt-bytes` is a replica's whole step through
//! `&dyn ReplicaScheme`: decode the capsule and the stored key fragment,
//! re-encrypt, encode, against the raw re-encryption alone.
//!
//! Absolute times on a shared machine drift with other tenants' load, which
//! swamps a few percent of overhead between two criterion runs made seconds
//! apart. So after criterion's groups, each scheme's pairs also run
//! interleaved (`rr-pre`, `raw`, `raw`, `rr-pre`, ...) and the bench prints
//! the median of the per-pair ratios, lines starting `paired`: load that
//! changes between pairs cancels out.
//!
//! Thresholds are each scheme's strictest: 2 of 3 for Umbral, 1 of 3 for
//! recrypt (single proxy). `cargo bench -p rr-pre --bench schemes -- --test`
//! runs every benchmark once, as CI does.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use rr_core::{DataKey, PreScheme, RecordId, SchemeId, Threshold, WireEncoding};
use rr_pre::conformance::{strictest_threshold, Flow};
use rr_pre::{envelope, Schemes, Umbral};

/// One scheme's values for the trait side, made once.
struct Fixture<P: PreScheme> {
    t: Threshold,
    f: Flow<P>,
    vkfrag: P::VerifiedKeyFrag,
    capsule_bytes: Vec<u8>,
    stored_kfrag: Vec<u8>,
}

impl<P: PreScheme> Fixture<P> {
    fn new(scheme: &P, rng: &mut StdRng) -> Self {
        let t = strictest_threshold(scheme);
        let f = Flow::run(scheme, rng, RecordId([1; 32]), t).unwrap();
        let vkfrag = scheme
            .verify_key_frag(f.kfrags[0].clone(), &f.record_pk, &f.grantee_pk)
            .unwrap();
        Self {
            t,
            capsule_bytes: f.capsule.to_bytes(),
            stored_kfrag: scheme.verified_key_frag_to_bytes(&vkfrag),
            f,
            vkfrag,
        }
    }

    fn group(&self, op: &str) -> String {
        format!("schemes/{}/{op}", P::ID.name())
    }

    fn m(&self) -> usize {
        usize::from(self.t.m)
    }
}

/// Whether criterion runs in `--test` mode (each benchmark once).
fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

/// One operation measured both ways: criterion's groups, then interleaved
/// pairs.
struct Compare<'a> {
    group: String,
    ours: Box<dyn FnMut() + 'a>,
    raw: Option<Box<dyn FnMut() + 'a>>,
}

fn compare<'a>(
    group: String,
    ours: impl FnMut() + 'a,
    raw: Option<Box<dyn FnMut() + 'a>>,
) -> Compare<'a> {
    Compare {
        group,
        ours: Box::new(ours),
        raw,
    }
}

fn raw<'a>(f: impl FnMut() + 'a) -> Option<Box<dyn FnMut() + 'a>> {
    Some(Box::new(f))
}

/// Runs criterion on every comparison, then the interleaved pairs, and
/// prints one `paired` line per comparison.
fn run(c: &mut Criterion, mut comparisons: Vec<Compare<'_>>) {
    for cmp in &mut comparisons {
        let mut g = c.benchmark_group(&cmp.group);
        g.bench_function("rr-pre", |b| b.iter(&mut cmp.ours));
        if let Some(raw) = &mut cmp.raw {
            g.bench_function("raw", |b| b.iter(&mut *raw));
        }
        g.finish();
    }
    let budget = if test_mode() {
        Duration::ZERO
    } else {
        Duration::from_secs(4)
    };
    for cmp in &mut comparisons {
        let Some(raw) = &mut cmp.raw else {
            continue;
        };
        let (ours_t, raw_t, ratio, n) = paired(&mut cmp.ours, raw, budget);
        println!(
            "paired {}: rr-pre {} raw {} overhead {:+.1}% ({n} pairs)",
            cmp.group,
            show(ours_t),
            show(raw_t),
            (ratio - 1.0) * 100.0
        );
    }
}

/// Interleaved pairs for about `budget` (at least 1 pair, at most 2000),
/// alternating which side goes first: the medians of each side and of the
/// per-pair ratios.
fn paired(
    ours: &mut dyn FnMut(),
    raw: &mut dyn FnMut(),
    budget: Duration,
) -> (Duration, Duration, f64, usize) {
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed()
    };
    // Warm both up.
    for _ in 0..3 {
        ours();
        raw();
    }
    let start = Instant::now();
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    while a.is_empty() || (start.elapsed() < budget && a.len() < 2000) {
        let (ta, tb) = if a.len() % 2 == 0 {
            let ta = time(ours);
            (ta, time(raw))
        } else {
            let tb = time(raw);
            (time(ours), tb)
        };
        ratios.push(ta.as_secs_f64() / tb.as_secs_f64());
        a.push(ta);
        b.push(tb);
    }
    a.sort();
    b.sort();
    ratios.sort_by(f64::total_cmp);
    let n = a.len();
    (a[n / 2], b[n / 2], ratios[n / 2], n)
}

fn show(d: Duration) -> String {
    if d >= Duration::from_millis(1) {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    }
}

fn umbral(c: &mut Criterion) {
    use umbral_pre::{SecretKey, Signer};
    let u = Umbral;
    let mut seeds = StdRng::seed_from_u64(1);
    let x = Fixture::new(&u, &mut seeds);
    let f = &x.f;
    let m = x.m();
    let schemes = Schemes::all();
    let replica = schemes.require(SchemeId::UMBRAL).unwrap();

    // The raw side: umbral-pre's own keys and values.
    let sk = SecretKey::random_with_rng(&mut seeds);
    let pk = sk.public_key();
    let signer = Signer::new(SecretKey::random_with_rng(&mut seeds));
    let verifying = signer.verifying_key();
    let bob_sk = SecretKey::random_with_rng(&mut seeds);
    let bob_pk = bob_sk.public_key();
    let (capsule, ct) = umbral_pre::encrypt_with_rng(&mut seeds, &pk, &[9; 32]).unwrap();
    let vkfrags =
        umbral_pre::generate_kfrags_with_rng(&mut seeds, &sk, &bob_pk, &signer, 2, 3, true, true);
    let vcfrags: Vec<_> = vkfrags
        .iter()
        .map(|k| umbral_pre::reencrypt_with_rng(&mut seeds, &capsule, k.clone()))
        .collect();
    let cfrag = vcfrags[0].clone().unverify();

    // Each closure owns its RNG, so both sides of a pair can be live.
    let rng = |seed| StdRng::seed_from_u64(seed);
    let (mut r1, mut r2, mut r3, mut r4) = (rng(1), rng(2), rng(3), rng(4));
    let (mut q1, mut q2, mut q3, mut q4) = (rng(6), rng(7), rng(8), rng(9));
    let comparisons = vec![
        compare(
            x.group("encapsulate"),
            || {
                black_box(u.encapsulate(&mut r1, &f.record_pk).unwrap());
            },
            // The trait draws a fresh 32-byte key and wraps it.
            raw(|| {
                let mut key = [0u8; 32];
                q1.fill_bytes(&mut key);
                black_box(umbral_pre::encrypt_with_rng(&mut q1, &pk, &key).unwrap());
            }),
        ),
        compare(
            x.group("open"),
            || {
                black_box(u.open(&f.record_sk, &f.capsule).unwrap());
            },
            raw(|| {
                black_box(umbral_pre::decrypt_original(&sk, &capsule, &ct).unwrap());
            }),
        ),
        compare(
            x.group("delegate-2-of-3"),
            || {
                black_box(
                    u.delegate(&mut r2, &f.record_sk, &f.grantee_pk, x.t)
                        .unwrap(),
                );
            },
            raw(|| {
                black_box(umbral_pre::generate_kfrags_with_rng(
                    &mut q2, &sk, &bob_pk, &signer, 2, 3, true, true,
                ));
            }),
        ),
        compare(
            x.group("reencrypt"),
            || {
                black_box(u.reencrypt(&mut r3, &f.capsule, &x.vkfrag).unwrap());
            },
            raw(|| {
                black_box(umbral_pre::reencrypt_with_rng(
                    &mut q3,
                    &capsule,
                    vkfrags[0].clone(),
                ));
            }),
        ),
        compare(
            x.group("reencrypt-bytes"),
            || {
                black_box(
                    replica
                        .reencrypt(&mut r4, &x.capsule_bytes, &x.stored_kfrag)
                        .unwrap(),
                );
            },
            raw(|| {
                black_box(umbral_pre::reencrypt_with_rng(
                    &mut q4,
                    &capsule,
                    vkfrags[0].clone(),
                ));
            }),
        ),
        compare(
            x.group("verify_capsule_frag"),
            || {
                black_box(
                    u.verify_capsule_frag(
                        f.cfrags[0].clone(),
                        &f.capsule,
                        &f.record_pk,
                        &f.grantee_pk,
                    )
                    .unwrap(),
                );
            },
            raw(|| {
                black_box(
                    cfrag
                        .clone()
                        .verify(&capsule, &verifying, &pk, &bob_pk)
                        .unwrap(),
                );
            }),
        ),
        compare(
            x.group("open_reencrypted-2-of-3"),
            || {
                black_box(f.grantee_opens(&u, black_box(&f.verified[..m])).unwrap());
            },
            raw(|| {
                black_box(
                    umbral_pre::decrypt_reencrypted(
                        &bob_sk,
                        &pk,
                        &capsule,
                        black_box(&vcfrags[..2]).iter().cloned(),
                        &ct,
                    )
                    .unwrap(),
                );
            }),
        ),
    ];
    run(c, comparisons);
}

#[cfg(feature = "recrypt")]
fn recrypt(c: &mut Criterion) {
    use recrypt::api::{CryptoOps, Ed25519Ops, KeyGenOps};
    let r = rr_pre::Recrypt;
    let mut seeds = StdRng::seed_from_u64(1);
    let x = Fixture::new(&r, &mut seeds);
    let f = &x.f;
    let m = x.m();
    let schemes = Schemes::all();
    let replica = schemes.require(SchemeId::RECRYPT).unwrap();

    // The raw side: recrypt's own engine and RNG, made once as its docs
    // advise, and its own keys and values.
    let api = recrypt::api::Recrypt::new();
    let (sk, pk) = api.generate_key_pair().unwrap();
    let signer = api.generate_ed25519_key_pair();
    let proxy = api.generate_ed25519_key_pair();
    let (bob_sk, bob_pk) = api.generate_key_pair().unwrap();
    let plaintext = api.gen_plaintext();
    let capsule = api.encrypt(&plaintext, &pk, &signer).unwrap();
    let tk = api.generate_transform_key(&sk, &bob_pk, &signer).unwrap();
    let transformed = api.transform(capsule.clone(), tk.clone(), &proxy).unwrap();

    let rng = |seed| StdRng::seed_from_u64(seed);
    let (mut r1, mut r2, mut r3, mut r4) = (rng(1), rng(2), rng(3), rng(4));
    let comparisons = vec![
        compare(
            x.group("encapsulate"),
            || {
                black_box(r.encapsulate(&mut r1, &f.record_pk).unwrap());
            },
            // Per capsule: a plaintext, a one-time signing key, the
            // encryption, the data key.
            raw(|| {
                let pt = api.gen_plaintext();
                let one_time = api.generate_ed25519_key_pair();
                black_box(api.encrypt(&pt, &pk, &one_time).unwrap());
                black_box(api.derive_symmetric_key(&pt));
            }),
        ),
        compare(
            x.group("open"),
            || {
                black_box(r.open(&f.record_sk, &f.capsule).unwrap());
            },
            raw(|| {
                black_box(api.derive_symmetric_key(&api.decrypt(capsule.clone(), &sk).unwrap()));
            }),
        ),
        compare(
            x.group("delegate-1-of-3"),
            || {
                black_box(
                    r.delegate(&mut r2, &f.record_sk, &f.grantee_pk, x.t)
                        .unwrap(),
                );
            },
            raw(|| {
                black_box(api.generate_transform_key(&sk, &bob_pk, &signer).unwrap());
            }),
        ),
        compare(
            x.group("reencrypt"),
            || {
                black_box(r.reencrypt(&mut r3, &f.capsule, &x.vkfrag).unwrap());
            },
            raw(|| {
                black_box(api.transform(capsule.clone(), tk.clone(), &proxy).unwrap());
            }),
        ),
        compare(
            x.group("reencrypt-bytes"),
            || {
                black_box(
                    replica
                        .reencrypt(&mut r4, &x.capsule_bytes, &x.stored_kfrag)
                        .unwrap(),
                );
            },
            raw(|| {
                black_box(api.transform(capsule.clone(), tk.clone(), &proxy).unwrap());
            }),
        ),
        // recrypt has no standalone check of a transformed value (it checks
        // the signature inside transform and decrypt): no raw side.
        compare(
            x.group("verify_capsule_frag"),
            || {
                black_box(
                    r.verify_capsule_frag(
                        f.cfrags[0].clone(),
                        &f.capsule,
                        &f.record_pk,
                        &f.grantee_pk,
                    )
                    .unwrap(),
                );
            },
            None,
        ),
        compare(
            x.group("open_reencrypted-1-of-3"),
            || {
                black_box(f.grantee_opens(&r, black_box(&f.verified[..m])).unwrap());
            },
            raw(|| {
                black_box(
                    api.derive_symmetric_key(&api.decrypt(transformed.clone(), &bob_sk).unwrap()),
                );
            }),
        ),
    ];
    run(c, comparisons);

    // What the trait adds per call, on its own: a recrypt engine seeded from
    // the caller's RNG (recrypt takes a rand 0.10 generator), and one
    // Ed25519 signature and verification of our own.
    let mut g = c.benchmark_group("schemes/recrypt/framework-parts");
    g.bench_function("engine-from-caller-rng", |b| {
        b.iter(|| {
            use rand_chacha::rand_core::SeedableRng as _;
            let mut seed = [0u8; 32];
            seeds.fill_bytes(&mut seed);
            recrypt::api::Recrypt::new_with_rand(rand_chacha::ChaCha20Rng::from_seed(seed))
        })
    });
    let dalek = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let message = [5u8; 600];
    let signature = ed25519_dalek::Signer::sign(&dalek, &message);
    g.bench_function("ed25519-sign", |b| {
        b.iter(|| ed25519_dalek::Signer::sign(&dalek, black_box(&message)))
    });
    g.bench_function("ed25519-verify", |b| {
        b.iter(|| {
            dalek
                .verifying_key()
                .verify_strict(black_box(&message), &signature)
                .unwrap()
        })
    });
    g.finish();
}

#[cfg(not(feature = "recrypt"))]
fn recrypt(_: &mut Criterion) {}

/// The envelope cost of a record: seal and open, 1 KiB and 1 MiB, the same
/// whichever scheme holds its key.
fn envelope(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(3);
    let key = DataKey::generate(&mut rng);
    for (label, size) in [("1KiB", 1024), ("1MiB", 1024 * 1024)] {
        let mut data = vec![0u8; size];
        rng.fill_bytes(&mut data);
        let sealed = envelope::seal(&key, &mut rng, &data);
        let mut g = c.benchmark_group(format!("schemes/envelope/{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function("seal", |b| {
            b.iter(|| envelope::seal(&key, &mut rng, black_box(&data)))
        });
        g.bench_function("open", |b| {
            b.iter(|| envelope::open(&key, black_box(&sealed)).unwrap())
        });
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = umbral, recrypt, envelope
}
criterion_main!(benches);
