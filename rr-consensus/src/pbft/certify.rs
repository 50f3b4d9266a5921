//! Certificates of executed blocks.
//!
//! Ordering decides a block before it executes, so the commit votes cannot
//! cover the state after it. Instead every replica, once it has committed a
//! block, sends the others a [`HeaderVote`]: its signature over the block's
//! [`LedgerHeader`] (state root, receipts root, previous header, replica
//! set). A quorum of votes for the same header hash is the header's
//! [`Certificate`]: kept with the block, and served to clients, who check
//! it against the replica set they trust. Execution is deterministic, so
//! correct replicas vote for the same hash; a replica whose hash differs
//! from a quorum's has diverged, and says so loudly.
//!
//! Votes lost on the way are sent again while a height is uncertified; a
//! replica that restarted (or needs an old height certified) asks by sending
//! its own vote, and a replica that certified that height already answers
//! with its own, once per peer and height.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rr_core::cert::{Certificate, HeaderSignature, LedgerHeader};
use rr_core::{Digest, ReplicaId};
use rr_storage::{Committed, Ledger};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, warn};

use super::crypto::{ReplicaKey, ReplicaSet};
use super::message::{Checked, HeaderVote, Payload, VerifiedMessage};

const TARGET: &str = "rr_consensus::pbft";

/// Certificates kept in memory (the rest are read from the ledger).
const RECENT: usize = 1024;
/// Peers' (peer, height) asks answered, remembered so each is answered once.
const REPLIED: usize = 4096;
/// Open heights whose own vote is sent again on a tick (the newest: a
/// client's reads wait for the head's certificate).
const RESEND: usize = 4;

/// Messages to send: to one replica, or (`None`) to all.
pub(crate) type Out = Vec<(Option<ReplicaId>, VerifiedMessage)>;

/// Signatures of certified headers, to store.
pub(crate) type ToStore = (u64, Vec<HeaderSignature>);

/// What the certifier reacts to.
pub(crate) enum CertInput {
    /// Blocks this replica committed (its own signature is stored with each).
    Committed(Vec<Committed>),
    /// A verified header vote from a peer.
    Vote(VerifiedMessage),
    /// Someone needs the certificate of this height.
    Need(u64),
    /// Time passed.
    Tick,
}

/// The certificates a replica holds, shared with [`super::Pbft::certificate`].
pub(crate) struct Certs {
    recent: Mutex<BTreeMap<u64, Certificate>>,
    /// Bumped whenever a certificate is added.
    changed: watch::Sender<u64>,
}

impl Certs {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            recent: Mutex::new(BTreeMap::new()),
            changed: watch::channel(0).0,
        })
    }

    pub(crate) fn get(&self, height: u64) -> Option<Certificate> {
        self.recent
            .lock()
            .expect("certs lock")
            .get(&height)
            .cloned()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn insert(&self, cert: Certificate) {
        let mut recent = self.recent.lock().expect("certs lock");
        recent.insert(cert.header.height, cert);
        while recent.len() > RECENT {
            recent.pop_first();
        }
        drop(recent);
        self.changed.send_modify(|n| *n += 1);
    }
}

struct Open {
    header: LedgerHeader,
    hash: Digest,
    votes: BTreeMap<ReplicaId, Vec<u8>>,
    last_sent: Duration,
}

/// One replica's certificate collection. A plain state machine driven by
/// [`CertInput`]s; it returns the messages to send.
pub(crate) struct Certifier {
    set: ReplicaSet,
    key: ReplicaKey,
    ledger: Arc<Ledger>,
    certs: Arc<Certs>,
    /// Highest height this replica executed.
    head: u64,
    /// How far ahead of `head` votes are kept.
    window: u64,
    resend_after: Duration,
    open: BTreeMap<u64, Open>,
    early: BTreeMap<u64, BTreeMap<ReplicaId, (Digest, Vec<u8>)>>,
    replied: HashSet<(ReplicaId, u64)>,
    replied_order: VecDeque<(ReplicaId, u64)>,
    store: mpsc::UnboundedSender<ToStore>,
}

fn own_signature(key: &ReplicaKey, hash: &Digest) -> Vec<u8> {
    key.sign(&LedgerHeader::signing_bytes(hash))
        .to_bytes()
        .to_vec()
}

impl Certifier {
    /// A certifier at `ledger`'s head, and the task that stores the
    /// certificates it completes.
    pub(crate) fn new(
        set: ReplicaSet,
        key: ReplicaKey,
        ledger: Arc<Ledger>,
        certs: Arc<Certs>,
        window: u64,
        resend_after: Duration,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ToStore>), String> {
        let (store, stored) = mpsc::unbounded_channel();
        let head = ledger.head().map_err(|e| e.to_string())?.height;
        let c = Self {
            set,
            key,
            ledger,
            certs,
            head,
            window,
            resend_after,
            open: BTreeMap::new(),
            early: BTreeMap::new(),
            replied: HashSet::new(),
            replied_order: VecDeque::new(),
            store,
        };
        Ok((c, stored))
    }

    /// Opens the head's certificate if the ledger does not hold one (a
    /// restart, or genesis): returns the vote to broadcast.
    pub(crate) fn start(&mut self, now: Duration, out: &mut Out) {
        self.need(self.head, now, out);
    }

    pub(crate) fn handle(&mut self, now: Duration, input: CertInput, out: &mut Out) {
        match input {
            CertInput::Committed(blocks) => {
                for c in blocks {
                    self.head = self.head.max(c.head.height);
                    self.open_height(c.header, now, out);
                }
                let keep_from = self.head.saturating_sub(self.window);
                self.open.retain(|h, _| *h >= keep_from);
                self.early.retain(|h, _| *h > self.head);
            }
            CertInput::Vote(m) => self.on_vote(m, out),
            CertInput::Need(h) => self.need(h, now, out),
            CertInput::Tick => self.resend(now, out),
        }
    }

    fn vote(&self, height: u64, hash: Digest) -> VerifiedMessage {
        VerifiedMessage::own(
            &self.key,
            Payload::HeaderVote(HeaderVote {
                height,
                header: hash,
            }),
            Checked::Nothing,
        )
    }

    /// Starts collecting votes for `header` (this replica's own), and sends
    /// its own vote.
    fn open_height(&mut self, header: LedgerHeader, now: Duration, out: &mut Out) {
        let h = header.height;
        if self.open.contains_key(&h) || self.certs.get(h).is_some() {
            return;
        }
        let hash = header.hash();
        let mut votes = BTreeMap::new();
        votes.insert(self.key.id(), own_signature(&self.key, &hash));
        for (from, (theirs, sig)) in self.early.remove(&h).unwrap_or_default() {
            if theirs == hash {
                votes.insert(from, sig);
            } else {
                self.diverged(from, h);
            }
        }
        out.push((None, self.vote(h, hash)));
        self.open.insert(
            h,
            Open {
                header,
                hash,
                votes,
                last_sent: now,
            },
        );
        self.try_finish(h);
    }

    /// Opens `h` if it is executed here and neither certified nor open.
    fn need(&mut self, h: u64, now: Duration, out: &mut Out) {
        if h > self.head || self.open.contains_key(&h) || self.certs.get(h).is_some() {
            return;
        }
        match self.ledger.certificate(h) {
            Ok(Some(cert)) if cert.signatures.len() >= self.set.quorum() => {
                self.certs.insert(cert);
            }
            Ok(Some(cert)) => {
                let stored: Vec<HeaderSignature> = cert.signatures.clone();
                self.open_height(cert.header, now, out);
                // Signatures stored before (a restart): count them again.
                if let Some(o) = self.open.get_mut(&h) {
                    for s in stored {
                        o.votes.entry(s.replica).or_insert(s.signature);
                    }
                }
                self.try_finish(h);
            }
            Ok(None) => {}
            Err(e) => {
                warn!(target: TARGET, height = h, error = %e, "cannot read a header to certify")
            }
        }
    }

    fn on_vote(&mut self, m: VerifiedMessage, out: &mut Out) {
        let Payload::HeaderVote(v) = m.payload() else {
            return;
        };
        let (from, h) = (m.from(), v.height);
        let signature = m.signed().signature.clone();
        if let Some(o) = self.open.get_mut(&h) {
            if o.hash == v.header {
                o.votes.insert(from, signature);
                self.try_finish(h);
            } else {
                self.diverged(from, h);
            }
            return;
        }
        if h > self.head {
            if h <= self.head + self.window {
                let votes = self.early.entry(h).or_default();
                if votes.len() < self.set.n() {
                    votes.insert(from, (v.header, signature));
                }
            }
            return;
        }
        // A height certified here already (or too old to be open): the peer
        // is asking. Answer once with this replica's own vote.
        if !self.replied.insert((from, h)) {
            return;
        }
        self.replied_order.push_back((from, h));
        while self.replied_order.len() > REPLIED {
            if let Some(old) = self.replied_order.pop_front() {
                self.replied.remove(&old);
            }
        }
        let mine = match self.certs.get(h) {
            Some(c) => Some(c.header.hash()),
            None => self.ledger.header(h).ok().flatten().map(|hd| hd.hash()),
        };
        if let Some(hash) = mine {
            if hash != v.header {
                self.diverged(from, h);
            }
            debug!(target: TARGET, to = %from, height = h, "answering a header vote");
            out.push((Some(from), self.vote(h, hash)));
        }
    }

    fn diverged(&self, from: ReplicaId, h: u64) {
        error!(target: TARGET, replica = %self.key.id(), peer = %from, height = h, "a replica voted for another header than this replica's: one of the two diverged (its state after this height differs)");
    }

    fn try_finish(&mut self, h: u64) {
        let Some(o) = self.open.get(&h) else {
            return;
        };
        if o.votes.len() < self.set.quorum() {
            return;
        }
        let mut cert = Certificate::new(o.header.clone());
        for (replica, sig) in &o.votes {
            if let Ok(sig) = <[u8; 64]>::try_from(sig.as_slice()) {
                cert.add(*replica, sig);
            }
        }
        self.open.remove(&h);
        let _ = self.store.send((h, cert.signatures.clone()));
        self.certs.insert(cert);
        debug!(target: TARGET, height = h, "header certified");
    }

    fn resend(&mut self, now: Duration, out: &mut Out) {
        let due: Vec<(u64, Digest)> = self
            .open
            .iter()
            .rev()
            .take(RESEND)
            .filter(|(_, o)| now >= o.last_sent + self.resend_after)
            .map(|(h, o)| (*h, o.hash))
            .collect();
        for (h, hash) in due {
            out.push((None, self.vote(h, hash)));
            if let Some(o) = self.open.get_mut(&h) {
                o.last_sent = now;
            }
        }
    }
}
