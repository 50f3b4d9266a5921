//! What is particular to the Umbral [`PreScheme`]: exact errors, thresholds,
//! encodings, redaction. What every scheme shares (round trips, any m of n
//! opening, 1 of 1) is in the conformance suite (`tests/conformance.rs`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rr_core::{DataKey, PreError, PreScheme, RecordId, Threshold, WireEncoding};
use rr_pre::umbral::{
    Umbral, UmbralCapsule, UmbralCapsuleFrag, UmbralKeyFrag, UmbralPublicKey,
    UmbralVerifiedCapsuleFrag,
};

const U: Umbral = Umbral;

fn rng() -> StdRng {
    StdRng::seed_from_u64(0x5eed)
}

fn t(m: u16, n: u16) -> Threshold {
    Threshold::new(m, n).unwrap()
}

fn malformed(e: PreError) -> bool {
    matches!(
        e,
        PreError::Malformed {
            scheme: "umbral",
            ..
        }
    )
}

/// Alice's record key, a capsule under it, Bob's account key, and a 2-of-3
/// delegation with its three verified capsule fragments.
struct Fixture {
    record_sk: <Umbral as PreScheme>::SecretKey,
    record_pk: UmbralPublicKey,
    capsule: UmbralCapsule,
    data_key: DataKey,
    bob_sk: <Umbral as PreScheme>::SecretKey,
    bob_pk: UmbralPublicKey,
    kfrags: Vec<UmbralKeyFrag>,
    cfrags: Vec<UmbralVerifiedCapsuleFrag>,
}

fn fixture(rng: &mut StdRng, record: RecordId) -> Fixture {
    let alice = U.generate_master(rng);
    let (record_sk, record_pk) = U.record_key(&alice, &record);
    let (capsule, data_key) = U.encapsulate(rng, &record_pk).unwrap();
    let bob = U.generate_master(rng);
    let (bob_sk, bob_pk) = U.account_key(&bob);
    let kfrags = U.delegate(rng, &record_sk, &bob_pk, t(2, 3)).unwrap();
    let cfrags = kfrags
        .iter()
        .map(|k| {
            let vk = U.verify_key_frag(k.clone(), &record_pk, &bob_pk).unwrap();
            let cfrag = U.reencrypt(rng, &capsule, &vk).unwrap();
            U.verify_capsule_frag(cfrag, &capsule, &record_pk, &bob_pk)
                .unwrap()
        })
        .collect();
    Fixture {
        record_sk,
        record_pk,
        capsule,
        data_key,
        bob_sk,
        bob_pk,
        kfrags,
        cfrags,
    }
}

#[test]
fn another_key_does_not_open_a_capsule() {
    let mut rng = rng();
    let f = fixture(&mut rng, RecordId([1; 32]));
    assert_eq!(
        U.open(&f.bob_sk, &f.capsule).unwrap_err(),
        PreError::OpenFailed
    );
}

#[test]
fn one_of_two_needed_does_not_open() {
    let mut rng = rng();
    let f = fixture(&mut rng, RecordId([3; 32]));
    for cfrag in &f.cfrags {
        let err = U
            .open_reencrypted(
                &f.bob_sk,
                &f.record_pk,
                &f.capsule,
                std::slice::from_ref(cfrag),
            )
            .unwrap_err();
        assert_eq!(err, PreError::OpenFailed);
    }
    // The same fragment twice is still one fragment.
    let twice = [f.cfrags[0].clone(), f.cfrags[0].clone()];
    assert_eq!(
        U.open_reencrypted(&f.bob_sk, &f.record_pk, &f.capsule, &twice)
            .unwrap_err(),
        PreError::OpenFailed
    );
    assert_eq!(
        U.open_reencrypted(&f.bob_sk, &f.record_pk, &f.capsule, &[])
            .unwrap_err(),
        PreError::NotEnoughFragments { have: 0, need: 1 }
    );
}

#[test]
fn wrong_grantee_key_fails_verification() {
    let mut rng = rng();
    let f = fixture(&mut rng, RecordId([5; 32]));
    let carol = U.generate_master(&mut rng);
    let (carol_sk, carol_pk) = U.account_key(&carol);
    for k in &f.kfrags {
        assert_eq!(
            U.verify_key_frag(k.clone(), &f.record_pk, &carol_pk)
                .unwrap_err(),
            PreError::InvalidKeyFrag
        );
    }
    let cfrag = f.cfrags[0].clone().unverify();
    assert_eq!(
        U.verify_capsule_frag(cfrag, &f.capsule, &f.record_pk, &carol_pk)
            .unwrap_err(),
        PreError::InvalidCapsuleFrag
    );
    // Carol cannot open with Bob's fragments either.
    assert_eq!(
        U.open_reencrypted(&carol_sk, &f.record_pk, &f.capsule, &f.cfrags[..2])
            .unwrap_err(),
        PreError::OpenFailed
    );
}

#[test]
fn wrong_record_key_fails_verification() {
    let mut rng = rng();
    let f = fixture(&mut rng, RecordId([6; 32]));
    let g = fixture(&mut rng, RecordId([7; 32]));
    assert_eq!(
        U.verify_key_frag(f.kfrags[0].clone(), &g.record_pk, &f.bob_pk)
            .unwrap_err(),
        PreError::InvalidKeyFrag
    );
    // An account key where a record key is needed.
    assert!(malformed(
        U.verify_key_frag(f.kfrags[0].clone(), &f.bob_pk, &f.bob_pk)
            .unwrap_err()
    ));
    assert!(malformed(
        U.verify_capsule_frag(
            f.cfrags[0].clone().unverify(),
            &f.capsule,
            &f.bob_pk,
            &f.bob_pk
        )
        .unwrap_err()
    ));
    assert!(malformed(
        U.delegate(&mut rng, &f.bob_sk, &g.bob_pk, t(1, 1))
            .unwrap_err()
    ));
}

#[test]
fn cfrags_of_one_record_do_not_open_another() {
    let mut rng = rng();
    let alice = U.generate_master(&mut rng);
    let bob = U.generate_master(&mut rng);
    let (bob_sk, bob_pk) = U.account_key(&bob);
    let (sk_a, pk_a) = U.record_key(&alice, &RecordId([10; 32]));
    let (_, pk_b) = U.record_key(&alice, &RecordId([11; 32]));
    let (capsule_a, _) = U.encapsulate(&mut rng, &pk_a).unwrap();
    let (capsule_b, _) = U.encapsulate(&mut rng, &pk_b).unwrap();
    let kfrags = U.delegate(&mut rng, &sk_a, &bob_pk, t(2, 3)).unwrap();

    let mut verified_a = Vec::new();
    for k in kfrags {
        let vk = U.verify_key_frag(k, &pk_a, &bob_pk).unwrap();
        // Record A's fragments re-encrypt record B's capsule into fragments
        // that do not verify against B, nor against A with B's capsule.
        let cfrag_b = U.reencrypt(&mut rng, &capsule_b, &vk).unwrap();
        assert_eq!(
            U.verify_capsule_frag(cfrag_b.clone(), &capsule_b, &pk_b, &bob_pk)
                .unwrap_err(),
            PreError::InvalidCapsuleFrag
        );
        assert_eq!(
            U.verify_capsule_frag(cfrag_b, &capsule_a, &pk_a, &bob_pk)
                .unwrap_err(),
            PreError::InvalidCapsuleFrag
        );
        let cfrag_a = U.reencrypt(&mut rng, &capsule_a, &vk).unwrap();
        assert_eq!(
            U.verify_capsule_frag(cfrag_a.clone(), &capsule_b, &pk_b, &bob_pk)
                .unwrap_err(),
            PreError::InvalidCapsuleFrag
        );
        verified_a.push(
            U.verify_capsule_frag(cfrag_a, &capsule_a, &pk_a, &bob_pk)
                .unwrap(),
        );
    }
    // Verified fragments of A, used for B, open nothing.
    assert_eq!(
        U.open_reencrypted(&bob_sk, &pk_b, &capsule_b, &verified_a)
            .unwrap_err(),
        PreError::OpenFailed
    );
    assert_eq!(
        U.open_reencrypted(&bob_sk, &pk_a, &capsule_b, &verified_a)
            .unwrap_err(),
        PreError::OpenFailed
    );
}

#[test]
fn record_keys_are_per_record_and_deterministic() {
    let mut rng = rng();
    let alice = U.generate_master(&mut rng);
    let (_, a1) = U.record_key(&alice, &RecordId([1; 32]));
    let (_, a2) = U.record_key(&alice, &RecordId([1; 32]));
    let (_, b) = U.record_key(&alice, &RecordId([2; 32]));
    let (_, account) = U.account_key(&alice);
    assert_eq!(a1, a2);
    assert_ne!(a1.key(), b.key());
    assert_ne!(a1.verifying_key(), b.verifying_key());
    assert_ne!(a1.key(), account.key());
    assert_ne!(a1.key(), a1.verifying_key().unwrap());
    assert!(a1.is_record_key() && !account.is_record_key());
    assert_eq!(U.account_key(&alice).1, account);

    // The same seed gives the same keys; another master gives others.
    let restored = U.master_from_bytes(&U.master_to_bytes(&alice)).unwrap();
    assert_eq!(U.record_key(&restored, &RecordId([1; 32])).1, a1);
    assert_eq!(U.account_key(&restored).1, account);
    let other = U.generate_master(&mut rng);
    assert_ne!(U.record_key(&other, &RecordId([1; 32])).1, a1);
}

#[test]
fn master_secret_bytes() {
    let mut rng = rng();
    let alice = U.generate_master(&mut rng);
    let bytes = U.master_to_bytes(&alice);
    assert_eq!(bytes.len(), 32);
    let restored = U.master_from_bytes(&bytes).unwrap();
    assert_eq!(*U.master_to_bytes(&restored), *bytes);
    for len in [0, 1, 31, 33, 64] {
        assert!(
            malformed(U.master_from_bytes(&vec![7; len]).unwrap_err()),
            "length {len}"
        );
    }
}

#[test]
fn thresholds() {
    for (m, n) in [(1, 1), (2, 3), (3, 3), (1, 255), (255, 255)] {
        assert_eq!(U.check_threshold(Threshold { m, n }), Ok(()), "{m} of {n}");
    }
    for (m, n) in [(0, 3), (0, 0), (4, 3), (1, 256), (300, 300)] {
        assert!(
            matches!(U.check_threshold(Threshold { m, n }), Err(PreError::BadThreshold { m: mm, n: nn, .. }) if mm == m && nn == n),
            "{m} of {n}"
        );
    }
    let mut rng = rng();
    let f = fixture(&mut rng, RecordId([9; 32]));
    assert!(matches!(
        U.delegate(&mut rng, &f.record_sk, &f.bob_pk, Threshold { m: 0, n: 2 }),
        Err(PreError::BadThreshold { .. })
    ));
}

fn flip_each_byte(bytes: &[u8]) -> impl Iterator<Item = (usize, Vec<u8>)> + '_ {
    (0..bytes.len()).map(|i| {
        let mut b = bytes.to_vec();
        b[i] ^= 0x01;
        (i, b)
    })
}

#[test]
fn tampered_capsule_is_detected() {
    let mut rng = rng();
    let f = fixture(&mut rng, RecordId([12; 32]));
    let bytes = f.capsule.to_bytes();
    let (mut refused, mut failed) = (0, 0);
    for (i, b) in flip_each_byte(&bytes) {
        match UmbralCapsule::from_bytes(&b) {
            Err(e) => {
                assert!(malformed(e), "byte {i}");
                refused += 1;
            }
            Ok(c) => {
                assert_eq!(
                    U.open(&f.record_sk, &c).unwrap_err(),
                    PreError::OpenFailed,
                    "byte {i}"
                );
                assert_eq!(
                    U.open_reencrypted(&f.bob_sk, &f.record_pk, &c, &f.cfrags)
                        .unwrap_err(),
                    PreError::OpenFailed,
                    "byte {i}"
                );
                failed += 1;
            }
        }
    }
    // Both paths are exercised: the umbral capsule refuses to decode, the
    // wrapped key fails to open.
    assert!(
        refused > 0 && failed > 0,
        "{refused} refused, {failed} failed"
    );
}

#[test]
fn tampered_key_frag_is_detected() {
    let mut rng = rng();
    let f = fixture(&mut rng, RecordId([13; 32]));
    let bytes = f.kfrags[0].to_bytes();
    let (mut refused, mut rejected_by_proxy, mut rejected_by_grantee) = (0, 0, 0);
    for (i, b) in flip_each_byte(&bytes) {
        let k = match UmbralKeyFrag::from_bytes(&b) {
            Err(e) => {
                assert!(malformed(e), "byte {i}");
                refused += 1;
                continue;
            }
            Ok(k) => k,
        };
        let vk = match U.verify_key_frag(k, &f.record_pk, &f.bob_pk) {
            Err(e) => {
                assert_eq!(e, PreError::InvalidKeyFrag, "byte {i}");
                rejected_by_proxy += 1;
                continue;
            }
            Ok(vk) => vk,
        };
        // The proxy checks the signature meant for it; the one meant for the
        // grantee travels in the capsule fragment and is checked by the grantee.
        let cfrag = U.reencrypt(&mut rng, &f.capsule, &vk).unwrap();
        assert_eq!(
            U.verify_capsule_frag(cfrag, &f.capsule, &f.record_pk, &f.bob_pk)
                .unwrap_err(),
            PreError::InvalidCapsuleFrag,
            "byte {i}"
        );
        rejected_by_grantee += 1;
    }
    assert_eq!(
        refused + rejected_by_proxy + rejected_by_grantee,
        bytes.len()
    );
    assert!(
        refused > 0 && rejected_by_proxy > 0,
        "{refused} refused, {rejected_by_proxy} rejected"
    );
}

#[test]
fn tampered_capsule_frag_is_detected() {
    let mut rng = rng();
    let f = fixture(&mut rng, RecordId([14; 32]));
    let bytes = f.cfrags[0].clone().unverify().to_bytes();
    for (i, b) in flip_each_byte(&bytes) {
        match UmbralCapsuleFrag::from_bytes(&b) {
            Err(e) => assert!(malformed(e), "byte {i}"),
            Ok(c) => assert_eq!(
                U.verify_capsule_frag(c, &f.capsule, &f.record_pk, &f.bob_pk)
                    .unwrap_err(),
                PreError::InvalidCapsuleFrag,
                "byte {i}"
            ),
        }
    }
}

#[test]
fn tampered_public_key_is_refused_or_different() {
    let mut rng = rng();
    let f = fixture(&mut rng, RecordId([15; 32]));
    let bytes = f.record_pk.to_bytes();
    for (i, b) in flip_each_byte(&bytes) {
        match UmbralPublicKey::from_bytes(&b) {
            Err(e) => assert!(malformed(e), "byte {i}"),
            Ok(pk) => {
                assert_ne!(pk, f.record_pk, "byte {i}");
                if pk.is_record_key() {
                    assert_eq!(
                        U.verify_key_frag(f.kfrags[0].clone(), &pk, &f.bob_pk)
                            .unwrap_err(),
                        PreError::InvalidKeyFrag,
                        "byte {i}"
                    );
                }
            }
        }
    }
}

/// Garbage of every kind for one encoding: all refused as malformed.
fn assert_refuses_garbage<T: WireEncoding>(valid: &[u8], rng: &mut StdRng) {
    let mut cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![1],
        vec![0; valid.len()],
        vec![0xff; valid.len()],
    ];
    for _ in 0..8 {
        let len = rng.gen_range(0..valid.len() * 2);
        cases.push((0..len).map(|_| rng.gen()).collect());
        // The right version byte, then noise.
        let mut v: Vec<u8> = (0..valid.len()).map(|_| rng.gen()).collect();
        v[0] = 1;
        cases.push(v);
    }
    for cut in [1, 2, valid.len() / 2, valid.len() - 1] {
        cases.push(valid[..cut].to_vec());
    }
    for version in [0u8, 2, 0xff] {
        let mut v = valid.to_vec();
        v[0] = version;
        cases.push(v);
    }
    let mut trailing = valid.to_vec();
    trailing.push(0);
    cases.push(trailing);
    for (i, case) in cases.iter().enumerate() {
        match T::from_bytes(case) {
            Err(e) => assert!(malformed(e.clone()), "case {i}: {e:?}"),
            Ok(_) => panic!("case {i} decoded: {case:02x?}"),
        }
    }
}

#[test]
fn encodings_round_trip_and_refuse_garbage() {
    let mut rng = rng();
    let f = fixture(&mut rng, RecordId([16; 32]));

    for pk in [&f.record_pk, &f.bob_pk] {
        let bytes = pk.to_bytes();
        assert_eq!(bytes.len(), if pk.is_record_key() { 68 } else { 35 });
        assert_eq!(&UmbralPublicKey::from_bytes(&bytes).unwrap(), pk);
        assert_refuses_garbage::<UmbralPublicKey>(&bytes, &mut rng);
    }
    // A record key cut to an account key's length, and the tags swapped.
    let rec = f.record_pk.to_bytes();
    let mut as_account = rec[..35].to_vec();
    assert_eq!(
        UmbralPublicKey::from_bytes(&as_account)
            .err()
            .map(malformed),
        Some(true)
    );
    as_account[1] = 0;
    assert_eq!(
        UmbralPublicKey::from_bytes(&as_account).unwrap().key(),
        f.record_pk.key()
    );
    let mut acct = f.bob_pk.to_bytes();
    acct[1] = 1;
    assert_eq!(
        UmbralPublicKey::from_bytes(&acct).err().map(malformed),
        Some(true)
    );

    let bytes = f.capsule.to_bytes();
    assert_eq!(UmbralCapsule::from_bytes(&bytes).unwrap(), f.capsule);
    assert_refuses_garbage::<UmbralCapsule>(&bytes, &mut rng);

    let bytes = f.kfrags[0].to_bytes();
    assert_eq!(UmbralKeyFrag::from_bytes(&bytes).unwrap(), f.kfrags[0]);
    assert_refuses_garbage::<UmbralKeyFrag>(&bytes, &mut rng);

    let cfrag = f.cfrags[0].clone().unverify();
    let bytes = cfrag.to_bytes();
    assert_eq!(UmbralCapsuleFrag::from_bytes(&bytes).unwrap(), cfrag);
    assert_refuses_garbage::<UmbralCapsuleFrag>(&bytes, &mut rng);
}

#[test]
fn verified_key_frag_store_round_trip() {
    let mut rng = rng();
    let f = fixture(&mut rng, RecordId([17; 32]));
    let vk = U
        .verify_key_frag(f.kfrags[1].clone(), &f.record_pk, &f.bob_pk)
        .unwrap();
    let bytes = U.verified_key_frag_to_bytes(&vk);
    let restored = U.verified_key_frag_from_trusted_bytes(&bytes).unwrap();
    assert_eq!(restored, vk);
    // The stored form is the key fragment's own encoding.
    assert_eq!(bytes, f.kfrags[1].to_bytes());
    let cfrag = U.reencrypt(&mut rng, &f.capsule, &restored).unwrap();
    let vc = U
        .verify_capsule_frag(cfrag, &f.capsule, &f.record_pk, &f.bob_pk)
        .unwrap();
    let key = U
        .open_reencrypted(
            &f.bob_sk,
            &f.record_pk,
            &f.capsule,
            &[f.cfrags[0].clone(), vc],
        )
        .unwrap();
    assert_eq!(key.expose(), f.data_key.expose());

    for garbage in [&[][..], &[1], &bytes[..bytes.len() - 1], &[2; 40]] {
        assert!(malformed(
            U.verified_key_frag_from_trusted_bytes(garbage).unwrap_err()
        ));
    }
}

#[test]
fn debug_shows_no_secrets() {
    let mut rng = rng();
    let alice = U.generate_master(&mut rng);
    let seed_hex: String = U
        .master_to_bytes(&alice)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (record_sk, _) = U.record_key(&alice, &RecordId([1; 32]));
    let (account_sk, _) = U.account_key(&alice);
    let (_, data_key) = U.encapsulate(&mut rng, &account_sk.public_key()).unwrap();
    let key_hex: String = data_key
        .expose()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let shown = [
        format!("{alice:?}"),
        format!("{alice:#?}"),
        format!("{record_sk:?}"),
        format!("{account_sk:#?}"),
        format!("{data_key:?}"),
    ];
    for s in &shown {
        assert!(s.contains("redacted"), "{s}");
        assert!(!s.contains(&seed_hex[..16]), "{s}");
        assert!(!s.contains(&key_hex[..16]), "{s}");
        // No long runs of hex or of decimal byte lists at all.
        assert!(s.len() < 64, "{s}");
    }
    assert_eq!(shown[0], "UmbralMasterSecret(<redacted>)");

    // Fragments show their public id only, not their key share.
    let f = fixture(&mut rng, RecordId([2; 32]));
    let kfrag = format!("{:?}", f.kfrags[0]);
    assert!(
        kfrag.starts_with("UmbralKeyFrag(KeyFrag:") && kfrag.len() < 64,
        "{kfrag}"
    );
    let cfrag = format!("{:?}", f.cfrags[0]);
    assert!(
        cfrag.starts_with("UmbralVerifiedCapsuleFrag(VerifiedCapsuleFrag:") && cfrag.len() < 80,
        "{cfrag}"
    );
    let capsule = format!("{:?}", f.capsule);
    assert!(
        capsule.starts_with("UmbralCapsule(Capsule:") && capsule.len() < 64,
        "{capsule}"
    );
    assert_eq!(shown[2], "UmbralSecretKey(record, <redacted>)");
}
