//! Four replicas over real TCP on 127.0.0.1: authenticated links, commits,
//! and a replica that reconnects after a restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use rr_consensus::harness::harness_key;
use rr_consensus::transport::{Network, TcpConfig, TcpNetwork};
use rr_consensus::{Pbft, PbftConfig, PbftParts, ReplicaKey, ReplicaSet, SystemClock, Wal};
use rr_core::{ConsensusEngine, ReplicaId};
use rr_storage::Ledger;
use tokio::net::TcpListener;

struct Node {
    engine: Arc<Pbft<NonceExecutor>>,
    ledger: Arc<Ledger>,
}

fn start_node(
    i: usize,
    dir: &std::path::Path,
    set: &ReplicaSet,
    listener: TcpListener,
    peers: &[std::net::SocketAddr],
) -> Node {
    let key = ReplicaKey::new(ReplicaId(i as u16), harness_key(i));
    let network = TcpNetwork::start(
        key.clone(),
        set.clone(),
        listener,
        TcpConfig::new(peers.to_vec()),
    )
    .unwrap();
    let ledger = Arc::new(Ledger::open(dir.join(format!("ledger-{i}.redb"))).unwrap());
    let engine = Pbft::start(PbftParts {
        config: PbftConfig::for_tests(),
        key,
        replicas: set.clone(),
        ledger: ledger.clone(),
        wal: Arc::new(Wal::open(dir.join(format!("wal-{i}.redb"))).unwrap()),
        executor: Arc::new(NonceExecutor),
        clock: Arc::new(SystemClock),
        network: Arc::new(network),
    })
    .unwrap();
    Node {
        engine: Arc::new(engine),
        ledger,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_over_loopback_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let set = ReplicaSet::new((0..4).map(|i| harness_key(i).verifying_key()).collect()).unwrap();
    let mut listeners = Vec::new();
    for _ in 0..4 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let peers: Vec<_> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let mut nodes: Vec<Option<Node>> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| Some(start_node(i, dir.path(), &set, l, &peers)))
        .collect();
    let key = client(90);
    let submit = |nodes: &Vec<Option<Node>>, range: std::ops::Range<u64>, at: Vec<usize>| {
        let futs: Vec<_> = range
            .map(|n| {
                let e = nodes[at[(n as usize) % at.len()]]
                    .as_ref()
                    .unwrap()
                    .engine
                    .clone();
                let t = tx(&key, n);
                async move { e.submit(t).await.unwrap() }
            })
            .collect();
        futures::future::join_all(futs)
    };
    let receipts = tokio::time::timeout(
        Duration::from_secs(20),
        submit(&nodes, 0..100, vec![0, 1, 2, 3]),
    )
    .await
    .expect("commits over TCP");
    assert_all_ok(&receipts);

    // Replica 2 restarts on the same port: the others reconnect to it.
    let node = nodes[2].take().unwrap();
    node.engine.shutdown().await.unwrap();
    drop(node);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let listener = TcpListener::bind(peers[2]).await.unwrap();
    nodes[2] = Some(start_node(2, dir.path(), &set, listener, &peers));
    let receipts = tokio::time::timeout(
        Duration::from_secs(20),
        submit(&nodes, 100..150, vec![0, 1, 3]),
    )
    .await
    .expect("commits after a restart");
    assert_all_ok(&receipts);
    // Every replica, including the restarted one, reaches the same head.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let heads: Vec<_> = nodes
            .iter()
            .map(|n| n.as_ref().unwrap().ledger.head().unwrap())
            .collect();
        if heads.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no convergence: {heads:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in nodes.iter().flatten() {
        n.engine.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_cannot_open_a_link() {
    let set = ReplicaSet::new((0..4).map(|i| harness_key(i).verifying_key()).collect()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dead: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let net = TcpNetwork::start(
        ReplicaKey::new(ReplicaId(0), harness_key(0)),
        set.clone(),
        listener,
        TcpConfig::new(vec![addr, dead, dead, dead]),
    )
    .unwrap();
    // An impostor claims to be replica 1 with a key of its own.
    let impostor = TcpNetwork::start(
        ReplicaKey::new(
            ReplicaId(1),
            ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
        ),
        set.clone(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TcpConfig::new(vec![addr, dead, dead, dead]),
    )
    .unwrap();
    impostor
        .send(ReplicaId(0), bytes::Bytes::from_static(b"hello"))
        .await;
    // And a raw client sends a frame without any handshake.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut raw =
        tokio_util::codec::Framed::new(stream, tokio_util::codec::LengthDelimitedCodec::new());
    let _ = raw
        .send(bytes::Bytes::from_static(b"not a handshake"))
        .await;
    let _ = tokio::time::timeout(Duration::from_millis(300), raw.next()).await;
    let got = tokio::time::timeout(Duration::from_millis(500), net.recv()).await;
    assert!(
        got.is_err(),
        "an unauthenticated message got through: {got:?}"
    );
}
