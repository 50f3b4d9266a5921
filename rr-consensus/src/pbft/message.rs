//! The replica protocol's messages: signed, canonically encoded, and checked
//! before the ordering core sees them.
//!
//! A [`SignedMessage`] is what travels; only [`SignedMessage::verify`] turns
//! it into a [`VerifiedMessage`], after checking the sender's signature, every
//! certificate inside it, and the client transactions it carries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rr_core::sig::{BatchVerifier, PublicKey};
use rr_core::{
    codec, Block, BlockContext, BlockHash, BlockHeader, ReplicaId, SignedTransaction, Timestamp,
    VerifiedTransaction,
};
use rr_storage::Head;
use serde::{Deserialize, Serialize};

use super::crypto::{ReplicaKey, ReplicaSet};
use super::error::MessageError;

/// The largest encoded replica message accepted (32 MiB): a pre-prepare of
/// the largest batch, or a new-view message carrying a window of them.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// Most transactions in one batch any replica accepts.
pub const MAX_BATCH_TXS: usize = 10_000;

/// Most prepared certificates one view change may carry.
pub const MAX_PREPARED_CERTS: usize = 4096;

/// Domain separator of replica signatures: a replica signature can never be
/// taken for a transaction signature or a handshake signature.
const DOMAIN: &[u8] = b"resilient-records/pbft/v1\0";

/// A view number: view `v` has primary `v mod n`.
pub type View = u64;
/// A sequence number: the block height the batch becomes.
pub type Seq = u64;

/// What the primary proposes at one sequence number: exactly the block every
/// replica will commit there (height = sequence number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Block time, set by the primary and checked by the backups.
    pub time: Timestamp,
    /// Hash of the block at the previous sequence number.
    pub parent: BlockHash,
    /// The transactions, in execution order.
    pub txs: Vec<SignedTransaction>,
}

impl Batch {
    /// The header of the block this batch becomes at `seq`.
    pub fn header(&self, seq: Seq) -> BlockHeader {
        BlockHeader {
            context: BlockContext {
                height: seq,
                time: self.time,
            },
            parent: self.parent,
            txs_digest: Block::digest_txs(&self.txs),
        }
    }

    /// The batch digest: the hash of the block it becomes at `seq`, so it
    /// binds height, parent, time and transactions.
    pub fn digest(&self, seq: Seq) -> BlockHash {
        self.header(seq).hash()
    }

    /// The block this batch becomes at `seq`.
    pub fn to_block(&self, seq: Seq) -> Block {
        Block::new(
            BlockContext {
                height: seq,
                time: self.time,
            },
            self.parent,
            self.txs.clone(),
        )
    }
}

/// The primary's proposal of a batch at a sequence number in a view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrePrepare {
    /// View.
    pub view: View,
    /// Sequence number (block height).
    pub seq: Seq,
    /// The batch.
    pub batch: Batch,
}

/// A prepare or commit vote for a batch digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// View.
    pub view: View,
    /// Sequence number.
    pub seq: Seq,
    /// Batch digest (the block hash).
    pub digest: BlockHash,
}

/// A quorum of matching signed checkpoint messages: the state after the block
/// at `head.height` is stable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCert {
    /// The signed checkpoint messages, all with the same head.
    pub votes: Vec<SignedMessage>,
}

impl CheckpointCert {
    /// The certified head (of the first vote; verification checks they agree).
    pub fn head(&self) -> Option<Head> {
        match self.votes.first().map(|m| &m.payload) {
            Some(Payload::Checkpoint(h)) => Some(*h),
            _ => None,
        }
    }
}

/// A pre-prepare and a quorum minus one matching prepares from other replicas:
/// the batch was prepared at its sequence number in its view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedCert {
    /// The signed pre-prepare.
    pub pre_prepare: SignedMessage,
    /// The signed prepares.
    pub prepares: Vec<SignedMessage>,
}

impl PreparedCert {
    /// The pre-prepare inside.
    pub fn pre_prepare(&self) -> Option<&PrePrepare> {
        match &self.pre_prepare.payload {
            Payload::PrePrepare(pp) => Some(pp),
            _ => None,
        }
    }
}

/// A quorum of matching signed commits: the batch is decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCert {
    /// The signed commits, all with the same vote.
    pub commits: Vec<SignedMessage>,
}

/// Evidence that a block hash is decided at a height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Proof {
    /// A stable checkpoint.
    Checkpoint(CheckpointCert),
    /// A commit certificate.
    Commit(CommitCert),
}

/// A replica's vote to move to `new_view`, with what it knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// The view to move to.
    pub new_view: View,
    /// Its last stable checkpoint (`None`: genesis).
    pub checkpoint: Option<CheckpointCert>,
    /// A prepared certificate for every sequence number above the checkpoint
    /// it prepared (the one of the highest view).
    pub prepared: Vec<PreparedCert>,
}

/// The new primary's start of a view: a quorum of view changes and the
/// pre-prepares they imply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewView {
    /// The view.
    pub view: View,
    /// A quorum of signed view changes for `view`.
    pub view_changes: Vec<SignedMessage>,
    /// Signed pre-prepares for every sequence number from the checkpoint up to
    /// the highest prepared one, as [`plan_new_view`] computes them.
    pub pre_prepares: Vec<SignedMessage>,
}

/// Where a replica stands, sent periodically so laggards notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Its view.
    pub view: View,
    /// Height of its last committed block.
    pub executed: Seq,
}

/// Committed blocks for a replica that is behind (state transfer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlocksReply {
    /// Consecutive blocks, from the height asked for.
    pub blocks: Vec<Block>,
    /// Headers of the blocks after those, up to the proven height.
    pub headers: Vec<BlockHeader>,
    /// Proof of the last header's (or block's) hash.
    pub proof: Proof,
}

/// A replica's vote for the header of a block it executed: the hash of its
/// [`rr_core::cert::LedgerHeader`] at `height`. Its message signature is the
/// header signature itself (over [`rr_core::cert::HEADER_DOMAIN`] and the
/// hash, not over the message), so a quorum of votes for one hash is a
/// [`rr_core::cert::Certificate`] as clients check it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderVote {
    /// The height.
    pub height: Seq,
    /// The header's hash.
    pub header: rr_core::Digest,
}

/// A replica protocol message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// The primary's proposal.
    PrePrepare(PrePrepare),
    /// A backup's acceptance of a proposal.
    Prepare(Vote),
    /// A prepared replica's vote to commit.
    Commit(Vote),
    /// The ledger head after a checkpoint height.
    Checkpoint(Head),
    /// A vote for a new view.
    ViewChange(ViewChange),
    /// The start of a new view.
    NewView(NewView),
    /// Client transactions forwarded to the primary (and, when it seems
    /// faulty, to everyone).
    Forward(Vec<SignedTransaction>),
    /// Where the sender stands.
    Status(Status),
    /// A request for committed blocks from this height on.
    Fetch {
        /// First height wanted.
        from: Seq,
    },
    /// Committed blocks.
    Blocks(BlocksReply),
    /// A vote for the header of an executed block.
    HeaderVote(HeaderVote),
}

impl Payload {
    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::PrePrepare(_) => "pre-prepare",
            Payload::Prepare(_) => "prepare",
            Payload::Commit(_) => "commit",
            Payload::Checkpoint(_) => "checkpoint",
            Payload::ViewChange(_) => "view-change",
            Payload::NewView(_) => "new-view",
            Payload::Forward(_) => "forward",
            Payload::Status(_) => "status",
            Payload::Fetch { .. } => "fetch",
            Payload::Blocks(_) => "blocks",
            Payload::HeaderVote(_) => "header-vote",
        }
    }
}

/// A message as it travels: not yet checked.
///
/// Certificates carry signed messages inside signed messages (a new view
/// holds view changes, which hold checkpoint and prepared certificates),
/// but never deeper than [`MAX_NESTING`]: decoding refuses anything deeper
/// before it can exhaust the stack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignedMessage {
    /// The sender.
    pub from: ReplicaId,
    /// The content.
    pub payload: Payload,
    /// The sender's ed25519 signature over the domain-separated encoding of
    /// `(from, payload)`.
    pub signature: Vec<u8>,
}

/// How deep signed messages nest in a valid message: a new view (1) holds
/// view changes (2), whose certificates hold checkpoints, pre-prepares and
/// prepares (3). One more level is allowed as slack.
pub const MAX_NESTING: u32 = 4;

thread_local! {
    /// Signed messages being decoded on this thread, outermost first.
    static DECODING_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The wire form of [`SignedMessage`], decoded by the derived code once the
/// depth is checked.
#[derive(Deserialize)]
#[serde(rename = "SignedMessage")]
struct SignedMessageWire {
    from: ReplicaId,
    payload: Payload,
    signature: Vec<u8>,
}

impl<'de> Deserialize<'de> for SignedMessage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Leave;
        impl Drop for Leave {
            fn drop(&mut self) {
                DECODING_DEPTH.with(|c| c.set(c.get().saturating_sub(1)));
            }
        }
        let depth = DECODING_DEPTH.with(|c| {
            let d = c.get() + 1;
            c.set(d);
            d
        });
        let _leave = Leave;
        if depth > MAX_NESTING {
            return Err(serde::de::Error::custom(format!(
                "signed messages nested more than {MAX_NESTING} deep"
            )));
        }
        let w = SignedMessageWire::deserialize(d)?;
        Ok(Self {
            from: w.from,
            payload: w.payload,
            signature: w.signature,
        })
    }
}

fn signing_bytes(from: ReplicaId, payload: &Payload) -> Vec<u8> {
    if let Payload::HeaderVote(v) = payload {
        // The header signature a certificate carries (see `HeaderVote`).
        return rr_core::cert::LedgerHeader::signing_bytes(&v.header);
    }
    let mut bytes = DOMAIN.to_vec();
    bytes.extend_from_slice(&codec::encode(&(from, payload)));
    bytes
}

impl SignedMessage {
    /// Signs `payload` as `key`'s replica.
    pub fn sign(key: &ReplicaKey, payload: Payload) -> Self {
        let signature = key.sign(&signing_bytes(key.id(), &payload));
        Self {
            from: key.id(),
            payload,
            signature: signature.to_bytes().to_vec(),
        }
    }

    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes canonical bytes, refusing oversized input and trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MessageError> {
        Ok(codec::decode_canonical(
            "replica message",
            bytes,
            MAX_MESSAGE_BYTES,
        )?)
    }

    /// Checks everything that can be checked without replica state: the
    /// signatures (the sender's and every one inside a certificate, in one
    /// ed25519 batch), the certificates' quorums, the protocol's structural
    /// rules, and the signatures of the client transactions carried.
    pub fn verify(self, set: &ReplicaSet) -> Result<VerifiedMessage, MessageError> {
        let mut sigs = SigBatch::default();
        let from = self.from;
        sigs.add(set, &self)?;
        let checked = check_payload(set, &self, &mut sigs)?;
        sigs.verify(from)?;
        Ok(VerifiedMessage(Arc::new(Inner {
            signed: self,
            checked,
        })))
    }
}

/// What verification learned, kept so the core does not compute it again.
#[derive(Debug)]
pub(crate) enum Checked {
    Nothing,
    Batch {
        digest: BlockHash,
        txs: Vec<VerifiedTransaction>,
    },
    Txs(Vec<VerifiedTransaction>),
    NewView(Vec<(BlockHash, Vec<VerifiedTransaction>)>),
    Blocks(Vec<Vec<VerifiedTransaction>>),
}

#[derive(Debug)]
struct Inner {
    signed: SignedMessage,
    checked: Checked,
}

/// A message whose signatures, certificates and transactions have been
/// checked. Only [`SignedMessage::verify`] (or the replica itself, for what it
/// signs) makes one. Cheap to clone.
#[derive(Clone, Debug)]
pub struct VerifiedMessage(Arc<Inner>);

impl VerifiedMessage {
    /// The sender.
    pub fn from(&self) -> ReplicaId {
        self.0.signed.from
    }

    /// The content.
    pub fn payload(&self) -> &Payload {
        &self.0.signed.payload
    }

    /// The signed form, for sending or for certificates.
    pub fn signed(&self) -> &SignedMessage {
        &self.0.signed
    }

    pub(crate) fn checked(&self) -> &Checked {
        &self.0.checked
    }

    /// A message this replica signs itself.
    pub(crate) fn own(key: &ReplicaKey, payload: Payload, checked: Checked) -> Self {
        Self(Arc::new(Inner {
            signed: SignedMessage::sign(key, payload),
            checked,
        }))
    }

    /// A part of a message that was verified as a whole (a pre-prepare inside
    /// a verified new view).
    pub(crate) fn part(signed: SignedMessage, checked: Checked) -> Self {
        Self(Arc::new(Inner { signed, checked }))
    }

    /// A message this replica signed before and read back from its own
    /// write-ahead log.
    pub(crate) fn from_own_log(signed: SignedMessage) -> Self {
        let checked = match &signed.payload {
            Payload::PrePrepare(pp) => Checked::Batch {
                digest: pp.batch.digest(pp.seq),
                txs: pp
                    .batch
                    .txs
                    .iter()
                    .cloned()
                    .map(VerifiedTransaction::from_trusted)
                    .collect(),
            },
            _ => Checked::Nothing,
        };
        Self(Arc::new(Inner { signed, checked }))
    }

    /// The batch digest of a pre-prepare.
    pub(crate) fn digest(&self) -> Option<BlockHash> {
        match &self.0.checked {
            Checked::Batch { digest, .. } => Some(*digest),
            _ => None,
        }
    }
}

/// Replica signatures collected for one verification: a message and the
/// certificates inside it. Verified under [`rr_core::sig`]'s rules, as one
/// batch when there are several (their verdict does not depend on how they
/// are grouped, so every replica reaches the same one).
#[derive(Default)]
struct SigBatch {
    sigs: Vec<(PublicKey, Vec<u8>, Vec<u8>)>,
}

impl SigBatch {
    fn add(&mut self, set: &ReplicaSet, m: &SignedMessage) -> Result<(), MessageError> {
        let key = *set
            .checked_key(m.from)
            .ok_or(MessageError::UnknownSender(m.from))?;
        if m.signature.len() != 64 {
            return Err(MessageError::BadSignature { from: m.from });
        }
        self.sigs
            .push((key, signing_bytes(m.from, &m.payload), m.signature.clone()));
        Ok(())
    }

    fn verify(self, from: ReplicaId) -> Result<(), MessageError> {
        let bad = MessageError::BadSignature { from };
        if let [(key, message, signature)] = &self.sigs[..] {
            // One signature (most messages): the key is already decompressed.
            return key.verify(signature, message).then_some(()).ok_or(bad);
        }
        let mut batch = BatchVerifier::with_capacity(self.sigs.len());
        for (key, message, signature) in &self.sigs {
            batch.queue(&key.to_bytes(), signature, message);
        }
        batch.verify_all().map_err(|_| bad)
    }
}

fn invalid(from: ReplicaId, reason: impl Into<String>) -> MessageError {
    MessageError::Invalid {
        from,
        reason: reason.into(),
    }
}

/// Verifies the client transactions a message carries, as one ed25519 batch
/// ([`SignedTransaction::verify_batch`]: the same verdict on each as single
/// verification). One bad transaction refuses the whole message.
fn verify_txs(
    from: ReplicaId,
    txs: &[SignedTransaction],
) -> Result<Vec<VerifiedTransaction>, MessageError> {
    if txs.len() > MAX_BATCH_TXS {
        return Err(invalid(
            from,
            format!("{} transactions, over {MAX_BATCH_TXS}", txs.len()),
        ));
    }
    SignedTransaction::verify_batch(txs.to_vec())
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| MessageError::BadTransaction {
            from,
            reason: e.to_string(),
        })
}

fn check_payload(
    set: &ReplicaSet,
    m: &SignedMessage,
    sigs: &mut SigBatch,
) -> Result<Checked, MessageError> {
    let from = m.from;
    Ok(match &m.payload {
        Payload::PrePrepare(pp) => {
            check_pre_prepare_shape(set, m, pp)?;
            Checked::Batch {
                digest: pp.batch.digest(pp.seq),
                txs: verify_txs(from, &pp.batch.txs)?,
            }
        }
        Payload::Prepare(v) => {
            if set.primary(v.view) == from {
                return Err(invalid(from, "the primary does not send prepares"));
            }
            Checked::Nothing
        }
        Payload::Commit(_)
        | Payload::Status(_)
        | Payload::Fetch { .. }
        | Payload::HeaderVote(_) => Checked::Nothing,
        Payload::Checkpoint(head) => {
            if head.height == 0 {
                return Err(invalid(from, "checkpoint at height 0"));
            }
            Checked::Nothing
        }
        Payload::Forward(txs) => Checked::Txs(verify_txs(from, txs)?),
        Payload::ViewChange(vc) => {
            check_view_change(set, from, vc, sigs)?;
            Checked::Nothing
        }
        Payload::NewView(nv) => check_new_view(set, from, nv, sigs)?,
        Payload::Blocks(reply) => Checked::Blocks(check_blocks(set, from, reply, sigs)?),
    })
}

fn check_pre_prepare_shape(
    set: &ReplicaSet,
    m: &SignedMessage,
    pp: &PrePrepare,
) -> Result<(), MessageError> {
    if set.primary(pp.view) != m.from {
        return Err(invalid(
            m.from,
            format!(
                "pre-prepare for view {} from a replica that is not its primary",
                pp.view
            ),
        ));
    }
    if pp.seq == 0 {
        return Err(invalid(m.from, "pre-prepare at sequence number 0"));
    }
    Ok(())
}

fn check_checkpoint_cert(
    set: &ReplicaSet,
    from: ReplicaId,
    cert: &CheckpointCert,
    sigs: &mut SigBatch,
) -> Result<Head, MessageError> {
    let head = cert
        .head()
        .ok_or_else(|| invalid(from, "empty or malformed checkpoint certificate"))?;
    let mut signers = BTreeSet::new();
    for v in &cert.votes {
        if v.payload != Payload::Checkpoint(head) {
            return Err(invalid(from, "checkpoint certificate votes disagree"));
        }
        signers.insert(v.from);
        sigs.add(set, v)?;
    }
    if signers.len() != cert.votes.len() || signers.len() < set.quorum() {
        return Err(invalid(
            from,
            "checkpoint certificate without a quorum of distinct signers",
        ));
    }
    if head.height == 0 {
        return Err(invalid(from, "checkpoint certificate at height 0"));
    }
    Ok(head)
}

fn check_prepared_cert(
    set: &ReplicaSet,
    from: ReplicaId,
    cert: &PreparedCert,
    sigs: &mut SigBatch,
) -> Result<(View, Seq, BlockHash), MessageError> {
    let pp = cert
        .pre_prepare()
        .ok_or_else(|| invalid(from, "prepared certificate without a pre-prepare"))?;
    check_pre_prepare_shape(set, &cert.pre_prepare, pp)?;
    if pp.batch.txs.len() > MAX_BATCH_TXS {
        return Err(invalid(from, "prepared certificate over the batch limit"));
    }
    sigs.add(set, &cert.pre_prepare)?;
    let digest = pp.batch.digest(pp.seq);
    let want = Payload::Prepare(Vote {
        view: pp.view,
        seq: pp.seq,
        digest,
    });
    let mut signers = BTreeSet::new();
    for p in &cert.prepares {
        if p.payload != want || p.from == set.primary(pp.view) {
            return Err(invalid(
                from,
                "prepared certificate with a prepare that does not match",
            ));
        }
        signers.insert(p.from);
        sigs.add(set, p)?;
    }
    if signers.len() != cert.prepares.len() || signers.len() + 1 < set.quorum() {
        return Err(invalid(
            from,
            "prepared certificate without a quorum of distinct prepares",
        ));
    }
    Ok((pp.view, pp.seq, digest))
}

fn check_view_change(
    set: &ReplicaSet,
    from: ReplicaId,
    vc: &ViewChange,
    sigs: &mut SigBatch,
) -> Result<(), MessageError> {
    let low = match &vc.checkpoint {
        Some(c) => check_checkpoint_cert(set, from, c, sigs)?.height,
        None => 0,
    };
    if vc.prepared.len() > MAX_PREPARED_CERTS {
        return Err(invalid(from, "too many prepared certificates"));
    }
    let mut seqs = BTreeSet::new();
    for cert in &vc.prepared {
        let (view, seq, _) = check_prepared_cert(set, from, cert, sigs)?;
        if view >= vc.new_view || seq <= low || !seqs.insert(seq) {
            return Err(invalid(
                from,
                "view change with a prepared certificate out of range or repeated",
            ));
        }
    }
    Ok(())
}

/// What a new view starts from: the highest stable checkpoint among the view
/// changes, and the batch at every sequence number above it up to the highest
/// prepared one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewViewPlan {
    /// The checkpoint the view starts from (`None`: genesis).
    pub checkpoint: Option<CheckpointCert>,
    /// The head of that checkpoint (the default head for genesis).
    pub base: Head,
    /// The batches to pre-prepare again, by sequence number, in order.
    pub batches: Vec<(Seq, Batch)>,
}

/// Computes the batches a new view must re-propose from a quorum of view
/// changes. Deterministic, so every replica checks the new primary's choice.
///
/// For each sequence number above the highest checkpoint, the batch of the
/// prepared certificate with the highest view is chosen; where there is none,
/// or where the chosen batch does not extend the block chosen before it, an
/// empty batch takes its place. A batch that committed anywhere was prepared by
/// a quorum, so it is chosen, and so was its predecessor: no decided block is
/// ever replaced.
pub fn plan_new_view<'a>(view_changes: impl IntoIterator<Item = &'a ViewChange>) -> NewViewPlan {
    let mut checkpoint: Option<&CheckpointCert> = None;
    let mut base = Head::default();
    let vcs: Vec<&ViewChange> = view_changes.into_iter().collect();
    for vc in &vcs {
        if let Some(c) = &vc.checkpoint {
            if let Some(h) = c.head() {
                if h.height > base.height {
                    base = h;
                    checkpoint = Some(c);
                }
            }
        }
    }
    // Highest view, then highest digest (a tie cannot happen with at most f
    // faulty replicas, but the choice must still be deterministic).
    let mut best: BTreeMap<Seq, (View, BlockHash, &Batch)> = BTreeMap::new();
    for vc in &vcs {
        for cert in &vc.prepared {
            let Some(pp) = cert.pre_prepare() else {
                continue;
            };
            // Only sequence numbers a replica could have prepared: above the
            // newest stable checkpoint and within the widest window
            // (PbftConfig::validate keeps every window below
            // MAX_PREPARED_CERTS). A certificate far above it is a lie, and
            // would make every replica plan (and allocate) billions of empty
            // batches.
            if pp.seq <= base.height || pp.seq - base.height > MAX_PREPARED_CERTS as u64 {
                continue;
            }
            let digest = pp.batch.digest(pp.seq);
            let better = match best.get(&pp.seq) {
                None => true,
                Some((v, d, _)) => (pp.view, digest) > (*v, *d),
            };
            if better {
                best.insert(pp.seq, (pp.view, digest, &pp.batch));
            }
        }
    }
    let top = best.keys().next_back().copied().unwrap_or(base.height);
    let mut prev = (base.block_hash, base.time);
    let mut batches = Vec::new();
    for seq in base.height.saturating_add(1)..=top {
        let batch = match best.get(&seq) {
            Some((_, _, b)) if b.parent == prev.0 && b.time >= prev.1 => (*b).clone(),
            _ => Batch {
                time: prev.1,
                parent: prev.0,
                txs: Vec::new(),
            },
        };
        prev = (batch.digest(seq), batch.time);
        batches.push((seq, batch));
    }
    NewViewPlan {
        checkpoint: checkpoint.cloned(),
        base,
        batches,
    }
}

fn check_new_view(
    set: &ReplicaSet,
    from: ReplicaId,
    nv: &NewView,
    sigs: &mut SigBatch,
) -> Result<Checked, MessageError> {
    if set.primary(nv.view) != from {
        return Err(invalid(
            from,
            "new view from a replica that is not its primary",
        ));
    }
    let mut signers = BTreeSet::new();
    let mut vcs = Vec::new();
    for m in &nv.view_changes {
        let Payload::ViewChange(vc) = &m.payload else {
            return Err(invalid(
                from,
                "new view carries something not a view change",
            ));
        };
        if vc.new_view != nv.view || !signers.insert(m.from) {
            return Err(invalid(
                from,
                "new view with a wrong or repeated view change",
            ));
        }
        sigs.add(set, m)?;
        check_view_change(set, m.from, vc, sigs)?;
        vcs.push(vc);
    }
    if signers.len() < set.quorum() {
        return Err(invalid(from, "new view without a quorum of view changes"));
    }
    let plan = plan_new_view(vcs);
    if plan.batches.len() != nv.pre_prepares.len() {
        return Err(invalid(from, "new view pre-prepares differ from the plan"));
    }
    let mut out = Vec::with_capacity(plan.batches.len());
    for ((seq, batch), m) in plan.batches.iter().zip(&nv.pre_prepares) {
        let Payload::PrePrepare(pp) = &m.payload else {
            return Err(invalid(
                from,
                "new view carries something not a pre-prepare",
            ));
        };
        if m.from != from || pp.view != nv.view || pp.seq != *seq || &pp.batch != batch {
            return Err(invalid(from, "new view pre-prepares differ from the plan"));
        }
        sigs.add(set, m)?;
        out.push((pp.batch.digest(pp.seq), verify_txs(from, &pp.batch.txs)?));
    }
    Ok(Checked::NewView(out))
}

/// The height and hash a proof certifies.
fn check_proof(
    set: &ReplicaSet,
    from: ReplicaId,
    proof: &Proof,
    sigs: &mut SigBatch,
) -> Result<(Seq, BlockHash), MessageError> {
    match proof {
        Proof::Checkpoint(c) => {
            let head = check_checkpoint_cert(set, from, c, sigs)?;
            Ok((head.height, head.block_hash))
        }
        Proof::Commit(c) => {
            let Some(Payload::Commit(vote)) = c.commits.first().map(|m| &m.payload) else {
                return Err(invalid(from, "empty or malformed commit certificate"));
            };
            let mut signers = BTreeSet::new();
            for m in &c.commits {
                if m.payload != Payload::Commit(*vote) || !signers.insert(m.from) {
                    return Err(invalid(from, "commit certificate votes disagree or repeat"));
                }
                sigs.add(set, m)?;
            }
            if signers.len() < set.quorum() {
                return Err(invalid(from, "commit certificate without a quorum"));
            }
            Ok((vote.seq, vote.digest))
        }
    }
}

fn check_blocks(
    set: &ReplicaSet,
    from: ReplicaId,
    reply: &BlocksReply,
    sigs: &mut SigBatch,
) -> Result<Vec<Vec<VerifiedTransaction>>, MessageError> {
    let (height, hash) = check_proof(set, from, &reply.proof, sigs)?;
    if reply.blocks.is_empty() {
        return Err(invalid(from, "blocks reply without blocks"));
    }
    let mut prev: Option<(u64, BlockHash)> = None;
    let mut txs = Vec::with_capacity(reply.blocks.len());
    let headers = reply
        .blocks
        .iter()
        .map(|b| {
            if Block::digest_txs(&b.txs) != b.header.txs_digest {
                return Err(invalid(from, "block transactions do not match its header"));
            }
            Ok(&b.header)
        })
        .collect::<Result<Vec<_>, _>>()?;
    for h in headers.into_iter().chain(&reply.headers) {
        if let Some((ph, phash)) = prev {
            if h.context.height != ph + 1 || h.parent != phash {
                return Err(invalid(from, "blocks reply is not a chain"));
            }
        }
        prev = Some((h.context.height, h.hash()));
    }
    if prev != Some((height, hash)) {
        return Err(invalid(
            from,
            "blocks reply does not end at the proven block",
        ));
    }
    for b in &reply.blocks {
        txs.push(verify_txs(from, &b.txs)?);
    }
    Ok(txs)
}

/// Decodes and verifies one message off the wire.
pub fn decode_and_verify(bytes: &[u8], set: &ReplicaSet) -> Result<VerifiedMessage, MessageError> {
    SignedMessage::from_bytes(bytes)?.verify(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_view_holding(inner: Vec<SignedMessage>) -> SignedMessage {
        SignedMessage {
            from: ReplicaId(0),
            payload: Payload::NewView(NewView {
                view: 1,
                view_changes: inner,
                pre_prepares: Vec::new(),
            }),
            signature: vec![0; 64],
        }
    }

    #[test]
    fn messages_nested_deeper_than_a_new_view_can_be_are_refused_without_exhausting_the_stack() {
        // A new view holding a new view: its encoding is the inner one with
        // a prefix and a suffix, so any depth can be written out as bytes.
        let inner = new_view_holding(Vec::new()).to_bytes();
        let outer = new_view_holding(vec![new_view_holding(Vec::new())]).to_bytes();
        let at = outer
            .windows(inner.len())
            .position(|w| w == inner.as_slice())
            .expect("the inner message is inside the outer one");
        let (prefix, suffix) = (&outer[..at], &outer[at + inner.len()..]);
        let nested = |depth: usize| {
            let mut b = prefix.repeat(depth - 1);
            b.extend_from_slice(&inner);
            b.extend_from_slice(&suffix.repeat(depth - 1));
            b
        };
        for depth in 1..=MAX_NESTING as usize {
            SignedMessage::from_bytes(&nested(depth)).expect("within the nesting a protocol uses");
        }
        // Refused (postcard does not carry the reason through), and the
        // deepest one would have overflowed the stack before the limit.
        for depth in [MAX_NESTING as usize + 1, 1_000, 200_000] {
            assert!(
                SignedMessage::from_bytes(&nested(depth)).is_err(),
                "{depth}"
            );
        }
        // The depth is per decoding: a refused message leaves nothing behind.
        SignedMessage::from_bytes(&nested(MAX_NESTING as usize)).unwrap();
    }

    #[test]
    fn a_prepared_certificate_far_above_the_checkpoint_plans_nothing() {
        let key = ReplicaKey::new(
            ReplicaId(0),
            ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
        );
        let far = |seq: Seq| PreparedCert {
            pre_prepare: SignedMessage::sign(
                &key,
                Payload::PrePrepare(PrePrepare {
                    view: 0,
                    seq,
                    batch: Batch {
                        time: rr_core::Timestamp(1),
                        parent: BlockHash([0; 32]),
                        txs: Vec::new(),
                    },
                }),
            ),
            prepares: Vec::new(),
        };
        for seq in [1 << 40, u64::MAX] {
            let vc = ViewChange {
                new_view: 1,
                checkpoint: None,
                prepared: vec![far(seq)],
            };
            let plan = plan_new_view([&vc]);
            assert!(
                plan.batches.is_empty(),
                "seq {seq}: {} batches",
                plan.batches.len()
            );
        }
        // Within the window, the gap below it is filled with empty batches.
        let vc = ViewChange {
            new_view: 1,
            checkpoint: None,
            prepared: vec![far(3)],
        };
        assert_eq!(plan_new_view([&vc]).batches.len(), 3);
    }
}
