//! One replica of a PBFT cluster: the same [`Node`] as `rr-node dev`, on the
//! [`Pbft`] engine over authenticated TCP instead of [`rr_consensus::Solo`].
//!
//! A cluster of `n = 3f + 1` replicas tolerates `f` Byzantine ones. Every
//! replica keeps its own ledger, write-ahead log, key fragments and blob
//! copies in its data directory:
//!
//! ```text
//! DATA_DIR/ledger.redb      committed blocks, receipts, state
//! DATA_DIR/wal.redb         what this replica signed (never contradicted after a restart)
//! DATA_DIR/fragments.redb   this replica's key fragments
//! DATA_DIR/uploads.redb     uploads no committed record names yet (metered, swept)
//! DATA_DIR/blobs/           ciphertext, by content id
//! ```
//!
//! Revocations are applied from the ledger, not from the request that carried
//! them: every replica erases its key fragment once the `Revoke` commits,
//! whichever replica the owner sent it to (see [`Node::follow_revocations`]).

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use rr_consensus::transport::{TcpConfig, TcpNetwork};
use rr_consensus::{Clock, Pbft, PbftConfig, PbftParts, ReplicaKey, ReplicaSet, Wal};
use rr_core::{PreScheme, ReplicaId};
use rr_pre::Umbral;
use rr_storage::FsBlobStore;
use tracing::info;

pub use crate::api::{replica_set_of, Peer};
use crate::contracts::{ContractsConfig, NativeContracts};
use crate::node::{Node, NodeError, NodeParts, NodeTypes};
pub use crate::peers::{ClusterFile, ClusterMember};

const TARGET: &str = "rr_node::cluster";

/// A replica of a PBFT cluster: [`Pbft`], the native contracts, a filesystem
/// blob store, and `P` as the scheme of new records (default Umbral). The
/// replica serves records of every compiled-in scheme either way.
#[derive(Debug)]
pub struct ClusterTypes<P = Umbral>(PhantomData<fn() -> P>);

/// A running replica of a PBFT cluster ([`Node`] on [`ClusterTypes`]).
pub type ClusterReplica<P = Umbral> = Node<ClusterTypes<P>>;

impl<P: PreScheme> NodeTypes for ClusterTypes<P> {
    type Engine = Pbft<NativeContracts>;
    type Pre = P;
    type Blobs = FsBlobStore;
}

/// Settings of one cluster replica. Start from [`ClusterConfig::new`] and
/// set what differs from the defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// This replica's place in `peers`.
    pub replica: ReplicaId,
    /// Data directory (created if missing).
    pub data_dir: PathBuf,
    /// Where to accept replica connections (usually `peers[replica].p2p`; a
    /// different bind address such as `0.0.0.0:PORT` is allowed).
    pub p2p_listen: SocketAddr,
    /// Every replica, in replica order, this one included.
    pub peers: Vec<Peer>,
    /// Engine settings (every replica must use the same checkpoint interval
    /// and window).
    pub pbft: PbftConfig,
    /// Largest blob accepted (default 16 GiB).
    pub max_blob_size: u64,
    /// Allow grants of single-proxy schemes (recrypt), where any one replica
    /// can re-encrypt for a grantee on its own, even after a revocation
    /// (default `false`). Every replica must use the same value.
    pub allow_single_proxy: bool,
    /// Contract policies run before the native contracts (default: none).
    /// Every replica must run the same ones.
    pub policies: crate::contracts::Policies,
    /// The CA that issued the peers' API certificates (PEM), pinned when
    /// this replica fetches blob copies from them over `https://`.
    pub peers_ca: Option<String>,
    /// Quota and cap of uploads no committed record names yet, and how long
    /// they are kept (default [`crate::uploads::UploadLimits::default`]).
    pub uploads: crate::uploads::UploadLimits,
    /// The peers as this replica fetches blob copies it lacks from them,
    /// when they run in the same process and serve no HTTP (default `None`:
    /// at `peers[i].api`).
    pub blob_peers: Option<crate::node::BlobPeers>,
}

impl ClusterConfig {
    /// Replica `replica` of `peers`, keeping its data in `data_dir`, with
    /// the defaults: it listens for replicas on its own `p2p` address,
    /// [`PbftConfig::default`], 16 GiB blobs at most, single-proxy grants
    /// refused, no policies.
    pub fn new(replica: ReplicaId, data_dir: impl Into<PathBuf>, peers: Vec<Peer>) -> Self {
        let p2p_listen = peers
            .get(usize::from(replica.0))
            .map(|p| p.p2p)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        Self {
            replica,
            data_dir: data_dir.into(),
            p2p_listen,
            peers,
            pbft: PbftConfig::default(),
            max_blob_size: 16 << 30,
            allow_single_proxy: false,
            policies: crate::contracts::Policies::default(),
            peers_ca: None,
            uploads: crate::uploads::UploadLimits::default(),
            blob_peers: None,
        }
    }

    /// This configuration with `limits` on uploads no record names yet.
    pub fn with_upload_limits(mut self, limits: crate::uploads::UploadLimits) -> Self {
        self.uploads = limits;
        self
    }

    /// Checks the replica set: at least 4 replicas (one faulty replica
    /// tolerated), this replica in it, distinct keys and addresses.
    pub fn validate(&self) -> Result<ReplicaSet, NodeError> {
        let n = self.peers.len();
        if n < 4 {
            return Err(NodeError::Setup(format!(
                "a cluster needs at least 4 replicas to tolerate one fault, the configuration lists {n} (for one replica use `rr-node dev`)"
            )));
        }
        if usize::from(self.replica.0) >= n {
            return Err(NodeError::Setup(format!(
                "replica {} is not in the replica set of {n} (replicas are numbered 0 to {})",
                self.replica.0,
                n - 1
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.peers {
            if !seen.insert(p.p2p) {
                return Err(NodeError::Setup(format!(
                    "two replicas share the address {}",
                    p.p2p
                )));
            }
        }
        let keys = self
            .peers
            .iter()
            .map(Peer::verifying_key)
            .collect::<Result<Vec<_>, _>>()?;
        for (i, p) in self.peers.iter().enumerate() {
            crate::sealing::SealingPublicKey::from_hex(&p.sealing_key)
                .map_err(|e| NodeError::Setup(format!("peers[{i}].sealing_key: {e}")))?;
        }
        ReplicaSet::new(keys).map_err(|e| NodeError::Setup(format!("replica set: {e}")))
    }
}

impl<P: PreScheme> Node<ClusterTypes<P>> {
    /// Opens (or creates, or restarts) one cluster replica: binds its replica
    /// port, starts [`Pbft`] on its ledger and write-ahead log, erases key
    /// fragments of grants revoked while it was down, and follows the ledger
    /// to erase fragments of grants revoked from now on. Must be called inside
    /// a tokio runtime.
    ///
    /// `key` must be the secret half of `peers[replica].public_key`, and
    /// `sealing` of `peers[replica].sealing_key`.
    pub async fn open_cluster(
        config: ClusterConfig,
        key: SigningKey,
        sealing: crate::sealing::SealingKey,
        pre: P,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, NodeError> {
        let set = config.validate()?;
        let me = config.replica;
        if set.key(me) != Some(&key.verifying_key()) {
            return Err(NodeError::Setup(format!(
                "the replica key does not match peers[{}].public_key: wrong key file or wrong replica number",
                me.0
            )));
        }
        if sealing.public().to_hex() != config.peers[usize::from(me.0)].sealing_key {
            return Err(NodeError::Setup(format!(
                "the sealing key does not match peers[{}].sealing_key: wrong key file or wrong replica number",
                me.0
            )));
        }
        let replica_key = ReplicaKey::new(me, key.clone());
        let listener = tokio::net::TcpListener::bind(config.p2p_listen)
            .await
            .map_err(|e| {
                NodeError::Setup(format!(
                    "cannot listen for replicas on {}: {e}",
                    config.p2p_listen
                ))
            })?;
        let network = TcpNetwork::start(
            replica_key.clone(),
            set.clone(),
            listener,
            TcpConfig::new(config.peers.iter().map(|p| p.p2p).collect()),
        )
        .map_err(|e| NodeError::Setup(format!("replica network: {e}")))?;
        Self::open_cluster_on(config, key, sealing, pre, clock, Arc::new(network)).await
    }

    /// Like [`Node::open_cluster`] on `network` instead of TCP on
    /// `config.p2p_listen`: the in-process router of rr-consensus's
    /// `harness` feature (with its faults), or a transport of your own.
    /// `network` must already be this replica's endpoint, authenticated as
    /// `key` to its peers.
    pub async fn open_cluster_on(
        config: ClusterConfig,
        key: SigningKey,
        sealing: crate::sealing::SealingKey,
        pre: P,
        clock: Arc<dyn Clock>,
        network: Arc<dyn rr_consensus::Network>,
    ) -> Result<Arc<Self>, NodeError> {
        let set = config.validate()?;
        let me = config.replica;
        if set.key(me) != Some(&key.verifying_key()) {
            return Err(NodeError::Setup(format!(
                "the replica key does not match peers[{}].public_key: wrong key file or wrong replica number",
                me.0
            )));
        }
        let dir = &config.data_dir;
        let replica_set = replica_set_of(config.peers.iter().cloned())?;
        let replica_key = ReplicaKey::new(me, key.clone());
        let schemes = rr_pre::Schemes::all();
        let contracts = ContractsConfig {
            replicas: set.n() as u16,
            replica_accounts: replica_set.keys().to_vec(),
            schemes: schemes.ids(),
            single_proxy_schemes: schemes.single_proxy_ids(),
            allow_single_proxy: config.allow_single_proxy,
            ..ContractsConfig::default()
        };
        let executor =
            Arc::new(NativeContracts::new(contracts).with_policies(config.policies.clone()));
        let (ledger, fragments) =
            crate::node::open_stores(dir, &replica_set, &*executor, &replica_key)?;
        let blobs = crate::node::open_fs_blobs(dir, config.max_blob_size)?;
        let uploads = crate::node::open_uploads(dir, config.uploads.clone())?;
        let wal =
            Arc::new(Wal::open(dir.join("wal.redb")).map_err(|e| {
                NodeError::Setup(format!("write-ahead log {}: {e}", dir.display()))
            })?);
        let engine = Pbft::start(PbftParts {
            config: config.pbft.clone(),
            key: replica_key,
            replicas: set.clone(),
            ledger: ledger.clone(),
            wal,
            executor,
            clock: clock.clone(),
            network,
        })?;
        let node = Arc::new(Node::assemble(NodeParts {
            engine,
            pre,
            blobs,
            ledger,
            fragments,
            uploads,
            replica: me,
            key,
            replica_set,
            sealing: Some(sealing),
            peers: config.peers.clone(),
            peers_ca: config.peers_ca.clone(),
            blob_peers: config.blob_peers.clone(),
            schemes,
            clock,
        })?);
        node.follow_revocations(Duration::from_millis(20))?;
        info!(
            target: TARGET,
            replica = %me,
            n = set.n(),
            f = set.f(),
            dir = %dir.display(),
            height = node.status().height,
            "cluster replica open"
        );
        Ok(node)
    }
}
