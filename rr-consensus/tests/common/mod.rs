//! Shared pieces of the PBFT scenario tests: a small real executor, signed
//! test transactions, and cluster helpers.
#![allow(dead_code)]

pub mod core_net;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use rr_consensus::harness::Cluster;
use rr_consensus::PbftConfig;
use rr_core::{
    AccountId, ConsensusEngine, GrantId, Outcome, Receipt, Revoke, TxBody, VerifiedTransaction,
};

pub use rr_consensus::harness::NonceExecutor;

/// Client `i`'s key.
pub fn client(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i.wrapping_add(100); 32])
}

/// A signed, verified no-op call.
pub fn tx(key: &SigningKey, nonce: u64) -> VerifiedTransaction {
    TxBody {
        signer: AccountId::from_verifying_key(&key.verifying_key()),
        nonce,
        call: rr_core::Call::Revoke(Revoke {
            grant: GrantId([1; 32]),
        }),
    }
    .sign(key)
    .verify()
    .unwrap()
}

/// A cluster of `n` with the test settings.
pub fn cluster(n: usize, dir: &Path, seed: u64) -> Cluster<NonceExecutor> {
    cluster_with(n, dir, seed, PbftConfig::for_tests())
}

/// A cluster of `n` with `config`.
pub fn cluster_with(n: usize, dir: &Path, seed: u64, config: PbftConfig) -> Cluster<NonceExecutor> {
    // `RUST_LOG=rr_consensus=info` shows what the replicas did in a failing run.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    Cluster::start(n, dir, config, Arc::new(NonceExecutor), seed).unwrap()
}

/// Submits nonces `range` of `key` at replica `at(nonce)`, concurrently, and
/// waits (up to `timeout`) for every receipt.
pub async fn submit_all(
    c: &Cluster<NonceExecutor>,
    key: &SigningKey,
    range: std::ops::Range<u64>,
    at: impl Fn(u64) -> usize,
    timeout: Duration,
) -> Vec<Receipt> {
    let futs = range.map(|n| {
        let engine = c.engine(at(n));
        let t = tx(key, n);
        async move { engine.submit(t).await }
    });
    let all = tokio::time::timeout(timeout, futures::future::join_all(futs))
        .await
        .expect("every submitted call commits in time");
    all.into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("no submission fails")
}

/// Asserts every receipt took effect (none was a replay).
pub fn assert_all_ok(receipts: &[Receipt]) {
    for r in receipts {
        assert!(matches!(r.outcome, Outcome::Ok(_)), "{r:?}");
    }
}

/// Waits for convergence, checks safety, and returns the common height.
pub async fn converge_and_check(c: &Cluster<NonceExecutor>) -> u64 {
    let h = c.wait_converged(Duration::from_secs(10)).await.unwrap();
    c.check_safety().unwrap();
    h
}

/// Counts the transactions committed on replica `i`'s ledger, checking no
/// transaction appears twice.
pub fn committed_txs(c: &Cluster<NonceExecutor>, i: usize) -> usize {
    let ledger = c.ledger(i);
    let head = ledger.head().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for h in 1..=head.height {
        let b = ledger.block(h).unwrap().unwrap();
        for t in &b.txs {
            assert!(
                seen.insert(t.id()),
                "transaction committed twice at height {h}"
            );
        }
    }
    seen.len()
}
