//! Restarts mid-load: a restarted replica resumes from its write-ahead log and
//! ledger, signs nothing conflicting, and catches up by state transfer.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_primary_restart_mid_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(4, dir.path(), 80);
    let key = client(80);
    for (round, victim) in [(0u64, 2usize), (1, 0)] {
        let base = round * 100;
        // Load at the replicas that stay up.
        let engines: Vec<_> = (0..4)
            .filter(|i| *i != victim)
            .map(|i| c.engine(i))
            .collect();
        let load = {
            let key = key.clone();
            tokio::spawn(async move {
                let futs = (base..base + 100).map(|n| {
                    let e = engines[(n % 3) as usize].clone();
                    let t = tx(&key, n);
                    async move { rr_core::ConsensusEngine::submit(&*e, t).await }
                });
                futures::future::join_all(futs).await
            })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        c.crash(victim).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.restart(victim).unwrap();
        let receipts = tokio::time::timeout(Duration::from_secs(20), load)
            .await
            .expect("load commits")
            .unwrap();
        for r in receipts {
            assert!(matches!(r.unwrap().outcome, rr_core::Outcome::Ok(_)));
        }
        converge_and_check(&c).await;
        assert_eq!(committed_txs(&c, victim), (base + 100) as usize);
    }
    c.shutdown().await;
}
