//! Crash the primary: the backups change view, nothing committed is lost, and
//! the calls submitted meanwhile commit in the new view.

mod common;

use std::time::Duration;

use common::*;
use rr_core::ConsensusEngine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_the_primary_changes_the_view_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(4, dir.path(), 30);
    let key = client(30);
    let before = submit_all(
        &c,
        &key,
        0..40,
        |n| (n % 4) as usize,
        Duration::from_secs(10),
    )
    .await;
    assert_all_ok(&before);
    let committed = c.engine(1).status().height;
    c.crash(0).await;
    // Submitted at backups: the primary never sees them; the timers fire.
    let after = submit_all(
        &c,
        &key,
        40..100,
        |n| 1 + (n % 3) as usize,
        Duration::from_secs(15),
    )
    .await;
    assert_all_ok(&after);
    for i in 1..4 {
        assert!(c.engine(i).view() >= 1, "replica {i} is still in view 0");
    }
    let h = converge_and_check(&c).await;
    assert!(h > committed);
    for i in 1..4 {
        assert_eq!(committed_txs(&c, i), 100);
        // Every receipt from before the crash is still on every ledger.
        for r in &before {
            assert_eq!(c.ledger(i).receipt(&r.tx).unwrap().as_ref(), Some(r));
        }
    }
    // The old primary comes back as a backup and catches up.
    c.restart(0).unwrap();
    let more = submit_all(
        &c,
        &key,
        100..120,
        |n| (n % 4) as usize,
        Duration::from_secs(15),
    )
    .await;
    assert_all_ok(&more);
    converge_and_check(&c).await;
    assert_eq!(committed_txs(&c, 0), 120);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_primaries_in_a_row_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(7, dir.path(), 31);
    let key = client(31);
    assert_all_ok(
        &submit_all(
            &c,
            &key,
            0..20,
            |n| (n % 7) as usize,
            Duration::from_secs(10),
        )
        .await,
    );
    // The primaries of views 0 and 1.
    c.crash(0).await;
    c.crash(1).await;
    assert_all_ok(
        &submit_all(
            &c,
            &key,
            20..60,
            |n| 2 + (n % 5) as usize,
            Duration::from_secs(20),
        )
        .await,
    );
    for i in 2..7 {
        assert!(
            c.engine(i).view() >= 2,
            "replica {i} in view {}",
            c.engine(i).view()
        );
    }
    converge_and_check(&c).await;
    for i in 2..7 {
        assert_eq!(committed_txs(&c, i), 60);
    }
    c.shutdown().await;
}
