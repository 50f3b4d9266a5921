//! Lossy links: messages dropped, duplicated and reordered. Everything still
//! commits exactly once, identically everywhere.

mod common;

use std::time::Duration;

use common::*;
use rr_consensus::harness::Faults;

async fn run(seed: u64, faults: Faults) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(4, dir.path(), seed);
    c.router.set_faults(faults);
    let key = client(70);
    let receipts = submit_all(
        &c,
        &key,
        0..120,
        |n| (n % 4) as usize,
        Duration::from_secs(20),
    )
    .await;
    assert_all_ok(&receipts);
    c.router.heal();
    converge_and_check(&c).await;
    for i in 0..4 {
        assert_eq!(committed_txs(&c, i), 120);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_reordered_messages() {
    run(
        71,
        Faults {
            drop: 0.0,
            duplicate: 0.3,
            max_delay: Duration::from_millis(5),
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_messages() {
    run(
        72,
        Faults {
            drop: 0.1,
            duplicate: 0.1,
            max_delay: Duration::from_millis(3),
        },
    )
    .await;
}
