//! Contract policies: an integrator's own rule in front of the native
//! contracts refuses with its own code, the refusal is booked like a native
//! one (nonce spent, audit entry, nothing else changed), the code survives
//! HTTP and the SDK, and no policy stands between an owner and a revocation.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{client_refusal, options, submit, view, Person, START};
use rr_consensus::ManualClock;
use rr_core::{
    byte_stream_of, AuditAction, Call, ErrorCode, Outcome, PolicyCode, Revoke, StateError,
};
use rr_node::http::{self, HttpClient, ServerConfig};
use rr_node::{Client, DevConfig, Node, Policy, PolicyCall, Verdict};
use rr_pre::Umbral;

/// Grants only for treatment or research.
struct Purposes(PolicyCode);

impl Purposes {
    fn new() -> Self {
        Self(PolicyCode::new("purpose_not_allowed").unwrap())
    }
}

impl Policy for Purposes {
    fn check(&self, call: &PolicyCall<'_>) -> Result<Verdict, StateError> {
        Ok(match call.call() {
            Call::Grant(g) if !matches!(g.purpose.as_str(), "treatment" | "research") => {
                Verdict::refuse(
                    self.0,
                    format!(
                        "grants for \"{}\" are not allowed on this ledger; grant for treatment or research",
                        g.purpose
                    ),
                )
            }
            _ => Verdict::Allow,
        })
    }
}

fn purpose_not_allowed() -> ErrorCode {
    ErrorCode::Policy(PolicyCode::new("purpose_not_allowed").unwrap())
}

async fn node_with(dir: &std::path::Path, policy: impl Policy) -> Arc<Node<rr_node::DevTypes>> {
    let clock = Arc::new(ManualClock::new(START));
    Node::open_dev_with_clock(DevConfig::new(dir).with_policy(policy), clock)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_refuses_with_its_own_code_and_only_the_nonce_and_trail_change() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(dir.path(), Purposes::new()).await;
    let (alice, bob) = (Person::new(), Person::new());
    let put = alice
        .client(&node)
        .put(byte_stream_of(b"x-ray".to_vec()), "image/png")
        .await
        .unwrap();
    let before = view(&node, &put.record_id);

    // Signed by hand, so the same call can be sent again.
    let fragment = &common::delegate(
        &alice,
        &put.record_id,
        &bob,
        rr_core::Threshold { m: 1, n: 1 },
    )[0];
    let grant_call = common::grant_call_for(put.record_id, &bob, fragment, "marketing");
    let tx = alice.sign(grant_call);
    let receipt = submit(&node, tx.clone()).await;
    let Outcome::Refused(refusal) = &receipt.outcome else {
        panic!("the policy let a marketing grant through: {receipt:?}")
    };
    assert_eq!(refusal.code, purpose_not_allowed());
    assert_eq!(refusal.code.as_str(), "policy.purpose_not_allowed");
    assert!(
        refusal.message.contains("treatment or research"),
        "{refusal}"
    );

    // Booked like a native refusal: one audit entry with the policy's code,
    // no grant, the record otherwise as it was.
    let after = view(&node, &put.record_id);
    assert!(after.grants.is_empty());
    assert_eq!(after.audit.len(), before.audit.len() + 1);
    let entry = after.audit.last().unwrap();
    assert_eq!(entry.action, AuditAction::Grant);
    assert_eq!(entry.refused, Some(purpose_not_allowed()));
    assert_eq!(entry.actor, alice.account());
    assert_eq!(
        (&after.record.cid, after.record.size),
        (&before.record.cid, before.record.size)
    );

    // The nonce is spent: the same call again gets its first receipt, and
    // no second audit entry.
    let again = submit(&node, tx).await;
    assert_eq!(again, receipt);
    assert_eq!(view(&node, &put.record_id).audit, after.audit);

    // What the policy allows, the native contracts decide as before.
    let grant = alice
        .client(&node)
        .grant(
            put.record_id,
            &bob.client(&node).card(),
            options("treatment", None),
        )
        .await
        .unwrap();
    let plain = rr_node::collect(
        bob.client(&node)
            .retrieve(grant, common::purpose_of("treatment"))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(plain, b"x-ray");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_code_survives_http_and_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(dir.path(), Purposes::new()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(
        listener,
        http::router(node.clone(), ServerConfig::default()),
        async {
            let _ = stopped.await;
        },
    ));
    let over_http = |p: &Person| {
        let replicas = rr_node::Replicas::single(
            Arc::new(HttpClient::new(&url).unwrap()),
            node.replica_set().keys()[0],
        )
        .unwrap();
        Client::new(replicas, Arc::new(Umbral), p.identity())
    };
    let (alice, bob) = (Person::new(), Person::new());
    let put = over_http(&alice)
        .put(byte_stream_of(b"lab results".to_vec()), "text/plain")
        .await
        .unwrap();
    let err = over_http(&alice)
        .grant(
            put.record_id,
            &over_http(&bob).card(),
            options("marketing", None),
        )
        .await
        .unwrap_err();
    let (code, message) = client_refusal(&err);
    assert_eq!(code, purpose_not_allowed());
    assert!(message.contains("treatment or research"), "{message}");
    assert!(
        err.to_string().contains("policy.purpose_not_allowed"),
        "{err}"
    );
    // The audit trail read over HTTP carries it too.
    let trail = over_http(&alice).audit(put.record_id).await.unwrap();
    assert_eq!(trail.last().unwrap().refused, Some(purpose_not_allowed()));
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    node.shutdown().await.unwrap();
}

/// Refuses every call it sees while locked (a test switch: a real policy is a
/// pure function of the call, the state and the block).
struct Lockdown {
    on: Arc<AtomicBool>,
    code: PolicyCode,
}

impl Policy for Lockdown {
    fn check(&self, _call: &PolicyCall<'_>) -> Result<Verdict, StateError> {
        Ok(if self.on.load(Ordering::SeqCst) {
            Verdict::refuse(self.code, "the ledger is locked down")
        } else {
            Verdict::Allow
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_policy_stands_between_an_owner_and_a_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let on = Arc::new(AtomicBool::new(false));
    let lockdown = Lockdown {
        on: on.clone(),
        code: PolicyCode::new("locked_down").unwrap(),
    };
    let node = node_with(dir.path(), lockdown).await;
    let (alice, bob) = (Person::new(), Person::new());
    let put = alice
        .client(&node)
        .put(byte_stream_of(b"scan".to_vec()), "image/png")
        .await
        .unwrap();
    let grant = alice
        .client(&node)
        .grant(
            put.record_id,
            &bob.client(&node).card(),
            options("treatment", None),
        )
        .await
        .unwrap();
    on.store(true, Ordering::SeqCst);

    // Retrieves are refused by the policy, and audited as such...
    let err = bob
        .client(&node)
        .retrieve(grant, common::purpose_of("treatment"))
        .await
        .err()
        .unwrap();
    let (code, _) = client_refusal(&err);
    assert_eq!(code.as_str(), "policy.locked_down");
    let trail = node.audit(&put.record_id).unwrap();
    assert_eq!(trail.last().unwrap().action, AuditAction::Retrieve);
    assert_eq!(trail.last().unwrap().refused, Some(code));

    // ...but the owner's revocation is never a policy decision.
    let revoke = submit(&node, alice.sign(Call::Revoke(Revoke { grant }))).await;
    assert!(matches!(revoke.outcome, Outcome::Ok(_)), "{revoke:?}");
    assert!(matches!(
        node.grant(&grant).unwrap().status,
        rr_core::GrantStatus::Revoked { .. }
    ));
    assert!(!node.holds_fragment(&grant).unwrap());
    node.shutdown().await.unwrap();
}
