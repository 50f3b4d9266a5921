//! One Byzantine replica in a real four-replica cluster (f = 1, a
//! `LocalCluster`): its answers to clients are rewritten, signed with its own
//! replica key (`LocalCluster::signing_key_for_testing`) where a lie needs a
//! signature. The real node behind it keeps ordering honestly (the
//! ledger inside is BFT already; these tests are about what a client is
//! told). For every lie, the client refuses it, names the replica, and
//! succeeds from the honest replicas.
//!
//! | lie | what the client does |
//! | --- | --- |
//! | a record substituted (keys, capsule, cid) under the genuine certificate | its proof fails: refused |
//! | a whole made-up state (record, grant with m = 1) certified by itself alone | no quorum: refused |
//! | a lowered threshold in a grant | its proof fails: refused |
//! | f = 0 reported | ignored: n, f and m come from the trusted set and certified state |
//! | its capsule fragment under another replica's id, or junk under its own | the signature check, or the fragment's own check, refuses it |
//! | a revoke swallowed, a receipt and erasure confirmations fabricated, and sent first | no quorum: refused; the revoke goes to every replica |
//! | stale state (answers kept from before) | older than what the client saw: refused |
//! | a committed retrieve replayed after the grant expired | no replica gives a fragment; refused as expired |
//! | never answering | at most one deadline; asked last afterwards |
//! | denying what it holds: every read the 404 of an unknown id, a register refused as `blob_not_held`, its blobs missing | the client asks the next replica: nothing is hidden, the call is ordered by the others |

mod cluster_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_support::*;
use ed25519_dalek::SigningKey;
use rr_core::cert::{Certificate, LedgerHeader};
use rr_core::proof::{CertifiedReceipt, ProvenEntry, SignedFragment, StateAnswer};
use rr_core::{
    byte_stream_of, smt, AccountId, ByteStream, Call, CallOutput, ContentId, GrantId, GrantInfo,
    GrantStatus, Outcome, Receipt, RecordId, RecordInfo, ReplicaId, SignedTransaction, Table,
    Timestamp, TxId,
};
use rr_node::{
    collect, Authorization, Client, GrantOptions, Identity, LocalCluster, NodeApi, NodeError,
    NodeInfo, Retrieval, Verified,
};
use rr_pre::Umbral;
use rr_storage::StateTree;

/// What the Byzantine replica lies about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lie {
    /// A record's keys, capsule and cid swapped, under the genuine certificate.
    SwappedRecord,
    /// A whole made-up state for records and grants (the record's keys its
    /// own, the grant 1 of n), certified by itself alone.
    ForgedState,
    /// A grant's threshold lowered to 1, under the genuine certificate.
    LoweredThreshold,
    /// `info` says one replica, f = 0.
    NoFaults,
    /// Its capsule fragment labelled as the next replica's.
    FragmentUnderAnotherName,
    /// Junk in place of its capsule fragment, properly signed.
    JunkFragment,
    /// Every call it is sent is swallowed and answered at once with a
    /// receipt of its own making (a revoke: done); grants it is asked about
    /// are revoked and erased by everyone, certified by itself.
    Swallow,
    /// It answers every query with the answer it gave the first time.
    Stale,
    /// It never answers.
    Hung,
    /// It denies what it holds: every read is answered with the 404 of an
    /// unknown id (what a stranger is told), every `RegisterRecord` is
    /// refused at admission as naming a blob it lacks, and its blobs are
    /// missing. It takes no upload either.
    Denies,
    /// Honest, but its retrieval answers come 300 ms late (so that a
    /// liar's come first and are looked at).
    Slow,
}

/// A real replica whose answers to clients are rewritten by `lie`.
struct Byzantine {
    /// The real replica behind it, as clients reach it.
    inner: Arc<dyn NodeApi>,
    lie: Lie,
    me: ReplicaId,
    key: SigningKey,
    /// First answers, for `Lie::Stale`.
    kept: Mutex<HashMap<String, StateAnswer>>,
    /// Requests it was sent.
    calls: AtomicUsize,
}

impl Byzantine {
    /// Replica `i` of `cluster`, lying as `lie` says.
    fn new(cluster: &LocalCluster, i: usize, lie: Lie) -> Arc<Self> {
        Arc::new(Self {
            inner: cluster.members()[i].clone(),
            lie,
            me: ReplicaId(i as u16),
            key: cluster
                .signing_key_for_testing(i)
                .expect("a replica of the cluster"),
            kept: Mutex::default(),
            calls: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Counts the call, and never returns for `Lie::Hung`.
    async fn enter(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.lie == Lie::Hung {
            std::future::pending::<()>().await;
        }
    }

    /// A state of its own making: `entries` in a tree of their own, under a
    /// header like `like`'s with that tree's root, signed by itself (and
    /// carrying the others' signatures from the genuine certificate, which
    /// do not verify for the new header).
    fn forge(
        &self,
        like: &Certificate,
        entries: Vec<(Table, Vec<u8>, Option<Vec<u8>>)>,
    ) -> StateAnswer {
        let leaves = entries
            .iter()
            .filter_map(|(t, k, v)| {
                v.as_ref()
                    .map(|v| (smt::key_hash(t.id(), k), smt::value_hash(v)))
            })
            .collect();
        let tree = StateTree::from_leaves(leaves);
        let header = LedgerHeader {
            state_root: tree.root(),
            ..like.header.clone()
        };
        let mut certificate = Certificate::new(header.clone());
        for s in &like.signatures {
            if s.replica != self.me {
                certificate.signatures.push(s.clone());
            }
        }
        certificate.add(self.me, header.sign(&self.key));
        StateAnswer {
            certificate,
            entries: entries
                .into_iter()
                .map(|(table, key, value)| ProvenEntry {
                    proof: tree.prove(&smt::key_hash(table.id(), &key)),
                    table,
                    key,
                    value,
                })
                .collect(),
        }
    }

    /// A record made up by the liar: its own keys and capsule.
    fn made_up(record: &RecordInfo) -> RecordInfo {
        RecordInfo {
            record_key: vec![0x02; record.record_key.len()],
            capsule: vec![0x07; record.capsule.len()],
            cid: ContentId::from_sha256([0x66; 32]),
            ..record.clone()
        }
    }

    /// Rewrites a state answer as the lie says.
    fn rewrite(&self, what: &str, answer: StateAnswer) -> StateAnswer {
        if self.lie == Lie::Stale {
            return self
                .kept
                .lock()
                .unwrap()
                .entry(what.to_string())
                .or_insert(answer)
                .clone();
        }
        let mut answer = answer;
        let rewrite_record = matches!(self.lie, Lie::SwappedRecord | Lie::ForgedState);
        let rewrite_grant = matches!(
            self.lie,
            Lie::LoweredThreshold | Lie::ForgedState | Lie::Swallow
        );
        let mut changed = Vec::new();
        for e in &mut answer.entries {
            let Some(v) = &e.value else { continue };
            let new = match e.table {
                Table::Records if rewrite_record => {
                    Some(Self::made_up(&RecordInfo::from_bytes(v).unwrap()).to_bytes())
                }
                Table::Grants if rewrite_grant => {
                    let mut g = GrantInfo::from_bytes(v).unwrap();
                    match self.lie {
                        Lie::Swallow => {
                            g.status = GrantStatus::Revoked { at: g.granted };
                            g.erased_by = (0..4).map(ReplicaId).collect();
                        }
                        _ => g.threshold.m = 1,
                    }
                    Some(g.to_bytes())
                }
                _ => None,
            };
            if let Some(new) = new {
                e.value = Some(new);
                changed.push(true);
            }
        }
        if !changed.is_empty() && matches!(self.lie, Lie::ForgedState | Lie::Swallow) {
            // Proofs that hold: against a tree of its own, certified by itself.
            let entries = answer
                .entries
                .iter()
                .map(|e| (e.table, e.key.clone(), e.value.clone()))
                .collect();
            return self.forge(&answer.certificate, entries);
        }
        answer
    }

    /// A receipt of its own making for `tx`, certified by itself alone.
    fn fabricated(&self, tx: &SignedTransaction, like: &Certificate) -> CertifiedReceipt {
        let output = match &tx.body.call {
            Call::Revoke(r) => CallOutput::Revoked { grant: r.grant },
            Call::Grant(_) => CallOutput::Granted {
                grant: GrantId::derive(&tx.id()),
            },
            _ => CallOutput::Revoked {
                grant: GrantId([0; 32]),
            },
        };
        let receipt = Receipt {
            tx: tx.id(),
            context: rr_core::BlockContext {
                height: like.header.height + 1,
                time: like.header.time,
            },
            index: 0,
            outcome: Outcome::Ok(output),
        };
        let leaf = rr_core::merkle::leaf_hash(&receipt.to_bytes());
        let header = LedgerHeader {
            height: receipt.context.height,
            receipts_root: rr_core::merkle::root(&[leaf]),
            receipts: 1,
            parent: like.header.hash(),
            ..like.header.clone()
        };
        let mut certificate = Certificate::new(header.clone());
        certificate.add(self.me, header.sign(&self.key));
        CertifiedReceipt {
            receipt,
            proof: rr_core::merkle::prove(&[leaf], 0),
            certificate,
        }
    }
}

#[async_trait::async_trait]
impl NodeApi for Byzantine {
    async fn info(&self) -> Result<NodeInfo, NodeError> {
        self.enter().await;
        let mut info = self.inner.info().await?;
        if self.lie == Lie::NoFaults {
            info.replicas = 1;
            info.faults_tolerated = 0;
            info.replica_set =
                rr_core::cert::ReplicaSetInfo::new(vec![info.replica_set.keys()[2]]).unwrap();
        }
        Ok(info)
    }
    async fn head(&self) -> Result<Certificate, NodeError> {
        self.enter().await;
        self.inner.head().await
    }
    async fn submit(&self, tx: SignedTransaction) -> Result<CertifiedReceipt, NodeError> {
        self.enter().await;
        if self.lie == Lie::Swallow {
            // Not ordered at all: a receipt at once, before anyone else's.
            let head = self.inner.head().await?;
            return Ok(self.fabricated(&tx, &head));
        }
        if let (Lie::Denies, Call::RegisterRecord(r)) = (self.lie, &tx.body.call) {
            return Err(NodeError::BlobNotHeld { cid: r.cid });
        }
        self.inner.submit(tx).await
    }
    async fn receipt(&self, tx: TxId, auth: Authorization) -> Result<CertifiedReceipt, NodeError> {
        self.enter().await;
        if self.lie == Lie::Denies {
            return Err(NodeError::NotFound(format!("no transaction {tx}")));
        }
        self.inner.receipt(tx, auth).await
    }
    async fn deliver_fragment(&self, grant: GrantId, fragment: Vec<u8>) -> Result<(), NodeError> {
        self.enter().await;
        self.inner.deliver_fragment(grant, fragment).await
    }
    async fn retrieve(&self, tx: SignedTransaction) -> Result<Retrieval, NodeError> {
        self.enter().await;
        let Call::Retrieve(call) = &tx.body.call else {
            return self.inner.retrieve(tx).await;
        };
        let (id, grant) = (tx.id(), call.grant);
        let mut r = self.inner.retrieve(tx).await?;
        if self.lie == Lie::Slow {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Ok(r);
        }
        r.state = self.rewrite(&format!("retrieve {grant}"), r.state);
        match self.lie {
            Lie::FragmentUnderAnotherName => {
                if let Some(f) = r.fragment.take() {
                    let other = ReplicaId((self.me.0 + 1) % 4);
                    r.fragment = Some(SignedFragment::sign(
                        &self.key, &id, &grant, other, f.fragment,
                    ));
                }
            }
            Lie::JunkFragment => {
                if let Some(f) = r.fragment.take() {
                    let mut junk = f.fragment;
                    let last = junk.len() - 1;
                    junk[last] ^= 0x55;
                    r.fragment = Some(SignedFragment::sign(&self.key, &id, &grant, self.me, junk));
                }
            }
            Lie::ForgedState => {
                // A fragment it signs, for the record it made up.
                r.fragment = Some(SignedFragment::sign(
                    &self.key,
                    &id,
                    &grant,
                    self.me,
                    vec![0x09; 200],
                ));
            }
            _ => {}
        }
        Ok(r)
    }
    async fn record(&self, id: RecordId, auth: Authorization) -> Result<StateAnswer, NodeError> {
        self.enter().await;
        if self.lie == Lie::Denies {
            return Err(NodeError::UnknownRecord(id));
        }
        let a = self.inner.record(id, auth).await?;
        Ok(self.rewrite(&format!("record {id}"), a))
    }
    async fn grant(&self, id: GrantId, auth: Authorization) -> Result<StateAnswer, NodeError> {
        self.enter().await;
        if self.lie == Lie::Denies {
            return Err(NodeError::UnknownGrant(id));
        }
        let a = self.inner.grant(id, auth).await?;
        Ok(self.rewrite(&format!("grant {id}"), a))
    }
    async fn grants_of_record(
        &self,
        id: RecordId,
        auth: Authorization,
    ) -> Result<StateAnswer, NodeError> {
        self.enter().await;
        if self.lie == Lie::Denies {
            return Err(NodeError::UnknownRecord(id));
        }
        let a = self.inner.grants_of_record(id, auth).await?;
        Ok(self.rewrite(&format!("grants of {id}"), a))
    }
    async fn audit(&self, id: RecordId, auth: Authorization) -> Result<StateAnswer, NodeError> {
        self.enter().await;
        if self.lie == Lie::Denies {
            return Err(NodeError::UnknownRecord(id));
        }
        let a = self.inner.audit(id, auth).await?;
        Ok(self.rewrite(&format!("audit {id}"), a))
    }
    async fn listing(
        &self,
        account: AccountId,
        auth: Authorization,
    ) -> Result<StateAnswer, NodeError> {
        self.enter().await;
        if self.lie == Lie::Denies {
            return Err(NodeError::NotFound(format!("no account {account}")));
        }
        let a = self.inner.listing(account, auth).await?;
        Ok(self.rewrite(&format!("listing {account}"), a))
    }
    async fn put_blob(
        &self,
        data: ByteStream,
        auth: Authorization,
    ) -> Result<ContentId, NodeError> {
        self.enter().await;
        if self.lie == Lie::Denies {
            return Err(NodeError::Transport("connection reset".into()));
        }
        self.inner.put_blob(data, auth).await
    }
    async fn get_blob(&self, cid: ContentId) -> Result<ByteStream, NodeError> {
        self.enter().await;
        if self.lie == Lie::Denies {
            return Err(NodeError::NotFound(format!("no blob {cid} here")));
        }
        self.inner.get_blob(cid).await
    }
}

/// The cluster's members with replica `i` replaced by a liar.
fn with_liar(
    cluster: &LocalCluster,
    i: usize,
    lie: Lie,
) -> (Vec<Arc<dyn NodeApi>>, Arc<Byzantine>) {
    let liar = Byzantine::new(cluster, i, lie);
    let mut members = cluster.members();
    members[i] = liar.clone();
    (members, liar)
}

fn named(skipped: &[rr_node::SkippedReplica], i: u16, what: &str) -> bool {
    skipped
        .iter()
        .any(|s| s.replica == ReplicaId(i) && s.reason.contains(what))
}

const BODY: &[u8] = b"2026-11-23 MRI: no abnormality detected";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_substituted_or_made_up_record_is_refused_and_the_liar_named() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), 4).await;
    let nodes = nodes(&cluster);
    let (alice, bob, put, grant) = alice_shares(&cluster, BODY).await;
    for lie in [Lie::SwappedRecord, Lie::ForgedState] {
        let genuine = nodes[1].record(&put.record_id).unwrap();
        // Replica 0 lies: it is the first one a read asks.
        let (members, _liar) = with_liar(&cluster, 0, lie);
        let alice = client(&cluster, members.clone(), twin(alice.identity()));
        let read = read_record(&alice, put.record_id).await;
        assert_eq!(read.value.as_ref(), Some(&genuine), "{lie:?}");
        assert_eq!(read.replica, ReplicaId(1), "{lie:?}");
        assert!(
            named(&read.skipped, 0, "does not hold"),
            "{lie:?}: {:?}",
            read.skipped
        );
        // Bob, through the same replicas, decrypts the genuine record: the
        // record and grant come from certified state, never from the liar.
        // (The honest replicas answer a little late, so the liar's answer
        // is looked at, refused and named.)
        let mut members = members;
        for (i, m) in members.iter_mut().enumerate().skip(1) {
            *m = Byzantine::new(&cluster, i, Lie::Slow);
        }
        let bob = client(&cluster, members, twin(&bob));
        let (stream, report) = bob.retrieve_with_report(grant, treatment()).await.unwrap();
        assert_eq!(collect(stream).await.unwrap(), BODY, "{lie:?}");
        assert!(!report.used.contains(&ReplicaId(0)), "{lie:?}: {report:?}");
        assert!(
            named(&report.skipped, 0, "does not hold"),
            "{lie:?}: {report:?}"
        );
    }
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lowered_threshold_or_f_zero_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), 4).await;
    let nodes = nodes(&cluster);
    let alice_id = Identity::generate(&Umbral);
    let bob = Identity::generate(&Umbral);
    // The liar says there is one replica and f = 0: the grant is still
    // 2 of 4, from the trusted set.
    let (members, _liar) = with_liar(&cluster, 0, Lie::NoFaults);
    let alice = client(&cluster, members, twin(&alice_id));
    let (put, grant) = share(&alice, &bob, BODY).await;
    assert_eq!(nodes[3].grant(&grant).unwrap().threshold.m, 2);
    // A threshold asked below f + 1 is refused by the contracts, with its
    // own code.
    let err = alice
        .grant(
            put.record_id,
            &bob.card(&Umbral),
            GrantOptions {
                threshold: Some(1),
                ..options()
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("threshold_too_low"), "{err}");

    // A liar that lowers the grant's threshold to 1 is caught by the proof.
    let (members, _liar) = with_liar(&cluster, 0, Lie::LoweredThreshold);
    let bob_client = client(&cluster, members, twin(&bob));
    let read = read_grant(&bob_client, grant).await;
    assert_eq!(read.value.unwrap().threshold.m, 2);
    assert!(
        named(&read.skipped, 0, "does not hold"),
        "{:?}",
        read.skipped
    );
    let (stream, report) = bob_client
        .retrieve_with_report(grant, treatment())
        .await
        .unwrap();
    assert_eq!(collect(stream).await.unwrap(), BODY);
    assert_eq!(
        report.used.len(),
        2,
        "m = 2 fragments opened it: {report:?}"
    );
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragment_under_another_name_or_junk_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), 4).await;
    let (_alice, bob, _put, grant) = alice_shares(&cluster, BODY).await;
    for (i, lie, why) in [
        (0, Lie::FragmentUnderAnotherName, "claims another replica"),
        (2, Lie::FragmentUnderAnotherName, "claims another replica"),
        (1, Lie::JunkFragment, "failed verification"),
    ] {
        let (members, _liar) = with_liar(&cluster, i, lie);
        let bob = client(&cluster, members, twin(&bob));
        let (stream, report) = bob.retrieve_with_report(grant, treatment()).await.unwrap();
        assert_eq!(collect(stream).await.unwrap(), BODY, "{lie:?}");
        assert!(
            !report.used.contains(&ReplicaId(i as u16)),
            "{lie:?}: {report:?}"
        );
        // The liar is named when its answer came in before the client had
        // enough (with m + f = 3 fragments it need not wait for all four).
        if report
            .skipped
            .iter()
            .any(|s| s.replica == ReplicaId(i as u16))
        {
            assert!(named(&report.skipped, i as u16, why), "{lie:?}: {report:?}");
        }
    }
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swallowed_revoke_with_a_fabricated_receipt_sent_first_is_not_believed() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), 4).await;
    let nodes = nodes(&cluster);
    let (alice, bob, put, grant) = alice_shares(&cluster, BODY).await;
    let (members, liar) = with_liar(&cluster, 0, Lie::Swallow);
    let alice = client(&cluster, members.clone(), twin(alice.identity()));

    // The revoke, as the client sends it: to every replica. The liar answers
    // first with a receipt certified by itself alone: refused, named; the
    // outcome is the honest replicas' certified one.
    let tx = alice
        .identity()
        .sign(Call::Revoke(rr_core::Revoke { grant }));
    let submitted = alice.replicas().submit(tx).await.unwrap();
    assert_eq!(
        submitted.receipt.outcome,
        Outcome::Ok(CallOutput::Revoked { grant })
    );
    assert_ne!(submitted.replica, ReplicaId(0));
    assert!(
        named(&submitted.skipped, 0, "does not hold"),
        "{:?}",
        submitted.skipped
    );
    assert!(liar.calls() >= 1);
    // Every honest ledger has it revoked.
    for n in &nodes[1..] {
        eventually("the revoke commits everywhere", || {
            matches!(n.grant(&grant).unwrap().status, GrantStatus::Revoked { .. })
        })
        .await;
    }
    // The erasure confirmations it claims (all four, at once) are not
    // believed: the count the client sees is the certified one.
    let read = read_grant(&alice, grant).await;
    assert!(
        named(&read.skipped, 0, "does not hold"),
        "{:?}",
        read.skipped
    );
    let report = alice
        .revoke_with_report(grant, Duration::from_secs(30))
        .await;
    // A second revoke is refused (already revoked) by the certified ledger.
    assert!(report.unwrap_err().to_string().contains("already revoked"));
    eventually("three replicas confirm their erasure", || {
        nodes[1].grant(&grant).unwrap().erased_by.len() >= 3
    })
    .await;

    // Bob, through the same replicas (the liar among them), is refused.
    let bob = client(&cluster, members, twin(&bob));
    let err = match bob.retrieve(grant, treatment()).await {
        Ok(_) => panic!("a revoked grant must not retrieve"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("revoked"), "{err}");
    let _ = put;
    cluster.shutdown().await.unwrap();
}

/// `alice`'s verified read of record `id`, through her replicas.
async fn read_record(alice: &Client<Umbral>, id: RecordId) -> Verified<Option<RecordInfo>> {
    let auth = alice.authorization(Authorization::record_scope(&id));
    alice.replicas().record(id, auth).await.unwrap()
}

/// `alice`'s verified read of grant `id`, through her replicas.
async fn read_grant(alice: &Client<Umbral>, id: GrantId) -> Verified<Option<GrantInfo>> {
    let auth = alice.authorization(Authorization::grant_scope(&id));
    alice.replicas().grant(id, auth).await.unwrap()
}

fn skipped_by(skipped: &[rr_node::SkippedReplica], i: u16) -> bool {
    skipped.iter().any(|s| s.replica == ReplicaId(i))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_denying_what_it_holds_hides_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), 4).await;
    let nodes = nodes(&cluster);
    // Replica 0, the first a read asks, denies everything: a false 404 is
    // what a stranger or an unknown id gets, so it cannot be told from the
    // truth by itself. The client must ask on.
    let (members, liar) = with_liar(&cluster, 0, Lie::Denies);
    let alice = client(&cluster, members.clone(), Identity::generate(&Umbral));
    let bob = Identity::generate(&Umbral);
    // Its admission refusal does not stop the register: the others order it.
    let (put, grant) = share(&alice, &bob, BODY).await;
    assert!(liar.calls() > 0, "the liar was asked");
    // The real replica behind the liar commits the record too and, lacking
    // its blob (the upload never reached it), fetches it from its peers
    // when the registration commits: the path that also brings back a copy
    // an upload sweep deleted while the registration was being ordered.
    eventually("replica 0 commits the record", || {
        nodes[0].record(&put.record_id).is_ok()
    })
    .await;
    let held = nodes[1].get_blob(put.cid).await.unwrap();
    let held = collect(held).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = nodes[0].get_blob(put.cid).await {
            if collect(s).await.ok().as_ref() == Some(&held) {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica 0 never fetched the blob it missed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let record = read_record(&alice, put.record_id).await;
    assert_eq!(
        record.value.as_ref(),
        Some(&nodes[1].record(&put.record_id).unwrap())
    );
    assert_ne!(record.replica, ReplicaId(0));
    assert!(skipped_by(&record.skipped, 0), "{:?}", record.skipped);

    let granted = read_grant(&alice, grant).await;
    let granted = granted.value.expect("the grant is there");
    assert_eq!(granted.status, GrantStatus::Active);
    assert_eq!(granted.grantee, bob.account());

    let receipt = alice
        .replicas()
        .receipt(
            put.tx,
            alice.authorization(Authorization::receipt_scope(&put.tx)),
        )
        .await
        .unwrap();
    assert!(matches!(receipt.receipt.outcome, Outcome::Ok(_)));
    assert!(skipped_by(&receipt.skipped, 0), "{:?}", receipt.skipped);

    let trail = alice.audit(put.record_id).await.unwrap();
    assert!(trail
        .iter()
        .any(|e| e.action == rr_core::AuditAction::Grant));
    assert_eq!(alice.grants_of(put.record_id).await.unwrap().len(), 1);
    let (records, _) = alice.listing().await.unwrap();
    assert!(records.iter().any(|r| r.id == put.record_id));

    // Bob reads the record through the same replicas: the blob the liar
    // says it lacks comes from another.
    let bob = client(&cluster, members, bob);
    let stream = bob.retrieve(grant, treatment()).await.unwrap();
    assert_eq!(collect(stream).await.unwrap(), BODY);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_answers_are_never_believed() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), 4).await;
    let (alice, bob, put, grant) = alice_shares(&cluster, BODY).await;
    // Replica 0 keeps answering what it answered first (a replica cut off,
    // or restarted from an old copy).
    let (members, _liar) = with_liar(&cluster, 0, Lie::Stale);
    let alice = client(&cluster, members.clone(), twin(alice.identity()));
    let before = read_grant(&alice, grant).await;
    assert_eq!(before.replica, ReplicaId(0));
    assert_eq!(before.value.unwrap().status, GrantStatus::Active);
    alice.revoke(grant).await.unwrap();
    // After the revoke the client has seen a newer height: the kept answer
    // is refused as stale, and the fresh one says revoked. (A new replica
    // set view, asking replica 0 first again, with what this client saw.)
    let seen = alice.replicas().seen();
    let fresh = replicas(&cluster, members.clone()).with_seen(seen);
    let after = fresh
        .grant(
            grant,
            alice.authorization(Authorization::grant_scope(&grant)),
        )
        .await
        .unwrap();
    assert!(
        matches!(after.value.unwrap().status, GrantStatus::Revoked { .. }),
        "a stale 'active' was believed"
    );
    assert!(
        named(&after.skipped, 0, "older than height"),
        "{:?}",
        after.skipped
    );
    // The audit trail too: never shorter than what the client saw.
    let trail = alice.audit(put.record_id).await.unwrap();
    assert!(trail
        .iter()
        .any(|e| e.action == rr_core::AuditAction::Revoke));
    let bob = client(&cluster, members, twin(&bob));
    assert!(bob.retrieve(grant, treatment()).await.is_err());
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_retrieve_replayed_after_expiry_gives_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), 4).await;
    let nodes = nodes(&cluster);
    let alice = cluster.client(Identity::generate(&Umbral));
    let bob_id = Identity::generate(&Umbral);
    let put = alice
        .put(byte_stream_of(BODY.to_vec()), "text/plain")
        .await
        .unwrap();
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let expires = now.plus_millis(5_000);
    let grant = alice
        .grant(
            put.record_id,
            &bob_id.card(&Umbral),
            GrantOptions {
                expires_at: Some(expires),
                ..options()
            },
        )
        .await
        .unwrap();
    let bob = cluster.client(twin(&bob_id));
    // Bob retrieves in time; the call (signed once) is kept by an attacker.
    let tx = bob_id.sign(Call::Retrieve(rr_core::Retrieve {
        grant,
        purpose: treatment(),
    }));
    let first = bob.replicas().retrieve(tx.clone()).await.unwrap();
    assert!(first.fragments.len() >= 2);
    // After the expiry, the same call again: its receipt is the original
    // (allowed, at its old height), but no replica gives a fragment.
    let left = expires
        .0
        .saturating_sub(Timestamp::from_system_time(std::time::SystemTime::now()).0);
    tokio::time::sleep(Duration::from_millis(left + 200)).await;
    let height = nodes[0].status().height;
    let err = bob.replicas().retrieve(tx.clone()).await.unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    for n in &nodes {
        let answer = n.retrieve(tx.clone()).await.unwrap();
        assert_eq!(answer.receipt.receipt, first.receipt.receipt);
        assert!(answer.fragment.is_none(), "a fragment after expiry");
    }
    // It was not ordered again, and the audit trail has one retrieval.
    let trail = alice.audit(put.record_id).await.unwrap();
    assert_eq!(
        trail
            .iter()
            .filter(|e| e.action == rr_core::AuditAction::Retrieve)
            .count(),
        1
    );
    assert!(nodes[0].status().height >= height);
    // The fragments of the expired grant are erased, and the erasures
    // confirmed on the ledger like a revocation's.
    for (i, n) in nodes.iter().enumerate() {
        eventually(&format!("replica {i} erases the expired fragment"), || {
            !n.holds_fragment(&grant).unwrap()
        })
        .await;
    }
    eventually("the erasures are confirmed", || {
        nodes[0].grant(&grant).unwrap().erased_by.len() >= 3
    })
    .await;
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_replica_costs_at_most_one_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), 4).await;
    let deadline = Duration::from_millis(1_500);
    let (members, hung) = with_liar(&cluster, 0, Lie::Hung);
    let hurry = |members: Vec<Arc<dyn NodeApi>>, id: Identity<Umbral>| {
        Client::new(
            replicas(&cluster, members)
                .with_deadline(deadline)
                .with_order_timeout(deadline * 4),
            Arc::new(Umbral),
            id,
        )
    };
    let alice = hurry(members.clone(), Identity::generate(&Umbral));
    let bob_id = Identity::generate(&Umbral);
    // Each operation completes although replica 0 (asked first by reads)
    // never answers; a generous bound only guards against hanging forever.
    let bound = deadline * 10;
    let put = tokio::time::timeout(
        bound,
        alice.put(byte_stream_of(BODY.to_vec()), "text/plain"),
    )
    .await
    .expect("put does not hang")
    .unwrap();
    let report = tokio::time::timeout(
        bound,
        alice.grant_with_report(put.record_id, &bob_id.card(&Umbral), options()),
    )
    .await
    .expect("grant does not hang")
    .unwrap();
    assert!(
        report.pending.iter().any(|p| p.replica == ReplicaId(0)),
        "the hung replica's fragment is kept to deliver later: {report:?}"
    );
    let bob = hurry(members.clone(), twin(&bob_id));
    let (stream, got) =
        tokio::time::timeout(bound, bob.retrieve_with_report(report.grant, treatment()))
            .await
            .expect("get does not hang")
            .unwrap();
    assert_eq!(collect(stream).await.unwrap(), BODY);
    assert!(!got.used.contains(&ReplicaId(0)));
    // After one deadline, reads ask the hung replica last: a read is
    // answered without asking it again.
    let asked = hung.calls();
    let read = tokio::time::timeout(
        deadline / 2,
        alice.replicas().record(
            put.record_id,
            alice.authorization(Authorization::record_scope(&put.record_id)),
        ),
    )
    .await
    .expect("a read after the first deadline does not wait on the hung replica")
    .unwrap();
    assert!(read.value.is_some());
    assert_eq!(hung.calls(), asked, "the hung replica was asked again");
    tokio::time::timeout(bound * 3, alice.revoke(report.grant))
        .await
        .expect("revoke does not hang")
        .unwrap();
    let trail = tokio::time::timeout(bound, alice.audit(put.record_id))
        .await
        .expect("the audit read does not hang")
        .unwrap();
    assert!(trail.len() >= 4);
    cluster.shutdown().await.unwrap();
}
