//! Issue #6's load generator: retrieve latency and grant / retrieve
//! throughput of a 4-replica PBFT cluster against `rr-node dev` (one replica,
//! `Solo`), measured in one run, on one machine, with the same clients.
//!
//! Both are served over real HTTP on 127.0.0.1, so both pay the same transport
//! cost: the dev node through one [`HttpClient`], the cluster through
//! [`Replicas`] of four (the client fans a retrieval out to every replica,
//! needs `f + 1` matching receipts and `m = f + 1` capsule fragments). The
//! cluster runs `PbftConfig::default()` (batches of up to 100; a call that
//! finds the pipeline idle is proposed at once), the dev node
//! `SoloConfig::default()`.
//!
//! What it prints, as markdown:
//!
//! - retrieve + verify + decrypt latency, one client, sequential, p50 and p99,
//!   for a 1 KiB and a 1 MiB record (dev and cluster samples alternate, so
//!   drift on a shared machine hits both alike), and the ratio of the p50s
//!   (target: cluster <= 2x dev);
//! - grant and retrieve throughput with `--concurrency` clients for
//!   `--seconds` each, and the ratios;
//! - where a cluster retrieval's time goes: the retrieve call alone (ordering,
//!   re-encryption, HTTP), replica 0 alone (PBFT without the fan-out), when the
//!   1st, m-th and last of the four replicas answer, the client's opening of
//!   the capsule fragments, the blob fetch and decryption; and the machine's
//!   cost of one re-encryption, four at once, and one fsync.
//!
//! Every retrieval's plaintext is compared with what was put: the run exits
//! non-zero if one differs or fails. Timing never fails it.
//!
//! ```text
//! cargo run --release -p rr-node --example cluster_bench -- [--seconds N] [--concurrency C]
//! cargo run --release -p rr-node --example cluster_bench -- --quick   # CI smoke test, < 20 s
//! ```
//!
//! Everything (clients, the dev node, four replicas) shares this process and
//! this machine's cores: on a 2-core machine the cluster's four replicas
//! compete with each other and with the client for two cores and one disk.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore};
use rr_consensus::SystemClock;
use rr_core::{
    byte_stream_of, Call, DataKey, GrantId, Purpose, RecordId, Retrieve, SignedTransaction,
};
use rr_node::cluster::{ClusterConfig, ClusterTypes, Peer};
use rr_node::http::{self, HttpClient, ServerConfig};
use rr_node::sealing::SealingKey;
use rr_node::{
    collect, Client, DevConfig, DevTypes, GrantOptions, Identity, Node, NodeApi, Replicas,
    RetrieveAnswers,
};
use rr_pre::Umbral;

/// Replicas in the cluster (f = 1).
const REPLICAS: usize = 4;

#[derive(Parser, Debug)]
#[command(about = "Retrieve latency and throughput: 4-replica PBFT cluster vs rr-node dev")]
struct Args {
    /// Seconds of each throughput run (default 5; 1 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Concurrent clients in the throughput runs.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Latency samples per system for the 1 KiB record (default 200; 10 with --quick).
    #[arg(long)]
    samples_1k: Option<usize>,
    /// Latency samples per system for the 1 MiB record (default 50; 3 with --quick).
    #[arg(long)]
    samples_1m: Option<usize>,
    /// Where the nodes' data directories go (a fresh temporary directory
    /// inside it; default: the system's). `/dev/shm` (tmpfs, fsync free)
    /// shows how much of the difference is durable writes.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// CI smoke test: tiny sample counts and 1 s throughput runs. It checks
    /// that everything runs and every retrieval decrypts to the right bytes;
    /// its numbers mean nothing.
    #[arg(long)]
    quick: bool,
}

struct Settings {
    data_dir: Option<std::path::PathBuf>,
    seconds: f64,
    concurrency: usize,
    samples_1k: usize,
    samples_1m: usize,
    warmup: usize,
}

impl Args {
    fn settings(&self) -> Result<Settings> {
        let q = self.quick;
        let s = Settings {
            data_dir: self.data_dir.clone(),
            seconds: self.seconds.unwrap_or(if q { 1.0 } else { 5.0 }),
            concurrency: self.concurrency,
            samples_1k: self.samples_1k.unwrap_or(if q { 10 } else { 200 }),
            samples_1m: self.samples_1m.unwrap_or(if q { 3 } else { 50 }),
            warmup: if q { 2 } else { 10 },
        };
        ensure!(
            s.seconds > 0.0 && s.concurrency > 0 && s.samples_1k > 0 && s.samples_1m > 0,
            "--seconds, --concurrency and the sample counts must be positive"
        );
        Ok(s)
    }
}

// ---------------------------------------------------------------------------
// Starting and stopping the two systems.

/// One node's HTTP server, stopped by `stop`.
struct Served {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn serve(listener: tokio::net::TcpListener, api: Arc<dyn NodeApi>) -> Result<Served> {
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = http::router(api, ServerConfig::default());
    let task = tokio::spawn(http::serve(listener, router, async move {
        let _ = stopped.await;
    }));
    Ok(Served { url, stop, task })
}

/// One system under test, reached over HTTP only.
struct System {
    name: &'static str,
    /// What the clients use: `Replicas` of one (dev) or four, checking
    /// every answer against the trusted keys.
    api: Replicas,
    /// Each replica's own HTTP client (one for dev).
    members: Vec<Arc<dyn NodeApi>>,
    alice: Client<Umbral>,
    bob: Client<Umbral>,
}

impl System {
    fn new(name: &'static str, api: Replicas, members: Vec<Arc<dyn NodeApi>>) -> Self {
        let client = |api: &Replicas| {
            Client::new(api.clone(), Arc::new(Umbral), Identity::generate(&Umbral))
        };
        Self {
            name,
            alice: client(&api),
            bob: client(&api),
            api,
            members,
        }
    }
}

struct Bench {
    dev: System,
    cluster: System,
    dev_node: Arc<Node<DevTypes>>,
    replicas: Vec<Arc<Node<ClusterTypes<Umbral>>>>,
    servers: Vec<Served>,
    dir: tempfile::TempDir,
}

fn free_addr() -> Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

async fn local_listener() -> Result<tokio::net::TcpListener> {
    Ok(tokio::net::TcpListener::bind("127.0.0.1:0").await?)
}

async fn start(data_dir: Option<&std::path::Path>) -> Result<Bench> {
    let dir = match data_dir {
        Some(d) => tempfile::tempdir_in(d)
            .with_context(|| format!("cannot make a directory in {}", d.display()))?,
        None => tempfile::tempdir()?,
    };
    let mut servers = Vec::new();

    let dev_node = Node::open_dev(DevConfig::new(dir.path().join("dev"))).await?;
    servers.push(serve(local_listener().await?, dev_node.clone())?);
    let dev_api: Arc<dyn NodeApi> = Arc::new(HttpClient::new(&servers[0].url)?);

    // Each replica: an ed25519 key (protocol messages) and an X25519 sealing
    // key (key fragments are sealed to it).
    let keys: Vec<(SigningKey, SealingKey)> = (0..REPLICAS)
        .map(|_| {
            let mut seed = [0u8; 32];
            OsRng.fill_bytes(&mut seed);
            (SigningKey::generate(&mut OsRng), SealingKey::derive(&seed))
        })
        .collect();
    let mut listeners = Vec::new();
    let mut peers = Vec::new();
    for (key, sealing) in &keys {
        let listener = local_listener().await?;
        peers.push(Peer {
            p2p: free_addr()?,
            api: format!("http://{}", listener.local_addr()?),
            public_key: hex::encode(key.verifying_key().as_bytes()),
            sealing_key: sealing.public().to_hex(),
        });
        listeners.push(listener);
    }
    let mut replicas = Vec::new();
    for (i, ((key, sealing), listener)) in keys.into_iter().zip(listeners).enumerate() {
        let mut config = ClusterConfig::new(
            rr_core::ReplicaId(i as u16),
            dir.path().join(format!("replica-{i}")),
            peers.clone(),
        );
        config.max_blob_size = 1 << 30;
        let node = Node::open_cluster(config, key, sealing, Umbral, Arc::new(SystemClock))
            .await
            .with_context(|| format!("starting replica {i}"))?;
        servers.push(serve(listener, node.clone())?);
        replicas.push(node);
    }
    let members = peers
        .iter()
        .map(|p| Ok(Arc::new(HttpClient::new(&p.api)?) as Arc<dyn NodeApi>))
        .collect::<Result<Vec<_>>>()?;
    let set = rr_node::cluster::replica_set_of(peers.iter().cloned())?;
    let sealing_keys = peers
        .iter()
        .map(|p| rr_node::sealing::SealingPublicKey::from_hex(&p.sealing_key))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let cluster_api = Replicas::new(members.clone(), set)?.with_sealing_keys(sealing_keys)?;

    // Up: every HTTP server answers and every replica sees the same set.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (i, m) in std::iter::once(&dev_api).chain(&members).enumerate() {
        loop {
            match m.info().await {
                Ok(info) if i == 0 || usize::from(info.replicas) == REPLICAS => break,
                Ok(info) => bail!("replica {} reports {} replicas", i - 1, info.replicas),
                Err(e) if Instant::now() < deadline => {
                    eprintln!("waiting for node {i}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => bail!("node {i} did not come up in 30 s: {e}"),
            }
        }
    }
    let dev_replicas = Replicas::single(dev_api.clone(), dev_node.replica_set().keys()[0])?;
    Ok(Bench {
        dev: System::new("dev", dev_replicas, vec![dev_api]),
        cluster: System::new("cluster", cluster_api, members),
        dev_node,
        replicas,
        servers,
        dir,
    })
}

impl Bench {
    /// Stops the HTTP servers (after the requests in flight), then the engines.
    async fn shutdown(self) -> Result<()> {
        let Bench {
            dev,
            cluster,
            dev_node,
            replicas,
            servers,
            dir: _dir,
        } = self;
        // The clients' connection pools go first, so no keep-alive connection
        // holds a server's graceful shutdown up.
        drop((dev, cluster));
        for s in servers {
            let _ = s.stop.send(());
            match tokio::time::timeout(Duration::from_secs(10), s.task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => bail!("HTTP server at {} failed: {e}", s.url),
                Ok(Err(e)) => bail!("HTTP server task at {} failed: {e}", s.url),
                Err(_) => bail!("HTTP server at {} did not stop within 10 s", s.url),
            }
        }
        dev_node.shutdown().await?;
        for r in &replicas {
            r.shutdown().await?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Measuring.

fn treatment() -> Purpose {
    Purpose::new("treatment").expect("a valid purpose")
}

/// A record with bytes that differ per size (so a mix-up is caught).
fn plaintext(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (i % 251) as u8 ^ (size % 253) as u8)
        .collect()
}

/// A record put by alice and granted to bob, on one system.
struct Granted {
    record: RecordId,
    grant: GrantId,
    data: Arc<Vec<u8>>,
}

async fn put_and_grant(sys: &System, data: Arc<Vec<u8>>) -> Result<Granted> {
    let put = tokio::time::timeout(
        Duration::from_secs(60),
        sys.alice.put(
            byte_stream_of(data.as_ref().clone()),
            "application/octet-stream",
        ),
    )
    .await
    .with_context(|| format!("{}: the first put did not commit in 60 s", sys.name))??;
    let grant = sys
        .alice
        .grant(put.record_id, &sys.bob.card(), grant_options())
        .await?;
    Ok(Granted {
        record: put.record_id,
        grant,
        data,
    })
}

fn grant_options() -> GrantOptions {
    GrantOptions {
        purpose: treatment(),
        expires_at: None,
        threshold: None,
    }
}

/// Retrievals that decrypted to the wrong bytes, or whose report skipped a
/// replica (slow or failed).
#[derive(Default)]
struct Tally {
    wrong: AtomicU64,
    skipped: AtomicU64,
}

/// One whole retrieval as a user runs it: ordered call, capsule fragments
/// verified and opened, blob fetched, checked and decrypted.
async fn retrieve_once(sys: &System, g: &Granted, tally: &Tally) -> Result<Duration> {
    let started = Instant::now();
    let (stream, report) = sys
        .bob
        .retrieve_with_report(g.grant, treatment())
        .await
        .with_context(|| format!("{}: retrieve", sys.name))?;
    let bytes = collect(stream)
        .await
        .with_context(|| format!("{}: decrypting the retrieved record", sys.name))?;
    let took = started.elapsed();
    if bytes != *g.data {
        tally.wrong.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "{}: WRONG BYTES: retrieved {} bytes, expected {}",
            sys.name,
            bytes.len(),
            g.data.len()
        );
    }
    if !report.skipped.is_empty() {
        tally.skipped.fetch_add(1, Ordering::Relaxed);
    }
    Ok(took)
}

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort();
    v
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

struct Latency {
    label: &'static str,
    samples: usize,
    dev: Vec<Duration>,
    cluster: Vec<Duration>,
}

/// Sequential retrievals, dev and cluster alternating (which goes first
/// alternates too).
async fn latency(
    b: &Bench,
    label: &'static str,
    dev: &Granted,
    cluster: &Granted,
    samples: usize,
    warmup: usize,
    tally: &Tally,
) -> Result<Latency> {
    for _ in 0..warmup {
        retrieve_once(&b.dev, dev, tally).await?;
        retrieve_once(&b.cluster, cluster, tally).await?;
    }
    let (mut d, mut c) = (Vec::new(), Vec::new());
    for i in 0..samples {
        if i % 2 == 0 {
            d.push(retrieve_once(&b.dev, dev, tally).await?);
            c.push(retrieve_once(&b.cluster, cluster, tally).await?);
        } else {
            c.push(retrieve_once(&b.cluster, cluster, tally).await?);
            d.push(retrieve_once(&b.dev, dev, tally).await?);
        }
    }
    Ok(Latency {
        label,
        samples,
        dev: sorted(d),
        cluster: sorted(c),
    })
}

/// `concurrency` clients each repeating `op` until `seconds` are up: ops per
/// second over the whole run (the last ops in flight included) and each op's
/// latency.
async fn throughput<F, Fut>(seconds: f64, concurrency: usize, op: F) -> Result<(f64, Vec<Duration>)>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let op = op.clone();
        set.spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                op().await?;
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        all.extend(r??);
    }
    let ops = all.len() as f64 / started.elapsed().as_secs_f64();
    Ok((ops, sorted(all)))
}

struct Rate {
    ops: f64,
    lat: Vec<Duration>,
}

async fn grant_rate(sys: &System, g: &Granted, s: &Settings) -> Result<Rate> {
    let (alice, card, record) = (sys.alice.clone(), sys.bob.card(), g.record);
    let (ops, lat) = throughput(s.seconds, s.concurrency, move || {
        let (alice, card) = (alice.clone(), card.clone());
        async move {
            alice.grant(record, &card, grant_options()).await?;
            Ok(())
        }
    })
    .await
    .with_context(|| format!("{}: grant throughput", sys.name))?;
    Ok(Rate { ops, lat })
}

async fn retrieve_rate(
    sys: &System,
    g: &Granted,
    s: &Settings,
    tally: &Arc<Tally>,
) -> Result<Rate> {
    let (bob, grant, data, tally) = (sys.bob.clone(), g.grant, g.data.clone(), tally.clone());
    let name = sys.name;
    let (ops, lat) = throughput(s.seconds, s.concurrency, move || {
        let (bob, data, tally) = (bob.clone(), data.clone(), tally.clone());
        async move {
            let bytes = collect(bob.retrieve(grant, treatment()).await?).await?;
            if bytes != *data {
                tally.wrong.fetch_add(1, Ordering::Relaxed);
                eprintln!("{name}: WRONG BYTES under load");
            }
            Ok(())
        }
    })
    .await
    .with_context(|| format!("{}: retrieve throughput", sys.name))?;
    Ok(Rate { ops, lat })
}

// --- Where the time goes -----------------------------------------------------

fn sign_retrieve(bob: &Client<Umbral>, grant: GrantId) -> SignedTransaction {
    bob.identity().sign(Call::Retrieve(Retrieve {
        grant,
        purpose: treatment(),
    }))
}

/// What the client does with a retrieval before touching the blob (decode,
/// verify `m` capsule fragments, open the data key), timed alone.
fn open_fragments(bob: &Identity<Umbral>, r: RetrieveAnswers) -> Result<(DataKey, Duration)> {
    let started = Instant::now();
    let (key, _) = bob.open_retrieval(&Umbral, r)?;
    Ok((key, started.elapsed()))
}

#[derive(Default)]
struct Phases {
    /// `api.retrieve`: HTTP, ordering, re-encryption (and the cluster's
    /// fan-out to every replica).
    call: Vec<Duration>,
    /// Client crypto on the fragments.
    open: Vec<Duration>,
    /// Blob fetch and streamed decryption.
    blob: Vec<Duration>,
    /// Cluster only: the same call to replica 0 alone.
    one_replica: Vec<Duration>,
    /// Cluster only: when the 1st, m-th and last of the replicas answered a
    /// call sent to all of them at once.
    first: Vec<Duration>,
    mth: Vec<Duration>,
    last: Vec<Duration>,
}

impl Phases {
    fn sort(self) -> Self {
        Self {
            call: sorted(self.call),
            open: sorted(self.open),
            blob: sorted(self.blob),
            one_replica: sorted(self.one_replica),
            first: sorted(self.first),
            mth: sorted(self.mth),
            last: sorted(self.last),
        }
    }
}

async fn phases_once(sys: &System, g: &Granted, out: &mut Phases, tally: &Tally) -> Result<()> {
    let started = Instant::now();
    let r = sys.api.retrieve(sign_retrieve(&sys.bob, g.grant)).await?;
    out.call.push(started.elapsed());
    let m = usize::from(r.grant.threshold.m);
    let cid = r.record.cid;
    let _: &RetrieveAnswers = &r;
    let bob = sys.bob.clone();
    let (key, open) =
        tokio::task::spawn_blocking(move || open_fragments(bob.identity(), r)).await??;
    out.open.push(open);
    let started = Instant::now();
    let stream = sys.api.get_blob(cid).await?;
    let bytes = collect(rr_pre::envelope::decrypt_stream(&key, stream)).await?;
    out.blob.push(started.elapsed());
    if bytes != *g.data {
        tally.wrong.fetch_add(1, Ordering::Relaxed);
        eprintln!("{}: WRONG BYTES in the phase breakdown", sys.name);
    }
    if sys.members.len() > 1 {
        let started = Instant::now();
        sys.members[0]
            .retrieve(sign_retrieve(&sys.bob, g.grant))
            .await?;
        out.one_replica.push(started.elapsed());

        let tx = sign_retrieve(&sys.bob, g.grant);
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for member in &sys.members {
            let (member, tx) = (member.clone(), tx.clone());
            set.spawn(async move {
                member.retrieve(tx).await?;
                Ok::<_, anyhow::Error>(started.elapsed())
            });
        }
        let mut arrived = Vec::new();
        while let Some(r) = set.join_next().await {
            arrived.push(r??);
        }
        arrived.sort();
        out.first.push(arrived[0]);
        out.mth.push(arrived[m - 1]);
        out.last.push(arrived[arrived.len() - 1]);
    }
    Ok(())
}

async fn phases(
    b: &Bench,
    dev: &Granted,
    cluster: &Granted,
    samples: usize,
    tally: &Tally,
) -> Result<(Phases, Phases)> {
    let (mut d, mut c) = (Phases::default(), Phases::default());
    for _ in 0..samples {
        phases_once(&b.dev, dev, &mut d, tally).await?;
        phases_once(&b.cluster, cluster, &mut c, tally).await?;
    }
    Ok((d.sort(), c.sort()))
}

/// The machine's price of the primitives a cluster retrieval multiplies.
struct Primitives {
    reencrypt: Vec<Duration>,
    reencrypt_4: Vec<Duration>,
    fsync: Vec<Duration>,
}

async fn primitives(samples: usize, dir: &std::path::Path) -> Result<Primitives> {
    let delegating = umbral_pre::SecretKey::random();
    let signer = umbral_pre::Signer::new(umbral_pre::SecretKey::random());
    let receiving = umbral_pre::SecretKey::random().public_key();
    let (capsule, _) = umbral_pre::encrypt(&delegating.public_key(), b"key")
        .map_err(|e| anyhow::anyhow!("umbral encrypt: {e:?}"))?;
    let kfrags =
        umbral_pre::generate_kfrags(&delegating, &receiving, &signer, 2, 4, true, true).into_vec();
    let (capsule, kfrags) = (Arc::new(capsule), Arc::new(kfrags));
    let mut p = Primitives {
        reencrypt: Vec::new(),
        reencrypt_4: Vec::new(),
        fsync: Vec::new(),
    };
    for _ in 0..samples {
        let t = Instant::now();
        umbral_pre::reencrypt(&capsule, kfrags[0].clone());
        p.reencrypt.push(t.elapsed());

        // What four replicas on this machine do for one retrieval.
        let t = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..REPLICAS {
            let (capsule, kfrags) = (capsule.clone(), kfrags.clone());
            set.spawn_blocking(move || {
                umbral_pre::reencrypt(&capsule, kfrags[i].clone());
            });
        }
        while let Some(r) = set.join_next().await {
            r?;
        }
        p.reencrypt_4.push(t.elapsed());

        // One small durable write, as the ledger and write-ahead log make.
        let path = dir.join("fsync-probe");
        let t = Instant::now();
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&path)?;
            f.write_all(&[7u8; 4096])?;
            f.sync_all()?;
        }
        p.fsync.push(t.elapsed());
    }
    Ok(Primitives {
        reencrypt: sorted(p.reencrypt),
        reencrypt_4: sorted(p.reencrypt_4),
        fsync: sorted(p.fsync),
    })
}

// ---------------------------------------------------------------------------
// Reporting.

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "n/a".into()
    }
}

fn dur_ratio(a: Duration, b: Duration) -> String {
    ratio(a.as_secs_f64(), b.as_secs_f64())
}

struct Report<'a> {
    settings: &'a Settings,
    lat: &'a [Latency],
    grants: (&'a Rate, &'a Rate),
    retrieves: (&'a Rate, &'a Rate),
    phases: &'a [(&'static str, Phases, Phases)],
    prims: &'a Primitives,
    tally: &'a Tally,
    load_at_start: &'a str,
    data_dir: &'a std::path::Path,
}

fn render(r: &Report<'_>) -> Result<String> {
    let mut o = String::new();
    let s = r.settings;
    let args: Vec<String> = std::env::args().skip(1).collect();
    writeln!(
        o,
        "# Cluster vs dev: retrieve latency and throughput (issue #6)\n"
    )?;
    writeln!(
        o,
        "- command: `cargo run --release -p rr-node --example cluster_bench --{}{}`",
        if args.is_empty() { "" } else { " " },
        args.join(" ")
    )?;
    writeln!(
        o,
        "- build: {}",
        if cfg!(debug_assertions) {
            "debug (numbers are not representative)"
        } else {
            "release"
        }
    )?;
    writeln!(
        o,
        "- machine: {} cores (nproc), {}; load average at the start {} (other work on the machine skews both sides)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        r.load_at_start
    )?;
    writeln!(o, "- data directories: {}", r.data_dir.display())?;
    writeln!(
        o,
        "- dev: `rr-node dev` (Solo) over HTTP; cluster: {REPLICAS} PBFT replicas (f = 1, m = 2, `PbftConfig::default()`), each over HTTP, reached through `Replicas`; all on 127.0.0.1 in this process"
    )?;
    writeln!(o)?;

    writeln!(o, "## Retrieve latency (one client, sequential: retrieve + verify fragments + fetch + decrypt)\n")?;
    writeln!(o, "| record | samples | dev p50 | dev p99 | cluster p50 | cluster p99 | cluster/dev p50 | target <= 2x |")?;
    writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---|")?;
    for l in r.lat {
        let (d50, c50) = (pct(&l.dev, 50.0), pct(&l.cluster, 50.0));
        writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            l.label,
            l.samples,
            ms(d50),
            ms(pct(&l.dev, 99.0)),
            ms(c50),
            ms(pct(&l.cluster, 99.0)),
            dur_ratio(c50, d50),
            if c50 <= d50 * 2 { "met" } else { "missed" }
        )?;
    }
    writeln!(
        o,
        "\np99 is nearest-rank: with fewer than 100 samples it is the slowest one.\n"
    )?;

    writeln!(
        o,
        "## Throughput ({} concurrent clients, {} s each, 1 KiB record)\n",
        s.concurrency, s.seconds
    )?;
    writeln!(
        o,
        "| operation | dev ops/s | cluster ops/s | cluster/dev | dev p50 / p99 | cluster p50 / p99 |"
    )?;
    writeln!(o, "|---|---:|---:|---:|---:|---:|")?;
    for (name, (d, c)) in [("grant", r.grants), ("retrieve + decrypt", r.retrieves)] {
        writeln!(
            o,
            "| {name} | {:.1} | {:.1} | {} | {} / {} | {} / {} |",
            d.ops,
            c.ops,
            ratio(c.ops, d.ops),
            ms(pct(&d.lat, 50.0)),
            ms(pct(&d.lat, 99.0)),
            ms(pct(&c.lat, 50.0)),
            ms(pct(&c.lat, 99.0)),
        )?;
    }
    writeln!(o)?;

    writeln!(
        o,
        "## Where a retrieval's time goes (p50 of each phase, measured separately)\n"
    )?;
    write!(o, "| phase |")?;
    for (label, _, _) in r.phases {
        write!(o, " {label} dev | {label} cluster |")?;
    }
    writeln!(o)?;
    write!(o, "|---|")?;
    for _ in r.phases {
        write!(o, "---:|---:|")?;
    }
    writeln!(o)?;
    type Pick = fn(&Phases) -> &Vec<Duration>;
    let rows: [(&str, Pick, bool); 7] = [
        (
            "retrieve call: HTTP + ordering + re-encryption (cluster: to all 4)",
            |p| &p.call,
            true,
        ),
        (
            "cluster: the same call to replica 0 alone (PBFT, no fan-out)",
            |p| &p.one_replica,
            false,
        ),
        ("cluster: 1st of 4 parallel answers", |p| &p.first, false),
        (
            "cluster: m-th (2nd) of 4 parallel answers",
            |p| &p.mth,
            false,
        ),
        (
            "cluster: last of 4 parallel answers (`Replicas` goes on at m + f = 3 good fragments)",
            |p| &p.last,
            false,
        ),
        (
            "client: verify m capsule fragments + open (m = 1 dev, 2 cluster)",
            |p| &p.open,
            true,
        ),
        ("client: fetch blob + decrypt", |p| &p.blob, true),
    ];
    for (name, pick, both) in rows {
        write!(o, "| {name} |")?;
        for (_, d, c) in r.phases {
            let dev = if both {
                ms(pct(pick(d), 50.0))
            } else {
                "".into()
            };
            write!(o, " {dev} | {} |", ms(pct(pick(c), 50.0)))?;
        }
        writeln!(o)?;
    }
    writeln!(o)?;
    writeln!(o, "## Primitives on this machine (p50)\n")?;
    writeln!(o, "| umbral re-encrypt, 1 thread | 4 re-encrypts at once (blocking pool) | 4 KiB write + fsync |")?;
    writeln!(o, "|---:|---:|---:|")?;
    writeln!(
        o,
        "| {} | {} | {} |",
        ms(pct(&r.prims.reencrypt, 50.0)),
        ms(pct(&r.prims.reencrypt_4, 50.0)),
        ms(pct(&r.prims.fsync, 50.0))
    )?;
    writeln!(o)?;
    writeln!(
        o,
        "Checked: {} retrievals decrypted to wrong bytes; {} sequential retrievals skipped a replica (slow or failed).",
        r.tally.wrong.load(Ordering::Relaxed),
        r.tally.skipped.load(Ordering::Relaxed)
    )?;
    Ok(o)
}

// ---------------------------------------------------------------------------

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

async fn measure(b: &Bench, s: &Settings, tally: &Arc<Tally>) -> Result<String> {
    let load_at_start = load_average();
    let small = Arc::new(plaintext(1024));
    let large = Arc::new(plaintext(1 << 20));
    eprintln!("putting and granting the records");
    let dev_small = put_and_grant(&b.dev, small.clone()).await?;
    let cluster_small = put_and_grant(&b.cluster, small).await?;
    let dev_large = put_and_grant(&b.dev, large.clone()).await?;
    let cluster_large = put_and_grant(&b.cluster, large).await?;

    eprintln!("retrieve latency, 1 KiB ({} samples each)", s.samples_1k);
    let lat_small = latency(
        b,
        "1 KiB",
        &dev_small,
        &cluster_small,
        s.samples_1k,
        s.warmup,
        tally,
    )
    .await?;
    eprintln!("retrieve latency, 1 MiB ({} samples each)", s.samples_1m);
    let lat_large = latency(
        b,
        "1 MiB",
        &dev_large,
        &cluster_large,
        s.samples_1m,
        s.warmup.min(3),
        tally,
    )
    .await?;

    eprintln!("phase breakdown");
    let (d1, c1) = phases(b, &dev_small, &cluster_small, s.samples_1k / 2, tally).await?;
    let (d2, c2) = phases(b, &dev_large, &cluster_large, s.samples_1m, tally).await?;
    let prims = primitives(s.samples_1k / 2, b.dir.path()).await?;

    eprintln!(
        "throughput: {} clients, {} s per run",
        s.concurrency, s.seconds
    );
    let dev_grants = grant_rate(&b.dev, &dev_small, s).await?;
    let cluster_grants = grant_rate(&b.cluster, &cluster_small, s).await?;
    let dev_retrieves = retrieve_rate(&b.dev, &dev_small, s, tally).await?;
    let cluster_retrieves = retrieve_rate(&b.cluster, &cluster_small, s, tally).await?;

    render(&Report {
        settings: s,
        lat: &[lat_small, lat_large],
        grants: (&dev_grants, &cluster_grants),
        retrieves: (&dev_retrieves, &cluster_retrieves),
        phases: &[("1 KiB", d1, c1), ("1 MiB", d2, c2)],
        prims: &prims,
        tally,
        load_at_start: &load_at_start,
        data_dir: b.dir.path(),
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let settings = args.settings()?;
    let started = Instant::now();
    eprintln!("starting the dev node and a {REPLICAS}-replica cluster");
    let bench = start(settings.data_dir.as_deref()).await?;
    let tally = Arc::new(Tally::default());
    let result = measure(&bench, &settings, &tally).await;
    let stopped = bench.shutdown().await;
    let report = result?;
    stopped.context("shutting down")?;
    println!("{report}");
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    let wrong = tally.wrong.load(Ordering::Relaxed);
    if wrong > 0 {
        eprintln!("FAILED: {wrong} retrievals decrypted to the wrong bytes");
        std::process::exit(1);
    }
    Ok(())
}
