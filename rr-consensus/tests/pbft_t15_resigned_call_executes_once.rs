//! One call, several valid signatures: a signer can sign the same body again
//! (here with a small-order component added to `R`, which ZIP-215's cofactored
//! rules accept on every replica, singly and in batches). The copies have
//! different transaction ids, so both are ordered, but the used-nonce set is
//! keyed by signer and nonce: the call takes effect once. Third-party
//! malleations of an existing signature (`s + l`) are refused outright.

mod common;

use common::*;
use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::{EdwardsPoint, Scalar};
use ed25519_dalek::SigningKey;
use rr_core::{ConsensusEngine, ErrorCode, Outcome, SignedTransaction, TxError};
use sha2::{Digest, Sha512};

/// `tx` signed again by `key` with `R = [r]B + T` for a point `T` of order 8.
fn resign_with_torsion(key: &SigningKey, tx: &SignedTransaction) -> SignedTransaction {
    let a = key.to_scalar();
    let a_bytes = key.verifying_key().to_bytes();
    let r = Scalar::from_bytes_mod_order([42; 32]);
    let r_bytes = (EdwardsPoint::mul_base(&r) + EIGHT_TORSION[1])
        .compress()
        .to_bytes();
    // The signed message: the domain-separated body, as `TxBody::sign` makes it.
    let mut msg = b"resilient-records/tx/v1\0".to_vec();
    msg.extend_from_slice(&rr_core::codec::encode(&tx.body));
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(r_bytes)
            .chain_update(a_bytes)
            .chain_update(&msg),
    );
    let s = r + k * a;
    let mut twin = tx.clone();
    twin.signature = [r_bytes, s.to_bytes()].concat();
    twin
}

/// `s + l`: the same signature point, a non-reduced scalar.
fn s_plus_l(tx: &SignedTransaction) -> SignedTransaction {
    let l = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = tx.clone();
    let mut carry = 0u16;
    for (i, li) in l.iter().enumerate() {
        let v = out.signature[32 + i] as u16 + *li as u16 + carry;
        out.signature[32 + i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resigned_call_executes_once_and_malleated_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(4, dir.path(), 15);
    let key = client(15);
    let original = tx(&key, 7).into_inner();
    let twin = resign_with_torsion(&key, &original);
    assert_ne!(twin.signature, original.signature);
    assert_ne!(twin.id(), original.id());
    // Valid under the rules every replica applies; refused by strict
    // cofactorless verification.
    let twin = twin.verify().expect("the torsion twin verifies");
    let strict = key.verifying_key().verify_strict(
        &{
            let mut m = b"resilient-records/tx/v1\0".to_vec();
            m.extend_from_slice(&rr_core::codec::encode(&original.body));
            m
        },
        &ed25519_dalek::Signature::from_slice(&twin.tx().signature).unwrap(),
    );
    assert!(strict.is_err());
    // Nobody but the signer can make another valid encoding.
    assert!(matches!(
        s_plus_l(&original).verify(),
        Err(TxError::BadSignature(_))
    ));

    // Both copies at once, at different replicas (backups forward to the
    // primary; every backup verifies the pre-prepare as a batch), then each
    // again.
    let original = original.verify().unwrap();
    let (e1, e2) = (c.engine(1), c.engine(2));
    let (a, b) = tokio::join!(e1.submit(original.clone()), e2.submit(twin.clone()));
    let (a, b) = (a.unwrap(), b.unwrap());
    let oks = [&a, &b]
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Ok(_)))
        .count();
    assert_eq!(oks, 1, "{a:?} {b:?}");
    for r in [&a, &b] {
        if let Outcome::Refused(refusal) = &r.outcome {
            assert_eq!(refusal.code, ErrorCode::ReplayedNonce);
        }
    }
    assert_eq!(c.engine(0).submit(original).await.unwrap(), a);
    assert_eq!(c.engine(3).submit(twin).await.unwrap(), b);

    converge_and_check(&c).await;
    for i in 0..4 {
        // Both copies are on every ledger; only one took effect.
        assert_eq!(committed_txs(&c, i), 2);
        assert_eq!(c.engine(i).view(), 0);
    }
    c.shutdown().await;
}
