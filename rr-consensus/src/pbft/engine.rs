//! The async PBFT engine: the ordering core wrapped in a pipeline of tokio
//! tasks joined by bounded channels.
//!
//! ```text
//! network ─► input ─► verify (blocking pool, parallel) ─┐
//! submit ───────────────────────────────────────────────┼─► core ─► execute ─► ledger
//!                                                        │     │  └─► WAL (before sends)
//!                       execution reports ◄──────────────┘     └─► output ─► network
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use rr_core::cert::{Certificate, HeaderSignature, LedgerHeader};
use rr_core::{
    Block, BlockHeader, ConsensusEngine, ConsensusError, ContractExecutor, EngineStatus, Execution,
    Overlay, Receipt, ReplicaId, TxId, VerifiedTransaction, WriteSet,
};
use rr_storage::{Committed, Head, Ledger};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::certify::{CertInput, Certifier, Certs, ToStore};
use super::config::PbftConfig;
use super::crypto::{ReplicaKey, ReplicaSet};
use super::message::{
    decode_and_verify, BlocksReply, Payload, Proof, SignedMessage, VerifiedMessage,
};
use super::replica::{Action, ExecuteBlock, Input, Now, Replica, WalRecord};
use super::verdicts::{self, Verdicts};
use super::wal::Wal;
use crate::clock::Clock;
use crate::transport::Network;

const TARGET: &str = "rr_consensus::pbft";

/// Most whole blocks in one state-transfer reply (headers follow for the rest).
const MAX_SERVE_BLOCKS: u64 = 64;
/// Verdicts on replica messages kept, so a retransmitted message is not
/// verified again: enough for every message of the in-flight window.
const VERDICTS_KEPT: usize = 4096;
/// ... and at most this many bytes of those messages.
const VERDICTS_MAX_BYTES: usize = 32 * 1024 * 1024;
/// Inputs the core handles between two flushes.
const MAX_INPUTS_PER_ROUND: usize = 512;

/// Everything one PBFT replica runs on.
pub struct PbftParts<E> {
    /// Settings.
    pub config: PbftConfig,
    /// This replica's key (its id is its place in `replicas`).
    pub key: ReplicaKey,
    /// The replica set.
    pub replicas: ReplicaSet,
    /// The ledger blocks are committed to.
    pub ledger: Arc<Ledger>,
    /// The write-ahead log (its own file).
    pub wal: Arc<Wal>,
    /// The contract executor.
    pub executor: Arc<E>,
    /// Where the primary takes block times from, and backups check them against.
    pub clock: Arc<dyn Clock>,
    /// The replica network.
    pub network: Arc<dyn Network>,
}

type Reply = oneshot::Sender<Result<Receipt, ConsensusError>>;
type Waiters = Mutex<HashMap<TxId, Vec<Reply>>>;

struct Serve {
    to: ReplicaId,
    from: u64,
    upto: u64,
    proof: Proof,
}

/// A PBFT replica implementing [`ConsensusEngine`]: `submit` resolves once
/// this replica has committed the transaction's block.
///
/// Restart-safe: [`Pbft::start`] resumes at the ledger's head and from the
/// write-ahead log, then catches up from its peers.
pub struct Pbft<E> {
    id: ReplicaId,
    certs: Arc<Certs>,
    cert_tx: mpsc::Sender<CertInput>,
    quorum: usize,
    requests: Arc<RwLock<Option<mpsc::Sender<VerifiedTransaction>>>>,
    waiters: Arc<Waiters>,
    status: Arc<RwLock<EngineStatus>>,
    view: Arc<ViewState>,
    set: ReplicaSet,
    ledger: Arc<Ledger>,
    stop: watch::Sender<bool>,
    /// Set by `shutdown`: the core withdraws the calls that never left this
    /// replica and keeps running for the others (see [`Pbft::shutdown`]).
    drain: watch::Sender<bool>,
    drain_for: std::time::Duration,
    core: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    exec: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    helpers: Mutex<Vec<JoinHandle<()>>>,
    executor: Arc<E>,
}

impl<E> std::fmt::Debug for Pbft<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pbft")
            .field("id", &self.id)
            .field("view", &self.view.view.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Where the ordering core stands among views, as the engine shows it.
#[derive(Debug, Default)]
struct ViewState {
    view: AtomicU64,
    /// The view asked for during a view change; 0 when none is under way
    /// (a view change always asks for a view above 0).
    changing_to: AtomicU64,
    /// View changes gone through.
    changes: AtomicU64,
}

impl ViewState {
    fn new(view: u64) -> Self {
        Self {
            view: AtomicU64::new(view),
            ..Self::default()
        }
    }
}

/// The ordering core's view after a round of inputs: kept for
/// [`Pbft::status`], and counted and timed in the metrics
/// (`rr_pbft_view_changes_total`, `rr_pbft_view_change_seconds`, from this
/// replica's first request for a new view to its entering one).
fn publish_view(state: &ViewState, replica: &Replica, started: &mut Option<Instant>) {
    let view = replica.view();
    let before = state.view.swap(view, Ordering::Relaxed);
    let changing = replica.changing_to();
    state
        .changing_to
        .store(changing.unwrap_or(0), Ordering::Relaxed);
    if changing.is_some() && started.is_none() {
        *started = Some(Instant::now());
    }
    if view != before {
        metrics::gauge!("rr_pbft_view").set(view as f64);
        state.changes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("rr_pbft_view_changes_total").increment(1);
        if let Some(t) = started.take() {
            metrics::histogram!("rr_pbft_view_change_seconds").record(t.elapsed().as_secs_f64());
        }
    }
    if changing.is_none() {
        *started = None;
    }
}

fn status_of(head: &Head, set: &ReplicaSet) -> EngineStatus {
    EngineStatus {
        engine: "pbft".into(),
        height: head.height,
        block_hash: head.block_hash,
        time: head.time,
        state_digest: head.state_digest,
        replicas: set.n() as u16,
        faults_tolerated: set.f() as u16,
        view: None,
        primary: None,
        changing_to: None,
        view_changes: 0,
    }
}

/// Replica messages up to this size are verified on the async task that
/// receives them (see the verification stage in [`Pbft::start`]): a vote or a
/// checkpoint is one signature check, cheaper than the two context switches of
/// a trip to the blocking pool.
const INLINE_VERIFY_MAX_BYTES: usize = 512;

/// Runs `f` on the blocking pool, or right here when `offload` is off (see
/// [`PbftConfig::offload_blocking`]).
async fn blocking<T: Send + 'static>(
    offload: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    if offload {
        tokio::task::spawn_blocking(f).await
    } else {
        Ok(f())
    }
}

/// The error of a call that may have been ordered but had not committed here
/// when the replica stopped. (Not `Stopped`, which promises the call was
/// never ordered.)
fn outcome_unknown(id: &TxId) -> ConsensusError {
    ConsensusError::OutcomeUnknown(*id)
}

fn storage(e: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Storage(e.to_string())
}

impl<E: ContractExecutor> Pbft<E> {
    /// Starts the replica. Must be called inside a tokio runtime.
    pub fn start(parts: PbftParts<E>) -> Result<Self, ConsensusError> {
        let PbftParts {
            config,
            key,
            replicas,
            ledger,
            wal,
            executor,
            clock,
            network,
        } = parts;
        config.validate().map_err(storage)?;
        let id = key.id();
        let offload = config.offload_blocking;
        if replicas.key(id) != Some(&key.verifying_key()) {
            return Err(storage(format!(
                "this replica's key is not the key of {id} in the replica set"
            )));
        }
        let head = ledger.head().map_err(storage)?;
        let mut recovered = wal.recover().map_err(storage)?;
        // Transactions of the last blocks, so a late duplicate is not proposed again.
        for h in head.height.saturating_sub(4 * config.window).max(1)..=head.height {
            if let Some(b) = ledger.block(h).map_err(storage)? {
                recovered.executed.extend(b.txs.iter().map(|t| (h, t.id())));
            }
        }
        let started = tokio::time::Instant::now();
        let now = {
            let clock = clock.clone();
            move || Now {
                mono: started.elapsed(),
                wall: clock.now(),
            }
        };
        let replica = Replica::new(
            config.clone(),
            replicas.clone(),
            key.clone(),
            head,
            recovered,
            now(),
        );
        info!(target: TARGET, replica = %id, height = head.height, view = replica.view(), "pbft replica starting");

        let status = Arc::new(RwLock::new(status_of(&head, &replicas)));
        let view = Arc::new(ViewState::new(replica.view()));
        let waiters: Arc<Waiters> = Arc::default();
        let (raw_tx, raw_rx) = mpsc::channel::<(ReplicaId, Bytes)>(1024);
        let (msg_tx, msg_rx) = mpsc::channel::<VerifiedMessage>(1024);
        let (req_tx, req_rx) = mpsc::channel::<VerifiedTransaction>(config.queue_capacity);
        let (exec_tx, exec_rx) = mpsc::channel::<ExecuteBlock>(64);
        let (done_tx, done_rx) = mpsc::channel::<Head>(1024);
        let (out_tx, out_rx) = mpsc::channel::<(Option<ReplicaId>, VerifiedMessage)>(8192);
        let (serve_tx, serve_rx) = mpsc::channel::<Serve>(16);
        let (cert_tx, cert_rx) = mpsc::channel::<CertInput>(4096);
        let (stop, stop_rx) = watch::channel(false);
        let (drain, drain_rx) = watch::channel(false);
        let requests = Arc::new(RwLock::new(Some(req_tx)));

        let mut helpers = Vec::new();
        // Input: off the network.
        {
            let network = network.clone();
            helpers.push(tokio::spawn(async move {
                while let Some(m) = network.recv().await {
                    if raw_tx.send(m).await.is_err() {
                        break;
                    }
                }
            }));
        }
        // Verification: in parallel on the blocking pool, results in order;
        // a message that arrives again (a retransmission) is not verified
        // again (see `verdicts`). Header votes go to the certifier.
        {
            let set = replicas.clone();
            let cert_tx = cert_tx.clone();
            let parallelism = config.verify_parallelism;
            let verdicts = Arc::new(Mutex::new(Verdicts::new(VERDICTS_KEPT, VERDICTS_MAX_BYTES)));
            helpers.push(tokio::spawn(async move {
                let stream = futures::stream::unfold(raw_rx, |mut rx| async move {
                    rx.recv().await.map(|m| (m, rx))
                });
                let lookup = verdicts.clone();
                let verified = stream
                    .map(move |(from, bytes): (ReplicaId, Bytes)| {
                        let key = verdicts::key(&bytes);
                        let kept = lookup.lock().unwrap_or_else(|e| e.into_inner()).get(&key);
                        let set = set.clone();
                        // A small message (a vote, a checkpoint, a status,
                        // a pre-prepare of a call or two) is one or two
                        // signature checks: cheaper to verify right here
                        // than to hand to a blocking thread and back, which
                        // costs two context switches. Bigger ones go to the
                        // blocking pool, so a worker never stalls for long.
                        let inline = kept.is_none() && bytes.len() <= INLINE_VERIFY_MAX_BYTES;
                        let now = inline.then(|| {
                            let m = decode_and_verify(&bytes, &set);
                            (from, m, Some((key, bytes.len())))
                        });
                        async move {
                            match (kept, now) {
                                (Some(m), _) => Ok((from, m, None)),
                                (None, Some(done)) => Ok(done),
                                (None, None) => {
                                    blocking(offload, move || {
                                        let m = decode_and_verify(&bytes, &set);
                                        (from, m, Some((key, bytes.len())))
                                    })
                                    .await
                                }
                            }
                        }
                    })
                    .buffered(parallelism);
                let mut verified = std::pin::pin!(verified);
                while let Some(r) = verified.next().await {
                    let r = r.map(|(from, m, fresh)| {
                        if let Some((key, size)) = fresh {
                            verdicts
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(key, size, m.clone());
                        }
                        (from, m)
                    });
                    match r {
                        Ok((from, Ok(m)))
                            if m.from() == from && matches!(m.payload(), Payload::HeaderVote(_)) =>
                        {
                            if cert_tx.try_send(CertInput::Vote(m)).is_err() {
                                debug!(target: TARGET, "certifier queue full; header vote dropped");
                            }
                        }
                        // A new view is self-authenticating (the primary's
                        // signature and quorum certificates): anyone may relay it.
                        Ok((from, Ok(m)))
                            if m.from() == from || matches!(m.payload(), Payload::NewView(_)) =>
                        {
                            if msg_tx.send(m).await.is_err() {
                                break;
                            }
                        }
                        Ok((from, Ok(m))) => {
                            warn!(target: TARGET, link = %from, claimed = %m.from(), "message relayed under another replica's name; dropped");
                        }
                        Ok((from, Err(e))) => {
                            warn!(target: TARGET, link = %from, error = %e, "refused a replica message");
                        }
                        Err(e) => error!(target: TARGET, error = %e, "verification task failed"),
                    }
                }
            }));
        }
        let cert_out = out_tx.clone();
        // Output: encode once, send to one or all.
        {
            let network = network.clone();
            let me = id;
            let all: Vec<ReplicaId> = replicas.ids().filter(|r| *r != me).collect();
            helpers.push(tokio::spawn(async move {
                let mut out_rx = out_rx;
                while let Some((to, m)) = out_rx.recv().await {
                    let bytes = Bytes::from(m.signed().to_bytes());
                    match to {
                        Some(to) => network.send(to, bytes).await,
                        None => {
                            for to in &all {
                                network.send(*to, bytes.clone()).await;
                            }
                        }
                    }
                }
            }));
        }
        // State transfer: serve committed blocks from the ledger.
        {
            let network = network.clone();
            let ledger = ledger.clone();
            let key = key.clone();
            helpers.push(tokio::spawn(async move {
                let mut serve_rx = serve_rx;
                while let Some(s) = serve_rx.recv().await {
                    let ledger = ledger.clone();
                    let key = key.clone();
                    let reply = blocking(offload, move || serve(&ledger, &key, s)).await;
                    match reply {
                        Ok(Ok((to, bytes))) => network.send(to, bytes).await,
                        Ok(Err(e)) => warn!(target: TARGET, error = %e, "could not serve blocks"),
                        Err(e) => error!(target: TARGET, error = %e, "serve task failed"),
                    }
                }
            }));
        }
        // Certificates: a vote for each executed block's header, a quorum of
        // them kept with the block.
        let certs = Certs::new();
        {
            let (mut certifier, stored) = Certifier::new(
                replicas.clone(),
                key.clone(),
                ledger.clone(),
                certs.clone(),
                config.window,
                // Votes are sent again while a height is uncertified, but
                // not as often as the ordering's: they are not urgent.
                config
                    .retransmit_interval
                    .max(std::time::Duration::from_millis(200)),
            )
            .map_err(storage)?;
            let ledger = ledger.clone();
            helpers.push(tokio::spawn(store_loop(ledger, stored, offload)));
            let tick_every = config.retransmit_interval;
            let mut cert_rx = cert_rx;
            helpers.push(tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                let mut tick = tokio::time::interval(tick_every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut out = Vec::new();
                certifier.start(started.elapsed(), &mut out);
                loop {
                    for (to, m) in out.drain(..) {
                        if cert_out.try_send((to, m)).is_err() {
                            debug!(target: TARGET, "output queue full; header vote dropped");
                        }
                    }
                    let input = tokio::select! {
                        i = cert_rx.recv() => match i {
                            Some(i) => i,
                            None => return,
                        },
                        _ = tick.tick() => CertInput::Tick,
                    };
                    certifier.handle(started.elapsed(), input, &mut out);
                }
            }));
        }
        // Execution: strictly in order, each block committed before its replies.
        let exec = {
            let ledger = ledger.clone();
            let status = status.clone();
            let waiters = waiters.clone();
            let requests = requests.clone();
            let set = replicas.clone();
            tokio::spawn(execute_loop(ExecLoop {
                exec_rx,
                done_tx,
                cert_tx: cert_tx.clone(),
                ledger,
                executor: executor.clone(),
                key: key.clone(),
                status,
                waiters,
                requests,
                set,
                offload,
            }))
        };
        // Ordering core.
        let core = {
            let view = view.clone();
            tokio::spawn(core_loop(CoreLoop {
                replica,
                now: Box::new(now),
                tick: config
                    .retransmit_interval
                    .min(config.request_timeout / 4)
                    .min(config.view_change_timeout / 4)
                    .max(std::time::Duration::from_millis(5)),
                wal,
                msg_rx,
                req_rx,
                done_rx,
                exec_tx,
                out_tx,
                serve_tx,
                stop_rx,
                drain_rx,
                waiters: waiters.clone(),
                view,
                offload,
            }))
        };
        Ok(Self {
            id,
            certs,
            cert_tx,
            quorum: replicas.quorum(),
            requests,
            waiters,
            status,
            view,
            set: replicas.clone(),
            ledger,
            stop,
            drain,
            drain_for: config.shutdown_drain,
            core: tokio::sync::Mutex::new(Some(core)),
            exec: tokio::sync::Mutex::new(Some(exec)),
            helpers: Mutex::new(helpers),
            executor,
        })
    }

    /// This replica's id.
    pub fn id(&self) -> ReplicaId {
        self.id
    }

    /// The view this replica is in.
    pub fn view(&self) -> u64 {
        self.view.view.load(Ordering::Relaxed)
    }
}

fn serve(
    ledger: &Ledger,
    key: &ReplicaKey,
    s: Serve,
) -> Result<(ReplicaId, Bytes), rr_storage::LedgerError> {
    let mut blocks = Vec::new();
    let mut headers: Vec<BlockHeader> = Vec::new();
    for h in s.from..=s.upto {
        let Some(b) = ledger.block(h)? else {
            break;
        };
        if h < s.from + MAX_SERVE_BLOCKS {
            blocks.push(b);
        } else {
            headers.push(b.header);
        }
    }
    let m = SignedMessage::sign(
        key,
        Payload::Blocks(BlocksReply {
            blocks,
            headers,
            proof: s.proof,
        }),
    );
    Ok((s.to, Bytes::from(m.to_bytes())))
}

struct CoreLoop {
    replica: Replica,
    now: Box<dyn Fn() -> Now + Send>,
    tick: std::time::Duration,
    wal: Arc<Wal>,
    msg_rx: mpsc::Receiver<VerifiedMessage>,
    req_rx: mpsc::Receiver<VerifiedTransaction>,
    done_rx: mpsc::Receiver<Head>,
    exec_tx: mpsc::Sender<ExecuteBlock>,
    out_tx: mpsc::Sender<(Option<ReplicaId>, VerifiedMessage)>,
    serve_tx: mpsc::Sender<Serve>,
    stop_rx: watch::Receiver<bool>,
    drain_rx: watch::Receiver<bool>,
    waiters: Arc<Waiters>,
    view: Arc<ViewState>,
    offload: bool,
}

/// Answers every caller waiting for `id` with [`ConsensusError::Stopped`].
/// Only for a call that will never be ordered.
fn refuse_stopped(waiters: &Waiters, id: &TxId) {
    if let Some(replies) = waiters.lock().expect("waiters lock").remove(id) {
        for reply in replies {
            let _ = reply.send(Err(ConsensusError::Stopped));
        }
    }
}

async fn core_loop(mut c: CoreLoop) {
    let mut tick = tokio::time::interval(c.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut to_execute: VecDeque<ExecuteBlock> = VecDeque::new();
    let mut requests_open = true;
    let mut draining = false;
    let mut actions = Vec::new();
    let mut view_change_started: Option<Instant> = None;
    metrics::gauge!("rr_pbft_view").set(c.replica.view() as f64);
    loop {
        let mut inputs = Vec::new();
        tokio::select! {
            biased;
            _ = c.stop_rx.changed() => break,
            _ = c.drain_rx.changed(), if !draining => {
                // Shutdown: the calls that never left this replica are
                // withdrawn (nobody else has them, so they are never
                // ordered) and fail; the rest are finished as usual.
                draining = true;
                for id in c.replica.withdraw_unsent() {
                    refuse_stopped(&c.waiters, &id);
                }
                continue;
            }
            Some(head) = c.done_rx.recv() => inputs.push(Input::Executed(head)),
            permit = c.exec_tx.reserve(), if !to_execute.is_empty() => {
                if let (Ok(permit), Some(b)) = (permit, to_execute.pop_front()) {
                    permit.send(b);
                }
                continue;
            }
            Some(m) = c.msg_rx.recv() => inputs.push(Input::Message(m)),
            r = c.req_rx.recv(), if requests_open => match r {
                Some(tx) => inputs.push(Input::Request(tx)),
                None => requests_open = false,
            },
            _ = tick.tick() => inputs.push(Input::Tick),
        }
        while inputs.len() < MAX_INPUTS_PER_ROUND {
            if let Ok(h) = c.done_rx.try_recv() {
                inputs.push(Input::Executed(h));
            } else if let Ok(m) = c.msg_rx.try_recv() {
                inputs.push(Input::Message(m));
            } else if let Ok(tx) = c.req_rx.try_recv() {
                inputs.push(Input::Request(tx));
            } else {
                break;
            }
        }
        let now = (c.now)();
        for input in inputs {
            match input {
                // A call that reaches the core while shutting down is not
                // taken: it fails, unless this replica has it already (a
                // retry of a call in flight, answered when it commits).
                Input::Request(tx) if draining => {
                    if !c.replica.knows(&tx.id()) {
                        refuse_stopped(&c.waiters, &tx.id());
                    }
                }
                input => c.replica.handle(now, input, &mut actions),
            }
        }
        c.replica.flush(now, &mut actions);
        publish_view(&c.view, &c.replica, &mut view_change_started);

        // Durable first: nothing is sent before what it depends on is logged.
        let records: Vec<WalRecord> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Persist(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        if !records.is_empty() {
            let wal = c.wal.clone();
            let result = blocking(c.offload, move || wal.append(&records)).await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    error!(target: TARGET, error = %e, "write-ahead log failed; replica stopping");
                    break;
                }
                Err(e) => {
                    error!(target: TARGET, error = %e, "write-ahead log task failed; replica stopping");
                    break;
                }
            }
        }
        for a in actions.drain(..) {
            match a {
                Action::Persist(_) => {}
                Action::Send { to, message } => {
                    if c.out_tx.try_send((Some(to), message)).is_err() {
                        debug!(target: TARGET, "output queue full; message dropped");
                    }
                }
                Action::Broadcast(message) => {
                    if c.out_tx.try_send((None, message)).is_err() {
                        debug!(target: TARGET, "output queue full; message dropped");
                    }
                }
                Action::Execute(b) => to_execute.push_back(b),
                Action::Serve {
                    to,
                    from,
                    upto,
                    proof,
                } => {
                    let _ = c.serve_tx.try_send(Serve {
                        to,
                        from,
                        upto,
                        proof,
                    });
                }
            }
        }
        while let Some(b) = to_execute.pop_front() {
            match c.exec_tx.try_send(b) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(b)) => {
                    to_execute.push_front(b);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
    // Calls queued but never taken: nobody else has them.
    c.req_rx.close();
    while let Ok(tx) = c.req_rx.try_recv() {
        if !c.replica.knows(&tx.id()) {
            refuse_stopped(&c.waiters, &tx.id());
        }
    }
    // Hand over what was decided before stopping.
    for b in to_execute {
        if c.exec_tx.send(b).await.is_err() {
            break;
        }
    }
}

/// What executing and committing a group of consecutive blocks came to.
struct GroupOutcome {
    /// Each committed block's head and header, in order.
    committed: Vec<Committed>,
    /// The receipts of all the committed blocks.
    receipts: Vec<Receipt>,
    /// Why the blocks after the committed ones were not (the replica stops).
    error: Option<ConsensusError>,
}

/// Executes `group` (consecutive blocks, in order) one after another, each
/// reading the state its predecessors in the group left (their write sets
/// layered over one ledger snapshot, exactly the state committing them one by
/// one would give), and commits them together in one durable transaction,
/// each header with this replica's signature. If a block fails to execute,
/// the blocks before it are still committed.
fn execute_group<E: ContractExecutor>(
    ledger: &Ledger,
    executor: &E,
    key: &ReplicaKey,
    group: Vec<ExecuteBlock>,
) -> GroupOutcome {
    let mut outcome = GroupOutcome {
        committed: Vec::new(),
        receipts: Vec::new(),
        error: None,
    };
    let snapshot = match ledger.snapshot() {
        Ok(x) => x,
        Err(e) => {
            outcome.error = Some(storage(e));
            return outcome;
        }
    };
    let last = group.len().saturating_sub(1);
    let mut done: Vec<(Block, Execution)> = Vec::with_capacity(group.len());
    let mut pending = WriteSet::new();
    for (i, ExecuteBlock { block, txs }) in group.into_iter().enumerate() {
        let mut state = Overlay::new(&snapshot);
        state.writes = std::mem::take(&mut pending);
        let result = executor.execute(&state, &block.header.context, &txs);
        pending = state.writes;
        let execution = match result {
            Ok(x) => x,
            Err(e) => {
                outcome.error = Some(e.into());
                break;
            }
        };
        if i < last {
            pending.extend(execution.writes.clone());
        }
        done.push((block, execution));
    }
    drop(snapshot);
    if done.is_empty() {
        return outcome;
    }
    let signer = |h: &LedgerHeader| HeaderSignature {
        replica: key.id(),
        signature: key
            .sign(&LedgerHeader::signing_bytes(&h.hash()))
            .to_bytes()
            .to_vec(),
    };
    match ledger.commit_blocks(&done, Some(&signer)) {
        Ok(committed) => {
            outcome.committed = committed;
            outcome.receipts = done.into_iter().flat_map(|(_, e)| e.receipts).collect();
        }
        Err(e) => outcome.error = Some(storage(e)),
    }
    outcome
}

/// Most consecutive blocks executed and committed in one durable transaction.
const MAX_GROUP_BLOCKS: usize = 64;

/// Stores completed certificates' signatures, a batch at a time (not
/// durable on their own: the next block commit makes them so).
async fn store_loop(
    ledger: Arc<Ledger>,
    mut stored: mpsc::UnboundedReceiver<ToStore>,
    offload: bool,
) {
    while let Some(first) = stored.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = stored.try_recv() {
            batch.push(more);
        }
        let ledger = ledger.clone();
        match blocking(offload, move || ledger.put_signature_sets(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(target: TARGET, error = %e, "cannot store certificates; they are kept in memory")
            }
            Err(e) => error!(target: TARGET, error = %e, "certificate store task failed"),
        }
    }
}

struct ExecLoop<E> {
    exec_rx: mpsc::Receiver<ExecuteBlock>,
    done_tx: mpsc::Sender<Head>,
    cert_tx: mpsc::Sender<CertInput>,
    ledger: Arc<Ledger>,
    executor: Arc<E>,
    key: ReplicaKey,
    status: Arc<RwLock<EngineStatus>>,
    waiters: Arc<Waiters>,
    requests: Arc<RwLock<Option<mpsc::Sender<VerifiedTransaction>>>>,
    set: ReplicaSet,
    offload: bool,
}

async fn execute_loop<E: ContractExecutor>(l: ExecLoop<E>) {
    let ExecLoop {
        mut exec_rx,
        done_tx,
        cert_tx,
        ledger,
        executor,
        key,
        status,
        waiters,
        requests,
        set,
        offload,
    } = l;
    while let Some(first) = exec_rx.recv().await {
        // Group commit: take every block already waiting (they arrive in
        // order), so one fsync commits them all.
        let mut group = vec![first];
        while group.len() < MAX_GROUP_BLOCKS {
            match exec_rx.try_recv() {
                Ok(b) => group.push(b),
                Err(_) => break,
            }
        }
        let height = group[0].block.header.context.height;
        let ledger2 = ledger.clone();
        let executor2 = executor.clone();
        let key2 = key.clone();
        let outcome = blocking(offload, move || {
            execute_group(&ledger2, &*executor2, &key2, group)
        })
        .await
        .unwrap_or_else(|e| GroupOutcome {
            committed: Vec::new(),
            receipts: Vec::new(),
            error: Some(storage(format!("block task failed: {e}"))),
        });
        let heads: Vec<Head> = outcome.committed.iter().map(|c| c.head).collect();
        if let Some(head) = heads.last() {
            *status.write().expect("status lock") = status_of(head, &set);
            {
                let mut w = waiters.lock().expect("waiters lock");
                for r in outcome.receipts {
                    if let Some(replies) = w.remove(&r.tx) {
                        for reply in replies {
                            let _ = reply.send(Ok(r.clone()));
                        }
                    }
                }
            }
            if cert_tx
                .send(CertInput::Committed(outcome.committed))
                .await
                .is_err()
            {
                debug!(target: TARGET, "certifier stopped");
            }
            // Every head, in order: checkpoints are taken at some of them.
            for head in heads.iter().copied() {
                let _ = done_tx.send(head).await;
            }
        }
        if let Some(e) = outcome.error {
            // A failing disk or executor fails again: stop rather than
            // skip a block. A restart resumes at the ledger head.
            let height = height + heads.len() as u64;
            error!(target: TARGET, height, error = %e, "block failed; replica stopping");
            requests.write().expect("requests lock").take();
            let msg = e.to_string();
            for (_, replies) in waiters.lock().expect("waiters lock").drain() {
                for reply in replies {
                    let _ = reply.send(Err(ConsensusError::Storage(msg.clone())));
                }
            }
            return;
        }
    }
}

impl<E: ContractExecutor> ConsensusEngine for Pbft<E> {
    type Executor = E;

    fn executor(&self) -> &Arc<E> {
        &self.executor
    }

    async fn submit(&self, tx: VerifiedTransaction) -> Result<Receipt, ConsensusError> {
        let sender = self
            .requests
            .read()
            .expect("requests lock")
            .clone()
            .ok_or(ConsensusError::Stopped)?;
        let id = tx.id();
        let (reply, answer) = oneshot::channel();
        self.waiters
            .lock()
            .expect("waiters lock")
            .entry(id)
            .or_default()
            .push(reply);
        // Already committed (a retry of a call that went through): answer now.
        if let Ok(Some(receipt)) = self.ledger.receipt(&id) {
            if let Some(replies) = self.waiters.lock().expect("waiters lock").remove(&id) {
                for r in replies {
                    let _ = r.send(Ok(receipt.clone()));
                }
            }
        } else if sender.send(tx).await.is_err() {
            self.waiters.lock().expect("waiters lock").remove(&id);
            return Err(ConsensusError::Stopped);
        }
        drop(sender);
        answer.await.map_err(|_| ConsensusError::Stopped)?
    }

    fn status(&self) -> EngineStatus {
        let mut status = self.status.read().expect("status lock").clone();
        let view = self.view.view.load(Ordering::Relaxed);
        let changing = self.view.changing_to.load(Ordering::Relaxed);
        status.view = Some(view);
        status.primary = Some(self.set.primary(view));
        status.changing_to = (changing > 0).then_some(changing);
        status.view_changes = self.view.changes.load(Ordering::Relaxed);
        status
    }

    async fn certificate(&self, height: u64) -> Result<Certificate, ConsensusError> {
        let mut changed = self.certs.subscribe();
        let mut stopped = self.stop.subscribe();
        let mut asked = false;
        loop {
            if let Some(c) = self.certs.get(height) {
                return Ok(c);
            }
            if let Some(c) = self.ledger.certificate(height).map_err(storage)? {
                if c.signatures.len() >= self.quorum {
                    return Ok(c);
                }
            }
            // A stopped engine certifies nothing more: an error, not a wait
            // that never ends.
            if *stopped.borrow_and_update() {
                return Err(ConsensusError::Stopped);
            }
            if !asked && height <= self.status().height {
                // Executed but not certified here (a restart lost the
                // signatures, or nobody asked yet): collect them.
                asked = true;
                let _ = self.cert_tx.send(CertInput::Need(height)).await;
            }
            tokio::select! {
                c = changed.changed() => {
                    if c.is_err() {
                        return Err(ConsensusError::Stopped);
                    }
                }
                _ = stopped.changed() => {}
            }
        }
    }

    /// Stops taking calls, then keeps the replica running until every call
    /// submitted here that may have been ordered has committed, for at most
    /// [`PbftConfig::shutdown_drain`], and stops.
    ///
    /// A call answered [`ConsensusError::Stopped`] never left this replica
    /// (it was neither forwarded nor proposed) and will never be ordered. A
    /// call still undecided when the drain times out (no quorum to commit
    /// it, say) fails with [`ConsensusError::Storage`] saying its outcome is
    /// unknown: it may still commit, and resubmitting the same signed call
    /// (here after a restart, or at another replica) tells its outcome.
    async fn shutdown(&self) -> Result<(), ConsensusError> {
        self.requests.write().expect("requests lock").take();
        let _ = self.drain.send(true);
        let deadline = tokio::time::Instant::now() + self.drain_for;
        loop {
            let core_running = self
                .core
                .lock()
                .await
                .as_ref()
                .is_some_and(|h| !h.is_finished());
            if !core_running
                || self.waiters.lock().expect("waiters lock").is_empty()
                || tokio::time::Instant::now() >= deadline
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let _ = self.stop.send(true);
        if let Some(core) = self.core.lock().await.take() {
            core.await
                .map_err(|e| storage(format!("core task failed: {e}")))?;
        }
        if let Some(exec) = self.exec.lock().await.take() {
            exec.await
                .map_err(|e| storage(format!("execution task failed: {e}")))?;
        }
        for h in self.helpers.lock().expect("helpers lock").drain(..) {
            h.abort();
        }
        // The calls left may have been ordered (this replica sent them on):
        // they may still commit without it. Their outcome is unknown.
        let left: Vec<(TxId, Vec<Reply>)> =
            self.waiters.lock().expect("waiters lock").drain().collect();
        if !left.is_empty() {
            warn!(target: TARGET, replica = %self.id, calls = left.len(), "stopped with calls that may have been ordered and did not commit here in time; their outcome is unknown");
        }
        for (id, replies) in left {
            for reply in replies {
                let _ = reply.send(Err(outcome_unknown(&id)));
            }
        }
        info!(target: TARGET, replica = %self.id, "pbft replica stopped");
        Ok(())
    }
}

impl<E> Drop for Pbft<E> {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Ok(mut h) = self.helpers.lock() {
            for h in h.drain(..) {
                h.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use rr_core::{
        AccountId, BlockContext, BlockHash, ExecutionError, GrantId, Outcome, Revoke, StateError,
        StateRead, Timestamp, TxBody,
    };

    /// The harness's nonce executor, failing on the block at `fail_at`.
    struct NonceExecutor {
        fail_at: u64,
    }

    impl ContractExecutor for NonceExecutor {
        fn execute(
            &self,
            state: &dyn StateRead,
            ctx: &BlockContext,
            txs: &[VerifiedTransaction],
        ) -> Result<Execution, ExecutionError> {
            if ctx.height == self.fail_at {
                return Err(ExecutionError::State(StateError::Storage("boom".into())));
            }
            crate::harness::NonceExecutor.execute(state, ctx, txs)
        }
    }

    fn call(nonce: u64, grant: u8) -> VerifiedTransaction {
        let key = SigningKey::from_bytes(&[8; 32]);
        TxBody {
            signer: AccountId::from_verifying_key(&key.verifying_key()),
            nonce,
            call: rr_core::Call::Revoke(Revoke {
                grant: GrantId([grant; 32]),
            }),
        }
        .sign(&key)
        .verify()
        .unwrap()
    }

    /// Three chained blocks; the second and third replay nonces of the blocks
    /// before them with different calls.
    fn chain() -> Vec<ExecuteBlock> {
        let calls = [
            vec![call(0, 1)],
            vec![call(0, 2), call(1, 1)],
            vec![call(1, 2), call(2, 1)],
        ];
        let mut parent = BlockHash::default();
        calls
            .into_iter()
            .enumerate()
            .map(|(i, txs)| {
                let ctx = BlockContext {
                    height: i as u64 + 1,
                    time: Timestamp(100),
                };
                let block = Block::new(
                    ctx,
                    parent,
                    txs.iter()
                        .cloned()
                        .map(VerifiedTransaction::into_inner)
                        .collect(),
                );
                parent = block.header.hash();
                ExecuteBlock { block, txs }
            })
            .collect()
    }

    #[test]
    fn a_group_executes_and_commits_as_the_blocks_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let grouped = Ledger::open(dir.path().join("g.redb")).unwrap();
        let single = Ledger::open(dir.path().join("s.redb")).unwrap();
        let exec = NonceExecutor { fail_at: 0 };
        let key = ReplicaKey::new(ReplicaId(0), SigningKey::from_bytes(&[3; 32]));

        let outcome = execute_group(&grouped, &exec, &key, chain());
        assert!(outcome.error.is_none());
        let mut committed = Vec::new();
        let mut receipts = Vec::new();
        for b in chain() {
            let one = execute_group(&single, &exec, &key, vec![b]);
            assert!(one.error.is_none());
            committed.extend(one.committed);
            receipts.extend(one.receipts);
        }
        assert_eq!(outcome.committed, committed);
        // Each header is stored with this replica's signature.
        for c in &committed {
            let sigs = grouped.signatures(c.head.height).unwrap();
            assert_eq!(sigs.len(), 1);
            assert_eq!(
                sigs[0].signature,
                c.header.sign(&SigningKey::from_bytes(&[3; 32])).to_vec()
            );
        }
        assert_eq!(outcome.receipts, receipts);
        assert_eq!(grouped.head().unwrap(), single.head().unwrap());
        // Each block saw the writes of the ones before it in the group.
        let ok: Vec<bool> = outcome
            .receipts
            .iter()
            .map(|r| matches!(r.outcome, Outcome::Ok(_)))
            .collect();
        assert_eq!(ok, [true, false, true, false, true]);
    }

    #[test]
    fn a_failing_block_stops_the_group_after_committing_the_ones_before() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.redb")).unwrap();
        let key = ReplicaKey::new(ReplicaId(0), SigningKey::from_bytes(&[3; 32]));
        let outcome = execute_group(&ledger, &NonceExecutor { fail_at: 2 }, &key, chain());
        assert!(outcome.error.unwrap().to_string().contains("boom"));
        assert_eq!(outcome.committed.len(), 1);
        assert_eq!(outcome.receipts.len(), 1);
        assert_eq!(ledger.head().unwrap(), outcome.committed[0].head);
        assert!(ledger.block(2).unwrap().is_none());
    }
}
