//! Load generator: signed no-op transactions against a PBFT cluster over
//! loopback TCP, against the `Solo` engine, and this machine's ed25519 verify
//! rate, all in one run so the ratios mean something on a shared machine.
//!
//! ```text
//! cargo run --release -p rr-consensus --example pbft_bench -- --replicas 4 --seconds 10
//! ```
//! Options: `--replicas N` (4), `--seconds S` (10), `--batch B` (100),
//! `--clients C` (concurrent submissions, 2000), `--spread` (submit at every
//! replica instead of the primary), `--single-submit` (verify each submitted
//! call on its own instead of in batches with [`TxVerifier`]), `--no-solo`,
//! `--rate R` (open loop: offer R calls per second, evenly spaced, instead of
//! the closed loop of `--clients` waiting for their last call; latency is
//! counted from when a call was due, so a backlog shows in it),
//! `--executor noop|nonce` (noop, the default, writes nothing; nonce writes
//! one state entry per call, each a leaf of the certified state tree),
//! `--certified` (a call counts once its block's certificate, a quorum's
//! signatures over the header with the state root, is there: what a client
//! waits for).
//!
//! The issue's latency target is "p50 <= 20 ms at half the load": run once to
//! find the throughput, then again with `--rate` at half of it.
//!
//! Every replica verifies every client signature (ZIP-215 rules, so singly or
//! in batches alike): the replica a call is submitted to as it arrives, the
//! others inside the pre-prepare, as one batch. So with single verification
//! alone throughput is capped by the "verify limit", cores x single rate /
//! replicas; only batches go beyond it. Both limits are printed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ed25519_dalek::SigningKey;
use rr_consensus::transport::{TcpConfig, TcpNetwork};
use rr_consensus::{
    Pbft, PbftConfig, PbftParts, ReplicaKey, ReplicaSet, Solo, SoloConfig, SystemClock, TxVerifier,
    Wal,
};
use rr_core::{
    AccountId, BlockContext, CallOutput, ConsensusEngine, ContractExecutor, Execution,
    ExecutionError, GrantId, Outcome, Receipt, ReplicaId, Revoke, SignedTransaction, StateRead,
    TxBody, VerifiedTransaction,
};
use rr_storage::Ledger;
use tokio::net::TcpListener;

/// With `false`, executes nothing: every call succeeds and writes nothing.
/// With `true`, the harness's nonce executor: one state entry per call.
struct Executor(bool);

impl ContractExecutor for Executor {
    fn execute(
        &self,
        state: &dyn StateRead,
        ctx: &BlockContext,
        txs: &[VerifiedTransaction],
    ) -> Result<Execution, ExecutionError> {
        if self.0 {
            return rr_consensus::harness::NonceExecutor.execute(state, ctx, txs);
        }
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
    single_submit: bool,
    /// Open-loop offered load, calls per second (0: closed loop).
    rate: u64,
    /// Overrides of the engine's defaults.
    inflight: Option<u64>,
    delay_ms: Option<u64>,
    /// Write one nonce entry per call (else nothing).
    nonce: bool,
    /// Wait for each call's block certificate.
    certified: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        replicas: 4,
        seconds: 10,
        batch: 100,
        clients: 2000,
        spread: false,
        solo: true,
        single_submit: false,
        rate: 0,
        inflight: None,
        delay_ms: None,
        nonce: false,
        certified: false,
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
            "--single-submit" => a.single_submit = true,
            "--rate" => a.rate = num("--rate")?,
            "--inflight" => a.inflight = Some(num("--inflight")?),
            "--batch-delay-ms" => a.delay_ms = Some(num("--batch-delay-ms")?),
            "--certified" => a.certified = true,
            "--executor" => match it.next().as_deref() {
                Some("noop") => a.nonce = false,
                Some("nonce") => a.nonce = true,
                other => bail!("--executor takes noop or nonce, not {other:?}"),
            },
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

/// CPU time this process has used so far (user and system, all threads),
/// from `/proc/self/stat`; `None` where there is no such file.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After "pid (comm) ": state is field 3, utime and stime fields 14 and 15.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

struct Run {
    committed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// CPU time the whole process used during the run.
    cpu: Option<Duration>,
}

impl Run {
    /// The run that started at `start` (CPU time `cpu0` then) and committed
    /// calls with these latencies.
    fn finish(start: Instant, cpu0: Option<Duration>, mut latencies: Vec<Duration>) -> Self {
        let elapsed = start.elapsed();
        let cpu = cpu_time().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
        latencies.sort();
        Run {
            committed: latencies.len(),
            elapsed,
            latencies,
            cpu,
        }
    }

    fn tps(&self) -> f64 {
        self.committed as f64 / self.elapsed.as_secs_f64()
    }
    /// CPU time per committed call (all replicas and the clients).
    fn cpu_per_call(&self) -> Option<Duration> {
        Some(self.cpu? / self.committed.max(1) as u32)
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
/// commits. The node's own work (verifying the call: with `verifier` in
/// batches, else each on its own) is included.
async fn load<S: ConsensusEngine>(
    engines: Vec<Arc<S>>,
    txs: Vec<Vec<SignedTransaction>>,
    seconds: u64,
    verifier: Option<TxVerifier>,
    certified: bool,
) -> Run {
    let start = Instant::now();
    let cpu0 = cpu_time();
    let deadline = start + Duration::from_secs(seconds);
    let mut handles = Vec::new();
    for (c, txs) in txs.into_iter().enumerate() {
        let engine = engines[c % engines.len()].clone();
        let verifier = verifier.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for tx in txs {
                if Instant::now() >= deadline {
                    break;
                }
                let t0 = Instant::now();
                let verified = match &verifier {
                    Some(v) => v.verify(tx).await,
                    None => tx.verify(),
                };
                let Ok(v) = verified else { continue };
                if let Ok(r) = engine.submit(v).await {
                    if certified && engine.certificate(r.context.height).await.is_err() {
                        continue;
                    }
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
    Run::finish(start, cpu0, latencies)
}

/// Open loop: offers `rate` calls per second for `seconds`, each due at its
/// own evenly spaced instant whether or not earlier ones have committed. A
/// call's latency runs from when it was due (so a backlog counts against the
/// engine, not hidden by a client waiting), and includes its verification.
async fn open_loop<S: ConsensusEngine>(
    engines: Vec<Arc<S>>,
    txs: Vec<Vec<SignedTransaction>>,
    seconds: u64,
    rate: u64,
    verifier: Option<TxVerifier>,
    certified: bool,
) -> Run {
    // Round-robin over the signers, so consecutive calls come from distinct
    // accounts, as they would from many clients.
    let mut per_client: Vec<_> = txs.into_iter().map(|v| v.into_iter()).collect();
    let total = (rate * seconds) as usize;
    let mut calls = Vec::with_capacity(total);
    while calls.len() < total {
        let before = calls.len();
        for it in per_client.iter_mut() {
            if let Some(tx) = it.next() {
                calls.push(tx);
            }
        }
        if calls.len() == before {
            break;
        }
    }
    calls.truncate(total);
    let start = Instant::now();
    let cpu0 = cpu_time();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, tx) in calls.into_iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let engine = engines[i % engines.len()].clone();
        let verifier = verifier.clone();
        tasks.spawn(async move {
            let verified = match &verifier {
                Some(v) => v.verify(tx).await,
                None => tx.verify(),
            };
            let v = verified.ok()?;
            let r = engine.submit(v).await.ok()?;
            if certified {
                engine.certificate(r.context.height).await.ok()?;
            }
            Some(due.elapsed())
        });
    }
    let mut latencies = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Some(l) = r.expect("call task") {
            latencies.push(l);
        }
    }
    Run::finish(start, cpu0, latencies)
}

/// Signed calls of `n` distinct signers (as the load's clients are).
fn distinct_signers(n: usize) -> Vec<SignedTransaction> {
    (0..n)
        .map(|i| {
            let mut seed = [3u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            sign(&SigningKey::from_bytes(&seed), i as u64)
        })
        .collect()
}

/// ed25519-dalek's own single verification per second on one core, over the
/// same signatures and signed bytes (keys parsed beforehand): the machine's
/// "ed25519 verify rate" the issue's verify limit is defined by.
fn raw_verify_rate(txs: &[SignedTransaction]) -> f64 {
    let prepared: Vec<_> = txs
        .iter()
        .map(|t| {
            let key = ed25519_dalek::VerifyingKey::from_bytes(&t.body.signer.0).expect("key");
            let sig = ed25519_dalek::Signature::from_slice(&t.signature).expect("64 bytes");
            (key, sig, t.body.signing_bytes())
        })
        .collect();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        for (key, sig, msg) in &prepared {
            key.verify_strict(msg, sig).expect("valid");
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Single verifications per second on one core, as the node verifies a
/// submitted call (decode and ids included).
fn verify_rate(txs: &[SignedTransaction]) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        for t in txs {
            let _ = t.clone().verify().expect("valid");
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Verifications per second on one core in batches of `batch`, as a backup
/// verifies a pre-prepare.
fn batch_verify_rate(txs: &[SignedTransaction], batch: usize) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        for chunk in txs.chunks(batch.max(1)) {
            for v in SignedTransaction::verify_batch(chunk.to_vec()) {
                v.expect("valid");
                n += 1;
            }
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
    if let (Some(cpu), Some(per)) = (run.cpu, run.cpu_per_call()) {
        println!(
            "  cpu {:.0}% of one core; {:.0} us of cpu per call (the shared machine's other \
             load does not count here)",
            cpu.as_secs_f64() / run.elapsed.as_secs_f64() * 100.0,
            per.as_secs_f64() * 1e6
        );
    }
}

/// Throughput if the process had every core to itself: cores / cpu per call.
fn capacity(run: &Run, cores: usize) -> Option<f64> {
    Some(cores as f64 / run.cpu_per_call()?.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let sample = distinct_signers(2000);
    let raw = raw_verify_rate(&sample);
    let rate = verify_rate(&sample);
    let batch_rate = batch_verify_rate(&sample, a.batch);
    // The issue's verify limit: cores x this machine's ed25519 verify rate
    // (the raw crate's single verification) / replicas.
    let limit = cores as f64 * raw / a.replicas as f64;
    // What the node's own path allows: with batched submissions every
    // replica verifies every call in a batch; with single submissions the
    // replica a call reaches verifies it alone, the others in a pre-prepare.
    let batch_limit = if a.single_submit {
        cores as f64 / (1.0 / rate + (a.replicas as f64 - 1.0) / batch_rate)
    } else {
        cores as f64 * batch_rate / a.replicas as f64
    };
    println!(
        "ed25519 verify, one core: raw ed25519-dalek {raw:.0}/s (key parsed beforehand); \
         the node's path (ZIP-215, tx encoding and id, signer keys cached) single {rate:.0}/s, \
         batches of {} {batch_rate:.0}/s ({:.2}x); {cores} cores",
        a.batch,
        batch_rate / rate
    );
    println!(
        "  verify limit for {n} replicas = cores x raw rate / replicas = {limit:.0} tx/s; \
         the node's path with batches = {formula} = {batch_limit:.0} tx/s",
        n = a.replicas,
        formula = if a.single_submit {
            format!("cores / (1/single + {}/batch rate)", a.replicas - 1)
        } else {
            "cores x batch rate / replicas".to_string()
        }
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
    let defaults = PbftConfig::default();
    let config = {
        let mut config = defaults.clone();
        config.max_batch = a.batch;
        config.max_inflight = a.inflight.unwrap_or(defaults.max_inflight);
        config.max_batch_delay = a
            .delay_ms
            .map_or(defaults.max_batch_delay, Duration::from_millis);
        config
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
            executor: Arc::new(Executor(a.nonce)),
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
    let verifier = (!a.single_submit).then(|| TxVerifier::start(a.batch, cores));
    let pbft = if a.rate > 0 {
        open_loop(
            targets,
            txs,
            a.seconds,
            a.rate,
            verifier.clone(),
            a.certified,
        )
        .await
    } else {
        load(targets, txs, a.seconds, verifier.clone(), a.certified).await
    };
    let heights: Vec<u64> = engines.iter().map(|e| e.status().height).collect();
    for e in &engines {
        e.shutdown().await?;
    }
    let submit = if a.single_submit { "single" } else { "batched" };
    let load_kind = if a.rate > 0 {
        format!("offered {} tx/s", a.rate)
    } else {
        format!("{} closed-loop clients", a.clients)
    };
    report(
        &format!(
            "pbft n={} batch={} submit={submit} executor={} {}({load_kind})",
            a.replicas,
            a.batch,
            if a.nonce { "nonce" } else { "noop" },
            if a.certified { "certified " } else { "" },
        ),
        &pbft,
    );
    println!(
        "  blocks {:?}; ratio to verify limit {:.2}; to the limit with batches {:.2}",
        heights,
        pbft.tps() / limit,
        pbft.tps() / batch_limit
    );
    if let Some(cap) = capacity(&pbft, cores) {
        println!(
            "  cpu-bound capacity (cores / cpu per call) {cap:.0} tx/s: {:.2} of the verify limit",
            cap / limit
        );
    }

    // ---------------------------------------------------------------- Solo
    if a.solo {
        let solo = Arc::new(Solo::start(
            Arc::new(Ledger::open(dir.path().join("solo.redb"))?),
            Arc::new(Executor(a.nonce)),
            Arc::new(SystemClock),
            SoloConfig::default(),
            ReplicaKey::new(ReplicaId(0), SigningKey::from_bytes(&[200; 32])),
        )?);
        let txs = presign(a.clients, per_client).await;
        let run = load(vec![solo.clone()], txs, a.seconds, verifier, a.certified).await;
        solo.shutdown().await?;
        report("solo            ", &run);
        println!("  pbft / solo throughput {:.2}", pbft.tps() / run.tps());
    }
    Ok(())
}
