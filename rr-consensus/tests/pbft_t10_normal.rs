//! Normal case: every replica executes the same blocks, with equal state
//! digests; batches are pipelined; duplicates are executed once; checkpoints
//! trim the log.

mod common;

use std::time::Duration;

use common::*;
use rr_core::ConsensusEngine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_commit_the_same_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(4, dir.path(), 1);
    let key = client(1);
    // Submitted at every replica: backups forward to the primary.
    let receipts = submit_all(
        &c,
        &key,
        0..200,
        |n| (n % 4) as usize,
        Duration::from_secs(10),
    )
    .await;
    assert_all_ok(&receipts);
    let h = converge_and_check(&c).await;
    assert!(h >= 2, "height {h}");
    for i in 0..4 {
        assert_eq!(committed_txs(&c, i), 200);
        assert_eq!(c.engine(i).status().replicas, 4);
        assert_eq!(c.engine(i).status().faults_tolerated, 1);
        assert_eq!(
            c.engine(i).view(),
            0,
            "no view change in a run without faults"
        );
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_request_is_executed_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(4, dir.path(), 2);
    let key = client(2);
    let t = tx(&key, 7);
    // The same transaction at all four replicas at once, and again later.
    let futs = (0..4).map(|i| {
        let e = c.engine(i);
        let t = t.clone();
        async move { e.submit(t).await.unwrap() }
    });
    let receipts = futures::future::join_all(futs).await;
    assert!(receipts.iter().all(|r| r == &receipts[0]), "{receipts:?}");
    let again = c.engine(1).submit(t.clone()).await.unwrap();
    assert_eq!(again, receipts[0]);
    converge_and_check(&c).await;
    for i in 0..4 {
        assert_eq!(committed_txs(&c, i), 1);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_cluster_works() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(1, dir.path(), 3);
    let receipts = submit_all(&c, &client(3), 0..50, |_| 0, Duration::from_secs(10)).await;
    assert_all_ok(&receipts);
    assert_eq!(committed_txs(&c, 0), 50);
    c.shutdown().await;
}
