//! Node assembly: one place names every pluggable choice.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use rr_consensus::{Clock, Solo, SoloConfig, SystemClock, TxVerifier};
use rr_core::{
    AccountId, AuditEntry, BlobError, BlobStore, BlockContext, CallOutput, ConsensusEngine,
    ConsensusError, ContractExecutor, DecodeError, Digest, EngineStatus, ErrorCode, GrantId,
    GrantInfo, Outcome, PreError, PreScheme, Receipt, RecordId, RecordInfo, Refusal, ReplicaId,
    SchemeId, SignatureError, SignedTransaction, VerifiedTransaction, WireEncoding,
};
use rr_pre::Umbral;
use rr_storage::{FsBlobStore, FsBlobStoreConfig, Ledger, LedgerError};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::contracts::{usability, ContractsConfig, NativeContracts};
use crate::fragments::{FragmentStore, FragmentStoreError};

const TARGET: &str = "rr_node";

/// Names the backends a node is assembled from, in the spirit of openraft's
/// `RaftTypeConfig`: [`Node`] is generic over it, so the hot path is
/// monomorphized and a researcher swaps a backend by naming another type.
pub trait NodeTypes: Send + Sync + Sized + 'static {
    /// Orders and commits transactions.
    type Engine: ConsensusEngine;
    /// Proxy re-encryption scheme.
    type Pre: PreScheme;
    /// Executes blocks (the engine drives it; named here so one place lists every choice).
    type Executor: ContractExecutor;
    /// Stores ciphertext.
    type Blobs: BlobStore;
}

/// The embedded default: one replica ([`Solo`]), the native contracts, and a
/// filesystem blob store, all in one data directory. `P` is the node's own
/// scheme, the default for new records (Umbral unless named, as in
/// `DevNode<Recrypt>`); the node serves records of every compiled-in scheme
/// whatever `P` is. Open one with [`Node::open_dev`] (Umbral) or
/// [`Node::open_dev_with_scheme`].
pub struct DevNode<P = Umbral>(PhantomData<fn() -> P>);

impl<P> std::fmt::Debug for DevNode<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevNode<{}>", std::any::type_name::<P>())
    }
}

impl<P: PreScheme> NodeTypes for DevNode<P> {
    type Engine = Solo<NativeContracts>;
    type Pre = P;
    type Executor = NativeContracts;
    type Blobs = FsBlobStore;
}

/// Errors of node operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The transaction bytes do not decode.
    #[error("malformed transaction: {0}")]
    BadTransaction(#[from] DecodeError),
    /// The signature does not verify.
    #[error(transparent)]
    BadSignature(#[from] SignatureError),
    /// The call was ordered and refused; its receipt is on the ledger.
    #[error("{0}")]
    Refused(Refusal),
    /// The engine failed.
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The key fragment store failed.
    #[error(transparent)]
    Fragments(#[from] FragmentStoreError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A proxy re-encryption step failed.
    #[error(transparent)]
    Pre(#[from] PreError),
    /// No such record.
    #[error("no record {0} on this ledger")]
    UnknownRecord(RecordId),
    /// No such grant.
    #[error("no grant {0} on this ledger")]
    UnknownGrant(GrantId),
    /// The delivered fragment does not match the grant's commitment.
    #[error("the key fragment delivered for grant {grant} does not match the commitment for {replica} on the ledger; it was not stored")]
    FragmentMismatch {
        /// The grant.
        grant: GrantId,
        /// This replica.
        replica: ReplicaId,
    },
    /// A sealed key fragment did not open with this replica's sealing key.
    #[error("{replica} cannot take the key fragment of grant {grant}: {source}")]
    Sealed {
        /// The grant.
        grant: GrantId,
        /// This replica.
        replica: ReplicaId,
        /// Why.
        #[source]
        source: crate::sealing::SealError,
    },
    /// This replica holds no fragment for the grant.
    #[error("{replica} holds no key fragment for grant {grant}: the granting client has not delivered it (deliver it again), or the grant was revoked")]
    FragmentMissing {
        /// The grant.
        grant: GrantId,
        /// This replica.
        replica: ReplicaId,
    },
    /// The record uses a scheme this node was not built with.
    #[error("record {record} uses scheme {found}; this node serves {served}")]
    SchemeMismatch {
        /// The record.
        record: RecordId,
        /// Its scheme.
        found: SchemeId,
        /// The node's scheme.
        served: SchemeId,
    },
    /// The call is not the kind the operation expects.
    #[error("expected a {expected} call, got a {found} call")]
    WrongCall {
        /// Expected call.
        expected: &'static str,
        /// Found call.
        found: &'static str,
    },
    /// A query's authorization is missing, malformed, expired or forged.
    #[error("not authenticated: {0}")]
    Unauthorized(String),
    /// The caller is authenticated but may not see or do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Nothing of that kind with that id (a transaction never committed, ...).
    #[error("{0}")]
    NotFound(String),
    /// A remote node answered with an error this client has no variant for.
    #[error("{message} ({code}, HTTP {status})")]
    Remote {
        /// HTTP status.
        status: u16,
        /// Stable code.
        code: String,
        /// Message.
        message: String,
    },
    /// The node could not be reached or answered something unreadable.
    #[error("{0}")]
    Transport(String),
    /// Bad configuration or data directory.
    #[error("{0}")]
    Setup(String),
}

impl From<rr_core::TxError> for NodeError {
    fn from(e: rr_core::TxError) -> Self {
        match e {
            rr_core::TxError::Malformed(d) => NodeError::BadTransaction(d),
            rr_core::TxError::BadSignature(s) => NodeError::BadSignature(s),
            other => NodeError::Setup(other.to_string()),
        }
    }
}

impl NodeError {
    /// The stable refusal code, if the call was refused by the contracts.
    pub fn refusal_code(&self) -> Option<ErrorCode> {
        match self {
            NodeError::Refused(r) => Some(r.code),
            _ => None,
        }
    }
}

/// What a node tells clients about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// This replica.
    pub replica: ReplicaId,
    /// Replicas n.
    pub replicas: u16,
    /// Byzantine faults tolerated f.
    pub faults_tolerated: u16,
    /// Scheme of new records.
    pub scheme: SchemeId,
    /// Every scheme this node serves records of.
    pub schemes: Vec<SchemeInfo>,
    /// Ledger status.
    pub status: EngineStatus,
    /// The replica set, in replica order: addresses and public keys
    /// (replica and sealing). Empty on a single dev node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<crate::cluster::Peer>,
}

/// A scheme a node serves, and what its threshold means.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemeInfo {
    /// Id.
    pub id: SchemeId,
    /// Name.
    pub name: String,
    /// Whether any one replica can re-encrypt on its own (threshold 1).
    pub single_proxy: bool,
    /// What that means, for people.
    pub note: String,
}

/// One replica's capsule fragment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapsuleFragment {
    /// The replica that re-encrypted.
    pub replica: ReplicaId,
    /// The fragment, encoded by the record's scheme.
    #[serde(with = "rr_core::codec::hex_bytes")]
    pub fragment: Vec<u8>,
}

/// What a replica answers to an allowed retrieval: the receipt, the record
/// and grant, and its capsule fragment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retrieval {
    /// The retrieval's receipt.
    pub receipt: Receipt,
    /// The record.
    pub record: RecordInfo,
    /// The grant used.
    pub grant: GrantInfo,
    /// Capsule fragments (one per replica that answered).
    pub capsule_fragments: Vec<CapsuleFragment>,
    /// Replicas that were asked and gave no fragment, with why (down, refused,
    /// no fragment held). Empty from a single replica.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedReplica>,
    /// Cluster replicas' signatures over `receipt`: each vouches that the
    /// retrieval committed with this outcome on its ledger (a client of a
    /// cluster checks f + 1 of them). Empty from a dev node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receipt_signatures: Vec<ReceiptSignature>,
}

/// A replica's ed25519 signature over a receipt (domain-separated, over
/// the receipt's canonical bytes), with its replica key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptSignature {
    /// The replica that signed.
    pub replica: ReplicaId,
    /// The signature (64 bytes).
    #[serde(with = "rr_core::codec::hex_bytes")]
    pub signature: Vec<u8>,
}

const RECEIPT_DOMAIN: &[u8] = b"resilient-records/replica-receipt/v1\0";

impl ReceiptSignature {
    fn message(receipt: &Receipt) -> Vec<u8> {
        let mut m = RECEIPT_DOMAIN.to_vec();
        m.extend_from_slice(&receipt.to_bytes());
        m
    }

    /// Replica `replica` signs `receipt` with its replica key.
    pub fn sign(key: &ed25519_dalek::SigningKey, replica: ReplicaId, receipt: &Receipt) -> Self {
        use ed25519_dalek::Signer;
        Self {
            replica,
            signature: key.sign(&Self::message(receipt)).to_bytes().to_vec(),
        }
    }

    /// Whether this is `key`'s valid (strict) signature over `receipt`.
    pub fn verify(&self, key: &ed25519_dalek::VerifyingKey, receipt: &Receipt) -> bool {
        let Ok(bytes) = <[u8; 64]>::try_from(self.signature.as_slice()) else {
            return false;
        };
        key.verify_strict(
            &Self::message(receipt),
            &ed25519_dalek::Signature::from_bytes(&bytes),
        )
        .is_ok()
    }
}

/// A replica a multi-replica operation went on without, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedReplica {
    /// The replica.
    pub replica: ReplicaId,
    /// What went wrong, for people.
    pub reason: String,
}

/// Decoded capsules and key fragments of recently used grants. Decoding them
/// (point decompression, the capsule's own check) costs more than the
/// re-encryption itself, and a grant is typically used more than once. Bounded;
/// an entry is dropped when its grant is revoked or its fragment replaced.
struct DecodedCache<P: PreScheme> {
    entries: std::sync::Mutex<std::collections::HashMap<GrantId, Decoded<P>>>,
}

type Decoded<P> = Arc<(<P as PreScheme>::Capsule, <P as PreScheme>::VerifiedKeyFrag)>;

impl<P: PreScheme> Default for DecodedCache<P> {
    fn default() -> Self {
        Self {
            entries: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl<P: PreScheme> DecodedCache<P> {
    /// Most grants kept decoded (a few hundred bytes each).
    const CAPACITY: usize = 4096;

    fn get(&self, grant: &GrantId) -> Option<Decoded<P>> {
        self.entries.lock().expect("cache lock").get(grant).cloned()
    }

    fn insert(&self, grant: GrantId, value: Decoded<P>) {
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.len() >= Self::CAPACITY {
            entries.clear();
        }
        entries.insert(grant, value);
    }

    fn forget(&self, grant: &GrantId) {
        self.entries.lock().expect("cache lock").remove(grant);
    }
}

/// The parts a node is assembled from.
pub struct NodeParts<T: NodeTypes> {
    /// The engine (already started on `ledger`).
    pub engine: T::Engine,
    /// The scheme.
    pub pre: T::Pre,
    /// The blob store.
    pub blobs: T::Blobs,
    /// The ledger the engine commits to.
    pub ledger: Arc<Ledger>,
    /// This replica's fragment store.
    pub fragments: FragmentStore,
    /// This replica's id.
    pub replica: ReplicaId,
    /// The key this replica signs its erasure confirmations with (its
    /// account in `contracts.replica_accounts`); `None` on a dev node.
    pub replica_key: Option<ed25519_dalek::SigningKey>,
    /// The key sealed key fragments are opened with and fragments are kept
    /// encrypted at rest under; `None` on a dev node (fragments arrive
    /// unsealed over its one connection and are stored as they are).
    pub sealing: Option<crate::sealing::SealingKey>,
    /// The replica set (public), as [`NodeInfo::peers`] reports it.
    pub peers: Vec<crate::cluster::Peer>,
    /// Contract configuration (the same the executor runs with).
    pub contracts: ContractsConfig,
    /// Schemes this replica re-encrypts for, besides `pre` (records carry
    /// their scheme id; `rr_pre::Schemes::all()` serves every compiled-in one).
    pub schemes: rr_pre::Schemes,
}

/// A replica: engine, scheme, blob store, ledger and key fragments.
pub struct Node<T: NodeTypes> {
    engine: Arc<T::Engine>,
    pre: Arc<T::Pre>,
    blobs: Arc<T::Blobs>,
    ledger: Arc<Ledger>,
    fragments: Arc<FragmentStore>,
    decoded: Arc<DecodedCache<T::Pre>>,
    schemes: Arc<rr_pre::Schemes>,
    replica: ReplicaId,
    replica_key: Option<Arc<ed25519_dalek::SigningKey>>,
    confirming: Arc<std::sync::Mutex<std::collections::HashSet<GrantId>>>,
    /// Blob copies being fetched from the peers, so that concurrent reads of
    /// a damaged copy, or the start-up check and the follower, fetch once.
    repairing: Arc<std::sync::Mutex<std::collections::HashSet<rr_core::ContentId>>>,
    sealing: Option<Arc<crate::sealing::SealingKey>>,
    peers: Vec<crate::cluster::Peer>,
    contracts: ContractsConfig,
    /// Checks submitted calls' signatures, concurrent ones as one batch;
    /// started on first use (inside the runtime that serves the node).
    verifier: std::sync::OnceLock<TxVerifier>,
}

/// Most submitted calls checked in one signature batch.
const VERIFY_BATCH: usize = 64;

impl<T: NodeTypes> std::fmt::Debug for Node<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("replica", &self.replica)
            .field("ledger", &self.ledger)
            .finish()
    }
}

/// Settings of a one-replica development node.
#[derive(Clone, Debug)]
pub struct DevConfig {
    /// Data directory: `ledger.redb`, `fragments.redb`, `blobs/`.
    pub data_dir: PathBuf,
    /// Engine settings.
    pub solo: SoloConfig,
    /// Largest blob accepted (default 16 GiB).
    pub max_blob_size: u64,
}

impl DevConfig {
    /// Defaults for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            solo: SoloConfig::default(),
            max_blob_size: 16 << 30,
        }
    }
}

impl Node<DevNode> {
    /// Opens (or creates) a one-replica node in `config.data_dir` with the
    /// system clock, Umbral as the scheme of new records. Must be called
    /// inside a tokio runtime.
    pub async fn open_dev(config: DevConfig) -> Result<Arc<Self>, NodeError> {
        Self::open_dev_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Like [`Node::open_dev`] with a chosen clock (tests move time with
    /// `rr_consensus::ManualClock`).
    pub async fn open_dev_with_clock(
        config: DevConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, NodeError> {
        Node::open_dev_with_scheme(config, Umbral, clock).await
    }
}

impl<P: PreScheme> Node<DevNode<P>> {
    /// Like [`Node::open_dev_with_clock`] with `pre` as the node's own
    /// scheme: the one [`NodeInfo::scheme`] names as the default for new
    /// records, served on the typed, cached path. Records of every other
    /// compiled-in scheme are served too. The data directory may hold
    /// records of any scheme, whichever `pre` it was opened with before.
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use rr_core::SchemeId;
    /// use rr_node::{DevConfig, Node};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let clock = std::sync::Arc::new(rr_consensus::SystemClock);
    /// let node = Node::open_dev_with_scheme(DevConfig::new(dir.path()), rr_pre::Recrypt, clock).await?;
    /// assert_eq!(node.info().scheme, SchemeId::RECRYPT);
    /// assert_eq!(node.info().schemes.len(), 2);
    /// node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open_dev_with_scheme(
        config: DevConfig,
        pre: P,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, NodeError> {
        let dir = &config.data_dir;
        let (ledger, fragments, blobs) = open_stores(dir, config.max_blob_size)?;
        let schemes = rr_pre::Schemes::all();
        let contracts = ContractsConfig {
            schemes: schemes.ids(),
            ..ContractsConfig::default()
        };
        let engine = Solo::start(
            ledger.clone(),
            Arc::new(NativeContracts::new(contracts.clone())),
            clock,
            config.solo.clone(),
        )?;
        let node = Node::assemble(NodeParts {
            engine,
            pre,
            blobs,
            ledger,
            fragments,
            replica: ReplicaId(0),
            replica_key: None,
            sealing: None,
            peers: Vec::new(),
            contracts,
            schemes,
        })?;
        info!(target: TARGET, dir = %dir.display(), height = node.status().height, scheme = P::ID.name(), "dev node open");
        Ok(Arc::new(node))
    }
}

impl<T: NodeTypes> Node<T> {
    /// Assembles a node from its parts, then erases any key fragment whose
    /// grant was revoked while the node was down (so it never serves one).
    pub fn assemble(parts: NodeParts<T>) -> Result<Self, NodeError> {
        let node = Self {
            engine: Arc::new(parts.engine),
            pre: Arc::new(parts.pre),
            blobs: Arc::new(parts.blobs),
            ledger: parts.ledger,
            fragments: Arc::new(parts.fragments),
            decoded: Arc::new(DecodedCache::default()),
            schemes: Arc::new(parts.schemes),
            replica: parts.replica,
            replica_key: parts.replica_key.map(Arc::new),
            confirming: Arc::default(),
            repairing: Arc::default(),
            sealing: parts.sealing.map(Arc::new),
            peers: parts.peers,
            contracts: parts.contracts,
            verifier: std::sync::OnceLock::new(),
        };
        for grant in node.fragments.grants()? {
            let keep = matches!(
                node.ledger.grant(&grant)?,
                Some(g) if matches!(g.status, rr_core::GrantStatus::Active)
            );
            if !keep {
                node.fragments.erase(&grant)?;
                info!(target: TARGET, grant = %grant.short(), "erased key fragment of a revoked grant");
            }
        }
        Ok(node)
    }

    /// This replica.
    pub fn replica(&self) -> ReplicaId {
        self.replica
    }

    /// The scheme.
    pub fn pre(&self) -> &Arc<T::Pre> {
        &self.pre
    }

    /// The blob store.
    pub fn blobs(&self) -> &Arc<T::Blobs> {
        &self.blobs
    }

    /// The ledger (read-only use: queries).
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Ledger status.
    pub fn status(&self) -> EngineStatus {
        self.engine.status()
    }

    /// Replica set, scheme and status.
    pub fn info(&self) -> NodeInfo {
        let status = self.engine.status();
        NodeInfo {
            replica: self.replica,
            replicas: status.replicas,
            faults_tolerated: status.faults_tolerated,
            scheme: T::Pre::ID,
            schemes: self
                .contracts
                .schemes
                .iter()
                .filter_map(|id| self.schemes.get(*id))
                .map(|s| SchemeInfo {
                    id: s.id(),
                    name: s.name().to_string(),
                    single_proxy: s.single_proxy(),
                    note: if s.single_proxy() {
                        "single proxy: threshold is 1, any one replica can re-encrypt a grant on its own".into()
                    } else {
                        "threshold m of n: fewer than m replicas cannot re-encrypt".into()
                    },
                })
                .collect(),
            status,
            peers: self.peers.clone(),
        }
    }

    /// Decodes and verifies a transaction (off the async runtime), orders it,
    /// and returns its receipt, refused or not. After a revocation commits,
    /// this replica erases its fragment before answering.
    pub async fn submit_bytes(&self, bytes: Vec<u8>) -> Result<Receipt, NodeError> {
        let tx = SignedTransaction::from_bytes(&bytes)?;
        self.submit(tx).await
    }

    /// Checks a submitted call's signature off the async runtime, in one
    /// ed25519 batch with whatever other calls are being submitted meanwhile
    /// (the same verdict as alone, for about half the work under load).
    async fn verify(&self, tx: SignedTransaction) -> Result<VerifiedTransaction, NodeError> {
        let verifier = self.verifier.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            TxVerifier::start(VERIFY_BATCH, cores)
        });
        Ok(verifier.verify(tx).await?)
    }

    /// Verifies (off the async runtime), orders and executes a transaction.
    pub async fn submit(&self, tx: SignedTransaction) -> Result<Receipt, NodeError> {
        let verified = self.verify(tx).await?;
        self.order(verified).await
    }

    /// Orders and executes a verified transaction.
    async fn order(&self, verified: VerifiedTransaction) -> Result<Receipt, NodeError> {
        // Ordering and the post-commit erasure run in their own task, so a
        // caller that stops waiting (a dropped connection, a timeout) cannot
        // leave a revoked grant's fragment behind.
        let (engine, fragments, decoded) = (
            self.engine.clone(),
            self.fragments.clone(),
            self.decoded.clone(),
        );
        let receipt = tokio::spawn(async move {
            let receipt = engine.submit(verified).await?;
            if let Outcome::Ok(CallOutput::Revoked { grant }) = &receipt.outcome {
                decoded.forget(grant);
                if fragments.erase(grant)? {
                    info!(target: TARGET, grant = %grant.short(), "revoked: key fragment erased");
                }
            }
            Ok::<_, NodeError>(receipt)
        })
        .await
        .map_err(|e| NodeError::Setup(format!("ordering task failed: {e}")))??;
        Ok(receipt)
    }

    /// Submits and turns a refusal into [`NodeError::Refused`].
    pub async fn execute(&self, tx: SignedTransaction) -> Result<CallOutput, NodeError> {
        self.submit(tx)
            .await?
            .into_result()
            .map_err(NodeError::Refused)
    }

    /// Accepts this replica's key fragment for a committed grant: checks it
    /// against the grant's commitment and verifies it against the record and
    /// grantee keys, then stores it.
    pub async fn deliver_fragment(
        &self,
        grant: GrantId,
        fragment: Vec<u8>,
    ) -> Result<(), NodeError> {
        let info = self.committed_grant(grant).await?;
        let status = self.engine.status();
        if let Some(r) = usability(
            &info,
            BlockContext {
                height: status.height,
                time: status.time,
            },
        ) {
            return Err(NodeError::Refused(r));
        }
        let expected = info
            .fragment_commitments
            .get(usize::from(self.replica.0))
            .copied();
        if expected != Some(Digest::fragment_commitment(&fragment)) {
            return Err(NodeError::FragmentMismatch {
                grant,
                replica: self.replica,
            });
        }
        let record = self.record(&info.record)?;
        // A cluster replica takes only fragments sealed to it, for this slot.
        let fragment = match &self.sealing {
            None => fragment,
            Some(key) => key
                .open(
                    &crate::sealing::Slot {
                        record: info.record,
                        grantee: info.grantee,
                        replica: self.replica,
                    },
                    &fragment,
                )
                .map_err(|source| NodeError::Sealed {
                    grant,
                    replica: self.replica,
                    source,
                })?
                .to_vec(),
        };
        let pre = self.pre.clone();
        let schemes = self.schemes.clone();
        let served = self.scheme_check(&record)?;
        let verified = tokio::task::spawn_blocking(move || {
            if !served {
                // A record of another scheme: the byte-level registry.
                return schemes
                    .get(record.scheme)
                    .ok_or(PreError::OpenFailed)?
                    .verify_key_frag(&fragment, &record.record_key, &info.grantee_key);
            }
            let record_pk = <T::Pre as PreScheme>::PublicKey::from_bytes(&record.record_key)?;
            let grantee_pk = <T::Pre as PreScheme>::PublicKey::from_bytes(&info.grantee_key)?;
            let kfrag = <T::Pre as PreScheme>::KeyFrag::from_bytes(&fragment)?;
            let v = pre.verify_key_frag(kfrag, &record_pk, &grantee_pk)?;
            Ok::<_, PreError>(pre.verified_key_frag_to_bytes(&v))
        })
        .await
        .map_err(|e| NodeError::Setup(format!("verification task failed: {e}")))??;
        let stored = match &self.sealing {
            Some(key) => key.encrypt_at_rest(&grant, &verified),
            None => verified,
        };
        self.fragments.put(&grant, &stored)?;
        self.decoded.forget(&grant);
        // A revocation may have committed while we verified: never keep a
        // fragment of a revoked grant.
        if let Some(g) = self.ledger.grant(&grant)? {
            if let Some(r) = usability(
                &g,
                BlockContext {
                    height: 0,
                    time: g.granted.time,
                },
            ) {
                self.fragments.erase(&grant)?;
                return Err(NodeError::Refused(r));
            }
        }
        Ok(())
    }

    /// This replica's key fragment of `grant`, decrypted from its store.
    fn held_fragment(&self, grant: &GrantId) -> Result<Option<Vec<u8>>, NodeError> {
        let Some(stored) = self.fragments.get(grant)? else {
            return Ok(None);
        };
        match &self.sealing {
            None => Ok(Some(stored)),
            Some(key) => key
                .decrypt_at_rest(grant, &stored)
                .map(|f| Some(f.to_vec()))
                .map_err(|source| NodeError::Sealed {
                    grant: *grant,
                    replica: self.replica,
                    source,
                }),
        }
    }

    /// A grant from this replica's ledger. In a cluster the client delivers
    /// fragments as soon as one replica has committed the grant, so a replica
    /// that has not executed that block yet waits for it (a little) first.
    async fn committed_grant(&self, grant: GrantId) -> Result<GrantInfo, NodeError> {
        const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(5);
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        loop {
            if let Some(info) = self.ledger.grant(&grant)? {
                return Ok(info);
            }
            if self.status().replicas <= 1 || tokio::time::Instant::now() >= deadline {
                return Err(NodeError::UnknownGrant(grant));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Orders a `Retrieve` call; if the contracts allow it, answers with this
    /// replica's capsule fragment (re-encrypted off the async runtime).
    pub async fn retrieve(&self, tx: SignedTransaction) -> Result<Retrieval, NodeError> {
        if !matches!(tx.body.call, rr_core::Call::Retrieve(_)) {
            return Err(NodeError::WrongCall {
                expected: "retrieve",
                found: tx.body.call.name(),
            });
        }
        let verified = self.verify(tx).await?;
        // Re-encrypt while the call is ordered (in a cluster, mostly a wait
        // for the other replicas and the disk), if this replica has the
        // grant's fragment at hand and the caller is its grantee. The result
        // is used only if the ordered call is allowed.
        let early = self.reencrypt_early(&verified);
        let receipt = self.order(verified).await?;
        let (record_id, grant_id) = match &receipt.outcome {
            Outcome::Ok(CallOutput::Retrieved { record, grant }) => (*record, *grant),
            Outcome::Refused(r) => return Err(NodeError::Refused(r.clone())),
            Outcome::Ok(other) => {
                return Err(NodeError::Setup(format!(
                    "unexpected retrieve output {other:?}"
                )))
            }
        };
        let record = self.record(&record_id)?;
        let grant = self
            .ledger
            .grant(&grant_id)?
            .ok_or(NodeError::UnknownGrant(grant_id))?;
        if !self.scheme_check(&record)? {
            // A record of another scheme: the byte-level registry, no cache.
            let Some(kfrag) = self.held_fragment(&grant_id)? else {
                return Err(NodeError::FragmentMissing {
                    grant: grant_id,
                    replica: self.replica,
                });
            };
            let (schemes, scheme, capsule) =
                (self.schemes.clone(), record.scheme, record.capsule.clone());
            let cfrag = tokio::task::spawn_blocking(move || {
                schemes.get(scheme).ok_or(PreError::OpenFailed)?.reencrypt(
                    &mut rand_core::OsRng,
                    &capsule,
                    &kfrag,
                )
            })
            .await
            .map_err(|e| NodeError::Setup(format!("re-encryption task failed: {e}")))??;
            return Ok(self.answer(receipt, record, grant, cfrag));
        }
        let pre = self.pre.clone();
        let ready = match self.decoded.get(&grant_id) {
            Some(ready) => ready,
            None => {
                let Some(kfrag) = self.held_fragment(&grant_id)? else {
                    warn!(target: TARGET, grant = %grant_id.short(), "allowed retrieve but no key fragment held");
                    return Err(NodeError::FragmentMissing {
                        grant: grant_id,
                        replica: self.replica,
                    });
                };
                let (p, capsule_bytes) = (pre.clone(), record.capsule.clone());
                let ready = tokio::task::spawn_blocking(move || {
                    let capsule = <T::Pre as PreScheme>::Capsule::from_bytes(&capsule_bytes)?;
                    let kfrag = p.verified_key_frag_from_trusted_bytes(&kfrag)?;
                    Ok::<_, PreError>(Arc::new((capsule, kfrag)))
                })
                .await
                .map_err(|e| NodeError::Setup(format!("decoding task failed: {e}")))??;
                self.decoded.insert(grant_id, ready.clone());
                // A revocation that committed meanwhile must not leave the
                // fragment cached: its own clean-up may have run before the
                // insert.
                if !matches!(
                    self.ledger.grant(&grant_id)?.map(|g| g.status),
                    Some(rr_core::GrantStatus::Active)
                ) {
                    self.decoded.forget(&grant_id);
                }
                ready
            }
        };
        let cfrag = match early {
            Some((grant, task)) if grant == grant_id => task,
            _ => reencrypt_task(pre, ready),
        }
        .await
        .map_err(|e| NodeError::Setup(format!("re-encryption task failed: {e}")))??;
        Ok(self.answer(receipt, record, grant, cfrag))
    }

    /// Starts re-encrypting for the grant a verified `Retrieve` names, when
    /// the decoded fragment is cached and the signer is the grant's active
    /// grantee; `None` otherwise (the caller re-encrypts after ordering).
    #[allow(clippy::type_complexity)]
    fn reencrypt_early(
        &self,
        tx: &VerifiedTransaction,
    ) -> Option<(GrantId, tokio::task::JoinHandle<Result<Vec<u8>, PreError>>)> {
        let rr_core::Call::Retrieve(r) = &tx.tx().body.call else {
            return None;
        };
        let ready = self.decoded.get(&r.grant)?;
        let grant = self.ledger.grant(&r.grant).ok()??;
        if grant.grantee != tx.tx().body.signer || grant.status != rr_core::GrantStatus::Active {
            return None;
        }
        Some((r.grant, reencrypt_task(self.pre.clone(), ready)))
    }

    /// This replica's answer to an allowed retrieval: its capsule fragment,
    /// and (on a cluster replica) its signature over the receipt.
    fn answer(
        &self,
        receipt: Receipt,
        record: RecordInfo,
        grant: GrantInfo,
        cfrag: Vec<u8>,
    ) -> Retrieval {
        let receipt_signatures = self
            .replica_key
            .iter()
            .map(|key| ReceiptSignature::sign(key, self.replica, &receipt))
            .collect();
        Retrieval {
            receipt,
            record,
            grant,
            capsule_fragments: vec![CapsuleFragment {
                replica: self.replica,
                fragment: cfrag,
            }],
            skipped: Vec::new(),
            receipt_signatures,
        }
    }

    /// A record.
    pub fn record(&self, id: &RecordId) -> Result<RecordInfo, NodeError> {
        self.ledger.record(id)?.ok_or(NodeError::UnknownRecord(*id))
    }

    /// A grant.
    pub fn grant(&self, id: &GrantId) -> Result<GrantInfo, NodeError> {
        self.ledger.grant(id)?.ok_or(NodeError::UnknownGrant(*id))
    }

    /// The grants of a record.
    pub fn grants_of_record(&self, id: &RecordId) -> Result<Vec<GrantInfo>, NodeError> {
        self.record(id)?;
        Ok(self.ledger.grants_of_record(id)?)
    }

    /// The records an account owns.
    pub fn records_owned_by(&self, owner: &AccountId) -> Result<Vec<RecordInfo>, NodeError> {
        Ok(self.ledger.records_owned_by(owner)?)
    }

    /// The grants an account holds.
    pub fn grants_held_by(&self, grantee: &AccountId) -> Result<Vec<GrantInfo>, NodeError> {
        Ok(self.ledger.grants_held_by(grantee)?)
    }

    /// A record's whole audit trail, oldest first.
    pub fn audit(&self, id: &RecordId) -> Result<Vec<AuditEntry>, NodeError> {
        let record = self.record(id)?;
        Ok(self.ledger.audit(id, 0, record.audit_len as usize)?)
    }

    /// Whether this replica holds a key fragment for `grant`.
    pub fn holds_fragment(&self, grant: &GrantId) -> Result<bool, NodeError> {
        Ok(self.fragments.get(grant)?.is_some())
    }

    /// Stops the engine after the calls already ordered.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        self.engine.shutdown().await?;
        Ok(())
    }

    /// The contract configuration.
    pub fn contracts(&self) -> &ContractsConfig {
        &self.contracts
    }
}

#[async_trait::async_trait]
impl<T: NodeTypes> crate::api::NodeApi for Node<T> {
    async fn info(&self) -> Result<NodeInfo, NodeError> {
        Ok(Node::info(self))
    }

    async fn submit(&self, tx: SignedTransaction) -> Result<Receipt, NodeError> {
        Node::submit(self, tx).await
    }

    async fn receipt(&self, tx: rr_core::TxId) -> Result<Receipt, NodeError> {
        self.ledger.receipt(&tx)?.ok_or_else(|| {
            NodeError::NotFound(format!(
                "no receipt for transaction {tx}: it was never committed here"
            ))
        })
    }

    async fn deliver_fragment(&self, grant: GrantId, fragment: Vec<u8>) -> Result<(), NodeError> {
        Node::deliver_fragment(self, grant, fragment).await
    }

    async fn retrieve(&self, tx: SignedTransaction) -> Result<Retrieval, NodeError> {
        Node::retrieve(self, tx).await
    }

    async fn record(&self, id: RecordId) -> Result<RecordInfo, NodeError> {
        Node::record(self, &id)
    }

    async fn grant(&self, id: GrantId) -> Result<GrantInfo, NodeError> {
        Node::grant(self, &id)
    }

    async fn grants_of_record(
        &self,
        id: RecordId,
        auth: crate::api::Authorization,
    ) -> Result<Vec<GrantInfo>, NodeError> {
        self.check_owner(&id, &auth, &crate::api::Authorization::grants_scope(&id))?;
        Node::grants_of_record(self, &id)
    }

    async fn audit(
        &self,
        id: RecordId,
        auth: crate::api::Authorization,
    ) -> Result<Vec<AuditEntry>, NodeError> {
        self.check_owner(&id, &auth, &crate::api::Authorization::audit_scope(&id))?;
        Node::audit(self, &id)
    }

    async fn listing(
        &self,
        account: AccountId,
        auth: crate::api::Authorization,
    ) -> Result<(Vec<RecordInfo>, Vec<GrantInfo>), NodeError> {
        let caller = auth.check(&crate::api::Authorization::listing_scope(&account), now())?;
        if caller != account {
            return Err(NodeError::Forbidden(format!(
                "account {caller} cannot list the records of account {account}"
            )));
        }
        Ok((
            self.records_owned_by(&account)?,
            self.grants_held_by(&account)?,
        ))
    }

    async fn put_blob(&self, data: rr_core::ByteStream) -> Result<rr_core::ContentId, NodeError> {
        Ok(self.blobs.put(data).await?)
    }

    async fn get_blob(&self, cid: rr_core::ContentId) -> Result<rr_core::ByteStream, NodeError> {
        let stream = self.blobs.get(&cid).await?;
        if self.peers.is_empty() {
            return Ok(stream);
        }
        // A cluster replica whose copy turns out damaged fetches a good one
        // from its peers (this read still fails; the client reads from
        // another replica, and the next read here is good).
        let repair = self.blob_repair();
        let mut repair = Some(move || {
            tokio::spawn(async move { repair.run(cid, false).await });
        });
        Ok(Box::pin(futures::StreamExt::map(stream, move |item| {
            if let Err(e) = &item {
                if matches!(
                    rr_core::BlobError::from_io(e),
                    Some(rr_core::BlobError::Integrity { .. })
                ) {
                    if let Some(start) = repair.take() {
                        start();
                    }
                }
            }
            item
        })))
    }
}

/// A replica's blob store and peers, for fetching a copy it lacks or holds
/// damaged.
struct BlobRepair<B: ?Sized> {
    blobs: Arc<B>,
    peers: Vec<crate::cluster::Peer>,
    me: ReplicaId,
    repairing: Arc<std::sync::Mutex<std::collections::HashSet<rr_core::ContentId>>>,
}

impl<B: BlobStore + ?Sized> BlobRepair<B> {
    /// Fetches `cid` from the peers (with `only_if_missing`, unless this
    /// replica holds a copy), unless a fetch of it is already under way.
    async fn run(&self, cid: rr_core::ContentId, only_if_missing: bool) {
        if only_if_missing && !matches!(self.blobs.contains(&cid).await, Ok(false)) {
            return;
        }
        if !self.repairing.lock().expect("repairing lock").insert(cid) {
            return;
        }
        repair_blob(&*self.blobs, &self.peers, self.me, cid).await;
        self.repairing.lock().expect("repairing lock").remove(&cid);
    }
}

/// Fetches blob `cid` from the other replicas until one gives bytes that
/// hash to `cid`, and stores them (over a damaged copy, if any). Bytes that
/// hash to something else are dropped again.
async fn repair_blob<B: BlobStore + ?Sized>(
    blobs: &B,
    peers: &[crate::cluster::Peer],
    me: ReplicaId,
    cid: rr_core::ContentId,
) -> bool {
    for (i, peer) in peers.iter().enumerate() {
        if i == usize::from(me.0) {
            continue;
        }
        let Ok(client) = crate::http::HttpClient::new(&peer.api) else {
            continue;
        };
        let stream = match crate::api::NodeApi::get_blob(&client, cid).await {
            Ok(s) => s,
            Err(e) => {
                warn!(target: TARGET, %cid, peer = i, error = %e, "blob repair: peer cannot serve it");
                continue;
            }
        };
        match blobs.put(stream).await {
            Ok(got) if got == cid => {
                info!(target: TARGET, %cid, from = i, "blob repaired from a peer");
                return true;
            }
            Ok(other) => {
                warn!(target: TARGET, %cid, peer = i, "blob repair: peer sent other bytes");
                let _ = blobs.delete(&other).await;
            }
            Err(e) => warn!(target: TARGET, %cid, peer = i, error = %e, "blob repair failed"),
        }
    }
    false
}

/// Re-encrypts a decoded capsule with a decoded key fragment on tokio's
/// blocking pool, giving the capsule fragment's bytes.
fn reencrypt_task<P: PreScheme>(
    pre: Arc<P>,
    ready: Decoded<P>,
) -> tokio::task::JoinHandle<Result<Vec<u8>, PreError>> {
    tokio::task::spawn_blocking(move || {
        let (capsule, kfrag) = &*ready;
        let cfrag = pre.reencrypt(&mut rand_core::OsRng, capsule, kfrag)?;
        Ok(cfrag.to_bytes())
    })
}

/// Creates `dir` if needed and opens a replica's stores in it: the ledger,
/// the key fragment store and the blob store.
pub(crate) fn open_stores(
    dir: &std::path::Path,
    max_blob_size: u64,
) -> Result<(Arc<Ledger>, FragmentStore, FsBlobStore), NodeError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        NodeError::Setup(format!(
            "cannot create data directory {}: {e}",
            dir.display()
        ))
    })?;
    let ledger = Arc::new(Ledger::open(dir.join("ledger.redb"))?);
    let fragments = FragmentStore::open(dir.join("fragments.redb"))?;
    let blobs = FsBlobStore::open(FsBlobStoreConfig {
        max_blob_size: Some(max_blob_size),
        ..FsBlobStoreConfig::new(dir.join("blobs"))
    })?;
    Ok((ledger, fragments, blobs))
}

fn now() -> rr_core::Timestamp {
    rr_core::Timestamp::from_system_time(std::time::SystemTime::now())
}

impl<T: NodeTypes> Node<T> {
    /// Follows the committed ledger and erases this replica's key fragment of
    /// every grant a committed `Revoke` names, whichever replica the owner
    /// sent it to, then (on a cluster replica, which has a replica key)
    /// confirms the erasure through consensus with a signed
    /// [`rr_core::ConfirmErasure`]. Checks every `poll`. A cluster replica
    /// resumes after the last block it handled (kept in its fragment store),
    /// so erasures it missed while down are made and confirmed when it is
    /// back, and confirmations cut short by a restart are sent again; it also
    /// checks once, in the background, that it holds the ciphertext of every
    /// record. A dev node starts at the head. The follower ends when the node
    /// is dropped.
    pub fn follow_revocations(
        self: &Arc<Self>,
        poll: std::time::Duration,
    ) -> Result<tokio::task::JoinHandle<()>, NodeError> {
        let mut done = match self.replica_key {
            // A cluster replica resumes where it left off, and confirms what
            // it erased before a restart but never saw confirmed.
            Some(_) => {
                for grant in self.fragments.unconfirmed()? {
                    self.confirm_erasure(grant)?;
                }
                self.fragments.followed_through()?
            }
            None => self.ledger.head()?.height,
        };
        if !self.peers.is_empty() {
            self.fill_missing_blobs();
        }
        let weak = Arc::downgrade(self);
        Ok(tokio::spawn(async move {
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(node) = weak.upgrade() else { return };
                match node.erase_revoked_after(done) {
                    Ok(height) => done = height,
                    Err(e) => warn!(target: TARGET, error = %e, "revocation follower: will retry"),
                }
            }
        }))
    }

    /// Erases fragments of grants revoked in blocks above `done`, up to the
    /// head, and confirms each erasure; returns the height it got to. A
    /// cluster replica keeps that height (and the erasures still to confirm)
    /// in its fragment store, so a restart does not read the ledger again.
    fn erase_revoked_after(self: &Arc<Self>, done: u64) -> Result<u64, NodeError> {
        let head = self.ledger.head()?.height;
        if head <= done {
            return Ok(done);
        }
        let mut revoked = Vec::new();
        for height in done + 1..=head {
            for receipt in self.ledger.block_receipts(height)?.unwrap_or_default() {
                if let Outcome::Ok(CallOutput::Revoked { grant }) = &receipt.outcome {
                    self.decoded.forget(grant);
                    if self.fragments.erase(grant)? {
                        info!(target: TARGET, grant = %grant.short(), height, "revoked on the ledger: key fragment erased");
                    }
                    revoked.push(*grant);
                }
                // A record this replica has no ciphertext for (it was down
                // or failed during the upload): fetch it from the others.
                if let Outcome::Ok(CallOutput::Registered { record }) = &receipt.outcome {
                    self.fill_blob(record)?;
                }
            }
        }
        if self.replica_key.is_some() {
            self.fragments.advance(head, &revoked)?;
            for grant in revoked {
                self.confirm_erasure(grant)?;
            }
        }
        Ok(head)
    }

    /// In the background, checks that this cluster replica holds the
    /// ciphertext of every registered record, and fetches from its peers any
    /// it lacks (a copy lost while it was down, or deleted). One pass at
    /// start: it reads the records, not the whole ledger.
    fn fill_missing_blobs(self: &Arc<Self>) {
        const PAGE: usize = 256;
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut after = None;
            loop {
                let Some(node) = weak.upgrade() else { return };
                let page = match node.ledger.records_after(after.as_ref(), PAGE) {
                    Ok(page) => page,
                    Err(e) => {
                        warn!(target: TARGET, error = %e, "blob check at start stopped");
                        return;
                    }
                };
                let Some(last) = page.last() else { return };
                after = Some(last.id);
                let repair = node.blob_repair();
                drop(node);
                for record in page {
                    repair.run(record.cid, true).await;
                }
            }
        });
    }

    /// Starts fetching the ciphertext of `record` from the peers if this
    /// cluster replica does not hold it.
    fn fill_blob(&self, record: &RecordId) -> Result<(), NodeError> {
        if self.peers.is_empty() {
            return Ok(());
        }
        let Some(info) = self.ledger.record(record)? else {
            return Ok(());
        };
        let repair = self.blob_repair();
        tokio::spawn(async move { repair.run(info.cid, true).await });
        Ok(())
    }

    /// What a task needs to fetch a blob copy from the peers.
    fn blob_repair(&self) -> BlobRepair<T::Blobs> {
        BlobRepair {
            blobs: self.blobs.clone(),
            peers: self.peers.clone(),
            me: self.replica,
            repairing: self.repairing.clone(),
        }
    }

    /// Submits this replica's signed erasure confirmation for `grant`
    /// (unless it is on the ledger already or under way), retrying while the
    /// cluster cannot order it.
    fn confirm_erasure(self: &Arc<Self>, grant: GrantId) -> Result<(), NodeError> {
        let Some(key) = self.replica_key.clone() else {
            return Ok(());
        };
        let confirmed = self
            .ledger
            .grant(&grant)?
            .is_some_and(|g| g.erased_by.contains(&self.replica));
        if confirmed {
            self.fragments.confirmed(&grant)?;
            return Ok(());
        }
        if !self
            .confirming
            .lock()
            .expect("confirming lock")
            .insert(grant)
        {
            return Ok(());
        }
        let (engine, confirming, replica, fragments) = (
            self.engine.clone(),
            self.confirming.clone(),
            self.replica,
            self.fragments.clone(),
        );
        tokio::spawn(async move {
            let mut wait = std::time::Duration::from_millis(200);
            loop {
                let tx = rr_core::TxBody {
                    signer: rr_core::AccountId::from_verifying_key(&key.verifying_key()),
                    nonce: rand_core::RngCore::next_u64(&mut rand_core::OsRng),
                    call: rr_core::Call::ConfirmErasure(rr_core::ConfirmErasure { grant, replica }),
                }
                .sign(&key);
                let verified = match tx.verify() {
                    Ok(v) => v,
                    Err(e) => {
                        warn!(target: TARGET, error = %e, "erasure confirmation does not verify");
                        break;
                    }
                };
                match engine.submit(verified).await {
                    Ok(receipt) => {
                        match receipt.outcome {
                            Outcome::Ok(_) => {
                                info!(target: TARGET, grant = %grant.short(), "erasure confirmed on the ledger")
                            }
                            Outcome::Refused(r) => {
                                info!(target: TARGET, grant = %grant.short(), reason = %r, "erasure confirmation refused")
                            }
                        }
                        // Confirmed, or refused for good (confirmed
                        // already, say): either way nothing is left to do.
                        if let Err(e) = fragments.confirmed(&grant) {
                            warn!(target: TARGET, grant = %grant.short(), error = %e, "cannot record the confirmation; a restart confirms again");
                        }
                        break;
                    }
                    Err(ConsensusError::Stopped) => break,
                    Err(e) => {
                        warn!(target: TARGET, grant = %grant.short(), error = %e, "erasure confirmation not ordered yet; retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(std::time::Duration::from_secs(5));
                    }
                }
            }
            confirming.lock().expect("confirming lock").remove(&grant);
        });
        Ok(())
    }
}

impl<T: NodeTypes> Node<T> {
    /// `true` if the record uses this node's own scheme (the typed, cached
    /// path), `false` if another scheme this node serves; an error if none.
    fn scheme_check(&self, record: &RecordInfo) -> Result<bool, NodeError> {
        if record.scheme == T::Pre::ID {
            return Ok(true);
        }
        if self.schemes.get(record.scheme).is_some() {
            return Ok(false);
        }
        Err(NodeError::SchemeMismatch {
            record: record.id,
            found: record.scheme,
            served: T::Pre::ID,
        })
    }

    fn check_owner(
        &self,
        id: &RecordId,
        auth: &crate::api::Authorization,
        scope: &str,
    ) -> Result<(), NodeError> {
        let caller = auth.check(scope, now())?;
        let record = self.record(id)?;
        if record.owner != caller {
            return Err(NodeError::Forbidden(format!(
                "account {caller} does not own record {id}; only its owner can read this"
            )));
        }
        Ok(())
    }
}
