//! Who may read what (issue: authorized reads). A record is visible to its
//! owner, its grantees and the replicas; a grant to the record's owner, its
//! grantee and the replicas; a receipt to its transaction's signer and the
//! replicas. Everyone else gets exactly the answer an id that does not exist
//! gets, so they cannot tell whether it does. Every read names the cluster
//! it is for: an authorization signed for another replica set, another
//! request or long ago is refused.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use rr_core::{Digest, GrantId, RecordId, TxId};
use rr_node::http::{self, ErrorBody, ServerConfig};
use rr_node::{Authorization, NodeApi, NodeError};

const RECORD: &[u8] = b"2026-12-05 lipid panel";

/// The dev node's own replica key.
fn replica_key(w: &World) -> SigningKey {
    let seed: [u8; 32] = std::fs::read(w.dir.path().join("node.key"))
        .expect("the dev node's key file")
        .try_into()
        .expect("a 32-byte seed");
    SigningKey::from_bytes(&seed)
}

fn sign(w: &World, key: &SigningKey, scope: String) -> Authorization {
    Authorization::sign(key, &w.node.replica_set().digest(), scope)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_grantees_and_replicas_read_records_grants_and_receipts() {
    let w = World::new().await;
    let (put, grant) = w.alice_shares_with_bob(RECORD).await;
    let api: &dyn NodeApi = &*w.node;
    let replica = replica_key(&w);
    let (alice, bob, mallory) = (w.alice.key(), w.bob.key(), w.mallory.key());
    let record = put.record_id;
    let absent_record = RecordId([0x5a; 32]);
    let absent_grant = GrantId([0x5b; 32]);
    let absent_tx = TxId([0x5c; 32]);

    // The record: its owner, its grantee, the replica.
    for key in [&alice, &bob, &replica] {
        let a = api
            .record(record, sign(&w, key, Authorization::record_scope(&record)))
            .await
            .unwrap();
        let state = a.verify(w.node.replica_set()).unwrap();
        assert_eq!(
            state.record(&record).unwrap().unwrap().owner,
            w.alice.account()
        );
    }
    // Anyone else: the answer of an id that does not exist.
    let refused = api
        .record(
            record,
            sign(&w, &mallory, Authorization::record_scope(&record)),
        )
        .await
        .unwrap_err();
    let absent = api
        .record(
            absent_record,
            sign(&w, &mallory, Authorization::record_scope(&absent_record)),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, NodeError::UnknownRecord(r) if r == record));
    assert_eq!(
        refused.to_string(),
        absent
            .to_string()
            .replace(&absent_record.to_string(), &record.to_string())
    );
    // Only a replica is given the proof of an absence.
    let a = api
        .record(
            absent_record,
            sign(&w, &replica, Authorization::record_scope(&absent_record)),
        )
        .await
        .unwrap();
    assert!(a
        .verify(w.node.replica_set())
        .unwrap()
        .record(&absent_record)
        .unwrap()
        .is_none());

    // The grant: the record's owner, the grantee, the replica.
    for key in [&alice, &bob, &replica] {
        let a = api
            .grant(grant, sign(&w, key, Authorization::grant_scope(&grant)))
            .await
            .unwrap();
        let state = a.verify(w.node.replica_set()).unwrap();
        assert_eq!(
            state.grant(&grant).unwrap().unwrap().grantee,
            w.bob.account()
        );
    }
    let refused = api
        .grant(
            grant,
            sign(&w, &mallory, Authorization::grant_scope(&grant)),
        )
        .await
        .unwrap_err();
    let absent = api
        .grant(
            absent_grant,
            sign(&w, &mallory, Authorization::grant_scope(&absent_grant)),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, NodeError::UnknownGrant(g) if g == grant));
    assert_eq!(
        refused.to_string(),
        absent
            .to_string()
            .replace(&absent_grant.to_string(), &grant.to_string())
    );

    // The receipt of Alice's register call: Alice and the replica.
    for key in [&alice, &replica] {
        let r = api
            .receipt(put.tx, sign(&w, key, Authorization::receipt_scope(&put.tx)))
            .await
            .unwrap();
        r.verify_for(
            &rr_core::cert::CertCache::new(w.node.replica_set().clone()),
            &put.tx,
        )
        .unwrap();
    }
    // Bob holds a grant of the record but did not sign the call.
    for key in [&bob, &mallory] {
        let refused = api
            .receipt(put.tx, sign(&w, key, Authorization::receipt_scope(&put.tx)))
            .await
            .unwrap_err();
        let absent = api
            .receipt(
                absent_tx,
                sign(&w, key, Authorization::receipt_scope(&absent_tx)),
            )
            .await
            .unwrap_err();
        assert!(matches!(refused, NodeError::NotFound(_)), "{refused:?}");
        let who = rr_core::AccountId::from_verifying_key(&key.verifying_key());
        assert_eq!(
            refused.to_string(),
            absent
                .to_string()
                .replace(&absent_tx.to_string(), &put.tx.to_string()),
            "{who}"
        );
    }

    // Bob, reading through his client, still gets his record.
    let bob_client = w.bob.client(&w.node);
    assert_eq!(
        retrieve_all(&bob_client, grant, "treatment").await.unwrap(),
        RECORD
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorizations_for_another_cluster_request_or_time_are_refused() {
    let w = World::new().await;
    let (put, _) = w.alice_shares_with_bob(RECORD).await;
    let api: &dyn NodeApi = &*w.node;
    let record = put.record_id;
    let alice = w.alice.key();
    let scope = Authorization::record_scope(&record);

    // Signed for another cluster's replica set.
    let elsewhere = Authorization::sign(&alice, &Digest([0x77; 32]), scope.clone());
    let err = api.record(record, elsewhere).await.unwrap_err();
    assert!(matches!(err, NodeError::Unauthorized(_)), "{err:?}");
    assert!(err.to_string().contains("another cluster"), "{err}");

    // Signed for another request (Alice's audit trail, not the record).
    let other = sign(&w, &alice, Authorization::audit_scope(&record));
    let err = api.record(record, other).await.unwrap_err();
    assert!(err.to_string().contains("another request"), "{err}");

    // Signed an hour ago.
    let mut old = sign(&w, &alice, scope.clone());
    old.at = rr_core::Timestamp(old.at.0 - 3_600_000);
    let err = api.record(record, old).await.unwrap_err();
    assert!(err.to_string().contains("5 minutes"), "{err}");

    // Mallory's signature claiming to be Alice.
    let mut forged = sign(&w, &w.mallory.key(), scope);
    forged.account = w.alice.account();
    let err = api.record(record, forged).await.unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_reads_need_an_authorization_and_strangers_get_404() {
    let w = World::new().await;
    let (put, grant) = w.alice_shares_with_bob(RECORD).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = http::router(w.node.clone(), ServerConfig::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(listener, router, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let get = |path: String, auth: Option<Authorization>| {
        let mut req = client.get(format!("{url}{path}"));
        if let Some(a) = auth {
            req = req.header("authorization", http::authorization_header(&a));
        }
        req.send()
    };
    async fn error(resp: reqwest::Response) -> (u16, String) {
        let status = resp.status().as_u16();
        let body: ErrorBody = resp.json().await.unwrap();
        (status, body.error.code)
    }
    let mallory = w.mallory.key();
    let cases = [
        (
            format!("/v1/records/{}", put.record_id),
            Authorization::record_scope(&put.record_id),
            "unknown_record",
        ),
        (
            format!("/v1/grants/{grant}"),
            Authorization::grant_scope(&grant),
            "unknown_grant",
        ),
        (
            format!("/v1/tx/{}", put.tx),
            Authorization::receipt_scope(&put.tx),
            "unknown_transaction",
        ),
    ];
    for (path, scope, code) in cases {
        // No authorization: 401.
        let resp = get(path.clone(), None).await.unwrap();
        assert_eq!(error(resp).await, (401, "unauthorized".into()), "{path}");
        // A stranger: the 404 of an unknown id.
        let resp = get(path.clone(), Some(sign(&w, &mallory, scope.clone())))
            .await
            .unwrap();
        assert_eq!(error(resp).await, (404, code.into()), "{path}");
        // The owner: 200.
        let resp = get(path.clone(), Some(sign(&w, &w.alice.key(), scope)))
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
