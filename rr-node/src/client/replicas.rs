//! The client side of a replica set: every answer is checked, and no
//! replica is believed on its word.
//!
//! [`Replicas`] holds the members of a replica set (over HTTP, or in
//! process) and the set's public keys from a trusted configuration (a
//! cluster's `cluster.json`, or a dev node's key pinned on first use). `n`,
//! `f` and each replica's keys come from there, never from an answer. It
//! tolerates the `f` replicas that may lie, answer first, replay, go stale
//! or hang:
//!
//! | call | what it does |
//! | --- | --- |
//! | [`Replicas::submit`] | the signed call to every replica at once; the first receipt whose certificate and proof hold for this call wins, so one replica can neither censor it nor fake its outcome |
//! | reads ([`Replicas::record`], [`Replicas::audit`], ...) | one replica at a time (the ones that failed lately last); an answer counts only if its certificate holds and every value it needs is proven against it, and if it is not older than the newest state this client has seen |
//! | [`Replicas::retrieve`] | the signed `Retrieve` to every replica; record, grant and threshold from certified state, fragment `i` only from replica `i`'s signature, never from a replica whose own certified state shows the grant unusable |
//! | [`Replicas::put_blob`] | the ciphertext to every replica at once; done at `2f + 1` stored copies with the same content id |
//! | [`Replicas::get_blob`] | one replica's stream; if it breaks off, the next one carries on from the same byte (the envelope's authentication catches a lying one) |
//! | [`Replicas::deliver_fragments`] | fragment `i` to replica `i`, all at once; names the ones that did not take it |
//!
//! Every request to a replica has a deadline ([`Replicas::with_deadline`]):
//! a replica that hangs costs an operation at most one deadline, and is
//! asked last by later reads. A refusal counts only when it is certified (a
//! receipt) or when every replica that answered gives it.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rr_core::cert::{CertCache, CertCheck, CertifiedHeader, ReplicaSetInfo};
use rr_core::proof::{CertifiedReceipt, SignedFragment, StateAnswer, VerifiedState, VerifyError};
use rr_core::{
    AccountId, AuditEntry, ByteStream, CallOutput, ContentId, GrantId, GrantInfo, GrantStatus,
    Outcome, Receipt, RecordId, RecordInfo, ReplicaId, SignedTransaction, TxId,
};

use crate::api::{Authorization, FragmentDelivery, NodeApi};
use crate::api::{NodeError, NodeInfo, Retrieval, SkippedReplica};
use crate::peers::ClusterFile;
use crate::sealing::SealingPublicKey;

/// How long one request to one replica may take by default.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// How long a retrieval waits for more replicas once it has enough
/// fragments but fewer than m + f (so one might be bad), so a slow replica
/// does not hold the answer up.
const RETRIEVE_GRACE: Duration = Duration::from_millis(200);

/// How long fragment delivery waits for the last replicas once all but f
/// took theirs: a replica that hangs (paused, overloaded) costs a grant this,
/// not a whole deadline, and its fragment is reported undelivered (kept
/// for a later delivery).
const DELIVERY_GRACE: Duration = Duration::from_millis(500);
/// The least a straggler gets once all but f replicas took their fragment.
const DELIVERY_GRACE_MIN: Duration = Duration::from_millis(50);

/// The newest certified height a client has seen of one replica set: no
/// answer older than it is believed. Shared by the clones of a
/// [`Replicas`]; a program that runs again (the `rr` CLI) keeps it on disk
/// and passes it back with [`Replicas::with_seen`].
#[derive(Debug, Default)]
pub struct Seen(AtomicU64);

impl Seen {
    /// The height.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn observe(&self, height: u64) {
        self.0.fetch_max(height, Ordering::Relaxed);
    }
}

/// A value read from certified state, and where it came from.
#[derive(Clone, Debug)]
pub struct Verified<T> {
    /// The value.
    pub value: T,
    /// The certified header it was proven against.
    pub header: CertifiedHeader,
    /// The answer as the replica sent it (self-contained: it can be kept
    /// and checked again offline, see [`crate::receipt`]).
    pub answer: StateAnswer,
    /// The replica that sent it.
    pub replica: ReplicaId,
    /// Replicas asked before it whose answers did not hold, and why.
    pub skipped: Vec<SkippedReplica>,
}

/// A call's outcome, certified.
#[derive(Clone, Debug)]
pub struct Submitted {
    /// The receipt.
    pub receipt: Receipt,
    /// Its certified header.
    pub header: CertifiedHeader,
    /// The certified receipt as the replica sent it.
    pub certified: CertifiedReceipt,
    /// The replica whose answer was taken.
    pub replica: ReplicaId,
    /// Replicas whose answers did not hold, and why.
    pub skipped: Vec<SkippedReplica>,
}

/// What the replicas answered to one retrieval, checked.
#[derive(Clone, Debug)]
pub struct RetrieveAnswers {
    /// The retrieval's certified receipt (allowed).
    pub receipt: Submitted,
    /// The record, from certified state.
    pub record: RecordInfo,
    /// The grant, from certified state: its threshold is the m to open with.
    pub grant: GrantInfo,
    /// Capsule fragments whose signatures are their replicas' (one per
    /// replica), in the order they came; their contents are checked by the
    /// client that opens them.
    pub fragments: Vec<SignedFragment>,
    /// Replicas that gave no usable fragment, and why.
    pub skipped: Vec<SkippedReplica>,
}

/// A replica set as a client sees it. See the module docs.
#[derive(Clone)]
pub struct Replicas {
    members: Vec<Arc<dyn NodeApi>>,
    /// The trusted replica set, which checks certificates (each header
    /// once).
    certs: Arc<CertCache>,
    /// Sealing keys from the trusted configuration; `None`: a dev node,
    /// which takes its fragment unsealed over its one connection.
    sealing: Option<Vec<SealingPublicKey>>,
    seen: Arc<Seen>,
    deadline: Duration,
    order_timeout: Duration,
    /// The order reads ask replicas in: a replica that failed moves last.
    preference: Arc<Mutex<Vec<usize>>>,
    /// Replicas that lately did not take a key fragment within the grace,
    /// and how many deliveries to each are still under way.
    lagging: Arc<Lagging>,
}

/// Fragment delivery to replicas that are behind (restarted and catching
/// up, paused, on a slow link): a grant does not wait for them, their
/// deliveries go on in the background (a few at a time), and the first one
/// that lands makes the replica current again.
#[derive(Debug, Default)]
struct Lagging {
    /// Per replica: `Some(in flight)` while it lags.
    state: Mutex<Vec<Option<usize>>>,
}

/// Most background deliveries under way to one lagging replica; beyond
/// them its fragments are reported pending straight away.
const LAGGING_IN_FLIGHT: usize = 4;

impl Lagging {
    fn is_lagging(&self, i: usize) -> bool {
        self.state
            .lock()
            .expect("lagging lock")
            .get(i)
            .is_some_and(|s| s.is_some())
    }

    /// Takes a background slot for replica `i`, if one is free.
    fn take_slot(&self, i: usize) -> bool {
        let mut state = self.state.lock().expect("lagging lock");
        match state.get_mut(i) {
            Some(Some(n)) if *n < LAGGING_IN_FLIGHT => {
                *n += 1;
                true
            }
            _ => false,
        }
    }

    fn mark(&self, i: usize, lagging: bool) {
        let mut state = self.state.lock().expect("lagging lock");
        if state.len() <= i {
            state.resize(i + 1, None);
        }
        state[i] = match (lagging, state[i]) {
            (true, Some(n)) => Some(n),
            (true, None) => Some(0),
            (false, _) => None,
        };
    }

    fn release_slot(&self, i: usize, delivered: bool) {
        let mut state = self.state.lock().expect("lagging lock");
        if let Some(slot) = state.get_mut(i) {
            if delivered {
                *slot = None;
            } else if let Some(n) = slot {
                *n = n.saturating_sub(1);
            }
        }
    }
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas")
            .field("n", &self.members.len())
            .field("seen", &self.seen.get())
            .finish()
    }
}

fn skipped(i: usize, reason: impl std::fmt::Display) -> SkippedReplica {
    SkippedReplica {
        replica: ReplicaId(i as u16),
        reason: reason.to_string(),
    }
}

fn lied(e: VerifyError) -> NodeError {
    NodeError::Transport(format!("its answer does not hold: {e}"))
}

fn list(failures: &[SkippedReplica]) -> String {
    failures
        .iter()
        .map(|s| format!("replica {}: {}", s.replica.0, s.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether an error is about the request (the same at every correct
/// replica), rather than about the replica that gave it.
fn about_the_request(e: &NodeError) -> bool {
    matches!(
        e,
        NodeError::Refused(_)
            | NodeError::BadTransaction(_)
            | NodeError::BadSignature(_)
            | NodeError::Unauthorized(_)
            | NodeError::Forbidden(_)
            | NodeError::UnknownRecord(_)
            | NodeError::UnknownGrant(_)
            | NodeError::WrongCall { .. }
            | NodeError::FragmentMismatch { .. }
            | NodeError::Sealed { .. }
            | NodeError::NotFound(_)
            | NodeError::Blob(rr_core::BlobError::TooLarge { .. })
    )
}

/// Whether an error says the replica could not answer (down, stopped, cut
/// off, not certified in time), rather than answering.
fn unavailable(e: &NodeError) -> bool {
    match e {
        NodeError::Transport(_) | NodeError::Uncertified(_) => true,
        NodeError::Consensus(rr_core::ConsensusError::Stopped) => true,
        NodeError::Remote { code, .. } => code == "unavailable",
        _ => false,
    }
}

impl Replicas {
    /// The replica set `set`, `members[i]` being replica `i`. Sealing keys
    /// are none (a single dev node); a cluster's come with
    /// [`Replicas::with_sealing_keys`] or [`Replicas::from_cluster_file`].
    pub fn new(members: Vec<Arc<dyn NodeApi>>, set: ReplicaSetInfo) -> Result<Self, NodeError> {
        if members.len() != set.n() {
            return Err(NodeError::Setup(format!(
                "{} members for a replica set of {}",
                members.len(),
                set.n()
            )));
        }
        let n = members.len();
        Ok(Self {
            members,
            certs: Arc::new(CertCache::new(set)),
            sealing: None,
            seen: Arc::default(),
            deadline: DEFAULT_DEADLINE,
            order_timeout: Duration::from_secs(30),
            preference: Arc::new(Mutex::new((0..n).collect())),
            lagging: Arc::default(),
        })
    }

    /// One node (a dev node) whose key is `key`.
    pub fn single(member: Arc<dyn NodeApi>, key: AccountId) -> Result<Self, NodeError> {
        let set = ReplicaSetInfo::new(vec![key])
            .map_err(|e| NodeError::Setup(format!("the node's key: {e}")))?;
        Self::new(vec![member], set)
    }

    /// The replicas a `cluster.json` (written by `rr-node localnet`) lists,
    /// over HTTP, with the keys it names.
    pub fn from_cluster_file(path: &Path) -> Result<Self, NodeError> {
        let file = ClusterFile::read(path)?;
        let members = file
            .replicas
            .iter()
            .map(|m| file.api_client(m).map(|c| Arc::new(c) as Arc<dyn NodeApi>))
            .collect::<Result<Vec<_>, _>>()?;
        let sealing = file
            .replicas
            .iter()
            .map(|m| {
                SealingPublicKey::from_hex(&m.sealing_key).map_err(|e| {
                    NodeError::Setup(format!(
                        "{}: replica {}'s sealing key: {e}",
                        path.display(),
                        m.replica
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(members, file.replica_set()?)?.with_sealing_keys(sealing)
    }

    /// Fragment `i` of a grant is sealed to `keys[i]`, replica `i`'s
    /// sealing key from a trusted configuration.
    pub fn with_sealing_keys(mut self, keys: Vec<SealingPublicKey>) -> Result<Self, NodeError> {
        if keys.len() != self.n() {
            return Err(NodeError::Setup(format!(
                "{} sealing keys for {} replicas",
                keys.len(),
                self.n()
            )));
        }
        self.sealing = Some(keys);
        Ok(self)
    }

    /// How long one request to one replica may take (default 10 s).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// How long a call may wait to be ordered and certified before the
    /// client gives up (default 30 s). Without 2f + 1 live replicas nothing
    /// is ordered.
    pub fn with_order_timeout(mut self, timeout: Duration) -> Self {
        self.order_timeout = timeout;
        self
    }

    /// Starts from a newest seen height kept from before (see [`Seen`]).
    pub fn with_seen(self, height: u64) -> Self {
        self.seen.observe(height);
        self
    }

    /// The newest certified height this client has seen.
    pub fn seen(&self) -> u64 {
        self.seen.get()
    }

    /// The trusted replica set.
    pub fn replica_set(&self) -> &ReplicaSetInfo {
        self.certs.replica_set()
    }

    /// Replicas n.
    pub fn n(&self) -> usize {
        self.members.len()
    }

    /// Faults tolerated, f = (n - 1) / 3.
    pub fn f(&self) -> usize {
        self.replica_set().f()
    }

    /// Stored copies a blob upload needs: 2f + 1.
    pub fn write_quorum(&self) -> usize {
        2 * self.f() + 1
    }

    /// Replica `i`.
    pub fn member(&self, i: ReplicaId) -> Option<&Arc<dyn NodeApi>> {
        self.members.get(usize::from(i.0))
    }

    /// The sealing key of every replica, in order: a granting client seals
    /// fragment `i` to key `i` (`None` for a dev node, which takes its
    /// fragment unsealed).
    pub fn sealing_keys(&self) -> Vec<Option<SealingPublicKey>> {
        match &self.sealing {
            Some(keys) => keys.iter().copied().map(Some).collect(),
            None => vec![None; self.n()],
        }
    }

    /// `call` on replica `i`, within the deadline.
    async fn ask<R, Fut>(&self, i: usize, timeout: Duration, call: Fut) -> Result<R, NodeError>
    where
        Fut: std::future::Future<Output = Result<R, NodeError>>,
    {
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => {
                self.demote(i);
                Err(NodeError::Transport(format!(
                    "did not answer within {} s",
                    timeout.as_secs_f32()
                )))
            }
        }
    }

    /// Moves replica `i` to the end of the read order.
    fn demote(&self, i: usize) {
        let mut p = self.preference.lock().expect("preference lock");
        if let Some(pos) = p.iter().position(|j| *j == i) {
            let j = p.remove(pos);
            p.push(j);
        }
    }

    fn order(&self) -> Vec<usize> {
        self.preference.lock().expect("preference lock").clone()
    }

    /// The error when no replica's answer held: the request's own error if
    /// every replica that answered gave it, else every replica's failure.
    fn no_answer(&self, what: &str, failures: Vec<(usize, NodeError)>) -> NodeError {
        let mut request_errors = failures.iter().filter(|(_, e)| about_the_request(e));
        if let Some((_, first)) = request_errors.next() {
            let all_same = failures
                .iter()
                .filter(|(_, e)| !matches!(e, NodeError::Transport(_)))
                .all(|(_, e)| e.to_string() == first.to_string());
            if all_same {
                return failures
                    .into_iter()
                    .find(|(_, e)| about_the_request(e))
                    .map(|(_, e)| e)
                    .expect("found above");
            }
        }
        let detail = failures
            .iter()
            .map(|(i, e)| format!("replica {i}: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        NodeError::Transport(format!("no replica gave {what} that holds: {detail}"))
    }

    /// Reads from one replica at a time until an answer holds: its
    /// certificate verifies, it is not older than what this client has seen,
    /// and `check` finds every value it needs proven in it.
    async fn read<T, F, Fut>(
        &self,
        what: &str,
        call: F,
        check: impl Fn(&VerifiedState) -> Result<T, VerifyError>,
    ) -> Result<Verified<T>, NodeError>
    where
        F: Fn(Arc<dyn NodeApi>) -> Fut,
        Fut: std::future::Future<Output = Result<StateAnswer, NodeError>>,
    {
        let mut failures: Vec<(usize, NodeError)> = Vec::new();
        let mut newest_stale: Option<u64> = None;
        for i in self.order() {
            // What this client had seen when it asked: an answer is judged
            // against that, not against what a concurrent call of this client
            // saw certified while this one was on its way back.
            let seen = self.seen.get();
            let answer = match self
                .ask(i, self.deadline, call(self.members[i].clone()))
                .await
            {
                Ok(a) => a,
                Err(e) => {
                    if !about_the_request(&e) {
                        self.demote(i);
                    }
                    failures.push((i, e));
                    continue;
                }
            };
            let checked = answer.verify(&*self.certs).and_then(|state| {
                let value = check(&state)?;
                Ok((state, value))
            });
            let (state, value) = match checked {
                Ok(x) => x,
                Err(e) => {
                    self.demote(i);
                    failures.push((i, lied(e)));
                    continue;
                }
            };
            if state.height() < seen {
                self.demote(i);
                newest_stale = newest_stale.max(Some(state.height()));
                failures.push((
                    i,
                    NodeError::Transport(format!(
                        "its state is of height {}, older than height {seen} this client has seen: it is behind (restarted, or cut off)",
                        state.height()
                    )),
                ));
                continue;
            }
            self.seen.observe(state.height());
            return Ok(Verified {
                value,
                header: state.header().clone(),
                answer,
                replica: ReplicaId(i as u16),
                skipped: failures.iter().map(|(i, e)| skipped(*i, e)).collect(),
            });
        }
        if let Some(newest) = newest_stale {
            if !failures.iter().any(|(_, e)| about_the_request(e)) {
                return Err(NodeError::Stale {
                    seen: self.seen.get(),
                    newest,
                    detail: list(
                        &failures
                            .iter()
                            .map(|(i, e)| skipped(*i, e))
                            .collect::<Vec<_>>(),
                    ),
                });
            }
        }
        Err(self.no_answer(what, failures))
    }

    /// Replica set, schemes and status, from the first replica that answers
    /// (not proven: for display and setup).
    pub async fn info(&self) -> Result<NodeInfo, NodeError> {
        let mut failures = Vec::new();
        for i in self.order() {
            match self.ask(i, self.deadline, self.members[i].info()).await {
                Ok(info) => return Ok(info),
                Err(e) => failures.push((i, e)),
            }
        }
        Err(self.no_answer("its info", failures))
    }

    /// The newest certified header a replica shows (and this client has
    /// not seen a newer one).
    pub async fn head(&self) -> Result<CertifiedHeader, NodeError> {
        let mut failures = Vec::new();
        for i in self.order() {
            // As in `read`: judged against what was seen when it asked.
            let seen = self.seen.get();
            let cert = match self.ask(i, self.deadline, self.members[i].head()).await {
                Ok(c) => c,
                Err(e) => {
                    failures.push((i, e));
                    continue;
                }
            };
            match self.certs.check(&cert) {
                Ok(h) if h.height() >= seen => {
                    self.seen.observe(h.height());
                    return Ok(h);
                }
                Ok(h) => failures.push((
                    i,
                    NodeError::Transport(format!(
                        "its head is at height {}, older than height {seen} this client has seen",
                        h.height(),
                    )),
                )),
                Err(e) => failures.push((i, lied(e.into()))),
            }
        }
        Err(self.no_answer("a certified head", failures))
    }

    /// Submits a signed call to every replica at once and returns the first
    /// certified receipt for it that holds. A receipt from a replica that
    /// cannot prove it is never taken, so one replica can neither swallow a
    /// call nor fake its outcome.
    pub async fn submit(&self, tx: SignedTransaction) -> Result<Submitted, NodeError> {
        let id = tx.id();
        let mut pending: FuturesUnordered<_> = self
            .members
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, m)| {
                let tx = tx.clone();
                async move { (i, self.ask(i, self.order_timeout, m.submit(tx)).await) }
            })
            .collect();
        let mut failures: Vec<(usize, NodeError)> = Vec::new();
        while let Some((i, answer)) = pending.next().await {
            let certified = match answer {
                Ok(c) => c,
                Err(e) => {
                    failures.push((i, e));
                    continue;
                }
            };
            match self.accept(i, certified, &id, &failures) {
                Ok(submitted) => return Ok(submitted),
                Err(e) => failures.push((i, e)),
            }
        }
        Err(self.unordered("the call", failures))
    }

    /// Replica `i`'s certified receipt for `tx`, if it holds; `failures`
    /// are the replicas skipped before it.
    fn accept(
        &self,
        i: usize,
        certified: CertifiedReceipt,
        tx: &TxId,
        failures: &[(usize, NodeError)],
    ) -> Result<Submitted, NodeError> {
        let header = certified.verify_for(&*self.certs, tx).map_err(lied)?;
        self.seen.observe(header.height());
        Ok(Submitted {
            receipt: certified.receipt.clone(),
            header,
            certified,
            replica: ReplicaId(i as u16),
            skipped: failures.iter().map(|(i, e)| skipped(*i, e)).collect(),
        })
    }

    /// The error when no replica answered a call that must be ordered: if
    /// none answered at all, the cluster lacks a quorum (or is cut off).
    fn unordered(&self, what: &str, failures: Vec<(usize, NodeError)>) -> NodeError {
        if failures.iter().all(|(_, e)| unavailable(e)) {
            return NodeError::Transport(format!(
                "the cluster did not order and certify {what} within {} s: that takes {} of its {} replicas (2f + 1) up and agreeing on a primary, and either fewer answer or a view change did not finish (`GET /v1/info` on each replica shows its view); {}",
                self.order_timeout.as_secs_f32(),
                self.replica_set().quorum(),
                self.n(),
                list(&failures.iter().map(|(i, e)| skipped(*i, e)).collect::<Vec<_>>())
            ));
        }
        self.no_answer(&format!("a certified answer to {what}"), failures)
    }

    /// The certified receipt of a committed transaction; `auth` is its
    /// signer's (or a replica's) [`Authorization::receipt_scope`].
    pub async fn receipt(&self, tx: TxId, auth: Authorization) -> Result<Submitted, NodeError> {
        let mut failures = Vec::new();
        for i in self.order() {
            let certified = match self
                .ask(i, self.deadline, self.members[i].receipt(tx, auth.clone()))
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    failures.push((i, e));
                    continue;
                }
            };
            match self.accept(i, certified, &tx, &failures) {
                Ok(submitted) => return Ok(submitted),
                Err(e) => failures.push((i, e)),
            }
        }
        Err(self.no_answer("a certified receipt", failures))
    }

    /// A record from certified state (`None`: proven absent); `auth` is
    /// an [`Authorization::record_scope`] of an account that may read it.
    pub async fn record(
        &self,
        id: RecordId,
        auth: Authorization,
    ) -> Result<Verified<Option<RecordInfo>>, NodeError> {
        self.read(
            "the record",
            |m| {
                let auth = auth.clone();
                async move { m.record(id, auth).await }
            },
            |s| s.record(&id),
        )
        .await
    }

    /// A grant from certified state (`None`: proven absent); `auth` is an
    /// [`Authorization::grant_scope`] of an account that may read it.
    pub async fn grant(
        &self,
        id: GrantId,
        auth: Authorization,
    ) -> Result<Verified<Option<GrantInfo>>, NodeError> {
        self.read(
            "the grant",
            |m| {
                let auth = auth.clone();
                async move { m.grant(id, auth).await }
            },
            |s| s.grant(&id),
        )
        .await
    }

    /// A record's grants, complete, from certified state.
    pub async fn grants_of_record(
        &self,
        id: RecordId,
        auth: Authorization,
    ) -> Result<Verified<Vec<GrantInfo>>, NodeError> {
        self.read(
            "the record's grants",
            |m| {
                let auth = auth.clone();
                async move { m.grants_of_record(id, auth).await }
            },
            |s| s.grants_of(&id),
        )
        .await
    }

    /// A record's whole audit trail, from certified state: complete up to
    /// the record's certified length.
    pub async fn audit(
        &self,
        id: RecordId,
        auth: Authorization,
    ) -> Result<Verified<Vec<AuditEntry>>, NodeError> {
        self.read(
            "the audit trail",
            |m| {
                let auth = auth.clone();
                async move { m.audit(id, auth).await }
            },
            |s| s.audit_trail(&id, 0, u64::MAX),
        )
        .await
    }

    /// The records an account owns and the grants it holds, complete, from
    /// certified state.
    pub async fn listing(
        &self,
        account: AccountId,
        auth: Authorization,
    ) -> Result<Verified<(Vec<RecordInfo>, Vec<GrantInfo>)>, NodeError> {
        self.read(
            "the listing",
            |m| {
                let auth = auth.clone();
                async move { m.listing(account, auth).await }
            },
            |s| Ok((s.records_of(&account)?, s.grants_held_by(&account)?)),
        )
        .await
    }

    /// Delivers replica `replica` its key fragment of a committed grant.
    pub async fn deliver_fragment_to(
        &self,
        replica: ReplicaId,
        grant: GrantId,
        fragment: Vec<u8>,
    ) -> Result<(), NodeError> {
        let i = usize::from(replica.0);
        let m = self.member(replica).ok_or_else(|| {
            NodeError::Setup(format!(
                "{replica} is not in this replica set of {}",
                self.n()
            ))
        })?;
        let result = self
            .ask(i, self.deadline, m.deliver_fragment(grant, fragment))
            .await;
        if result.is_ok() {
            self.lagging.mark(i, false);
        }
        result
    }

    /// Delivers each replica its own key fragment of a committed grant
    /// (`fragments[i]` to replica `i`), all at once, and reports who took
    /// theirs. Once all but f replicas took theirs, the others get a short
    /// grace, not the whole deadline: twice what the quorum took, at least
    /// 50 ms and at most 500 ms.
    ///
    /// A replica that misses the grace is taken to be behind (catching up
    /// after a restart, paused, on a slow link): later grants do not wait
    /// for it. Its deliveries go on in the background, up to four at a time,
    /// and are reported as skipped ("behind"); the first that lands makes it
    /// current again. The caller keeps what was skipped and delivers it
    /// later ([`Replicas::deliver_fragment_to`]); delivering a fragment the
    /// replica already took is harmless.
    pub async fn deliver_fragments(
        &self,
        grant: GrantId,
        fragments: Vec<Vec<u8>>,
    ) -> Result<FragmentDelivery, NodeError> {
        if fragments.len() != self.n() {
            return Err(NodeError::Setup(format!(
                "{} key fragments for {} replicas",
                fragments.len(),
                self.n()
            )));
        }
        let mut report = FragmentDelivery::default();
        let mut waiting = Vec::new();
        for (i, (m, f)) in self.members.iter().cloned().zip(fragments).enumerate() {
            if !self.lagging.is_lagging(i) {
                waiting.push((i, m, f));
                continue;
            }
            let why = if self.lagging.take_slot(i) {
                let (lagging, deadline) = (self.lagging.clone(), self.deadline);
                tokio::spawn(async move {
                    let ok = matches!(
                        tokio::time::timeout(deadline, m.deliver_fragment(grant, f)).await,
                        Ok(Ok(()))
                    );
                    lagging.release_slot(i, ok);
                });
                "it is behind (it missed the last grants' grace); a delivery goes on in the background"
            } else {
                "it is behind (it missed the last grants' grace), with deliveries to it still under way"
            };
            report.skipped.push(skipped(i, why));
        }
        let quorum = (self.n() - self.f())
            .saturating_sub(report.skipped.len())
            .max(1);
        let mut pending: FuturesUnordered<_> = waiting
            .into_iter()
            .map(|(i, m, f)| async move {
                (
                    i,
                    self.ask(i, self.deadline, m.deliver_fragment(grant, f))
                        .await,
                )
            })
            .collect();
        let mut answered = vec![false; self.n()];
        let mut grace: Option<tokio::time::Instant> = None;
        let mut granted = DELIVERY_GRACE;
        let started = tokio::time::Instant::now();
        loop {
            let next = match grace {
                Some(until) => match tokio::time::timeout_at(until, pending.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
                None => pending.next().await,
            };
            let Some((i, result)) = next else { break };
            answered[i] = true;
            match result {
                Ok(()) => report.delivered.push(ReplicaId(i as u16)),
                Err(e) => report.skipped.push(skipped(i, e)),
            }
            if grace.is_none() && report.delivered.len() >= quorum {
                let now = tokio::time::Instant::now();
                granted = ((now - started) * 2).clamp(DELIVERY_GRACE_MIN, DELIVERY_GRACE);
                grace = Some(now + granted);
            }
        }
        let skipped_already: Vec<usize> = report
            .skipped
            .iter()
            .map(|s| usize::from(s.replica.0))
            .collect();
        for i in (0..self.n()).filter(|i| !answered[*i] && !skipped_already.contains(i)) {
            self.lagging.mark(i, true);
            report.skipped.push(skipped(
                i,
                format!(
                    "no answer within {} ms after the others took theirs",
                    granted.as_millis()
                ),
            ));
        }
        for r in &report.delivered {
            self.lagging.mark(usize::from(r.0), false);
        }
        report.delivered.sort();
        report.skipped.sort_by_key(|s| s.replica);
        Ok(report)
    }

    /// Sends a signed `Retrieve` to every replica and gathers what holds:
    /// the certified receipt, the record and grant from certified state, and
    /// the capsule fragments each replica signed for itself. Replicas whose
    /// own certified state shows the grant unusable give no fragment that
    /// counts. Returns as soon as m + f fragments are in (m of them are good
    /// whatever f Byzantine replicas sent), or a moment after m are.
    pub async fn retrieve(&self, tx: SignedTransaction) -> Result<RetrieveAnswers, NodeError> {
        let id = tx.id();
        let rr_core::Call::Retrieve(call) = &tx.body.call else {
            return Err(NodeError::WrongCall {
                expected: "retrieve",
                found: tx.body.call.name(),
            });
        };
        let grant_id = call.grant;
        let mut pending: FuturesUnordered<_> = self
            .members
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, m)| {
                let tx = tx.clone();
                async move { (i, self.ask(i, self.order_timeout, m.retrieve(tx)).await) }
            })
            .collect();
        let mut failures: Vec<(usize, NodeError)> = Vec::new();
        let mut receipt: Option<Submitted> = None;
        // The freshest certified record and grant, and their height.
        let mut known: Option<(u64, RecordInfo, GrantInfo)> = None;
        let mut fragments: Vec<(usize, u64, SignedFragment)> = Vec::new();
        // Replicas that withheld their fragment, and why (believed once f + 1
        // replicas agree).
        let mut withheld: Vec<(usize, rr_core::Refusal)> = Vec::new();
        let mut freshest_time = rr_core::Timestamp(0);
        let mut deadline: Option<tokio::time::Instant> = None;
        let seen = self.seen.get();
        loop {
            let m = known.as_ref().map(|(_, _, g)| usize::from(g.threshold.m));
            if let Some(m) = m {
                if fragments.len() >= (m + self.f()).min(self.n()) {
                    break;
                }
                if fragments.len() >= m && deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + RETRIEVE_GRACE);
                }
            }
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, pending.next()).await {
                    Ok(n) => n,
                    Err(_) => break,
                },
                None => pending.next().await,
            };
            let Some((i, answer)) = next else { break };
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    failures.push((i, e));
                    continue;
                }
            };
            if let Some(r) = &answer.withheld {
                withheld.push((i, r.clone()));
            }
            match self.check_retrieval(i, &id, &grant_id, answer) {
                Err(e) => failures.push((i, e)),
                Ok(Checked::Refused(r)) => {
                    // Certified: every correct replica refused it too.
                    return Err(NodeError::Refused(r));
                }
                Ok(Checked::Allowed(allowed)) => {
                    let Allowed {
                        submitted,
                        height,
                        state_time,
                        record,
                        grant,
                        fragment,
                    } = *allowed;
                    if receipt.is_none() {
                        receipt = Some(submitted);
                    }
                    freshest_time = freshest_time.max(state_time);
                    if known.as_ref().is_none_or(|(h, _, _)| height > *h) {
                        known = Some((height, record, grant));
                    }
                    match fragment {
                        Ok(_) if height < seen => failures.push((
                            i,
                            NodeError::Transport(format!(
                                "its state is of height {height}, older than height {seen} this client has seen"
                            )),
                        )),
                        Ok(f) => fragments.push((i, height, f)),
                        Err(why) => failures.push((i, NodeError::Transport(why))),
                    }
                }
            }
        }
        drop(pending);
        let (Some(receipt), Some((_, record, grant))) = (receipt, known) else {
            return Err(self.unordered("the retrieval", failures));
        };
        let mut skipped_replicas: Vec<SkippedReplica> =
            failures.iter().map(|(i, e)| skipped(*i, e)).collect();
        // The freshest certified state decides: a grant revoked or expired
        // there is refused, whatever older answers say (a retry of a
        // retrieval allowed before, answered by a replica still at that
        // height, gives nothing).
        if let GrantStatus::Revoked { at } = grant.status {
            return Err(NodeError::Refused(rr_core::Refusal {
                code: rr_core::ErrorCode::GrantRevoked,
                message: format!(
                    "grant {} was revoked at height {} ({})",
                    grant.id, at.height, at.time
                ),
            }));
        }
        if let Some(exp) = grant.expires_at.filter(|e| *e <= freshest_time) {
            return Err(NodeError::Refused(rr_core::Refusal {
                code: rr_core::ErrorCode::GrantExpired,
                message: format!("grant {} expired at {exp}", grant.id),
            }));
        }
        // With no block since the expiry the ledger's time has not reached
        // it, but the replicas' clocks have: f + 1 of them withholding for
        // the same reason include a correct one.
        for (_, r) in &withheld {
            let agree = withheld.iter().filter(|(_, o)| o.code == r.code).count();
            if agree > self.f() && fragments.len() < usize::from(grant.threshold.m) {
                return Err(NodeError::Refused(r.clone()));
            }
        }
        let fragments: Vec<SignedFragment> = fragments.into_iter().map(|(_, _, f)| f).collect();
        skipped_replicas.sort_by_key(|s| s.replica);
        Ok(RetrieveAnswers {
            receipt,
            record,
            grant,
            fragments,
            skipped: skipped_replicas,
        })
    }

    /// Checks replica `i`'s answer to retrieval `tx` through `grant_id`.
    fn check_retrieval(
        &self,
        i: usize,
        tx: &TxId,
        grant_id: &GrantId,
        answer: Retrieval,
    ) -> Result<Checked, NodeError> {
        let header = answer.receipt.verify_for(&*self.certs, tx).map_err(lied)?;
        self.seen.observe(header.height());
        let submitted = Submitted {
            receipt: answer.receipt.receipt.clone(),
            header,
            certified: answer.receipt.clone(),
            replica: ReplicaId(i as u16),
            skipped: Vec::new(),
        };
        let (record_id, granted) = match &submitted.receipt.outcome {
            Outcome::Refused(r) => return Ok(Checked::Refused(r.clone())),
            Outcome::Ok(CallOutput::Retrieved { record, grant }) => (*record, *grant),
            Outcome::Ok(other) => {
                return Err(lied(VerifyError::WrongReceipt(format!(
                    "a retrieval's receipt says {other:?}"
                ))))
            }
        };
        if granted != *grant_id {
            return Err(lied(VerifyError::WrongReceipt(format!(
                "the receipt is for grant {granted}, the call for {grant_id}"
            ))));
        }
        let state = answer.state.verify(&*self.certs).map_err(lied)?;
        if state.height() < submitted.header.height() {
            return Err(lied(VerifyError::WrongReceipt(format!(
                "its state (height {}) is older than the retrieval (height {})",
                state.height(),
                submitted.header.height()
            ))));
        }
        let grant = state.grant(grant_id).map_err(lied)?.ok_or_else(|| {
            lied(VerifyError::WrongReceipt(format!(
                "it proves grant {grant_id} absent, yet the retrieval through it was allowed"
            )))
        })?;
        let record = state.record(&record_id).map_err(lied)?.ok_or_else(|| {
            lied(VerifyError::WrongReceipt(format!(
                "it proves record {record_id} absent, yet the retrieval of it was allowed"
            )))
        })?;
        if grant.record != record.id {
            return Err(lied(VerifyError::WrongReceipt(format!(
                "grant {} is of record {}, not {}",
                grant.id, grant.record, record.id
            ))));
        }
        let key = self.replica_set().key(ReplicaId(i as u16)).expect("i < n");
        let usable = grant.is_usable_at(state.header().time());
        let fragment = match answer.fragment {
            _ if !usable => Err(format!(
                "its own certified state (height {}) shows grant {} unusable",
                state.height(),
                grant.id
            )),
            None => Err(answer
                .note
                .unwrap_or_else(|| "it gave no capsule fragment".into())),
            Some(f) if !f.verify(key, tx, grant_id, ReplicaId(i as u16)) => Err(
                "its capsule fragment is not signed with its replica key for this retrieval (or claims another replica)"
                    .into(),
            ),
            Some(f) => Ok(f),
        };
        Ok(Checked::Allowed(Box::new(Allowed {
            submitted,
            height: state.height(),
            state_time: state.header().time(),
            record,
            grant,
            fragment,
        })))
    }

    /// Stores a blob (ciphertext) on every replica at once; done once 2f + 1
    /// replicas stored it under the same content id. A replica that stops
    /// taking data, or does not confirm within the deadline after the last
    /// byte, is left behind.
    ///
    /// `auth` is the uploading account's authorization of scope
    /// [`Authorization::upload_scope`] for this replica set.
    pub async fn put_blob(
        &self,
        mut data: ByteStream,
        auth: Authorization,
    ) -> Result<ContentId, NodeError> {
        let n = self.n();
        let mut senders = Vec::with_capacity(n);
        let mut uploads = FuturesUnordered::new();
        for (i, m) in self.members.iter().cloned().enumerate() {
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
            senders.push(Some(tx));
            let stream: ByteStream = Box::pin(tokio_stream_of(rx));
            let auth = auth.clone();
            uploads.push(tokio::spawn(
                async move { (i, m.put_blob(stream, auth).await) },
            ));
        }
        // Tee the ciphertext to every replica; a replica whose upload failed
        // or stalled drops out, the others go on.
        let mut source_error = None;
        let mut stalled: Vec<usize> = Vec::new();
        while let Some(chunk) = data.next().await {
            match chunk {
                Ok(bytes) => {
                    for (i, s) in senders.iter_mut().enumerate() {
                        if let Some(tx) = s {
                            match tokio::time::timeout(self.deadline, tx.send(Ok(bytes.clone())))
                                .await
                            {
                                Ok(Ok(())) => {}
                                Ok(Err(_)) => *s = None,
                                Err(_) => {
                                    stalled.push(i);
                                    self.demote(i);
                                    *s = None;
                                }
                            }
                        }
                    }
                    if senders.iter().all(Option::is_none) {
                        break;
                    }
                }
                Err(e) => {
                    for tx in senders.iter().flatten() {
                        let _ = tx
                            .send(Err(std::io::Error::new(e.kind(), e.to_string())))
                            .await;
                    }
                    source_error = Some(e);
                    break;
                }
            }
        }
        drop(senders);
        let quorum = self.write_quorum().min(n);
        let mut stored: Vec<(usize, ContentId)> = Vec::new();
        let mut errors: Vec<String> = stalled
            .iter()
            .map(|i| {
                format!(
                    "replica {i}: stopped taking data for {} s",
                    self.deadline.as_secs_f32()
                )
            })
            .collect();
        let mut refusal = None;
        let agreed = |stored: &[(usize, ContentId)]| {
            stored
                .iter()
                .find(|(_, c)| stored.iter().filter(|(_, o)| o == c).count() >= quorum)
                .map(|(_, c)| *c)
        };
        let until = tokio::time::Instant::now() + self.deadline;
        while agreed(&stored).is_none() {
            let joined = match tokio::time::timeout_at(until, uploads.next()).await {
                Ok(Some(j)) => j,
                Ok(None) => break,
                Err(_) => {
                    errors.push(format!(
                        "{} replicas did not confirm within {} s",
                        uploads.len(),
                        self.deadline.as_secs_f32()
                    ));
                    break;
                }
            };
            match joined {
                Ok((i, Ok(cid))) => stored.push((i, cid)),
                Ok((i, Err(e))) => {
                    errors.push(format!("replica {i}: {e}"));
                    if !matches!(e, NodeError::Transport(_)) && refusal.is_none() {
                        refusal = Some(e);
                    }
                }
                Err(e) => errors.push(format!("upload task failed: {e}")),
            }
        }
        if let Some(e) = source_error {
            return Err(NodeError::Transport(format!(
                "reading the data to upload failed: {e}"
            )));
        }
        if let Some(cid) = agreed(&stored) {
            if !errors.is_empty() || stored.len() < n {
                tracing::warn!(target: "rr_node::replicas", %cid, failed = %errors.join("; "), "blob stored on a quorum, not (yet) on every replica");
            }
            return Ok(cid);
        }
        if let Some(e) = refusal {
            // A refusal (too large, say) is the same everywhere: say it plainly.
            return Err(e);
        }
        Err(NodeError::Transport(format!(
            "the blob reached {} of the {quorum} replicas it needs: {}",
            stored.len(),
            errors.join("; ")
        )))
    }

    /// Streams a blob from the first replica that serves it; see
    /// [`Replicas::get_blob_from`].
    pub async fn get_blob(&self, cid: ContentId) -> Result<ByteStream, NodeError> {
        self.get_blob_from(cid, 0).await
    }

    /// Streams a blob from byte `offset` on, from the first replica that
    /// serves it; if its stream breaks off, the next replica carries on from
    /// the same byte.
    pub async fn get_blob_from(
        &self,
        cid: ContentId,
        offset: u64,
    ) -> Result<ByteStream, NodeError> {
        let mut failures = Vec::new();
        for i in self.order() {
            match self
                .ask(i, self.deadline, self.members[i].get_blob_from(cid, offset))
                .await
            {
                Ok(stream) => {
                    let download = ResumableDownload {
                        members: self.members.clone(),
                        cid,
                        current: i,
                        tried: vec![i],
                        delivered: offset,
                        deadline: self.deadline,
                    };
                    return Ok(download.stream(stream));
                }
                Err(e) => failures.push((i, e)),
            }
        }
        let detail = failures
            .iter()
            .map(|(i, e)| format!("replica {i}: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        match failures
            .into_iter()
            .find(|(_, e)| !matches!(e, NodeError::Transport(_)))
        {
            Some((_, NodeError::NotFound(_))) | None => Err(NodeError::NotFound(format!(
                "no replica could serve blob {cid}: {detail}"
            ))),
            Some((_, e)) => Err(e),
        }
    }
}

/// One replica's retrieval answer, checked.
enum Checked {
    /// The retrieval was refused: certified.
    Refused(rr_core::Refusal),
    /// It was allowed.
    Allowed(Box<Allowed>),
}

/// An allowed retrieval, as one replica answered it.
struct Allowed {
    submitted: Submitted,
    /// Height of the state its record and grant are proven at.
    height: u64,
    /// Block time of that state.
    state_time: rr_core::Timestamp,
    record: RecordInfo,
    grant: GrantInfo,
    /// Its fragment, or why it gives none that counts.
    fragment: Result<SignedFragment, String>,
}

/// A blob download from a cluster that, if its replica's stream breaks off,
/// carries on from the same byte with the next replica that serves it.
struct ResumableDownload {
    members: Vec<Arc<dyn NodeApi>>,
    cid: ContentId,
    /// The replica streaming now.
    current: usize,
    /// Replicas asked so far (each is asked once).
    tried: Vec<usize>,
    /// Bytes of the blob handed out so far (counting any starting offset).
    delivered: u64,
    /// How long opening the rest at another replica may take.
    deadline: Duration,
}

impl ResumableDownload {
    /// `first` (the current replica's stream), resumed elsewhere on error.
    fn stream(self, first: ByteStream) -> ByteStream {
        Box::pin(futures::stream::unfold(
            Some((self, first)),
            |state| async move {
                let (mut this, mut stream) = state?;
                loop {
                    match stream.next().await {
                        Some(Ok(chunk)) => {
                            this.delivered += chunk.len() as u64;
                            return Some((Ok(chunk), Some((this, stream))));
                        }
                        None => return None,
                        Some(Err(e)) => match this.resume(&e).await {
                            Some(next) => stream = next,
                            None => return Some((Err(e), None)),
                        },
                    }
                }
            },
        ))
    }

    /// The rest of the blob from a replica not asked yet, after the current
    /// one failed with `err`; `None` if none can serve it, or if the break
    /// came at the blob's very end.
    ///
    /// That last case is what a replica does when its copy fails its own
    /// check: it sends the whole copy and then aborts. Resuming would end
    /// the download cleanly after damaged bytes, so the break is passed on.
    /// Anywhere else a break is the connection's. As for every byte of a
    /// download, the reader's envelope authentication (or its own check of
    /// the content id, [`rr_storage::verified`]) vouches for the bytes.
    async fn resume(&mut self, err: &std::io::Error) -> Option<ByteStream> {
        let n = self.members.len();
        let from = self.current;
        for j in (1..n).map(|k| (from + k) % n) {
            if self.tried.contains(&j) {
                continue;
            }
            self.tried.push(j);
            let open = self.members[j].get_blob_from(self.cid, self.delivered);
            let opened = match tokio::time::timeout(self.deadline, open)
                .await
                .unwrap_or_else(|_| Err(NodeError::Transport("did not answer in time".into())))
            {
                // Peeks at the first non-empty item: does the replica have
                // anything left to send from here?
                Ok(mut rest) => match rest
                    .by_ref()
                    .skip_while(|i| futures::future::ready(matches!(i, Ok(b) if b.is_empty())))
                    .next()
                    .await
                {
                    Some(Ok(first)) => {
                        let first = futures::stream::once(async { Ok(first) });
                        Ok(Box::pin(first.chain(rest)) as ByteStream)
                    }
                    Some(Err(e)) => Err(NodeError::Transport(e.to_string())),
                    None => {
                        tracing::warn!(
                            target: "rr_node::replicas",
                            cid = %self.cid,
                            replica = from,
                            offset = self.delivered,
                            error = %err,
                            "blob download broke off at the blob's end, as a replica does when its copy fails its check: not resumed"
                        );
                        return None;
                    }
                },
                Err(e) => Err(e),
            };
            match opened {
                Ok(rest) => {
                    tracing::warn!(
                        target: "rr_node::replicas",
                        cid = %self.cid,
                        from,
                        to = j,
                        offset = self.delivered,
                        error = %err,
                        "blob download broke off; resuming from another replica"
                    );
                    self.current = j;
                    return Some(rest);
                }
                Err(e) => tracing::warn!(
                    target: "rr_node::replicas",
                    cid = %self.cid,
                    replica = j,
                    error = %e,
                    "blob download: replica cannot resume it"
                ),
            }
        }
        None
    }
}

fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rr_core::{BlobError, BlobStore};

    mockall::mock! {
        Api {}
        #[async_trait::async_trait]
        impl NodeApi for Api {
            async fn info(&self) -> Result<NodeInfo, NodeError>;
            async fn head(&self) -> Result<rr_core::cert::Certificate, NodeError>;
            async fn submit(&self, tx: SignedTransaction) -> Result<CertifiedReceipt, NodeError>;
            async fn receipt(&self, tx: TxId, auth: Authorization) -> Result<CertifiedReceipt, NodeError>;
            async fn deliver_fragment(&self, grant: GrantId, fragment: Vec<u8>) -> Result<(), NodeError>;
            async fn retrieve(&self, tx: SignedTransaction) -> Result<Retrieval, NodeError>;
            async fn record(&self, id: RecordId, auth: Authorization) -> Result<StateAnswer, NodeError>;
            async fn grant(&self, id: GrantId, auth: Authorization) -> Result<StateAnswer, NodeError>;
            async fn grants_of_record(&self, id: RecordId, auth: Authorization) -> Result<StateAnswer, NodeError>;
            async fn audit(&self, id: RecordId, auth: Authorization) -> Result<StateAnswer, NodeError>;
            async fn listing(&self, account: AccountId, auth: Authorization) -> Result<StateAnswer, NodeError>;
            async fn put_blob(&self, data: ByteStream, auth: Authorization) -> Result<ContentId, NodeError>;
            async fn get_blob(&self, cid: ContentId) -> Result<ByteStream, NodeError>;
            async fn get_blob_from(&self, cid: ContentId, offset: u64) -> Result<ByteStream, NodeError>;
        }
    }

    const LEN: usize = 300_000;

    /// A replica set of four (keys only: these tests read blobs).
    fn set4() -> ReplicaSetInfo {
        ReplicaSetInfo::new(
            (1..=4u8)
                .map(|i| {
                    AccountId::from_verifying_key(
                        &ed25519_dalek::SigningKey::from_bytes(&[i; 32]).verifying_key(),
                    )
                })
                .collect(),
        )
        .unwrap()
    }

    fn blob() -> (Bytes, ContentId) {
        let data: Bytes = (0..LEN)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let cid =
            futures::executor::block_on(rr_storage::MemoryBlobStore::new().put_bytes(data.clone()))
                .unwrap();
        (data, cid)
    }

    /// `data` in 64 KiB items, then `end` (an error) if given.
    fn stream_of(data: Bytes, end: Option<std::io::Error>) -> ByteStream {
        let mut items: Vec<std::io::Result<Bytes>> = data
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        items.extend(end.map(Err));
        Box::pin(futures::stream::iter(items))
    }

    fn broke() -> std::io::Error {
        std::io::Error::other("connection reset by peer")
    }

    /// A replica that serves `data` from any offset, breaking off after
    /// `cut` bytes of the blob if given; it expects to be asked `times`.
    fn replica(data: &Bytes, cid: ContentId, cut: Option<usize>, times: usize) -> Arc<dyn NodeApi> {
        let data = data.clone();
        let mut m = MockApi::new();
        m.expect_get_blob_from()
            .withf(move |c, _| *c == cid)
            .times(times)
            .returning(move |_, offset| {
                let start = (offset as usize).min(data.len());
                Ok(match cut {
                    Some(cut) => stream_of(data.slice(start..cut.max(start)), Some(broke())),
                    None => stream_of(data.slice(start..), None),
                })
            });
        Arc::new(m)
    }

    fn refusing(times: usize) -> Arc<dyn NodeApi> {
        let mut m = MockApi::new();
        m.expect_get_blob_from()
            .times(times)
            .returning(|cid, _| Err(NodeError::NotFound(format!("no blob {cid} here"))));
        Arc::new(m)
    }

    async fn read_all(r: &Replicas, cid: ContentId) -> (Vec<u8>, Option<std::io::Error>) {
        let mut stream = r.get_blob(cid).await.unwrap();
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    /// A certificate of an empty state at `height`, signed by replicas 0-2
    /// of [`set4`].
    fn certificate(height: u64) -> rr_core::cert::Certificate {
        let set = set4();
        let header = rr_core::cert::LedgerHeader {
            height,
            ..rr_core::cert::LedgerHeader::genesis(&set)
        };
        let mut cert = rr_core::cert::Certificate::new(header.clone());
        for i in 1..=3u8 {
            let key = ed25519_dalek::SigningKey::from_bytes(&[i; 32]);
            cert.add(ReplicaId(u16::from(i - 1)), header.sign(&key));
        }
        cert
    }

    /// A replica whose answers are of `height` and arrive only after this
    /// client has seen `meanwhile` certified elsewhere (another call of the
    /// same client finished while this one was in flight).
    fn racing(seen: Arc<Seen>, height: u64, meanwhile: u64) -> Arc<dyn NodeApi> {
        let mut m = MockApi::new();
        let s = seen.clone();
        m.expect_head().returning(move || {
            s.observe(meanwhile);
            Ok(certificate(height))
        });
        m.expect_record().returning(move |id, _| {
            seen.observe(meanwhile);
            Ok(StateAnswer {
                certificate: certificate(height),
                entries: vec![rr_core::proof::ProvenEntry {
                    table: rr_core::Table::Records,
                    key: rr_core::state::keys::record(&id),
                    value: None,
                    proof: rr_core::smt::SmtProof {
                        leaf: None,
                        siblings: Vec::new(),
                    },
                }],
            })
        });
        Arc::new(m)
    }

    /// An authorization the mocks do not check.
    fn auth() -> Authorization {
        Authorization::sign(
            &ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
            &set4().digest(),
            Authorization::record_scope(&RecordId([1; 32])),
        )
    }

    #[tokio::test]
    async fn an_answer_is_judged_by_what_was_seen_when_it_was_asked_for() {
        let down = || {
            let mut m = MockApi::new();
            m.expect_head()
                .returning(|| Err(NodeError::Transport("connection refused".into())));
            m.expect_record()
                .returning(|_, _| Err(NodeError::Transport("connection refused".into())));
            Arc::new(m) as Arc<dyn NodeApi>
        };
        // A client that has seen height 5.
        let client = || {
            let seen = Arc::new(Seen::default());
            let members = vec![racing(seen.clone(), 5, 6), down(), down(), down()];
            Replicas {
                seen,
                ..Replicas::new(members, set4()).unwrap()
            }
            .with_seen(5)
        };
        // Asked at 5, answered at 5 while another call saw 6: fresh.
        let r = client();
        assert_eq!(r.head().await.unwrap().height(), 5);
        assert_eq!(r.seen(), 6);
        // Asked at 6, answered at 5: stale, and the error says so.
        let err = r.head().await.unwrap_err().to_string();
        assert!(err.contains("older than height 6"), "{err}");

        let r = client();
        let read = r.record(RecordId([1; 32]), auth()).await.unwrap();
        assert_eq!(read.value, None);
        assert_eq!(read.header.height(), 5);
        assert_eq!(r.seen(), 6);
        let err = r.record(RecordId([1; 32]), auth()).await.unwrap_err();
        assert!(matches!(err, NodeError::Stale { .. }), "{err}");
        assert_eq!(r.seen(), 6);
    }

    #[tokio::test]
    async fn a_broken_download_carries_on_from_the_next_replica() {
        let (data, cid) = blob();
        // Replica 0 breaks off mid-item, replica 1 does not have it, replica
        // 2 serves the rest; replica 3 is never asked.
        let members = vec![
            replica(&data, cid, Some(100_000), 1),
            refusing(1),
            replica(&data, cid, None, 1),
            replica(&data, cid, None, 0),
        ];
        let r = Replicas::new(members, set4()).unwrap();
        let (out, err) = read_all(&r, cid).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(out, data);
    }

    #[tokio::test]
    async fn empty_items_do_not_count_as_bytes_left() {
        let (data, cid) = blob();
        // Replica 1 answers at the blob's end with an empty item and then a
        // clean end: nothing left, so the break is not resumed.
        let mut empty = MockApi::new();
        empty
            .expect_get_blob_from()
            .times(1)
            .returning(|_, _| Ok(Box::pin(futures::stream::iter(vec![Ok(Bytes::new())]))));
        let members = vec![
            replica(&data, cid, Some(LEN), 1),
            Arc::new(empty) as Arc<dyn NodeApi>,
            refusing(0),
            refusing(0),
        ];
        let r = Replicas::new(members, set4()).unwrap();
        let (out, err) = read_all(&r, cid).await;
        assert_eq!(out, data);
        assert_eq!(
            err.expect("the break").to_string(),
            "connection reset by peer"
        );
    }

    #[tokio::test]
    async fn a_download_no_replica_can_resume_fails_with_the_break() {
        let (data, cid) = blob();
        let members = vec![
            replica(&data, cid, Some(100_000), 1),
            refusing(1),
            replica(&data, cid, Some(200_000), 1),
            refusing(1),
        ];
        let r = Replicas::new(members, set4()).unwrap();
        let (out, err) = read_all(&r, cid).await;
        // Each replica is asked once: 0 gave 100,000 bytes, 2 the next
        // 100,000, and the last break is what the reader sees.
        assert_eq!(out, data[..200_000]);
        assert_eq!(err.unwrap().to_string(), "connection reset by peer");
    }

    #[tokio::test]
    async fn a_break_at_the_very_end_is_not_resumed() {
        let (data, cid) = blob();
        let mut bad = data.to_vec();
        bad[5] ^= 1;
        let bad = Bytes::from(bad);
        // Replica 0 sends a damaged copy in full and then aborts (what a
        // node does when its copy fails its own check). Replica 1 has
        // nothing left to send from there: the download must not end as if
        // it were whole.
        let members = vec![
            replica(&bad, cid, Some(LEN), 2),
            replica(&data, cid, None, 2),
            replica(&data, cid, None, 0),
            replica(&data, cid, None, 0),
        ];
        let r = Replicas::new(members, set4()).unwrap();
        let (out, err) = read_all(&r, cid).await;
        assert_eq!(out, bad);
        assert_eq!(
            err.expect("the break").to_string(),
            "connection reset by peer"
        );
        // A reader that checks the content id itself sees the same break.
        let checked = rr_storage::verified(r.get_blob(cid).await.unwrap(), cid);
        let items: Vec<_> = checked.collect().await;
        let last = items.last().expect("items").as_ref().expect_err("an error");
        assert_eq!(last.to_string(), "connection reset by peer");
        assert!(BlobError::from_io(last).is_none());
    }
}
