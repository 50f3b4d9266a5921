//! A four-replica PBFT cluster in one process ([`rr_node::LocalCluster`]):
//! real replicas, each with its own ledger, write-ahead log, key fragments
//! and blob copies, over loopback TCP. Alice shares a record with Bob; one
//! replica is stopped (f = 1 of 4 may fail) and Bob still reads it; the
//! replica comes back and catches up.
//!
//! ```text
//! cargo run --release --example local_cluster
//! ```

use std::time::{Duration, Instant};

use anyhow::ensure;
use rr_core::{byte_stream_of, Purpose};
use rr_node::{collect, GrantOptions, Identity, LocalCluster};
use rr_pre::Umbral;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = LocalCluster::start(dir.path(), 4).await?;
    println!("{} replicas up in {}", cluster.n(), dir.path().display());

    let alice = cluster.client(Identity::generate(&Umbral));
    let bob_identity = Identity::generate(&Umbral);
    let bob_card = bob_identity.card(&Umbral);
    let record = b"discharge letter, ward 4".to_vec();
    let put = alice
        .put(byte_stream_of(record.clone()), "text/plain")
        .await?;
    let treatment = Purpose::new("treatment")?;
    let grant = alice
        .grant(
            put.record_id,
            &bob_card,
            GrantOptions {
                purpose: treatment.clone(),
                expires_at: None,
                threshold: None,
            },
        )
        .await?;
    println!("record {} granted to Bob ({grant})", put.record_id);

    // One replica down: the other three still order, certify and re-encrypt.
    cluster.stop(3).await?;
    let bob = cluster.client(bob_identity);
    let read = collect(bob.retrieve(grant, treatment).await?).await?;
    ensure!(read == record, "Bob read other bytes than Alice stored");
    println!("Bob read the record with replica 3 down");

    // It comes back and catches up from the others.
    cluster.restart(3).await?;
    let target = cluster.replica(0).expect("replica 0 runs").status().height;
    let since = Instant::now();
    while cluster.replica(3).expect("restarted").status().height < target {
        ensure!(
            since.elapsed() < Duration::from_secs(30),
            "replica 3 did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "replica 3 caught up to height {target} in {} ms",
        since.elapsed().as_millis()
    );
    cluster.shutdown().await?;
    Ok(())
}
