//! The Solo engine: ordering, batching, durability across restarts, and
//! stopping cleanly when the executor fails.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use rr_consensus::{ManualClock, Solo, SoloConfig};
use rr_core::{
    AccountId, BlockContext, ConsensusEngine, ConsensusError, ContractExecutor, ErrorCode,
    Execution, ExecutionError, GrantId, Outcome, Receipt, Refusal, Revoke, StateError, StateRead,
    Timestamp, TxBody, VerifiedTransaction,
};
use rr_storage::Ledger;

mod common;
use common::{tx, NonceExecutor};

fn start<E: ContractExecutor>(ledger: &Arc<Ledger>, exec: E, clock: &Arc<ManualClock>) -> Solo<E> {
    Solo::start(
        ledger.clone(),
        Arc::new(exec),
        clock.clone(),
        SoloConfig::default(),
        key(),
    )
    .unwrap()
}

fn key() -> rr_consensus::ReplicaKey {
    rr_consensus::ReplicaKey::new(
        rr_core::ReplicaId(0),
        ed25519_dalek::SigningKey::from_bytes(&[42; 32]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_batches_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let clock = Arc::new(ManualClock::new(Timestamp(1_000)));
    let key = SigningKey::from_bytes(&[3; 32]);
    let ledger = Arc::new(Ledger::open(&path).unwrap());
    let solo = start(&ledger, NonceExecutor, &clock);

    // 200 concurrent submissions: all commit, in fewer blocks than calls.
    let receipts: Vec<Receipt> =
        futures::future::join_all((0..200).map(|n| solo.submit(tx(&key, n))))
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
    assert!(receipts.iter().all(|r| matches!(r.outcome, Outcome::Ok(_))));
    let status = solo.status();
    assert!(
        status.height >= 1 && status.height < 200,
        "height {}",
        status.height
    );
    // Heights are contiguous and every block is on the ledger with its receipts.
    let mut seen = 0;
    for h in 1..=status.height {
        let block = ledger.block(h).unwrap().unwrap();
        assert_eq!(block.header.context.height, h);
        seen += block.txs.len();
        assert_eq!(
            ledger.block_receipts(h).unwrap().unwrap().len(),
            block.txs.len()
        );
    }
    assert_eq!(seen, 200);
    assert_eq!(
        ledger.receipt(&receipts[7].tx).unwrap().unwrap(),
        receipts[7]
    );

    solo.shutdown().await.unwrap();
    assert!(matches!(
        solo.submit(tx(&key, 999)).await,
        Err(ConsensusError::Stopped)
    ));
    drop(solo);
    drop(ledger);

    // Restart: resumes at the same head, remembers the nonces.
    clock.advance(5);
    let ledger = Arc::new(Ledger::open(&path).unwrap());
    let solo = start(&ledger, NonceExecutor, &clock);
    assert_eq!(solo.status(), status);
    // The same transaction again: its original receipt, and no new block.
    let again = solo.submit(tx(&key, 7)).await.unwrap();
    assert_eq!(again, receipts[7]);
    assert_eq!(solo.status(), status);
    // Another call under a used nonce: ordered, and refused as a replay.
    let other = TxBody {
        signer: rr_core::AccountId::from_verifying_key(&key.verifying_key()),
        nonce: 7,
        call: rr_core::Call::Revoke(rr_core::Revoke {
            grant: rr_core::GrantId([2; 32]),
        }),
    }
    .sign(&key)
    .verify()
    .unwrap();
    let replay = solo.submit(other).await.unwrap();
    assert!(matches!(
        replay.outcome,
        Outcome::Refused(Refusal {
            code: ErrorCode::ReplayedNonce,
            ..
        })
    ));
    assert_eq!(replay.context.height, status.height + 1);
    assert_eq!(replay.context.time, Timestamp(1_005));
    // The first receipt of the transaction id is still the original.
    assert_eq!(
        ledger.receipt(&receipts[7].tx).unwrap().unwrap(),
        receipts[7]
    );
    // Every header is certified by the engine's own signature (1 of 1).
    let set = rr_core::cert::ReplicaSetInfo::new(vec![rr_core::AccountId::from_verifying_key(
        &ed25519_dalek::SigningKey::from_bytes(&[42; 32]).verifying_key(),
    )])
    .unwrap();
    for h in [1, replay.context.height] {
        let cert = solo.certificate(h).await.unwrap();
        assert_eq!(cert.header.height, h);
        // The ledger was opened for no replica set (the zero digest): the
        // signatures are checked against the key itself.
        assert_eq!(cert.signatures.len(), 1);
        let mut named = cert.clone();
        named.header.replica_set = set.digest();
        assert!(named.verify(&set).is_err(), "the set digest is signed too");
        assert!(rr_core::sig::verify(
            &set.keys()[0].0,
            &cert.signatures[0].signature,
            &rr_core::cert::LedgerHeader::signing_bytes(&cert.header.hash())
        ));
    }
    solo.shutdown().await.unwrap();
}

#[tokio::test]
async fn block_time_never_goes_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(50_000)));
    let ledger = Arc::new(Ledger::open(dir.path().join("l.redb")).unwrap());
    let solo = start(&ledger, NonceExecutor, &clock);
    let key = SigningKey::from_bytes(&[4; 32]);
    let a = solo.submit(tx(&key, 1)).await.unwrap();
    clock.set(Timestamp(10)); // wall clock jumps back
    let b = solo.submit(tx(&key, 2)).await.unwrap();
    assert_eq!(a.context.time, Timestamp(50_000));
    assert_eq!(b.context.time, Timestamp(50_000));
    solo.shutdown().await.unwrap();
}

mockall::mock! {
    Executor {}
    impl ContractExecutor for Executor {
        fn execute<'a>(
            &self,
            state: &'a dyn StateRead,
            ctx: &BlockContext,
            txs: &[VerifiedTransaction],
        ) -> Result<Execution, ExecutionError>;
    }
}

#[tokio::test]
async fn an_executor_failure_stops_the_engine_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(1)));
    let ledger = Arc::new(Ledger::open(dir.path().join("l.redb")).unwrap());
    let mut exec = MockExecutor::new();
    exec.expect_execute().times(1).returning(|_, _, _| {
        Err(ExecutionError::State(StateError::Storage(
            "disk on fire".into(),
        )))
    });
    let solo = start(&ledger, exec, &clock);
    let key = SigningKey::from_bytes(&[5; 32]);
    let err = solo.submit(tx(&key, 1)).await.unwrap_err();
    assert!(err.to_string().contains("disk on fire"), "{err}");
    // Stopped: later calls are refused without reaching the executor (times(1)).
    assert!(solo.submit(tx(&key, 2)).await.is_err());
    assert_eq!(ledger.head().unwrap().height, 0);
    assert!(ledger.block(1).unwrap().is_none());
}

/// Slow enough that the queue fills while a block executes, so the engine
/// cuts what waits into several blocks committed together.
struct SlowNonceExecutor;

impl ContractExecutor for SlowNonceExecutor {
    fn execute(
        &self,
        state: &dyn StateRead,
        ctx: &BlockContext,
        txs: &[VerifiedTransaction],
    ) -> Result<Execution, ExecutionError> {
        std::thread::sleep(std::time::Duration::from_millis(5));
        NonceExecutor.execute(state, ctx, txs)
    }
}

fn tx_for(key: &SigningKey, nonce: u64, grant: u8) -> VerifiedTransaction {
    TxBody {
        signer: AccountId::from_verifying_key(&key.verifying_key()),
        nonce,
        call: rr_core::Call::Revoke(Revoke {
            grant: GrantId([grant; 32]),
        }),
    }
    .sign(key)
    .verify()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_executes_each_block_on_the_state_the_ones_before_left() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(7)));
    let ledger = Arc::new(Ledger::open(dir.path().join("l.redb")).unwrap());
    let solo = Solo::start(
        ledger.clone(),
        Arc::new(SlowNonceExecutor),
        clock.clone(),
        {
            let mut config = SoloConfig::default();
            config.max_batch = 3;
            config
        },
        key(),
    )
    .unwrap();
    let key = SigningKey::from_bytes(&[6; 32]);
    // 39 nonces, each used by two different calls three submissions apart:
    // never in the same block, mostly in the same group commit. Exactly one
    // of each pair may succeed, which needs each block to see the writes of
    // the blocks before it in its group.
    let nonce_of = |n: u64| (n / 6) * 3 + n % 3;
    let calls: Vec<VerifiedTransaction> = (0..78u64)
        .map(|n| tx_for(&key, nonce_of(n), ((n % 6) / 3) as u8))
        .collect();
    let receipts: Vec<Receipt> =
        futures::future::join_all(calls.iter().map(|t| solo.submit(t.clone())))
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
    let mut ok_per_nonce = [0u32; 39];
    for (n, (t, r)) in calls.iter().zip(&receipts).enumerate() {
        assert_eq!(r.tx, t.id());
        if matches!(r.outcome, Outcome::Ok(_)) {
            ok_per_nonce[nonce_of(n as u64) as usize] += 1;
        }
    }
    assert_eq!(ok_per_nonce, [1; 39], "one call per nonce succeeds");
    // Blocks of at most 3 calls, chained, each with its receipts.
    let head = ledger.head().unwrap();
    assert_eq!(solo.status().height, head.height);
    assert!(head.height >= 26, "height {}", head.height);
    let mut parent = rr_core::BlockHash::default();
    let mut seen = 0;
    for h in 1..=head.height {
        let block = ledger.block(h).unwrap().unwrap();
        assert!(!block.txs.is_empty() && block.txs.len() <= 3);
        assert_eq!(block.header.parent, parent);
        parent = block.header.hash();
        let stored = ledger.block_receipts(h).unwrap().unwrap();
        assert_eq!(stored.len(), block.txs.len());
        for r in stored {
            assert_eq!(r.context.height, h);
            assert_eq!(ledger.receipt(&r.tx).unwrap().unwrap(), r);
        }
        seen += block.txs.len();
    }
    assert_eq!(parent, head.block_hash);
    assert_eq!(seen, 78);
    solo.shutdown().await.unwrap();
}
