//! The conformance suite of [`ConsensusEngine`] (feature `testing`): every
//! engine should pass it.
//!
//! In the spirit of openraft's `Suite::test_all` and of this workspace's
//! other suites (`rr_pre::conformance`, `rr_storage::blob::suite`): one set of
//! checks, written once against the trait and its documented contract (see
//! "Correctness" on [`ConsensusEngine`]), that every engine must pass, so a
//! node can swap engines knowing they behave the same.
//!
//! An engine is brought in by an [`EngineHarness`]: it starts the engine on
//! an empty directory with the [`SuiteExecutor`] the suite hands it, and
//! starts it again from the same files after the suite shut it down. What it
//! returns, a [`Running`], also names the engine's [`Ledger`] (the suite reads
//! the committed blocks there) and the [`ReplicaSetInfo`] its certificates
//! must verify against.
//!
//! ```
//! use std::path::{Path, PathBuf};
//! use std::sync::Arc;
//!
//! use rr_consensus::conformance::{self, EngineHarness, Running, SuiteExecutor};
//! use rr_consensus::{ReplicaKey, Solo, SoloConfig, SystemClock};
//! use rr_core::cert::ReplicaSetInfo;
//! use rr_core::{AccountId, ReplicaId};
//! use rr_storage::Ledger;
//!
//! struct SoloHarness {
//!     key: ReplicaKey,
//!     path: PathBuf,
//!     executor: Option<Arc<SuiteExecutor>>,
//! }
//!
//! impl SoloHarness {
//!     fn open(&self) -> Result<Running<Solo<SuiteExecutor>>, String> {
//!         let account = AccountId::from_verifying_key(&self.key.verifying_key());
//!         let set = ReplicaSetInfo::new(vec![account]).map_err(|e| e.to_string())?;
//!         let ledger = Ledger::open_for(&self.path, set.digest()).map_err(|e| e.to_string())?;
//!         let ledger = Arc::new(ledger);
//!         let executor = self.executor.clone().ok_or("never started")?;
//!         let engine = Solo::start(
//!             ledger.clone(),
//!             executor,
//!             Arc::new(SystemClock),
//!             SoloConfig::default(),
//!             self.key.clone(),
//!         )
//!         .map_err(|e| e.to_string())?;
//!         Ok(Running { engine: Arc::new(engine), ledger, replica_set: set })
//!     }
//! }
//!
//! impl EngineHarness for SoloHarness {
//!     type Engine = Solo<SuiteExecutor>;
//!
//!     async fn start(
//!         &mut self,
//!         dir: &Path,
//!         executor: Arc<SuiteExecutor>,
//!     ) -> Result<Running<Self::Engine>, String> {
//!         self.path = dir.join("ledger.redb");
//!         self.executor = Some(executor);
//!         self.open()
//!     }
//!
//!     async fn restart(&mut self) -> Result<Running<Self::Engine>, String> {
//!         self.open()
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
//! let mut harness = SoloHarness {
//!     key: ReplicaKey::new(ReplicaId(0), key),
//!     path: PathBuf::new(),
//!     executor: None,
//! };
//! conformance::test_all(&mut harness).await;
//! # });
//! ```
//!
//! [`test_all`] runs every check, each on a fresh directory and a fresh
//! engine, and panics on the first failure with a message that names the
//! check and what broke. Each check is also a public function, to run one
//! alone. Every wait on the engine is bounded by [`Settings::timeout`], so an
//! engine that hangs fails the check instead of hanging the test. The suite
//! never asserts on how long anything took.
//!
//! The checks:
//!
//! - [`executor`]: `executor()` is the executor the engine runs.
//! - [`ordering`]: concurrent submissions all commit, each receipt names its
//!   transaction and is the ledger's, blocks are at heights 1, 2, ... with no
//!   gaps and chained, they hold exactly the committed transactions (each
//!   once), block time never goes backwards, `status()` describes the last
//!   block, and the executor was handed exactly the ledger's blocks, in order.
//! - [`resubmission`]: the same transaction submitted again while it waits
//!   and after it committed resolves with the original receipt and makes no
//!   other block.
//! - [`refusals`]: a call the executor refuses (on its own, or as a replayed
//!   nonce) still gets a receipt, and is on the ledger.
//! - [`certificates`]: `certificate(h)` resolves for genesis and every
//!   committed height, verifies against the replica set and matches the
//!   ledger's blocks and receipts; one asked for before its height commits
//!   resolves once it does.
//! - [`restart`]: after `shutdown` and a restart on the same files, the
//!   height, blocks, receipts and certificates are as before, nothing is
//!   executed again, a retry gets its original receipt, and new calls
//!   continue at the next heights.
//! - [`shutdown`]: `shutdown` finishes what was in flight (every receipt it
//!   gave is on the ledger, no call that failed is); afterwards `submit`
//!   fails instead of hanging.
//! - [`failed_calls_never_commit`]: a call whose `submit` failed at
//!   shutdown with [`ConsensusError::Stopped`](rr_core::ConsensusError::Stopped)
//!   is not on the ledger after a restart, once the engine caught up
//!   (`Stopped` means the call was never ordered).
//! - [`certificate_after_shutdown`]: `certificate` of a height not reached
//!   fails once the engine stops (whether it was waiting already or is asked
//!   afterwards) instead of waiting forever.
//!
//! This module is for tests: it panics instead of returning errors. Do not
//! use it in production code.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use rr_core::cert::{Certificate, LedgerHeader, ReplicaSetInfo};
use rr_core::{
    AccountId, Block, BlockContext, BlockHash, Call, CallOutput, ConsensusEngine, ContractExecutor,
    ErrorCode, Execution, ExecutionError, GrantId, Outcome, Overlay, Receipt, Refusal, Revoke,
    StateRead, Timestamp, TxBody, TxId, VerifiedTransaction,
};
use rr_storage::Ledger;

// ---------------------------------------------------------------- the harness

/// An engine a harness started, and what the suite checks it against.
pub struct Running<E> {
    /// The engine under test.
    pub engine: Arc<E>,
    /// The ledger it commits to: the suite reads the committed blocks,
    /// receipts and headers there.
    pub ledger: Arc<Ledger>,
    /// The replica set its certificates must verify against (a single
    /// engine's one key, or a cluster's keys in replica order). The ledger's
    /// headers must name it.
    pub replica_set: ReplicaSetInfo,
}

impl<E> std::fmt::Debug for Running<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("ledger", &self.ledger)
            .field("replicas", &self.replica_set.n())
            .finish_non_exhaustive()
    }
}

/// How the suite starts and restarts an engine.
///
/// The suite calls [`EngineHarness::start`] once per check, each time on a
/// new empty directory; it may call [`EngineHarness::restart`] after it has
/// shut the engine down; and it calls [`EngineHarness::stop`] when the check
/// is over. A harness for a replicated engine runs the other replicas of the
/// deployment itself (in [`EngineHarness::start`]) and stops them in
/// [`EngineHarness::stop`]; the suite talks to one engine only.
pub trait EngineHarness: Send {
    /// The engine, running the suite's executor.
    type Engine: ConsensusEngine<Executor = SuiteExecutor>;

    /// Starts a new engine with its files under `dir` (empty), executing
    /// blocks with `executor`. The engine under test must run this very
    /// executor (the suite checks `executor()` against it, and reads what it
    /// was handed); other replicas of a deployment run their own instances.
    fn start(
        &mut self,
        dir: &Path,
        executor: Arc<SuiteExecutor>,
    ) -> impl Future<Output = Result<Running<Self::Engine>, String>> + Send;

    /// Starts the engine under test again from its files, with the same
    /// executor, after the suite called its `shutdown` and dropped every
    /// handle it held (the engine and the ledger). Other replicas of a
    /// deployment keep running.
    fn restart(&mut self) -> impl Future<Output = Result<Running<Self::Engine>, String>> + Send;

    /// Stops whatever else [`EngineHarness::start`] started (the other
    /// replicas of a deployment). The suite has already shut the engine
    /// under test down. Nothing to do by default.
    fn stop(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Settings of the suite.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The longest the suite waits for any one step (a start, a batch of
    /// submissions, a certificate, a shutdown) before it declares that the
    /// engine hangs. Generous by default (20 s): the suite never asserts on
    /// timing, this only turns a hang into a failure.
    pub timeout: Duration,
    /// How many calls the checks submit at once. Default 40.
    pub calls: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(20),
            calls: 40,
        }
    }
}

// ---------------------------------------------------------------- executor

/// The grant whose revocation [`SuiteExecutor`] refuses (with
/// [`ErrorCode::InvalidCall`]).
pub const REFUSED_GRANT: GrantId = GrantId([0xEE; 32]);

/// One call of [`SuiteExecutor`]'s `execute`: the block it was handed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// The block's height and time.
    pub context: BlockContext,
    /// Its transactions, in order.
    pub txs: Vec<TxId>,
}

/// The executor engines run under the suite: a small, deterministic,
/// real one, which also remembers every block it was handed.
///
/// Each call records its signer's nonce (state the ledger commits). It
/// refuses a call whose nonce its signer used before
/// ([`ErrorCode::ReplayedNonce`]), a revocation of [`REFUSED_GRANT`] and any
/// call other than a revocation ([`ErrorCode::InvalidCall`]); it accepts
/// every other revocation.
#[derive(Debug, Default)]
pub struct SuiteExecutor {
    executed: Mutex<Vec<Executed>>,
}

impl SuiteExecutor {
    /// An executor that has executed nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every block it was handed, in the order it was.
    pub fn executed(&self) -> Vec<Executed> {
        self.executed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn refusal(code: ErrorCode, message: &str) -> Outcome {
    Outcome::Refused(Refusal {
        code,
        message: message.into(),
    })
}

impl ContractExecutor for SuiteExecutor {
    fn execute(
        &self,
        state: &dyn StateRead,
        ctx: &BlockContext,
        txs: &[VerifiedTransaction],
    ) -> Result<Execution, ExecutionError> {
        let mut overlay = Overlay::new(state);
        let mut receipts = Vec::with_capacity(txs.len());
        for (i, tx) in txs.iter().enumerate() {
            let outcome = if !overlay.spend_nonce(tx)? {
                refusal(ErrorCode::ReplayedNonce, "nonce used before")
            } else {
                match &tx.body().call {
                    Call::Revoke(Revoke { grant }) if *grant == REFUSED_GRANT => refusal(
                        ErrorCode::InvalidCall,
                        "the conformance executor refuses this grant",
                    ),
                    Call::Revoke(Revoke { grant }) => {
                        Outcome::Ok(CallOutput::Revoked { grant: *grant })
                    }
                    _ => refusal(
                        ErrorCode::InvalidCall,
                        "the conformance executor only takes revocations",
                    ),
                }
            };
            receipts.push(Receipt {
                tx: tx.id(),
                context: *ctx,
                index: i as u32,
                outcome,
            });
        }
        self.executed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Executed {
                context: *ctx,
                txs: txs.iter().map(VerifiedTransaction::id).collect(),
            });
        Ok(Execution {
            receipts,
            writes: overlay.writes,
        })
    }
}

// ---------------------------------------------------------------- test_all

/// Runs every check with the default [`Settings`], each against a fresh
/// engine from `harness`.
///
/// Checks, in order: [`executor`], [`ordering`], [`resubmission`],
/// [`refusals`], [`certificates`], [`restart`], [`shutdown`],
/// [`failed_calls_never_commit`], [`certificate_after_shutdown`].
///
/// # Panics
/// On the first check that fails, with a message naming the check and what
/// the engine did wrong.
pub async fn test_all<H: EngineHarness>(harness: &mut H) {
    test_all_with(harness, &Settings::default()).await;
}

/// [`test_all`] with `settings`.
pub async fn test_all_with<H: EngineHarness>(harness: &mut H, settings: &Settings) {
    executor(harness, settings).await;
    ordering(harness, settings).await;
    resubmission(harness, settings).await;
    refusals(harness, settings).await;
    certificates(harness, settings).await;
    restart(harness, settings).await;
    shutdown(harness, settings).await;
    failed_calls_never_commit(harness, settings).await;
    certificate_after_shutdown(harness, settings).await;
}

// ---------------------------------------------------------------- the checks

/// `executor()` returns the executor the engine runs: the very `Arc` the
/// harness was given (before and after a restart), and the one blocks are
/// executed with.
pub async fn executor<H: EngineHarness>(harness: &mut H, settings: &Settings) {
    let mut c = Case::begin("executor", harness, settings).await;
    c.check_executor_identity("after start");
    let tx = c.fresh(1).remove(0);
    c.submit("a call", tx.clone()).await;
    if !c
        .executor
        .executed()
        .iter()
        .any(|e| e.txs.contains(&tx.id()))
    {
        c.fail("a call committed, but the executor the engine returns from executor() never executed it: the engine runs another executor");
    }
    c.restart().await;
    c.check_executor_identity("after a restart");
    c.finish().await;
}

/// Concurrent submissions all commit; every receipt names its transaction
/// and is the one the ledger stored; the blocks are at heights 1, 2, ...
/// with no gaps, each chained to the one before, holding exactly the
/// committed transactions, each once, with block times that never go
/// backwards; `status()` describes the last block; a call submitted after
/// another committed lands in a later block; the executor was handed
/// exactly the ledger's blocks, in height order, each once.
pub async fn ordering<H: EngineHarness>(harness: &mut H, settings: &Settings) {
    let mut c = Case::begin("ordering", harness, settings).await;
    let txs = c.fresh(settings.calls);
    let receipts = c.submit_all(&txs).await;
    for r in &receipts {
        c.expect_ok(r, "a valid call");
    }
    // One after another: each in a later block than the one before.
    let mut later = Vec::new();
    let mut last = receipts.iter().map(|r| r.context.height).max().unwrap_or(0);
    for tx in c.fresh(3) {
        let r = c
            .submit("a call submitted after the others committed", tx.clone())
            .await;
        c.expect_ok(&r, "a valid call");
        if r.context.height <= last {
            c.fail(format!(
                "a call submitted after a call at height {last} committed was put at height {}: blocks are ordered, a later call goes in a later block",
                r.context.height
            ));
        }
        last = r.context.height;
        later.push((tx, r));
    }
    let all: Vec<(VerifiedTransaction, Receipt)> =
        txs.into_iter().zip(receipts).chain(later).collect();
    let expected: HashSet<TxId> = all.iter().map(|(t, _)| t.id()).collect();
    let view = c.ledger_view(&expected).await;
    for (tx, r) in &all {
        c.expect_ledger_receipt(&view, tx, r);
    }
    c.check_executions(&view, 0, 0);
    c.finish().await;
}

/// Submitting a transaction again is idempotent: copies submitted while the
/// first waits all resolve with its receipt, a copy submitted after it
/// committed resolves with the original receipt at once and makes no block,
/// and the ledger holds each transaction once.
pub async fn resubmission<H: EngineHarness>(harness: &mut H, settings: &Settings) {
    let mut c = Case::begin("resubmission", harness, settings).await;
    // One call, three times at once.
    let tx = c.fresh(1).remove(0);
    let copies = vec![tx.clone(); 3];
    let receipts = c.submit_all(&copies).await;
    let first = receipts[0].clone();
    c.expect_ok(&first, "a valid call");
    if receipts.iter().any(|r| *r != first) {
        c.fail(format!(
            "the same transaction submitted three times at once resolved with different receipts: {receipts:?}"
        ));
    }
    // Again, after it committed: the original receipt, and no new block.
    let before = c.settled_height().await;
    let again = c.submit("a retry of a committed call", tx.clone()).await;
    if again != first {
        c.fail(format!(
            "a retry of a committed call resolved with {again:?}, not with its original receipt {first:?}"
        ));
    }
    let after = c.settled_height().await;
    if after != before {
        c.fail(format!(
            "a retry of a committed call moved the ledger from height {before} to {after}: a retry makes no block"
        ));
    }
    // Many calls, each twice, interleaved.
    let batch = c.fresh(settings.calls / 2);
    let twice: Vec<VerifiedTransaction> = batch.iter().chain(batch.iter()).cloned().collect();
    let receipts = c.submit_all(&twice).await;
    let (firsts, seconds) = receipts.split_at(batch.len());
    for (i, (a, b)) in firsts.iter().zip(seconds).enumerate() {
        c.expect_ok(a, "a valid call");
        if a != b {
            c.fail(format!(
                "call {i} of a batch, submitted twice at once, resolved with two different receipts: {a:?} and {b:?}"
            ));
        }
    }
    // A last call, so a stray second copy would have had its chance to land.
    let last = c.fresh(1).remove(0);
    let last_receipt = c.submit("a call after the retries", last.clone()).await;
    let mut all = vec![(tx, first)];
    all.extend(batch.into_iter().zip(firsts.iter().cloned()));
    all.push((last, last_receipt));
    let expected: HashSet<TxId> = all.iter().map(|(t, _)| t.id()).collect();
    let view = c.ledger_view(&expected).await;
    for (t, r) in &all {
        c.expect_ledger_receipt(&view, t, r);
    }
    c.check_executions(&view, 0, 0);
    c.finish().await;
}

/// A call the executor refuses is still ordered and answered with a receipt
/// (a refusal, not an error), alone and mixed with calls that succeed; a
/// second call under a used nonce is refused as a replay and leaves the
/// first call's receipt as it was.
pub async fn refusals<H: EngineHarness>(harness: &mut H, settings: &Settings) {
    let mut c = Case::begin("refusals", harness, settings).await;
    let mut all = Vec::new();
    // Refused on its own.
    let refused = c.refused_tx();
    let r = c
        .submit("a call the executor refuses", refused.clone())
        .await;
    c.expect_refused(&r, ErrorCode::InvalidCall, "a call the executor refuses");
    all.push((refused, r));
    // A replay: another call under a nonce that was used.
    let original = c.fresh(1).remove(0);
    let first = c.submit("a valid call", original.clone()).await;
    c.expect_ok(&first, "a valid call");
    let replay = c.replay_of(&original);
    let r = c
        .submit("a call replaying a used nonce", replay.clone())
        .await;
    c.expect_refused(
        &r,
        ErrorCode::ReplayedNonce,
        "a call replaying a used nonce",
    );
    if r.context.height <= first.context.height {
        c.fail(format!(
            "a replay submitted after the original committed at height {} was put at height {}",
            first.context.height, r.context.height
        ));
    }
    all.push((original, first));
    all.push((replay, r));
    // Mixed, at once.
    let mut mixed = Vec::new();
    for i in 0..settings.calls.max(2) / 2 {
        if i % 2 == 0 {
            mixed.push(c.refused_tx());
        } else {
            mixed.extend(c.fresh(1));
        }
    }
    let receipts = c.submit_all(&mixed).await;
    for (tx, r) in mixed.into_iter().zip(receipts) {
        if grant_of(&tx) == Some(REFUSED_GRANT) {
            c.expect_refused(&r, ErrorCode::InvalidCall, "a call the executor refuses");
        } else {
            c.expect_ok(&r, "a valid call");
        }
        all.push((tx, r));
    }
    let expected: HashSet<TxId> = all.iter().map(|(t, _)| t.id()).collect();
    let view = c.ledger_view(&expected).await;
    for (t, r) in &all {
        c.expect_ledger_receipt(&view, t, r);
    }
    c.check_executions(&view, 0, 0);
    c.finish().await;
}

/// `certificate(h)` resolves for genesis (0) and every committed height with
/// a certificate that verifies against the replica set, whose header is the
/// ledger's: genesis is [`LedgerHeader::genesis`], every other header names
/// its block's hash and time, the previous header, and the root and number
/// of its block's receipts; the status's state digest is the head header's
/// hash. A certificate asked for before its height commits resolves once it
/// does.
pub async fn certificates<H: EngineHarness>(harness: &mut H, settings: &Settings) {
    let mut c = Case::begin("certificates", harness, settings).await;
    let txs = c.fresh(settings.calls / 2);
    let mut all: Vec<(VerifiedTransaction, Receipt)> = Vec::new();
    let receipts = c.submit_all(&txs).await;
    all.extend(txs.into_iter().zip(receipts));
    for tx in c.fresh(2) {
        let r = c.submit("a call", tx.clone()).await;
        all.push((tx, r));
    }
    let expected: HashSet<TxId> = all.iter().map(|(t, _)| t.id()).collect();
    let view = c.ledger_view(&expected).await;
    let mut previous: Option<LedgerHeader> = None;
    for h in 0..=view.height {
        let header = c.check_certificate(&view, h, previous.as_ref()).await;
        previous = Some(header);
    }
    let head = previous.expect("genesis at least");
    let status = c.engine().status();
    if status.height == head.height && status.state_digest != head.hash() {
        c.fail(format!(
            "status() gives state digest {} at height {}, but the certified header there hashes to {}",
            status.state_digest,
            head.height,
            head.hash()
        ));
    }

    // Asked for before its height commits: resolves once it does.
    let next = view.height + 1;
    let tx = c.fresh(1).remove(0);
    let engine = c.engine();
    let (cert, receipt) = c
        .within(
            format!("certificate({next}), asked for before a call commits that height"),
            futures::future::join(engine.certificate(next), async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                engine.submit(tx.clone()).await
            }),
        )
        .await;
    let receipt = receipt.unwrap_or_else(|e| c.fail(format!("submit of a call failed: {e}")));
    let cert = cert.unwrap_or_else(|e| {
        c.fail(format!(
            "certificate({next}), asked for before the height committed, failed: {e}"
        ))
    });
    c.verify(&cert, next, "asked for before the height committed");
    let stored = c
        .run()
        .ledger
        .header(next)
        .unwrap_or_else(|e| c.fail(format!("the ledger's header {next} cannot be read: {e}")));
    if stored.as_ref() != Some(&cert.header) {
        c.fail(format!(
            "certificate({next}), asked for before the height committed, is of header {:?}, but the ledger holds {stored:?}",
            cert.header
        ));
    }
    all.push((tx, receipt));
    let expected: HashSet<TxId> = all.iter().map(|(t, _)| t.id()).collect();
    c.ledger_view(&expected).await;
    c.finish().await;
}

/// Durability across a restart: after `shutdown` and a restart on the same
/// files, the engine stands where it stood (height, block hash, time, state
/// digest), the blocks, receipts and certified headers are as before, it
/// executes no committed block again, a retry of a committed call gets its
/// original receipt without a new block, and new calls commit at the next
/// heights.
pub async fn restart<H: EngineHarness>(harness: &mut H, settings: &Settings) {
    let mut c = Case::begin("restart", harness, settings).await;
    let txs = c.fresh(settings.calls / 2);
    let mut all: Vec<(VerifiedTransaction, Receipt)> = Vec::new();
    let receipts = c.submit_all(&txs).await;
    all.extend(txs.into_iter().zip(receipts));
    let refused = c.refused_tx();
    let r = c
        .submit("a call the executor refuses", refused.clone())
        .await;
    all.push((refused, r));
    let expected: HashSet<TxId> = all.iter().map(|(t, _)| t.id()).collect();
    let before = c.ledger_view(&expected).await;
    let mut headers = Vec::new();
    let mut previous: Option<LedgerHeader> = None;
    for h in 0..=before.height {
        let header = c.check_certificate(&before, h, previous.as_ref()).await;
        headers.push(header.clone());
        previous = Some(header);
    }
    let status = c.engine().status();
    let executed = c.executor.executed().len();

    c.restart().await;

    let again = c.engine().status();
    if (
        again.height,
        again.block_hash,
        again.time,
        again.state_digest,
    ) != (
        status.height,
        status.block_hash,
        status.time,
        status.state_digest,
    ) {
        c.fail(format!(
            "after a restart the engine stands at height {} ({}, time {}, state digest {}), but it had committed up to height {} ({}, time {}, state digest {})",
            again.height, again.block_hash, again.time, again.state_digest,
            status.height, status.block_hash, status.time, status.state_digest
        ));
    }
    let after = c.ledger_view(&expected).await;
    for (h, (a, b)) in before.blocks.iter().zip(&after.blocks).enumerate() {
        if a != b {
            c.fail(format!(
                "the block at height {} changed across a restart",
                h + 1
            ));
        }
    }
    for (t, r) in &all {
        c.expect_ledger_receipt(&after, t, r);
    }
    // Certificates of the heights committed before, still the same headers.
    for (h, header) in headers.iter().enumerate() {
        let h = h as u64;
        let cert = c
            .within(
                format!("certificate({h}) after a restart"),
                c.engine().certificate(h),
            )
            .await
            .unwrap_or_else(|e| c.fail(format!("certificate({h}) after a restart failed: {e}")));
        c.verify(&cert, h, "after a restart");
        if cert.header != *header {
            c.fail(format!(
                "the certified header at height {h} changed across a restart: {header:?} before, {:?} after",
                cert.header
            ));
        }
    }
    // A retry of a committed call: its receipt, no block.
    let (old_tx, old_receipt) = all[0].clone();
    let height = c.settled_height().await;
    let retry = c
        .submit(
            "a retry, after a restart, of a call committed before it",
            old_tx,
        )
        .await;
    if retry != old_receipt {
        c.fail(format!(
            "a retry after a restart of a call committed before it resolved with {retry:?}, not its original receipt {old_receipt:?}"
        ));
    }
    let settled = c.settled_height().await;
    if settled != height {
        c.fail(format!(
            "a retry after a restart of a committed call moved the ledger from height {height} to {settled}: a retry makes no block"
        ));
    }
    // New calls continue at the next heights.
    let txs = c.fresh(settings.calls / 4 + 1);
    let receipts = c.submit_all(&txs).await;
    for r in &receipts {
        c.expect_ok(r, "a valid call submitted after a restart");
        if r.context.height <= status.height {
            c.fail(format!(
                "a call submitted after a restart at height {} was put at height {}: a height is never reused",
                status.height, r.context.height
            ));
        }
    }
    all.extend(txs.into_iter().zip(receipts));
    let expected: HashSet<TxId> = all.iter().map(|(t, _)| t.id()).collect();
    let view = c.ledger_view(&expected).await;
    for (t, r) in &all {
        c.expect_ledger_receipt(&view, t, r);
    }
    // Before the restart: heights 1..; after it: the next ones, nothing again.
    c.check_executions(&view, executed, status.height);
    c.finish().await;
}

/// `shutdown` finishes what was ordered: calls in flight when it is called
/// all resolve; each one that resolved with a receipt is on the ledger with
/// that receipt, and none that failed is. Afterwards `submit` fails instead
/// of hanging, and a retry of a committed call fails or gets its original
/// receipt.
pub async fn shutdown<H: EngineHarness>(harness: &mut H, settings: &Settings) {
    let mut c = Case::begin("shutdown", harness, settings).await;
    let committed = c.fresh(1).remove(0);
    let committed_receipt = c.submit("a call", committed.clone()).await;

    // Calls in flight when shutdown is called.
    c.shutdown_with_calls_in_flight(settings.calls / 2).await;
    let height = c
        .run()
        .ledger
        .head()
        .map(|h| h.height)
        .unwrap_or_else(|e| c.fail(format!("the ledger's head cannot be read: {e}")));

    // After shutdown: a new call fails, without hanging.
    let tx = c.fresh(1).remove(0);
    let result = c
        .within("submit() after shutdown()", c.engine().submit(tx.clone()))
        .await;
    if let Ok(r) = result {
        c.fail(format!(
            "submit() after shutdown() resolved with a receipt ({r:?}): a stopped engine takes no calls"
        ));
    }
    // A retry of a committed call: an error, or its original receipt.
    let result = c
        .within(
            "submit() after shutdown() of a call committed before",
            c.engine().submit(committed.clone()),
        )
        .await;
    if let Ok(r) = result {
        if r != committed_receipt {
            c.fail(format!(
                "a retry after shutdown() of a committed call resolved with {r:?}, not its original receipt {committed_receipt:?}"
            ));
        }
    }
    let status = c.engine().status();
    if status.height != height {
        c.fail(format!(
            "after shutdown() status() says height {}, but the ledger stopped at height {height}",
            status.height
        ));
    }
    // The engine is down already: `finish` only stops the harness.
    c.finish().await;
}

/// A call whose `submit` failed with [`ConsensusError::Stopped`] was never
/// ordered: after `shutdown` with calls in flight and a restart on the same
/// files, once a new call has committed (so the engine has caught up with
/// whatever was ordered before it), no call whose submission failed with
/// `Stopped` is on the ledger, and every call whose submission gave a
/// receipt is, with that receipt.
///
/// Another error (storage, or a replicated engine that stopped before a
/// call it had sent to the other replicas was decided) promises nothing
/// about the outcome: the call may or may not be on the ledger. An engine
/// that can tell should drain such calls at shutdown rather than fail them.
///
/// [`ConsensusError::Stopped`]: rr_core::ConsensusError::Stopped
pub async fn failed_calls_never_commit<H: EngineHarness>(harness: &mut H, settings: &Settings) {
    let mut c = Case::begin("failed_calls_never_commit", harness, settings).await;
    let first = c.fresh(1).remove(0);
    let first_receipt = c.submit("a call", first.clone()).await;
    let (txs, results) = c.shutdown_with_calls_in_flight(settings.calls / 2).await;
    c.restart().await;
    let probe = c.fresh(1).remove(0);
    let probe_receipt = c.submit("a call after the restart", probe.clone()).await;
    let mut all = vec![(first, first_receipt), (probe, probe_receipt)];
    let mut failed = 0;
    for (tx, result) in txs.into_iter().zip(results) {
        match result {
            Ok(r) => all.push((tx, r)),
            Err(e @ rr_core::ConsensusError::Stopped) => {
                failed += 1;
                let stored = c
                    .run()
                    .ledger
                    .receipt(&tx.id())
                    .unwrap_or_else(|e| c.unreadable(e));
                if let Some(stored) = stored {
                    c.fail(format!(
                        "a call in flight at shutdown failed with Stopped ({e}), yet after a restart it is committed: {stored:?} (at height {}; {failed} of the calls in flight failed with Stopped so far). Stopped means the call was never ordered, and shutdown() finishes what was ordered",
                        stored.context.height
                    ));
                }
            }
            // The outcome is unknown: nothing to check.
            Err(_) => {}
        }
    }
    let expected: HashSet<TxId> = all.iter().map(|(t, _)| t.id()).collect();
    let view = c.ledger_view(&expected).await;
    for (t, r) in &all {
        c.expect_ledger_receipt(&view, t, r);
    }
    c.finish().await;
}

/// `certificate` of a height the engine will not reach fails once the engine
/// is stopped, instead of waiting forever: one asked for before `shutdown`
/// resolves (with an error) when the engine stops, and one asked for after
/// it fails at once.
pub async fn certificate_after_shutdown<H: EngineHarness>(harness: &mut H, settings: &Settings) {
    let mut c = Case::begin("certificate_after_shutdown", harness, settings).await;
    let tx = c.fresh(1).remove(0);
    c.submit("a call", tx).await;
    let next = c.settled_height().await + 1;
    // Waiting when the engine stops.
    let engine = c.engine();
    let (waiting, stopped) = c
        .within(
            format!("certificate({next}), waiting when shutdown() is called, and shutdown()"),
            futures::future::join(engine.certificate(next), async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                engine.shutdown().await
            }),
        )
        .await;
    if let Err(e) = stopped {
        c.fail(format!("shutdown() failed: {e}"));
    }
    c.stopped = true;
    c.expect_no_certificate(next, waiting, "waiting when shutdown() was called");
    // Asked for after the engine stopped.
    let height = c
        .run()
        .ledger
        .head()
        .unwrap_or_else(|e| c.unreadable(e))
        .height;
    let never = height + 1;
    let result = c
        .within(
            format!("certificate({never}) (a height not reached) after shutdown()"),
            c.engine().certificate(never),
        )
        .await;
    c.expect_no_certificate(never, result, "asked for after shutdown()");
    c.finish().await;
}

// ---------------------------------------------------------------- the cases

/// Clients the suite signs calls as.
const CLIENTS: u8 = 4;
/// The grant of calls the suite expects to succeed.
const OK_GRANT: GrantId = GrantId([1; 32]);
/// The grant of a replay's call (another call than the original's).
const REPLAY_GRANT: GrantId = GrantId([2; 32]);

fn fail(case: &str, msg: impl Display) -> ! {
    panic!("ConsensusEngine conformance, check `{case}`: {msg}")
}

async fn within<T>(
    case: &str,
    timeout: Duration,
    what: impl Display,
    fut: impl Future<Output = T>,
) -> T {
    match tokio::time::timeout(timeout, fut).await {
        Ok(t) => t,
        Err(_) => fail(
            case,
            format!(
                "{what} did not finish within {timeout:?}: the engine hangs (or is far too slow for Settings::timeout)"
            ),
        ),
    }
}

fn client(i: u8) -> SigningKey {
    SigningKey::from_bytes(&blake3::derive_key(
        "rr-consensus conformance client key",
        &[i],
    ))
}

fn grant_of(tx: &VerifiedTransaction) -> Option<GrantId> {
    match &tx.body().call {
        Call::Revoke(Revoke { grant }) => Some(*grant),
        _ => None,
    }
}

/// The committed ledger as the suite read it.
struct LedgerView {
    /// The head height.
    height: u64,
    /// Blocks 1..=height (`blocks[h - 1]`).
    blocks: Vec<Block>,
    /// Every committed transaction's receipt.
    receipts: HashMap<TxId, Receipt>,
}

/// One check in progress: its engine, executor and directory.
struct Case<'h, H: EngineHarness> {
    name: &'static str,
    settings: &'h Settings,
    harness: &'h mut H,
    executor: Arc<SuiteExecutor>,
    run: Option<Running<H::Engine>>,
    /// Whether the check shut the engine down itself (and left it so).
    stopped: bool,
    keys: Vec<SigningKey>,
    next_nonce: u64,
    /// Last: removed once everything using it is gone.
    _dir: tempfile::TempDir,
}

impl<'h, H: EngineHarness> Case<'h, H> {
    async fn begin(name: &'static str, harness: &'h mut H, settings: &'h Settings) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rr-engine-conformance-")
            .tempdir()
            .unwrap_or_else(|e| fail(name, format!("cannot make a temporary directory: {e}")));
        let executor = Arc::new(SuiteExecutor::new());
        let run = within(
            name,
            settings.timeout,
            "starting the engine (EngineHarness::start)",
            harness.start(dir.path(), executor.clone()),
        )
        .await
        .unwrap_or_else(|e| fail(name, format!("the harness could not start the engine: {e}")));
        let status = run.engine.status();
        if status.height != 0 || status.block_hash != BlockHash::default() {
            fail(
                name,
                format!(
                    "an engine started on an empty directory stands at height {} ({}), not at 0",
                    status.height, status.block_hash
                ),
            );
        }
        Self {
            name,
            settings,
            harness,
            executor,
            run: Some(run),
            stopped: false,
            keys: (0..CLIENTS).map(client).collect(),
            next_nonce: 1,
            _dir: dir,
        }
    }

    fn fail(&self, msg: impl Display) -> ! {
        fail(self.name, msg)
    }

    fn unreadable(&self, e: rr_storage::LedgerError) -> ! {
        self.fail(format!("the ledger cannot be read: {e}"))
    }

    async fn within<T>(&self, what: impl Display, fut: impl Future<Output = T>) -> T {
        within(self.name, self.settings.timeout, what, fut).await
    }

    fn run(&self) -> &Running<H::Engine> {
        self.run
            .as_ref()
            .unwrap_or_else(|| self.fail("the engine is not running"))
    }

    fn engine(&self) -> &H::Engine {
        &self.run().engine
    }

    fn tx(&self, client: usize, nonce: u64, grant: GrantId) -> VerifiedTransaction {
        let key = &self.keys[client];
        TxBody {
            signer: AccountId::from_verifying_key(&key.verifying_key()),
            nonce,
            call: Call::Revoke(Revoke { grant }),
        }
        .sign(key)
        .verify()
        .unwrap_or_else(|e| self.fail(format!("the suite's own call does not verify: {e}")))
    }

    /// `n` new calls the executor accepts, from the suite's clients in turn.
    fn fresh(&mut self, n: usize) -> Vec<VerifiedTransaction> {
        (0..n)
            .map(|i| {
                let nonce = self.next_nonce;
                self.next_nonce += 1;
                self.tx(i % self.keys.len(), nonce, OK_GRANT)
            })
            .collect()
    }

    /// A new call the executor refuses.
    fn refused_tx(&mut self) -> VerifiedTransaction {
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        self.tx(0, nonce, REFUSED_GRANT)
    }

    /// Another call under `tx`'s signer and nonce.
    fn replay_of(&self, tx: &VerifiedTransaction) -> VerifiedTransaction {
        let client = self
            .keys
            .iter()
            .position(|k| AccountId::from_verifying_key(&k.verifying_key()) == tx.signer())
            .unwrap_or_else(|| self.fail("a call of none of the suite's clients"));
        self.tx(client, tx.body().nonce, REPLAY_GRANT)
    }

    fn check_executor_identity(&self, when: &str) {
        if !Arc::ptr_eq(self.engine().executor(), &self.executor) {
            self.fail(format!(
                "{when}, executor() does not return the executor the engine was started with (another Arc)"
            ));
        }
    }

    /// Submits `tx` and waits for its receipt, which must name it.
    async fn submit(&self, what: &str, tx: VerifiedTransaction) -> Receipt {
        let id = tx.id();
        let r = self
            .within(format!("submit() of {what}"), self.engine().submit(tx))
            .await
            .unwrap_or_else(|e| self.fail(format!("submit() of {what} failed: {e}")));
        if r.tx != id {
            self.fail(format!(
                "submit() of {what} ({id}) resolved with the receipt of another transaction: {r:?}"
            ));
        }
        r
    }

    /// Submits every call of `txs` at once and waits for all their receipts.
    async fn submit_all(&self, txs: &[VerifiedTransaction]) -> Vec<Receipt> {
        let engine = self.engine();
        let results = self
            .within(
                format!("{} calls submitted at once", txs.len()),
                futures::future::join_all(txs.iter().map(|t| engine.submit(t.clone()))),
            )
            .await;
        results
            .into_iter()
            .zip(txs)
            .enumerate()
            .map(|(i, (r, tx))| {
                let r = r.unwrap_or_else(|e| {
                    self.fail(format!(
                        "call {i} of {} submitted at once failed: {e}",
                        txs.len()
                    ))
                });
                if r.tx != tx.id() {
                    self.fail(format!(
                        "call {i} of {} submitted at once ({}) resolved with the receipt of another transaction: {r:?}",
                        txs.len(),
                        tx.id()
                    ));
                }
                r
            })
            .collect()
    }

    fn expect_ok(&self, r: &Receipt, what: &str) {
        if !matches!(r.outcome, Outcome::Ok(_)) {
            self.fail(format!(
                "{what} was refused: {r:?}; the suite's executor accepts it"
            ));
        }
    }

    fn expect_refused(&self, r: &Receipt, code: ErrorCode, what: &str) {
        match &r.outcome {
            Outcome::Refused(refusal) if refusal.code == code => {}
            _ => self.fail(format!(
                "{what} resolved with {r:?}; the suite's executor refuses it with {code}"
            )),
        }
    }

    /// `r`, the receipt `tx`'s submit resolved with, is the ledger's.
    fn expect_ledger_receipt(&self, view: &LedgerView, tx: &VerifiedTransaction, r: &Receipt) {
        let id = tx.id();
        match view.receipts.get(&id) {
            Some(stored) if stored == r => {}
            Some(stored) => self.fail(format!(
                "submit() of {id} resolved with {r:?}, but the ledger's receipt of it is {stored:?}"
            )),
            None => self.fail(format!(
                "submit() of {id} resolved with a receipt, but no block on the ledger holds it"
            )),
        }
        let indexed =
            self.run().ledger.receipt(&id).unwrap_or_else(|e| {
                self.fail(format!("the ledger's receipts cannot be read: {e}"))
            });
        if indexed.as_ref() != Some(r) {
            self.fail(format!(
                "submit() of {id} resolved with {r:?}, but the ledger's receipt index gives {indexed:?}"
            ));
        }
    }

    /// The ledger's height once `status()` agrees with it.
    async fn settled_height(&self) -> u64 {
        self.settled_head().await.height
    }

    /// Waits (bounded) until `status()` describes the ledger's head, and
    /// returns it.
    async fn settled_head(&self) -> rr_storage::Head {
        let run = self.run();
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        loop {
            let head = run
                .ledger
                .head()
                .unwrap_or_else(|e| self.fail(format!("the ledger's head cannot be read: {e}")));
            let status = run.engine.status();
            if (
                status.height,
                status.block_hash,
                status.time,
                status.state_digest,
            ) == (head.height, head.block_hash, head.time, head.state_digest)
            {
                return head;
            }
            if tokio::time::Instant::now() >= deadline {
                self.fail(format!(
                    "status() says height {} (block {}, time {}, state digest {}), but the ledger's head is at height {} (block {}, time {}, state digest {}): the status describes the last committed block",
                    status.height, status.block_hash, status.time, status.state_digest,
                    head.height, head.block_hash, head.time, head.state_digest
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Reads and checks the whole ledger: the status describes its head;
    /// blocks at heights 1..=head, chained, times never going backwards,
    /// each with one receipt per transaction in order; every transaction
    /// once; exactly the transactions of `expected`.
    async fn ledger_view(&self, expected: &HashSet<TxId>) -> LedgerView {
        let head = self.settled_head().await;
        let run = self.run();
        let status = run.engine.status();
        let set = &run.replica_set;
        if usize::from(status.replicas) != set.n()
            || usize::from(status.faults_tolerated) != set.f()
        {
            self.fail(format!(
                "status() says {} replicas tolerating {} faults, but the replica set has n = {}, f = {}",
                status.replicas,
                status.faults_tolerated,
                set.n(),
                set.f()
            ));
        }
        let ledger = &run.ledger;
        let mut blocks = Vec::with_capacity(head.height as usize);
        let mut receipts: HashMap<TxId, Receipt> = HashMap::new();
        let mut parent = BlockHash::default();
        let mut time = Timestamp(0);
        for h in 1..=head.height {
            let block = ledger.block(h).unwrap_or_else(|e| self.unreadable(e)).unwrap_or_else(|| {
                self.fail(format!(
                    "the ledger's head is at height {}, but it holds no block at height {h}: heights have no gaps",
                    head.height
                ))
            });
            let ctx = block.header.context;
            if ctx.height != h {
                self.fail(format!(
                    "the block stored at height {h} says it is at height {}",
                    ctx.height
                ));
            }
            if block.header.parent != parent {
                self.fail(format!(
                    "the block at height {h} names parent {}, but the block before it is {parent}",
                    block.header.parent
                ));
            }
            if ctx.time < time {
                self.fail(format!(
                    "block time goes backwards: {} at height {}, {} at height {h}",
                    time,
                    h - 1,
                    ctx.time
                ));
            }
            let stored = ledger
                .block_receipts(h)
                .unwrap_or_else(|e| self.unreadable(e))
                .unwrap_or_else(|| {
                    self.fail(format!("no receipts stored for the block at height {h}"))
                });
            if stored.len() != block.txs.len() {
                self.fail(format!(
                    "the block at height {h} holds {} transactions but {} receipts",
                    block.txs.len(),
                    stored.len()
                ));
            }
            for (i, (tx, r)) in block.txs.iter().zip(stored).enumerate() {
                let id = tx.id();
                if r.tx != id || r.index != i as u32 || r.context != ctx {
                    self.fail(format!(
                        "receipt {i} of the block at height {h} is {r:?}, not the receipt of its transaction {i} ({id}) in that block"
                    ));
                }
                if let Some(first) = receipts.insert(id, r) {
                    self.fail(format!(
                        "transaction {id} is committed twice: at height {} and at height {h}",
                        first.context.height
                    ));
                }
            }
            parent = block.header.hash();
            time = ctx.time;
            blocks.push(block);
        }
        if head.height > 0 && (head.block_hash != parent || head.time != time) {
            self.fail(format!(
                "the ledger's head names block {} at time {}, but its last block is {parent} at time {time}",
                head.block_hash, head.time
            ));
        }
        let missing: Vec<&TxId> = expected
            .iter()
            .filter(|id| !receipts.contains_key(id))
            .collect();
        if !missing.is_empty() {
            self.fail(format!(
                "{} committed transactions (their submit resolved with a receipt) are in no block, e.g. {}",
                missing.len(),
                missing[0]
            ));
        }
        let extra: Vec<&TxId> = receipts
            .keys()
            .filter(|id| !expected.contains(id))
            .collect();
        if !extra.is_empty() {
            self.fail(format!(
                "the ledger holds {} transactions nobody submitted (or whose submit failed), e.g. {}",
                extra.len(),
                extra[0]
            ));
        }
        LedgerView {
            height: head.height,
            blocks,
            receipts,
        }
    }

    /// The executor was handed the blocks after height `after`, in order,
    /// each once, each as the ledger holds it (from its `skip`th call on).
    fn check_executions(&self, view: &LedgerView, skip: usize, after: u64) {
        let log = self.executor.executed();
        let mut want = after + 1;
        for e in log.iter().skip(skip) {
            if e.context.height != want {
                self.fail(format!(
                    "the executor was handed the block at height {} when the next block was {want}: it gets heights {}, {}, ... in order, each once, and never a committed block again",
                    e.context.height,
                    after + 1,
                    after + 2
                ));
            }
            if let Some(block) = view.blocks.get(want as usize - 1) {
                let ids: Vec<TxId> = block.txs.iter().map(|t| t.id()).collect();
                if e.context != block.header.context || e.txs != ids {
                    self.fail(format!(
                        "the executor was handed, at height {want}, another block ({:?}, {} transactions) than the ledger holds there ({:?}, {} transactions)",
                        e.context,
                        e.txs.len(),
                        block.header.context,
                        ids.len()
                    ));
                }
            }
            want += 1;
        }
        if want <= view.height {
            self.fail(format!(
                "the ledger holds blocks up to height {}, but the executor was handed blocks only up to height {}: every committed block is executed",
                view.height,
                want - 1
            ));
        }
    }

    /// A verified certificate of height `h`, or the failure.
    fn verify(&self, cert: &Certificate, h: u64, when: &str) {
        let set = &self.run().replica_set;
        if let Err(e) = cert.verify(set) {
            self.fail(format!(
                "certificate({h}) {when} does not verify against the replica set: {e}"
            ));
        }
        if cert.header.height != h {
            self.fail(format!(
                "certificate({h}) {when} is of the header at height {}",
                cert.header.height
            ));
        }
    }

    /// Gets and checks the certificate of height `h` against the ledger;
    /// returns its header.
    async fn check_certificate(
        &self,
        view: &LedgerView,
        h: u64,
        previous: Option<&LedgerHeader>,
    ) -> LedgerHeader {
        let cert = self
            .within(format!("certificate({h})"), self.engine().certificate(h))
            .await
            .unwrap_or_else(|e| self.fail(format!("certificate({h}) failed: {e}")));
        self.verify(&cert, h, "of a committed height");
        let set = &self.run().replica_set;
        let header = cert.header;
        if h == 0 {
            let genesis = LedgerHeader::genesis(set);
            if header != genesis {
                self.fail(format!(
                    "certificate(0) is of {header:?}, not of the genesis header {genesis:?}"
                ));
            }
            return header;
        }
        let block = &view.blocks[h as usize - 1];
        if header.block != block.header.hash() || header.time != block.header.context.time {
            self.fail(format!(
                "certificate({h}) names block {} at time {}, but the block at height {h} is {} at time {}",
                header.block,
                header.time,
                block.header.hash(),
                block.header.context.time
            ));
        }
        if let Some(previous) = previous {
            if header.parent != previous.hash() {
                self.fail(format!(
                    "certificate({h}) names previous header {}, but the certified header at height {} hashes to {}",
                    header.parent,
                    h - 1,
                    previous.hash()
                ));
            }
        }
        let receipts = self
            .run()
            .ledger
            .block_receipts(h)
            .unwrap_or_else(|e| self.fail(format!("the ledger cannot be read: {e}")))
            .unwrap_or_default();
        let leaves: Vec<_> = receipts
            .iter()
            .map(|r| rr_core::merkle::leaf_hash(&r.to_bytes()))
            .collect();
        if header.receipts as usize != block.txs.len()
            || header.receipts_root != rr_core::merkle::root(&leaves)
        {
            self.fail(format!(
                "certificate({h}) covers {} receipts with root {}, but the block at height {h} has {} receipts with root {}",
                header.receipts,
                header.receipts_root,
                block.txs.len(),
                rr_core::merkle::root(&leaves)
            ));
        }
        header
    }

    /// Submits `n` new calls and calls `shutdown()` while they are in
    /// flight; checks that they all resolve, that each receipt is on the
    /// ledger once `shutdown()` returned and that no call that failed is.
    /// Returns the calls and what their submissions gave.
    async fn shutdown_with_calls_in_flight(
        &mut self,
        n: usize,
    ) -> (
        Vec<VerifiedTransaction>,
        Vec<Result<Receipt, rr_core::ConsensusError>>,
    ) {
        let txs = self.fresh(n);
        let engine = self.engine();
        let (results, stopped) = self
            .within(
                "shutdown() with calls in flight, and those calls",
                futures::future::join(
                    futures::future::join_all(txs.iter().map(|t| engine.submit(t.clone()))),
                    async {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        engine.shutdown().await
                    },
                ),
            )
            .await;
        if let Err(e) = stopped {
            self.fail(format!("shutdown() with calls in flight failed: {e}"));
        }
        self.stopped = true;
        let ledger = &self.run().ledger;
        for (tx, result) in txs.iter().zip(&results) {
            let stored = ledger.receipt(&tx.id()).unwrap_or_else(|e| {
                self.fail(format!("the ledger's receipts cannot be read: {e}"))
            });
            match result {
                Ok(r) => {
                    if r.tx != tx.id() {
                        self.fail(format!(
                            "a call in flight at shutdown resolved with the receipt of another transaction: {r:?}"
                        ));
                    }
                    if stored.as_ref() != Some(r) {
                        self.fail(format!(
                            "a call in flight at shutdown resolved with receipt {r:?}, but once shutdown() returned the ledger holds {stored:?}: a receipt is given only once its block is durable"
                        ));
                    }
                }
                Err(e) => {
                    if let Some(stored) = stored {
                        self.fail(format!(
                            "a call in flight at shutdown failed ({e}), but the ledger holds it: {stored:?}; submit fails only for a call that was never ordered"
                        ));
                    }
                }
            }
        }
        (txs, results)
    }

    /// `result`, what `certificate(h)` of a stopped engine gave, is an
    /// error, or the certificate of a header the ledger really holds.
    fn expect_no_certificate(
        &self,
        h: u64,
        result: Result<Certificate, rr_core::ConsensusError>,
        when: &str,
    ) {
        let Ok(cert) = result else { return };
        let stored = self
            .run()
            .ledger
            .header(h)
            .unwrap_or_else(|e| self.unreadable(e));
        if stored.as_ref() != Some(&cert.header) {
            self.fail(format!(
                "certificate({h}), {when}, resolved with {cert:?}, but the stopped engine's ledger holds {stored:?} there: a stopped engine's certificate() fails"
            ));
        }
    }

    async fn shutdown_engine(&self, when: &str) {
        let result = self
            .within(format!("shutdown() {when}"), self.engine().shutdown())
            .await;
        if let Err(e) = result {
            self.fail(format!("shutdown() {when} failed: {e}"));
        }
    }

    /// Shuts the engine down, drops it and has the harness restart it.
    async fn restart(&mut self) {
        if !self.stopped {
            self.shutdown_engine("before a restart").await;
        }
        drop(self.run.take());
        let (name, timeout) = (self.name, self.settings.timeout);
        let run = within(
            name,
            timeout,
            "restarting the engine (EngineHarness::restart)",
            self.harness.restart(),
        )
        .await
        .unwrap_or_else(|e| {
            fail(
                name,
                format!("the harness could not restart the engine: {e}"),
            )
        });
        self.run = Some(run);
        self.stopped = false;
    }

    /// Shuts the engine down and stops the harness.
    async fn finish(mut self) {
        if self.run.is_some() && !self.stopped {
            self.shutdown_engine("at the end of the check").await;
        }
        drop(self.run.take());
        let (name, timeout) = (self.name, self.settings.timeout);
        within(
            name,
            timeout,
            "stopping the harness (EngineHarness::stop)",
            self.harness.stop(),
        )
        .await;
    }
}
