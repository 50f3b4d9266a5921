//! Every [`PreScheme`] operation through [`Umbral`] next to the raw
//! umbral-pre call it wraps, one group per operation.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rr_core::{PreScheme, RecordId, Threshold};
use rr_pre::Umbral;
use umbral_pre::{SecretKey, Signer};

const U: Umbral = Umbral;

fn umbral_ops(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let t23 = Threshold::new(2, 3).unwrap();
    let t11 = Threshold::new(1, 1).unwrap();

    // Through the trait.
    let alice = U.generate_master(&mut rng);
    let (record_sk, record_pk) = U.record_key(&alice, &RecordId([1; 32]));
    let bob = U.generate_master(&mut rng);
    let (bob_sk, bob_pk) = U.account_key(&bob);
    let (capsule, _) = U.encapsulate(&mut rng, &record_pk).unwrap();
    let kfrags = U.delegate(&mut rng, &record_sk, &bob_pk, t23).unwrap();
    let vkfrags: Vec<_> = kfrags
        .iter()
        .map(|k| U.verify_key_frag(k.clone(), &record_pk, &bob_pk).unwrap())
        .collect();
    let cfrags: Vec<_> = vkfrags
        .iter()
        .map(|k| U.reencrypt(&mut rng, &capsule, k).unwrap())
        .collect();
    let vcfrags: Vec<_> = cfrags
        .iter()
        .map(|cf| {
            U.verify_capsule_frag(cf.clone(), &capsule, &record_pk, &bob_pk)
                .unwrap()
        })
        .collect();

    // Raw umbral-pre.
    let r_sk = SecretKey::random_with_rng(&mut rng);
    let r_pk = r_sk.public_key();
    let r_signer = Signer::new(SecretKey::random_with_rng(&mut rng));
    let r_verifying = r_signer.verifying_key();
    let r_bob_sk = SecretKey::random_with_rng(&mut rng);
    let r_bob_pk = r_bob_sk.public_key();
    let (r_capsule, r_ct) = umbral_pre::encrypt_with_rng(&mut rng, &r_pk, &[9; 32]).unwrap();
    let r_vkfrags = umbral_pre::generate_kfrags_with_rng(
        &mut rng, &r_sk, &r_bob_pk, &r_signer, 2, 3, true, true,
    );
    let r_kfrags: Vec<_> = r_vkfrags.iter().map(|k| k.clone().unverify()).collect();
    let r_vcfrags: Vec<_> = r_vkfrags
        .iter()
        .map(|k| umbral_pre::reencrypt_with_rng(&mut rng, &r_capsule, k.clone()))
        .collect();
    let r_cfrags: Vec<_> = r_vcfrags.iter().map(|c| c.clone().unverify()).collect();

    let mut g = c.benchmark_group("umbral/encapsulate");
    g.bench_function("rr-pre", |b| {
        b.iter(|| U.encapsulate(&mut rng, &record_pk).unwrap())
    });
    g.bench_function("umbral-pre", |b| {
        b.iter(|| umbral_pre::encrypt_with_rng(&mut rng, &r_pk, &[9; 32]).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("umbral/open");
    g.bench_function("rr-pre", |b| {
        b.iter(|| U.open(&record_sk, &capsule).unwrap())
    });
    g.bench_function("umbral-pre", |b| {
        b.iter(|| umbral_pre::decrypt_original(&r_sk, &r_capsule, &r_ct).unwrap())
    });
    g.finish();

    for (t, name) in [
        (t11, "umbral/delegate-1-of-1"),
        (t23, "umbral/delegate-2-of-3"),
    ] {
        let mut g = c.benchmark_group(name);
        g.bench_function("rr-pre", |b| {
            b.iter(|| U.delegate(&mut rng, &record_sk, &bob_pk, t).unwrap())
        });
        g.bench_function("umbral-pre", |b| {
            b.iter(|| {
                umbral_pre::generate_kfrags_with_rng(
                    &mut rng,
                    &r_sk,
                    &r_bob_pk,
                    &r_signer,
                    t.m.into(),
                    t.n.into(),
                    true,
                    true,
                )
            })
        });
        g.finish();
    }

    let mut g = c.benchmark_group("umbral/verify_key_frag");
    g.bench_function("rr-pre", |b| {
        b.iter_batched(
            || kfrags[0].clone(),
            |k| U.verify_key_frag(k, &record_pk, &bob_pk).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("umbral-pre", |b| {
        b.iter_batched(
            || r_kfrags[0].clone(),
            |k| {
                k.verify(&r_verifying, Some(&r_pk), Some(&r_bob_pk))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("umbral/reencrypt");
    g.bench_function("rr-pre", |b| {
        b.iter(|| U.reencrypt(&mut rng, &capsule, &vkfrags[0]).unwrap())
    });
    g.bench_function("umbral-pre", |b| {
        b.iter_batched(
            || r_vkfrags[0].clone(),
            |k| umbral_pre::reencrypt_with_rng(&mut rng, &r_capsule, k),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("umbral/verify_capsule_frag");
    g.bench_function("rr-pre", |b| {
        b.iter_batched(
            || cfrags[0].clone(),
            |cf| {
                U.verify_capsule_frag(cf, &capsule, &record_pk, &bob_pk)
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("umbral-pre", |b| {
        b.iter_batched(
            || r_cfrags[0].clone(),
            |cf| {
                cf.verify(&r_capsule, &r_verifying, &r_pk, &r_bob_pk)
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("umbral/open_reencrypted-2-of-3");
    g.bench_function("rr-pre", |b| {
        b.iter(|| {
            U.open_reencrypted(&bob_sk, &record_pk, &capsule, black_box(&vcfrags[..2]))
                .unwrap()
        })
    });
    g.bench_function("umbral-pre", |b| {
        b.iter(|| {
            umbral_pre::decrypt_reencrypted(
                &r_bob_sk,
                &r_pk,
                &r_capsule,
                black_box(&r_vcfrags[..2]).iter().cloned(),
                &r_ct,
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, umbral_ops);
criterion_main!(benches);
