//! The SDK against a node over HTTP: what an app does when the node runs
//! elsewhere (`rr-node dev`, or a replica of a cluster).
//!
//! The client trusts the node's key, given out of band, never what the
//! node says about itself: every answer is checked against it. Point it at
//! a running node with its key (printed by `rr-node dev` and shown by
//! `rr trust list`):
//!
//! ```text
//! RR_NODE_URL=http://127.0.0.1:7700 RR_NODE_KEY=<64 hex digits> \
//!     cargo run --release --example remote_sdk
//! ```
//!
//! Without them it starts a dev node's HTTP server in this process on
//! 127.0.0.1 and talks to it the same way, over HTTP.

use std::sync::Arc;

use anyhow::{ensure, Context};
use rr_core::{byte_stream_of, AccountId, Purpose};
use rr_node::http::{self, HttpClient, ServerConfig};
use rr_node::{collect, Client, DevConfig, GrantOptions, Identity, Node, Replicas};
use rr_pre::Umbral;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut local = None;
    let (url, key) = match (std::env::var("RR_NODE_URL"), std::env::var("RR_NODE_KEY")) {
        (Ok(url), Ok(key)) => (url, key.parse::<AccountId>().context("RR_NODE_KEY")?),
        _ => {
            let node = Node::open_dev(DevConfig::new(tmp.path())).await?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(http::serve(
                listener,
                http::router(node.clone(), ServerConfig::default()),
                async {
                    let _ = stopped.await;
                },
            ));
            let key = node.replica_set().keys()[0];
            local = Some((node, stop, server));
            (url, key)
        }
    };
    println!("node {url}, trusted key {key}");

    let client = |identity: Identity<Umbral>| -> anyhow::Result<Client<Umbral>> {
        let replicas = Replicas::single(Arc::new(HttpClient::new(&url)?), key)?;
        Ok(Client::new(replicas, Arc::new(Umbral), identity))
    };
    let alice = client(Identity::generate(&Umbral))?;
    let bob = client(Identity::generate(&Umbral))?;
    let record = b"vaccination record".to_vec();
    let put = alice
        .put(byte_stream_of(record.clone()), "text/plain")
        .await?;
    let treatment = Purpose::new("treatment")?;
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
        .await?;
    let read = collect(bob.retrieve(grant, treatment).await?).await?;
    ensure!(read == record, "Bob read other bytes than Alice stored");
    alice.revoke(grant).await?;
    let trail = alice.audit(put.record_id).await?;
    println!(
        "record {} shared, read and revoked over HTTP; {} audit entries",
        put.record_id,
        trail.len()
    );
    if let Some((node, stop, server)) = local {
        let _ = stop.send(());
        server.await??;
        node.shutdown().await?;
    }
    Ok(())
}
