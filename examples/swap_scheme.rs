//! The alice/bob flow once per proxy re-encryption scheme, on the same node,
//! with a side-by-side table of what each step cost.
//!
//! The node serves records of every scheme it was built with (records carry
//! their scheme id); the client picks the scheme. Umbral is threshold m of n;
//! recrypt is single-proxy (threshold 1: any one replica can transform).
//!
//! ```text
//! cargo run --release --example swap_scheme
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rand_core::{OsRng, RngCore};
use rr_core::{byte_stream_of, ErrorCode, PreScheme, Purpose};
use rr_node::{
    collect, Client, ClientError, DevConfig, GrantOptions, Identity, Node, NodeApi, NodeError,
    Replicas,
};
use rr_pre::{Recrypt, Umbral};

const RECORD_BYTES: usize = 1024 * 1024;

struct Row {
    scheme: &'static str,
    put: Duration,
    grant: Duration,
    retrieve: Duration,
    revoke: Duration,
}

async fn flow<P: PreScheme>(
    replicas: Replicas,
    pre: P,
    name: &'static str,
    record: &[u8],
) -> anyhow::Result<Row> {
    let pre = Arc::new(pre);
    let alice = Client::new(
        replicas.clone(),
        pre.clone(),
        Identity::generate(pre.as_ref()),
    );
    let bob = Client::new(
        replicas.clone(),
        pre.clone(),
        Identity::generate(pre.as_ref()),
    );
    let treatment = Purpose::new("treatment")?;

    let t = Instant::now();
    let put = alice
        .put(byte_stream_of(record.to_vec()), "application/octet-stream")
        .await
        .with_context(|| format!("{name}: put"))?;
    let put_time = t.elapsed();
    ensure!(
        replicas
            .record(
                put.record_id,
                alice.authorization(rr_node::Authorization::record_scope(&put.record_id)),
            )
            .await?
            .value
            .is_some_and(|r| r.scheme == P::ID),
        "{name}: record carries the wrong scheme"
    );

    let t = Instant::now();
    let grant = alice
        .grant(
            put.record_id,
            &bob.card(),
            GrantOptions {
                purpose: treatment.clone(),
                expires_at: None,
                threshold: None,
            },
        )
        .await
        .with_context(|| format!("{name}: grant"))?;
    let grant_time = t.elapsed();

    let t = Instant::now();
    let plain = collect(bob.retrieve(grant, treatment.clone()).await?).await?;
    let retrieve_time = t.elapsed();
    ensure!(plain == record, "{name}: bob's bytes differ from alice's");

    let t = Instant::now();
    alice.revoke(grant).await?;
    let revoke_time = t.elapsed();
    match bob.retrieve(grant, treatment).await {
        Err(ClientError::Node(NodeError::Refused(r))) if r.code == ErrorCode::GrantRevoked => {}
        Err(other) => bail!("{name}: refused for the wrong reason: {other}"),
        Ok(_) => bail!("{name}: bob could still retrieve after the revocation"),
    }
    ensure!(
        alice.audit(put.record_id).await?.len() == 5,
        "{name}: audit trail incomplete"
    );
    Ok(Row {
        scheme: name,
        put: put_time,
        grant: grant_time,
        retrieve: retrieve_time,
        revoke: revoke_time,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::open_dev(DevConfig::new(dir.path())).await?;
    let info = node.info();
    for s in &info.schemes {
        println!("node serves {:<8} {}", s.name, s.note);
    }
    let mut record = vec![0u8; RECORD_BYTES];
    OsRng.fill_bytes(&mut record);
    // The node's own key is trusted: it runs in this process.
    let replicas = Replicas::new(
        vec![node.clone() as Arc<dyn NodeApi>],
        node.replica_set().clone(),
    )?;
    let rows = vec![
        flow(replicas.clone(), Umbral, "umbral", &record).await?,
        flow(replicas.clone(), Recrypt, "recrypt", &record).await?,
    ];
    println!(
        "\n1 MiB record, one replica, {} (every step checked):",
        std::env::consts::ARCH
    );
    println!(
        "{:<8} {:>10} {:>10} {:>12} {:>10}",
        "scheme", "put", "grant", "retrieve", "revoke"
    );
    for r in &rows {
        println!(
            "{:<8} {:>10.1?} {:>10.1?} {:>12.1?} {:>10.1?}",
            r.scheme, r.put, r.grant, r.retrieve, r.revoke
        );
    }
    node.shutdown().await?;
    Ok(())
}
