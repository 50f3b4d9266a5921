//! N PBFT replicas on one router, each with its own ledger and WAL.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use rr_core::{ConsensusEngine, ContractExecutor, ReplicaId};
use rr_storage::Ledger;

use super::router::Router;
use crate::clock::{Clock, SystemClock};
use crate::pbft::{Pbft, PbftConfig, PbftParts, ReplicaKey, ReplicaSet, Wal};

/// One running replica of a [`Cluster`].
pub struct ClusterNode<E> {
    /// The engine.
    pub engine: Arc<Pbft<E>>,
    /// Its ledger.
    pub ledger: Arc<Ledger>,
}

/// N replicas in process. Replica keys are derived from the replica index, so
/// a test can sign as any replica (to play a Byzantine one).
pub struct Cluster<E> {
    /// The network between the replicas.
    pub router: Arc<Router>,
    dir: PathBuf,
    keys: Vec<ReplicaKey>,
    set: ReplicaSet,
    config: PbftConfig,
    executor: Arc<E>,
    clock: Arc<dyn Clock>,
    nodes: Vec<Option<ClusterNode<E>>>,
}

impl<E> std::fmt::Debug for Cluster<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .field("n", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// The harness key of replica `i`.
pub fn harness_key(i: usize) -> SigningKey {
    SigningKey::from_bytes(&blake3::derive_key(
        "rr-consensus harness replica key",
        &(i as u64).to_le_bytes(),
    ))
}

impl<E: ContractExecutor> Cluster<E> {
    /// Starts `n` replicas with files under `dir`, the router seeded with
    /// `seed`. Must be called inside a tokio runtime.
    pub fn start(
        n: usize,
        dir: &Path,
        config: PbftConfig,
        executor: Arc<E>,
        seed: u64,
    ) -> Result<Self, String> {
        let keys: Vec<ReplicaKey> = (0..n)
            .map(|i| ReplicaKey::new(ReplicaId(i as u16), harness_key(i)))
            .collect();
        let set = ReplicaSet::new(keys.iter().map(|k| k.verifying_key()).collect())
            .map_err(|e| e.to_string())?;
        let mut cluster = Self {
            router: Router::new(n, seed),
            dir: dir.to_path_buf(),
            keys,
            set,
            config,
            executor,
            clock: Arc::new(SystemClock),
            nodes: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            cluster.restart(i)?;
        }
        Ok(cluster)
    }

    /// Number of replicas.
    pub fn n(&self) -> usize {
        self.keys.len()
    }

    /// The replica set.
    pub fn replica_set(&self) -> &ReplicaSet {
        &self.set
    }

    /// Replica `i`'s key.
    pub fn key(&self, i: usize) -> &ReplicaKey {
        &self.keys[i]
    }

    /// Replica `i`'s engine. Panics if it is crashed.
    pub fn engine(&self, i: usize) -> Arc<Pbft<E>> {
        self.nodes[i]
            .as_ref()
            .unwrap_or_else(|| panic!("replica {i} is crashed"))
            .engine
            .clone()
    }

    /// Replica `i`'s ledger. Panics if it is crashed.
    pub fn ledger(&self, i: usize) -> Arc<Ledger> {
        self.nodes[i]
            .as_ref()
            .unwrap_or_else(|| panic!("replica {i} is crashed"))
            .ledger
            .clone()
    }

    /// The replicas running.
    pub fn live(&self) -> Vec<usize> {
        (0..self.n()).filter(|i| self.nodes[*i].is_some()).collect()
    }

    /// Stops replica `i` and cuts it off, keeping its files.
    pub async fn crash(&mut self, i: usize) {
        self.router.isolate(ReplicaId(i as u16));
        if let Some(node) = self.nodes[i].take() {
            let _ = node.engine.shutdown().await;
            drop(node);
        }
        // Let aborted helper tasks release their handles on the files.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// (Re)starts replica `i` from its files.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        let id = ReplicaId(i as u16);
        let ledger = Arc::new(
            Ledger::open(self.dir.join(format!("ledger-{i}.redb"))).map_err(|e| e.to_string())?,
        );
        let wal =
            Arc::new(Wal::open(self.dir.join(format!("wal-{i}.redb"))).map_err(|e| e.to_string())?);
        let network = self.router.endpoint(id);
        self.router.reconnect(id);
        let engine = Pbft::start(PbftParts {
            config: self.config.clone(),
            key: self.keys[i].clone(),
            replicas: self.set.clone(),
            ledger: ledger.clone(),
            wal,
            executor: self.executor.clone(),
            clock: self.clock.clone(),
            network,
        })
        .map_err(|e| e.to_string())?;
        self.nodes[i] = Some(ClusterNode {
            engine: Arc::new(engine),
            ledger,
        });
        Ok(())
    }

    /// Waits until every running replica has committed `height`.
    pub async fn wait_for_height(&self, height: u64, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let heights: Vec<u64> = self
                .live()
                .iter()
                .map(|i| self.engine(*i).status().height)
                .collect();
            if heights.iter().all(|h| *h >= height) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "replicas did not reach height {height} in {timeout:?}: heights {heights:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until every running replica stands at the same height, and
    /// returns it.
    pub async fn wait_converged(&self, timeout: Duration) -> Result<u64, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let heights: Vec<u64> = self
                .live()
                .iter()
                .map(|i| self.engine(*i).status().height)
                .collect();
            if heights.windows(2).all(|w| w[0] == w[1]) {
                // Still equal a moment later: nothing was in flight.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let again: Vec<u64> = self
                    .live()
                    .iter()
                    .map(|i| self.engine(*i).status().height)
                    .collect();
                if again == heights {
                    return Ok(heights.first().copied().unwrap_or(0));
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "replicas did not converge in {timeout:?}: heights {heights:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Safety: every two running replicas hold identical blocks at every
    /// height both have, and equal state digests when at the same height.
    pub fn check_safety(&self) -> Result<(), String> {
        let live = self.live();
        let heads: Vec<_> = live
            .iter()
            .map(|i| self.ledger(*i).head().map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let top = heads.iter().map(|h| h.height).max().unwrap_or(0);
        for h in 1..=top {
            let mut seen: Option<(usize, rr_core::Block)> = None;
            for i in &live {
                let Some(b) = self.ledger(*i).block(h).map_err(|e| e.to_string())? else {
                    continue;
                };
                match &seen {
                    None => seen = Some((*i, b)),
                    Some((j, other)) if *other != b => {
                        return Err(format!(
                            "replicas {j} and {i} committed different blocks at height {h}"
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        for (a, ha) in live.iter().zip(&heads) {
            for (b, hb) in live.iter().zip(&heads) {
                if ha.height == hb.height && ha != hb {
                    return Err(format!(
                        "replicas {a} and {b} are both at height {} with different heads: {ha:?} vs {hb:?}",
                        ha.height
                    ));
                }
            }
        }
        Ok(())
    }

    /// Shuts every replica down.
    pub async fn shutdown(&mut self) {
        for i in 0..self.n() {
            if let Some(node) = self.nodes[i].take() {
                let _ = node.engine.shutdown().await;
            }
        }
    }
}
