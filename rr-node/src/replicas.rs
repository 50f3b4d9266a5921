//! A whole replica set seen as one [`NodeApi`]: the client side of a cluster.
//!
//! [`Replicas`] fans out what must reach every replica and tolerates the `f`
//! that may be down or lying:
//!
//! | call | what it does |
//! | --- | --- |
//! | `submit`, reads | the first replica that answers (a down one is skipped) |
//! | `put_blob` | streams the ciphertext to every replica at once; succeeds at `2f + 1` stored copies with the same content id |
//! | `get_blob` | the first replica that opens the blob; if its stream breaks off mid-way, the next one carries on from the same byte (the envelope's authentication catches a lying one) |
//! | `deliver_fragments` | fragment `i` to replica `i`, all at once; names the ones that did not take it |
//! | `retrieve` | the same signed `Retrieve` to every replica (it is ordered and audited once); gathers their capsule fragments and needs `f + 1` matching receipts |
//!
//! A one-replica "cluster" behaves like that replica.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rr_core::{
    AccountId, AuditEntry, ByteStream, ContentId, GrantId, GrantInfo, Receipt, RecordId,
    RecordInfo, ReplicaId, SignedTransaction, TxId,
};

use crate::api::{Authorization, FragmentDelivery, NodeApi};
use crate::cluster::ClusterFile;
use crate::http::HttpClient;
use crate::node::{NodeError, NodeInfo, Retrieval, SkippedReplica};
use crate::sealing::SealingPublicKey;

/// How long a retrieval waits for more replicas once it has enough
/// fragments but fewer than m + f (so one might be bad), so a slow replica
/// does not hold the answer up.
const RETRIEVE_GRACE: Duration = Duration::from_millis(200);

/// Every replica of a cluster behind one [`NodeApi`]. See the module docs.
#[derive(Clone)]
pub struct Replicas {
    members: Vec<Arc<dyn NodeApi>>,
    /// Sealing keys from a trusted configuration (`cluster.json`).
    sealing: Option<Vec<SealingPublicKey>>,
    /// Replica keys from a trusted configuration: receipts must be signed.
    replica_keys: Option<Vec<ed25519_dalek::VerifyingKey>>,
    order_timeout: Duration,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas")
            .field("n", &self.members.len())
            .finish()
    }
}

fn skipped(i: usize, reason: impl std::fmt::Display) -> SkippedReplica {
    SkippedReplica {
        replica: ReplicaId(i as u16),
        reason: reason.to_string(),
    }
}

impl Replicas {
    /// The replica set, `members[i]` being replica `i`.
    pub fn new(members: Vec<Arc<dyn NodeApi>>) -> Result<Self, NodeError> {
        if members.is_empty() || members.len() > usize::from(u16::MAX) {
            return Err(NodeError::Setup(
                "a replica set needs at least one replica".into(),
            ));
        }
        Ok(Self {
            members,
            sealing: None,
            replica_keys: None,
            order_timeout: Duration::from_secs(30),
        })
    }

    /// The replicas a `cluster.json` (written by `rr-node localnet`) lists,
    /// over HTTP.
    pub fn from_cluster_file(path: &Path) -> Result<Self, NodeError> {
        let file = ClusterFile::read(path)?;
        let members = file
            .replicas
            .iter()
            .map(|m| HttpClient::new(&m.api).map(|c| Arc::new(c) as Arc<dyn NodeApi>))
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
        let keys = file
            .replicas
            .iter()
            .map(|m| m.peer().verifying_key())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            sealing: Some(sealing),
            ..Self::new(members)?.with_replica_keys(keys)?
        })
    }

    /// Requires every retrieval receipt to be signed by the replica that
    /// answered, with `keys[i]` for replica `i` (`Replicas::from_cluster_file`
    /// does this with the keys the file names).
    pub fn with_replica_keys(
        mut self,
        keys: Vec<ed25519_dalek::VerifyingKey>,
    ) -> Result<Self, NodeError> {
        if keys.len() != self.n() {
            return Err(NodeError::Setup(format!(
                "{} replica keys for {} replicas",
                keys.len(),
                self.n()
            )));
        }
        self.replica_keys = Some(keys);
        Ok(self)
    }

    /// How long a call may wait to be ordered before the client gives up
    /// (default 30 s). Without 2f + 1 live replicas nothing is ordered.
    pub fn with_order_timeout(mut self, timeout: Duration) -> Self {
        self.order_timeout = timeout;
        self
    }

    fn no_quorum(&self, what: &str) -> NodeError {
        NodeError::Transport(format!(
            "the cluster did not order {what} within {} s: it needs {} of its {} replicas up (2f + 1) and fewer answer",
            self.order_timeout.as_secs_f32(),
            2 * self.f() + 1,
            self.n()
        ))
    }

    /// Replicas n.
    pub fn n(&self) -> usize {
        self.members.len()
    }

    /// Faults tolerated, f = (n - 1) / 3.
    pub fn f(&self) -> usize {
        (self.n() - 1) / 3
    }

    /// Stored copies a blob upload needs: 2f + 1.
    pub fn write_quorum(&self) -> usize {
        2 * self.f() + 1
    }

    /// Replica `i`.
    pub fn member(&self, i: ReplicaId) -> Option<&Arc<dyn NodeApi>> {
        self.members.get(usize::from(i.0))
    }

    /// Asks replicas in order until one answers; a transport failure (down,
    /// unreachable) moves on to the next, any other answer is final.
    async fn first<R, F, Fut>(&self, what: &str, call: F) -> Result<R, NodeError>
    where
        F: Fn(Arc<dyn NodeApi>) -> Fut,
        Fut: std::future::Future<Output = Result<R, NodeError>>,
    {
        let mut down = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            match call(m.clone()).await {
                Err(NodeError::Transport(e)) => down.push(format!("replica {i}: {e}")),
                other => return other,
            }
        }
        Err(NodeError::Transport(format!(
            "no replica answered {what}: {}",
            down.join("; ")
        )))
    }
}

#[async_trait::async_trait]
impl NodeApi for Replicas {
    async fn info(&self) -> Result<NodeInfo, NodeError> {
        self.first("info", |m| async move { m.info().await }).await
    }

    async fn sealing_keys(&self) -> Result<Vec<Option<SealingPublicKey>>, NodeError> {
        if let Some(keys) = &self.sealing {
            return Ok(keys.iter().copied().map(Some).collect());
        }
        self.first("the sealing keys query", |m| async move {
            m.sealing_keys().await
        })
        .await
    }

    async fn submit(&self, tx: SignedTransaction) -> Result<Receipt, NodeError> {
        let call = self.first("the transaction", |m| {
            let tx = tx.clone();
            async move { m.submit(tx).await }
        });
        tokio::time::timeout(self.order_timeout, call)
            .await
            .map_err(|_| self.no_quorum("the call"))?
    }

    async fn receipt(&self, tx: TxId) -> Result<Receipt, NodeError> {
        self.first("the receipt query", |m| async move { m.receipt(tx).await })
            .await
    }

    async fn deliver_fragment(&self, grant: GrantId, fragment: Vec<u8>) -> Result<(), NodeError> {
        // One fragment belongs to one replica: address it with
        // `deliver_fragments` (or through `member`).
        let _ = (grant, fragment);
        Err(NodeError::Setup(
            "a key fragment is for one replica: use deliver_fragments on a replica set".into(),
        ))
    }

    async fn deliver_fragment_to(
        &self,
        replica: ReplicaId,
        grant: GrantId,
        fragment: Vec<u8>,
    ) -> Result<(), NodeError> {
        self.member(replica)
            .ok_or_else(|| {
                NodeError::Setup(format!(
                    "{replica} is not in this replica set of {}",
                    self.n()
                ))
            })?
            .deliver_fragment(grant, fragment)
            .await
    }

    async fn deliver_fragments(
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
        let mut pending: FuturesUnordered<_> = self
            .members
            .iter()
            .cloned()
            .zip(fragments)
            .enumerate()
            .map(|(i, (m, f))| async move { (i, m.deliver_fragment(grant, f).await) })
            .collect();
        let mut report = FragmentDelivery::default();
        while let Some((i, result)) = pending.next().await {
            match result {
                Ok(()) => report.delivered.push(ReplicaId(i as u16)),
                Err(e) => report.skipped.push(skipped(i, e)),
            }
        }
        report.delivered.sort();
        report.skipped.sort_by_key(|s| s.replica);
        Ok(report)
    }

    async fn retrieve(&self, tx: SignedTransaction) -> Result<Retrieval, NodeError> {
        let mut pending: FuturesUnordered<_> = self
            .members
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, m)| {
                let tx = tx.clone();
                async move { (i, m.retrieve(tx).await) }
            })
            .collect();
        let mut answers: Vec<(usize, Retrieval)> = Vec::new();
        let mut failed: Vec<(usize, NodeError)> = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut enough = false;
        // Without a quorum nothing is ordered, and replicas wait: give up.
        let hard = tokio::time::Instant::now() + self.order_timeout;
        loop {
            let until = deadline.map_or(hard, |d| d.min(hard));
            let next = match tokio::time::timeout_at(until, pending.next()).await {
                Ok(next) => next,
                Err(_) => break,
            };
            let Some((i, result)) = next else { break };
            // With known replica keys, a receipt counts only if the replica
            // that sent it signed it.
            let result = result.and_then(|r| match &self.replica_keys {
                Some(keys)
                    if !r.receipt_signatures.iter().any(|s| {
                        usize::from(s.replica.0) == i && s.verify(&keys[i], &r.receipt)
                    }) =>
                {
                    Err(NodeError::Transport(
                        "its receipt is not signed with its replica key".into(),
                    ))
                }
                _ => Ok(r),
            });
            match result {
                Ok(r) => {
                    let m = usize::from(r.grant.threshold.m);
                    let needed = m.max(self.f() + 1);
                    answers.push((i, r));
                    // m + f answers hold m good fragments whatever f
                    // Byzantine replicas send: no need to wait for more.
                    if answers.len() >= (m + self.f()).min(self.n()) {
                        enough = true;
                        break;
                    }
                    if answers.len() >= needed && deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + RETRIEVE_GRACE);
                    }
                }
                Err(e) => failed.push((i, e)),
            }
        }
        let mut skipped_replicas: Vec<SkippedReplica> = failed
            .iter()
            .map(|(i, e)| skipped(*i, e))
            .chain(
                pending_indices(self.n(), &answers, &failed)
                    .filter(|_| !enough)
                    .map(|i| skipped(i, "did not answer in time")),
            )
            .collect();
        // The receipt most replicas agree on; f + 1 of them vouch for it.
        let Some(agreed) = majority_receipt(&answers) else {
            // Nobody gave a fragment: every replica refused or was down. A
            // refusal (revoked, expired, wrong purpose) is the same at every
            // correct replica: pass the first one on.
            failed.sort_by_key(|(_, e)| match e {
                NodeError::Refused(_) => 0,
                e if unavailable(e) => 2,
                _ => 1,
            });
            return Err(match failed.into_iter().find(|(_, e)| !unavailable(e)) {
                Some((_, e)) => e,
                None => NodeError::Transport(format!(
                    "{}: {}",
                    self.no_quorum("the retrieval"),
                    skipped_replicas
                        .iter()
                        .map(|s| format!("replica {}: {}", s.replica.0, s.reason))
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
            });
        };
        let vouching = answers.iter().filter(|(_, r)| r.receipt == agreed).count();
        if vouching < self.f() + 1 {
            return Err(NodeError::Transport(format!(
                "only {vouching} replicas vouch for the retrieval's receipt, {} needed; skipped: {}",
                self.f() + 1,
                skipped_replicas
                    .iter()
                    .map(|s| format!("replica {}: {}", s.replica.0, s.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        let mut combined: Option<Retrieval> = None;
        for (i, r) in answers {
            if r.receipt != agreed {
                skipped_replicas.push(skipped(i, "its receipt disagrees with the others'"));
                continue;
            }
            match &mut combined {
                None => combined = Some(r),
                Some(c) => {
                    c.capsule_fragments.extend(r.capsule_fragments);
                    c.receipt_signatures.extend(r.receipt_signatures);
                }
            }
        }
        let mut combined = combined.expect("at least f + 1 answers agree");
        skipped_replicas.sort_by_key(|s| s.replica);
        combined.skipped = skipped_replicas;
        Ok(combined)
    }

    async fn record(&self, id: RecordId) -> Result<RecordInfo, NodeError> {
        self.first("the record query", |m| async move { m.record(id).await })
            .await
    }

    async fn grant(&self, id: GrantId) -> Result<GrantInfo, NodeError> {
        self.first("the grant query", |m| async move { m.grant(id).await })
            .await
    }

    async fn grants_of_record(
        &self,
        id: RecordId,
        auth: Authorization,
    ) -> Result<Vec<GrantInfo>, NodeError> {
        self.first("the grants query", |m| {
            let auth = auth.clone();
            async move { m.grants_of_record(id, auth).await }
        })
        .await
    }

    async fn audit(&self, id: RecordId, auth: Authorization) -> Result<Vec<AuditEntry>, NodeError> {
        self.first("the audit query", |m| {
            let auth = auth.clone();
            async move { m.audit(id, auth).await }
        })
        .await
    }

    async fn listing(
        &self,
        account: AccountId,
        auth: Authorization,
    ) -> Result<(Vec<RecordInfo>, Vec<GrantInfo>), NodeError> {
        self.first("the listing query", |m| {
            let auth = auth.clone();
            async move { m.listing(account, auth).await }
        })
        .await
    }

    async fn put_blob(&self, mut data: ByteStream) -> Result<ContentId, NodeError> {
        let n = self.n();
        let mut senders = Vec::with_capacity(n);
        let mut uploads = FuturesUnordered::new();
        for (i, m) in self.members.iter().cloned().enumerate() {
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
            senders.push(Some(tx));
            let stream: ByteStream = Box::pin(tokio_stream_of(rx));
            uploads.push(tokio::spawn(async move { (i, m.put_blob(stream).await) }));
        }
        // Tee the ciphertext to every replica; a replica whose upload failed
        // drops out, the others go on.
        let mut source_error = None;
        while let Some(chunk) = data.next().await {
            match chunk {
                Ok(bytes) => {
                    for s in senders.iter_mut() {
                        if let Some(tx) = s {
                            if tx.send(Ok(bytes.clone())).await.is_err() {
                                *s = None;
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
        let mut stored: Vec<(usize, ContentId)> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        let mut refusal = None;
        while let Some(joined) = uploads.next().await {
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
        let quorum = self.write_quorum().min(n);
        let mut by_cid: Vec<(ContentId, usize)> = Vec::new();
        for (_, cid) in &stored {
            match by_cid.iter_mut().find(|(c, _)| c == cid) {
                Some((_, k)) => *k += 1,
                None => by_cid.push((*cid, 1)),
            }
        }
        if let Some((cid, _)) = by_cid.iter().find(|(_, k)| *k >= quorum) {
            if !errors.is_empty() {
                tracing::warn!(target: "rr_node::replicas", %cid, failed = %errors.join("; "), "blob stored on a quorum, not on every replica");
            }
            return Ok(*cid);
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

    async fn get_blob(&self, cid: ContentId) -> Result<ByteStream, NodeError> {
        self.get_blob_from(cid, 0).await
    }

    async fn get_blob_from(&self, cid: ContentId, offset: u64) -> Result<ByteStream, NodeError> {
        let mut failures = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            match m.get_blob_from(cid, offset).await {
                Ok(stream) => {
                    let download = ResumableDownload {
                        members: self.members.clone(),
                        cid,
                        current: i,
                        tried: vec![i],
                        delivered: offset,
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
            let opened = match self.members[j]
                .get_blob_from(self.cid, self.delivered)
                .await
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

/// Whether `e` says the replica is down or stopped, rather than answering.
fn unavailable(e: &NodeError) -> bool {
    match e {
        NodeError::Transport(_) => true,
        NodeError::Consensus(rr_core::ConsensusError::Stopped) => true,
        NodeError::Remote { code, .. } => code == "unavailable",
        _ => false,
    }
}

/// The replicas that neither answered nor failed.
fn pending_indices<'a>(
    n: usize,
    answers: &'a [(usize, Retrieval)],
    failed: &'a [(usize, NodeError)],
) -> impl Iterator<Item = usize> + 'a {
    (0..n).filter(move |i| {
        !answers.iter().any(|(j, _)| j == i) && !failed.iter().any(|(j, _)| j == i)
    })
}

/// The receipt the most answers carry.
fn majority_receipt(answers: &[(usize, Retrieval)]) -> Option<Receipt> {
    let mut best: Option<(&Receipt, usize)> = None;
    for (_, r) in answers {
        let k = answers
            .iter()
            .filter(|(_, o)| o.receipt == r.receipt)
            .count();
        if best.is_none_or(|(_, b)| k > b) {
            best = Some((&r.receipt, k));
        }
    }
    best.map(|(r, _)| r.clone())
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
            async fn submit(&self, tx: SignedTransaction) -> Result<Receipt, NodeError>;
            async fn receipt(&self, tx: TxId) -> Result<Receipt, NodeError>;
            async fn deliver_fragment(&self, grant: GrantId, fragment: Vec<u8>) -> Result<(), NodeError>;
            async fn retrieve(&self, tx: SignedTransaction) -> Result<Retrieval, NodeError>;
            async fn record(&self, id: RecordId) -> Result<RecordInfo, NodeError>;
            async fn grant(&self, id: GrantId) -> Result<GrantInfo, NodeError>;
            async fn grants_of_record(&self, id: RecordId, auth: Authorization) -> Result<Vec<GrantInfo>, NodeError>;
            async fn audit(&self, id: RecordId, auth: Authorization) -> Result<Vec<AuditEntry>, NodeError>;
            async fn listing(&self, account: AccountId, auth: Authorization) -> Result<(Vec<RecordInfo>, Vec<GrantInfo>), NodeError>;
            async fn put_blob(&self, data: ByteStream) -> Result<ContentId, NodeError>;
            async fn get_blob(&self, cid: ContentId) -> Result<ByteStream, NodeError>;
            async fn get_blob_from(&self, cid: ContentId, offset: u64) -> Result<ByteStream, NodeError>;
        }
    }

    const LEN: usize = 300_000;

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
        let r = Replicas::new(members).unwrap();
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
        let r = Replicas::new(members).unwrap();
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
        let r = Replicas::new(members).unwrap();
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
        let r = Replicas::new(members).unwrap();
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
