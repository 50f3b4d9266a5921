//! The `ConsensusEngine` conformance suite (`rr_consensus::conformance`) run
//! against both engines: `Solo`, and `Pbft` as replica 0 of a four-replica
//! cluster on the harness router.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rr_consensus::conformance::{self, EngineHarness, Running, Settings, SuiteExecutor};
use rr_consensus::harness::{harness_key, Router};
use rr_consensus::{
    Pbft, PbftConfig, PbftParts, ReplicaKey, ReplicaSet, Solo, SoloConfig, SystemClock, Wal,
};
use rr_core::cert::ReplicaSetInfo;
use rr_core::{AccountId, ConsensusEngine, ReplicaId};
use rr_storage::Ledger;

fn init_tracing() {
    // `RUST_LOG=rr_consensus=info` shows what the engines did in a failing run.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Opens a file an engine that just stopped may still hold for a moment
/// (its aborted tasks drop their handles asynchronously).
async fn open_retrying<T, E: std::fmt::Display>(
    mut open: impl FnMut() -> Result<T, E>,
) -> Result<T, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match open() {
            Ok(x) => return Ok(x),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e.to_string()),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

fn set_info(keys: &[ReplicaKey]) -> ReplicaSetInfo {
    ReplicaSetInfo::new(
        keys.iter()
            .map(|k| AccountId::from_verifying_key(&k.verifying_key()))
            .collect(),
    )
    .unwrap()
}

// ---------------------------------------------------------------- Solo

/// One `Solo` engine on a ledger of its own one-key replica set.
struct SoloHarness {
    key: ReplicaKey,
    set: ReplicaSetInfo,
    path: PathBuf,
    executor: Option<Arc<SuiteExecutor>>,
}

impl SoloHarness {
    fn new() -> Self {
        let key = ReplicaKey::new(ReplicaId(0), harness_key(0));
        Self {
            set: set_info(std::slice::from_ref(&key)),
            key,
            path: PathBuf::new(),
            executor: None,
        }
    }

    async fn open(&self) -> Result<Running<Solo<SuiteExecutor>>, String> {
        let digest = self.set.digest();
        let ledger = Arc::new(open_retrying(|| Ledger::open_for(&self.path, digest)).await?);
        let executor = self.executor.clone().ok_or("never started")?;
        let engine = Solo::start(
            ledger.clone(),
            executor,
            Arc::new(SystemClock),
            SoloConfig::default(),
            self.key.clone(),
        )
        .map_err(|e| e.to_string())?;
        Ok(Running {
            engine: Arc::new(engine),
            ledger,
            replica_set: self.set.clone(),
        })
    }
}

impl EngineHarness for SoloHarness {
    type Engine = Solo<SuiteExecutor>;

    async fn start(
        &mut self,
        dir: &Path,
        executor: Arc<SuiteExecutor>,
    ) -> Result<Running<Self::Engine>, String> {
        self.path = dir.join("ledger.redb");
        self.executor = Some(executor);
        self.open().await
    }

    async fn restart(&mut self) -> Result<Running<Self::Engine>, String> {
        self.open().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solo_conforms() {
    init_tracing();
    conformance::test_all(&mut SoloHarness::new()).await;
}

// ---------------------------------------------------------------- PBFT

/// Four `Pbft` replicas on the harness router, each with its own ledger (of
/// the cluster's replica set), write-ahead log and executor; the suite talks
/// to replica 0 (the primary of view 0), and a restart restarts replica 0
/// alone while the others keep running, as `Cluster::crash`/`restart` do.
struct PbftHarness {
    config: PbftConfig,
    keys: Vec<ReplicaKey>,
    set: ReplicaSet,
    info: ReplicaSetInfo,
    seed: u64,
    dir: PathBuf,
    router: Option<Arc<Router>>,
    executor: Option<Arc<SuiteExecutor>>,
    /// Replicas 1..n.
    peers: Vec<Arc<Pbft<SuiteExecutor>>>,
}

impl PbftHarness {
    fn new(n: usize) -> Self {
        let keys: Vec<ReplicaKey> = (0..n)
            .map(|i| ReplicaKey::new(ReplicaId(i as u16), harness_key(i)))
            .collect();
        let set = ReplicaSet::new(keys.iter().map(|k| k.verifying_key()).collect()).unwrap();
        Self {
            config: PbftConfig::for_tests(),
            info: set_info(&keys),
            keys,
            set,
            seed: 0,
            dir: PathBuf::new(),
            router: None,
            executor: None,
            peers: Vec::new(),
        }
    }

    /// Starts (or restarts) replica `i` from its files.
    async fn replica(
        &self,
        i: usize,
        executor: Arc<SuiteExecutor>,
    ) -> Result<(Arc<Pbft<SuiteExecutor>>, Arc<Ledger>), String> {
        let router = self.router.as_ref().ok_or("never started")?;
        let digest = self.info.digest();
        let ledger_path = self.dir.join(format!("ledger-{i}.redb"));
        let wal_path = self.dir.join(format!("wal-{i}.redb"));
        let ledger = Arc::new(open_retrying(|| Ledger::open_for(&ledger_path, digest)).await?);
        let wal = Arc::new(open_retrying(|| Wal::open(&wal_path)).await?);
        let id = ReplicaId(i as u16);
        let network = router.endpoint(id);
        router.reconnect(id);
        let engine = Pbft::start(PbftParts {
            config: self.config.clone(),
            key: self.keys[i].clone(),
            replicas: self.set.clone(),
            ledger: ledger.clone(),
            wal,
            executor,
            clock: Arc::new(SystemClock),
            network,
        })
        .map_err(|e| e.to_string())?;
        Ok((Arc::new(engine), ledger))
    }

    fn running(
        &self,
        engine: Arc<Pbft<SuiteExecutor>>,
        ledger: Arc<Ledger>,
    ) -> Running<Pbft<SuiteExecutor>> {
        Running {
            engine,
            ledger,
            replica_set: self.info.clone(),
        }
    }
}

impl EngineHarness for PbftHarness {
    type Engine = Pbft<SuiteExecutor>;

    async fn start(
        &mut self,
        dir: &Path,
        executor: Arc<SuiteExecutor>,
    ) -> Result<Running<Self::Engine>, String> {
        self.seed += 1;
        self.dir = dir.to_path_buf();
        self.router = Some(Router::new(self.keys.len(), self.seed));
        self.executor = Some(executor.clone());
        self.peers.clear();
        for i in 1..self.keys.len() {
            // The other replicas run executors of their own.
            let (engine, _) = self.replica(i, Arc::new(SuiteExecutor::new())).await?;
            self.peers.push(engine);
        }
        let (engine, ledger) = self.replica(0, executor).await?;
        Ok(self.running(engine, ledger))
    }

    async fn restart(&mut self) -> Result<Running<Self::Engine>, String> {
        // The suite shut replica 0 down: cut it off (a crash, as the others
        // see it), then start it again from its files.
        let router = self.router.as_ref().ok_or("never started")?;
        router.isolate(ReplicaId(0));
        let executor = self.executor.clone().ok_or("never started")?;
        let (engine, ledger) = self.replica(0, executor).await?;
        Ok(self.running(engine, ledger))
    }

    async fn stop(&mut self) {
        for peer in self.peers.drain(..) {
            let _ = peer.shutdown().await;
        }
        self.router = None;
    }
}

/// Every check of `conformance::test_all` but `failed_calls_never_commit`
/// and `certificate_after_shutdown`, which run as tests of their own below.
/// Keep this list in step with `test_all`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pbft_conforms() {
    init_tracing();
    let harness = &mut PbftHarness::new(4);
    let settings = &Settings::default();
    conformance::executor(harness, settings).await;
    conformance::ordering(harness, settings).await;
    conformance::resubmission(harness, settings).await;
    conformance::refusals(harness, settings).await;
    conformance::certificates(harness, settings).await;
    conformance::restart(harness, settings).await;
    conformance::shutdown(harness, settings).await;
}

/// A call `Pbft::shutdown` answers with `ConsensusError::Stopped` is never
/// committed, after a restart either. Shutdown withdraws only the calls that
/// never left the replica (not forwarded, proposed or voted on); the others
/// (calls of a batch it already proposed and logged, which the other
/// replicas commit, and it too after a restart) it keeps running for until
/// they commit, so their callers get receipts. It used to fail them all
/// with `Stopped`: a client that took the error at its word and signed a
/// new call did the thing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pbft_failed_calls_never_commit() {
    init_tracing();
    conformance::failed_calls_never_commit(&mut PbftHarness::new(4), &Settings::default()).await;
}

/// `Pbft::certificate` of a height not reached fails once the engine is shut
/// down (it used to wait forever: the suite found it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pbft_certificate_after_shutdown() {
    init_tracing();
    let settings = Settings {
        timeout: Duration::from_secs(5),
        ..Settings::default()
    };
    conformance::certificate_after_shutdown(&mut PbftHarness::new(4), &settings).await;
}
