//! Four replicas of `Node<ClusterTypes>` (PBFT over loopback TCP) in one
//! process, and the clients of every replica the tests drive them with.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use rr_consensus::{PbftConfig, SystemClock};
use rr_core::cert::ReplicaSetInfo;
use rr_core::{byte_stream_of, AccountId, GrantId, Purpose, ReplicaId};
use rr_node::cluster::{ClusterConfig, ClusterTypes, Peer};
use rr_node::sealing::{SealingKey, SealingPublicKey};
use rr_node::{Client, GrantOptions, Identity, Node, NodeApi, PutOutcome, Replicas};
use rr_pre::Umbral;

/// One replica.
pub type Replica = Node<ClusterTypes<Umbral>>;

/// Replica `i`'s key.
pub fn key(i: usize) -> SigningKey {
    SigningKey::from_bytes(&[i as u8 + 1; 32])
}

/// Replica `i`'s sealing key.
pub fn sealing(i: usize) -> SealingKey {
    SealingKey::derive(&[i as u8 + 50; 32])
}

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The peers of a cluster of `n`.
pub fn peers(n: usize) -> Vec<Peer> {
    (0..n)
        .map(|i| Peer {
            p2p: free_addr(),
            api: format!("http://127.0.0.1:{}", 1 + i),
            public_key: hex::encode(key(i).verifying_key().as_bytes()),
            sealing_key: sealing(i).public().to_hex(),
        })
        .collect()
}

/// Replica `i`'s settings.
pub fn config(dir: &std::path::Path, peers: &[Peer], i: usize) -> ClusterConfig {
    let mut config = ClusterConfig::new(
        ReplicaId(i as u16),
        dir.join(format!("replica-{i}")),
        peers.to_vec(),
    );
    config.pbft = PbftConfig::for_tests();
    config.max_blob_size = 1 << 30;
    config
}

/// Opens replica `i`.
pub async fn open(dir: &std::path::Path, peers: &[Peer], i: usize) -> Arc<Replica> {
    Node::open_cluster(
        config(dir, peers, i),
        key(i),
        sealing(i),
        Umbral,
        Arc::new(SystemClock),
    )
    .await
    .unwrap()
}

/// A cluster of `n` in `dir`.
pub async fn cluster(dir: &std::path::Path, n: usize) -> (Vec<Peer>, Vec<Arc<Replica>>) {
    let peers = peers(n);
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(open(dir, &peers, i).await);
    }
    (peers, nodes)
}

/// The trusted replica set of a cluster of `n` (what `cluster.json` names).
pub fn replica_set(n: usize) -> ReplicaSetInfo {
    ReplicaSetInfo::new(
        (0..n)
            .map(|i| AccountId::from_verifying_key(&key(i).verifying_key()))
            .collect(),
    )
    .unwrap()
}

/// The replica set as a client sees it: the trusted keys, the sealing keys,
/// and `members` (possibly wrapped to lie).
pub fn replicas(members: Vec<Arc<dyn NodeApi>>) -> Replicas {
    let n = members.len();
    let sealing: Vec<SealingPublicKey> = (0..n).map(|i| sealing(i).public()).collect();
    Replicas::new(members, replica_set(n))
        .unwrap()
        .with_sealing_keys(sealing)
        .unwrap()
}

/// The replicas as client members.
pub fn as_api(nodes: &[Arc<Replica>]) -> Vec<Arc<dyn NodeApi>> {
    nodes
        .iter()
        .map(|n| n.clone() as Arc<dyn NodeApi>)
        .collect()
}

/// A client of `members` acting as `identity`.
pub fn client(members: Vec<Arc<dyn NodeApi>>, identity: Identity<Umbral>) -> Client<Umbral> {
    Client::new(replicas(members), Arc::new(Umbral), identity)
}

/// Waits until `check` holds (the follower and the other replicas catch up
/// asynchronously), failing after 10 s.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The same keys in a new value (an identity is not `Clone`, on purpose).
pub fn twin(id: &Identity<Umbral>) -> Identity<Umbral> {
    let (signing, master) = id.to_secret_bytes(&Umbral);
    Identity::from_secret_bytes(&Umbral, &signing, &master).unwrap()
}

/// The purpose the tests grant for.
pub fn treatment() -> Purpose {
    Purpose::new("treatment").unwrap()
}

/// Default grant options for treatment.
pub fn options() -> GrantOptions {
    GrantOptions {
        purpose: treatment(),
        expires_at: None,
        threshold: None,
    }
}

/// Alice (a client of every replica) stores `body` and grants it to a new
/// Bob for treatment, with the default threshold.
pub async fn alice_shares(
    nodes: &[Arc<Replica>],
    body: &[u8],
) -> (Client<Umbral>, Identity<Umbral>, PutOutcome, GrantId) {
    let alice = client(as_api(nodes), Identity::generate(&Umbral));
    let bob = Identity::generate(&Umbral);
    let put = alice
        .put(byte_stream_of(body.to_vec()), "text/plain")
        .await
        .unwrap();
    let grant = alice
        .grant(put.record_id, &bob.card(&Umbral), options())
        .await
        .unwrap();
    (alice, bob, put, grant)
}
