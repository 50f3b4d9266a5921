//! Alice shares a medical record with her doctor, Bob, and takes it back.
//!
//! Runs on the embedded default (one replica, filesystem blobs, redb) in a
//! temporary data directory (or `RR_DATA_DIR`), and exits 0 only if every step
//! behaves as it should:
//!
//! 1. Alice encrypts a 5 MiB record on her side and registers it.
//! 2. She grants Bob access for "treatment", expiring in 30 days.
//! 3. Bob retrieves and decrypts it: the bytes equal Alice's.
//! 4. Alice revokes the grant.
//! 5. Bob's next retrieval is refused, saying the grant was revoked and when.
//! 6. The audit trail shows all of it.
//!
//! ```text
//! cargo run --release --example alice_bob
//! ```

use std::time::Instant;

use anyhow::{bail, ensure, Context};
use rand_core::{OsRng, RngCore};
use rr_core::{byte_stream_of, AuditAction, ErrorCode, Purpose, Timestamp};
use rr_node::{collect, Client, ClientError, DevConfig, GrantOptions, Identity, Node, NodeError};

const RECORD_BYTES: usize = 5 * 1024 * 1024;
const THIRTY_DAYS_MS: u64 = 30 * 24 * 60 * 60 * 1000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let data_dir = std::env::var_os("RR_DATA_DIR")
        .map(Into::into)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    println!("data directory: {}", data_dir.display());
    let node = Node::open_dev(DevConfig::new(&data_dir))
        .await
        .context("opening the node")?;
    let pre = node.pre().clone();
    let alice = Client::in_process(&node, Identity::generate(pre.as_ref()));
    let bob = Client::in_process(&node, Identity::generate(pre.as_ref()));
    println!("alice: {}", alice.account());
    println!("bob:   {}", bob.account());

    // 1. Alice's device encrypts and registers.
    let mut record = vec![0u8; RECORD_BYTES];
    OsRng.fill_bytes(&mut record);
    let started = Instant::now();
    let put = alice
        .put(byte_stream_of(record.clone()), "application/octet-stream")
        .await
        .context("alice registers her record")?;
    println!(
        "1. registered record {} ({} bytes of ciphertext, cid {}) in {:.0?}",
        put.record_id,
        put.size,
        put.cid,
        started.elapsed()
    );

    // 2. Grant Bob, for treatment, for 30 days.
    let treatment = Purpose::new("treatment")?;
    let expires_at =
        Timestamp::from_system_time(std::time::SystemTime::now()).plus_millis(THIRTY_DAYS_MS);
    let grant = alice
        .grant(
            put.record_id,
            &bob.card(),
            GrantOptions {
                purpose: treatment.clone(),
                expires_at: Some(expires_at),
                threshold: None,
            },
        )
        .await
        .context("alice grants bob")?;
    println!("2. granted bob access as grant {grant}, purpose treatment, expires {expires_at}");

    // 3. Bob retrieves and decrypts.
    let started = Instant::now();
    let plain = collect(
        bob.retrieve(grant, treatment.clone())
            .await
            .context("bob retrieves")?,
    )
    .await
    .context("bob decrypts")?;
    ensure!(
        plain == record,
        "bob's plaintext differs from alice's record ({} vs {} bytes)",
        plain.len(),
        record.len()
    );
    println!(
        "3. bob retrieved and decrypted {} bytes in {:.0?}; blake3 {} matches alice's",
        plain.len(),
        started.elapsed(),
        blake3::hash(&plain).to_hex()
    );

    // 4. Alice revokes.
    alice.revoke(grant).await.context("alice revokes")?;
    ensure!(
        !node.holds_fragment(&grant)?,
        "the replica still holds the key fragment after the revocation"
    );
    println!("4. alice revoked grant {grant}; the replica erased its key fragment");

    // 5. Bob is refused, and told why and when.
    match bob.retrieve(grant, treatment).await {
        Ok(_) => bail!("bob could still retrieve after the revocation"),
        Err(ClientError::Node(NodeError::Refused(r))) if r.code == ErrorCode::GrantRevoked => {
            ensure!(
                r.message.contains("revoked at height"),
                "the refusal does not say when: {}",
                r.message
            );
            println!("5. bob's retrieval was refused: {r}");
        }
        Err(other) => bail!("bob's retrieval failed for the wrong reason: {other}"),
    }

    // 6. The audit trail.
    let trail = alice.audit(put.record_id).await?;
    println!("6. audit trail of record {}:", put.record_id.short());
    let who = |a| {
        if a == alice.account() {
            "alice"
        } else if a == bob.account() {
            "bob"
        } else {
            "someone else"
        }
    };
    for e in &trail {
        println!(
            "   #{} height {:>3} {} {:<5} {:<8} purpose {:<10} {}",
            e.seq,
            e.at.height,
            e.at.time,
            who(e.actor),
            e.action.as_str(),
            e.purpose.as_ref().map(|p| p.as_str()).unwrap_or("-"),
            match e.refused {
                None => "ok".to_string(),
                Some(code) => format!("REFUSED ({code})"),
            }
        );
    }
    let expected = [
        (AuditAction::Register, None),
        (AuditAction::Grant, None),
        (AuditAction::Retrieve, None),
        (AuditAction::Revoke, None),
        (AuditAction::Retrieve, Some(ErrorCode::GrantRevoked)),
    ];
    let got: Vec<_> = trail.iter().map(|e| (e.action, e.refused)).collect();
    ensure!(got == expected, "unexpected audit trail: {got:?}");

    node.shutdown().await?;
    println!("all steps behaved as expected");
    Ok(())
}
