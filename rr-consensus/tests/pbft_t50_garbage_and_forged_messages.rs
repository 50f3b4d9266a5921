//! A Byzantine replica sends garbage, forged and out-of-range messages: the
//! others ignore them, stay in view 0 and keep committing.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use ed25519_dalek::SigningKey;
use rr_consensus::pbft::{Payload, SignedMessage};
use rr_consensus::ReplicaKey;
use rr_core::{BlockHash, ReplicaId};
use rr_storage::Head;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_forgeries_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    // Long timers: the point is that the garbage triggers no view change, so
    // a slow machine must not trigger one either.
    let config = {
        let mut config = rr_consensus::PbftConfig::for_tests();
        config.view_change_timeout = Duration::from_secs(3);
        config
    };
    let mut c = cluster_with(4, dir.path(), 50, config);
    let byz = ReplicaId(3);
    let byz_key = c.key(3).clone();
    let impostor = ReplicaKey::new(ReplicaId(1), SigningKey::from_bytes(&[66; 32]));
    let vote = rr_consensus::pbft::message::Vote {
        view: 0,
        seq: 1,
        digest: BlockHash([9; 32]),
    };
    let good = SignedMessage::sign(&byz_key, Payload::Prepare(vote));
    let mut flipped = good.clone();
    flipped.signature[5] ^= 1;
    let bad_tx = {
        let mut t = tx(&client(51), 1).into_inner();
        t.body.nonce = 2; // signature no longer matches
        t
    };
    let evil: Vec<Bytes> = vec![
        Bytes::from_static(b""),
        Bytes::from_static(b"\xff\xff\xff\xff definitely not postcard"),
        Bytes::from(vec![0x80; 100]),
        Bytes::from(good.to_bytes()[..good.to_bytes().len() - 3].to_vec()),
        Bytes::from(flipped.to_bytes()),
        // Claims to be replica 1 (signed by an unknown key).
        Bytes::from(SignedMessage::sign(&impostor, Payload::Prepare(vote)).to_bytes()),
        // Really replica 1's message, relayed by replica 3.
        Bytes::from(SignedMessage::sign(c.key(1), Payload::Prepare(vote)).to_bytes()),
        // Well signed, but a forged client transaction inside.
        Bytes::from(SignedMessage::sign(&byz_key, Payload::Forward(vec![bad_tx])).to_bytes()),
        // Well signed nonsense: a pre-prepare from a non-primary, a view far
        // ahead, a wrong checkpoint, a lone view change.
        Bytes::from(
            SignedMessage::sign(
                &byz_key,
                Payload::Commit(rr_consensus::pbft::message::Vote {
                    view: 1_000_000,
                    seq: u64::MAX,
                    digest: BlockHash([1; 32]),
                }),
            )
            .to_bytes(),
        ),
        Bytes::from(
            SignedMessage::sign(
                &byz_key,
                Payload::Checkpoint(Head {
                    height: 8,
                    ..Head::default()
                }),
            )
            .to_bytes(),
        ),
        Bytes::from(
            SignedMessage::sign(
                &byz_key,
                Payload::ViewChange(rr_consensus::pbft::message::ViewChange {
                    new_view: 1,
                    checkpoint: None,
                    prepared: vec![],
                }),
            )
            .to_bytes(),
        ),
        Bytes::from(vec![7u8; rr_consensus::pbft::MAX_MESSAGE_BYTES + 1]),
    ];
    // Replica 3 sends only this from now on.
    c.router
        .set_interceptor(Some(std::sync::Arc::new(move |from, to, bytes| {
            if from == byz && to != byz {
                vec![]
            } else {
                vec![bytes]
            }
        })));
    let router = c.router.clone();
    let spam = tokio::spawn(async move {
        for _ in 0..20 {
            for to in 0..3 {
                for e in &evil {
                    router.inject(byz, ReplicaId(to), e.clone());
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let key = client(50);
    let receipts = submit_all(
        &c,
        &key,
        0..100,
        |n| (n % 3) as usize,
        Duration::from_secs(10),
    )
    .await;
    assert_all_ok(&receipts);
    spam.await.unwrap();
    converge_and_check(&c).await;
    for i in 0..3 {
        assert_eq!(c.engine(i).view(), 0, "replica {i} changed view");
        assert_eq!(committed_txs(&c, i), 100);
    }
    c.check_safety().unwrap();
    c.shutdown().await;
}

#[test]
fn decoding_refuses_what_verification_would_not_see() {
    assert!(SignedMessage::from_bytes(b"").is_err());
    assert!(SignedMessage::from_bytes(&[0xff; 64]).is_err());
    let k = ReplicaKey::new(ReplicaId(0), SigningKey::from_bytes(&[1; 32]));
    let m = SignedMessage::sign(&k, Payload::Fetch { from: 3 });
    let mut bytes = m.to_bytes();
    assert_eq!(SignedMessage::from_bytes(&bytes).unwrap(), m);
    bytes.push(0);
    let err = SignedMessage::from_bytes(&bytes).unwrap_err();
    assert!(err.to_string().contains("trailing"), "{err}");
}
