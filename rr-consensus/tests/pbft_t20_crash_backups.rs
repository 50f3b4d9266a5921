//! Crash f backups: the rest keep committing; the crashed one, restarted,
//! catches up by state transfer.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f_crashed_backups_do_not_stop_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(4, dir.path(), 20);
    let key = client(20);
    assert_all_ok(
        &submit_all(
            &c,
            &key,
            0..30,
            |n| (n % 4) as usize,
            Duration::from_secs(10),
        )
        .await,
    );
    c.crash(3).await;
    // Submitted at the live replicas only.
    assert_all_ok(
        &submit_all(
            &c,
            &key,
            30..150,
            |n| (n % 3) as usize,
            Duration::from_secs(10),
        )
        .await,
    );
    c.check_safety().unwrap();
    for i in 0..3 {
        assert_eq!(
            c.engine(i).view(),
            0,
            "a crashed backup needs no view change"
        );
    }
    // Back up: it fetches what it missed (past several checkpoints).
    c.restart(3).unwrap();
    let h = converge_and_check(&c).await;
    assert_eq!(c.ledger(3).head().unwrap().height, h);
    assert_eq!(committed_txs(&c, 3), 150);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_replicas_tolerate_two_crashed_backups() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(7, dir.path(), 21);
    c.crash(5).await;
    c.crash(6).await;
    let key = client(21);
    assert_all_ok(
        &submit_all(
            &c,
            &key,
            0..100,
            |n| (n % 5) as usize,
            Duration::from_secs(10),
        )
        .await,
    );
    let h = converge_and_check(&c).await;
    assert!(h > 0);
    for i in 0..5 {
        assert_eq!(committed_txs(&c, i), 100);
    }
    c.shutdown().await;
}
