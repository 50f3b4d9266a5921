//! The ordering core of one PBFT replica: a pure, synchronous state machine.
//!
//! [`Replica::handle`] takes one [`Input`] (a verified message, a client
//! request, an execution report or a clock tick) and the current time, and
//! appends the [`Action`]s to take: messages to send, blocks to execute,
//! records to make durable before any message after them is sent, blocks to
//! serve to a peer. No I/O, no clock, no randomness: the same inputs give the
//! same actions, which is what makes it testable deterministically.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rr_core::{
    Block, BlockHash, ReplicaId, SignedTransaction, Timestamp, TxId, VerifiedTransaction,
};
use rr_storage::Head;
use tracing::{debug, error, info, warn};

use super::config::PbftConfig;
use super::crypto::{ReplicaKey, ReplicaSet};
use super::message::{
    plan_new_view, Batch, Checked, CheckpointCert, CommitCert, Payload, PrePrepare, PreparedCert,
    Proof, Seq, SignedMessage, Status, VerifiedMessage, View, ViewChange, Vote,
};

const TARGET: &str = "rr_consensus::pbft";

/// Views above the current one a replica keeps messages for.
const MAX_VIEWS_AHEAD: u64 = 64;

/// At most one warning about skewed block times per this interval.
const CLOCK_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// A request the primary leaves out this many request timeouts while it
/// orders others counts as censored: the replica asks for a new view.
const CENSORSHIP_TIMEOUTS: u32 = 8;

/// The time as the core sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// A monotonic clock (time since some fixed start): drives the timers.
    pub mono: Duration,
    /// The wall clock: block times are set and checked against it.
    pub wall: Timestamp,
}

/// What the core reacts to.
#[derive(Clone, Debug)]
pub enum Input {
    /// A verified message from another replica.
    Message(VerifiedMessage),
    /// A client transaction submitted at this replica.
    Request(VerifiedTransaction),
    /// The execution stage committed a block: the new ledger head.
    Executed(Head),
    /// Time passed.
    Tick,
}

/// A block to execute and commit, strictly after the one before it.
#[derive(Clone, Debug)]
pub struct ExecuteBlock {
    /// The block.
    pub block: Block,
    /// Its transactions, verified.
    pub txs: Vec<VerifiedTransaction>,
}

/// What must be durable before the messages after it are sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalRecord {
    /// A message this replica signed.
    Sent(SignedMessage),
    /// A prepared certificate this replica collected.
    Prepared(PreparedCert),
    /// A stable checkpoint: everything at or below it may be forgotten.
    Stable(CheckpointCert),
}

/// What a replica recovers from its write-ahead log after a restart.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// Messages it signed above its stable checkpoint, and its view changes.
    pub sent: Vec<SignedMessage>,
    /// Prepared certificates above its stable checkpoint.
    pub prepared: Vec<PreparedCert>,
    /// Its last stable checkpoint.
    pub stable: Option<CheckpointCert>,
    /// Ids of the transactions in the last blocks of its ledger, with their
    /// heights, so that a late duplicate is not proposed again.
    pub executed: Vec<(Seq, TxId)>,
}

/// What the core asks its surroundings to do, in order.
#[derive(Clone, Debug)]
pub enum Action {
    /// Make a record durable (before sending anything that follows).
    Persist(WalRecord),
    /// Send to one replica.
    Send {
        /// The receiver.
        to: ReplicaId,
        /// The message.
        message: VerifiedMessage,
    },
    /// Send to every other replica.
    Broadcast(VerifiedMessage),
    /// Execute and commit the next block.
    Execute(ExecuteBlock),
    /// Send committed blocks `from..=upto` (read from the ledger) to a peer,
    /// with the proof of block `upto`.
    Serve {
        /// The peer.
        to: ReplicaId,
        /// First height.
        from: Seq,
        /// Last height (the proven one).
        upto: Seq,
        /// Proof of the block at `upto`.
        proof: Proof,
    },
}

#[derive(Default)]
struct Slot {
    /// Accepted pre-prepares, by view.
    pre_prepares: BTreeMap<View, VerifiedMessage>,
    /// A pre-prepare of the current view waiting for its predecessor.
    waiting: Option<VerifiedMessage>,
    /// Prepares by view and sender (the first of each sender counts).
    prepares: BTreeMap<View, BTreeMap<ReplicaId, VerifiedMessage>>,
    /// Commits by view and sender.
    commits: BTreeMap<View, BTreeMap<ReplicaId, VerifiedMessage>>,
    /// This replica's own prepares and commits, by view.
    my_prepare: BTreeMap<View, VerifiedMessage>,
    my_commit: BTreeMap<View, VerifiedMessage>,
    /// The highest-view prepared certificate.
    prepared: Option<(View, BlockHash, PreparedCert)>,
    /// Decided: view and digest.
    committed: Option<(View, BlockHash)>,
}

fn vote_of(m: &VerifiedMessage) -> Option<Vote> {
    match m.payload() {
        Payload::Prepare(v) | Payload::Commit(v) => Some(*v),
        _ => None,
    }
}

fn matching(
    votes: Option<&BTreeMap<ReplicaId, VerifiedMessage>>,
    digest: BlockHash,
) -> Vec<&VerifiedMessage> {
    votes
        .map(|m| {
            m.values()
                .filter(|v| vote_of(v).is_some_and(|v| v.digest == digest))
                .collect()
        })
        .unwrap_or_default()
}

struct PendingTx {
    tx: VerifiedTransaction,
    order: u64,
    since: Duration,
    /// Whether the transaction may have left this replica: it came from
    /// another replica, or this one forwarded, broadcast or proposed it.
    /// One that never did can be withdrawn at shutdown and is certain never
    /// to be ordered (see [`Replica::withdraw_unsent`]).
    shared: bool,
}

/// A view change under way.
#[derive(Clone, Copy)]
struct Changing {
    target: View,
    /// When to give up on `target` and ask for the next view: set only once
    /// a quorum asked for `target` (PBFT's rule: before that, the new
    /// primary could not start it however long this replica waited, and
    /// moving on alone would leave it in a view nobody else goes to).
    deadline: Option<Duration>,
    /// When this replica started asking for `target`.
    since: Duration,
}

/// The timer on the oldest request waiting to be ordered.
#[derive(Clone, Copy)]
struct RequestTimer {
    id: TxId,
    deadline: Duration,
    /// 0: waiting; 1: told everyone about the request, waiting again.
    phase: u8,
    /// [`Replica::progress`] when the phase began.
    progress: u64,
}

/// The ordering core of one replica. See the module docs.
pub struct Replica {
    cfg: PbftConfig,
    set: ReplicaSet,
    key: ReplicaKey,
    me: ReplicaId,
    view: View,
    changing: Option<Changing>,
    vc_attempts: u32,
    low: Seq,
    stable: Option<CheckpointCert>,
    slots: BTreeMap<Seq, Slot>,
    /// Hash and time of the block at each sequence number, as far as this view
    /// has fixed them (executed blocks, the view's base, accepted pre-prepares).
    headers: BTreeMap<Seq, (BlockHash, Timestamp)>,
    /// Highest sequence number handed to execution.
    exec_sent: Seq,
    /// The ledger head execution reported.
    exec_done: Head,
    next_seq: Seq,
    pending: BTreeMap<TxId, PendingTx>,
    order: VecDeque<TxId>,
    unproposed: BTreeMap<u64, TxId>,
    counter: u64,
    recent: BTreeMap<TxId, Seq>,
    recent_order: VecDeque<(Seq, TxId)>,
    timed: Option<RequestTimer>,
    /// Counts the current primary's progress seen here: accepted
    /// pre-prepares and executed blocks.
    progress: u64,
    /// The last tick: a long gap since means this replica was paused.
    last_tick: Duration,
    /// The last warning about a block time from a skewed clock.
    last_clock_warning: Option<Duration>,
    checkpoints: BTreeMap<Seq, BTreeMap<ReplicaId, VerifiedMessage>>,
    view_changes: BTreeMap<View, BTreeMap<ReplicaId, VerifiedMessage>>,
    own_vc: BTreeMap<View, VerifiedMessage>,
    last_new_view: Option<VerifiedMessage>,
    future: Vec<VerifiedMessage>,
    to_forward: Vec<SignedTransaction>,
    last_retransmit: Duration,
    last_status: Duration,
    fetch_after: Duration,
    /// The height each peer last said it executed.
    peer_executed: BTreeMap<ReplicaId, Seq>,
    /// The peer last asked for blocks.
    last_fetch: Option<ReplicaId>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("me", &self.me)
            .field("view", &self.view)
            .field("low", &self.low)
            .field("exec_sent", &self.exec_sent)
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// A replica whose ledger stands at `head`, resuming from what its
    /// write-ahead log `recovered`.
    pub fn new(
        cfg: PbftConfig,
        set: ReplicaSet,
        key: ReplicaKey,
        head: Head,
        recovered: Recovered,
        now: Now,
    ) -> Self {
        let me = key.id();
        let mut r = Self {
            cfg,
            set,
            key,
            me,
            view: 0,
            changing: None,
            vc_attempts: 0,
            low: 0,
            stable: None,
            slots: BTreeMap::new(),
            headers: BTreeMap::from([(head.height, (head.block_hash, head.time))]),
            exec_sent: head.height,
            exec_done: head,
            next_seq: head.height + 1,
            pending: BTreeMap::new(),
            order: VecDeque::new(),
            unproposed: BTreeMap::new(),
            counter: 0,
            recent: BTreeMap::new(),
            recent_order: VecDeque::new(),
            timed: None,
            progress: 0,
            last_tick: now.mono,
            last_clock_warning: None,
            checkpoints: BTreeMap::new(),
            view_changes: BTreeMap::new(),
            own_vc: BTreeMap::new(),
            last_new_view: None,
            future: Vec::new(),
            to_forward: Vec::new(),
            last_retransmit: now.mono,
            last_status: Duration::ZERO,
            fetch_after: Duration::ZERO,
            peer_executed: BTreeMap::new(),
            last_fetch: None,
        };
        if let Some(cert) = recovered.stable {
            if let Some(h) = cert.head() {
                r.low = h.height;
                r.headers.entry(h.height).or_insert((h.block_hash, h.time));
                r.stable = Some(cert);
            }
        }
        for (seq, id) in recovered.executed {
            if r.recent.insert(id, seq).is_none() {
                r.recent_order.push_back((seq, id));
            }
        }
        let mut view = 0;
        let mut target = 0;
        for m in recovered.sent {
            let from_log = VerifiedMessage::from_own_log(m);
            match from_log.payload().clone() {
                Payload::PrePrepare(pp) => {
                    view = view.max(pp.view);
                    if pp.seq > r.low && pp.seq > r.exec_sent {
                        // Proposed before the restart: never propose again.
                        if let Checked::Batch { txs, .. } = from_log.checked() {
                            let txs = txs.clone();
                            r.mark_proposed(now, &txs);
                        }
                        r.slot(pp.seq).pre_prepares.insert(pp.view, from_log);
                    }
                }
                Payload::Prepare(v) => {
                    view = view.max(v.view);
                    if v.seq > r.low {
                        r.slot(v.seq).my_prepare.insert(v.view, from_log);
                    }
                }
                Payload::Commit(v) => {
                    view = view.max(v.view);
                    if v.seq > r.low {
                        r.slot(v.seq).my_commit.insert(v.view, from_log);
                    }
                }
                Payload::ViewChange(vc) => {
                    target = target.max(vc.new_view);
                    r.own_vc.insert(vc.new_view, from_log);
                }
                Payload::NewView(nv) => {
                    view = view.max(nv.view);
                    r.last_new_view = Some(from_log);
                }
                _ => {}
            }
        }
        for cert in recovered.prepared {
            let Some(pp) = cert.pre_prepare() else {
                continue;
            };
            let (v, seq, d) = (pp.view, pp.seq, pp.batch.digest(pp.seq));
            if seq > r.low {
                let slot = r.slot(seq);
                if slot.prepared.as_ref().is_none_or(|(pv, _, _)| *pv < v) {
                    slot.prepared = Some((v, d, cert));
                }
            }
        }
        r.view = view;
        if target > view {
            r.changing = Some(Changing {
                target,
                deadline: None,
                since: now.mono,
            });
        } else if r.set.primary(view) == me {
            // Resume the sequence numbers this primary used in this view; the
            // pre-prepares are re-sent as they were, never replaced.
            let own: Vec<(Seq, BlockHash, Timestamp)> = r
                .slots
                .iter()
                .filter_map(|(s, slot)| {
                    let m = slot.pre_prepares.get(&view)?;
                    let Payload::PrePrepare(pp) = m.payload() else {
                        return None;
                    };
                    Some((*s, m.digest()?, pp.batch.time))
                })
                .collect();
            for (s, d, t) in own {
                if s > r.exec_sent {
                    r.headers.insert(s, (d, t));
                }
                r.next_seq = r.next_seq.max(s + 1);
            }
        }
        r.next_seq = r.next_seq.max(r.low + 1);
        r
    }

    /// This replica's id.
    pub fn id(&self) -> ReplicaId {
        self.me
    }

    /// The current view.
    pub fn view(&self) -> View {
        self.view
    }

    /// Whether a view change is under way (and to which view).
    pub fn changing_to(&self) -> Option<View> {
        self.changing.map(|c| c.target)
    }

    /// The last stable checkpoint's sequence number (the low watermark).
    pub fn low_watermark(&self) -> Seq {
        self.low
    }

    /// The highest sequence number handed to execution.
    pub fn executed(&self) -> Seq {
        self.exec_sent
    }

    /// Sequence numbers held in the log (above the low watermark).
    pub fn log_len(&self) -> usize {
        self.slots.len()
    }

    /// Client transactions waiting to be executed here.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn is_primary(&self) -> bool {
        self.set.primary(self.view) == self.me
    }

    fn slot(&mut self, seq: Seq) -> &mut Slot {
        self.slots.entry(seq).or_default()
    }

    fn in_window(&self, seq: Seq) -> bool {
        seq > self.low && seq <= self.low + self.cfg.window
    }

    fn sign(&self, payload: Payload, checked: Checked) -> VerifiedMessage {
        VerifiedMessage::own(&self.key, payload, checked)
    }

    fn send_durable(&self, m: VerifiedMessage, out: &mut Vec<Action>) {
        out.push(Action::Persist(WalRecord::Sent(m.signed().clone())));
        out.push(Action::Broadcast(m));
    }

    /// Handles one input at time `now`, appending the actions to `out`.
    pub fn handle(&mut self, now: Now, input: Input, out: &mut Vec<Action>) {
        match input {
            Input::Message(m) => self.on_message(now, m, out),
            Input::Request(tx) => self.on_request(now, tx, true),
            Input::Executed(head) => self.on_executed(head, out),
            Input::Tick => self.on_tick(now, out),
        }
    }

    /// Ends a run of inputs: proposes what the primary can, and forwards the
    /// requests received at a backup to the primary.
    pub fn flush(&mut self, now: Now, out: &mut Vec<Action>) {
        self.maybe_propose(now, out);
        if !self.to_forward.is_empty() {
            let txs = std::mem::take(&mut self.to_forward);
            for chunk in txs.chunks(self.cfg.max_batch) {
                let m = self.sign(Payload::Forward(chunk.to_vec()), Checked::Nothing);
                if self.changing.is_some() {
                    // Whoever turns out to be primary orders them; this
                    // replica learns the blocks by state transfer meanwhile.
                    out.push(Action::Broadcast(m));
                } else {
                    out.push(Action::Send {
                        to: self.set.primary(self.view),
                        message: m,
                    });
                }
            }
        }
    }

    fn on_message(&mut self, now: Now, m: VerifiedMessage, out: &mut Vec<Action>) {
        if m.from() == self.me {
            return;
        }
        match m.payload() {
            Payload::PrePrepare(_) => self.on_pre_prepare(now, m, out),
            Payload::Prepare(_) => self.on_vote(now, m, true, out),
            Payload::Commit(_) => self.on_vote(now, m, false, out),
            Payload::Checkpoint(_) => self.on_checkpoint(now, m, out),
            Payload::ViewChange(_) => self.on_view_change(now, m, out),
            Payload::NewView(nv) => {
                let t = nv.view;
                if t > self.view && self.changing.is_none_or(|c| t >= c.target) {
                    self.enter_view(now, m, out);
                }
            }
            Payload::Forward(_) => {
                if let Checked::Txs(txs) = m.checked() {
                    for tx in txs {
                        self.on_request(now, tx.clone(), false);
                    }
                }
            }
            Payload::Status(s) => self.on_status(now, m.from(), *s, out),
            Payload::Fetch { from } => self.on_fetch(m.from(), *from, out),
            Payload::Blocks(_) => self.on_blocks(now, m, out),
            // Header votes go to the engine's certifier, not to ordering.
            Payload::HeaderVote(_) => {}
        }
    }

    // ------------------------------------------------------------ requests

    fn on_request(&mut self, now: Now, tx: VerifiedTransaction, local: bool) {
        let id = tx.id();
        if self.recent.contains_key(&id) || self.pending.contains_key(&id) {
            return;
        }
        if self.pending.len() >= 4 * self.cfg.queue_capacity {
            debug!(target: TARGET, "pending requests full; dropping a request");
            return;
        }
        // Forwarded right away (at the end of this round): shared from now.
        let forward = local && (!self.is_primary() || self.changing.is_some());
        if forward {
            self.to_forward.push(tx.tx().clone());
        }
        self.counter += 1;
        self.unproposed.insert(self.counter, id);
        self.order.push_back(id);
        self.pending.insert(
            id,
            PendingTx {
                tx,
                order: self.counter,
                since: now.mono,
                shared: forward || !local,
            },
        );
    }

    /// Whether this replica holds `id`: waiting to be ordered, or executed
    /// lately.
    pub fn knows(&self, id: &TxId) -> bool {
        self.pending.contains_key(id) || self.recent.contains_key(id)
    }

    /// Withdraws the transactions submitted here that never left this
    /// replica (not forwarded, broadcast or proposed, and not learned from
    /// another replica) and returns their ids. Nobody else has them and
    /// this replica will not propose them, so they will never be ordered:
    /// shutdown can tell their callers so. Every other pending transaction
    /// may be ordered by the others, with or without this replica.
    pub fn withdraw_unsent(&mut self) -> Vec<TxId> {
        let unsent: Vec<TxId> = self
            .pending
            .iter()
            .filter(|(_, p)| !p.shared)
            .map(|(id, _)| *id)
            .collect();
        for id in &unsent {
            if let Some(p) = self.pending.remove(id) {
                self.unproposed.remove(&p.order);
            }
        }
        unsent
    }

    /// Marks pending transactions as having left this replica.
    fn mark_shared<'a>(&mut self, ids: impl IntoIterator<Item = &'a TxId>) {
        for id in ids {
            if let Some(p) = self.pending.get_mut(id) {
                p.shared = true;
            }
        }
    }

    fn mark_proposed(&mut self, now: Now, txs: &[VerifiedTransaction]) {
        for tx in txs {
            let id = tx.id();
            if self.recent.contains_key(&id) {
                continue;
            }
            match self.pending.get_mut(&id) {
                Some(p) => {
                    p.shared = true;
                    self.unproposed.remove(&p.order);
                }
                None => {
                    // Learned from the primary: time it too, so a batch that
                    // never commits is noticed.
                    self.counter += 1;
                    self.order.push_back(id);
                    self.pending.insert(
                        id,
                        PendingTx {
                            tx: tx.clone(),
                            order: self.counter,
                            since: now.mono,
                            shared: true,
                        },
                    );
                }
            }
        }
    }

    fn note_executed(&mut self, seq: Seq, txs: &[VerifiedTransaction]) {
        for tx in txs {
            let id = tx.id();
            if let Some(p) = self.pending.remove(&id) {
                self.unproposed.remove(&p.order);
            }
            if self.recent.insert(id, seq).is_none() {
                self.recent_order.push_back((seq, id));
            }
        }
        self.vc_attempts = 0;
        // Remember executed ids for a few windows, to drop late duplicates.
        let keep_from = seq.saturating_sub(4 * self.cfg.window);
        while let Some(&(s, id)) = self.recent_order.front() {
            if s >= keep_from {
                break;
            }
            self.recent_order.pop_front();
            if self.recent.get(&id) == Some(&s) {
                self.recent.remove(&id);
            }
        }
    }

    fn maybe_propose(&mut self, now: Now, out: &mut Vec<Action>) {
        if !self.is_primary() || self.changing.is_some() {
            return;
        }
        // A primary that has not executed up to the stable checkpoint (after
        // a restart, or a view change that found it behind) cannot tell which
        // of its pending requests the blocks below it hold: it would order
        // them again. It proposes once state transfer has caught it up.
        if self.exec_sent < self.low {
            return;
        }
        loop {
            if self.next_seq > self.low + self.cfg.window
                || self.next_seq > self.exec_sent + self.cfg.max_inflight
                || self.unproposed.is_empty()
            {
                return;
            }
            let idle = self.next_seq == self.exec_sent + 1;
            if !idle && self.unproposed.len() < self.cfg.max_batch {
                let oldest = self
                    .unproposed
                    .values()
                    .next()
                    .and_then(|id| self.pending.get(id));
                let waited = oldest.is_some_and(|p| now.mono >= p.since + self.cfg.max_batch_delay);
                if !waited {
                    return;
                }
            }
            let Some(&(parent, ptime)) = self.headers.get(&(self.next_seq - 1)) else {
                return;
            };
            let mut txs = Vec::new();
            while txs.len() < self.cfg.max_batch {
                let Some((_, id)) = self.unproposed.pop_first() else {
                    break;
                };
                if let Some(p) = self.pending.get_mut(&id) {
                    p.shared = true;
                    txs.push(p.tx.clone());
                }
            }
            let batch = Batch {
                time: now.wall.max(ptime),
                parent,
                txs: txs.iter().map(|t| t.tx().clone()).collect(),
            };
            let seq = self.next_seq;
            let digest = batch.digest(seq);
            let pp = self.sign(
                Payload::PrePrepare(PrePrepare {
                    view: self.view,
                    seq,
                    batch,
                }),
                Checked::Batch { digest, txs },
            );
            debug!(target: TARGET, view = self.view, seq, "proposing");
            self.send_durable(pp.clone(), out);
            self.next_seq += 1;
            self.try_accept(now, pp, out);
        }
    }

    // ------------------------------------------------------------ normal case

    fn clock_ok(&self, now: Now, time: Timestamp) -> bool {
        let skew = self.cfg.max_clock_skew.as_millis() as u64;
        time.0 <= now.wall.0.saturating_add(skew) && time.0.saturating_add(skew) >= now.wall.0
    }

    fn on_pre_prepare(&mut self, now: Now, m: VerifiedMessage, out: &mut Vec<Action>) {
        let Payload::PrePrepare(pp) = m.payload() else {
            return;
        };
        let (view, seq, time) = (pp.view, pp.seq, pp.batch.time);
        if !self.in_window(seq) {
            return;
        }
        if view > self.view || (view == self.view && self.changing.is_some()) {
            if view > self.view
                && view <= self.view + MAX_VIEWS_AHEAD
                && self.future.len() < 4 * self.cfg.window as usize
            {
                self.future.push(m);
            }
            return;
        }
        if view < self.view || seq <= self.exec_sent {
            // From an earlier view, or decided already (a retransmission
            // that reached a replica back from a pause, say): judged by view
            // and sequence number, whatever its block time.
            return;
        }
        if !self.clock_ok(now, time) {
            // Not accepted, and no more: if the primary's clock is wrong,
            // every replica whose clock is right refuses its blocks, their
            // requests time out and they replace it together; if this
            // replica's clock is wrong, it alone refuses, and follows the
            // others by state transfer. Starting a view change here would
            // only take a replica with a wrong clock out of the view alone.
            if self
                .last_clock_warning
                .is_none_or(|t| now.mono >= t + CLOCK_WARNING_INTERVAL)
            {
                self.last_clock_warning = Some(now.mono);
                warn!(target: TARGET, view, seq, block_time = %time, local_time = %now.wall, max_skew_ms = self.cfg.max_clock_skew.as_millis() as u64, "refusing the primary's block: its time is too far from this replica's clock (one of the two clocks is wrong)");
            }
            return;
        }
        self.try_accept(now, m, out);
    }

    /// Accepts a pre-prepare of the current view once the block before it is
    /// known, then any successor that was waiting for it.
    fn try_accept(&mut self, now: Now, m: VerifiedMessage, out: &mut Vec<Action>) {
        let mut next = Some(m);
        while let Some(m) = next.take() {
            let Payload::PrePrepare(pp) = m.payload() else {
                return;
            };
            let (view, seq) = (pp.view, pp.seq);
            let Some(digest) = m.digest() else {
                return;
            };
            if view != self.view || self.changing.is_some() || !self.in_window(seq) {
                return;
            }
            let slot = self.slot(seq);
            if let Some(acc) = slot.pre_prepares.get(&view) {
                if acc.digest() != Some(digest) {
                    warn!(target: TARGET, view, seq, "the primary sent two different pre-prepares for one sequence number");
                    self.start_view_change(now, view + 1, out);
                }
                return;
            }
            if slot
                .my_prepare
                .get(&view)
                .and_then(vote_of)
                .is_some_and(|v| v.digest != digest)
            {
                return;
            }
            let Some(&(phash, ptime)) = self.headers.get(&(seq - 1)) else {
                self.slot(seq).waiting = Some(m);
                return;
            };
            let bad_chain = pp.batch.parent != phash || pp.batch.time < ptime;
            let conflicts = self.headers.get(&seq).is_some_and(|(h, _)| *h != digest);
            if bad_chain || conflicts {
                warn!(target: TARGET, view, seq, "pre-prepare does not extend the chain (wrong parent, time going backwards, or a decided block replaced)");
                self.start_view_change(now, view + 1, out);
                return;
            }
            let time = pp.batch.time;
            if let Checked::Batch { txs, .. } = m.checked() {
                let txs = txs.clone();
                self.mark_proposed(now, &txs);
            }
            let slot = self.slot(seq);
            slot.waiting = None;
            slot.pre_prepares.insert(view, m);
            self.progress += 1;
            self.headers.insert(seq, (digest, time));
            if !self.is_primary() {
                let mine = match self.slots[&seq].my_prepare.get(&view) {
                    Some(p) => p.clone(),
                    None => self.sign(
                        Payload::Prepare(Vote { view, seq, digest }),
                        Checked::Nothing,
                    ),
                };
                let me = self.me;
                let slot = self.slot(seq);
                slot.my_prepare.insert(view, mine.clone());
                slot.prepares
                    .entry(view)
                    .or_default()
                    .insert(me, mine.clone());
                self.send_durable(mine, out);
            }
            self.check_prepared(now, seq, view, out);
            next = self
                .slots
                .get_mut(&(seq + 1))
                .and_then(|s| s.waiting.take());
        }
    }

    fn on_vote(&mut self, now: Now, m: VerifiedMessage, prepare: bool, out: &mut Vec<Action>) {
        let Some(v) = vote_of(&m) else {
            return;
        };
        if !self.in_window(v.seq) || v.view > self.view + MAX_VIEWS_AHEAD {
            return;
        }
        let from = m.from();
        let slot = self.slot(v.seq);
        let map = if prepare {
            &mut slot.prepares
        } else {
            &mut slot.commits
        };
        map.entry(v.view).or_default().entry(from).or_insert(m);
        if prepare {
            self.check_prepared(now, v.seq, v.view, out);
        } else {
            self.check_committed(now, v.seq, out);
        }
    }

    fn check_prepared(&mut self, now: Now, seq: Seq, view: View, out: &mut Vec<Action>) {
        let quorum = self.set.quorum();
        let primary = self.set.primary(view);
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        let Some(pp) = slot.pre_prepares.get(&view) else {
            return;
        };
        let Some(digest) = pp.digest() else {
            return;
        };
        if slot.prepared.as_ref().is_some_and(|(v, _, _)| *v >= view) {
            self.check_committed(now, seq, out);
            return;
        }
        let prepares: Vec<SignedMessage> = matching(slot.prepares.get(&view), digest)
            .into_iter()
            .filter(|p| p.from() != primary)
            .take(quorum - 1)
            .map(|p| p.signed().clone())
            .collect();
        if prepares.len() + 1 < quorum {
            return;
        }
        let cert = PreparedCert {
            pre_prepare: pp.signed().clone(),
            prepares,
        };
        slot.prepared = Some((view, digest, cert.clone()));
        out.push(Action::Persist(WalRecord::Prepared(cert)));
        if view == self.view && self.changing.is_none() {
            let mine = match slot.my_commit.get(&view) {
                Some(c) => c.clone(),
                None => VerifiedMessage::own(
                    &self.key,
                    Payload::Commit(Vote { view, seq, digest }),
                    Checked::Nothing,
                ),
            };
            slot.my_commit.insert(view, mine.clone());
            slot.commits
                .entry(view)
                .or_default()
                .insert(self.me, mine.clone());
            self.send_durable(mine, out);
        }
        self.check_committed(now, seq, out);
    }

    fn check_committed(&mut self, now: Now, seq: Seq, out: &mut Vec<Action>) {
        let quorum = self.set.quorum();
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        if slot.committed.is_some() {
            return;
        }
        let Some((view, digest, _)) = slot.prepared else {
            return;
        };
        if matching(slot.commits.get(&view), digest).len() >= quorum {
            slot.committed = Some((view, digest));
            self.try_execute(now, out);
        }
    }

    fn try_execute(&mut self, _now: Now, out: &mut Vec<Action>) {
        loop {
            let seq = self.exec_sent + 1;
            let Some(slot) = self.slots.get(&seq) else {
                return;
            };
            let Some((view, digest)) = slot.committed else {
                return;
            };
            let Some(pp) = slot.pre_prepares.get(&view) else {
                return;
            };
            let (Payload::PrePrepare(p), Checked::Batch { txs, .. }) = (pp.payload(), pp.checked())
            else {
                return;
            };
            let block = p.batch.to_block(seq);
            let time = p.batch.time;
            let txs = txs.clone();
            self.exec_sent = seq;
            self.headers.insert(seq, (digest, time));
            self.note_executed(seq, &txs);
            out.push(Action::Execute(ExecuteBlock { block, txs }));
        }
    }

    // ------------------------------------------------------------ checkpoints

    fn on_executed(&mut self, head: Head, out: &mut Vec<Action>) {
        if head.height <= self.exec_done.height {
            return;
        }
        self.exec_done = head;
        self.progress += 1;
        if head.height.is_multiple_of(self.cfg.checkpoint_interval) && head.height > self.low {
            let m = self.sign(Payload::Checkpoint(head), Checked::Nothing);
            out.push(Action::Broadcast(m.clone()));
            self.checkpoints
                .entry(head.height)
                .or_default()
                .insert(self.me, m);
            self.check_stable(head.height, out);
        }
    }

    fn on_checkpoint(&mut self, _now: Now, m: VerifiedMessage, out: &mut Vec<Action>) {
        let Payload::Checkpoint(head) = m.payload() else {
            return;
        };
        let h = head.height;
        if !self.in_window(h) || h % self.cfg.checkpoint_interval != 0 {
            return;
        }
        self.checkpoints.entry(h).or_default().insert(m.from(), m);
        self.check_stable(h, out);
    }

    fn check_stable(&mut self, height: Seq, out: &mut Vec<Action>) {
        let Some(votes) = self.checkpoints.get(&height) else {
            return;
        };
        let mut groups: BTreeMap<Vec<u8>, Vec<SignedMessage>> = BTreeMap::new();
        for m in votes.values() {
            if let Payload::Checkpoint(h) = m.payload() {
                groups
                    .entry(rr_core::codec::encode(h))
                    .or_default()
                    .push(m.signed().clone());
            }
        }
        let quorum = self.set.quorum();
        if let Some(votes) = groups.into_values().find(|v| v.len() >= quorum) {
            let cert = CheckpointCert {
                votes: votes.into_iter().take(quorum).collect(),
            };
            self.adopt_stable(cert, out);
        }
    }

    fn adopt_stable(&mut self, cert: CheckpointCert, out: &mut Vec<Action>) {
        let Some(head) = cert.head() else {
            return;
        };
        if head.height <= self.low {
            return;
        }
        debug!(target: TARGET, seq = head.height, "checkpoint stable");
        let peers: Vec<ReplicaId> = cert.votes.iter().map(|v| v.from).collect();
        self.low = head.height;
        self.stable = Some(cert.clone());
        out.push(Action::Persist(WalRecord::Stable(cert)));
        let low = self.low;
        self.slots.retain(|s, _| *s > low);
        self.checkpoints.retain(|s, _| *s > low);
        let keep = low.min(self.exec_sent);
        self.headers.retain(|s, _| *s >= keep);
        self.headers
            .entry(low)
            .or_insert((head.block_hash, head.time));
        self.next_seq = self.next_seq.max(low + 1);
        if self.exec_sent < low {
            if let Some(peer) = peers.into_iter().find(|p| *p != self.me) {
                self.fetch_after = Duration::ZERO;
                self.fetch_now(peer, out);
            }
        }
    }

    // ------------------------------------------------------------ state transfer

    fn fetch_now(&mut self, peer: ReplicaId, out: &mut Vec<Action>) {
        self.last_fetch = Some(peer);
        let m = self.sign(
            Payload::Fetch {
                from: self.exec_sent + 1,
            },
            Checked::Nothing,
        );
        out.push(Action::Send {
            to: peer,
            message: m,
        });
    }

    /// The height at least f + 1 peers say they executed: at least one
    /// correct replica did, so the cluster is at least there.
    fn cluster_executed(&self) -> Seq {
        let mut heights: Vec<Seq> = self.peer_executed.values().copied().collect();
        heights.sort_unstable_by(|a, b| b.cmp(a));
        heights.get(self.set.f()).copied().unwrap_or(0)
    }

    /// Whether this replica is behind the cluster (catching up after a
    /// restart or a partition): it cannot judge the primary by what it sees
    /// itself then.
    fn behind(&self) -> bool {
        self.cluster_executed() > self.exec_sent
    }

    fn on_status(&mut self, now: Now, from: ReplicaId, status: Status, out: &mut Vec<Action>) {
        let cluster_before = self.cluster_executed();
        self.peer_executed.insert(from, status.executed);
        if self.cluster_executed() > cluster_before {
            // The cluster executed more: its primary is making progress,
            // whatever this replica has seen of it.
            self.progress += 1;
        }
        if status.executed > self.exec_sent && now.mono >= self.fetch_after {
            self.fetch_after = now.mono + 4 * self.cfg.retransmit_interval;
            // Ask the peers that are ahead in turn, not whichever status came
            // first: that one may be unable to serve (a peer that restarted
            // no longer holds the commit certificates of its blocks above its
            // checkpoint, and answers nothing), and with status timers in
            // lockstep it would come first every time.
            let ahead = |(p, h): (&ReplicaId, &Seq)| (*h > self.exec_sent).then_some(*p);
            let after = self.last_fetch.map_or(0, |p| p.0.wrapping_add(1));
            let peer = self
                .peer_executed
                .range(ReplicaId(after)..)
                .find_map(ahead)
                .or_else(|| self.peer_executed.iter().find_map(ahead))
                .unwrap_or(from);
            self.fetch_now(peer, out);
        }
        if status.view < self.view && self.changing.is_none() {
            if let Some(nv) = &self.last_new_view {
                out.push(Action::Send {
                    to: from,
                    message: nv.clone(),
                });
            }
        }
    }

    fn on_fetch(&mut self, to: ReplicaId, from: Seq, out: &mut Vec<Action>) {
        let top = self.exec_done.height;
        if from == 0 || from > top {
            return;
        }
        let quorum = self.set.quorum();
        for (seq, slot) in self.slots.range(from..=top).rev() {
            let Some((view, digest)) = slot.committed else {
                continue;
            };
            let commits: Vec<SignedMessage> = matching(slot.commits.get(&view), digest)
                .into_iter()
                .take(quorum)
                .map(|m| m.signed().clone())
                .collect();
            if commits.len() >= quorum {
                out.push(Action::Serve {
                    to,
                    from,
                    upto: *seq,
                    proof: Proof::Commit(CommitCert { commits }),
                });
                return;
            }
        }
        if let Some(cert) = &self.stable {
            if self.low >= from && self.low <= top {
                out.push(Action::Serve {
                    to,
                    from,
                    upto: self.low,
                    proof: Proof::Checkpoint(cert.clone()),
                });
            }
        }
    }

    fn on_blocks(&mut self, now: Now, m: VerifiedMessage, out: &mut Vec<Action>) {
        let (Payload::Blocks(reply), Checked::Blocks(txs)) = (m.payload(), m.checked()) else {
            return;
        };
        let mut progressed = false;
        for (block, txs) in reply.blocks.iter().zip(txs) {
            let h = block.header.context.height;
            if h <= self.exec_sent {
                continue;
            }
            let parent = self.headers.get(&self.exec_sent).map(|x| x.0);
            if h != self.exec_sent + 1 || parent != Some(block.header.parent) {
                if h == self.exec_sent + 1 {
                    error!(target: TARGET, height = h, "a proven block does not extend this replica's ledger: its history diverged");
                }
                break;
            }
            self.exec_sent = h;
            self.headers
                .insert(h, (block.header.hash(), block.header.context.time));
            self.note_executed(h, txs);
            out.push(Action::Execute(ExecuteBlock {
                block: block.clone(),
                txs: txs.clone(),
            }));
            progressed = true;
        }
        if progressed {
            debug!(target: TARGET, upto = self.exec_sent, from = %m.from(), "caught up by state transfer");
        }
        if let super::message::Proof::Checkpoint(cert) = &reply.proof {
            if self.exec_sent >= cert.head().map_or(0, |h| h.height) {
                self.adopt_stable(cert.clone(), out);
            }
        }
        if progressed && !reply.headers.is_empty() {
            self.fetch_now(m.from(), out);
        }
        if progressed {
            self.fetch_after = Duration::ZERO;
            self.try_execute(now, out);
            if let Some(w) = self
                .slots
                .get_mut(&(self.exec_sent + 1))
                .and_then(|s| s.waiting.take())
            {
                self.try_accept(now, w, out);
            }
        }
    }

    // ------------------------------------------------------------ view change

    fn start_view_change(&mut self, now: Now, target: View, out: &mut Vec<Action>) {
        if target <= self.view || self.changing.is_some_and(|c| target <= c.target) {
            return;
        }
        info!(target: TARGET, replica = %self.me, from_view = self.view, to_view = target, new_primary = %self.set.primary(target), "starting a view change");
        let vc = match self.own_vc.get(&target) {
            Some(vc) => vc.clone(),
            None => {
                let prepared = self
                    .slots
                    .range(self.low + 1..)
                    .filter_map(|(_, s)| s.prepared.as_ref().map(|(_, _, c)| c.clone()))
                    .take(super::message::MAX_PREPARED_CERTS)
                    .collect();
                self.sign(
                    Payload::ViewChange(ViewChange {
                        new_view: target,
                        checkpoint: self.stable.clone(),
                        prepared,
                    }),
                    Checked::Nothing,
                )
            }
        };
        self.own_vc.insert(target, vc.clone());
        self.send_durable(vc.clone(), out);
        self.vc_attempts = self.vc_attempts.saturating_add(1);
        self.changing = Some(Changing {
            target,
            deadline: None,
            since: self.changing.map_or(now.mono, |c| c.since),
        });
        self.view_changes
            .entry(target)
            .or_default()
            .insert(self.me, vc);
        self.arm_view_timer(now);
        self.try_new_view(now, target, out);
    }

    /// Starts the timer on the view change under way once a quorum asked for
    /// its view: from then on its primary has what it needs, and if no new
    /// view comes in time the replicas go on to the next one. The wait
    /// doubles with each view that failed in a row.
    fn arm_view_timer(&mut self, now: Now) {
        let Some(c) = self.changing else {
            return;
        };
        if c.deadline.is_some() {
            return;
        }
        let asked = self.view_changes.get(&c.target).map_or(0, |v| v.len());
        if asked < self.set.quorum() {
            return;
        }
        let backoff = 1u32 << self.vc_attempts.saturating_sub(1).min(5);
        self.changing = Some(Changing {
            deadline: Some(now.mono + self.cfg.view_change_timeout * backoff),
            ..c
        });
    }

    fn on_view_change(&mut self, now: Now, m: VerifiedMessage, out: &mut Vec<Action>) {
        let Payload::ViewChange(vc) = m.payload() else {
            return;
        };
        let t = vc.new_view;
        let from = m.from();
        if t <= self.view {
            // A laggard: show it how this view started.
            if self.changing.is_none() {
                if let Some(nv) = &self.last_new_view {
                    out.push(Action::Send {
                        to: from,
                        message: nv.clone(),
                    });
                }
            }
            return;
        }
        if t > self.view + MAX_VIEWS_AHEAD {
            return;
        }
        self.view_changes.entry(t).or_default().insert(from, m);
        self.arm_view_timer(now);
        // f + 1 replicas want a later view: at least one correct one does, so join.
        let current = self.changing.map_or(self.view, |c| c.target);
        let mut lowest: BTreeMap<ReplicaId, View> = BTreeMap::new();
        for (v, senders) in self.view_changes.range(current + 1..) {
            for id in senders.keys() {
                lowest.entry(*id).or_insert(*v);
            }
        }
        if lowest.len() > self.set.f() {
            if let Some(&min) = lowest.values().min() {
                self.start_view_change(now, min, out);
            }
        }
        self.try_new_view(now, t, out);
    }

    fn try_new_view(&mut self, now: Now, t: View, out: &mut Vec<Action>) {
        if self.set.primary(t) != self.me || self.changing.is_none_or(|c| c.target != t) {
            return;
        }
        let quorum = self.set.quorum();
        let Some(vcs) = self.view_changes.get(&t) else {
            return;
        };
        if vcs.len() < quorum {
            return;
        }
        let mut chosen: Vec<&VerifiedMessage> = Vec::with_capacity(quorum);
        if let Some(own) = vcs.get(&self.me) {
            chosen.push(own);
        }
        chosen.extend(vcs.values().filter(|m| m.from() != self.me));
        chosen.truncate(quorum);
        let plan = plan_new_view(chosen.iter().filter_map(|m| match m.payload() {
            Payload::ViewChange(vc) => Some(vc),
            _ => None,
        }));
        let pre_prepares = plan
            .batches
            .into_iter()
            .map(|(seq, batch)| {
                SignedMessage::sign(
                    &self.key,
                    Payload::PrePrepare(PrePrepare {
                        view: t,
                        seq,
                        batch,
                    }),
                )
            })
            .collect();
        let nv = SignedMessage::sign(
            &self.key,
            Payload::NewView(super::message::NewView {
                view: t,
                view_changes: chosen.iter().map(|m| m.signed().clone()).collect(),
                pre_prepares,
            }),
        );
        // Check it as the backups will: it also verifies the transactions of
        // re-proposed batches this replica never saw.
        let nv = match nv.verify(&self.set) {
            Ok(nv) => nv,
            Err(e) => {
                error!(target: TARGET, view = t, error = %e, "own new-view message does not verify");
                return;
            }
        };
        info!(target: TARGET, replica = %self.me, view = t, "sending new view");
        self.send_durable(nv.clone(), out);
        self.enter_view(now, nv, out);
    }

    fn enter_view(&mut self, now: Now, m: VerifiedMessage, out: &mut Vec<Action>) {
        let (Payload::NewView(nv), Checked::NewView(parts)) = (m.payload(), m.checked()) else {
            return;
        };
        let t = nv.view;
        let plan = plan_new_view(nv.view_changes.iter().filter_map(|m| match &m.payload {
            Payload::ViewChange(vc) => Some(vc),
            _ => None,
        }));
        let took = self
            .changing
            .map(|c| now.mono.saturating_sub(c.since).as_millis() as u64);
        info!(target: TARGET, replica = %self.me, view = t, primary = %self.set.primary(t), reproposed = plan.batches.len(), view_change_ms = took, "entering view");
        self.view = t;
        self.changing = None;
        self.last_new_view = Some(m.clone());
        self.view_changes.retain(|v, _| *v > t);
        self.own_vc.retain(|v, _| *v > t);
        if let Some(cert) = plan.checkpoint.clone() {
            self.adopt_stable(cert, out);
        }
        let exec = self.exec_sent;
        self.headers.retain(|s, _| *s <= exec);
        let base = plan.base;
        self.headers
            .entry(base.height)
            .or_insert((base.block_hash, base.time));
        for slot in self.slots.values_mut() {
            slot.waiting = None;
        }
        // Every request waits again, with a fresh timer, for the new primary.
        self.timed = None;
        self.unproposed.clear();
        for (id, p) in self.pending.iter_mut() {
            p.since = now.mono;
            self.unproposed.insert(p.order, *id);
        }
        self.next_seq = plan
            .batches
            .last()
            .map_or(base.height + 1, |(s, _)| s + 1)
            .max(self.low + 1);
        let pps: Vec<VerifiedMessage> = nv
            .pre_prepares
            .iter()
            .zip(parts)
            .map(|(signed, (digest, txs))| {
                VerifiedMessage::part(
                    signed.clone(),
                    Checked::Batch {
                        digest: *digest,
                        txs: txs.clone(),
                    },
                )
            })
            .collect();
        // Their transactions are ordered already, even where a pre-prepare
        // must wait for state transfer before it can be accepted.
        for (_, txs) in parts {
            self.mark_proposed(now, txs);
        }
        for pp in pps {
            self.try_accept(now, pp, out);
        }
        let future = std::mem::take(&mut self.future);
        for f in future {
            match f.payload() {
                Payload::PrePrepare(pp) if pp.view == t => self.on_pre_prepare(now, f, out),
                Payload::PrePrepare(pp) if pp.view > t => self.future.push(f),
                _ => {}
            }
        }
        if self.is_primary() {
            self.maybe_propose(now, out);
        } else {
            // The new primary may never have seen these.
            let ids: Vec<TxId> = self.unproposed.values().copied().collect();
            self.mark_shared(&ids);
            self.to_forward = ids
                .iter()
                .filter_map(|id| self.pending.get(id).map(|p| p.tx.tx().clone()))
                .collect();
            let primary = self.set.primary(t);
            for chunk in std::mem::take(&mut self.to_forward).chunks(self.cfg.max_batch) {
                let m = self.sign(Payload::Forward(chunk.to_vec()), Checked::Nothing);
                out.push(Action::Send {
                    to: primary,
                    message: m,
                });
            }
        }
    }

    // ------------------------------------------------------------ timers

    fn on_tick(&mut self, now: Now, out: &mut Vec<Action>) {
        let gap = now.mono.saturating_sub(self.last_tick);
        self.last_tick = now.mono;
        if gap
            > self
                .cfg
                .request_timeout
                .max(4 * self.cfg.retransmit_interval)
        {
            // This replica did not run for a while (paused, or starved): its
            // timers ran out while it could not see what the others did.
            // Start them again rather than blame the primary for the pause.
            info!(target: TARGET, replica = %self.me, paused_ms = gap.as_millis() as u64, "resuming after a pause; timers restart");
            self.timed = None;
            for p in self.pending.values_mut() {
                p.since = now.mono;
            }
            if let Some(c) = self.changing {
                self.changing = Some(Changing {
                    deadline: c.deadline.map(|_| now.mono + self.cfg.view_change_timeout),
                    ..c
                });
            }
        }
        if self.changing.is_none() {
            self.check_request_timer(now, out);
        }
        if let Some(Changing {
            target,
            deadline: Some(deadline),
            ..
        }) = self.changing
        {
            if now.mono >= deadline {
                // A quorum asked for this view and its primary did not
                // start it in time: on to the next one.
                warn!(target: TARGET, replica = %self.me, view = target, primary = %self.set.primary(target), "no new view in time; asking for the next one");
                self.start_view_change(now, target + 1, out);
            }
        }
        if now.mono >= self.last_retransmit + self.cfg.retransmit_interval {
            self.last_retransmit = now.mono;
            self.retransmit(out);
        }
        if now.mono >= self.last_status + self.cfg.status_interval {
            self.last_status = now.mono;
            let m = self.sign(
                Payload::Status(Status {
                    view: self.view,
                    executed: self.exec_done.height,
                }),
                Checked::Nothing,
            );
            out.push(Action::Broadcast(m));
        }
        self.maybe_propose(now, out);
    }

    /// PBFT's request timer, on the oldest request waiting to be ordered.
    /// After `request_timeout` the replica tells everyone about the pending
    /// requests (maybe only it knows them, so only it would notice they are
    /// not ordered). After `request_timeout` more, it asks for a new view if
    /// the primary made no progress meanwhile (no block proposed to it or
    /// executed here), or if the request has waited
    /// [`CENSORSHIP_TIMEOUTS`] timeouts while the primary ordered others.
    fn check_request_timer(&mut self, now: Now, out: &mut Vec<Action>) {
        while let Some(id) = self.order.front() {
            if self.pending.contains_key(id) {
                break;
            }
            self.order.pop_front();
        }
        let Some(&oldest) = self.order.front() else {
            self.timed = None;
            return;
        };
        let timeout = self.cfg.request_timeout;
        let timer = match self.timed {
            Some(t) if t.id == oldest => t,
            _ => {
                self.timed = Some(RequestTimer {
                    id: oldest,
                    deadline: now.mono + timeout,
                    phase: 0,
                    progress: self.progress,
                });
                return;
            }
        };
        if now.mono < timer.deadline {
            return;
        }
        if timer.phase == 0 {
            let ids: Vec<TxId> = self
                .order
                .iter()
                .filter(|id| self.pending.contains_key(id))
                .take(self.cfg.max_batch)
                .copied()
                .collect();
            self.mark_shared(&ids);
            let txs: Vec<SignedTransaction> = ids
                .iter()
                .filter_map(|id| self.pending.get(id))
                .map(|p| p.tx.tx().clone())
                .collect();
            let m = self.sign(Payload::Forward(txs), Checked::Nothing);
            out.push(Action::Broadcast(m));
            self.timed = Some(RequestTimer {
                deadline: now.mono + timeout,
                phase: 1,
                progress: self.progress,
                ..timer
            });
            return;
        }
        let waited = self
            .pending
            .get(&oldest)
            .map_or(Duration::ZERO, |p| now.mono.saturating_sub(p.since));
        if self.behind()
            || (self.progress != timer.progress && waited < timeout * CENSORSHIP_TIMEOUTS)
        {
            // The primary is alive and ordering (the request waits in line),
            // or this replica is catching up and sees too little to judge.
            self.timed = Some(RequestTimer {
                deadline: now.mono + timeout,
                progress: self.progress,
                ..timer
            });
            return;
        }
        self.timed = None;
        warn!(target: TARGET, replica = %self.me, view = self.view, primary = %self.set.primary(self.view), waited_ms = waited.as_millis() as u64, "a request was not ordered in time; suspecting the primary");
        self.start_view_change(now, self.view + 1, out);
    }

    fn retransmit(&mut self, out: &mut Vec<Action>) {
        if let Some(c) = self.changing {
            if let Some(vc) = self.own_vc.get(&c.target) {
                out.push(Action::Broadcast(vc.clone()));
            }
            // The requests this replica waits for may be known to it alone
            // (their forward to the old primary lost): tell everyone, so
            // they are ordered (if the others are fine in their view) or
            // the others time out on them too and join the view change.
            let ids: Vec<TxId> = self
                .unproposed
                .values()
                .filter(|id| self.pending.contains_key(id))
                .take(self.cfg.max_batch)
                .copied()
                .collect();
            self.mark_shared(&ids);
            let txs: Vec<SignedTransaction> = ids
                .iter()
                .filter_map(|id| self.pending.get(id))
                .map(|p| p.tx.tx().clone())
                .collect();
            if !txs.is_empty() {
                let m = self.sign(Payload::Forward(txs), Checked::Nothing);
                out.push(Action::Broadcast(m));
            }
            return;
        }
        let view = self.view;
        let primary = self.is_primary();
        for (_, slot) in self.slots.range(self.exec_done.height + 1..) {
            if slot.committed.is_some() {
                continue;
            }
            if primary {
                if let Some(pp) = slot.pre_prepares.get(&view) {
                    out.push(Action::Broadcast(pp.clone()));
                }
            }
            for m in [slot.my_prepare.get(&view), slot.my_commit.get(&view)]
                .into_iter()
                .flatten()
            {
                out.push(Action::Broadcast(m.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use rr_core::{AccountId, GrantId, Revoke, TxBody};

    fn replicas(n: usize) -> (ReplicaSet, Vec<ReplicaKey>) {
        let keys: Vec<ReplicaKey> = (0..n)
            .map(|i| {
                ReplicaKey::new(
                    ReplicaId(i as u16),
                    SigningKey::from_bytes(&[i as u8 + 1; 32]),
                )
            })
            .collect();
        let set = ReplicaSet::new(keys.iter().map(|k| k.verifying_key()).collect()).unwrap();
        (set, keys)
    }

    fn call(nonce: u64) -> VerifiedTransaction {
        let key = SigningKey::from_bytes(&[9; 32]);
        TxBody {
            signer: AccountId::from_verifying_key(&key.verifying_key()),
            nonce,
            call: rr_core::Call::Revoke(Revoke {
                grant: GrantId([1; 32]),
            }),
        }
        .sign(&key)
        .verify()
        .unwrap()
    }

    fn now() -> Now {
        Now {
            mono: Duration::from_secs(1),
            wall: Timestamp(1_000),
        }
    }

    fn replica(i: usize) -> Replica {
        let (set, keys) = replicas(4);
        Replica::new(
            PbftConfig::for_tests(),
            set,
            keys[i].clone(),
            Head::default(),
            Recovered::default(),
            now(),
        )
    }

    #[test]
    fn only_calls_that_never_left_the_primary_are_withdrawn() {
        let mut primary = replica(0);
        let mut out = Vec::new();
        let proposed = call(0);
        primary.handle(now(), Input::Request(proposed.clone()), &mut out);
        primary.flush(now(), &mut out);
        assert!(out.iter().any(
            |a| matches!(a, Action::Broadcast(m) if matches!(m.payload(), Payload::PrePrepare(_)))
        ));
        // A call handled but not proposed yet never left the primary.
        let kept = call(1);
        primary.handle(now(), Input::Request(kept.clone()), &mut out);
        assert_eq!(primary.withdraw_unsent(), vec![kept.id()]);
        assert!(!primary.knows(&kept.id()));
        assert!(primary.knows(&proposed.id()));
        // Withdrawn: never proposed afterwards.
        out.clear();
        primary.flush(now(), &mut out);
        assert!(!out.iter().any(|a| matches!(a, Action::Broadcast(_))));
    }

    #[test]
    fn a_backup_withdraws_nothing_it_forwarded() {
        let mut backup = replica(1);
        let mut out = Vec::new();
        let tx = call(0);
        backup.handle(now(), Input::Request(tx.clone()), &mut out);
        assert!(backup.withdraw_unsent().is_empty());
        backup.flush(now(), &mut out);
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::Send { message, .. } if matches!(message.payload(), Payload::Forward(_)))));
        assert!(backup.knows(&tx.id()));
    }
}
