//! `LocalCluster`: real replicas in one process, over TCP and over the
//! fault-injecting router of rr-consensus, driven through verifying clients.

use std::time::Duration;

use rr_consensus::harness::{Faults, Router};
use rr_consensus::PbftConfig;
use rr_core::{byte_stream_of, Purpose, ReplicaId};
use rr_node::{collect, GrantOptions, Identity, LocalCluster};
use rr_pre::Umbral;

fn treatment() -> GrantOptions {
    GrantOptions {
        purpose: Purpose::new("treatment").unwrap(),
        expires_at: None,
        threshold: None,
    }
}

/// Put, grant and retrieve through `cluster`; the bytes read back.
async fn share(cluster: &LocalCluster, body: &[u8]) -> Vec<u8> {
    let alice = cluster.client(Identity::generate(&Umbral));
    let bob = cluster.client(Identity::generate(&Umbral));
    let put = alice
        .put(byte_stream_of(body.to_vec()), "text/plain")
        .await
        .unwrap();
    let grant = alice
        .grant(put.record_id, &bob.card(), treatment())
        .await
        .unwrap();
    collect(bob.retrieve(grant, treatment().purpose).await.unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_cluster_on_lossy_links_with_one_replica_cut_off_serves_every_flow() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(4, 7);
    router.set_faults(Faults {
        drop: 0.05,
        duplicate: 0.05,
        max_delay: Duration::from_millis(5),
    });
    let cluster =
        LocalCluster::start_on_router(dir.path(), 4, PbftConfig::for_tests(), router.clone())
            .await
            .unwrap();
    assert_eq!(share(&cluster, b"lossy links").await, b"lossy links");
    // A replica cut off from the others: f = 1 of 4 may be, and every flow
    // still completes (its fragments are reported pending, not lost).
    router.isolate(ReplicaId(2));
    assert_eq!(share(&cluster, b"one cut off").await, b"one cut off");
    router.reconnect(ReplicaId(2));
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_made_before_a_restart_reaches_the_restarted_replica() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::start(dir.path(), 4).await.unwrap();
    let alice = cluster.client(Identity::generate(&Umbral));
    // Members of the caller's stand in for the replicas one for one.
    let err = cluster
        .replicas_with(cluster.members()[..3].to_vec())
        .unwrap_err();
    assert!(
        err.to_string().contains("3 members for a replica set of 4"),
        "{err}"
    );
    cluster.stop(0).await.unwrap();
    assert!(cluster.replica(0).is_none());
    let put = alice
        .put(byte_stream_of(b"while 0 is down".to_vec()), "text/plain")
        .await
        .unwrap();
    cluster.restart(0).await.unwrap();
    let back = cluster.replica(0).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while back.record(&put.record_id).is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica 0 caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(back);
    // With replica 1 down too, a write needs replicas 0, 2 and 3: the old
    // client reaches the restarted replica 0, not the stopped instance.
    cluster.stop(1).await.unwrap();
    let again = alice
        .put(byte_stream_of(b"with 1 down".to_vec()), "text/plain")
        .await
        .unwrap();
    assert_eq!(
        collect(alice.read_own(again.record_id).await.unwrap())
            .await
            .unwrap(),
        b"with 1 down"
    );
    cluster.shutdown().await.unwrap();
}
