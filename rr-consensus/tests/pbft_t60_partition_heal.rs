//! Partitions: no side without a quorum commits anything; after healing every
//! replica converges on the same ledger.

mod common;

use std::time::Duration;

use common::*;
use rr_core::ConsensusEngine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_without_quorum_stalls_then_converges() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(4, dir.path(), 60);
    let key = client(60);
    assert_all_ok(
        &submit_all(
            &c,
            &key,
            0..20,
            |n| (n % 4) as usize,
            Duration::from_secs(10),
        )
        .await,
    );
    let h0 = converge_and_check(&c).await;
    c.router.partition(&[&[0, 1], &[2, 3]]);
    let pending: Vec<_> = (20..60)
        .map(|n| {
            let e = c.engine((n % 4) as usize);
            let t = tx(&key, n);
            tokio::spawn(async move { e.submit(t).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(600)).await;
    for i in 0..4 {
        assert_eq!(
            c.engine(i).status().height,
            h0,
            "replica {i} committed without a quorum"
        );
    }
    c.router.heal();
    for p in pending {
        let r = tokio::time::timeout(Duration::from_secs(15), p)
            .await
            .expect("commits after healing")
            .unwrap()
            .unwrap();
        assert!(matches!(r.outcome, rr_core::Outcome::Ok(_)));
    }
    converge_and_check(&c).await;
    for i in 0..4 {
        assert_eq!(committed_txs(&c, i), 60);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_primary_is_replaced_and_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(4, dir.path(), 61);
    let key = client(61);
    c.router.partition(&[&[0], &[1, 2, 3]]);
    assert_all_ok(
        &submit_all(
            &c,
            &key,
            0..50,
            |n| 1 + (n % 3) as usize,
            Duration::from_secs(15),
        )
        .await,
    );
    c.router.heal();
    assert_all_ok(
        &submit_all(
            &c,
            &key,
            50..80,
            |n| (n % 4) as usize,
            Duration::from_secs(15),
        )
        .await,
    );
    converge_and_check(&c).await;
    for i in 0..4 {
        assert_eq!(committed_txs(&c, i), 80);
    }
    c.shutdown().await;
}
