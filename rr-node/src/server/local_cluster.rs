//! A PBFT cluster of real replicas in one process: [`LocalCluster`].
//!
//! Each replica is the same [`crate::Node`] as a replica `rr-node run` starts, with
//! its own data directory, ledger, write-ahead log, key fragments and blob
//! copies; only the processes are shared. The replicas talk over loopback
//! TCP ([`LocalCluster::start`]) or, with the `testing` feature, over the
//! fault-injecting in-process router of rr-consensus
//! (`LocalCluster::start_on_router`). Clients reach them in process
//! ([`LocalCluster::client`]) and check every answer as they would over
//! HTTP. [`LocalCluster::builder`] sets the engine and blob settings, and
//! [`LocalCluster::replicas_with`] lets a test stand its own [`NodeApi`]
//! (say, a replica that lies) in for a replica.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use rr_core::{byte_stream_of, Purpose};
//! use rr_node::{collect, GrantOptions, Identity, LocalCluster};
//! use rr_pre::Umbral;
//!
//! let dir = tempfile::tempdir()?;
//! let cluster = LocalCluster::start(dir.path(), 4).await?;
//! let alice = cluster.client(Identity::generate(&Umbral));
//! let bob = cluster.client(Identity::generate(&Umbral));
//! let put = alice.put(byte_stream_of(b"ECG, 12 leads".to_vec()), "text/plain").await?;
//! let treatment = Purpose::new("treatment")?;
//! let grant = alice
//!     .grant(put.record_id, &bob.card(), GrantOptions {
//!         purpose: treatment.clone(),
//!         expires_at: None,
//!         threshold: None,
//!     })
//!     .await?;
//! assert_eq!(collect(bob.retrieve(grant, treatment).await?).await?, b"ECG, 12 leads");
//! cluster.shutdown().await?;
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use rr_consensus::{Clock, PbftConfig, SystemClock};
use rr_core::cert::ReplicaSetInfo;
use rr_core::ReplicaId;
use rr_pre::Umbral;

use rr_core::proof::{CertifiedReceipt, StateAnswer};

use crate::api::{Authorization, NodeApi, NodeError, Peer, Retrieval};
use crate::client::{Client, Identity};
use crate::cluster::{replica_set_of, ClusterConfig, ClusterReplica};
use crate::node::BlobPeers;
use crate::replicas::Replicas;
use crate::sealing::{SealingKey, SealingPublicKey};

/// How the replicas of a [`LocalCluster`] reach each other.
#[derive(Clone)]
enum Links {
    /// Loopback TCP, authenticated with the replica keys (as in production).
    Tcp,
    /// The in-process router of rr-consensus's harness.
    #[cfg(feature = "testing")]
    Router(Arc<rr_consensus::harness::Router>),
}

/// `n` replicas of a PBFT cluster in this process; see the module docs.
pub struct LocalCluster {
    dir: PathBuf,
    peers: Vec<Peer>,
    keys: Vec<SigningKey>,
    /// Seeds of the sealing keys (a key is derived from its seed each time
    /// a replica opens).
    sealing: Vec<zeroize::Zeroizing<[u8; 32]>>,
    pbft: PbftConfig,
    /// [`ClusterConfig::max_blob_size`], if not the default.
    max_blob_size: Option<u64>,
    clock: Arc<dyn Clock>,
    links: Links,
    /// The running replicas, shared with the clients' members, which look
    /// up the current instance on every call (so a client made before a
    /// restart reaches the new one, and holds no stopped one open).
    replicas: Slots,
}

type Slots = Arc<std::sync::RwLock<Vec<Option<Arc<ClusterReplica>>>>>;

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("dir", &self.dir)
            .field("n", &self.peers.len())
            .field("running", &self.running().len())
            .finish()
    }
}

fn free_loopback_addr() -> Result<std::net::SocketAddr, NodeError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| NodeError::Setup(format!("no free loopback port: {e}")))
}

impl LocalCluster {
    /// Starts `n` replicas (n = 3f + 1, at least 4) with fresh keys, their
    /// data in `dir/replica-<i>`, talking over loopback TCP, with
    /// [`PbftConfig::default`]. Must be called inside a tokio runtime.
    /// [`LocalCluster::builder`] sets more.
    pub async fn start(dir: impl AsRef<Path>, n: usize) -> Result<Self, NodeError> {
        Self::builder(dir, n).start().await
    }

    /// Like [`LocalCluster::start`] with the replicas on `router` (made for
    /// `n` replicas), whose faults (loss, delay, partitions) the caller
    /// sets.
    #[cfg(feature = "testing")]
    #[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
    pub async fn start_on_router(
        dir: impl AsRef<Path>,
        n: usize,
        pbft: PbftConfig,
        router: Arc<rr_consensus::harness::Router>,
    ) -> Result<Self, NodeError> {
        Self::builder(dir, n)
            .pbft(pbft)
            .on_router(router)
            .start()
            .await
    }

    /// The settings of a cluster of `n` replicas keeping their data in
    /// `dir/replica-<i>`, to change before [`LocalClusterBuilder::start`]:
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use rr_consensus::PbftConfig;
    /// use rr_node::LocalCluster;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let cluster = LocalCluster::builder(dir.path(), 4)
    ///     .pbft(PbftConfig::for_tests())
    ///     .max_blob_size(1 << 30)
    ///     .start()
    ///     .await?;
    /// assert_eq!(cluster.config(0).max_blob_size, 1 << 30);
    /// cluster.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(dir: impl AsRef<Path>, n: usize) -> LocalClusterBuilder {
        LocalClusterBuilder {
            dir: dir.as_ref().to_path_buf(),
            n,
            pbft: PbftConfig::default(),
            max_blob_size: None,
            links: Links::Tcp,
        }
    }

    async fn start_with(builder: LocalClusterBuilder) -> Result<Self, NodeError> {
        let LocalClusterBuilder {
            dir,
            n,
            pbft,
            max_blob_size,
            links,
        } = builder;
        let keys: Vec<SigningKey> = (0..n).map(|_| SigningKey::generate(&mut OsRng)).collect();
        let sealing: Vec<zeroize::Zeroizing<[u8; 32]>> = (0..n)
            .map(|_| {
                let mut seed = zeroize::Zeroizing::new([0u8; 32]);
                rand_core::RngCore::fill_bytes(&mut OsRng, &mut seed[..]);
                seed
            })
            .collect();
        let peers = keys
            .iter()
            .zip(&sealing)
            .enumerate()
            .map(|(i, (k, s))| {
                Ok(Peer {
                    p2p: free_loopback_addr()?,
                    // Reached in process; no HTTP server runs.
                    api: format!("http://127.0.0.1:{}", 1 + i),
                    public_key: hex::encode(k.verifying_key().as_bytes()),
                    sealing_key: SealingKey::derive(s).public().to_hex(),
                })
            })
            .collect::<Result<Vec<_>, NodeError>>()?;
        let mut cluster = Self {
            dir,
            peers,
            keys,
            sealing,
            pbft,
            max_blob_size,
            clock: Arc::new(SystemClock),
            links,
            replicas: Arc::new(std::sync::RwLock::new((0..n).map(|_| None).collect())),
        };
        for i in 0..n {
            cluster.restart(i).await?;
        }
        Ok(cluster)
    }

    /// Number of replicas.
    pub fn n(&self) -> usize {
        self.peers.len()
    }

    /// Replica `i`, if it runs.
    pub fn replica(&self, i: usize) -> Option<Arc<ClusterReplica>> {
        self.replicas
            .read()
            .expect("replicas lock")
            .get(i)
            .and_then(Clone::clone)
    }

    /// The running replicas, with their numbers.
    pub fn running(&self) -> Vec<(usize, Arc<ClusterReplica>)> {
        self.replicas
            .read()
            .expect("replicas lock")
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.clone().map(|r| (i, r)))
            .collect()
    }

    /// Every replica's addresses and public keys, in order.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// The replica set clients trust.
    pub fn replica_set(&self) -> Result<ReplicaSetInfo, NodeError> {
        replica_set_of(self.peers.iter().cloned())
    }

    /// Every replica's public sealing key, in order: what clients seal key
    /// fragments to (`peers()[i].sealing_key`, decoded).
    pub fn sealing_public_keys(&self) -> Vec<SealingPublicKey> {
        self.sealing
            .iter()
            .map(|s| SealingKey::derive(s).public())
            .collect()
    }

    /// Replica `i`'s settings (its data directory, the peers, the engine
    /// and blob settings), as [`LocalCluster::restart`] opens it.
    pub fn config(&self, i: usize) -> ClusterConfig {
        let mut config = ClusterConfig::new(
            ReplicaId(i as u16),
            self.dir.join(format!("replica-{i}")),
            self.peers.clone(),
        );
        config.pbft = self.pbft.clone();
        if let Some(max) = self.max_blob_size {
            config.max_blob_size = max;
        }
        // The replicas serve no HTTP: blob copies come from each other in
        // process (weakly held, so a replica does not keep its peers open).
        let slots = Arc::downgrade(&self.replicas);
        config.blob_peers = Some(BlobPeers::new(move |i| {
            let slots = slots.upgrade()?;
            let replica = slots.read().expect("replicas lock").get(i)?.clone()?;
            Some(replica as Arc<dyn NodeApi>)
        }));
        config
    }

    /// Replica `i`'s secret replica key, so that a test can play a
    /// Byzantine replica that signs as replica `i` (headers, certificates,
    /// capsule fragments). Only with the `testing` feature: a cluster that
    /// is not a test has no use for it. `None` if there is no replica `i`.
    #[cfg(feature = "testing")]
    #[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
    pub fn signing_key_for_testing(&self, i: usize) -> Option<SigningKey> {
        self.keys.get(i).cloned()
    }

    /// Stops replica `i` (as a crash that lost no committed data: its files
    /// stay). Nothing if it is not running.
    pub async fn stop(&mut self, i: usize) -> Result<(), NodeError> {
        let taken = self
            .replicas
            .write()
            .expect("replicas lock")
            .get_mut(i)
            .and_then(Option::take);
        if let Some(r) = taken {
            r.shutdown().await?;
        }
        Ok(())
    }

    /// Starts replica `i` again from its data directory (or for the first
    /// time). Its TCP port may take a moment to be free after a stop: this
    /// retries for up to 10 s.
    pub async fn restart(&mut self, i: usize) -> Result<(), NodeError> {
        if i >= self.n() {
            return Err(NodeError::Setup(format!(
                "replica {i} is not in this cluster of {}",
                self.n()
            )));
        }
        self.stop(i).await?;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let node = loop {
            let opened = match &self.links {
                Links::Tcp => {
                    ClusterReplica::open_cluster(
                        self.config(i),
                        self.keys[i].clone(),
                        SealingKey::derive(&self.sealing[i]),
                        Umbral,
                        self.clock.clone(),
                    )
                    .await
                }
                #[cfg(feature = "testing")]
                Links::Router(router) => {
                    ClusterReplica::open_cluster_on(
                        self.config(i),
                        self.keys[i].clone(),
                        SealingKey::derive(&self.sealing[i]),
                        Umbral,
                        self.clock.clone(),
                        router.endpoint(ReplicaId(i as u16)),
                    )
                    .await
                }
            };
            match opened {
                Ok(node) => break node,
                // The old instance's files and port are released once its
                // tasks end.
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await
                }
                Err(e) => return Err(e),
            }
        };
        self.replicas.write().expect("replicas lock")[i] = Some(node);
        Ok(())
    }

    /// Every replica as a client reaches it in process, in order: a
    /// stopped one answers at once that it is down, a restarted one is
    /// reached as it is now, and none is kept open by its member.
    pub fn members(&self) -> Vec<Arc<dyn NodeApi>> {
        (0..self.n())
            .map(|i| {
                Arc::new(Member {
                    slots: self.replicas.clone(),
                    i,
                }) as Arc<dyn NodeApi>
            })
            .collect()
    }

    /// The replica set as a client sees it: every replica in process
    /// ([`LocalCluster::members`]), the trusted keys and the sealing keys.
    pub fn client_replicas(&self) -> Result<Replicas, NodeError> {
        self.replicas_with(self.members())
    }

    /// The replica set as a client sees it, reaching replica `i` through
    /// `members[i]`: the cluster's trusted keys and sealing keys with
    /// members of the caller's, such as [`LocalCluster::members`] with one
    /// wrapped to lie, delay or drop answers, or an HTTP client of a
    /// replica's API. Every answer is checked against the trusted keys, so
    /// a member that is not what it claims is refused like a lying replica.
    /// An error if `members` is not one per replica.
    pub fn replicas_with(&self, members: Vec<Arc<dyn NodeApi>>) -> Result<Replicas, NodeError> {
        Replicas::new(members, self.replica_set()?)?.with_sealing_keys(self.sealing_public_keys())
    }

    /// A client acting as `identity` on this cluster.
    pub fn client(&self, identity: Identity<Umbral>) -> Client<Umbral> {
        let replicas = self
            .client_replicas()
            .expect("a local cluster's own replica set is valid");
        Client::new(replicas, Arc::new(Umbral), identity)
    }

    /// Stops every replica.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        for i in 0..self.n() {
            self.stop(i).await?;
        }
        Ok(())
    }
}

/// The settings of a [`LocalCluster`] before it starts, from
/// [`LocalCluster::builder`]: by default loopback TCP,
/// [`PbftConfig::default`] and [`ClusterConfig::new`]'s blob limit.
#[must_use = "a builder starts nothing until `start` is called"]
pub struct LocalClusterBuilder {
    dir: PathBuf,
    n: usize,
    pbft: PbftConfig,
    max_blob_size: Option<u64>,
    links: Links,
}

impl std::fmt::Debug for LocalClusterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalClusterBuilder")
            .field("dir", &self.dir)
            .field("n", &self.n)
            .field("pbft", &self.pbft)
            .field("max_blob_size", &self.max_blob_size)
            .finish_non_exhaustive()
    }
}

impl LocalClusterBuilder {
    /// Every replica's engine settings ([`ClusterConfig::pbft`]), such as
    /// [`PbftConfig::for_tests`] for the short timeouts of a test.
    pub fn pbft(mut self, pbft: PbftConfig) -> Self {
        self.pbft = pbft;
        self
    }

    /// The largest blob every replica accepts, in bytes
    /// ([`ClusterConfig::max_blob_size`]).
    pub fn max_blob_size(mut self, bytes: u64) -> Self {
        self.max_blob_size = Some(bytes);
        self
    }

    /// The replicas talk over `router` (made for `n` replicas), the
    /// in-process router of rr-consensus's harness, whose faults (loss,
    /// delay, partitions) the caller sets, instead of loopback TCP.
    #[cfg(feature = "testing")]
    #[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
    pub fn on_router(mut self, router: Arc<rr_consensus::harness::Router>) -> Self {
        self.links = Links::Router(router);
        self
    }

    /// Starts the replicas (with fresh keys). Must be called inside a tokio
    /// runtime.
    pub async fn start(self) -> Result<LocalCluster, NodeError> {
        LocalCluster::start_with(self).await
    }
}

/// Replica `i` of a [`LocalCluster`] as a client reaches it: the instance
/// running now, or, while it is stopped, an error at once.
struct Member {
    slots: Slots,
    i: usize,
}

impl Member {
    fn now(&self) -> Result<Arc<ClusterReplica>, NodeError> {
        self.slots
            .read()
            .expect("replicas lock")
            .get(self.i)
            .and_then(Clone::clone)
            .ok_or_else(|| NodeError::Transport(format!("replica {} is stopped", self.i)))
    }
}

#[async_trait::async_trait]
impl NodeApi for Member {
    async fn info(&self) -> Result<crate::api::NodeInfo, NodeError> {
        NodeApi::info(&*self.now()?).await
    }
    async fn head(&self) -> Result<rr_core::cert::Certificate, NodeError> {
        NodeApi::head(&*self.now()?).await
    }
    async fn submit(&self, tx: rr_core::SignedTransaction) -> Result<CertifiedReceipt, NodeError> {
        NodeApi::submit(&*self.now()?, tx).await
    }
    async fn receipt(
        &self,
        tx: rr_core::TxId,
        auth: Authorization,
    ) -> Result<CertifiedReceipt, NodeError> {
        NodeApi::receipt(&*self.now()?, tx, auth).await
    }
    async fn deliver_fragment(&self, grant: rr_core::GrantId, f: Vec<u8>) -> Result<(), NodeError> {
        NodeApi::deliver_fragment(&*self.now()?, grant, f).await
    }
    async fn retrieve(&self, tx: rr_core::SignedTransaction) -> Result<Retrieval, NodeError> {
        NodeApi::retrieve(&*self.now()?, tx).await
    }
    async fn record(
        &self,
        id: rr_core::RecordId,
        auth: Authorization,
    ) -> Result<StateAnswer, NodeError> {
        NodeApi::record(&*self.now()?, id, auth).await
    }
    async fn grant(
        &self,
        id: rr_core::GrantId,
        auth: Authorization,
    ) -> Result<StateAnswer, NodeError> {
        NodeApi::grant(&*self.now()?, id, auth).await
    }
    async fn grants_of_record(
        &self,
        id: rr_core::RecordId,
        auth: Authorization,
    ) -> Result<StateAnswer, NodeError> {
        NodeApi::grants_of_record(&*self.now()?, id, auth).await
    }
    async fn audit(
        &self,
        id: rr_core::RecordId,
        auth: Authorization,
    ) -> Result<StateAnswer, NodeError> {
        NodeApi::audit(&*self.now()?, id, auth).await
    }
    async fn listing(
        &self,
        account: rr_core::AccountId,
        auth: Authorization,
    ) -> Result<StateAnswer, NodeError> {
        NodeApi::listing(&*self.now()?, account, auth).await
    }
    async fn put_blob(
        &self,
        data: rr_core::ByteStream,
        auth: Authorization,
    ) -> Result<rr_core::ContentId, NodeError> {
        NodeApi::put_blob(&*self.now()?, data, auth).await
    }
    async fn get_blob(&self, cid: rr_core::ContentId) -> Result<rr_core::ByteStream, NodeError> {
        NodeApi::get_blob(&*self.now()?, cid).await
    }
    async fn get_blob_from(
        &self,
        cid: rr_core::ContentId,
        offset: u64,
    ) -> Result<rr_core::ByteStream, NodeError> {
        NodeApi::get_blob_from(&*self.now()?, cid, offset).await
    }
}
