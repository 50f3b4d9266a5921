//! The replicas' pure ordering cores on a scripted in-memory network: every
//! message goes through the wire format, every replica keeps a real
//! write-ahead log (so a restart recovers what the engine's would), and the
//! test decides who is cut off and whether state transfer replies get
//! through. Deterministic: no tasks, no clocks, no randomness.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rr_consensus::harness::harness_key;
use rr_consensus::pbft::message::{BlocksReply, PrePrepare};
use rr_consensus::pbft::{Action, Input, Now, Payload, Replica, SignedMessage};
use rr_consensus::{PbftConfig, ReplicaKey, ReplicaSet, Wal};
use rr_core::{Block, ReplicaId, Timestamp, TxId, VerifiedTransaction};
use rr_storage::Head;

/// Replicas.
pub const N: usize = 4;

/// Four ordering cores and the network between them.
pub struct Net {
    config: PbftConfig,
    set: ReplicaSet,
    keys: Vec<ReplicaKey>,
    wals: Vec<Wal>,
    _dir: tempfile::TempDir,
    /// The cores.
    pub replicas: Vec<Replica>,
    /// Each replica's ledger head.
    pub heads: Vec<Head>,
    /// Each replica's executed blocks, by height.
    pub blocks: Vec<BTreeMap<u64, Block>>,
    /// Which replicas are connected.
    pub up: [bool; N],
    /// Whether state transfer replies get through.
    pub serve: bool,
    /// Paused replicas (as by SIGSTOP): they run nothing and get no ticks;
    /// what is sent to them waits, as in a socket's buffer, until
    /// [`Net::resume`].
    paused: [bool; N],
    held: Vec<VecDeque<Input>>,
    /// Each replica's clock, this many milliseconds off the true time.
    pub skew_ms: [i64; N],
    inbox: VecDeque<(usize, Input)>,
    now: Now,
    /// Every proposal: proposer, sequence number, transaction ids.
    pub proposals: Vec<(usize, u64, Vec<TxId>)>,
    /// Every state transfer reply: server, receiver, first and last height.
    pub served: Vec<(usize, usize, u64, u64)>,
}

impl Net {
    /// Four fresh replicas with `config`.
    pub fn new(config: PbftConfig) -> Self {
        let keys: Vec<ReplicaKey> = (0..N)
            .map(|i| ReplicaKey::new(ReplicaId(i as u16), harness_key(i)))
            .collect();
        let set = ReplicaSet::new(keys.iter().map(|k| k.verifying_key()).collect()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let wals = (0..N)
            .map(|i| Wal::open(dir.path().join(format!("wal-{i}.redb"))).unwrap())
            .collect();
        let now = Now {
            mono: Duration::ZERO,
            wall: Timestamp(1_800_000_000_000),
        };
        let mut net = Self {
            config,
            set,
            keys,
            wals,
            _dir: dir,
            replicas: Vec::new(),
            heads: vec![Head::default(); N],
            blocks: vec![BTreeMap::new(); N],
            up: [true; N],
            serve: true,
            paused: [false; N],
            held: vec![VecDeque::new(); N],
            skew_ms: [0; N],
            inbox: VecDeque::new(),
            now,
            proposals: Vec::new(),
            served: Vec::new(),
        };
        net.replicas = (0..N).map(|i| net.boot(i)).collect();
        net
    }

    /// Replica `i` as it starts from its ledger head and write-ahead log.
    fn boot(&self, i: usize) -> Replica {
        let mut recovered = self.wals[i].recover().unwrap();
        for (h, b) in &self.blocks[i] {
            recovered
                .executed
                .extend(b.txs.iter().map(|t| (*h, t.id())));
        }
        Replica::new(
            self.config.clone(),
            self.set.clone(),
            self.keys[i].clone(),
            self.heads[i],
            recovered,
            self.now,
        )
    }

    /// Restarts replica `i`: what it held in memory only is gone.
    pub fn restart(&mut self, i: usize) {
        self.inbox.retain(|(to, _)| *to != i);
        self.replicas[i] = self.boot(i);
    }

    /// Delivers what `from` sent to `to`, through the wire format, unless one
    /// of them is cut off.
    fn deliver(&mut self, from: usize, to: usize, m: &SignedMessage) {
        if !self.up[from] || !self.up[to] {
            return;
        }
        let m = SignedMessage::from_bytes(&m.to_bytes())
            .unwrap()
            .verify(&self.set)
            .unwrap();
        self.inbox.push_back((to, Input::Message(m)));
    }

    fn apply(&mut self, i: usize, actions: Vec<Action>) {
        let records: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Persist(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        self.wals[i].append(&records).unwrap();
        for a in actions {
            match a {
                Action::Persist(_) => {}
                Action::Send { to, message } => self.deliver(i, to.0 as usize, message.signed()),
                Action::Broadcast(m) => {
                    if let Payload::PrePrepare(PrePrepare { seq, batch, .. }) = m.payload() {
                        self.proposals
                            .push((i, *seq, batch.txs.iter().map(|t| t.id()).collect()));
                    }
                    for j in (0..N).filter(|j| *j != i) {
                        self.deliver(i, j, m.signed());
                    }
                }
                Action::Execute(b) => {
                    // No ledger here: a head that chains the block (its
                    // "state" digest is the block hash, the same everywhere).
                    self.heads[i].check_next(&b.block).unwrap();
                    let hash = b.block.header.hash();
                    let head = Head {
                        height: b.block.header.context.height,
                        block_hash: hash,
                        time: b.block.header.context.time,
                        state_digest: rr_core::Digest(hash.0),
                    };
                    self.heads[i] = head;
                    self.blocks[i].insert(head.height, b.block);
                    self.inbox.push_back((i, Input::Executed(head)));
                }
                Action::Serve { .. } if !self.serve => {}
                Action::Serve {
                    to,
                    from,
                    upto,
                    proof,
                } => {
                    let blocks = self.blocks[i].range(from..=upto).map(|(_, b)| b.clone());
                    let reply = SignedMessage::sign(
                        &self.keys[i],
                        Payload::Blocks(BlocksReply {
                            blocks: blocks.collect(),
                            headers: Vec::new(),
                            proof,
                        }),
                    );
                    self.served.push((i, to.0 as usize, from, upto));
                    self.deliver(i, to.0 as usize, &reply);
                }
            }
        }
    }

    /// The time as replica `i`'s clock shows it.
    fn now_at(&self, i: usize) -> Now {
        let wall = self.now.wall.0 as i64 + self.skew_ms[i];
        Now {
            mono: self.now.mono,
            wall: Timestamp(wall.max(0) as u64),
        }
    }

    /// Runs until no input is left.
    pub fn settle(&mut self) {
        while let Some((i, input)) = self.inbox.pop_front() {
            if self.paused[i] {
                if !matches!(input, Input::Tick) {
                    self.held[i].push_back(input);
                }
                continue;
            }
            let now = self.now_at(i);
            let mut out = Vec::new();
            self.replicas[i].handle(now, input, &mut out);
            self.replicas[i].flush(now, &mut out);
            self.apply(i, out);
        }
    }

    /// Pauses replica `i`.
    pub fn pause(&mut self, i: usize) {
        self.paused[i] = true;
    }

    /// Resumes replica `i`: it gets what was sent to it meanwhile, then
    /// runs on. Its monotonic clock has jumped by the pause.
    pub fn resume(&mut self, i: usize) {
        self.paused[i] = false;
        let held = std::mem::take(&mut self.held[i]);
        self.inbox.extend(held.into_iter().map(|m| (i, m)));
        self.settle();
    }

    /// Lets time pass until `done` holds, in steps of 10 ms, for at most
    /// `limit_ms`; returns the milliseconds it took, or `None`.
    pub fn pass_until(
        &mut self,
        limit_ms: u64,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Option<u64> {
        let mut waited = 0;
        while !done(self) {
            if waited >= limit_ms {
                return None;
            }
            self.pass(10);
            waited += 10;
        }
        Some(waited)
    }

    /// Queues `t` for replica `at` without running anything: calls queued
    /// together arrive one after another, before the messages they cause.
    pub fn enqueue(&mut self, at: usize, t: &VerifiedTransaction) {
        self.inbox.push_back((at, Input::Request(t.clone())));
    }

    /// Submits `t` at the replicas `at`.
    pub fn request(&mut self, at: &[usize], t: &VerifiedTransaction) {
        for i in at {
            self.inbox.push_back((*i, Input::Request(t.clone())));
        }
        self.settle();
    }

    /// Lets `ms` milliseconds pass in ticks of 10 ms.
    pub fn pass(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            self.now.mono += Duration::from_millis(10);
            self.now.wall = self.now.wall.plus_millis(10);
            for i in (0..N).filter(|i| !self.paused[*i]) {
                self.inbox.push_back((i, Input::Tick));
            }
            self.settle();
        }
    }

    /// Replica `i`'s ledger height.
    pub fn height(&self, i: usize) -> u64 {
        self.heads[i].height
    }
}
