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

use ed25519_dalek::{SigningKey, VerifyingKey};
use rr_consensus::transport::{TcpConfig, TcpNetwork};
use rr_consensus::{Clock, Pbft, PbftConfig, PbftParts, ReplicaKey, ReplicaSet, Wal};
use rr_core::{PreScheme, ReplicaId};
use rr_pre::Umbral;
use rr_storage::FsBlobStore;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::contracts::{ContractsConfig, NativeContracts};
use crate::node::{Node, NodeError, NodeParts, NodeTypes};

const TARGET: &str = "rr_node::cluster";

/// A replica of a PBFT cluster: [`Pbft`], the native contracts, a filesystem
/// blob store, and `P` as the scheme of new records (default Umbral). The
/// replica serves records of every compiled-in scheme either way.
#[derive(Debug)]
pub struct ClusterNode<P = Umbral>(PhantomData<fn() -> P>);

impl<P: PreScheme> NodeTypes for ClusterNode<P> {
    type Engine = Pbft<NativeContracts>;
    type Pre = P;
    type Executor = NativeContracts;
    type Blobs = FsBlobStore;
}

/// One member of the replica set, as every replica and client configures it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Address replicas reach it on (replica-to-replica TCP).
    pub p2p: SocketAddr,
    /// Base URL of its HTTP API, such as `http://127.0.0.1:7701`.
    pub api: String,
    /// Its ed25519 replica key, hex (it signs every protocol message).
    pub public_key: String,
    /// Its X25519 sealing key, hex: clients seal its key fragments to it.
    pub sealing_key: String,
}

impl Peer {
    /// The replica key, decoded.
    pub fn verifying_key(&self) -> Result<VerifyingKey, NodeError> {
        let bytes: [u8; 32] = hex::decode(&self.public_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                NodeError::Setup(format!(
                    "peer {}: public_key is not 64 hex digits (32 bytes)",
                    self.p2p
                ))
            })?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| {
            NodeError::Setup(format!(
                "peer {}: public_key is not a valid ed25519 key",
                self.p2p
            ))
        })
    }
}

/// The replica set of `peers`, in order.
pub fn replica_set_of(
    peers: impl IntoIterator<Item = Peer>,
) -> Result<rr_core::cert::ReplicaSetInfo, NodeError> {
    let keys = peers
        .into_iter()
        .map(|p| {
            p.verifying_key()
                .map(|k| rr_core::AccountId::from_verifying_key(&k))
        })
        .collect::<Result<Vec<_>, _>>()?;
    rr_core::cert::ReplicaSetInfo::new(keys)
        .map_err(|e| NodeError::Setup(format!("replica set: {e}")))
}

/// Settings of one cluster replica.
#[derive(Clone, Debug)]
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
}

impl ClusterConfig {
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

impl<P: PreScheme> Node<ClusterNode<P>> {
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
        let executor = Arc::new(NativeContracts::new(contracts.clone()));
        let (ledger, fragments, blobs) = crate::node::open_stores(
            dir,
            config.max_blob_size,
            &replica_set,
            &*executor,
            &replica_key,
        )?;
        let wal =
            Arc::new(Wal::open(dir.join("wal.redb")).map_err(|e| {
                NodeError::Setup(format!("write-ahead log {}: {e}", dir.display()))
            })?);
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
        let engine = Pbft::start(PbftParts {
            config: config.pbft.clone(),
            key: replica_key,
            replicas: set.clone(),
            ledger: ledger.clone(),
            wal,
            executor,
            clock: clock.clone(),
            network: Arc::new(network),
        })?;
        let node = Arc::new(Node::assemble(NodeParts {
            engine,
            pre,
            blobs,
            ledger,
            fragments,
            replica: me,
            key,
            replica_set,
            sealing: Some(sealing),
            peers: config.peers.clone(),
            contracts,
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

/// `cluster.json`: what `rr-node localnet` started, for the `rr` CLI
/// (`rr --node DIR/cluster.json`) and for people (which process is which).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterFile {
    /// Replicas n.
    pub n: usize,
    /// Byzantine faults tolerated f.
    pub f: usize,
    /// Scheme of new records.
    pub scheme: String,
    /// Every replica, in replica order.
    pub replicas: Vec<ClusterMember>,
}

/// One replica in `cluster.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMember {
    /// Its number.
    pub replica: u16,
    /// Base URL of its HTTP API.
    pub api: String,
    /// Its replica-to-replica address.
    pub p2p: SocketAddr,
    /// Its ed25519 replica key, hex.
    pub public_key: String,
    /// Its X25519 sealing key, hex.
    pub sealing_key: String,
    /// Its process id while `localnet` runs it.
    pub pid: Option<u32>,
    /// Its configuration file (`rr-node run --config` restarts it).
    pub config: PathBuf,
    /// Its log file.
    pub log: PathBuf,
}

impl ClusterMember {
    /// Its entry in a peers list: addresses and public keys.
    pub fn peer(&self) -> Peer {
        Peer {
            p2p: self.p2p,
            api: self.api.clone(),
            public_key: self.public_key.clone(),
            sealing_key: self.sealing_key.clone(),
        }
    }
}

impl ClusterFile {
    /// The replica set the file names: every replica's key, in order.
    pub fn replica_set(&self) -> Result<rr_core::cert::ReplicaSetInfo, NodeError> {
        replica_set_of(self.replicas.iter().map(ClusterMember::peer))
    }

    /// Reads and checks a `cluster.json`.
    pub fn read(path: &std::path::Path) -> Result<Self, NodeError> {
        let bytes = std::fs::read(path).map_err(|e| {
            NodeError::Setup(format!(
                "cannot read the cluster file {}: {e}",
                path.display()
            ))
        })?;
        let file: Self = serde_json::from_slice(&bytes).map_err(|e| {
            NodeError::Setup(format!(
                "{} is not a cluster file written by `rr-node localnet`: {e}",
                path.display()
            ))
        })?;
        if file.replicas.is_empty() || file.replicas.len() != file.n {
            return Err(NodeError::Setup(format!(
                "{} lists {} replicas but says n = {}",
                path.display(),
                file.replicas.len(),
                file.n
            )));
        }
        if file
            .replicas
            .iter()
            .enumerate()
            .any(|(i, m)| usize::from(m.replica) != i)
        {
            return Err(NodeError::Setup(format!(
                "{}: replicas must be listed in order 0, 1, 2, …",
                path.display()
            )));
        }
        Ok(file)
    }

    /// Writes it atomically (a temporary file, then a rename).
    pub fn write(&self, path: &std::path::Path) -> Result<(), NodeError> {
        let io =
            |e: std::io::Error| NodeError::Setup(format!("cannot write {}: {e}", path.display()));
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        serde_json::to_writer_pretty(&mut tmp, self).map_err(|e| io(std::io::Error::other(e)))?;
        use std::io::Write;
        tmp.write_all(b"\n").map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }
}
