//! Issue #13's soak run: the load generator and the checker. `scripts/soak.sh`
//! drives it against a real `rr-node localnet` cluster (separate processes),
//! kills, restarts and pauses replicas, and runs `soak check` at the end. It
//! is not part of CI.
//!
//! Everything goes through the real SDK: [`Replicas::from_cluster_file`] and
//! [`Client`], which check every answer against the replica set the cluster
//! file names.
//!
//! ```text
//! soak members --cluster DIR/cluster.json
//!     one line per replica: number, pid, API URL, config, log (for the script)
//! soak load --cluster F --find-peak SECONDS [--concurrency N] [--out peak.jsonl]
//!     closed loop: N clients run flows back to back; prints flows/s on stdout
//! soak load --cluster F --phase A --seconds 120 --rate R --out ops-A.jsonl
//!     open loop: a flow starts every 1/R s whatever the earlier ones do
//! soak check --cluster F --ops ops-A.jsonl --ops ops-B.jsonl --faults faults.jsonl
//!     every acknowledged record and grant on every replica; replicas agree;
//!     the summary table (markdown); exits 1 if a check fails
//! ```
//!
//! A flow is what a patient and a doctor do: the owner puts a 1 KiB record,
//! grants the grantee access, and the grantee retrieves and decrypts it (the
//! plaintext is compared with what was put). Each operation is one line of
//! the JSONL file (`op` = `put`, `grant`, `retrieve`), and each flow one more
//! (`op` = `flow`). A flow's latency is counted from when it was due (open
//! loop: a stalled cluster shows as latency, not as a lower offered load); a
//! step's from when the step before it ended. No network result is
//! unwrapped: a failure is a row with `ok: false` and the error.
//!
//! The faults file (written by the script) has one JSON object a line:
//! `{"kind": "kill" | "pause", "replica": 1, "role": "primary" | "backup",
//! "view": 0, "start_ms": …, "end_ms": …}` (unix milliseconds; a kill ends
//! when the restarted replica answers again). The heights file (also the
//! script's: `GET /v1/info` of every replica about every second) has
//! `{"t_ms": …, "replica": 1, "height": …, "view": …}` a line; the check
//! reports from it how long each faulty replica took to be back at the
//! others' height.
//!
//! What the check reports per phase: flows and operations ok / failed, p50
//! and p99 latency; for phase B also without the operations that overlapped
//! a fault window (its start to its end + `--grace-ms`), and per fault the
//! stall (the longest time without a completed operation, from the fault's
//! start to the next fault) and the flows' latency inside its window. It
//! fails (exit 1) if an acknowledged record or grant is missing on a
//! replica, if the replicas' certified heads differ, or if a retrieval
//! decrypted to other bytes than were put; latency and stall targets are
//! reported, not enforced.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context, Result};
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use rr_core::cert::{CertCache, CertCheck};
use rr_core::{byte_stream_of, GrantId, Purpose, RecordId};
use rr_node::http::HttpClient;
use rr_node::keystore::Keystore;
use rr_node::{
    collect, Authorization, Client, ClusterFile, GrantOptions, Identity, NodeApi, Replicas,
    RootIdentity,
};
use rr_pre::Umbral;
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
#[command(about = "Soak run of a localnet cluster: load generator and checker (issue #13)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Prints each replica of a cluster.json: number, pid, api, config, log.
    Members {
        /// The cluster.json `rr-node localnet` wrote.
        #[arg(long)]
        cluster: PathBuf,
    },
    /// Runs put + grant + retrieve flows: open loop at --rate, or closed
    /// loop with --find-peak.
    Load(LoadArgs),
    /// Checks every acknowledged record and grant on every replica, that the
    /// replicas agree, and prints the summary.
    Check(CheckArgs),
}

#[derive(Args, Debug, Clone)]
struct Net {
    /// The cluster.json `rr-node localnet` wrote.
    #[arg(long)]
    cluster: PathBuf,
    /// Deadline of one request to one replica, milliseconds.
    #[arg(long, default_value_t = 5000)]
    deadline_ms: u64,
    /// How long a call may wait to be ordered and certified, milliseconds.
    #[arg(long, default_value_t = 20000)]
    order_timeout_ms: u64,
}

impl Net {
    fn replicas(&self) -> Result<Replicas> {
        Ok(Replicas::from_cluster_file(&self.cluster)
            .with_context(|| format!("reading {}", self.cluster.display()))?
            .with_deadline(Duration::from_millis(self.deadline_ms))
            .with_order_timeout(Duration::from_millis(self.order_timeout_ms)))
    }

    /// The most one operation may take: ordering, plus a deadline for each
    /// of its other requests, plus slack. Every operation is cut off there.
    fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.order_timeout_ms + 3 * self.deadline_ms + 5000)
    }
}

#[derive(Args, Debug)]
struct LoadArgs {
    #[command(flatten)]
    net: Net,
    /// Label of the rows written (A: baseline, B: with faults).
    #[arg(long, default_value = "A")]
    phase: String,
    /// How long to offer load, seconds.
    #[arg(long, default_value_t = 120.0)]
    seconds: f64,
    /// Flows started per second (open loop). Required unless --find-peak.
    #[arg(long)]
    rate: Option<f64>,
    /// Closed loop for this many seconds with --concurrency clients, then
    /// print the flows/s completed (the last line of stdout is the number).
    #[arg(long)]
    find_peak: Option<f64>,
    /// Clients of the closed loop.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// JSONL file of every operation (appended to).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Record size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Owner/grantee pairs the flows rotate through.
    #[arg(long, default_value_t = 8)]
    users: usize,
    /// Most flows in flight; a flow due beyond it is not started and counts
    /// as failed.
    #[arg(long, default_value_t = 4000)]
    max_inflight: usize,
}

#[derive(Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    net: Net,
    /// JSONL files the load runs wrote (repeat the flag).
    #[arg(long = "ops")]
    ops: Vec<PathBuf>,
    /// The faults file the script wrote (absent: no faults).
    #[arg(long)]
    faults: Option<PathBuf>,
    /// The replicas' heights sampled during the run (absent: no catch-up
    /// times in the report).
    #[arg(long)]
    heights: Option<PathBuf>,
    /// An operation overlaps a fault if it ran between the fault's start and
    /// its end plus this, milliseconds.
    #[arg(long, default_value_t = 5000)]
    grace_ms: u64,
    /// How long to wait for every replica to reach the same certified head.
    #[arg(long, default_value_t = 180)]
    converge_secs: u64,
    /// Without convergence after this many seconds, send one small put every
    /// 2 s (a replica that is behind may only catch up when blocks come).
    #[arg(long, default_value_t = 30)]
    nudge_after_secs: u64,
    /// The keystore of the replica key the checks read as (a replica may
    /// read every record and grant); default: replica 0's, beside the
    /// cluster file (`rr-node localnet`'s layout).
    #[arg(long)]
    reader_keystore: Option<PathBuf>,
    /// The file holding that keystore's passphrase; default: replica 0's,
    /// beside the cluster file.
    #[arg(long)]
    reader_passphrase_file: Option<PathBuf>,
    /// Requests in flight while checking records and grants.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The offered rate (for the report only).
    #[arg(long)]
    rate: Option<f64>,
    /// The measured peak (for the report only).
    #[arg(long)]
    peak: Option<f64>,
    /// Also write the report here.
    #[arg(long)]
    report: Option<PathBuf>,
}

// ---------------------------------------------------------------------------
// Rows.

/// One operation (or one whole flow) as the generator saw it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct OpRow {
    phase: String,
    flow: u64,
    /// put, grant, retrieve, or flow.
    op: String,
    /// When the flow was due (unix ms).
    due_ms: u64,
    /// When this operation started (unix ms).
    start_ms: u64,
    /// When it ended (unix ms).
    end_ms: u64,
    /// put and flow: from due; grant and retrieve: from their start.
    latency_ms: f64,
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tx: Option<String>,
    /// Height its receipt is certified at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    height: Option<u64>,
    /// retrieve: whether the plaintext equals what was put.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    matched: Option<bool>,
    /// grant: replicas that did not take their key fragment; retrieve:
    /// replicas skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    missed: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Where rows go: the JSONL file (flushed every second) and memory (for the
/// summary at the end).
struct Sink {
    file: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    rows: Mutex<Vec<OpRow>>,
}

impl Sink {
    fn open(path: Option<&Path>) -> Result<Arc<Self>> {
        let file = match path {
            Some(p) => Some(Mutex::new(std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("cannot open {}", p.display()))?,
            ))),
            None => None,
        };
        Ok(Arc::new(Self {
            file,
            rows: Mutex::default(),
        }))
    }

    fn push(&self, row: OpRow) {
        if let Some(f) = &self.file {
            let line = serde_json::to_string(&row).expect("a row serializes");
            let mut f = f.lock().expect("sink lock");
            if let Err(e) = writeln!(f, "{line}") {
                eprintln!("cannot write a row: {e}");
            }
        }
        self.rows.lock().expect("sink lock").push(row);
    }

    fn flush(&self) {
        if let Some(f) = &self.file {
            if let Err(e) = f.lock().expect("sink lock").flush() {
                eprintln!("cannot flush the rows: {e}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Time.

/// Wall-clock milliseconds of `Instant`s, from one reading of both clocks
/// (so the rows' times are monotonic and comparable with `date +%s%3N`).
#[derive(Clone, Copy)]
struct Clock {
    at: Instant,
    unix_ms: u64,
}

impl Clock {
    fn new() -> Self {
        Self {
            at: Instant::now(),
            unix_ms: unix_ms_now(),
        }
    }

    fn ms(&self, t: Instant) -> u64 {
        self.unix_ms + t.saturating_duration_since(self.at).as_millis() as u64
    }
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms_between(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------
// Flows.

fn treatment() -> Purpose {
    Purpose::new("treatment").expect("a valid purpose")
}

/// The record of flow `flow` of `phase`: `size` bytes that differ per flow.
fn plaintext(phase: &str, flow: u64, size: usize) -> Vec<u8> {
    let mut h = blake3::Hasher::new();
    h.update(phase.as_bytes());
    h.update(&flow.to_le_bytes());
    let mut out = vec![0u8; size];
    h.finalize_xof().fill(&mut out);
    out
}

struct User {
    owner: Client<Umbral>,
    grantee: Client<Umbral>,
}

struct Load {
    phase: String,
    users: Vec<User>,
    size: usize,
    op_timeout: Duration,
    clock: Clock,
    sink: Arc<Sink>,
    /// Key fragments a replica did not take at grant time (it was down,
    /// paused or catching up), to deliver again in the background, as an
    /// integrator would (`Client::redeliver`): by flow.
    redeliver: tokio::sync::mpsc::UnboundedSender<(u64, rr_node::PendingFragment)>,
    /// Pending fragments queued / delivered later / given up on.
    queued: AtomicU64,
    redelivered: AtomicU64,
    abandoned: AtomicU64,
}

impl Load {
    /// Delivers `pending` to its replica, retrying every second until two
    /// minutes after it was queued; stops early if the grant is no longer
    /// usable.
    async fn redeliver(&self, flow: u64, pending: rr_node::PendingFragment, queued: Instant) {
        let owner = &self.users[(flow as usize) % self.users.len()].owner;
        let until = queued + Duration::from_secs(120);
        loop {
            match owner.redeliver(&pending).await {
                Ok(()) => {
                    self.redelivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(rr_node::ClientError::Node(rr_node::NodeError::Refused(_))) => break,
                Err(_) if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_secs(1)).await
                }
                Err(_) => break,
            }
        }
        self.abandoned.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `fut` within the operation timeout; errors as strings.
async fn bounded<T, E: std::fmt::Display>(
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "cut off after {:.0} s (operation timeout)",
            limit.as_secs_f64()
        )),
    }
}

impl Load {
    fn row(&self, flow: u64, op: &str, due: Instant, start: Instant, end: Instant) -> OpRow {
        OpRow {
            phase: self.phase.clone(),
            flow,
            op: op.into(),
            due_ms: self.clock.ms(due),
            start_ms: self.clock.ms(start),
            end_ms: self.clock.ms(end),
            latency_ms: ms_between(start, end),
            ok: false,
            record: None,
            grant: None,
            tx: None,
            height: None,
            matched: None,
            missed: None,
            error: None,
        }
    }

    /// One flow: put, grant, retrieve + decrypt + compare. Writes a row per
    /// step and one for the flow; true if every step succeeded.
    async fn flow(&self, flow: u64, due: Instant) -> bool {
        let user = &self.users[(flow as usize) % self.users.len()];
        let data = plaintext(&self.phase, flow, self.size);
        let mut flow_row = self.row(flow, "flow", due, due, due);
        let ok = self.steps(flow, due, user, &data, &mut flow_row).await;
        let end = Instant::now();
        flow_row.end_ms = self.clock.ms(end);
        flow_row.latency_ms = ms_between(due, end);
        flow_row.ok = ok;
        self.sink.push(flow_row);
        ok
    }

    async fn steps(
        &self,
        flow: u64,
        due: Instant,
        user: &User,
        data: &[u8],
        flow_row: &mut OpRow,
    ) -> bool {
        // put (latency from when the flow was due)
        let start = Instant::now();
        let put = bounded(
            self.op_timeout,
            user.owner
                .put(byte_stream_of(data.to_vec()), "application/octet-stream"),
        )
        .await;
        let end = Instant::now();
        let mut row = self.row(flow, "put", due, start, end);
        row.latency_ms = ms_between(due, end);
        let record = match put {
            Ok(p) => {
                row.ok = true;
                row.record = Some(p.record_id.to_string());
                row.tx = Some(p.tx.to_string());
                row.height = Some(p.certified_at);
                p.record_id
            }
            Err(e) => {
                row.error = Some(e.clone());
                flow_row.error = Some(format!("put: {e}"));
                self.sink.push(row);
                return false;
            }
        };
        self.sink.push(row);
        flow_row.record = Some(record.to_string());

        // grant
        let start = Instant::now();
        let grant = bounded(
            self.op_timeout,
            user.owner.grant_with_report(
                record,
                &user.grantee.card(),
                GrantOptions {
                    purpose: treatment(),
                    expires_at: None,
                    threshold: None,
                },
            ),
        )
        .await;
        let mut row = self.row(flow, "grant", due, start, Instant::now());
        row.record = Some(record.to_string());
        let grant = match grant {
            Ok(g) => {
                row.ok = true;
                row.grant = Some(g.grant.to_string());
                row.tx = Some(g.tx.to_string());
                row.height = Some(g.certified_at);
                row.missed = Some(g.pending.len());
                for p in g.pending {
                    self.queued.fetch_add(1, Ordering::Relaxed);
                    let _ = self.redeliver.send((flow, p));
                }
                g.grant
            }
            Err(e) => {
                row.error = Some(e.clone());
                flow_row.error = Some(format!("grant: {e}"));
                self.sink.push(row);
                return false;
            }
        };
        self.sink.push(row);
        flow_row.grant = Some(grant.to_string());

        // retrieve + decrypt + compare
        let start = Instant::now();
        let got = bounded(self.op_timeout, async {
            let (stream, report) = user
                .grantee
                .retrieve_with_report(grant, treatment())
                .await?;
            let bytes = collect(stream).await?;
            Ok::<_, rr_node::ClientError>((bytes, report))
        })
        .await;
        let mut row = self.row(flow, "retrieve", due, start, Instant::now());
        row.record = Some(record.to_string());
        row.grant = Some(grant.to_string());
        let ok = match got {
            Ok((bytes, report)) => {
                let matched = bytes == data;
                row.ok = matched;
                row.matched = Some(matched);
                row.tx = Some(report.tx.to_string());
                row.height = Some(report.certified_at);
                row.missed = Some(report.skipped.len());
                if !matched {
                    eprintln!(
                        "WRONG PLAINTEXT: flow {flow} grant {grant}: {} bytes retrieved, {} put",
                        bytes.len(),
                        data.len()
                    );
                    row.error = Some("the retrieved plaintext differs from what was put".into());
                    flow_row.error = row.error.clone();
                }
                matched
            }
            Err(e) => {
                row.error = Some(e.clone());
                flow_row.error = Some(format!("retrieve: {e}"));
                false
            }
        };
        self.sink.push(row);
        ok
    }
}

async fn load(args: LoadArgs) -> Result<()> {
    ensure!(
        args.users > 0 && args.size > 0,
        "--users and --size must be positive"
    );
    let replicas = args.net.replicas()?;
    let info = tokio::time::timeout(Duration::from_secs(30), replicas.info())
        .await
        .context("no replica answered within 30 s")?
        .context("no replica answered")?;
    eprintln!(
        "cluster: {} replicas (f = {}), {} answered first",
        replicas.n(),
        replicas.f(),
        info.replica
    );
    let users = (0..args.users)
        .map(|_| User {
            owner: Client::new(
                replicas.clone(),
                Arc::new(Umbral),
                Identity::generate(&Umbral),
            ),
            grantee: Client::new(
                replicas.clone(),
                Arc::new(Umbral),
                Identity::generate(&Umbral),
            ),
        })
        .collect();
    let sink = Sink::open(args.out.as_deref())?;
    let flusher = {
        let sink = sink.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                sink.flush();
            }
        })
    };
    let phase = if args.find_peak.is_some() {
        "peak".to_string()
    } else {
        args.phase.clone()
    };
    let (redeliver, mut to_redeliver) = tokio::sync::mpsc::unbounded_channel();
    let load = Arc::new(Load {
        phase: phase.clone(),
        users,
        size: args.size,
        op_timeout: args.net.op_timeout(),
        clock: Clock::new(),
        sink: sink.clone(),
        redeliver,
        queued: AtomicU64::new(0),
        redelivered: AtomicU64::new(0),
        abandoned: AtomicU64::new(0),
    });
    // One worker per replica delivers its pending fragments one at a time,
    // so a replica that is catching up is not flooded with deliveries.
    let redeliveries = {
        let load = load.clone();
        tokio::spawn(async move {
            let mut workers: std::collections::HashMap<
                u16,
                tokio::sync::mpsc::UnboundedSender<(u64, rr_node::PendingFragment, Instant)>,
            > = Default::default();
            let mut tasks = tokio::task::JoinSet::new();
            while let Some((flow, p)) = to_redeliver.recv().await {
                let worker = workers.entry(p.replica.0).or_insert_with(|| {
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(
                        u64,
                        rr_node::PendingFragment,
                        Instant,
                    )>();
                    let load = load.clone();
                    tasks.spawn(async move {
                        while let Some((flow, p, queued)) = rx.recv().await {
                            load.redeliver(flow, p, queued).await;
                        }
                    });
                    tx
                });
                let _ = worker.send((flow, p, Instant::now()));
            }
            drop(workers);
            while tasks.join_next().await.is_some() {}
        })
    };
    let result = match (args.find_peak, args.rate) {
        (Some(secs), _) => find_peak(&load, secs, args.concurrency).await,
        (None, Some(rate)) => open_loop(&load, rate, args.seconds, args.max_inflight).await,
        (None, None) => Err(anyhow::anyhow!("give --rate or --find-peak")),
    };
    // Let the pending fragments reach their replicas (each redelivery
    // retries for at most two minutes).
    let waited = Instant::now();
    while load.redelivered.load(Ordering::Relaxed) + load.abandoned.load(Ordering::Relaxed)
        < load.queued.load(Ordering::Relaxed)
        && waited.elapsed() < Duration::from_secs(130)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    redeliveries.abort();
    flusher.abort();
    sink.flush();
    let rows = sink.rows.lock().expect("sink lock").clone();
    eprintln!("{}", brief_summary(&phase, &rows));
    eprintln!(
        "phase {phase}: key fragments delivered later {} / given up {} (of {} pending)",
        load.redelivered.load(Ordering::Relaxed),
        load.abandoned.load(Ordering::Relaxed),
        load.queued.load(Ordering::Relaxed)
    );
    let peak = result?;
    if let Some(p) = peak {
        println!("{p:.3}");
    }
    Ok(())
}

/// Closed loop: `concurrency` clients run flows back to back for `secs`;
/// the flows/s completed after a short warm-up.
async fn find_peak(load: &Arc<Load>, secs: f64, concurrency: usize) -> Result<Option<f64>> {
    ensure!(
        secs > 0.0 && concurrency > 0,
        "--find-peak and --concurrency must be positive"
    );
    let start = Instant::now();
    let warmup = Duration::from_secs_f64((secs / 5.0).min(3.0));
    let end = start + Duration::from_secs_f64(secs);
    let counted = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (load, counted, next) = (load.clone(), counted.clone(), next.clone());
        tasks.spawn(async move {
            while Instant::now() < end {
                let flow = next.fetch_add(1, Ordering::Relaxed);
                let due = Instant::now();
                let ok = load.flow(flow, due).await;
                if ok && due >= start + warmup && Instant::now() <= end {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let rate = counted.load(Ordering::Relaxed) as f64 / (secs - warmup.as_secs_f64());
    eprintln!(
        "peak: {rate:.2} flows/s ({:.1} operations/s) with {concurrency} clients in a closed loop, {secs} s ({:.1} s warm-up not counted)",
        rate * 3.0,
        warmup.as_secs_f64()
    );
    Ok(Some(rate))
}

/// Open loop: flow k is due at start + k / rate, and starts then whatever
/// the others do.
async fn open_loop(
    load: &Arc<Load>,
    rate: f64,
    secs: f64,
    max_inflight: usize,
) -> Result<Option<f64>> {
    ensure!(
        rate > 0.0 && secs > 0.0,
        "--rate and --seconds must be positive"
    );
    eprintln!(
        "phase {}: {rate:.2} flows/s for {secs} s, open loop",
        load.phase
    );
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(secs);
    let inflight: Arc<Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut k = 0u64;
    let mut last_report = start;
    loop {
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        if due >= stop {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        while tasks.try_join_next().is_some() {}
        let busy = inflight.lock().expect("inflight lock").len();
        if busy >= max_inflight {
            let mut row = load.row(k, "flow", due, due, due);
            row.error = Some(format!("not started: {busy} flows in flight"));
            load.sink.push(row);
        } else {
            inflight.lock().expect("inflight lock").insert(k, due);
            let (load, inflight) = (load.clone(), inflight.clone());
            tasks.spawn(async move {
                load.flow(k, due).await;
                inflight.lock().expect("inflight lock").remove(&k);
            });
        }
        if due.duration_since(last_report) >= Duration::from_secs(30) {
            last_report = due;
            eprintln!(
                "phase {}: {:.0} s, {} flows started, {} in flight",
                load.phase,
                due.duration_since(start).as_secs_f64(),
                k + 1,
                busy
            );
        }
        k += 1;
    }
    // Every operation is bounded, so a flow ends within three of them.
    let drain = load.op_timeout * 3 + Duration::from_secs(5);
    if tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tasks.abort_all();
        let left: Vec<(u64, Instant)> = inflight
            .lock()
            .expect("inflight lock")
            .iter()
            .map(|(k, d)| (*k, *d))
            .collect();
        for (k, due) in left {
            let mut row = load.row(k, "flow", due, due, Instant::now());
            row.error = Some("did not finish before the load stopped".into());
            load.sink.push(row);
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------
// Statistics.

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(ms) if ms >= 1000.0 => format!("{:.2} s", ms / 1e3),
        Some(ms) => format!("{ms:.0} ms"),
    }
}

/// ok and failed operations of kind `op`.
fn counts(rows: &[&OpRow], op: &str) -> (usize, usize) {
    let of: Vec<_> = rows.iter().filter(|r| r.op == op).collect();
    let ok = of.iter().filter(|r| r.ok).count();
    (ok, of.len() - ok)
}

fn latencies(rows: &[&OpRow], op: &str) -> Vec<f64> {
    sorted(
        rows.iter()
            .filter(|r| r.op == op && r.ok)
            .map(|r| r.latency_ms)
            .collect(),
    )
}

fn brief_summary(phase: &str, rows: &[OpRow]) -> String {
    let rows: Vec<&OpRow> = rows.iter().collect();
    let mut s = format!("phase {phase}:");
    for op in ["flow", "put", "grant", "retrieve"] {
        let (ok, failed) = counts(&rows, op);
        let lat = latencies(&rows, op);
        let _ = write!(
            s,
            " {op} {ok} ok / {failed} failed (p50 {}, p99 {});",
            fmt_ms(pct(&lat, 50.0)),
            fmt_ms(pct(&lat, 99.0))
        );
    }
    let wrong = rows.iter().filter(|r| r.matched == Some(false)).count();
    let _ = write!(s, " wrong plaintext {wrong}");
    s
}

// ---------------------------------------------------------------------------
// The check.

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Fault {
    kind: String,
    replica: u16,
    #[serde(default)]
    role: String,
    #[serde(default)]
    view: Option<u64>,
    start_ms: u64,
    end_ms: u64,
    /// For the report: how long after the fault's end the replica was back
    /// at the others' height (from the heights file).
    #[serde(skip)]
    caught_up: Option<String>,
}

/// One sample of a replica's height (`GET /v1/info`), taken by the script
/// about every second.
#[derive(Clone, Debug, Deserialize)]
struct HeightSample {
    t_ms: u64,
    replica: u16,
    height: u64,
}

/// How long after `from` replica `replica` first stood at least at the
/// height of the slowest other replica (each at its latest sample then);
/// `None`: not within the samples.
fn catch_up(samples: &[HeightSample], replica: u16, from: u64) -> Option<u64> {
    let mut latest: BTreeMap<u16, u64> = BTreeMap::new();
    for s in samples {
        if s.replica == replica && s.t_ms >= from {
            let others = latest
                .iter()
                .filter(|(r, _)| **r != replica)
                .map(|(_, h)| *h)
                .min();
            if others.is_some_and(|o| s.height >= o) {
                return Some(s.t_ms - from);
            }
        }
        latest.insert(s.replica, s.height);
    }
    None
}

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{} line {}: {line}", path.display(), i + 1))?,
        );
    }
    Ok(out)
}

/// One replica's certified head, checked against the trusted set.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Head {
    height: u64,
    state_root: String,
    header: String,
}

async fn head_of(api: &HttpClient, set: &CertCache, deadline: Duration) -> Result<Head, String> {
    let cert = match tokio::time::timeout(deadline, api.head()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("did not answer in time".into()),
    };
    let h = set
        .check(&cert)
        .map_err(|e| format!("its head's certificate does not hold: {e}"))?;
    Ok(Head {
        height: h.height(),
        state_root: h.header().state_root.to_string(),
        header: h.header().hash().to_string(),
    })
}

/// What waiting for the replicas to agree found.
struct Agreement {
    /// Every replica's last head (or why it gave none).
    heads: Vec<Result<Head, String>>,
    agreed: bool,
    /// Replicas at the same height with different state roots or headers.
    diverged: bool,
    waited: Duration,
    nudges: Vec<(RecordId, u64)>,
}

/// Waits until every replica reports the same certified head; after
/// `nudge_after`, puts a small record every 2 s (returned, to be checked too).
async fn converge(
    members: &[HttpClient],
    set: &CertCache,
    args: &CheckArgs,
    nudger: &Client<Umbral>,
) -> Agreement {
    let start = Instant::now();
    let deadline = Duration::from_millis(args.net.deadline_ms);
    let mut last_print = String::new();
    let mut last_nudge: Option<Instant> = None;
    let mut nudges = Vec::new();
    loop {
        let heads: Vec<Result<Head, String>> =
            futures::future::join_all(members.iter().map(|m| head_of(m, set, deadline))).await;
        let line = heads
            .iter()
            .enumerate()
            .map(|(i, h)| match h {
                Ok(h) => format!("{i}: {}", h.height),
                Err(_) => format!("{i}: no answer"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        if line != last_print {
            eprintln!("certified heads: {line}");
            last_print = line;
        }
        // Replicas at the same height must agree on everything, converged or not.
        let mut by_height: HashMap<u64, &Head> = HashMap::new();
        let mut diverged = false;
        for h in heads.iter().flatten() {
            if let Some(other) = by_height.insert(h.height, h) {
                diverged |= other != h;
            }
        }
        let all_same = heads.iter().all(|h| h.is_ok()) && by_height.len() == 1;
        let waited = start.elapsed();
        if all_same || diverged || waited >= Duration::from_secs(args.converge_secs) {
            return Agreement {
                heads,
                agreed: all_same && !diverged,
                diverged,
                waited,
                nudges,
            };
        }
        if waited >= Duration::from_secs(args.nudge_after_secs)
            && last_nudge.is_none_or(|t| t.elapsed() >= Duration::from_secs(2))
        {
            last_nudge = Some(Instant::now());
            let data = plaintext("nudge", nudges.len() as u64, 64);
            match bounded(
                Duration::from_secs(30),
                nudger.put(byte_stream_of(data), "application/octet-stream"),
            )
            .await
            {
                Ok(p) => {
                    eprintln!(
                        "nudge: put record {} (height {})",
                        p.record_id.short(),
                        p.certified_at
                    );
                    nudges.push((p.record_id, p.certified_at));
                }
                Err(e) => eprintln!("nudge: put failed: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The replica key the checks read with: `--reader-keystore`, or replica
/// 0's beside the cluster file.
fn reader_key(args: &CheckArgs) -> Result<RootIdentity> {
    let beside = args
        .net
        .cluster
        .parent()
        .unwrap_or(Path::new("."))
        .join("replica-0");
    let keys = args
        .reader_keystore
        .clone()
        .unwrap_or_else(|| beside.join("keys"));
    let pass_file = args
        .reader_passphrase_file
        .clone()
        .unwrap_or_else(|| beside.join("passphrase"));
    let pass = zeroize::Zeroizing::new(
        std::fs::read_to_string(&pass_file)
            .with_context(|| format!("cannot read the passphrase file {}", pass_file.display()))?,
    );
    Keystore::open(&keys)
        .and_then(|k| k.load("replica", pass.trim()))
        .with_context(|| format!("cannot load the replica key in {}", keys.display()))
}

/// What one replica must hold.
#[derive(Clone, Copy)]
enum Item {
    Record(RecordId),
    /// A grant and the record it must be of.
    Grant(GrantId, RecordId),
}

/// Whether `replica` holds `item` in its certified state. Err: it could not
/// be asked (after retries) or its answer does not hold.
async fn holds(
    api: &HttpClient,
    set: &CertCache,
    item: Item,
    auth: Authorization,
    deadline: Duration,
) -> Result<bool, String> {
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let answer = match item {
            Item::Record(id) => tokio::time::timeout(deadline, api.record(id, auth.clone())).await,
            Item::Grant(id, _) => tokio::time::timeout(deadline, api.grant(id, auth.clone())).await,
        };
        let answer = match answer {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                last = e.to_string();
                continue;
            }
            Err(_) => {
                last = "did not answer in time".into();
                continue;
            }
        };
        let state = answer
            .verify(set)
            .map_err(|e| format!("its answer does not hold: {e}"))?;
        return match item {
            Item::Record(id) => match state.record(&id) {
                Ok(r) => Ok(r.is_some()),
                Err(e) => Err(format!("its answer does not hold: {e}")),
            },
            Item::Grant(id, record) => match state.grant(&id) {
                Ok(Some(g)) if g.record == record => Ok(true),
                Ok(Some(g)) => Err(format!(
                    "grant {} is of record {}, not {}",
                    id.short(),
                    g.record.short(),
                    record.short()
                )),
                Ok(None) => Ok(false),
                Err(e) => Err(format!("its answer does not hold: {e}")),
            },
        };
    }
    Err(last)
}

#[derive(Default, Clone)]
struct PerReplica {
    records_held: usize,
    grants_held: usize,
    missing: Vec<String>,
    errors: Vec<String>,
}

async fn check(args: CheckArgs) -> Result<bool> {
    let file = ClusterFile::read(&args.net.cluster)?;
    let set = Arc::new(CertCache::new(file.replica_set()?));
    let reader = reader_key(&args)?;
    let digest = file.replica_set()?.digest();
    let members: Vec<HttpClient> = file
        .replicas
        .iter()
        .map(|m| file.api_client(m))
        .collect::<Result<_, _>>()?;
    let mut rows: Vec<OpRow> = Vec::new();
    for p in &args.ops {
        if p.exists() {
            rows.extend(read_jsonl::<OpRow>(p)?);
        } else {
            eprintln!("note: {} does not exist (skipped)", p.display());
        }
    }
    let mut faults: Vec<Fault> = match &args.faults {
        Some(p) if p.exists() => read_jsonl(p)?,
        _ => Vec::new(),
    };
    if let Some(p) = args.heights.as_ref().filter(|p| p.exists()) {
        let mut samples: Vec<HeightSample> = read_jsonl(p)?;
        samples.sort_by_key(|s| s.t_ms);
        for f in &mut faults {
            f.caught_up = Some(match catch_up(&samples, f.replica, f.end_ms) {
                Some(ms) => fmt_ms(Some(ms as f64)),
                None => "not during the run".into(),
            });
        }
    }

    // 1. Every replica at the same certified head, with the same state root.
    let nudger = Client::new(
        args.net.replicas()?,
        Arc::new(Umbral),
        Identity::generate(&Umbral),
    );
    eprintln!("waiting for every replica to report the same certified head");
    let agreement = converge(&members, &set, &args, &nudger).await;

    // 2. Every acknowledged record and grant on every replica.
    let mut items: Vec<Item> = Vec::new();
    let mut seen_records = HashSet::new();
    for r in rows.iter().filter(|r| r.ok) {
        let record = r.record.as_deref().and_then(|s| s.parse::<RecordId>().ok());
        match (r.op.as_str(), record) {
            ("put", Some(id)) if seen_records.insert(id) => items.push(Item::Record(id)),
            ("grant", Some(record)) => {
                if let Some(g) = r.grant.as_deref().and_then(|s| s.parse::<GrantId>().ok()) {
                    items.push(Item::Grant(g, record));
                }
            }
            _ => {}
        }
    }
    for (id, _) in &agreement.nudges {
        items.push(Item::Record(*id));
    }
    let n_records = items
        .iter()
        .filter(|i| matches!(i, Item::Record(_)))
        .count();
    let n_grants = items.len() - n_records;
    eprintln!(
        "checking {n_records} records and {n_grants} grants on each of {} replicas",
        members.len()
    );
    let deadline = Duration::from_millis(args.net.deadline_ms);
    let started = Instant::now();
    let results: Vec<(usize, Item, Result<bool, String>)> = futures::stream::iter(
        items
            .iter()
            .flat_map(|it| (0..members.len()).map(move |i| (i, *it))),
    )
    .map(|(i, it)| {
        let (m, set) = (&members[i], &set);
        let scope = match it {
            Item::Record(id) => Authorization::record_scope(&id),
            Item::Grant(id, _) => Authorization::grant_scope(&id),
        };
        let auth = Authorization::sign(reader.signing_key(), &digest, scope);
        async move { (i, it, holds(m, set, it, auth, deadline).await) }
    })
    .buffer_unordered(args.concurrency.max(1))
    .collect()
    .await;
    eprintln!(
        "asked {} questions in {:.1} s",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    let mut per: Vec<PerReplica> = vec![PerReplica::default(); members.len()];
    for (i, item, res) in results {
        let what = match item {
            Item::Record(id) => format!("record {id}"),
            Item::Grant(id, _) => format!("grant {id}"),
        };
        match res {
            Ok(true) => match item {
                Item::Record(_) => per[i].records_held += 1,
                Item::Grant(..) => per[i].grants_held += 1,
            },
            Ok(false) => per[i].missing.push(what),
            Err(e) => per[i].errors.push(format!("{what}: {e}")),
        }
    }

    let report = render(&args, &rows, &faults, &agreement, &per, n_records, n_grants);
    println!("{}", report.text);
    if let Some(p) = &args.report {
        std::fs::write(p, &report.text).with_context(|| format!("writing {}", p.display()))?;
    }
    for (i, p) in per.iter().enumerate() {
        for m in p.missing.iter().take(5) {
            eprintln!("replica {i}: MISSING {m}");
        }
        for e in p.errors.iter().take(5) {
            eprintln!("replica {i}: could not check {e}");
        }
    }
    for f in &report.failures {
        eprintln!("FAILED: {f}");
    }
    Ok(report.failures.is_empty())
}

struct Report {
    text: String,
    failures: Vec<String>,
}

/// Whether the span [from, to] overlaps a fault's window.
fn overlaps(from: u64, to: u64, faults: &[Fault], grace: u64) -> bool {
    faults
        .iter()
        .any(|f| from <= f.end_ms + grace && to >= f.start_ms)
}

/// The longest time without a completed operation, from `from` until
/// `until`: the gap from `from` to the first completion, between
/// completions, and from the last to `until`.
fn stall(completions: &[u64], from: u64, until: u64) -> u64 {
    let mut last = from;
    let mut longest = 0;
    for &c in completions.iter().filter(|c| **c > from && **c <= until) {
        longest = longest.max(c - last);
        last = c;
    }
    longest.max(until.saturating_sub(last))
}

fn render(
    args: &CheckArgs,
    rows: &[OpRow],
    faults: &[Fault],
    agreement: &Agreement,
    per: &[PerReplica],
    n_records: usize,
    n_grants: usize,
) -> Report {
    let mut o = String::new();
    let mut failures = Vec::new();
    let grace = args.grace_ms;
    let phase = |p: &str| rows.iter().filter(|r| r.phase == p).collect::<Vec<_>>();
    let a = phase("A");
    let b = phase("B");
    let b_clear: Vec<&OpRow> = b
        .iter()
        .copied()
        .filter(|r| !overlaps(r.due_ms.min(r.start_ms), r.end_ms, faults, grace))
        .collect();
    let span = |rows: &[&OpRow]| -> String {
        let from = rows.iter().map(|r| r.due_ms).min();
        let to = rows.iter().map(|r| r.end_ms).max();
        match (from, to) {
            (Some(f), Some(t)) => format!("{:.0} s", (t - f) as f64 / 1e3),
            _ => "–".into(),
        }
    };

    let _ = writeln!(
        o,
        "## Soak run: {} replicas, 1 KiB put + grant + retrieve flows\n",
        per.len()
    );
    if let (Some(rate), peak) = (args.rate, args.peak) {
        let _ = writeln!(
            o,
            "Offered load: {rate:.2} flows/s, open loop{}.\n",
            peak.map(|p| format!(" (measured peak {p:.2} flows/s, closed loop)"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        o,
        "| | phase A (no faults) | phase B (faults) | phase B outside fault windows (+{:.0} s) |",
        grace as f64 / 1e3
    );
    let _ = writeln!(o, "|---|---:|---:|---:|");
    let cols = [&a, &b, &b_clear];
    let _ = writeln!(o, "| span | {} | {} | |", span(&a), span(&b));
    for op in ["flow", "put", "grant", "retrieve"] {
        let cells: Vec<String> = cols
            .iter()
            .map(|rows| {
                let (ok, failed) = counts(rows, op);
                format!("{ok} / {failed}")
            })
            .collect();
        let _ = writeln!(o, "| {op}s ok / failed | {} |", cells.join(" | "));
    }
    for (op, what) in [
        ("flow", "flow latency (from due)"),
        ("put", "put"),
        ("grant", "grant"),
        ("retrieve", "retrieve + decrypt"),
    ] {
        let cells: Vec<String> = cols
            .iter()
            .map(|rows| {
                let l = latencies(rows, op);
                format!("{} / {}", fmt_ms(pct(&l, 50.0)), fmt_ms(pct(&l, 99.0)))
            })
            .collect();
        let _ = writeln!(o, "| {what} p50 / p99 | {} |", cells.join(" | "));
    }
    let cells: Vec<String> = cols
        .iter()
        .map(|rows| {
            let missed = |op: &str| {
                rows.iter()
                    .filter(|r| r.ok && r.op == op && r.missed.unwrap_or(0) > 0)
                    .count()
            };
            format!("{} / {}", missed("grant"), missed("retrieve"))
        })
        .collect();
    let _ = writeln!(
        o,
        "| grants that left a key fragment undelivered / retrievals that skipped a replica | {} |",
        cells.join(" | ")
    );
    let _ = writeln!(o);

    // Errors by kind (first words), to see what failed.
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows.iter().filter(|r| !r.ok && r.op != "flow") {
        let e = r.error.clone().unwrap_or_default();
        let short: String = e.chars().take(110).collect();
        *kinds
            .entry(format!("{} {}: {short}", r.phase, r.op))
            .or_default() += 1;
    }
    if !kinds.is_empty() {
        let _ = writeln!(o, "Failed operations (phase, operation, error's start):\n");
        let mut v: Vec<_> = kinds.into_iter().collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.1));
        for (k, n) in v.iter().take(12) {
            let _ = writeln!(o, "- {n} × {k}");
        }
        let _ = writeln!(o);
    }

    // Faults and stalls.
    let mut completions: Vec<u64> = b
        .iter()
        .filter(|r| r.ok && r.op != "flow")
        .map(|r| r.end_ms)
        .collect();
    completions.sort_unstable();
    let b_start = b.iter().map(|r| r.due_ms).min().unwrap_or(0);
    let b_end = completions.last().copied().unwrap_or(0);
    let mut ordered: Vec<&Fault> = faults.iter().collect();
    ordered.sort_by_key(|f| f.start_ms);
    let mut kill_stalls = Vec::new();
    let mut primary_stalls = Vec::new();
    if !ordered.is_empty() {
        let _ = writeln!(o, "| fault | replica | role (view) | at (s into B) | lasted | stall after it | first op completed after | flow p50 / p99 in its window | back at the others' height (after its end) |");
        let _ = writeln!(o, "|---|---:|---|---:|---:|---:|---:|---:|---:|");
    }
    for (k, f) in ordered.iter().enumerate() {
        let until = ordered
            .get(k + 1)
            .map_or(b_end, |next| next.start_ms)
            .min(b_end)
            .max(f.start_ms);
        let s = stall(&completions, f.start_ms, until);
        let first = completions
            .iter()
            .find(|c| **c > f.start_ms)
            .map(|c| (c - f.start_ms) as f64);
        // Flows that ran during this fault's window (what a user saw).
        let during = latencies(
            &b.iter()
                .copied()
                .filter(|r| overlaps(r.due_ms, r.end_ms, std::slice::from_ref(*f), grace))
                .collect::<Vec<_>>(),
            "flow",
        );
        if f.kind == "kill" {
            kill_stalls.push(s as f64);
            if f.role == "primary" {
                primary_stalls.push(s as f64);
            }
        }
        let _ = writeln!(
            o,
            "| {} | {} | {}{} | {:.1} | {:.1} s | {} | {} | {} / {} | {} |",
            if f.kind == "kill" {
                "kill -9, restart"
            } else {
                "SIGSTOP, SIGCONT"
            },
            f.replica,
            f.role,
            f.view.map(|v| format!(" ({v})")).unwrap_or_default(),
            f.start_ms.saturating_sub(b_start) as f64 / 1e3,
            f.end_ms.saturating_sub(f.start_ms) as f64 / 1e3,
            fmt_ms(Some(s as f64)),
            fmt_ms(first),
            fmt_ms(pct(&during, 50.0)),
            fmt_ms(pct(&during, 99.0)),
            f.caught_up.as_deref().unwrap_or("–"),
        );
    }
    if !ordered.is_empty() {
        let _ = writeln!(o);
    }

    // The verdicts.
    let _ = writeln!(o, "| check | result | target |");
    let _ = writeln!(o, "|---|---|---|");
    let p99_a = pct(&latencies(&a, "flow"), 99.0);
    let p99_clear = pct(&latencies(&b_clear, "flow"), 99.0);
    match (p99_a, p99_clear) {
        (Some(x), Some(y)) if x > 0.0 => {
            let r = y / x;
            let _ = writeln!(
                o,
                "| flow p99 in B outside faults / in A | {} / {} = {r:.2}x | ≤ 2x: {} |",
                fmt_ms(Some(y)),
                fmt_ms(Some(x)),
                if r <= 2.0 { "met" } else { "missed" }
            );
        }
        _ => {
            let _ = writeln!(
                o,
                "| flow p99 in B outside faults / in A | – (no samples) | ≤ 2x |"
            );
        }
    }
    if !kill_stalls.is_empty() {
        let ks = sorted(kill_stalls.clone());
        let primary_max = primary_stalls
            .iter()
            .copied()
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        let _ = writeln!(
            o,
            "| stall after kill -9, p99 / max over {} kills | {} / {} (primary kills: max {}) | < 3 s after killing the primary: {} |",
            ks.len(),
            fmt_ms(pct(&ks, 99.0)),
            fmt_ms(ks.last().copied()),
            fmt_ms(primary_max),
            match primary_max {
                None => "no primary kill",
                Some(m) if m < 3000.0 => "met",
                Some(_) => "missed",
            }
        );
    }
    let wrong = rows.iter().filter(|r| r.matched == Some(false)).count();
    let _ = writeln!(o, "| retrievals with wrong plaintext | {wrong} | 0 |");
    if wrong > 0 {
        failures.push(format!(
            "{wrong} retrievals decrypted to other bytes than were put"
        ));
    }
    for (i, p) in per.iter().enumerate() {
        let ok = p.missing.is_empty() && p.errors.is_empty();
        let _ = writeln!(
            o,
            "| replica {i} holds the acknowledged records / grants | {} of {n_records} / {} of {n_grants}{}{} | all |",
            p.records_held,
            p.grants_held,
            if p.missing.is_empty() { String::new() } else { format!("; {} MISSING", p.missing.len()) },
            if p.errors.is_empty() { String::new() } else { format!("; {} not checkable", p.errors.len()) },
        );
        if !ok {
            failures.push(format!(
                "replica {i}: {} acknowledged items missing, {} could not be checked",
                p.missing.len(),
                p.errors.len()
            ));
        }
    }
    let heads = agreement
        .heads
        .iter()
        .enumerate()
        .map(|(i, h)| match h {
            Ok(h) => format!(
                "{i}: {} {}…",
                h.height,
                &h.state_root[..12.min(h.state_root.len())]
            ),
            Err(e) => format!("{i}: {e}"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let verdict = if agreement.agreed {
        "agree".to_string()
    } else if agreement.diverged {
        failures.push(format!("replicas at the same height disagree: {heads}"));
        "DISAGREE".to_string()
    } else {
        failures.push(format!(
            "the replicas did not reach the same certified head within {} s: {heads}",
            args.converge_secs
        ));
        "did not converge".to_string()
    };
    let _ = writeln!(
        o,
        "| certified heads (height, state root) after the load | {verdict} after {:.1} s{}: {heads} | equal |",
        agreement.waited.as_secs_f64(),
        if agreement.nudges.is_empty() {
            String::new()
        } else {
            format!(", {} nudge puts", agreement.nudges.len())
        }
    );
    let acked = rows.iter().filter(|r| r.op == "flow" && r.ok).count();
    if acked == 0 {
        failures.push("no flow was acknowledged at all".into());
    }
    let _ = writeln!(
        o,
        "\nResult: {}",
        if failures.is_empty() {
            "PASS (every acknowledged record and grant on every replica, replicas agree, every plaintext equal)".to_string()
        } else {
            format!("FAIL: {}", failures.join("; "))
        }
    );
    Report { text: o, failures }
}

// ---------------------------------------------------------------------------

fn members(cluster: &Path) -> Result<()> {
    let file = ClusterFile::read(cluster)?;
    for m in &file.replicas {
        println!(
            "{} {} {} {} {}",
            m.replica,
            m.pid.map_or("-".to_string(), |p| p.to_string()),
            m.api,
            m.config.display(),
            m.log.display()
        );
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Members { cluster } => members(&cluster),
        Cmd::Load(args) => load(args).await,
        Cmd::Check(args) => {
            if check(args).await? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
    }
}
