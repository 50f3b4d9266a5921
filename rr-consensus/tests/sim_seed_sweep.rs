//! Deterministic simulation with turmoil: four PBFT replicas and a client as
//! simulated hosts, the replicas talking through the real [`TcpNetwork`]
//! (framing, handshake, reconnection) over turmoil's simulated TCP, each with
//! its own ledger and write-ahead log on disk, the client submitting signed
//! calls to the replicas over the simulated network and moving on to another
//! replica when one does not answer. Every seed draws its own schedule:
//! message latency, random link failures (in turmoil a lost TCP segment
//! stalls the connection, so the transport must notice and dial again), and
//! one to four partitions or crashes of replicas, possibly overlapping, a
//! crashed replica restarting from its files. Then the faults heal and the run
//! must finish in simulated time with
//!
//! - safety: every replica holds the identical block at every height, and no
//!   call is committed twice;
//! - liveness: every submitted call is committed at every replica.
//!
//! `RR_SIM_SEEDS=N` sweeps N seeds (default 32) from `RR_SIM_FIRST` (default
//! 0); `RR_SIM_SEED=S` runs one; `RR_SIM_CALLS=N` submits N calls per run
//! (default 40); `RUST_LOG=rr_consensus=debug` shows what the replicas did. A
//! failing seed is printed with the command that replays it.
//!
//! The replicas run with [`PbftConfig::offload_blocking`] off, so that every
//! step of a replica runs on its simulated host's thread in simulated time and
//! a seed replays the same run (`a_seed_replays_the_same_run` checks it). A
//! crash happens between two steps of the host: the files hold what the last
//! completed fsync wrote.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;
use common::{client, tx, NonceExecutor};
use futures::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rr_consensus::harness::harness_key;
use rr_consensus::transport::{Listener, TcpConfig, TcpNetwork};
use rr_consensus::{Clock, Network, Pbft, PbftConfig, PbftParts, ReplicaKey, ReplicaSet, Wal};
use rr_core::{codec, BlockHash, ConsensusEngine, ReplicaId, SignedTransaction, Timestamp};
use rr_storage::Ledger;
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

const REPLICAS: usize = 4;
/// Calls the client submits per run, unless `RR_SIM_CALLS` says otherwise.
const CALLS: u64 = 40;
const P2P_PORT: u16 = 7000;
const CLIENT_PORT: u16 = 7001;
/// All faults are over by then (simulated time).
const HEAL_AT: Duration = Duration::from_secs(6);
/// Everything must be committed everywhere by then (simulated time).
const DEADLINE: Duration = Duration::from_secs(90);

fn replica_name(i: usize) -> String {
    format!("r{i}")
}

fn replica_set() -> ReplicaSet {
    ReplicaSet::new(
        (0..REPLICAS)
            .map(|i| harness_key(i).verifying_key())
            .collect(),
    )
    .unwrap()
}

/// turmoil's TCP behind the transport's [`Listener`].
struct SimListener(turmoil::net::TcpListener);

impl Listener for SimListener {
    type Stream = turmoil::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        self.0.accept().await
    }

    async fn connect(addr: SocketAddr) -> io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(addr).await
    }
}

/// Block time from the simulation's clock.
struct SimClock;

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        let t = turmoil::since_epoch().expect("the clock is read inside the simulation");
        Timestamp(t.as_millis() as u64)
    }
}

/// What the client asks a replica, one frame each.
#[derive(Serialize, Deserialize)]
enum Request {
    Submit(Box<SignedTransaction>),
    Status,
}

/// What a replica answers.
#[derive(Serialize, Deserialize)]
enum Reply {
    Committed { height: u64 },
    Failed(String),
    Status { height: u64, block_hash: BlockHash },
}

type Conn = Framed<turmoil::net::TcpStream, LengthDelimitedCodec>;

async fn roundtrip(conn: &mut Conn, req: &Request) -> Result<Reply, String> {
    conn.send(Bytes::from(codec::encode(req)))
        .await
        .map_err(|e| e.to_string())?;
    let frame = conn
        .next()
        .await
        .ok_or("connection closed")?
        .map_err(|e| e.to_string())?;
    codec::decode("reply", &frame, 1 << 16).map_err(|e| e.to_string())
}

async fn connect(replica: usize) -> Result<Conn, String> {
    let ip = turmoil::lookup(replica_name(replica));
    let stream = turmoil::net::TcpStream::connect((ip, CLIENT_PORT))
        .await
        .map_err(|e| e.to_string())?;
    Ok(Framed::new(stream, LengthDelimitedCodec::new()))
}

/// Serves one client connection of a replica.
async fn serve_client(engine: Arc<Pbft<NonceExecutor>>, stream: turmoil::net::TcpStream) {
    let mut conn = Framed::new(stream, LengthDelimitedCodec::new());
    while let Some(Ok(frame)) = conn.next().await {
        let reply = match codec::decode::<Request>("request", &frame, 1 << 16) {
            Ok(Request::Submit(t)) => match t.verify() {
                Ok(t) => match engine.submit(t).await {
                    Ok(r) => Reply::Committed {
                        height: r.context.height,
                    },
                    Err(e) => Reply::Failed(e.to_string()),
                },
                Err(e) => Reply::Failed(e.to_string()),
            },
            Ok(Request::Status) => {
                let s = engine.status();
                Reply::Status {
                    height: s.height,
                    block_hash: s.block_hash,
                }
            }
            Err(e) => Reply::Failed(e.to_string()),
        };
        if conn.send(Bytes::from(codec::encode(&reply))).await.is_err() {
            return;
        }
    }
}

/// Replica `i`'s key, the replica set, and its TCP network on the simulated
/// one.
async fn network(
    i: usize,
) -> Result<(ReplicaKey, ReplicaSet, TcpNetwork), Box<dyn std::error::Error>> {
    let set = replica_set();
    let key = ReplicaKey::new(ReplicaId(i as u16), harness_key(i));
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let listener = SimListener(turmoil::net::TcpListener::bind((any, P2P_PORT)).await?);
    let peers = (0..REPLICAS)
        .map(|j| SocketAddr::new(turmoil::lookup(replica_name(j)), P2P_PORT))
        .collect();
    let tcp = {
        let mut config = TcpConfig::new(peers);
        config.backoff_max = Duration::from_millis(500);
        config.handshake_timeout = Duration::from_secs(1);
        config.write_timeout = Duration::from_secs(1);
        config
    };
    let network = TcpNetwork::start(key.clone(), set.clone(), listener, tcp)?;
    Ok((key, set, network))
}

/// The software of replica `i`: its engine on the simulated network, and a
/// port where the client submits calls. Started again from its files after a
/// crash.
async fn replica(i: usize, dir: PathBuf) -> turmoil::Result {
    let (key, set, network) = network(i).await?;
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let config = {
        let mut config = PbftConfig::for_tests();
        config.offload_blocking = false;
        config
    };
    let engine = Arc::new(Pbft::start(PbftParts {
        config,
        key,
        replicas: set,
        ledger: Arc::new(Ledger::open(dir.join(format!("ledger-{i}.redb")))?),
        wal: Arc::new(Wal::open(dir.join(format!("wal-{i}.redb")))?),
        executor: Arc::new(NonceExecutor),
        clock: Arc::new(SimClock),
        network: Arc::new(network),
    })?);
    let clients = turmoil::net::TcpListener::bind((any, CLIENT_PORT)).await?;
    loop {
        let (stream, _) = clients.accept().await?;
        tokio::task::spawn_local(serve_client(engine.clone(), stream));
    }
}

/// Submits `t` until some replica answers that it committed, starting at
/// replica `first` and moving on when one does not answer in time.
async fn submit_until_committed(t: SignedTransaction, first: usize) -> Result<u64, String> {
    let mut at = first;
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(3), async {
            let mut conn = connect(at).await?;
            roundtrip(&mut conn, &Request::Submit(Box::new(t.clone()))).await
        })
        .await;
        match attempt {
            Ok(Ok(Reply::Committed { height })) => return Ok(height),
            Ok(Ok(Reply::Failed(e))) => tracing::debug!(replica = at, error = %e, "submit failed"),
            Ok(Ok(Reply::Status { .. })) => return Err("a status reply to a submission".into()),
            Ok(Err(e)) => tracing::debug!(replica = at, error = %e, "no answer"),
            Err(_) => tracing::debug!(replica = at, "timed out"),
        }
        at = (at + 1) % REPLICAS;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks every replica where it stands until all stand at the same block at
/// height `at_least` or above.
async fn wait_converged(at_least: u64) -> Result<(), String> {
    loop {
        let mut heads = BTreeSet::new();
        let mut answered = 0;
        for r in 0..REPLICAS {
            let status = tokio::time::timeout(Duration::from_secs(1), async {
                let mut conn = connect(r).await?;
                roundtrip(&mut conn, &Request::Status).await
            })
            .await;
            match status {
                Ok(Ok(Reply::Status { height, block_hash })) => {
                    answered += 1;
                    heads.insert((height, block_hash));
                }
                Ok(Ok(_)) => return Err("not a status reply".into()),
                Ok(Err(e)) => tracing::debug!(replica = r, error = %e, "no status"),
                Err(_) => tracing::debug!(replica = r, "no status in time"),
            }
        }
        tracing::debug!(answered, ?heads, "replicas not converged yet");
        if answered == REPLICAS && heads.len() == 1 && heads.first().unwrap().0 >= at_least {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One fault of a schedule, at a simulated time.
#[derive(Clone, Debug)]
enum Fault {
    Partition(usize),
    Repair(usize),
    Crash(usize),
    Restart(usize),
    Heal,
}

/// The network settings and fault schedule of one seed.
#[derive(Clone, Debug)]
struct Schedule {
    max_latency: Duration,
    fail_rate: f64,
    repair_rate: f64,
    /// Calls the client submits.
    calls: u64,
    /// Gap between two submissions.
    spacing: Duration,
    faults: Vec<(Duration, Fault)>,
}

fn ms(range: std::ops::Range<u64>, rng: &mut StdRng) -> Duration {
    Duration::from_millis(rng.gen_range(range))
}

impl Schedule {
    fn draw(seed: u64, calls: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut faults = Vec::new();
        // One to four faults, each a partition or a crash of some replica,
        // possibly overlapping: with two replicas of four down at once the
        // cluster stalls until one comes back.
        for _ in 0..rng.gen_range(1..=4) {
            let victim = rng.gen_range(0..REPLICAS);
            let start = ms(200..5000, &mut rng);
            let end = (start + ms(200..3000, &mut rng)).min(HEAL_AT);
            if rng.gen_bool(0.5) {
                faults.push((start, Fault::Partition(victim)));
                faults.push((end, Fault::Repair(victim)));
            } else {
                faults.push((start, Fault::Crash(victim)));
                faults.push((end, Fault::Restart(victim)));
            }
        }
        faults.push((HEAL_AT, Fault::Heal));
        faults.sort_by_key(|(t, _)| *t);
        let fail_rate = *[0.0, 0.0, 0.001, 0.005, 0.02]
            .get(rng.gen_range(0..5))
            .unwrap();
        Self {
            max_latency: ms(1..60, &mut rng),
            fail_rate,
            repair_rate: rng.gen_range(0.05..1.0),
            // The calls go out over up to 6 s, in the thick of the faults.
            spacing: ms(200..6000, &mut rng) / calls.max(1) as u32,
            calls,
            faults,
        }
    }
}

/// What a run came to: the simulated time it took and every replica's head.
#[derive(Debug, PartialEq)]
struct Outcome {
    elapsed: Duration,
    heads: Vec<(u64, BlockHash)>,
}

fn scratch_dir() -> tempfile::TempDir {
    // fsync is free on a RAM disk, and the runs fsync a lot.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("rr-sim-").tempdir_in(shm) {
            return d;
        }
    }
    tempfile::Builder::new()
        .prefix("rr-sim-")
        .tempdir()
        .unwrap()
}

/// Runs the simulation of `seed` and checks safety and liveness.
fn run_seed(seed: u64) -> Result<Outcome, String> {
    let schedule = Schedule::draw(seed, env_u64("RR_SIM_CALLS").unwrap_or(CALLS));
    let calls = schedule.calls;
    tracing::info!(seed, ?schedule, "simulation");
    let dir = scratch_dir();
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        .simulation_duration(DEADLINE)
        .tick_duration(Duration::from_millis(2))
        .max_message_latency(schedule.max_latency)
        .fail_rate(schedule.fail_rate)
        .repair_rate(schedule.repair_rate)
        .tcp_capacity(256)
        .build();
    let names: Vec<String> = (0..REPLICAS).map(replica_name).collect();
    for (i, name) in names.iter().enumerate() {
        let dir = dir.path().to_path_buf();
        sim.host(name.as_str(), move || replica(i, dir.clone()));
    }
    let spacing = schedule.spacing;
    let receipts = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    {
        let receipts = receipts.clone();
        sim.client("client", async move {
            let key = client(7);
            let mut pending = Vec::new();
            for n in 0..calls {
                let t = tx(&key, n).into_inner();
                pending.push(tokio::task::spawn_local(async move {
                    tokio::time::sleep(spacing * n as u32).await;
                    (n, submit_until_committed(t, n as usize % REPLICAS).await)
                }));
            }
            let mut top = 0;
            for p in pending {
                let (n, height) = p.await?;
                let height = height?;
                top = top.max(height);
                receipts.lock().unwrap().insert(n, height);
            }
            wait_converged(top).await?;
            Ok(())
        });
    }

    let mut faults = schedule.faults.clone().into_iter().peekable();
    let run = loop {
        while let Some((_, fault)) = faults.next_if(|(t, _)| *t <= sim.elapsed()) {
            tracing::info!(seed, elapsed = ?sim.elapsed(), ?fault, "fault");
            match fault {
                Fault::Partition(i) => {
                    for other in names.iter().filter(|n| **n != names[i]) {
                        sim.partition(names[i].as_str(), other.as_str());
                    }
                    sim.partition(names[i].as_str(), "client");
                }
                Fault::Repair(i) => {
                    for other in names.iter().filter(|n| **n != names[i]) {
                        sim.repair(names[i].as_str(), other.as_str());
                    }
                    sim.repair(names[i].as_str(), "client");
                }
                Fault::Crash(i) => sim.crash(names[i].as_str()),
                Fault::Restart(i) => sim.bounce(names[i].as_str()),
                Fault::Heal => {
                    sim.set_fail_rate(0.0);
                    for (i, a) in names.iter().enumerate() {
                        if !sim.is_host_running(a.as_str()) {
                            sim.bounce(a.as_str());
                        }
                        for b in names.iter().skip(i + 1) {
                            sim.repair(a.as_str(), b.as_str());
                        }
                        sim.repair(a.as_str(), "client");
                    }
                }
            }
        }
        match sim.step() {
            Ok(true) => break Ok(sim.elapsed()),
            Ok(false) => {}
            Err(e) => break Err(e.to_string()),
        }
    };
    // Stop the replicas (closing their files), then read what they committed.
    for name in &names {
        sim.crash(name.as_str());
    }
    drop(sim);
    let elapsed = run.map_err(|e| format!("no liveness: {e}"))?;
    let outcome = check_ledgers(dir.path(), calls, receipts.lock().unwrap().len())?;
    Ok(Outcome {
        elapsed,
        heads: outcome,
    })
}

/// Safety and liveness on the replicas' ledgers: identical blocks at every
/// height, every call committed exactly once at every replica.
fn check_ledgers(dir: &Path, calls: u64, answered: usize) -> Result<Vec<(u64, BlockHash)>, String> {
    if answered != calls as usize {
        return Err(format!("{answered} of {calls} calls answered"));
    }
    let ledgers: Vec<Ledger> = (0..REPLICAS)
        .map(|i| Ledger::open(dir.join(format!("ledger-{i}.redb"))).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let heads: Vec<_> = ledgers
        .iter()
        .map(|l| l.head().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let top = heads.iter().map(|h| h.height).max().unwrap_or(0);
    let mut seen = BTreeMap::new();
    for h in 1..=top {
        let mut block = None;
        for (i, l) in ledgers.iter().enumerate() {
            let Some(b) = l.block(h).map_err(|e| e.to_string())? else {
                return Err(format!("replica {i} has no block at height {h} of {top}"));
            };
            match &block {
                None => block = Some((i, b)),
                Some((j, other)) if *other != b => {
                    return Err(format!(
                        "safety: replicas {j} and {i} committed different blocks at height {h}"
                    ));
                }
                Some(_) => {}
            }
        }
        for t in &block.expect("four replicas").1.txs {
            if let Some(first) = seen.insert(t.id(), h) {
                return Err(format!(
                    "transaction {} (nonce {}) committed twice, at heights {first} and {h}",
                    t.id().short(),
                    t.body.nonce
                ));
            }
        }
    }
    let key = client(7);
    for n in 0..calls {
        if !seen.contains_key(&tx(&key, n).id()) {
            return Err(format!("call {n} is not on the ledgers"));
        }
    }
    Ok(heads.iter().map(|h| (h.height, h.block_hash)).collect())
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

#[test]
fn seed_sweep_is_safe_and_live() {
    init_logs();
    let seeds: Vec<u64> = match env_u64("RR_SIM_SEED") {
        Some(s) => vec![s],
        None => {
            let first = env_u64("RR_SIM_FIRST").unwrap_or(0);
            (first..first + env_u64("RR_SIM_SEEDS").unwrap_or(32)).collect()
        }
    };
    let started = Instant::now();
    // Each seed is one thread's simulation; two at a time on two cores.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let times = std::sync::Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(&seed) = seeds.get(k) else {
                    return;
                };
                let t = Instant::now();
                let result = std::panic::catch_unwind(|| run_seed(seed))
                    .unwrap_or_else(|_| Err("panicked".into()));
                match result {
                    Ok(o) => times.lock().unwrap().push((seed, o.elapsed, t.elapsed())),
                    Err(e) => {
                        let calls = std::env::var("RR_SIM_CALLS")
                            .map(|c| format!("RR_SIM_CALLS={c} "))
                            .unwrap_or_default();
                        eprintln!("seed {seed} FAILED: {e}\n  replay: {calls}RR_SIM_SEED={seed} cargo test -p rr-consensus --test sim_seed_sweep");
                        failures.lock().unwrap().push((seed, e));
                    }
                }
            });
        }
    });
    let times = times.into_inner().unwrap();
    let slowest = times.iter().max_by_key(|(_, sim, _)| *sim);
    eprintln!(
        "{} seeds in {:?} of real time; slowest in simulated time: {slowest:?}",
        seeds.len(),
        started.elapsed()
    );
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "failing seeds (replay with RR_SIM_SEED=<seed>): {failures:?}"
    );
}

#[test]
fn a_seed_replays_the_same_run() {
    init_logs();
    let seed = env_u64("RR_SIM_SEED").unwrap_or(1);
    let a = run_seed(seed).unwrap();
    let b = run_seed(seed).unwrap();
    assert_eq!(a, b, "seed {seed} ran differently twice");
}

/// In turmoil a TCP segment lost to a partition is never sent again: the
/// connection stalls for good, as a real one does when its peer vanished
/// without a reset. The transport must take the stalled link for dead and
/// dial again (`TcpConfig::write_timeout`); before it did, messages to that
/// peer stopped for good.
#[test]
fn a_stalled_link_is_dialed_again() {
    init_logs();
    let mut sim = turmoil::Builder::new()
        .rng_seed(5)
        .simulation_duration(Duration::from_secs(60))
        .tcp_capacity(16)
        .build();
    let got = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    for i in 0..REPLICAS {
        let got = got.clone();
        sim.host(replica_name(i).as_str(), move || {
            let got = got.clone();
            async move {
                let (_, _, net) = network(i).await?;
                if i == 0 {
                    // Message n goes out at about n * 10 ms.
                    for n in 0u64.. {
                        net.send(ReplicaId(1), Bytes::from(n.to_be_bytes().to_vec()))
                            .await;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                while let Some((from, m)) = net.recv().await {
                    if from == ReplicaId(0) {
                        got.lock()
                            .unwrap()
                            .push(u64::from_be_bytes(m.as_ref().try_into().expect("8 bytes")));
                    }
                }
                Ok(())
            }
        });
    }
    let until = |sim: &mut turmoil::Sim<'_>, t: Duration| {
        while sim.elapsed() < t {
            sim.step().unwrap();
        }
    };
    until(&mut sim, Duration::from_secs(1));
    assert!(
        !got.lock().unwrap().is_empty(),
        "nothing arrived before the partition"
    );
    sim.partition("r0", "r1");
    until(&mut sim, Duration::from_secs(2));
    sim.repair("r0", "r1");
    let repaired = got.lock().unwrap().iter().max().copied().unwrap_or(0);
    until(&mut sim, Duration::from_secs(12));
    let last = got.lock().unwrap().iter().max().copied().unwrap_or(0);
    // Sent after the repair, some 10 s of messages: most must have arrived.
    assert!(
        last > repaired + 500,
        "the link did not recover: last message {last}, {repaired} before the repair"
    );
}
