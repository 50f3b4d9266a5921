//! What is particular to the recrypt [`PreScheme`]: single-proxy thresholds,
//! fixed-size encodings, key derivation, exact errors, redaction. What every
//! scheme shares is in the conformance suite (`tests/conformance.rs`).
#![cfg(feature = "recrypt")]

use rand::rngs::StdRng;
use rand::SeedableRng;
use recrypt::api::{KeyGenOps, PrivateKey};
use rr_core::{PreError, PreScheme, RecordId, Threshold, WireEncoding};
use rr_pre::conformance::Flow;
use rr_pre::recrypt::{
    Recrypt, RecryptCapsule, RecryptCapsuleFrag, RecryptKeyFrag, RecryptPublicKey,
    CONTEXT_PRIVATE_KEY, CONTEXT_SIGNING_SEED, SINGLE_PROXY_REASON,
};

const R: Recrypt = Recrypt;

fn rng() -> StdRng {
    StdRng::seed_from_u64(0x7ec7)
}

fn t(m: u16, n: u16) -> Threshold {
    Threshold { m, n }
}

fn flow(rng: &mut StdRng, n: u16) -> Flow<Recrypt> {
    Flow::run(&R, rng, RecordId([1; 32]), t(1, n)).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn malformed(e: PreError) -> bool {
    matches!(
        e,
        PreError::Malformed {
            scheme: "recrypt",
            ..
        }
    )
}

#[test]
fn threshold_is_one_of_n() {
    for n in [1, 2, 4, 7, 255] {
        assert_eq!(R.check_threshold(t(1, n)), Ok(()), "1 of {n}");
    }
    for (m, n) in [(2, 3), (3, 3), (2, 2), (4, 7), (0, 3), (4, 3)] {
        assert_eq!(
            R.check_threshold(t(m, n)),
            Err(PreError::BadThreshold {
                m,
                n,
                reason: SINGLE_PROXY_REASON
            }),
            "{m} of {n}"
        );
    }
    assert!(matches!(
        R.check_threshold(t(1, 0)),
        Err(PreError::BadThreshold { m: 1, n: 0, .. })
    ));
    assert!(matches!(
        R.check_threshold(t(1, 256)),
        Err(PreError::BadThreshold { m: 1, n: 256, .. })
    ));
    let err = R.check_threshold(t(2, 3)).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid threshold 2 of 3: recrypt is single-proxy: any one replica can transform, threshold is 1"
    );
}

#[test]
fn every_replica_gets_the_same_transform_key_and_each_opens_alone() {
    let mut rng = rng();
    let f = flow(&mut rng, 4);
    assert_eq!(f.kfrags.len(), 4);
    let first = f.kfrags[0].to_bytes();
    assert!(f.kfrags.iter().all(|k| k.to_bytes() == first));
    for (i, cfrag) in f.verified.iter().enumerate() {
        let key = f.grantee_opens(&R, std::slice::from_ref(cfrag)).unwrap();
        assert_eq!(key.expose(), f.data_key.expose(), "replica {i} alone");
    }
    // Each transform is fresh: the replicas' fragments differ.
    assert_ne!(f.cfrags[0], f.cfrags[1]);
}

#[test]
fn encodings_have_fixed_sizes() {
    let mut rng = rng();
    let f = flow(&mut rng, 1);
    assert_eq!(f.record_pk.to_bytes().len(), 130);
    assert_eq!(f.grantee_pk.to_bytes().len(), 66);
    assert_eq!(f.capsule.to_bytes().len(), 577);
    assert_eq!(f.kfrags[0].to_bytes().len(), 865);
    assert_eq!(f.cfrags[0].to_bytes().len(), 1537);
    for bytes in [
        f.record_pk.to_bytes(),
        f.grantee_pk.to_bytes(),
        f.capsule.to_bytes(),
        f.kfrags[0].to_bytes(),
        f.cfrags[0].to_bytes(),
    ] {
        assert_eq!(bytes[0], rr_pre::recrypt::WIRE_VERSION);
    }

    assert_eq!(
        RecryptPublicKey::from_bytes(&f.record_pk.to_bytes()).unwrap(),
        f.record_pk
    );
    assert_eq!(
        RecryptCapsule::from_bytes(&f.capsule.to_bytes()).unwrap(),
        f.capsule
    );
    assert_eq!(
        RecryptKeyFrag::from_bytes(&f.kfrags[0].to_bytes()).unwrap(),
        f.kfrags[0]
    );
    assert_eq!(
        RecryptCapsuleFrag::from_bytes(&f.cfrags[0].to_bytes()).unwrap(),
        f.cfrags[0]
    );

    // The tag must match the length: a record key cut to an account key's
    // length is an account key only with the account tag.
    let record = f.record_pk.to_bytes();
    assert!(malformed(
        RecryptPublicKey::from_bytes(&record[..66]).unwrap_err()
    ));
    let mut as_account = record[..66].to_vec();
    as_account[1] = 0;
    let account = RecryptPublicKey::from_bytes(&as_account).unwrap();
    assert_eq!(account.key(), f.record_pk.key());
    assert!(!account.is_record_key());
    let mut bad_tag = f.grantee_pk.to_bytes();
    bad_tag[1] = 1;
    assert!(malformed(
        RecryptPublicKey::from_bytes(&bad_tag).unwrap_err()
    ));
    bad_tag[1] = 2;
    assert!(malformed(
        RecryptPublicKey::from_bytes(&bad_tag).unwrap_err()
    ));
}

#[test]
fn non_canonical_field_elements_are_refused() {
    let mut rng = rng();
    let f = flow(&mut rng, 1);
    // The capsule's message starts at byte 65: set its first coefficient to
    // all ones, above the prime. recrypt would silently reduce it.
    let mut capsule = f.capsule.to_bytes();
    capsule[65..97].fill(0xff);
    assert!(malformed(RecryptCapsule::from_bytes(&capsule).unwrap_err()));
    // A point coordinate above the prime.
    let mut pk = f.grantee_pk.to_bytes();
    pk[2..34].fill(0xff);
    assert!(malformed(RecryptPublicKey::from_bytes(&pk).unwrap_err()));
}

#[test]
fn every_changed_capsule_byte_is_refused_when_decoding() {
    // The capsule's signature is checked when it is decoded, so no changed
    // capsule gets as far as opening.
    let mut rng = rng();
    let f = flow(&mut rng, 1);
    let bytes = f.capsule.to_bytes();
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x80;
        assert!(
            malformed(RecryptCapsule::from_bytes(&b).unwrap_err()),
            "byte {i}"
        );
    }
}

#[test]
fn exact_errors() {
    let mut rng = rng();
    let f = flow(&mut rng, 1);
    let carol = R.generate_master(&mut rng);
    let (carol_sk, carol_pk) = R.account_key(&carol);
    // A capsule fragment for Bob does not verify for Carol: the replica
    // signed which grantee it transformed to.
    assert_eq!(
        R.verify_capsule_frag(f.cfrags[0].clone(), &f.capsule, &f.record_pk, &carol_pk)
            .unwrap_err(),
        PreError::InvalidCapsuleFrag
    );
    assert_eq!(
        R.open_reencrypted(&carol_sk, &f.record_pk, &f.capsule, &f.verified)
            .unwrap_err(),
        PreError::OpenFailed
    );
    assert_eq!(
        R.open(&carol_sk, &f.capsule).unwrap_err(),
        PreError::OpenFailed
    );
    assert_eq!(
        f.grantee_opens(&R, &[]).unwrap_err(),
        PreError::NotEnoughFragments { have: 0, need: 1 }
    );
    // An account key where a record key is needed.
    assert!(malformed(
        R.verify_key_frag(f.kfrags[0].clone(), &f.grantee_pk, &f.grantee_pk)
            .unwrap_err()
    ));
    assert!(malformed(
        R.delegate(&mut rng, &f.grantee_sk, &carol_pk, t(1, 1))
            .unwrap_err()
    ));
    assert!(malformed(
        R.verify_capsule_frag(
            f.cfrags[0].clone(),
            &f.capsule,
            &f.grantee_pk,
            &f.grantee_pk
        )
        .unwrap_err()
    ));
}

#[test]
fn stored_key_fragment_is_the_fragment() {
    let mut rng = rng();
    let f = flow(&mut rng, 1);
    let vk = R
        .verify_key_frag(f.kfrags[0].clone(), &f.record_pk, &f.grantee_pk)
        .unwrap();
    assert_eq!(R.verified_key_frag_to_bytes(&vk), f.kfrags[0].to_bytes());
    assert_eq!(vk.unverify(), f.kfrags[0]);
}

/// The derivation is pinned: records registered today must keep their keys.
#[test]
fn key_derivation_is_pinned() {
    let master = R.master_from_bytes(&[0x42; 32]).unwrap();
    let (_, account) = R.account_key(&master);
    let (_, record) = R.record_key(&master, &RecordId([7; 32]));
    assert_eq!(
        hex(&account.to_bytes()),
        "010015b12d8a77148d527fd25f61799834896fab85221b939f3a8c2ef6a2f7dc21b762400a34e567f0ce4fd22d867cc6efdfc37941f161f2196640594b008519e3c2"
    );
    assert_eq!(
        hex(&record.to_bytes()),
        "01018cbf2144ef8b9d80fa8e7b1de7f5d4cf0876dedb2ee09f4df51b8248532979a1061668be5b450fcaf48608b16e08be8941606e4d5bf38343c5bc99f1161527f02c26f0da24019ddcb35a5ced047d4999b5b9e50ead1a1500c29dbc6e07878464211165139e09bd2e53ab01185a6739097097d43cde7d8b3322de29b26081ff61"
    );
}

/// The derivation as documented, recomputed from its parts.
#[test]
fn key_derivation_follows_the_docs() {
    let seed = [0x42u8; 32];
    let record = RecordId([7; 32]);
    let master = R.master_from_bytes(&seed).unwrap();
    let (_, record_pk) = R.record_key(&master, &record);
    let (_, account_pk) = R.account_key(&master);

    let signer = |label: &[u8]| {
        let mut input = seed.to_vec();
        input.extend_from_slice(label);
        input.extend_from_slice(record.as_bytes());
        let seed = blake3::derive_key(CONTEXT_SIGNING_SEED, &input);
        ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes()
    };
    assert_eq!(
        record_pk.delegation_signing_key(),
        Some(&signer(b"delegation"))
    );
    assert_eq!(record_pk.proxy_signing_key(), Some(&signer(b"proxy")));
    assert_ne!(signer(b"delegation"), signer(b"proxy"));

    let engine = recrypt::api::Recrypt::new();
    let private_key = |label: &[u8], record: Option<&RecordId>| {
        let mut hasher = blake3::Hasher::new_derive_key(CONTEXT_PRIVATE_KEY);
        hasher.update(&seed).update(label);
        if let Some(r) = record {
            hasher.update(r.as_bytes());
        }
        let mut stream = hasher.finalize_xof();
        loop {
            let mut block = [0u8; 32];
            stream.fill(&mut block);
            if block != [0; 32] && PrivateKey::new(block).bytes() == &block {
                return PrivateKey::new(block);
            }
        }
    };
    let record_key = engine
        .compute_public_key(&private_key(b"record", Some(&record)))
        .unwrap();
    assert_eq!(record_pk.key(), &record_key);
    let account_key = engine
        .compute_public_key(&private_key(b"account", None))
        .unwrap();
    assert_eq!(account_pk.key(), &account_key);
}

/// The rejection sampling relies on recrypt reducing private key bytes at or
/// above the prime, and keeping those below it.
#[test]
fn recrypt_reduces_private_keys_above_the_prime() {
    assert_ne!(PrivateKey::new([0xff; 32]).bytes(), &[0xff; 32]);
    let mut small = [0u8; 32];
    small[31] = 5;
    small[0] = 0x10;
    assert_eq!(PrivateKey::new(small).bytes(), &small);
}

#[test]
fn debug_shows_no_secrets() {
    let mut rng = rng();
    let f = flow(&mut rng, 1);
    let seed_hex = hex(&R.master_to_bytes(&f.owner));
    let key_hex = hex(f.data_key.expose());
    // The proxy's secret signing key sits in bytes 737..769 of a fragment.
    let kfrag_bytes = f.kfrags[0].to_bytes();
    let proxy_secret_hex = hex(&kfrag_bytes[737..769]);

    let shown = [
        format!("{:?}", f.owner),
        format!("{:#?}", f.owner),
        format!("{:?}", f.record_sk),
        format!("{:#?}", f.grantee_sk),
        format!("{:?}", f.data_key),
        format!("{:?}", f.kfrags[0]),
        format!("{:#?}", f.kfrags[0]),
        format!(
            "{:?}",
            R.verify_key_frag(f.kfrags[0].clone(), &f.record_pk, &f.grantee_pk)
                .unwrap()
        ),
    ];
    for s in &shown {
        assert!(s.contains("redacted"), "{s}");
        for secret in [&seed_hex, &key_hex, &proxy_secret_hex] {
            assert!(!s.contains(&secret[..16]), "{s}");
        }
        assert!(s.len() < 100, "{s}");
    }
    assert_eq!(shown[0], "RecryptMasterSecret(<redacted>)");
    assert_eq!(shown[2], "RecryptSecretKey(record, <redacted>)");
    assert_eq!(shown[3], "RecryptSecretKey(account, <redacted>)");

    // Public values show a short public id.
    for s in [
        format!("{:?}", f.capsule),
        format!("{:?}", f.cfrags[0]),
        format!("{:?}", f.verified[0]),
        format!("{:?}", f.record_pk),
    ] {
        assert!(s.starts_with("Recrypt") && s.len() < 80, "{s}");
    }
}
