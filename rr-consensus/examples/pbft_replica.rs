//! One PBFT replica as an OS process, talking to the others over TCP: for the
//! multi-process test (`tests/pbft_processes.rs`) and for trying a cluster by
//! hand.
//!
//! ```text
//! cargo run -p rr-consensus --example pbft_replica -- --id 0 --data /tmp/r0 \
//!     --listen 127.0.0.1:7000 --peers 127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003
//! ```
//! Options: `--id I` (this replica's place in `--peers`), `--data DIR` (its
//! ledger and write-ahead log), `--listen ADDR` (default `127.0.0.1:0`),
//! `--peers A,B,..` (every replica's address, in order; without it the first
//! line on stdin gives them), `--key-seed S` (every replica derives the
//! cluster's keys from it; default `demo`).
//!
//! It prints `listening ADDR` once bound, then `ready I` once the engine runs,
//! and reads one command per line on stdin:
//!
//! | stdin                  | stdout                                          |
//! |------------------------|-------------------------------------------------|
//! | `peers A,B,..`         | (before `ready`, when `--peers` was not given)   |
//! | `submit <tx hex>`      | `committed <tx id> <height>` or `failed <tx id> <why>` |
//! | `status`               | `status <height> <block hash>`                  |
//! | `quit`, or end of input | stops the engine and exits                     |
//!
//! Transactions are signed [`SignedTransaction`]s in their canonical bytes,
//! executed by the harness's nonce executor. The replica stops when its stdin
//! closes, so it does not outlive the process that started it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use ed25519_dalek::SigningKey;
use rr_consensus::harness::NonceExecutor;
use rr_consensus::transport::{TcpConfig, TcpNetwork};
use rr_consensus::{Pbft, PbftConfig, PbftParts, ReplicaKey, ReplicaSet, SystemClock, Wal};
use rr_core::{ConsensusEngine, ReplicaId, SignedTransaction};
use rr_storage::Ledger;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;

struct Args {
    id: usize,
    data: PathBuf,
    listen: SocketAddr,
    peers: Option<Vec<SocketAddr>>,
    key_seed: String,
}

fn parse_peers(s: &str) -> anyhow::Result<Vec<SocketAddr>> {
    s.split(',')
        .map(|a| {
            a.trim()
                .parse()
                .with_context(|| format!("{a:?} is not an address"))
        })
        .collect()
}

fn parse_args(args: impl IntoIterator<Item = String>) -> anyhow::Result<Args> {
    let mut id = None;
    let mut data = None;
    let mut listen: SocketAddr = "127.0.0.1:0".parse()?;
    let mut peers = None;
    let mut key_seed = "demo".to_string();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--id" => id = Some(value()?.parse().context("--id")?),
            "--data" => data = Some(PathBuf::from(value()?)),
            "--listen" => listen = value()?.parse().context("--listen")?,
            "--peers" => peers = Some(parse_peers(&value()?)?),
            "--key-seed" => key_seed = value()?,
            other => bail!("unknown option {other} (see the example's docs)"),
        }
    }
    Ok(Args {
        id: id.context("--id is required")?,
        data: data.context("--data is required")?,
        listen,
        peers,
        key_seed,
    })
}

/// Replica `i`'s key, derived from the cluster's key seed.
fn replica_key(seed: &str, i: usize) -> SigningKey {
    let mut material = seed.as_bytes().to_vec();
    material.extend_from_slice(&(i as u64).to_le_bytes());
    SigningKey::from_bytes(&blake3::derive_key(
        "rr-consensus pbft_replica example key",
        &material,
    ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    run(std::env::args().skip(1)).await
}

/// Runs one replica with command-line `args` (without the program name) until
/// `quit` or the end of stdin. `tests/pbft_processes.rs` calls this too: its
/// test binary re-runs itself as each replica, so the test needs no separate
/// build of this example.
pub async fn run(args: impl IntoIterator<Item = String>) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let a = parse_args(args)?;
    let listener = TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    println!("listening {}", listener.local_addr()?);

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let peers = match a.peers {
        Some(p) => p,
        None => {
            let line = stdin
                .next_line()
                .await?
                .context("stdin closed before the peers line")?;
            let Some(list) = line.strip_prefix("peers ") else {
                bail!("expected `peers A,B,..`, got {line:?}");
            };
            parse_peers(list)?
        }
    };
    if a.id >= peers.len() {
        bail!("--id {} but only {} peers", a.id, peers.len());
    }
    let keys: Vec<SigningKey> = (0..peers.len())
        .map(|i| replica_key(&a.key_seed, i))
        .collect();
    let set = ReplicaSet::new(keys.iter().map(|k| k.verifying_key()).collect())?;
    let key = ReplicaKey::new(ReplicaId(a.id as u16), keys[a.id].clone());
    let network = TcpNetwork::start(key.clone(), set.clone(), listener, TcpConfig::new(peers))?;
    std::fs::create_dir_all(&a.data).with_context(|| format!("creating {:?}", a.data))?;
    let engine = Arc::new(Pbft::start(PbftParts {
        // Short timeouts: a killed replica is noticed quickly.
        config: PbftConfig::for_tests(),
        key,
        replicas: set,
        ledger: Arc::new(Ledger::open(a.data.join("ledger.redb"))?),
        wal: Arc::new(Wal::open(a.data.join("wal.redb"))?),
        executor: Arc::new(NonceExecutor),
        clock: Arc::new(SystemClock),
        network: Arc::new(network),
    })?);
    println!("ready {}", a.id);

    while let Some(line) = stdin.next_line().await? {
        let line = line.trim();
        if line == "quit" {
            break;
        } else if line == "status" {
            let s = engine.status();
            println!("status {} {}", s.height, s.block_hash);
        } else if let Some(tx) = line.strip_prefix("submit ") {
            let tx = match hex::decode(tx)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(SignedTransaction::from_bytes(&b)?))
            {
                Ok(tx) => tx,
                Err(e) => {
                    println!("failed - {e}");
                    continue;
                }
            };
            let id = tx.id();
            let tx = match tx.verify() {
                Ok(tx) => tx,
                Err(e) => {
                    println!("failed {id} {e}");
                    continue;
                }
            };
            let engine = engine.clone();
            tokio::spawn(async move {
                match engine.submit(tx).await {
                    Ok(r) => println!("committed {id} {}", r.context.height),
                    Err(e) => println!("failed {id} {e}"),
                }
            });
        } else if !line.is_empty() {
            println!("failed - unknown command {line:?}");
        }
    }
    engine.shutdown().await?;
    Ok(())
}
