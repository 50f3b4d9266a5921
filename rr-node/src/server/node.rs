//! Node assembly: one place names every pluggable choice.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use rr_consensus::{Clock, ReplicaKey, Solo, SoloConfig, SystemClock, TxVerifier};
use rr_core::cert::{Certificate, ReplicaSetInfo};
use rr_core::proof::{CertifiedReceipt, ProvenEntry, SignedFragment, StateAnswer};
use rr_core::state::{keys, CountKind};
use rr_core::{
    AccountId, AuditEntry, BlobStore, BlockContext, Call, CallOutput, ConsensusEngine,
    ConsensusError, ContractExecutor, Digest, EngineStatus, GrantId, GrantInfo, Outcome, PreError,
    PreScheme, Receipt, RecordId, RecordInfo, ReplicaId, SignedTransaction, Table,
    VerifiedTransaction, WireEncoding,
};
use rr_pre::Umbral;
use rr_storage::{FsBlobStore, FsBlobStoreConfig, Ledger, LedgerError, StateReader};
use tracing::{info, warn};

pub use crate::api::{NodeError, NodeInfo, Retrieval, SchemeInfo, SkippedReplica};
use crate::contracts::{usability, ContractsConfig, NativeContracts, Policies};
use crate::fragments::FragmentStore;

const TARGET: &str = "rr_node";

/// Names the backends a node is assembled from, in the spirit of openraft's
/// `RaftTypeConfig`: [`Node`] is generic over it, so the hot path is
/// monomorphized and a researcher swaps a backend by naming another type.
///
/// There is no executor to name: a node runs the [`NativeContracts`] (with
/// whatever [`crate::contracts::Policy`]s its configuration adds), and the
/// node reads them from its engine ([`ConsensusEngine::executor`]), so the
/// rules the node checks calls against and the rules the ledger executes
/// cannot disagree. A researcher with an executor of their own runs it on an
/// engine from `rr-consensus` directly.
pub trait NodeTypes: Send + Sync + Sized + 'static {
    /// Orders and commits transactions, executing them with the native
    /// contracts.
    type Engine: ConsensusEngine<Executor = NativeContracts>;
    /// Proxy re-encryption scheme.
    type Pre: PreScheme;
    /// Stores ciphertext.
    type Blobs: BlobStore;
}

/// The embedded default: one replica ([`Solo`]), the native contracts, and a
/// filesystem blob store, all in one data directory. `P` is the node's own
/// scheme, the default for new records (Umbral unless named, as in
/// `DevTypes<Recrypt>`); the node serves records of every compiled-in scheme
/// whatever `P` is. `B` is the blob store (the filesystem unless named; see
/// [`Node::open_dev_with_blobs`] for one of your own). Open one with
/// [`Node::open_dev`] (Umbral) or [`Node::open_dev_with_scheme`].
pub struct DevTypes<P = Umbral, B = FsBlobStore>(PhantomData<fn() -> (P, B)>);

/// A running one-replica development node ([`Node`] on [`DevTypes`]).
pub type DevNode<P = Umbral, B = FsBlobStore> = Node<DevTypes<P, B>>;

impl<P, B> std::fmt::Debug for DevTypes<P, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DevTypes<{}, {}>",
            std::any::type_name::<P>(),
            std::any::type_name::<B>()
        )
    }
}

impl<P: PreScheme, B: BlobStore> NodeTypes for DevTypes<P, B> {
    type Engine = Solo<NativeContracts>;
    type Pre = P;
    type Blobs = B;
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
    /// The engine (already started on `ledger`), running the native
    /// contracts whose configuration the node follows.
    pub engine: T::Engine,
    /// The scheme.
    pub pre: T::Pre,
    /// The blob store.
    pub blobs: T::Blobs,
    /// The ledger the engine commits to.
    pub ledger: Arc<Ledger>,
    /// This replica's fragment store.
    pub fragments: FragmentStore,
    /// This replica's index of uploads no committed record names yet, and
    /// the limits it meters them with.
    pub uploads: crate::uploads::UploadIndex,
    /// This replica's id.
    pub replica: ReplicaId,
    /// This replica's key: it signs headers (through the engine), capsule
    /// fragments and, on a cluster, erasure confirmations (its account in
    /// `contracts.replica_accounts`).
    pub key: ed25519_dalek::SigningKey,
    /// The replica set (its key at position `replica`).
    pub replica_set: ReplicaSetInfo,
    /// The key sealed key fragments are opened with and fragments are kept
    /// encrypted at rest under; `None` on a dev node (fragments arrive
    /// unsealed over its one connection and are stored as they are).
    pub sealing: Option<crate::sealing::SealingKey>,
    /// The replica set (public), as [`NodeInfo::peers`] reports it.
    pub peers: Vec<crate::api::Peer>,
    /// The CA that issued the peers' API certificates (PEM), pinned when
    /// this replica fetches a blob copy from a peer over `https://`.
    pub peers_ca: Option<String>,
    /// The peers as this replica fetches blob copies from them, when they
    /// are reached in process (a [`crate::LocalCluster`]); `None`: over
    /// HTTP, at `peers[i].api`, pinning `peers_ca`.
    pub blob_peers: Option<BlobPeers>,
    /// Schemes this replica re-encrypts for, besides `pre` (records carry
    /// their scheme id; `rr_pre::Schemes::all()` serves every compiled-in one).
    pub schemes: rr_pre::Schemes,
    /// The clock block times come from (the engine's): a grant's expiry is
    /// judged against it.
    pub clock: Arc<dyn Clock>,
}

/// A replica: engine, scheme, blob store, ledger and key fragments.
pub struct Node<T: NodeTypes> {
    engine: Arc<T::Engine>,
    pre: Arc<T::Pre>,
    blobs: Arc<T::Blobs>,
    ledger: Arc<Ledger>,
    fragments: Arc<FragmentStore>,
    uploads: Arc<crate::uploads::UploadIndex>,
    /// Held by admission across its upload-index touch and blob check, and
    /// by the upload sweep across each forget-and-delete, so a registration
    /// is never admitted for a blob the sweep is about to delete.
    sweep_gate: tokio::sync::Mutex<()>,
    decoded: Arc<DecodedCache<T::Pre>>,
    schemes: Arc<rr_pre::Schemes>,
    replica: ReplicaId,
    key: Arc<ed25519_dalek::SigningKey>,
    replica_set: ReplicaSetInfo,
    confirming: Arc<std::sync::Mutex<std::collections::HashSet<GrantId>>>,
    /// Blob copies being fetched from the peers, so that concurrent reads of
    /// a damaged copy, or the start-up check and the follower, fetch once.
    repairing: Arc<std::sync::Mutex<std::collections::HashSet<rr_core::ContentId>>>,
    sealing: Option<Arc<crate::sealing::SealingKey>>,
    peers: Vec<crate::api::Peer>,
    /// How blob copies are fetched from `peers`.
    blob_peers: BlobPeers,
    contracts: ContractsConfig,
    clock: Arc<dyn Clock>,
    /// Checks submitted calls' signatures, concurrent ones as one batch;
    /// started on first use (inside the runtime that serves the node).
    verifier: std::sync::OnceLock<TxVerifier>,
}

/// Most submitted calls checked in one signature batch.
const VERIFY_BATCH: usize = 64;

/// A re-encryption started while its retrieve call is ordered: the grant,
/// and the task making the capsule fragment.
type EarlyReencryption = (GrantId, tokio::task::JoinHandle<Result<Vec<u8>, PreError>>);

/// How long an answer waits for the certificate of the state it reads: the
/// other replicas' signatures over a header arrive within one round trip of
/// their executing the block.
pub const CERTIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl<T: NodeTypes> std::fmt::Debug for Node<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("replica", &self.replica)
            .field("ledger", &self.ledger)
            .finish()
    }
}

/// Settings of a one-replica development node. Start from
/// [`DevConfig::new`] and set what differs from the defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DevConfig {
    /// Data directory: `ledger.redb`, `fragments.redb`, `uploads.redb`,
    /// `blobs/`.
    pub data_dir: PathBuf,
    /// Engine settings.
    pub solo: SoloConfig,
    /// Largest blob accepted (default 16 GiB).
    pub max_blob_size: u64,
    /// Contract policies run before the native contracts (default: none).
    pub policies: Policies,
    /// Quota and cap of uploads no committed record names yet, and how long
    /// they are kept (default [`crate::uploads::UploadLimits::default`]).
    pub uploads: crate::uploads::UploadLimits,
}

impl DevConfig {
    /// Defaults for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            solo: SoloConfig::default(),
            max_blob_size: 16 << 30,
            policies: Policies::default(),
            uploads: crate::uploads::UploadLimits::default(),
        }
    }

    /// This configuration with `limits` on uploads no record names yet.
    pub fn with_upload_limits(mut self, limits: crate::uploads::UploadLimits) -> Self {
        self.uploads = limits;
        self
    }

    /// This configuration with `policy` run before the native contracts
    /// (after any added before).
    pub fn with_policy(mut self, policy: impl crate::contracts::Policy) -> Self {
        self.policies = self.policies.with(policy);
        self
    }
}

impl Node<DevTypes> {
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

impl<P: PreScheme> Node<DevTypes<P>> {
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
        let blobs = open_fs_blobs(&config.data_dir, config.max_blob_size)?;
        Node::open_dev_with_blobs(config, pre, blobs, clock).await
    }
}

impl<P: PreScheme, B: BlobStore> Node<DevTypes<P, B>> {
    /// Like [`Node::open_dev_with_scheme`] with `blobs` as the blob store
    /// instead of `blobs/` in the data directory: an object store, a
    /// hospital's archive, a store that keeps copies elsewhere. Whatever it
    /// is, the node checks every blob it serves against its content id, and
    /// the client checks again; `config.max_blob_size` is the store's to
    /// enforce. See `examples/custom_blob_store.rs`.
    pub async fn open_dev_with_blobs(
        config: DevConfig,
        pre: P,
        blobs: B,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, NodeError> {
        let dir = &config.data_dir;
        create_dir(dir)?;
        let key = crate::node_key::load_or_create(&dir.join(crate::node_key::FILE))?;
        let replica_set =
            ReplicaSetInfo::new(vec![AccountId::from_verifying_key(&key.verifying_key())])
                .map_err(|e| NodeError::Setup(format!("the node key: {e}")))?;
        let schemes = rr_pre::Schemes::all();
        let contracts = ContractsConfig {
            schemes: schemes.ids(),
            single_proxy_schemes: schemes.single_proxy_ids(),
            ..ContractsConfig::default()
        };
        let executor =
            Arc::new(NativeContracts::new(contracts).with_policies(config.policies.clone()));
        let replica_key = ReplicaKey::new(ReplicaId(0), key.clone());
        let (ledger, fragments) = open_stores(dir, &replica_set, &*executor, &replica_key)?;
        let uploads = open_uploads(dir, config.uploads.clone())?;
        let engine = Solo::start(
            ledger.clone(),
            executor,
            clock.clone(),
            config.solo.clone(),
            replica_key,
        )?;
        let node = Node::assemble(NodeParts {
            engine,
            pre,
            blobs,
            ledger,
            fragments,
            uploads,
            replica: ReplicaId(0),
            key,
            replica_set,
            sealing: None,
            peers: Vec::new(),
            peers_ca: None,
            blob_peers: None,
            schemes,
            clock,
        })?;
        let node = Arc::new(node);
        // Revocations erase inline on a dev node; the follower erases
        // expired grants' fragments.
        node.follow_revocations(std::time::Duration::from_millis(200))?;
        info!(target: TARGET, dir = %dir.display(), height = node.status().height, scheme = P::ID.name(), "dev node open");
        Ok(node)
    }
}

/// The agreement checks of [`Node::assemble`], past the key and ledger.
fn check_parts<T: NodeTypes>(parts: &NodeParts<T>) -> Result<(), NodeError> {
    let contracts = parts.engine.executor().config();
    let n = parts.replica_set.keys().len();
    let scheme = <T::Pre as PreScheme>::ID;
    let setup = |m: String| Err(NodeError::Setup(m));
    if !contracts.schemes.contains(&scheme) {
        return setup(format!(
            "the contracts the engine runs do not allow {}, the node's scheme of new records (ContractsConfig::schemes is {:?}): every put would be refused with scheme_mismatch; add it, or use rr_pre::Schemes::all().ids()",
            scheme.name(),
            contracts.schemes.iter().map(|s| s.name()).collect::<Vec<_>>()
        ));
    }
    if let Some(missing) = contracts
        .schemes
        .iter()
        .find(|s| parts.schemes.get(**s).is_none())
    {
        return setup(format!(
            "the contracts allow records of {}, which this node cannot re-encrypt for (NodeParts::schemes does not hold it)",
            missing.name()
        ));
    }
    let checked = parts.engine.executor().schemes();
    if let Some(missing) = contracts
        .schemes
        .iter()
        .find(|s| checked.get(**s).is_none())
    {
        return setup(format!(
            "the contracts allow records of {} but cannot check their keys: give NativeContracts::with_schemes a registry that holds it",
            missing.name()
        ));
    }
    if usize::from(contracts.replicas) != n {
        return setup(format!(
            "the contracts count {} replicas (ContractsConfig::replicas) but the replica set has {n}: every grant would be refused",
            contracts.replicas
        ));
    }
    if n > 1 && contracts.replica_accounts.as_slice() != parts.replica_set.keys() {
        return setup(
            "the contracts' replica accounts (ContractsConfig::replica_accounts) are not the replica set's keys in order: erasure confirmations would be refused".into(),
        );
    }
    if n > 1 || !parts.peers.is_empty() {
        if parts.peers.len() != n {
            return setup(format!(
                "{} peers for a replica set of {n}: NodeParts::peers lists every replica, in order",
                parts.peers.len()
            ));
        }
        for (i, peer) in parts.peers.iter().enumerate() {
            let key = AccountId::from_verifying_key(&peer.verifying_key()?);
            if parts.replica_set.key(ReplicaId(i as u16)) != Some(&key) {
                return setup(format!(
                    "peers[{i}].public_key is not the replica set's key of replica {i}"
                ));
            }
        }
        let me = &parts.peers[usize::from(parts.replica.0)];
        match &parts.sealing {
            None => {
                return setup(
                    "a replica of a cluster needs its sealing key (NodeParts::sealing): clients seal its key fragments to it".into(),
                )
            }
            Some(k) if k.public().to_hex() != me.sealing_key => {
                return setup(format!(
                    "the sealing key is not peers[{}].sealing_key: clients would seal this replica's fragments to another key",
                    parts.replica.0
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

impl<T: NodeTypes> Node<T> {
    /// Assembles a node from its parts, then erases any key fragment whose
    /// grant was revoked while the node was down (so it never serves one).
    ///
    /// The parts must agree, and are checked: the key is the replica set's
    /// key at `replica`; the ledger belongs to that replica set; the
    /// contracts the engine runs serve the node's scheme, count the replica
    /// set's n and name its keys (on a cluster); the peers are the replica
    /// set, in order, and the sealing key is this replica's. The error names
    /// the part that disagrees.
    pub fn assemble(parts: NodeParts<T>) -> Result<Self, NodeError> {
        let own = AccountId::from_verifying_key(&parts.key.verifying_key());
        if parts.replica_set.key(parts.replica) != Some(&own) {
            return Err(NodeError::Setup(format!(
                "the node's key is not the key of {} in its replica set",
                parts.replica
            )));
        }
        if parts.ledger.replica_set() != parts.replica_set.digest() {
            return Err(NodeError::Setup(
                "the ledger belongs to another replica set than the node's".into(),
            ));
        }
        check_parts(&parts)?;
        let contracts = parts.engine.executor().config().clone();
        let node = Self {
            engine: Arc::new(parts.engine),
            pre: Arc::new(parts.pre),
            blobs: Arc::new(parts.blobs),
            ledger: parts.ledger,
            fragments: Arc::new(parts.fragments),
            uploads: Arc::new(parts.uploads),
            sweep_gate: tokio::sync::Mutex::new(()),
            decoded: Arc::new(DecodedCache::default()),
            schemes: Arc::new(parts.schemes),
            replica: parts.replica,
            key: Arc::new(parts.key),
            replica_set: parts.replica_set,
            confirming: Arc::default(),
            repairing: Arc::default(),
            sealing: parts.sealing.map(Arc::new),
            contracts,
            blob_peers: parts
                .blob_peers
                .unwrap_or_else(|| BlobPeers::http(&parts.peers, parts.peers_ca.as_deref())),
            peers: parts.peers,
            clock: parts.clock,
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
            replica_set: self.replica_set.clone(),
            single_proxy_allowed: self.contracts.faults_tolerated() == 0
                || self.contracts.allow_single_proxy,
            peers: self.peers.clone(),
        }
    }

    /// The replica set whose certificates this node serves.
    pub fn replica_set(&self) -> &ReplicaSetInfo {
        &self.replica_set
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

    /// Verifies (off the async runtime), admits, orders and executes a
    /// transaction.
    ///
    /// Admission: a `RegisterRecord` must name a blob this replica holds,
    /// of the size it declares ([`NodeError::BlobNotHeld`],
    /// [`NodeError::BlobSizeMismatch`]); such a call is not ordered here.
    /// Admission is each replica's own check before ordering, not a
    /// contract rule: a call admitted by another replica is still ordered,
    /// and a replica lacking the blob then fetches it from its peers.
    pub async fn submit(&self, tx: SignedTransaction) -> Result<Receipt, NodeError> {
        let verified = self.verify(tx).await?;
        self.admit(&verified).await?;
        self.order(verified).await
    }

    /// The admission checks of [`Node::submit`].
    async fn admit(&self, tx: &VerifiedTransaction) -> Result<(), NodeError> {
        let Call::RegisterRecord(c) = &tx.body().call else {
            return Ok(());
        };
        // A registration under way keeps its blob from the sweep for
        // another grace period. Under the gate: either the sweep deleted the
        // blob already (this answers `blob_not_held`, and the client uploads
        // it again), or it sees the fresh upload time and keeps it.
        let _gate = self.sweep_gate.lock().await;
        self.uploads
            .touch(&c.cid, self.clock.now())
            .map_err(uploads_err)?;
        match self.blobs.size(&c.cid).await? {
            None => Err(NodeError::BlobNotHeld { cid: c.cid }),
            Some(stored) if stored != c.size => Err(NodeError::BlobSizeMismatch {
                cid: c.cid,
                declared: c.size,
                stored,
            }),
            Some(_) => Ok(()),
        }
    }

    /// Orders and executes a verified transaction.
    async fn order(&self, verified: VerifiedTransaction) -> Result<Receipt, NodeError> {
        // Ordering and the post-commit erasure run in their own task, so a
        // caller that stops waiting (a dropped connection, a timeout) cannot
        // leave a revoked grant's fragment behind.
        let (engine, fragments, decoded, uploads) = (
            self.engine.clone(),
            self.fragments.clone(),
            self.decoded.clone(),
            self.uploads.clone(),
        );
        let registers = match &verified.body().call {
            Call::RegisterRecord(c) => Some(c.cid),
            _ => None,
        };
        let receipt = tokio::spawn(async move {
            let receipt = engine.submit(verified).await?;
            if let (Some(cid), Outcome::Ok(CallOutput::Registered { .. })) =
                (registers, &receipt.outcome)
            {
                // The blob stops counting against its uploader at once (the
                // follower notes it from the ledger too, on every replica).
                if let Err(e) = uploads.referenced(&[cid], None) {
                    warn!(target: TARGET, error = %e, "upload index: the follower will note the registration");
                }
            }
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
        // Polled with back-off: a replica catching up may have many such
        // deliveries waiting, and each look is a ledger read.
        let mut pause = std::time::Duration::from_millis(5);
        loop {
            if let Some(info) = self.ledger.grant(&grant)? {
                return Ok(info);
            }
            if self.status().replicas <= 1 || tokio::time::Instant::now() >= deadline {
                return Err(NodeError::UnknownGrant(grant));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(100));
        }
    }

    /// Orders a `Retrieve` call and answers with its certified receipt, the
    /// record and grant proven at this replica's head, and, if the grant is
    /// usable at the head (and by this replica's clock) and this replica
    /// holds its key fragment, its capsule fragment signed with its key. A
    /// retry of the same call gets the same receipt, but a fragment only
    /// while the grant is still usable.
    pub async fn retrieve(&self, tx: SignedTransaction) -> Result<Retrieval, NodeError> {
        let rr_core::Call::Retrieve(call) = &tx.body.call else {
            return Err(NodeError::WrongCall {
                expected: "retrieve",
                found: tx.body.call.name(),
            });
        };
        let grant_id = call.grant;
        let verified = self.verify(tx).await?;
        let tx_id = verified.id();
        // Re-encrypt while the call is ordered (in a cluster, mostly a wait
        // for the other replicas and the disk), if this replica has the
        // grant's fragment at hand and the caller is its grantee. The result
        // is used only if the ordered call is allowed.
        let early = self.reencrypt_early(&verified);
        let receipt = self.order(verified).await?;
        let certified = self.certify_receipt(&receipt).await?;
        let reader = self.ledger.reader()?;
        let head = reader.head();
        let grant = reader.snapshot().grant(&grant_id)?;
        let record = match &grant {
            Some(g) => reader.snapshot().record(&g.record)?,
            None => None,
        };
        let mut entries = vec![reader.prove(Table::Grants, &keys::grant(&grant_id))?];
        if let Some(g) = &grant {
            entries.push(reader.prove(Table::Records, &keys::record(&g.record))?);
        }
        drop(reader);
        let mut withheld = None;
        let (fragment, note) = match (&receipt.outcome, grant, record) {
            (Outcome::Ok(CallOutput::Retrieved { .. }), Some(grant), Some(record)) => {
                let at_head = BlockContext {
                    height: head.height,
                    time: head.time.max(self.clock.now()),
                };
                match usability(&grant, at_head) {
                    Some(r) => {
                        let note = r.to_string();
                        withheld = Some(r);
                        (None, Some(note))
                    }
                    None => match self.reencrypt(&record, &grant, early).await {
                        Ok(cfrag) => (
                            Some(SignedFragment::sign(
                                &self.key,
                                &tx_id,
                                &grant_id,
                                self.replica,
                                cfrag,
                            )),
                            None,
                        ),
                        Err(e @ NodeError::FragmentMissing { .. }) => (None, Some(e.to_string())),
                        Err(e) => return Err(e),
                    },
                }
            }
            (Outcome::Refused(r), _, _) => (None, Some(r.to_string())),
            _ => (
                None,
                Some(format!(
                    "grant {grant_id} or its record is not on this replica's ledger"
                )),
            ),
        };
        let certificate = self.certificate(head.height).await?;
        Ok(Retrieval {
            receipt: certified,
            state: StateAnswer {
                certificate,
                entries,
            },
            fragment,
            note,
            withheld,
        })
    }

    /// This replica's capsule fragment of `record` for `grant` (re-encrypted
    /// off the async runtime, or taken from `early`).
    async fn reencrypt(
        &self,
        record: &RecordInfo,
        grant: &GrantInfo,
        early: Option<EarlyReencryption>,
    ) -> Result<Vec<u8>, NodeError> {
        let grant_id = grant.id;
        if !self.scheme_check(record)? {
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
            return Ok(cfrag);
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
        Ok(match early {
            Some((grant, task)) if grant == grant_id => task,
            _ => reencrypt_task(pre, ready),
        }
        .await
        .map_err(|e| NodeError::Setup(format!("re-encryption task failed: {e}")))??)
    }

    /// Starts re-encrypting for the grant a verified `Retrieve` names, when
    /// the decoded fragment is cached and the signer is the grant's active
    /// grantee; `None` otherwise (the caller re-encrypts after ordering).
    fn reencrypt_early(&self, tx: &VerifiedTransaction) -> Option<EarlyReencryption> {
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

    /// The certificate of this replica's header at `height`, waiting (up to
    /// [`CERTIFY_WAIT`]) for a quorum's signatures.
    pub async fn certificate(&self, height: u64) -> Result<Certificate, NodeError> {
        match tokio::time::timeout(CERTIFY_WAIT, self.engine.certificate(height)).await {
            Ok(cert) => Ok(cert?),
            Err(_) => Err(NodeError::Uncertified(format!(
                "{} has no certificate of its state at height {height} after {} s: fewer than {} of the {} replicas have executed it, or this replica's state differs from theirs; ask another replica",
                self.replica,
                CERTIFY_WAIT.as_secs(),
                self.replica_set.quorum(),
                self.replica_set.n()
            ))),
        }
    }

    /// The certified form of a receipt this replica committed: its Merkle
    /// proof in its block and the block header's certificate.
    pub async fn certify_receipt(&self, receipt: &Receipt) -> Result<CertifiedReceipt, NodeError> {
        let (receipt, proof, _) = self.ledger.receipt_proof(&receipt.tx)?.ok_or_else(|| {
            NodeError::NotFound(format!(
                "no receipt for transaction {}: it was never committed here",
                receipt.tx
            ))
        })?;
        let certificate = self.certificate(receipt.context.height).await?;
        Ok(CertifiedReceipt {
            receipt,
            proof,
            certificate,
        })
    }

    /// Verifies, orders and executes a transaction (a retry of a committed
    /// one gets the original receipt, and makes no new block), then certifies
    /// its receipt.
    pub async fn submit_certified(
        &self,
        tx: SignedTransaction,
    ) -> Result<CertifiedReceipt, NodeError> {
        let receipt = self.submit(tx).await?;
        self.certify_receipt(&receipt).await
    }

    /// A certified answer: `prove` picks entries from a reader of this
    /// replica's head, and the answer carries that head's certificate.
    pub async fn prove_with(
        &self,
        prove: impl FnOnce(&StateReader) -> Result<Vec<ProvenEntry>, NodeError>,
    ) -> Result<StateAnswer, NodeError> {
        let reader = self.ledger.reader()?;
        let entries = prove(&reader)?;
        let height = reader.head().height;
        drop(reader);
        let certificate = self.certificate(height).await?;
        Ok(StateAnswer {
            certificate,
            entries,
        })
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

    async fn head(&self) -> Result<Certificate, NodeError> {
        self.certificate(self.ledger.head()?.height).await
    }

    async fn submit(&self, tx: SignedTransaction) -> Result<CertifiedReceipt, NodeError> {
        Node::submit_certified(self, tx).await
    }

    async fn receipt(
        &self,
        tx: rr_core::TxId,
        auth: crate::api::Authorization,
    ) -> Result<CertifiedReceipt, NodeError> {
        let caller = self.authorized(&auth, &crate::api::Authorization::receipt_scope(&tx))?;
        let not_found = || {
            NodeError::NotFound(format!(
                "no receipt for transaction {tx} that account {caller} may read: it was never committed here, or {caller} did not sign it"
            ))
        };
        let receipt = self.ledger.receipt(&tx)?.ok_or_else(not_found)?;
        if !self.is_replica(&caller) {
            let signer = self
                .ledger
                .block(receipt.context.height)?
                .and_then(|b| b.txs.get(receipt.index as usize).map(|t| t.body.signer));
            if signer != Some(caller) {
                return Err(not_found());
            }
        }
        self.certify_receipt(&receipt).await
    }

    async fn deliver_fragment(&self, grant: GrantId, fragment: Vec<u8>) -> Result<(), NodeError> {
        Node::deliver_fragment(self, grant, fragment).await
    }

    async fn retrieve(&self, tx: SignedTransaction) -> Result<Retrieval, NodeError> {
        Node::retrieve(self, tx).await
    }

    async fn record(
        &self,
        id: RecordId,
        auth: crate::api::Authorization,
    ) -> Result<StateAnswer, NodeError> {
        let caller = self.authorized(&auth, &crate::api::Authorization::record_scope(&id))?;
        if !self.is_replica(&caller) && !self.may_read_record(&caller, &id)? {
            return Err(NodeError::UnknownRecord(id));
        }
        self.prove_with(|r| Ok(vec![r.prove(Table::Records, &keys::record(&id))?]))
            .await
    }

    async fn grant(
        &self,
        id: GrantId,
        auth: crate::api::Authorization,
    ) -> Result<StateAnswer, NodeError> {
        let caller = self.authorized(&auth, &crate::api::Authorization::grant_scope(&id))?;
        if !self.is_replica(&caller) {
            let visible = self
                .ledger
                .grant(&id)?
                .is_some_and(|g| g.owner == caller || g.grantee == caller);
            if !visible {
                return Err(NodeError::UnknownGrant(id));
            }
        }
        self.prove_with(|r| Ok(vec![r.prove(Table::Grants, &keys::grant(&id))?]))
            .await
    }

    async fn grants_of_record(
        &self,
        id: RecordId,
        auth: crate::api::Authorization,
    ) -> Result<StateAnswer, NodeError> {
        self.check_owner(&id, &auth, &crate::api::Authorization::grants_scope(&id))?;
        self.prove_with(|r| {
            let mut out = vec![r.prove(Table::Records, &keys::record(&id))?];
            for g in prove_listing(r, CountKind::RecordGrants, &id.0, &mut out)? {
                out.push(r.prove(Table::Grants, &g)?);
            }
            Ok(out)
        })
        .await
    }

    async fn audit(
        &self,
        id: RecordId,
        auth: crate::api::Authorization,
    ) -> Result<StateAnswer, NodeError> {
        self.check_owner(&id, &auth, &crate::api::Authorization::audit_scope(&id))?;
        self.prove_with(|r| {
            let record = r
                .snapshot()
                .record(&id)?
                .ok_or(NodeError::UnknownRecord(id))?;
            let mut out = vec![r.prove(Table::Records, &keys::record(&id))?];
            for seq in 0..record.audit_len {
                out.push(r.prove(Table::Audit, &keys::audit(&id, seq))?);
            }
            Ok(out)
        })
        .await
    }

    async fn listing(
        &self,
        account: AccountId,
        auth: crate::api::Authorization,
    ) -> Result<StateAnswer, NodeError> {
        let caller = self.authorized(&auth, &crate::api::Authorization::listing_scope(&account))?;
        if caller != account {
            return Err(NodeError::Forbidden(format!(
                "account {caller} cannot list the records of account {account}"
            )));
        }
        self.prove_with(|r| {
            let mut out = Vec::new();
            for rec in prove_listing(r, CountKind::OwnerRecords, &account.0, &mut out)? {
                out.push(r.prove(Table::Records, &rec)?);
            }
            for g in prove_listing(r, CountKind::GranteeGrants, &account.0, &mut out)? {
                out.push(r.prove(Table::Grants, &g)?);
            }
            Ok(out)
        })
        .await
    }

    async fn put_blob(
        &self,
        data: rr_core::ByteStream,
        auth: crate::api::Authorization,
    ) -> Result<rr_core::ContentId, NodeError> {
        let account = self.authorized(&auth, &crate::api::Authorization::upload_scope())?;
        let reservation = Arc::new(crate::uploads::Reservation::new(
            self.uploads.clone(),
            account,
        ));
        // An upload that declares its length (the HTTP server reports the
        // Content-Length as the stream's exact size hint) is refused before
        // a byte is stored; every upload is counted as it streams.
        if let (lower, Some(upper)) = data.size_hint() {
            if lower == upper {
                reservation
                    .grow_to(upper as u64)
                    .map_err(|q| NodeError::QuotaExceeded {
                        global: q.global,
                        message: q.message,
                    })?;
            }
        }
        let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (counter, metered) = (seen.clone(), reservation.clone());
        let stream = futures::StreamExt::map(data, move |item| {
            let chunk = item?;
            let total = counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::AcqRel)
                + chunk.len() as u64;
            metered.grow_to(total).map_err(std::io::Error::other)?;
            Ok(chunk)
        });
        let cid = self
            .blobs
            .put(Box::pin(stream))
            .await
            .map_err(|e| match e {
                rr_core::BlobError::Source(io) => match crate::uploads::QuotaExceeded::from_io(&io)
                {
                    Some(q) => NodeError::QuotaExceeded {
                        global: q.global,
                        message: q.message.clone(),
                    },
                    None => NodeError::Blob(rr_core::BlobError::Source(io)),
                },
                other => NodeError::Blob(other),
            })?;
        let size = seen.load(std::sync::atomic::Ordering::Acquire);
        self.uploads
            .uploaded(&cid, &account, size, self.clock.now())
            .map_err(uploads_err)?;
        drop(reservation);
        Ok(cid)
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

/// Proves the count of the listing `kind` of `id` and each of its entries
/// into `out`; returns the keys of the members (records or grants) it names.
fn prove_listing(
    r: &StateReader,
    kind: CountKind,
    id: &[u8; 32],
    out: &mut Vec<ProvenEntry>,
) -> Result<Vec<Vec<u8>>, NodeError> {
    out.push(r.prove(Table::Counts, &keys::count(kind, id))?);
    let mut members = Vec::new();
    for (table, key, member) in r.snapshot().listing_keys(kind, id)? {
        out.push(r.prove(table, &key)?);
        members.push(member.to_vec());
    }
    Ok(members)
}

/// The peers of a replica as it fetches blob copies from them: replica `i`
/// as it is reached now, or `None` if it cannot be. By default a replica
/// reaches them over HTTP (`peers[i].api`); a cluster whose replicas run in
/// one process and serve no HTTP (a [`crate::LocalCluster`]) passes handles
/// of its own. Its own place is never asked.
#[derive(Clone)]
pub struct BlobPeers(Arc<dyn Fn(usize) -> Option<Arc<dyn crate::api::NodeApi>> + Send + Sync>);

impl BlobPeers {
    /// Peers reached through `peer`, which gives replica `i`, or `None`
    /// while it is down. (It should hold the replicas weakly: a replica
    /// keeps its `BlobPeers`.)
    pub fn new(
        peer: impl Fn(usize) -> Option<Arc<dyn crate::api::NodeApi>> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(peer))
    }
}

impl BlobPeers {
    /// The peers' HTTP APIs (`peers[i].api`), pinning `ca` if given; each
    /// client is made on first use and kept (a peer whose client cannot be
    /// made is skipped).
    fn http(peers: &[crate::api::Peer], ca: Option<&str>) -> Self {
        let urls: Vec<String> = peers.iter().map(|p| p.api.clone()).collect();
        let ca: Option<Arc<str>> = ca.map(Arc::from);
        let clients: Vec<std::sync::OnceLock<Option<Arc<dyn crate::api::NodeApi>>>> =
            peers.iter().map(|_| std::sync::OnceLock::new()).collect();
        Self::new(move |i| {
            clients
                .get(i)?
                .get_or_init(|| {
                    let client = match &ca {
                        Some(ca) => crate::http::HttpClient::with_ca(&urls[i], ca),
                        None => crate::http::HttpClient::new(&urls[i]),
                    };
                    match client {
                        Ok(c) => Some(Arc::new(c) as Arc<dyn crate::api::NodeApi>),
                        Err(e) => {
                            warn!(target: TARGET, peer = i, error = %e, "blob repair: no client for this peer");
                            None
                        }
                    }
                })
                .clone()
        })
    }
}

impl std::fmt::Debug for BlobPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobPeers")
    }
}

/// A replica's blob store and peers, for fetching a copy it lacks or holds
/// damaged.
struct BlobRepair<B: ?Sized> {
    blobs: Arc<B>,
    /// Replicas in the set.
    n: usize,
    peers: BlobPeers,
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
        repair_blob(&*self.blobs, self.n, &self.peers, self.me, cid).await;
        self.repairing.lock().expect("repairing lock").remove(&cid);
    }
}

/// Fetches blob `cid` from the other replicas until one gives bytes that
/// hash to `cid`, and stores them (over a damaged copy, if any). Bytes that
/// hash to something else are dropped again.
async fn repair_blob<B: BlobStore + ?Sized>(
    blobs: &B,
    n: usize,
    peers: &BlobPeers,
    me: ReplicaId,
    cid: rr_core::ContentId,
) -> bool {
    for i in (0..n).filter(|i| *i != usize::from(me.0)) {
        let Some(client) = (peers.0)(i) else {
            continue;
        };
        let stream = match client.get_blob(cid).await {
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

fn create_dir(dir: &std::path::Path) -> Result<(), NodeError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        NodeError::Setup(format!(
            "cannot create data directory {}: {e}",
            dir.display()
        ))
    })
}

/// Creates `dir` if needed and opens a replica's stores in it: the ledger
/// of `replica_set` (replaying a first-format ledger into the current one
/// through `executor`, headers signed with `key`), the key fragment store
/// and the blob store.
pub(crate) fn open_stores(
    dir: &std::path::Path,
    replica_set: &ReplicaSetInfo,
    executor: &dyn ContractExecutor,
    key: &ReplicaKey,
) -> Result<(Arc<Ledger>, FragmentStore), NodeError> {
    create_dir(dir)?;
    let path = dir.join("ledger.redb");
    let ledger = match Ledger::open_for(&path, replica_set.digest()) {
        Err(LedgerError::NeedsMigration { .. }) => {
            info!(target: TARGET, path = %path.display(), "migrating a ledger of the first format: replaying its blocks");
            let signer = |h: &rr_core::cert::LedgerHeader| rr_core::cert::HeaderSignature {
                replica: key.id(),
                signature: h.sign(key.signing_key()).to_vec(),
            };
            let report =
                rr_storage::migrate_v1(&path, replica_set.digest(), executor, Some(&signer))?;
            info!(target: TARGET, blocks = report.blocks, backup = %report.backup.display(), "ledger migrated; the first-format file is kept");
            Ledger::open_for(&path, replica_set.digest())?
        }
        other => other?,
    };
    let fragments = FragmentStore::open(dir.join("fragments.redb"))?;
    Ok((Arc::new(ledger), fragments))
}

/// The index of uploads no record names yet, `dir/uploads.redb`.
pub(crate) fn open_uploads(
    dir: &std::path::Path,
    limits: crate::uploads::UploadLimits,
) -> Result<crate::uploads::UploadIndex, NodeError> {
    create_dir(dir)?;
    crate::uploads::UploadIndex::open(dir.join("uploads.redb"), limits).map_err(uploads_err)
}

/// A failure of the upload index (a storage failure of the node).
fn uploads_err(e: crate::uploads::UploadIndexError) -> NodeError {
    NodeError::Setup(e.to_string())
}

/// The filesystem blob store in `dir/blobs`.
pub(crate) fn open_fs_blobs(
    dir: &std::path::Path,
    max_blob_size: u64,
) -> Result<FsBlobStore, NodeError> {
    create_dir(dir)?;
    Ok(FsBlobStore::open({
        let mut config = FsBlobStoreConfig::new(dir.join("blobs"));
        config.max_blob_size = Some(max_blob_size);
        config
    })?)
}

fn now() -> rr_core::Timestamp {
    rr_core::Timestamp::from_system_time(std::time::SystemTime::now())
}

/// Most blocks the upload index follower reads in one pass.
const REGISTRATIONS_PER_PASS: u64 = 1024;

/// How often the follower looks for expired grants' fragments.
const EXPIRY_SWEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// How long after a grant's expiry its fragment is erased and the erasure
/// confirmed: enough that the confirmation's block time (the primary's
/// clock) is past the expiry too, which the contracts require.
const EXPIRY_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

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
        let mut done = if self.is_cluster() {
            // A cluster replica resumes where it left off, and confirms what
            // it erased before a restart but never saw confirmed.
            for grant in self.fragments.unconfirmed()? {
                self.confirm_erasure(grant)?;
            }
            self.fragments.followed_through()?
        } else {
            self.ledger.head()?.height
        };
        if !self.peers.is_empty() {
            self.fill_missing_blobs();
        }
        let weak = Arc::downgrade(self);
        let sweep_every = (EXPIRY_SWEEP.as_millis() / poll.as_millis().max(1)).max(1) as u64;
        Ok(tokio::spawn(async move {
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ticks = 0u64;
            loop {
                tick.tick().await;
                let Some(node) = weak.upgrade() else { return };
                match node.erase_revoked_after(done) {
                    Ok(height) => done = height,
                    Err(e) => warn!(target: TARGET, error = %e, "revocation follower: will retry"),
                }
                if let Err(e) = node.note_registrations() {
                    warn!(target: TARGET, error = %e, "upload index follower: will retry");
                }
                ticks += 1;
                if ticks.is_multiple_of(sweep_every) {
                    if let Err(e) = node.erase_expired(done) {
                        warn!(target: TARGET, error = %e, "expiry sweep: will retry");
                    }
                    if let Err(e) = node.sweep_uploads().await {
                        warn!(target: TARGET, error = %e, "upload sweep: will retry");
                    }
                }
            }
        }))
    }

    /// Reads the blocks committed since the upload index last did (at most
    /// [`REGISTRATIONS_PER_PASS`] at a time) and marks the blobs their
    /// registered records name as referenced: they stop counting against
    /// their uploaders and are never swept.
    fn note_registrations(&self) -> Result<(), NodeError> {
        let head = self.ledger.head()?.height;
        let mut from = self.uploads.followed_through().map_err(uploads_err)?;
        while from < head {
            let to = head.min(from + REGISTRATIONS_PER_PASS);
            let mut cids = Vec::new();
            for height in from + 1..=to {
                for receipt in self.ledger.block_receipts(height)?.unwrap_or_default() {
                    if let Outcome::Ok(CallOutput::Registered { record }) = &receipt.outcome {
                        if let Some(info) = self.ledger.record(record)? {
                            cids.push(info.cid);
                        }
                    }
                }
            }
            self.uploads
                .referenced(&cids, Some(to))
                .map_err(uploads_err)?;
            from = to;
        }
        Ok(())
    }

    /// Deletes the blobs no committed record names that were uploaded more
    /// than the grace period ago (by the node's clock), from the blob store
    /// and the index. The ledger is read up to its head first, so a blob a
    /// committed record names is kept. The node runs it every second, from
    /// the task that follows the ledger; on a cluster replica, a blob that
    /// a registration committed during a sweep names is fetched back from
    /// the peers by that task's next pass.
    pub async fn sweep_uploads(&self) -> Result<usize, NodeError> {
        self.note_registrations()?;
        let grace = self.uploads.limits().grace.as_millis() as u64;
        let before = rr_core::Timestamp(self.clock.now().0.saturating_sub(grace));
        let mut deleted = 0;
        // A registration committed after the ledger read above, admitted by
        // another replica, may name a blob deleted here: the follower's next
        // pass reads its block (this sweep runs in the follower, between
        // passes, so that pass comes after the delete), finds the blob
        // missing and fetches it from the peers. The replica admitting a
        // registration touches its upload under the gate first, so its own
        // copy is never deleted under it.
        for (cid, upload) in self.uploads.expired(before).map_err(uploads_err)? {
            let _gate = self.sweep_gate.lock().await;
            if self
                .uploads
                .forget_expired(&cid, before)
                .map_err(uploads_err)?
            {
                self.blobs.delete(&cid).await?;
                deleted += 1;
                metrics::counter!("rr_uploads_swept_total").increment(1);
                metrics::counter!("rr_uploads_swept_bytes_total").increment(upload.size);
                info!(target: TARGET, %cid, account = %upload.account, size = upload.size, "deleted an upload no record named within the grace period");
            }
        }
        metrics::gauge!("rr_unreferenced_upload_bytes").set(self.uploads.total_usage() as f64);
        Ok(deleted)
    }

    /// This replica's index of uploads no committed record names yet.
    pub fn uploads(&self) -> &crate::uploads::UploadIndex {
        &self.uploads
    }

    /// Whether this node is one replica of several (it confirms its
    /// erasures through consensus).
    fn is_cluster(&self) -> bool {
        self.replica_set.n() > 1
    }

    /// Erases this replica's key fragments of grants that have expired (by
    /// its clock, with a margin so the confirmation's block time is past the
    /// expiry too) and, on a cluster, confirms each erasure like a
    /// revocation's.
    fn erase_expired(self: &Arc<Self>, done: u64) -> Result<(), NodeError> {
        let now = self.clock.now();
        let mut expired = Vec::new();
        for grant in self.fragments.grants()? {
            let Some(info) = self.ledger.grant(&grant)? else {
                continue;
            };
            let Some(at) = info.expires_at else {
                continue;
            };
            if now.0 < at.0.saturating_add(EXPIRY_MARGIN.as_millis() as u64) {
                continue;
            }
            self.decoded.forget(&grant);
            if self.fragments.erase(&grant)? {
                info!(target: TARGET, grant = %grant.short(), expired = %at, "grant expired: key fragment erased");
                expired.push(grant);
            }
        }
        if self.is_cluster() && !expired.is_empty() {
            self.fragments.advance(done, &expired)?;
            for grant in expired {
                self.confirm_erasure(grant)?;
            }
        }
        Ok(())
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
        if self.is_cluster() {
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
            n: self.peers.len(),
            peers: self.blob_peers.clone(),
            me: self.replica,
            repairing: self.repairing.clone(),
        }
    }

    /// Submits this replica's signed erasure confirmation for `grant`
    /// (unless it is on the ledger already or under way), retrying while the
    /// cluster cannot order it.
    fn confirm_erasure(self: &Arc<Self>, grant: GrantId) -> Result<(), NodeError> {
        if !self.is_cluster() {
            return Ok(());
        }
        let key = self.key.clone();
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
        let caller = self.authorized(auth, scope)?;
        let record = self.record(id)?;
        if record.owner != caller {
            return Err(NodeError::Forbidden(format!(
                "account {caller} does not own record {id}; only its owner can read this"
            )));
        }
        Ok(())
    }

    /// Checks a read's authorization for `scope` on this cluster: the
    /// account that asks.
    fn authorized(
        &self,
        auth: &crate::api::Authorization,
        scope: &str,
    ) -> Result<AccountId, NodeError> {
        auth.check(&self.replica_set.digest(), scope, now())
    }

    /// Whether `account` is one of the replicas (they may read everything).
    fn is_replica(&self, account: &AccountId) -> bool {
        self.replica_set.keys().contains(account)
    }

    /// Whether `account` owns record `id` or holds a grant of it (revoked
    /// and expired ones included: the grantee knew of the record).
    fn may_read_record(&self, account: &AccountId, id: &RecordId) -> Result<bool, NodeError> {
        let Some(record) = self.ledger.record(id)? else {
            return Ok(false);
        };
        Ok(record.owner == *account
            || self
                .ledger
                .grants_of_record(id)?
                .iter()
                .any(|g| g.grantee == *account))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parts of a one-replica node whose engine runs `contracts`.
    fn parts<P: PreScheme>(
        dir: &std::path::Path,
        pre: P,
        contracts: ContractsConfig,
    ) -> NodeParts<DevTypes<P>> {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let replica_set =
            ReplicaSetInfo::new(vec![AccountId::from_verifying_key(&key.verifying_key())]).unwrap();
        let executor = Arc::new(NativeContracts::new(contracts));
        let replica_key = ReplicaKey::new(ReplicaId(0), key.clone());
        let (ledger, fragments) = open_stores(dir, &replica_set, &*executor, &replica_key).unwrap();
        let engine = Solo::start(
            ledger.clone(),
            executor,
            Arc::new(SystemClock),
            SoloConfig::default(),
            replica_key,
        )
        .unwrap();
        NodeParts {
            engine,
            pre,
            blobs: open_fs_blobs(dir, 1 << 20).unwrap(),
            ledger,
            fragments,
            uploads: open_uploads(dir, Default::default()).unwrap(),
            replica: ReplicaId(0),
            key,
            replica_set,
            sealing: None,
            peers: Vec::new(),
            peers_ca: None,
            blob_peers: None,
            schemes: rr_pre::Schemes::all(),
            clock: Arc::new(SystemClock),
        }
    }

    fn setup_error<T: NodeTypes>(parts: NodeParts<T>) -> String {
        match Node::assemble(parts) {
            Err(NodeError::Setup(m)) => m,
            Err(other) => panic!("expected a setup error, got {other}"),
            Ok(_) => panic!("parts that disagree were assembled"),
        }
    }

    #[tokio::test]
    async fn a_scheme_the_contracts_do_not_allow_is_refused_at_assembly() {
        let dir = tempfile::tempdir().unwrap();
        // The trap of the issue: a recrypt node with the default contracts
        // (Umbral only) used to assemble, then refuse every put.
        let m = setup_error(parts(
            dir.path(),
            rr_pre::Recrypt,
            ContractsConfig::default(),
        ));
        assert!(m.contains("do not allow recrypt"), "{m}");
        assert!(m.contains("scheme_mismatch"), "{m}");
    }

    #[tokio::test]
    async fn contracts_counting_other_replicas_are_refused_at_assembly() {
        let dir = tempfile::tempdir().unwrap();
        let contracts = ContractsConfig {
            replicas: 4,
            ..ContractsConfig::default()
        };
        let m = setup_error(parts(dir.path(), Umbral, contracts));
        assert!(m.contains("count 4 replicas"), "{m}");
    }

    #[tokio::test]
    async fn peers_that_are_not_the_replica_set_are_refused_at_assembly() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = parts(dir.path(), Umbral, ContractsConfig::default());
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        p.peers = vec![crate::api::Peer {
            p2p: "127.0.0.1:1".parse().unwrap(),
            api: "http://127.0.0.1:2".into(),
            public_key: hex::encode(other.verifying_key().as_bytes()),
            sealing_key: crate::sealing::SealingKey::derive(&[1; 32])
                .public()
                .to_hex(),
        }];
        let m = setup_error(p);
        assert!(m.contains("peers[0].public_key"), "{m}");
    }

    #[tokio::test]
    async fn parts_that_agree_assemble() {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::assemble(parts(dir.path(), Umbral, ContractsConfig::default())).unwrap();
        assert_eq!(node.contracts().schemes, vec![rr_core::SchemeId::UMBRAL]);
        node.shutdown().await.unwrap();
    }
}
