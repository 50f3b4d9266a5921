//! Four replicas of `Node<ClusterTypes>` (PBFT over loopback TCP) in one
//! process, as [`LocalCluster`] runs them, and the helpers the tests drive
//! them with.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use rr_consensus::PbftConfig;
use rr_core::{byte_stream_of, GrantId, Purpose};
use rr_node::{
    Client, ClusterReplica, GrantOptions, Identity, LocalCluster, NodeApi, PutOutcome, Replicas,
};
use rr_pre::Umbral;

/// One replica.
pub type Replica = ClusterReplica<Umbral>;

/// A cluster of `n` in `dir`, with the engine's test timeouts and blobs up
/// to 1 GiB.
pub async fn cluster(dir: &std::path::Path, n: usize) -> LocalCluster {
    LocalCluster::builder(dir, n)
        .pbft(PbftConfig::for_tests())
        .max_blob_size(1 << 30)
        .start()
        .await
        .unwrap()
}

/// Every replica of `cluster`, in order; all must be running. (These
/// handles keep their replica open: drop them before restarting one.)
pub fn nodes(cluster: &LocalCluster) -> Vec<Arc<Replica>> {
    (0..cluster.n())
        .map(|i| {
            cluster
                .replica(i)
                .unwrap_or_else(|| panic!("replica {i} runs"))
        })
        .collect()
}

/// The replica set of `cluster` as a client sees it, reaching the replicas
/// through `members` (possibly wrapped to lie).
pub fn replicas(cluster: &LocalCluster, members: Vec<Arc<dyn NodeApi>>) -> Replicas {
    cluster.replicas_with(members).unwrap()
}

/// A client of `cluster` through `members`, acting as `identity`.
pub fn client(
    cluster: &LocalCluster,
    members: Vec<Arc<dyn NodeApi>>,
    identity: Identity<Umbral>,
) -> Client<Umbral> {
    Client::new(replicas(cluster, members), Arc::new(Umbral), identity)
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
    cluster: &LocalCluster,
    body: &[u8],
) -> (Client<Umbral>, Identity<Umbral>, PutOutcome, GrantId) {
    let alice = cluster.client(Identity::generate(&Umbral));
    let bob = Identity::generate(&Umbral);
    let (put, grant) = share(&alice, &bob, body).await;
    (alice, bob, put, grant)
}

/// `alice` stores `body` and grants it to `bob` for treatment, with the
/// default threshold.
pub async fn share(
    alice: &Client<Umbral>,
    bob: &Identity<Umbral>,
    body: &[u8],
) -> (PutOutcome, GrantId) {
    let put = alice
        .put(byte_stream_of(body.to_vec()), "text/plain")
        .await
        .unwrap();
    let grant = alice
        .grant(put.record_id, &bob.card(&Umbral), options())
        .await
        .unwrap();
    (put, grant)
}
