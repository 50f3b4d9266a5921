//! A Byzantine primary sends different pre-prepares for the same sequence
//! number to different backups: no two replicas commit different blocks, and
//! a view change replaces it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use rr_consensus::pbft::{Payload, SignedMessage};
use rr_core::{ReplicaId, Timestamp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_primary_causes_no_divergence() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(4, dir.path(), 40);
    let primary_key = c.key(0).clone();
    // Replicas 2 and 3 get a conflicting version (another block time) of
    // every pre-prepare replica 0 sends in view 0.
    c.router
        .set_interceptor(Some(Arc::new(move |from, to, bytes: Bytes| {
            if from != ReplicaId(0) || to.0 < 2 {
                return vec![bytes];
            }
            let Ok(m) = SignedMessage::from_bytes(&bytes) else {
                return vec![bytes];
            };
            match m.payload {
                Payload::PrePrepare(mut pp) if pp.view == 0 => {
                    pp.batch.time = Timestamp(pp.batch.time.0 + 1);
                    let forged = SignedMessage::sign(&primary_key, Payload::PrePrepare(pp));
                    vec![Bytes::from(forged.to_bytes())]
                }
                _ => vec![bytes],
            }
        })));
    let key = client(40);
    let receipts = submit_all(
        &c,
        &key,
        0..60,
        |n| (n % 4) as usize,
        Duration::from_secs(15),
    )
    .await;
    assert_all_ok(&receipts);
    for i in 0..4 {
        assert!(
            c.engine(i).view() >= 1,
            "replica {i} never left the equivocator's view"
        );
    }
    converge_and_check(&c).await;
    for i in 0..4 {
        assert_eq!(committed_txs(&c, i), 60);
    }
    c.shutdown().await;
}
