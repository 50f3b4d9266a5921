//! Four replicas of `Node<ClusterTypes>` (PBFT over loopback TCP) in one
//! process (a `LocalCluster`), driven through `Replicas` by the ordinary
//! `Client`: the whole
//! flow, a replica down, and a revocation every replica applies from the
//! ledger. Replicas that lie are in `byzantine.rs`.

mod cluster_support;

use std::sync::Arc;
use std::time::Duration;

use cluster_support::*;
use rr_core::{byte_stream_of, ReplicaId};
use rr_node::{collect, Identity, NodeError};
use rr_pre::Umbral;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_put_grant_retrieve_revoke_with_faults() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster(dir.path(), 4).await;
    let nodes = nodes(&cluster);
    let alice = cluster.client(Identity::generate(&Umbral));
    let bob = cluster.client(Identity::generate(&Umbral));
    let plaintext: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();

    // Put: the ciphertext lands on every replica, the record on every ledger.
    let put = alice
        .put(byte_stream_of(plaintext.clone()), "text/plain")
        .await
        .unwrap();
    for (i, n) in nodes.iter().enumerate() {
        assert!(
            rr_core::BlobStore::contains(&**n.blobs(), &put.cid)
                .await
                .unwrap(),
            "replica {i} has the blob"
        );
    }

    // Grant: threshold f + 1 = 2 of 4; every replica holds its fragment
    // (a straggler's, once delivered again as the report says).
    let report = alice
        .grant_with_report(put.record_id, &bob.card(), options())
        .await
        .unwrap();
    for p in &report.pending {
        alice.redeliver(p).await.unwrap();
    }
    let grant = report.grant;
    let info = nodes[0].grant(&grant).unwrap();
    assert_eq!((info.threshold.m, info.threshold.n), (2, 4));
    for (i, n) in nodes.iter().enumerate() {
        assert!(
            n.holds_fragment(&grant).unwrap(),
            "replica {i} holds its fragment"
        );
    }

    // Retrieve through every replica: bytes equal.
    let (stream, report) = bob.retrieve_with_report(grant, treatment()).await.unwrap();
    assert_eq!(collect(stream).await.unwrap(), plaintext);
    assert_eq!(report.used.len(), 2);
    assert!(report.skipped.is_empty(), "{report:?}");

    // The retrieval's receipt is certified by a quorum of the replicas.
    assert!(report.certified_by.len() >= 3, "{report:?}");

    // Replica 3 goes down (f = 1): the other three still order and answer.
    cluster.stop(3).await.unwrap();
    let (stream, report) = bob.retrieve_with_report(grant, treatment()).await.unwrap();
    assert_eq!(collect(stream).await.unwrap(), plaintext);
    assert!(
        report.skipped.iter().any(|s| s.replica == ReplicaId(3)),
        "the down replica is named: {report:?}"
    );

    // Revoke through replica 0 only: every live replica erases its fragment
    // from the ledger and confirms it through consensus; the revocation is
    // complete at n - m + 1 = 3 confirmations. Bob is refused.
    let report = alice
        .revoke_with_report(grant, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(report.needed, 3);
    assert_eq!(
        report.confirmed_by,
        vec![ReplicaId(0), ReplicaId(1), ReplicaId(2)]
    );
    for (i, n) in nodes.iter().enumerate().take(3) {
        eventually(&format!("replica {i} erases"), || {
            !n.holds_fragment(&grant).unwrap()
        })
        .await;
    }
    let err = match bob.retrieve(grant, treatment()).await {
        Ok(_) => panic!("a revoked grant must not retrieve"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("revoked"), "{err}");

    // The audit trail is the same on every live replica.
    let audit0 = nodes[0].audit(&put.record_id).unwrap();
    for n in &nodes[1..3] {
        eventually("ledgers converge", || {
            n.status().height == nodes[0].status().height
        })
        .await;
        assert_eq!(n.audit(&put.record_id).unwrap(), audit0);
    }
    assert!(audit0.len() >= 5, "{audit0:?}");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_down_during_revoke_erases_its_fragment_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster(dir.path(), 4).await;
    let (alice, bob, _put, grant) = alice_shares(&cluster, b"x-ray").await;
    let replica_3 = cluster.replica(3).unwrap();
    eventually("replica 3 has its fragment", || {
        replica_3.holds_fragment(&grant).unwrap()
    })
    .await;

    // Replica 3 stops; the revoke commits without it. Nothing may keep the
    // stopped replica open (its files are opened again on restart): the
    // test's handle goes, and Alice's client holds none (it reaches each
    // replica through the cluster).
    drop(replica_3);
    cluster.stop(3).await.unwrap();
    // Replica 3, gone: the client still knows it (its key is in the trusted
    // set), and finds nothing there.
    alice.revoke(grant).await.unwrap();

    // It comes back, catches up from its peers, and erases the fragment of
    // the grant revoked while it was down. (The old instance's files are
    // released once its tasks finish: the restart retries until then.)
    cluster.restart(3).await.unwrap();
    let back = cluster.replica(3).unwrap();
    eventually("the restarted replica erases the revoked fragment", || {
        !back.holds_fragment(&grant).unwrap()
    })
    .await;
    // ...and confirms it on the ledger, like the others did.
    eventually("all four confirmations are on the ledger", || {
        back.grant(&grant).unwrap().erased_by.len() == 4
    })
    .await;
    // Its answer to a retrieval is the certified refusal, and no fragment.
    let answer = back
        .retrieve(bob.sign(rr_core::Call::Retrieve(rr_core::Retrieve {
            grant,
            purpose: treatment(),
        })))
        .await
        .unwrap();
    match &answer.receipt.receipt.outcome {
        rr_core::Outcome::Refused(r) => {
            assert_eq!(r.code, rr_core::ErrorCode::GrantRevoked, "{r}")
        }
        other => panic!("a revoked grant must be refused: {other:?}"),
    }
    answer
        .receipt
        .verify(&cluster.replica_set().unwrap())
        .unwrap();
    assert!(answer.fragment.is_none());
    drop(back);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragment_sealed_to_another_replica_is_refused_and_not_stored() {
    use rr_core::{Call, CallOutput, Digest, Grant, PreScheme, Threshold, WireEncoding};
    use rr_node::sealing::{seal, Slot};

    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), 4).await;
    let nodes = nodes(&cluster);
    let alice = cluster.client(Identity::generate(&Umbral));
    let bob = Identity::generate(&Umbral);
    let put = alice
        .put(byte_stream_of(b"lab results".to_vec()), "text/plain")
        .await
        .unwrap();
    // Alice's client, misbehaving: fragment 0 is sealed to replica 1's key.
    let (sk, _) = Umbral.record_key(alice.identity().master(), &put.record_id);
    let bob_pk = Umbral.account_key(bob.master()).1;
    let kfrags = Umbral
        .delegate(
            &mut rand_core::OsRng,
            &sk,
            &bob_pk,
            Threshold::new(2, 4).unwrap(),
        )
        .unwrap();
    let slot = |r: u16| Slot {
        record: put.record_id,
        grantee: bob.account(),
        replica: ReplicaId(r),
    };
    let sealing = cluster.sealing_public_keys();
    let to = |r: usize| sealing[r];
    let sealed: Vec<Vec<u8>> = kfrags
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let target = if i == 0 { 1 } else { i };
            seal(&to(target), &slot(i as u16), &k.to_bytes()).unwrap()
        })
        .collect();
    let receipt = nodes[0]
        .submit(
            alice.identity().sign(Call::Grant(Grant {
                record: put.record_id,
                grantee: bob.account(),
                grantee_key: bob_pk.to_bytes(),
                threshold: Threshold::new(2, 4).unwrap(),
                fragment_commitments: sealed
                    .iter()
                    .map(|s| Digest::fragment_commitment(s))
                    .collect(),
                purpose: treatment(),
                expires_at: None,
            })),
        )
        .await
        .unwrap();
    let Ok(CallOutput::Granted { grant }) = receipt.into_result() else {
        panic!("grant refused")
    };
    // It matches the commitment, but replica 0 cannot open it: refused,
    // nothing stored. Replica 1 refuses it too (its commitment is another).
    let err = nodes[0]
        .deliver_fragment(grant, sealed[0].clone())
        .await
        .unwrap_err();
    assert!(matches!(err, NodeError::Sealed { .. }), "{err}");
    assert!(!nodes[0].holds_fragment(&grant).unwrap());
    let err = nodes[1]
        .deliver_fragment(grant, sealed[0].clone())
        .await
        .unwrap_err();
    assert!(matches!(err, NodeError::FragmentMismatch { .. }), "{err}");
    // Replica 2 takes its own, properly sealed one.
    nodes[2]
        .deliver_fragment(grant, sealed[2].clone())
        .await
        .unwrap();
    assert!(nodes[2].holds_fragment(&grant).unwrap());
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_than_a_quorum_of_replicas_fails_clearly_and_gives_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster(dir.path(), 4).await;
    let nodes = nodes(&cluster);
    let (_alice, bob, _put, grant) = alice_shares(&cluster, b"discharge letter").await;
    let height = nodes[0].status().height;
    // Two of four replicas stop: no quorum of 2f + 1 = 3 is left.
    cluster.stop(2).await.unwrap();
    cluster.stop(3).await.unwrap();
    let bob = rr_node::Client::new(
        cluster
            .client_replicas()
            .unwrap()
            .with_order_timeout(Duration::from_secs(2)),
        Arc::new(Umbral),
        bob,
    );
    let err = match bob.retrieve(grant, treatment()).await {
        Ok(_) => panic!("a retrieval without a quorum must fail"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("did not order and certify the retrieval"),
        "{err}"
    );
    assert!(err.contains("3 of its 4 replicas"), "{err}");
    // Nothing was ordered, so no replica re-encrypted anything.
    assert_eq!(nodes[0].status().height, height);
    assert_eq!(nodes[1].status().height, height);
    cluster.shutdown().await.unwrap();
}
