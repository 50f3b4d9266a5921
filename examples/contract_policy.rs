//! A contract policy: the hospital's own rule in front of the native
//! contracts. This ledger allows grants only for treatment and research;
//! anything else is refused with the policy's own code, which the owner
//! sees in the SDK and in the record's audit trail.
//!
//! A policy implements [`rr_node::Policy`]: it sees each register, grant
//! and retrieve call (signature and nonce already checked) with the state
//! as the block left it, and allows it or refuses it with a
//! [`rr_core::PolicyCode`]. The refusal is booked like a native one: the
//! call's nonce is spent and the record's audit trail gets an entry.
//! Revocations never pass through a policy. A policy is part of the
//! replicated state machine: a pure function of the call, the state and the
//! block, the same on every replica (`ClusterConfig::policies`).
//!
//! ```text
//! cargo run --release --example contract_policy
//! ```

use anyhow::{bail, ensure};
use rr_core::{byte_stream_of, Call, ErrorCode, PolicyCode, Purpose, StateError};
use rr_node::{
    Client, ClientError, DevConfig, GrantOptions, Identity, Node, NodeError, Policy, PolicyCall,
    Verdict,
};

/// Grants only for the purposes this hospital allows.
struct AllowedPurposes {
    allowed: &'static [&'static str],
    code: PolicyCode,
}

impl Policy for AllowedPurposes {
    fn check(&self, call: &PolicyCall<'_>) -> Result<Verdict, StateError> {
        Ok(match call.call() {
            Call::Grant(g) if !self.allowed.contains(&g.purpose.as_str()) => Verdict::refuse(
                self.code,
                format!(
                    "this hospital grants access only for {}; \"{}\" is not one of them",
                    self.allowed.join(" or "),
                    g.purpose
                ),
            ),
            _ => Verdict::Allow,
        })
    }
}

fn options(purpose: &str) -> anyhow::Result<GrantOptions> {
    Ok(GrantOptions {
        purpose: Purpose::new(purpose)?,
        expires_at: None,
        threshold: None,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let policy = AllowedPurposes {
        allowed: &["treatment", "research"],
        code: PolicyCode::new("purpose_not_allowed")?,
    };
    let node = Node::open_dev(DevConfig::new(dir.path()).with_policy(policy)).await?;
    let alice = Client::in_process(&node, Identity::generate(node.pre().as_ref()));
    let insurer = Client::in_process(&node, Identity::generate(node.pre().as_ref()));

    let put = alice
        .put(
            byte_stream_of(b"2026 annual check-up".to_vec()),
            "text/plain",
        )
        .await?;
    match alice
        .grant(put.record_id, &insurer.card(), options("marketing")?)
        .await
    {
        Err(ClientError::Node(NodeError::Refused(r))) => {
            println!("refused: {} ({})", r.message, r.code);
            ensure!(r.code.as_str() == "policy.purpose_not_allowed");
        }
        Ok(grant) => bail!("the policy let a marketing grant through: {grant}"),
        Err(e) => return Err(e.into()),
    }
    let allowed = alice
        .grant(put.record_id, &insurer.card(), options("research")?)
        .await?;
    println!("granted for research: {allowed}");

    let trail = alice.audit(put.record_id).await?;
    for entry in &trail {
        println!(
            "audit #{}: {:?} by {} -> {}",
            entry.seq,
            entry.action,
            entry.actor.short(),
            entry.refused.map_or("ok".to_string(), |c| c.to_string())
        );
    }
    ensure!(
        trail
            .iter()
            .any(|e| matches!(e.refused, Some(ErrorCode::Policy(c)) if c.as_str() == "purpose_not_allowed")),
        "the refusal is in the audit trail"
    );
    node.shutdown().await?;
    Ok(())
}
