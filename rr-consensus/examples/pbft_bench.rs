//! Load generator: signed no-op transactions against a PBFT cluster over
//! loopback TCP, against the `Solo` engine, and this machine's ed25519 verify
//! rate, all in one run so the ratios mean something on a shared machine.
//!
//! ```text
//! cargo run --release -p rr-consensus --example pbft_bench -- --replicas 4 --seconds 10
//! ```
//! Options: `--replicas N` (4), `--seconds S` (10), `--batch B` (100),
//! `--clients C` (concurrent submissions, 2000), `--spread` (submit at every
//! replica instead of the primary), `--no-solo`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ed25519_dalek::SigningKey;
use rr_consensus::transport::{TcpConfig, TcpNetwork};
use rr_consensus::{
    Pbft, PbftConfig, PbftParts, ReplicaKey, ReplicaSet, Solo, SoloConfig, SystemClock, Wal,
};
use rr_core::{
    AccountId, BlockContext, CallOutput, ConsensusEngine, ContractExecutor, Execution,
    ExecutionError, GrantId, Outcome, Receipt, ReplicaId, Revoke, SignedTransaction, StateRead,
    TxBody, VerifiedTransaction,
};
use rr_storage::Ledger;
use tokio::net::TcpListener;

/// Executes nothing: every call succeeds and writes nothing.
struct NoopExecutor;

impl ContractExecutor for NoopExecutor {
    fn execute(
        &self,
        _state: &dyn StateRead,
        ctx: &BlockContext,
        txs: &[VerifiedTransaction],
    ) -> Result<Execution, ExecutionError> {
        Ok(Execution {
            receipts: txs
                .iter()
                .enumerate()
                .map(|(i, t)| Receipt {
                    tx: t.id(),
                    context: *ctx,
                    index: i as u32,
                    outcome: Outcome::Ok(CallOutput::Revoked {
                        grant: GrantId([0; 32]),
                    }),
                })
                .collect(),
            writes: Default::default(),
        })
    }
}

struct Args {
    replicas: usize,
    seconds: u64,
    batch: usize,
    clients: usize,
    spread: bool,
    solo: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        replicas: 4,
        seconds: 10,
        batch: 100,
        clients: 2000,
        spread: false,
        solo: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> anyhow::Result<u64> {
            it.next()
                .with_context(|| format!("{name} needs a value"))?
                .parse()
                .with_context(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--replicas" => a.replicas = num("--replicas")? as usize,
            "--seconds" => a.seconds = num("--seconds")?,
            "--batch" => a.batch = num("--batch")? as usize,
            "--clients" => a.clients = num("--clients")? as usize,
            "--spread" => a.spread = true,
            "--no-solo" => a.solo = false,
            other => bail!("unknown option {other}"),
        }
    }
    if a.replicas == 0 || a.clients == 0 || a.seconds == 0 {
        bail!("--replicas, --clients and --seconds must be positive");
    }
    Ok(a)
}

fn sign(key: &SigningKey, nonce: u64) -> SignedTransaction {
    TxBody {
        signer: AccountId::from_verifying_key(&key.verifying_key()),
        nonce,
        call: rr_core::Call::Revoke(Revoke {
            grant: GrantId([1; 32]),
        }),
    }
    .sign(key)
}

/// Pre-signs `per_client` transactions for each of `clients` (client signing
/// is not the node's work), on all cores.
async fn presign(clients: usize, per_client: usize) -> Vec<Vec<SignedTransaction>> {
    let mut handles = Vec::new();
    for c in 0..clients {
        handles.push(tokio::task::spawn_blocking(move || {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&(c as u64).to_le_bytes());
            let key = SigningKey::from_bytes(&seed);
            (0..per_client as u64).map(|n| sign(&key, n)).collect()
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("signing task"));
    }
    out
}

struct Run {
    committed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn tps(&self) -> f64 {
        self.committed as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
}

/// Closed loop: each client submits its next transaction when the last one
/// commits. The node's own work (verifying the call) is included.
async fn load<S: ConsensusEngine>(
    engines: Vec<Arc<S>>,
    txs: Vec<Vec<SignedTransaction>>,
    seconds: u64,
) -> Run {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut handles = Vec::new();
    for (c, txs) in txs.into_iter().enumerate() {
        let engine = engines[c % engines.len()].clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for tx in txs {
                if Instant::now() >= deadline {
                    break;
                }
                let t0 = Instant::now();
                let Ok(v) = tx.verify() else { continue };
                if engine.submit(v).await.is_ok() {
                    lat.push(t0.elapsed());
                }
            }
            lat
        }));
    }
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await.expect("client task"));
    }
    let elapsed = start.elapsed();
    latencies.sort();
    Run {
        committed: latencies.len(),
        elapsed,
        latencies,
    }
}

fn verify_rate() -> f64 {
    let key = SigningKey::from_bytes(&[3; 32]);
    let txs: Vec<SignedTransaction> = (0..2000).map(|n| sign(&key, n)).collect();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        for t in &txs {
            let _ = t.clone().verify().expect("valid");
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn report(name: &str, run: &Run) {
    println!(
        "{name}: {:>8.0} tx/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} calls in {:.1} s)",
        run.tps(),
        run.pct(0.5).as_secs_f64() * 1e3,
        run.pct(0.99).as_secs_f64() * 1e3,
        run.committed,
        run.elapsed.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rate = verify_rate();
    let limit = cores as f64 * rate / a.replicas as f64;
    println!(
        "ed25519 verify (one core, strict, tx decode included): {rate:.0}/s; {cores} cores; \
         verify limit for {} replicas = cores x rate / replicas = {limit:.0} tx/s",
        a.replicas
    );
    // Enough signed calls for 25k tx/s for the whole run.
    let per_client = (25_000 * a.seconds as usize / a.clients).max(10);
    let dir = tempfile::tempdir()?;

    // ---------------------------------------------------------------- PBFT
    let keys: Vec<ReplicaKey> = (0..a.replicas)
        .map(|i| {
            let mut seed = [11u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            ReplicaKey::new(ReplicaId(i as u16), SigningKey::from_bytes(&seed))
        })
        .collect();
    let set = ReplicaSet::new(keys.iter().map(|k| k.verifying_key()).collect())?;
    let mut listeners = Vec::new();
    for _ in 0..a.replicas {
        listeners.push(TcpListener::bind("127.0.0.1:0").await?);
    }
    let peers: Vec<_> = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<_, _>>()?;
    let config = PbftConfig {
        max_batch: a.batch,
        ..PbftConfig::default()
    };
    let mut engines = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let network = TcpNetwork::start(
            keys[i].clone(),
            set.clone(),
            l,
            TcpConfig::new(peers.clone()),
        )?;
        let engine = Pbft::start(PbftParts {
            config: config.clone(),
            key: keys[i].clone(),
            replicas: set.clone(),
            ledger: Arc::new(Ledger::open(dir.path().join(format!("ledger-{i}.redb")))?),
            wal: Arc::new(Wal::open(dir.path().join(format!("wal-{i}.redb")))?),
            executor: Arc::new(NoopExecutor),
            clock: Arc::new(SystemClock),
            network: Arc::new(network),
        })?;
        engines.push(Arc::new(engine));
    }
    let txs = presign(a.clients, per_client).await;
    let targets = if a.spread {
        engines.clone()
    } else {
        vec![engines[0].clone()]
    };
    let pbft = load(targets, txs, a.seconds).await;
    let heights: Vec<u64> = engines.iter().map(|e| e.status().height).collect();
    for e in &engines {
        e.shutdown().await?;
    }
    report(&format!("pbft n={} batch={}", a.replicas, a.batch), &pbft);
    println!(
        "  blocks {:?}; ratio to verify limit {:.2}",
        heights,
        pbft.tps() / limit
    );

    // ---------------------------------------------------------------- Solo
    if a.solo {
        let solo = Arc::new(Solo::start(
            Arc::new(Ledger::open(dir.path().join("solo.redb"))?),
            Arc::new(NoopExecutor),
            Arc::new(SystemClock),
            SoloConfig::default(),
        )?);
        let txs = presign(a.clients, per_client).await;
        let run = load(vec![solo.clone()], txs, a.seconds).await;
        solo.shutdown().await?;
        report("solo            ", &run);
        println!("  pbft / solo throughput {:.2}", pbft.tps() / run.tps());
    }
    Ok(())
}
