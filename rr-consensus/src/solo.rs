//! The one-replica engine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rr_core::cert::{Certificate, HeaderSignature, LedgerHeader};
use rr_core::{
    Block, BlockContext, ConsensusEngine, ConsensusError, ContractExecutor, EngineStatus,
    Execution, Overlay, Receipt, TxId, VerifiedTransaction, WriteSet,
};
use rr_storage::{Head, Ledger};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info};

use crate::clock::Clock;
use crate::pbft::ReplicaKey;

const TARGET: &str = "rr_consensus::solo";

/// Settings of the [`Solo`] engine. Start from [`SoloConfig::default`] and
/// set the fields that differ.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SoloConfig {
    /// Most transactions in one block. Default 512: a block of 512 small calls
    /// executes in well under a millisecond, so the durable commit (an fsync)
    /// dominates and bigger blocks only add latency.
    pub max_batch: usize,
    /// How long the first transaction of a block waits for company when the
    /// queue is empty. Default 0: under load the queue fills while the previous
    /// block commits, so batching needs no timer; idle, a call commits at once.
    pub max_delay: Duration,
    /// Transactions that may wait for ordering; `submit` waits (backpressure)
    /// when the queue is full. Default 16384.
    pub queue_capacity: usize,
}

impl Default for SoloConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            max_delay: Duration::ZERO,
            queue_capacity: 16 * 1024,
        }
    }
}

impl SoloConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_batch == 0 {
            return Err("solo.max_batch must be at least 1".into());
        }
        if self.queue_capacity == 0 {
            return Err("solo.queue_capacity must be at least 1".into());
        }
        if self.max_delay > Duration::from_secs(10) {
            return Err(format!(
                "solo.max_delay of {:?} is over the 10 s limit: calls would wait that long",
                self.max_delay
            ));
        }
        Ok(())
    }
}

type Reply = oneshot::Sender<Result<Receipt, ConsensusError>>;
/// Replies waiting for each queued transaction: a resubmission joins them.
type Waiters = Mutex<HashMap<TxId, Vec<Reply>>>;

/// The one-replica engine: orders submitted transactions into blocks, executes
/// them in order, commits each block durably, then answers. When more calls
/// wait than one block holds, several blocks are committed in one durable
/// transaction.
///
/// It signs each block's header with its key as it commits it, so every
/// header is certified (1 of 1) the moment its block is: a dev node and a
/// cluster give clients the same certificates to check.
///
/// Restart-safe: [`Solo::start`] resumes at the ledger's head.
pub struct Solo<E> {
    queue: RwLock<Option<mpsc::Sender<VerifiedTransaction>>>,
    waiters: Arc<Waiters>,
    ledger: Arc<Ledger>,
    key: ReplicaKey,
    status: Arc<RwLock<EngineStatus>>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    executor: Arc<E>,
}

impl<E> std::fmt::Debug for Solo<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Solo")
            .field("status", &*self.status.read().expect("status lock"))
            .finish()
    }
}

fn status_of(head: &Head) -> EngineStatus {
    EngineStatus {
        engine: "solo".into(),
        height: head.height,
        block_hash: head.block_hash,
        time: head.time,
        state_digest: head.state_digest,
        replicas: 1,
        faults_tolerated: 0,
        view: None,
        primary: None,
        changing_to: None,
        view_changes: 0,
    }
}

fn storage(e: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Storage(e.to_string())
}

/// The replica's signature over `header`.
fn sign(key: &ReplicaKey, header: &LedgerHeader) -> HeaderSignature {
    HeaderSignature {
        replica: key.id(),
        signature: key
            .sign(&LedgerHeader::signing_bytes(&header.hash()))
            .to_bytes()
            .to_vec(),
    }
}

impl<E: ContractExecutor> Solo<E> {
    /// Starts the engine on `ledger`, resuming at its head, signing headers
    /// with `key` (the replica set is that one key; `key.id()` should be
    /// replica 0). Must be called inside a tokio runtime.
    pub fn start(
        ledger: Arc<Ledger>,
        executor: Arc<E>,
        clock: Arc<dyn Clock>,
        config: SoloConfig,
        key: ReplicaKey,
    ) -> Result<Self, ConsensusError> {
        config.validate().map_err(ConsensusError::Storage)?;
        let head = ledger.head().map_err(storage)?;
        info!(target: TARGET, height = head.height, "solo engine starting");
        let status = Arc::new(RwLock::new(status_of(&head)));
        let waiters: Arc<Waiters> = Arc::default();
        let (sender, receiver) = mpsc::channel(config.queue_capacity);
        let task = tokio::spawn(run(Run {
            receiver,
            ledger: ledger.clone(),
            executor: executor.clone(),
            clock,
            config,
            head,
            status: status.clone(),
            waiters: waiters.clone(),
            key: key.clone(),
        }));
        Ok(Self {
            queue: RwLock::new(Some(sender)),
            waiters,
            ledger,
            key,
            status,
            task: tokio::sync::Mutex::new(Some(task)),
            executor,
        })
    }
}

struct Run<E> {
    receiver: mpsc::Receiver<VerifiedTransaction>,
    ledger: Arc<Ledger>,
    executor: Arc<E>,
    clock: Arc<dyn Clock>,
    config: SoloConfig,
    head: Head,
    status: Arc<RwLock<EngineStatus>>,
    waiters: Arc<Waiters>,
    key: ReplicaKey,
}

async fn run<E: ContractExecutor>(r: Run<E>) {
    let Run {
        mut receiver,
        ledger,
        executor,
        clock,
        config,
        mut head,
        status,
        waiters,
        key,
    } = r;
    let answer = |id: &TxId, result: Result<Receipt, ConsensusError>| {
        for reply in waiters
            .lock()
            .expect("waiters lock")
            .remove(id)
            .unwrap_or_default()
        {
            // A caller that went away still had its call committed.
            let copy = match &result {
                Ok(r) => Ok(r.clone()),
                Err(e) => Err(ConsensusError::Storage(e.to_string())),
            };
            let _ = reply.send(copy);
        }
    };
    // Group commit: when more calls wait than one block holds, they are cut
    // into several blocks that are executed one after another and committed
    // in one durable transaction (one fsync for all).
    let max_calls = config.max_batch.saturating_mul(MAX_GROUP_BLOCKS);
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + config.max_delay;
        while batch.len() < max_calls {
            match receiver.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) if batch.len() >= config.max_batch || config.max_delay.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(s)) => batch.push(s),
                    _ => break,
                },
            }
        }

        // Block time never goes backwards, whatever the wall clock does.
        let time = clock.now().max(head.time);
        let ids: Vec<TxId> = batch.iter().map(VerifiedTransaction::id).collect();
        let ledger2 = ledger.clone();
        let executor2 = executor.clone();
        let max_batch = config.max_batch;
        let start = head;
        let key2 = key.clone();
        let result = tokio::task::spawn_blocking(move || {
            execute_group(&ledger2, &*executor2, &key2, start, time, batch, max_batch)
        })
        .await
        .unwrap_or_else(|join| Err(storage(format!("block task failed: {join}"))));

        match result {
            Ok((new_head, receipts)) => {
                debug!(target: TARGET, height = new_head.height, txs = receipts.len(), "blocks committed");
                head = new_head;
                *status.write().expect("status lock") = status_of(&head);
                for receipt in receipts {
                    answer(&receipt.tx.clone(), Ok(receipt));
                }
            }
            Err(e) => {
                // The blocks did not commit. Their effects are unknown to nobody:
                // the ledger is unchanged. But a failing disk or executor will
                // fail again, so stop rather than spin; a restart resumes at the head.
                error!(target: TARGET, height = head.height + 1, error = %e, "block failed; engine stopping");
                let msg = e.to_string();
                for id in &ids {
                    answer(id, Err(ConsensusError::Storage(msg.clone())));
                }
                receiver.close();
                while let Some(tx) = receiver.recv().await {
                    answer(&tx.id(), Err(ConsensusError::Storage(msg.clone())));
                }
                return;
            }
        }
    }
    info!(target: TARGET, height = head.height, "solo engine stopped");
}

/// Most blocks committed in one durable transaction.
const MAX_GROUP_BLOCKS: usize = 8;

/// Cuts `txs` into blocks of at most `max_batch` after `head`, all at `time`,
/// executes them in order (each reading the state the ones before it left,
/// their writes layered over one ledger snapshot) and commits them, each
/// header signed with `key`, in one durable transaction. Returns the new
/// head and the receipts, in `txs` order.
fn execute_group<E: ContractExecutor>(
    ledger: &Ledger,
    executor: &E,
    key: &ReplicaKey,
    head: Head,
    time: rr_core::Timestamp,
    txs: Vec<VerifiedTransaction>,
    max_batch: usize,
) -> Result<(Head, Vec<Receipt>), ConsensusError> {
    let snapshot = ledger.snapshot().map_err(storage)?;
    let mut pending = WriteSet::new();
    let mut next = head;
    let mut blocks: Vec<(Block, Execution)> = Vec::new();
    let mut rest = txs.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<VerifiedTransaction> = rest.by_ref().take(max_batch).collect();
        let ctx = BlockContext {
            height: next.height + 1,
            time,
        };
        let mut state = Overlay::new(&snapshot);
        state.writes = std::mem::take(&mut pending);
        let execution = executor.execute(&state, &ctx, &chunk);
        pending = state.writes;
        let execution = execution?;
        let block = Block::new(
            ctx,
            next.block_hash,
            chunk
                .into_iter()
                .map(VerifiedTransaction::into_inner)
                .collect(),
        );
        next = Head {
            height: ctx.height,
            block_hash: block.header.hash(),
            time,
            state_digest: Default::default(),
        };
        if rest.peek().is_some() {
            pending.extend(execution.writes.clone());
        }
        blocks.push((block, execution));
    }
    drop(snapshot);
    let signer = |h: &LedgerHeader| sign(key, h);
    let committed = ledger
        .commit_blocks(&blocks, Some(&signer))
        .map_err(storage)?;
    let head = committed.last().map_or(head, |c| c.head);
    let receipts = blocks.into_iter().flat_map(|(_, e)| e.receipts).collect();
    Ok((head, receipts))
}

impl<E: ContractExecutor> ConsensusEngine for Solo<E> {
    type Executor = E;

    fn executor(&self) -> &Arc<E> {
        &self.executor
    }

    async fn submit(&self, tx: VerifiedTransaction) -> Result<Receipt, ConsensusError> {
        let sender = self
            .queue
            .read()
            .expect("queue lock")
            .clone()
            .ok_or(ConsensusError::Stopped)?;
        let id = tx.id();
        let (reply, answer) = oneshot::channel();
        let queued = {
            // Under the waiters lock, so a commit of this id cannot slip
            // between the check and the enqueue: it answers its waiters
            // under the same lock, after the ledger has it.
            let mut waiters = self.waiters.lock().expect("waiters lock");
            if let Some(receipt) = self.ledger.receipt(&id).map_err(storage)? {
                // A retry of a committed call: its receipt, no new block.
                return Ok(receipt);
            }
            match waiters.get_mut(&id) {
                Some(queued) => {
                    queued.push(reply);
                    true
                }
                None => {
                    waiters.insert(id, vec![reply]);
                    false
                }
            }
        };
        if queued {
            // The same call is waiting already: its answer is this one's.
            return answer.await.map_err(|_| ConsensusError::Stopped)?;
        }
        if sender.send(tx).await.is_err() {
            self.waiters.lock().expect("waiters lock").remove(&id);
            return Err(ConsensusError::Stopped);
        }
        drop(sender);
        answer.await.map_err(|_| ConsensusError::Stopped)?
    }

    fn status(&self) -> EngineStatus {
        self.status.read().expect("status lock").clone()
    }

    async fn certificate(&self, height: u64) -> Result<Certificate, ConsensusError> {
        loop {
            if let Some(mut cert) = self.ledger.certificate(height).map_err(storage)? {
                if !cert.signatures.iter().any(|s| s.replica == self.key.id()) {
                    // A header committed without a signature (a migrated
                    // ledger, genesis): this replica is the whole set.
                    let own = sign(&self.key, &cert.header);
                    cert.signatures = vec![own];
                    self.ledger
                        .put_signatures(height, &cert.signatures)
                        .map_err(storage)?;
                }
                return Ok(cert);
            }
            if self.queue.read().expect("queue lock").is_none() {
                return Err(ConsensusError::Stopped);
            }
            // Not committed yet: the caller bounds the wait.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn shutdown(&self) -> Result<(), ConsensusError> {
        self.queue.write().expect("queue lock").take();
        if let Some(task) = self.task.lock().await.take() {
            task.await
                .map_err(|e| ConsensusError::Storage(format!("engine task failed: {e}")))?;
        }
        Ok(())
    }
}
