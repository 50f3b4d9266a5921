//! Bad input through the node and the client: forged and replayed calls,
//! strangers, revoked and expired grants, unknown ids, malformed calls and
//! fragments, garbage bytes, and a restart. Every test checks both the error a
//! user reads and that nothing was lost or changed.

mod common;

use common::*;
use rand_core::{OsRng, RngCore};
use rr_core::{
    AuditAction, Call, CallOutput, ConsensusError, DecodeError, Digest, ErrorCode, GrantId,
    GrantStatus, RecordId, RegisterRecord, ReplicaId, Retrieve, Revoke, SchemeId, Threshold,
    Timestamp, TxBody, MAX_TX_BYTES,
};
use rr_node::{ClientError, NodeError};

const RECORD: &[u8] = b"2026-11-23 blood panel: all normal";

fn revoke(grant: GrantId) -> Call {
    Call::Revoke(Revoke { grant })
}

fn retrieve(grant: GrantId, purpose: &str) -> Call {
    Call::Retrieve(Retrieve {
        grant,
        purpose: purpose_of(purpose),
    })
}

fn assert_bad_signature(err: &NodeError, claimed: rr_core::AccountId) {
    match err {
        NodeError::BadSignature(e) => assert_eq!(e.signer, claimed),
        other => panic!("expected BadSignature, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("does not verify for account {claimed}")),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_altered_signatures_are_refused_before_ordering() {
    let w = World::new().await;
    let (put, grant) = w.alice_shares_with_bob(RECORD).await;
    let before = view(&w.node, &put.record_id);
    let st = status(&w.node);
    let alice = w.alice.account();

    // A revoke claiming Alice, signed by Mallory, by value and as bytes.
    let forged = TxBody {
        signer: alice,
        nonce: 1,
        call: revoke(grant),
    }
    .sign(&w.mallory.key());
    assert_bad_signature(&w.node.submit(forged.clone()).await.unwrap_err(), alice);
    assert_bad_signature(
        &w.node.submit_bytes(forged.to_bytes()).await.unwrap_err(),
        alice,
    );
    // Through the client's error type too.
    let err = w.node.execute(forged).await.unwrap_err();
    assert_bad_signature(&err, alice);

    // Signed by Alice, then altered: the grant it revokes.
    let mut altered = w.alice.sign(revoke(GrantId(random32())));
    if let Call::Revoke(r) = &mut altered.body.call {
        r.grant = grant;
    }
    assert_bad_signature(&w.node.submit(altered).await.unwrap_err(), alice);

    // Signed by Alice, then altered: a grant redirected to Mallory.
    let fragment = delegate(&w.alice, &put.record_id, &w.bob, Threshold { m: 1, n: 1 }).remove(0);
    let mut redirected = w.alice.sign(grant_call_for(
        put.record_id,
        &w.bob,
        &fragment,
        "treatment",
    ));
    if let Call::Grant(g) = &mut redirected.body.call {
        g.grantee = w.mallory.account();
        g.grantee_key = w.mallory.pre_key();
    }
    assert_bad_signature(
        &w.node
            .submit_bytes(redirected.to_bytes())
            .await
            .unwrap_err(),
        alice,
    );

    // Signed by Alice, then the nonce changed.
    let mut renonced = w.alice.sign_with(7, revoke(grant));
    renonced.body.nonce = 8;
    assert_bad_signature(&w.node.submit(renonced).await.unwrap_err(), alice);

    // A flipped bit in the signature (the last bytes of the encoding), and a
    // signature one byte short.
    let mut bytes = w.alice.sign(revoke(grant)).to_bytes();
    *bytes.last_mut().unwrap() ^= 1;
    assert_bad_signature(&w.node.submit_bytes(bytes).await.unwrap_err(), alice);
    let mut short = w.alice.sign(revoke(grant));
    short.signature.pop();
    assert_bad_signature(&w.node.submit(short).await.unwrap_err(), alice);

    // A signer that is no ed25519 key at all.
    let nobody = rr_core::AccountId([0xff; 32]);
    let bogus = TxBody {
        signer: nobody,
        nonce: 3,
        call: revoke(grant),
    }
    .sign(&w.mallory.key());
    assert_bad_signature(&w.node.submit(bogus).await.unwrap_err(), nobody);

    // Mallory pretending to be Bob to retrieve: refused before any re-encryption.
    let fake_bob = TxBody {
        signer: w.bob.account(),
        nonce: 2,
        call: retrieve(grant, "treatment"),
    }
    .sign(&w.mallory.key());
    assert_bad_signature(
        &w.node.retrieve(fake_bob).await.unwrap_err(),
        w.bob.account(),
    );

    // Nothing was ordered: same height, same digest, same record, grants and trail.
    assert_eq!(status(&w.node), st);
    assert_eq!(view(&w.node, &put.record_id), before);
    assert!(w.node.holds_fragment(&grant).unwrap());

    // Bob still retrieves; the nonces the forgeries claimed were not spent.
    let bob = w.bob.client(&w.node);
    assert_eq!(
        retrieve_all(&bob, grant, "treatment").await.unwrap(),
        RECORD
    );
    let r = submit(&w.node, w.bob.sign_with(2, retrieve(grant, "treatment"))).await;
    assert!(matches!(output(&r), CallOutput::Retrieved { .. }));
    let r = submit(&w.node, w.alice.sign_with(1, revoke(grant))).await;
    assert_eq!(output(&r), CallOutput::Revoked { grant });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_transactions_are_refused_and_leave_no_trace() {
    let w = World::new().await;
    let (put, _) = w.alice_shares_with_bob(RECORD).await;
    let rid = put.record_id;

    // A grant, replayed byte for byte.
    let fragment = delegate(&w.alice, &rid, &w.bob, Threshold { m: 1, n: 1 }).remove(0);
    let grant_tx = w
        .alice
        .sign(grant_call_for(rid, &w.bob, &fragment, "treatment"));
    let first = w.node.submit_bytes(grant_tx.to_bytes()).await.unwrap();
    let grant = GrantId::derive(&grant_tx.id());
    assert_eq!(output(&first), CallOutput::Granted { grant });
    w.node.deliver_fragment(grant, fragment).await.unwrap();
    let before = view(&w.node, &rid);
    assert_eq!(before.grants.len(), 2);

    // Byte for byte again (a client retrying after a timeout): the original
    // receipt, and no new block.
    let height = status(&w.node).height;
    let again = w.node.submit_bytes(grant_tx.to_bytes()).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(status(&w.node).height, height, "a retry makes no block");
    assert_eq!(
        view(&w.node, &rid),
        before,
        "a replay must not create a grant or an audit entry"
    );
    // The ledger still answers the transaction id with the original receipt.
    assert_eq!(
        w.node.ledger().receipt(&grant_tx.id()).unwrap(),
        Some(first)
    );

    // The same nonce on another call (a revoke of that grant) is refused.
    let reuse = submit(
        &w.node,
        w.alice.sign_with(grant_tx.body.nonce, revoke(grant)),
    )
    .await;
    let (code, msg) = refusal(&reuse);
    assert_eq!(code, ErrorCode::ReplayedNonce);
    assert!(
        msg.contains(&format!("nonce {} was already used", grant_tx.body.nonce))
            && msg.contains("replay"),
        "{msg}"
    );
    assert_eq!(view(&w.node, &rid), before);
    assert_eq!(w.node.grant(&grant).unwrap().status, GrantStatus::Active);

    // A captured retrieve, replayed: the same certified receipt and no new
    // audit entry; a fragment while the grant is usable...
    let rtx = w.bob.sign(retrieve(grant, "treatment"));
    let ok = w.node.retrieve(rtx.clone()).await.unwrap();
    assert!(ok.fragment.is_some(), "{:?}", ok.note);
    let before = view(&w.node, &rid);
    let height = status(&w.node).height;
    let replayed = w.node.retrieve(rtx.clone()).await.unwrap();
    assert_eq!(replayed.receipt, ok.receipt);
    assert!(replayed.fragment.is_some());
    assert_eq!(view(&w.node, &rid), before);
    assert_eq!(status(&w.node).height, height);

    // A revoke, replayed: the original receipt, and no trace.
    let rev = w.alice.sign(revoke(grant));
    let done = w.node.submit_bytes(rev.to_bytes()).await.unwrap();
    assert_eq!(output(&done), CallOutput::Revoked { grant });
    let before = view(&w.node, &rid);
    let replay = w.node.submit_bytes(rev.to_bytes()).await.unwrap();
    assert_eq!(replay, done);
    assert_eq!(view(&w.node, &rid), before);
    assert_eq!(
        w.node.grant(&grant).unwrap().status,
        GrantStatus::Revoked { at: done.context }
    );
    // ... and none once it is revoked, though the replayed retrieve's
    // receipt still says it was allowed when it was ordered.
    let late = w.node.retrieve(rtx).await.unwrap();
    assert_eq!(late.receipt, ok.receipt);
    assert!(late.fragment.is_none());
    assert!(
        late.note.as_deref().unwrap_or("").contains("revoked"),
        "{:?}",
        late.note
    );
    assert_eq!(view(&w.node, &rid), before);

    // The other grant (made by the client) is untouched and still works.
    let bobs_first = before.grants.iter().find(|g| g.id != grant).unwrap().id;
    let bob = w.bob.client(&w.node);
    assert_eq!(
        retrieve_all(&bob, bobs_first, "treatment").await.unwrap(),
        RECORD
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_grant_or_revoke_on_anothers_record() {
    let w = World::new().await;
    let (put, grant) = w.alice_shares_with_bob(RECORD).await;
    let rid = put.record_id;
    let mallory = w.mallory.client(&w.node);
    let before = view(&w.node, &rid);
    let st = status(&w.node);

    // The client refuses before ordering anything: Mallory may not even
    // read Alice's record, and is told what she would be told of a record
    // that does not exist.
    let err = mallory
        .grant(rid, &mallory.card(), options("treatment", None))
        .await
        .unwrap_err();
    match &err {
        ClientError::Node(NodeError::UnknownRecord(record)) => assert_eq!(*record, rid),
        other => panic!("expected UnknownRecord, got {other:?}"),
    }
    assert_eq!(status(&w.node), st);
    assert_eq!(view(&w.node, &rid), before);

    // Bypassing the client: a grant call of her own on Alice's record.
    let fragment = delegate(&w.mallory, &rid, &w.mallory, Threshold { m: 1, n: 1 }).remove(0);
    let tx = w
        .mallory
        .sign(grant_call_for(rid, &w.mallory, &fragment, "treatment"));
    let r = submit(&w.node, tx.clone()).await;
    let (code, msg) = refusal(&r);
    assert_eq!(code, ErrorCode::NotOwner);
    assert!(
        msg.contains(&format!(
            "account {} does not own record {rid}",
            w.mallory.account()
        )),
        "{msg}"
    );
    let after = view(&w.node, &rid);
    let new = appended(&before, &after, 1);
    assert_entry(
        &new[0],
        w.mallory.account(),
        AuditAction::Grant,
        None,
        Some(ErrorCode::NotOwner),
    );
    assert_eq!(new[0].tx, tx.id());
    assert_eq!(new[0].purpose, Some(purpose_of("treatment")));
    let phantom = GrantId::derive(&tx.id());
    assert!(matches!(w.node.grant(&phantom), Err(NodeError::UnknownGrant(g)) if g == phantom));
    assert!(w
        .node
        .grants_held_by(&w.mallory.account())
        .unwrap()
        .is_empty());
    let err = w
        .node
        .deliver_fragment(phantom, fragment)
        .await
        .unwrap_err();
    assert!(
        matches!(err, NodeError::UnknownGrant(g) if g == phantom),
        "{err:?}"
    );
    assert!(!w.node.holds_fragment(&phantom).unwrap());

    // Revoking Bob's grant.
    let before = after;
    let err = mallory.revoke(grant).await.unwrap_err();
    let (code, msg) = client_refusal(&err);
    assert_eq!(code, ErrorCode::NotOwner);
    assert!(msg.contains("only its owner can revoke grant"), "{msg}");
    let after = view(&w.node, &rid);
    let new = appended(&before, &after, 1);
    assert_entry(
        &new[0],
        w.mallory.account(),
        AuditAction::Revoke,
        Some(grant),
        Some(ErrorCode::NotOwner),
    );
    assert_eq!(w.node.grant(&grant).unwrap().status, GrantStatus::Active);
    assert!(w.node.holds_fragment(&grant).unwrap());

    // Nor can the grantee revoke it.
    let bob = w.bob.client(&w.node);
    let err = bob.revoke(grant).await.unwrap_err();
    assert_eq!(client_refusal(&err).0, ErrorCode::NotOwner);
    assert_eq!(w.node.grant(&grant).unwrap().status, GrantStatus::Active);
    assert!(w.node.holds_fragment(&grant).unwrap());

    // Bob still retrieves.
    assert_eq!(
        retrieve_all(&bob, grant, "treatment").await.unwrap(),
        RECORD
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_grantee_can_use_a_grant() {
    let w = World::new().await;
    let (put, grant) = w.alice_shares_with_bob(RECORD).await;
    let rid = put.record_id;
    let before = view(&w.node, &rid);

    let carol = w.carol.client(&w.node);
    let err = retrieve_all(&carol, grant, "treatment").await.unwrap_err();
    let (code, msg) = client_refusal(&err);
    assert_eq!(code, ErrorCode::NotGrantee);
    assert!(
        msg.contains(&format!(
            "grant {grant} was made to another account; account {} cannot use it",
            w.carol.account()
        )),
        "{msg}"
    );
    // The owner cannot use the grant either.
    let alice = w.alice.client(&w.node);
    let err = retrieve_all(&alice, grant, "treatment").await.unwrap_err();
    assert_eq!(client_refusal(&err).0, ErrorCode::NotGrantee);

    let after = view(&w.node, &rid);
    let new = appended(&before, &after, 2);
    assert_entry(
        &new[0],
        w.carol.account(),
        AuditAction::Retrieve,
        Some(grant),
        Some(ErrorCode::NotGrantee),
    );
    assert_entry(
        &new[1],
        w.alice.account(),
        AuditAction::Retrieve,
        Some(grant),
        Some(ErrorCode::NotGrantee),
    );
    assert!(w.node.holds_fragment(&grant).unwrap());

    let bob = w.bob.client(&w.node);
    assert_eq!(
        retrieve_all(&bob, grant, "treatment").await.unwrap(),
        RECORD
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_is_refused_and_its_fragment_erased() {
    let w = World::new().await;
    let (put, _) = w.alice_shares_with_bob(RECORD).await;
    let rid = put.record_id;
    let (grant, fragment, _) =
        manual_grant(&w.node, &w.alice, rid, &w.bob, "treatment", None, true).await;
    let bob = w.bob.client(&w.node);
    assert_eq!(
        retrieve_all(&bob, grant, "treatment").await.unwrap(),
        RECORD
    );
    assert!(w.node.holds_fragment(&grant).unwrap());

    let r = submit(&w.node, w.alice.sign(revoke(grant))).await;
    assert_eq!(output(&r), CallOutput::Revoked { grant });
    let at = r.context;
    assert_eq!(
        w.node.grant(&grant).unwrap().status,
        GrantStatus::Revoked { at }
    );
    assert!(
        !w.node.holds_fragment(&grant).unwrap(),
        "revocation must erase the fragment"
    );

    let before = view(&w.node, &rid);
    let err = retrieve_all(&bob, grant, "treatment").await.unwrap_err();
    let (code, msg) = client_refusal(&err);
    assert_eq!(code, ErrorCode::GrantRevoked);
    assert!(
        msg.contains(&format!("revoked at height {}", at.height)),
        "{msg}"
    );
    assert!(err.to_string().contains("revoked at height"), "{err}");
    let after = view(&w.node, &rid);
    let new = appended(&before, &after, 1);
    assert_entry(
        &new[0],
        w.bob.account(),
        AuditAction::Retrieve,
        Some(grant),
        Some(ErrorCode::GrantRevoked),
    );

    // Revoking again: refused, and the first revocation's block is kept.
    let before = after;
    let err = w.alice.client(&w.node).revoke(grant).await.unwrap_err();
    let (code, msg) = client_refusal(&err);
    assert_eq!(code, ErrorCode::GrantRevoked);
    assert!(
        msg.contains(&format!("already revoked at height {}", at.height)),
        "{msg}"
    );
    let after = view(&w.node, &rid);
    let new = appended(&before, &after, 1);
    assert_entry(
        &new[0],
        w.alice.account(),
        AuditAction::Revoke,
        Some(grant),
        Some(ErrorCode::GrantRevoked),
    );
    assert_eq!(
        w.node.grant(&grant).unwrap().status,
        GrantStatus::Revoked { at }
    );

    // Delivering the fragment again does not bring it back.
    let err = w.node.deliver_fragment(grant, fragment).await.unwrap_err();
    assert_eq!(node_refusal(&err).0, ErrorCode::GrantRevoked);
    assert!(!w.node.holds_fragment(&grant).unwrap());
    let err = retrieve_all(&bob, grant, "treatment").await.unwrap_err();
    assert_eq!(client_refusal(&err).0, ErrorCode::GrantRevoked);

    // Bob's other grant on the record is untouched.
    let other = after.grants.iter().find(|g| g.id != grant).unwrap();
    assert_eq!(other.status, GrantStatus::Active);
    assert_eq!(
        retrieve_all(&bob, other.id, "treatment").await.unwrap(),
        RECORD
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_grant_is_refused_and_expiry_must_be_in_the_future() {
    let w = World::new().await;
    let alice = w.alice.client(&w.node);
    let bob = w.bob.client(&w.node);
    let put = alice
        .put(rr_core::byte_stream_of(RECORD.to_vec()), "text/plain")
        .await
        .unwrap();
    let rid = put.record_id;
    let exp = w.now().plus_millis(1000);
    let grant = alice
        .grant(rid, &bob.card(), options("treatment", Some(exp)))
        .await
        .unwrap();
    assert_eq!(w.node.grant(&grant).unwrap().expires_at, Some(exp));

    // Before expiry it works, up to the last millisecond.
    assert_eq!(
        retrieve_all(&bob, grant, "treatment").await.unwrap(),
        RECORD
    );
    w.clock.advance(999);
    assert_eq!(
        retrieve_all(&bob, grant, "treatment").await.unwrap(),
        RECORD
    );

    // At and after expiry it is refused.
    w.clock.advance(1);
    let before = view(&w.node, &rid);
    let err = retrieve_all(&bob, grant, "treatment").await.unwrap_err();
    let (code, msg) = client_refusal(&err);
    assert_eq!(code, ErrorCode::GrantExpired);
    assert!(msg.contains(&format!("expired at {exp}")), "{msg}");
    w.clock.advance(60_000);
    let err = retrieve_all(&bob, grant, "treatment").await.unwrap_err();
    assert_eq!(client_refusal(&err).0, ErrorCode::GrantExpired);
    // Turning the clock back does not revive it: block time never goes back.
    let latest = w.node.status().time;
    w.clock.set(START);
    let err = retrieve_all(&bob, grant, "treatment").await.unwrap_err();
    assert_eq!(client_refusal(&err).0, ErrorCode::GrantExpired);
    assert_eq!(w.node.status().time, latest);
    w.clock.set(latest);
    let after = view(&w.node, &rid);
    let new = appended(&before, &after, 3);
    assert_entry(
        &new[0],
        w.bob.account(),
        AuditAction::Retrieve,
        Some(grant),
        Some(ErrorCode::GrantExpired),
    );
    assert_eq!(new[0].at.time, exp);
    // Expiry is not a revocation: the stored grant is as it was.
    assert_eq!(w.node.grant(&grant).unwrap().status, GrantStatus::Active);

    // A grant that expires in the past, or right now, is invalid.
    let before = after;
    for expires in [Timestamp(w.now().0 - 1), w.now()] {
        let err = alice
            .grant(rid, &bob.card(), options("treatment", Some(expires)))
            .await
            .unwrap_err();
        let (code, msg) = client_refusal(&err);
        assert_eq!(code, ErrorCode::InvalidCall);
        assert!(
            msg.contains(&format!("expiry {expires} is not after the block time")),
            "{msg}"
        );
    }
    let after = view(&w.node, &rid);
    for e in appended(&before, &after, 2) {
        assert_entry(
            e,
            w.alice.account(),
            AuditAction::Grant,
            None,
            Some(ErrorCode::InvalidCall),
        );
    }
    assert!(w.node.grants_held_by(&w.bob.account()).unwrap().len() == 1);

    // A fresh grant with a future expiry works.
    let later = w.now().plus_millis(10_000);
    let g2 = alice
        .grant(rid, &bob.card(), options("treatment", Some(later)))
        .await
        .unwrap();
    assert_eq!(retrieve_all(&bob, g2, "treatment").await.unwrap(), RECORD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrieval_for_another_purpose_is_refused() {
    let w = World::new().await;
    let (put, grant) = w.alice_shares_with_bob(RECORD).await;
    let before = view(&w.node, &put.record_id);
    let bob = w.bob.client(&w.node);

    let err = retrieve_all(&bob, grant, "research").await.unwrap_err();
    let (code, msg) = client_refusal(&err);
    assert_eq!(code, ErrorCode::PurposeMismatch);
    assert!(
        msg.contains("is for purpose \"treatment\", not \"research\""),
        "{msg}"
    );
    let after = view(&w.node, &put.record_id);
    let new = appended(&before, &after, 1);
    assert_entry(
        &new[0],
        w.bob.account(),
        AuditAction::Retrieve,
        Some(grant),
        Some(ErrorCode::PurposeMismatch),
    );
    assert_eq!(new[0].purpose, Some(purpose_of("research")));
    assert!(w.node.holds_fragment(&grant).unwrap());

    assert_eq!(
        retrieve_all(&bob, grant, "treatment").await.unwrap(),
        RECORD
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_records_and_grants_are_refused() {
    let w = World::new().await;
    let (put, grant) = w.alice_shares_with_bob(RECORD).await;
    let rid = put.record_id;
    let before = view(&w.node, &rid);
    let nowhere = RecordId(random32());
    let nothing = GrantId(random32());

    // Queries.
    let err = w.node.record(&nowhere).unwrap_err();
    assert!(
        matches!(err, NodeError::UnknownRecord(r) if r == nowhere),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("no record {nowhere} on this ledger")
    );
    assert!(matches!(w.node.grant(&nothing), Err(NodeError::UnknownGrant(g)) if g == nothing));
    assert!(matches!(
        w.node.audit(&nowhere),
        Err(NodeError::UnknownRecord(_))
    ));
    assert!(matches!(
        w.node.grants_of_record(&nowhere),
        Err(NodeError::UnknownRecord(_))
    ));

    // The client checks the record before ordering anything.
    let alice = w.alice.client(&w.node);
    let bob = w.bob.client(&w.node);
    let st = status(&w.node);
    let err = alice
        .grant(nowhere, &bob.card(), options("treatment", None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Node(NodeError::UnknownRecord(r)) if r == nowhere),
        "{err:?}"
    );
    assert_eq!(status(&w.node), st);

    // A hand-made grant on an unknown record.
    let r = submit(
        &w.node,
        w.alice.sign(grant_call(
            nowhere,
            &w.bob,
            Threshold { m: 1, n: 1 },
            vec![Digest([1; 32])],
            "treatment",
            None,
        )),
    )
    .await;
    let (code, msg) = refusal(&r);
    assert_eq!(code, ErrorCode::UnknownRecord);
    assert!(msg.contains(&format!("no record {nowhere}")), "{msg}");

    // Retrieve and revoke of an unknown grant.
    let err = retrieve_all(&bob, nothing, "treatment").await.unwrap_err();
    let (code, msg) = client_refusal(&err);
    assert_eq!(code, ErrorCode::UnknownGrant);
    assert!(msg.contains(&format!("no grant {nothing}")), "{msg}");
    let err = alice.revoke(nothing).await.unwrap_err();
    assert_eq!(client_refusal(&err).0, ErrorCode::UnknownGrant);

    // A fragment for an unknown grant.
    let err = w
        .node
        .deliver_fragment(nothing, vec![1, 2, 3])
        .await
        .unwrap_err();
    assert!(
        matches!(err, NodeError::UnknownGrant(g) if g == nothing),
        "{err:?}"
    );
    assert!(!w.node.holds_fragment(&nothing).unwrap());

    // Alice's real record, grant and trail are untouched, and Bob still retrieves.
    assert_eq!(view(&w.node, &rid), before);
    assert_eq!(
        retrieve_all(&bob, grant, "treatment").await.unwrap(),
        RECORD
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_grants_are_invalid_calls() {
    let w = World::new().await;
    let (put, grant) = w.alice_shares_with_bob(RECORD).await;
    let rid = put.record_id;
    let before = view(&w.node, &rid);
    let c = |n: usize| {
        (0..n)
            .map(|i| Digest([i as u8 + 1; 32]))
            .collect::<Vec<_>>()
    };

    let mut cases: Vec<(Call, &str)> = vec![
        (
            grant_call(
                rid,
                &w.bob,
                Threshold { m: 2, n: 1 },
                c(1),
                "treatment",
                None,
            ),
            "threshold 2 of 1 is invalid",
        ),
        (
            grant_call(
                rid,
                &w.bob,
                Threshold { m: 0, n: 1 },
                c(1),
                "treatment",
                None,
            ),
            "threshold 0 of 1 is invalid",
        ),
        (
            grant_call(
                rid,
                &w.bob,
                Threshold { m: 1, n: 2 },
                c(2),
                "treatment",
                None,
            ),
            "n must be 1",
        ),
        (
            grant_call(
                rid,
                &w.bob,
                Threshold { m: 1, n: 1 },
                c(0),
                "treatment",
                None,
            ),
            "carries 0 fragment commitments",
        ),
        (
            grant_call(
                rid,
                &w.bob,
                Threshold { m: 1, n: 1 },
                c(2),
                "treatment",
                None,
            ),
            "carries 2 fragment commitments",
        ),
    ];
    let mut empty_key = grant_call(
        rid,
        &w.bob,
        Threshold { m: 1, n: 1 },
        c(1),
        "treatment",
        None,
    );
    if let Call::Grant(g) = &mut empty_key {
        g.grantee_key.clear();
    }
    cases.push((empty_key, "grantee key is empty"));

    let n = cases.len();
    let mut ids = Vec::new();
    for (call, expected) in cases {
        let tx = w.alice.sign(call);
        ids.push(GrantId::derive(&tx.id()));
        let r = submit(&w.node, tx).await;
        let (code, msg) = refusal(&r);
        assert_eq!(code, ErrorCode::InvalidCall, "{msg}");
        assert!(
            msg.contains(expected),
            "{msg:?} should contain {expected:?}"
        );
    }
    let after = view(&w.node, &rid);
    for e in appended(&before, &after, n) {
        assert_entry(
            e,
            w.alice.account(),
            AuditAction::Grant,
            None,
            Some(ErrorCode::InvalidCall),
        );
    }
    for id in ids {
        assert!(matches!(w.node.grant(&id), Err(NodeError::UnknownGrant(_))));
    }

    // The client refuses a threshold the replica set cannot meet before ordering.
    let st = status(&w.node);
    let mut opts = options("treatment", None);
    opts.threshold = Some(2);
    let err = w
        .alice
        .client(&w.node)
        .grant(rid, &w.bob.client(&w.node).card(), opts)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("2 of 1"), "{err}");
    assert_eq!(status(&w.node), st);

    let bob = w.bob.client(&w.node);
    assert_eq!(
        retrieve_all(&bob, grant, "treatment").await.unwrap(),
        RECORD
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_that_do_not_match_their_commitment_are_not_stored() {
    let w = World::new().await;
    let (put, _) = w.alice_shares_with_bob(RECORD).await;
    let rid = put.record_id;
    let (grant, fragment, _) =
        manual_grant(&w.node, &w.alice, rid, &w.bob, "treatment", None, false).await;
    assert!(!w.node.holds_fragment(&grant).unwrap());

    let mismatch = |err: &NodeError| {
        assert!(
            matches!(err, NodeError::FragmentMismatch { grant: g, replica: ReplicaId(0) } if *g == grant),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("does not match the commitment"),
            "{err}"
        );
    };
    let mut noise = vec![0u8; 200];
    OsRng.fill_bytes(&mut noise);
    mismatch(
        &w.node
            .deliver_fragment(grant, noise.clone())
            .await
            .unwrap_err(),
    );
    // A genuine fragment of another delegation of the same record to the same grantee.
    let other = delegate(&w.alice, &rid, &w.bob, Threshold { m: 1, n: 1 }).remove(0);
    mismatch(
        &w.node
            .deliver_fragment(grant, other.clone())
            .await
            .unwrap_err(),
    );
    // The right fragment with one bit flipped.
    let mut flipped = fragment.clone();
    flipped[10] ^= 1;
    mismatch(&w.node.deliver_fragment(grant, flipped).await.unwrap_err());
    assert!(!w.node.holds_fragment(&grant).unwrap());

    // The ledger allows Bob's retrieve, but this replica has nothing to answer with.
    let bob = w.bob.client(&w.node);
    let err = bob
        .retrieve(grant, purpose_of("treatment"))
        .await
        .err()
        .unwrap();
    match &err {
        ClientError::NotEnoughFragments {
            grant: g,
            verified: 0,
            bad,
            ..
        } if *g == grant => assert!(
            bad.iter().any(|b| b.contains("holds no key fragment")),
            "{bad:?}"
        ),
        other => panic!("expected no fragment to be given: {other:?}"),
    }

    // The right one is stored, and a wrong one afterwards does not replace it.
    w.node.deliver_fragment(grant, fragment).await.unwrap();
    assert!(w.node.holds_fragment(&grant).unwrap());
    mismatch(&w.node.deliver_fragment(grant, noise).await.unwrap_err());
    mismatch(&w.node.deliver_fragment(grant, other).await.unwrap_err());
    assert_eq!(
        retrieve_all(&bob, grant, "treatment").await.unwrap(),
        RECORD
    );

    // A commitment to bytes that are no key fragment: refused as malformed.
    let junk = b"not a key fragment".to_vec();
    let tx = w
        .alice
        .sign(grant_call_for(rid, &w.bob, &junk, "treatment"));
    let CallOutput::Granted { grant: g2 } = output(&submit(&w.node, tx).await) else {
        panic!("expected a grant")
    };
    let err = w.node.deliver_fragment(g2, junk).await.unwrap_err();
    assert!(
        matches!(err, NodeError::Pre(rr_core::PreError::Malformed { .. })),
        "{err:?}"
    );
    assert!(!w.node.holds_fragment(&g2).unwrap());

    // A commitment to a genuine fragment made for Carol, on a grant to Bob:
    // refused as not verifying against the grant's keys.
    let for_carol = delegate(&w.alice, &rid, &w.carol, Threshold { m: 1, n: 1 }).remove(0);
    let tx = w
        .alice
        .sign(grant_call_for(rid, &w.bob, &for_carol, "treatment"));
    let CallOutput::Granted { grant: g3 } = output(&submit(&w.node, tx).await) else {
        panic!("expected a grant")
    };
    let err = w.node.deliver_fragment(g3, for_carol).await.unwrap_err();
    assert!(
        matches!(err, NodeError::Pre(rr_core::PreError::InvalidKeyFrag)),
        "{err:?}"
    );
    assert!(!w.node.holds_fragment(&g3).unwrap());

    // The working grant still works.
    assert_eq!(
        retrieve_all(&bob, grant, "treatment").await.unwrap(),
        RECORD
    );
}

/// Deterministic pseudo-random bytes (xorshift), so a failure reproduces.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_are_refused_as_malformed() {
    let w = World::new().await;
    let (put, grant) = w.alice_shares_with_bob(RECORD).await;
    let before = view(&w.node, &put.record_id);
    let st = status(&w.node);
    let valid = w.alice.sign(revoke(grant)).to_bytes();

    let mut trailing = valid.clone();
    trailing.push(0);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("random", noise(300, 0x9e37_79b9_7f4a_7c15)),
        ("all ones", vec![0xff; 100]),
        ("truncated by one byte", valid[..valid.len() - 1].to_vec()),
        ("truncated by half", valid[..valid.len() / 2].to_vec()),
        ("trailing byte", trailing),
        ("over 64 KiB", vec![0; MAX_TX_BYTES + 1]),
    ];
    for (what, bytes) in cases {
        let err = w.node.submit_bytes(bytes).await.unwrap_err();
        let NodeError::BadTransaction(decode) = &err else {
            panic!("{what}: expected BadTransaction, got {err:?}")
        };
        assert!(
            err.to_string().starts_with("malformed transaction: "),
            "{what}: {err}"
        );
        match what {
            "trailing byte" => assert!(
                matches!(decode, DecodeError::TrailingBytes { extra: 1, .. }),
                "{decode:?}"
            ),
            "over 64 KiB" => assert!(
                matches!(decode, DecodeError::TooLarge { size, limit, .. } if *size == MAX_TX_BYTES + 1 && *limit == MAX_TX_BYTES),
                "{decode:?}"
            ),
            _ => assert!(err.to_string().contains("transaction"), "{what}: {err}"),
        }
    }

    // A retrieve through `retrieve` must be a retrieve call.
    let err = w
        .node
        .retrieve(w.alice.sign(revoke(grant)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NodeError::WrongCall {
                expected: "retrieve",
                found: "revoke"
            }
        ),
        "{err:?}"
    );

    assert_eq!(status(&w.node), st, "garbage must not be ordered");
    assert_eq!(view(&w.node, &put.record_id), before);
    assert!(w.node.holds_fragment(&grant).unwrap());
    let bob = w.bob.client(&w.node);
    assert_eq!(
        retrieve_all(&bob, grant, "treatment").await.unwrap(),
        RECORD
    );
    // The valid transaction was never consumed.
    let r = w.node.submit_bytes(valid).await.unwrap();
    assert_eq!(output(&r), CallOutput::Revoked { grant });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_signed_transaction_is_reported_as_too_large_not_as_forged() {
    let w = World::new().await;
    let st = status(&w.node);
    // Correctly signed by Alice, but over the 64 KiB limit.
    let tx = w.alice.sign(Call::RegisterRecord(RegisterRecord {
        salt: [3; 16],
        cid: rr_core::ContentId::from_sha256([0; 32]),
        size: 1,
        scheme: SchemeId::UMBRAL,
        record_key: vec![1; 32],
        capsule: vec![1; 32],
        media_type: "text/plain".into(),
        encrypted_metadata: Some(vec![0; MAX_TX_BYTES]),
    }));
    assert!(tx.to_bytes().len() > MAX_TX_BYTES);
    let err = w.node.submit_bytes(tx.to_bytes()).await.unwrap_err();
    assert!(
        matches!(err, NodeError::BadTransaction(DecodeError::TooLarge { .. })),
        "{err:?}"
    );
    // By value the size is the problem too; the signature is Alice's own.
    let err = w.node.submit(tx).await.unwrap_err();
    assert!(
        matches!(err, NodeError::BadTransaction(DecodeError::TooLarge { .. })),
        "an oversized but correctly signed transaction is reported as: {err}"
    );
    assert_eq!(status(&w.node), st);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_twice_or_under_an_unknown_scheme_is_refused() {
    let w = World::new().await;
    let (put, grant) = w.alice_shares_with_bob(RECORD).await;
    let template = w.node.record(&put.record_id).unwrap();
    let register = |salt: [u8; 16], scheme: SchemeId| {
        Call::RegisterRecord(RegisterRecord {
            salt,
            cid: template.cid,
            size: template.size,
            scheme,
            record_key: template.record_key.clone(),
            capsule: template.capsule.clone(),
            media_type: "text/plain".into(),
            encrypted_metadata: None,
        })
    };
    let salt = [9; 16];
    let rid = RecordId::derive(&w.alice.account(), &salt);
    let first = submit(&w.node, w.alice.sign(register(salt, SchemeId::UMBRAL))).await;
    assert_eq!(output(&first), CallOutput::Registered { record: rid });
    let before = view(&w.node, &rid);

    let r = submit(&w.node, w.alice.sign(register(salt, SchemeId::UMBRAL))).await;
    let (code, msg) = refusal(&r);
    assert_eq!(code, ErrorCode::RecordExists);
    assert!(
        msg.contains(&format!(
            "already registered at height {}",
            first.context.height
        )),
        "{msg}"
    );
    let after = view(&w.node, &rid);
    let new = appended(&before, &after, 1);
    assert_entry(
        &new[0],
        w.alice.account(),
        AuditAction::Register,
        None,
        Some(ErrorCode::RecordExists),
    );
    assert_eq!(after.record.registered, first.context);

    // Mallory using the same salt registers a record of her own, not Alice's.
    let r = submit(&w.node, w.mallory.sign(register(salt, SchemeId::UMBRAL))).await;
    let mine = RecordId::derive(&w.mallory.account(), &salt);
    assert_eq!(output(&r), CallOutput::Registered { record: mine });
    assert_ne!(mine, rid);
    assert_eq!(w.node.record(&mine).unwrap().owner, w.mallory.account());
    assert_eq!(view(&w.node, &rid), after);

    // Empty or oversized fields: refused, nothing registered.
    let salt3 = [11; 16];
    let mut empty_key = register(salt3, SchemeId::UMBRAL);
    if let Call::RegisterRecord(c) = &mut empty_key {
        c.record_key.clear();
    }
    let mut long_type = register(salt3, SchemeId::UMBRAL);
    if let Call::RegisterRecord(c) = &mut long_type {
        c.media_type = "x".repeat(256);
    }
    for (call, what) in [(empty_key, "record key"), (long_type, "media type")] {
        let r = submit(&w.node, w.alice.sign(call)).await;
        let (code, msg) = refusal(&r);
        assert_eq!(code, ErrorCode::InvalidCall);
        assert!(msg.contains(what), "{msg}");
    }
    assert!(matches!(
        w.node.record(&RecordId::derive(&w.alice.account(), &salt3)),
        Err(NodeError::UnknownRecord(_))
    ));

    // A scheme this ledger does not serve: refused, nothing registered.
    let salt2 = [10; 16];
    let r = submit(&w.node, w.alice.sign(register(salt2, SchemeId(999)))).await;
    let (code, msg) = refusal(&r);
    assert_eq!(code, ErrorCode::SchemeMismatch);
    assert!(msg.contains("is not served by this ledger"), "{msg}");
    let missing = RecordId::derive(&w.alice.account(), &salt2);
    assert!(matches!(
        w.node.record(&missing),
        Err(NodeError::UnknownRecord(_))
    ));

    let bob = w.bob.client(&w.node);
    assert_eq!(
        retrieve_all(&bob, grant, "treatment").await.unwrap(),
        RECORD
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(rr_consensus::ManualClock::new(START));
    let (alice, bob, carol, mallory) = (Person::new(), Person::new(), Person::new(), Person::new());
    let node = open_node(dir.path(), clock.clone()).await;

    let put = alice
        .client(&node)
        .put(rr_core::byte_stream_of(RECORD.to_vec()), "text/plain")
        .await
        .unwrap();
    let rid = put.record_id;
    let kept = alice
        .client(&node)
        .grant(rid, &bob.client(&node).card(), options("treatment", None))
        .await
        .unwrap();
    let gone = alice
        .client(&node)
        .grant(rid, &carol.client(&node).card(), options("treatment", None))
        .await
        .unwrap();
    assert_eq!(
        retrieve_all(&bob.client(&node), kept, "treatment")
            .await
            .unwrap(),
        RECORD
    );
    assert_eq!(
        retrieve_all(&carol.client(&node), gone, "treatment")
            .await
            .unwrap(),
        RECORD
    );
    let revocation = w_revoke(&node, &alice, gone).await;
    let _ = mallory.client(&node).revoke(kept).await.unwrap_err();
    let captured = bob.sign(retrieve(kept, "treatment"));
    node.retrieve(captured.clone()).await.unwrap();
    clock.advance(5_000);

    let before = view(&node, &rid);
    let st = status(&node);
    // register, 2 grants, 2 retrieves, revoke, refused revoke, retrieve
    assert_eq!(before.audit.len(), 8);
    let receipt = node.ledger().receipt(&captured.id()).unwrap().unwrap();

    // Shut down; later calls are refused, not lost in a queue.
    node.shutdown().await.unwrap();
    let err = node.submit(alice.sign(revoke(kept))).await.unwrap_err();
    assert!(
        matches!(err, NodeError::Consensus(ConsensusError::Stopped)),
        "{err:?}"
    );
    drop(node);

    let node = open_node(dir.path(), clock.clone()).await;
    assert_eq!(status(&node), st);
    assert_eq!(view(&node, &rid), before);
    assert_eq!(
        node.ledger().receipt(&captured.id()).unwrap(),
        Some(receipt.clone())
    );
    assert_eq!(
        node.grant(&gone).unwrap().status,
        GrantStatus::Revoked { at: revocation }
    );
    assert!(node.holds_fragment(&kept).unwrap());
    assert!(!node.holds_fragment(&gone).unwrap());

    // The active grant still works (its fragment and the blob persisted), the
    // revoked one is still refused, and old nonces are still spent.
    assert_eq!(
        retrieve_all(&bob.client(&node), kept, "treatment")
            .await
            .unwrap(),
        RECORD
    );
    let err = retrieve_all(&carol.client(&node), gone, "treatment")
        .await
        .unwrap_err();
    let (code, msg) = client_refusal(&err);
    assert_eq!(code, ErrorCode::GrantRevoked);
    assert!(
        msg.contains(&format!("revoked at height {}", revocation.height)),
        "{msg}"
    );
    // The captured retrieve again: its original receipt, no new audit
    // entry, and (the grant being still usable) the fragment again.
    let trail = view(&node, &rid).audit.len();
    let again = node.retrieve(captured.clone()).await.unwrap();
    assert_eq!(again.receipt.receipt, receipt);
    assert!(again.fragment.is_some());
    assert_eq!(view(&node, &rid).audit.len(), trail);
    assert_eq!(
        collect_own(&alice, &node, rid).await,
        RECORD,
        "the owner still reads her record"
    );
    node.shutdown().await.unwrap();
}

async fn w_revoke(node: &Dev, owner: &Person, grant: GrantId) -> rr_core::BlockContext {
    let r = submit(node, owner.sign(revoke(grant))).await;
    assert_eq!(output(&r), CallOutput::Revoked { grant });
    r.context
}

async fn collect_own(owner: &Person, node: &std::sync::Arc<Dev>, rid: RecordId) -> Vec<u8> {
    let stream = owner.client(node).read_own(rid).await.unwrap();
    rr_node::collect(stream).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_committed_just_before_a_crash_still_erases_the_fragment() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(rr_consensus::ManualClock::new(START));
    let (alice, bob) = (Person::new(), Person::new());
    let node = open_node(dir.path(), clock.clone()).await;
    let put = alice
        .client(&node)
        .put(rr_core::byte_stream_of(RECORD.to_vec()), "text/plain")
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
    assert!(node.holds_fragment(&grant).unwrap());
    node.shutdown().await.unwrap();
    drop(node);

    // The revocation commits to the ledger, and the node dies before it
    // erases the fragment: the fragment is still on disk.
    let ctx = {
        use rr_core::ContractExecutor;
        let ledger = rr_storage::Ledger::open(dir.path().join("ledger.redb")).unwrap();
        let head = ledger.head().unwrap();
        let ctx = rr_core::BlockContext {
            height: head.height + 1,
            time: head.time.plus_millis(1),
        };
        let tx = alice.sign(revoke(grant));
        let verified = tx.clone().verify().unwrap();
        let snapshot = ledger.snapshot().unwrap();
        let exec = rr_node::NativeContracts::default()
            .execute(&snapshot, &ctx, &[verified])
            .unwrap();
        drop(snapshot);
        assert_eq!(output(&exec.receipts[0]), CallOutput::Revoked { grant });
        ledger
            .commit_block(&rr_core::Block::new(ctx, head.block_hash, vec![tx]), &exec)
            .unwrap();
        ctx
    };
    {
        let fragments =
            rr_node::fragments::FragmentStore::open(dir.path().join("fragments.redb")).unwrap();
        assert!(fragments.get(&grant).unwrap().is_some());
    }

    // On restart the node erases it before serving anything.
    let node = open_node(dir.path(), clock.clone()).await;
    assert!(!node.holds_fragment(&grant).unwrap());
    assert_eq!(
        node.grant(&grant).unwrap().status,
        GrantStatus::Revoked { at: ctx }
    );
    let err = retrieve_all(&bob.client(&node), grant, "treatment")
        .await
        .unwrap_err();
    let (code, msg) = client_refusal(&err);
    assert_eq!(code, ErrorCode::GrantRevoked);
    assert!(
        msg.contains(&format!("revoked at height {}", ctx.height)),
        "{msg}"
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_whose_caller_goes_away_still_erases_the_fragment() {
    use std::task::Poll;
    let w = World::new().await;
    let (put, _) = w.alice_shares_with_bob(RECORD).await;
    let bob = w.bob.client(&w.node);

    // A revoke whose caller goes away (a dropped request) once the revocation
    // is committed but before its receipt is read. The race is retried with a
    // fresh grant in the rare case the call completes before it is dropped.
    let mut abandoned = None;
    for _ in 0..10 {
        let (grant, _, _) = manual_grant(
            &w.node,
            &w.alice,
            put.record_id,
            &w.bob,
            "treatment",
            None,
            true,
        )
        .await;
        assert!(w.node.holds_fragment(&grant).unwrap());
        let node = w.node.clone();
        let tx = w.alice.sign(revoke(grant));
        let mut call = Box::pin(async move { node.submit(tx).await });
        let mut completed = false;
        for _ in 0..10_000 {
            if matches!(
                w.node.grant(&grant).unwrap().status,
                GrantStatus::Revoked { .. }
            ) {
                break;
            }
            if let Poll::Ready(r) = futures::poll!(call.as_mut()) {
                r.unwrap();
                completed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        drop(call);
        if !completed {
            abandoned = Some(grant);
            break;
        }
    }
    let grant = abandoned.expect("could not abandon a revoke call in 10 tries");
    assert!(matches!(
        w.node.grant(&grant).unwrap().status,
        GrantStatus::Revoked { .. }
    ));

    // The revocation is in force...
    let err = retrieve_all(&bob, grant, "treatment").await.unwrap_err();
    assert_eq!(client_refusal(&err).0, ErrorCode::GrantRevoked);
    // ...and the replica must not keep the revoked grant's key fragment.
    let mut erased = false;
    for _ in 0..200 {
        if !w.node.holds_fragment(&grant).unwrap() {
            erased = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        erased,
        "grant {grant} is revoked on the ledger, but this replica still holds its key fragment \
         2 s later (and one more call later): erasure only happens if the revoke's caller \
         awaits its receipt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_capsules_that_do_not_decode_are_refused_by_the_contracts() {
    use rr_core::{PreScheme, WireEncoding};
    let w = World::new().await;
    let (put, grant) = w.alice_shares_with_bob(RECORD).await;
    let template = w.node.record(&put.record_id).unwrap();
    let salt = [21; 16];
    let rid = RecordId::derive(&w.alice.account(), &salt);
    let (_, record_key) = rr_pre::Umbral.record_key(&w.alice.master(), &rid);
    let (capsule, _) = rr_pre::Umbral.encapsulate(&mut OsRng, &record_key).unwrap();
    let (record_key, capsule) = (record_key.to_bytes(), capsule.to_bytes());
    let register = |record_key: &[u8], capsule: &[u8]| {
        Call::RegisterRecord(RegisterRecord {
            salt,
            cid: template.cid,
            size: template.size,
            scheme: SchemeId::UMBRAL,
            record_key: record_key.to_vec(),
            capsule: capsule.to_vec(),
            media_type: "text/plain".into(),
            encrypted_metadata: None,
        })
    };
    // A point that is not on the curve: an invalid SEC1 tag.
    let mut off_curve = record_key.clone();
    off_curve[2] = 0x07;
    let cases: [(&str, Vec<u8>, Vec<u8>); 5] = [
        ("garbage key", vec![0xab; record_key.len()], capsule.clone()),
        ("off-curve key", off_curve, capsule.clone()),
        ("account key", w.alice.pre_key(), capsule.clone()),
        (
            "garbage capsule",
            record_key.clone(),
            vec![1; capsule.len()],
        ),
        (
            "truncated capsule",
            record_key.clone(),
            capsule[..capsule.len() - 1].to_vec(),
        ),
    ];
    for (case, key, caps) in cases {
        let st = status(&w.node);
        let r = submit(&w.node, w.alice.sign(register(&key, &caps))).await;
        let (code, msg) = refusal(&r);
        assert_eq!(code, ErrorCode::InvalidCall, "{case}: {msg}");
        assert!(
            msg.contains("must be a umbral record key and a capsule made for it"),
            "{case}: {msg}"
        );
        // Ordered (the nonce is spent), but nothing registered.
        assert_eq!(status(&w.node).height, st.height + 1, "{case}");
        assert!(
            matches!(w.node.record(&rid), Err(NodeError::UnknownRecord(_))),
            "{case}: a record was registered"
        );
    }
    // The same call with good bytes registers.
    let r = submit(&w.node, w.alice.sign(register(&record_key, &capsule))).await;
    assert_eq!(output(&r), CallOutput::Registered { record: rid });

    // A grant whose grantee key is not an account key of the record's
    // scheme: refused and audited; the record's grants are unchanged.
    let before = view(&w.node, &put.record_id);
    let frags = delegate(&w.alice, &put.record_id, &w.bob, Threshold { m: 1, n: 1 });
    for (case, key) in [
        ("garbage", vec![0x5a; 34]),
        ("a record key", template.record_key.clone()),
    ] {
        let mut call = grant_call_for(put.record_id, &w.bob, &frags[0], "research");
        if let Call::Grant(g) = &mut call {
            g.grantee_key = key;
        }
        let r = submit(&w.node, w.alice.sign(call)).await;
        let (code, msg) = refusal(&r);
        assert_eq!(code, ErrorCode::InvalidCall, "{case}: {msg}");
        assert!(
            msg.contains("the grantee key must be a umbral account key"),
            "{case}: {msg}"
        );
    }
    let after = view(&w.node, &put.record_id);
    assert_eq!(after.grants, before.grants);
    assert_eq!(after.record.owner, before.record.owner);
    for entry in appended(&before, &after, 2) {
        assert_entry(
            entry,
            w.alice.account(),
            AuditAction::Grant,
            None,
            Some(ErrorCode::InvalidCall),
        );
    }
    let bob = w.bob.client(&w.node);
    assert_eq!(
        retrieve_all(&bob, grant, "treatment").await.unwrap(),
        RECORD
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_naming_a_blob_the_replica_lacks_or_of_another_size_is_not_ordered() {
    use rr_core::{BlobStore, PreScheme, WireEncoding};
    use rr_node::NodeApi;
    let w = World::new().await;
    let ciphertext = b"an envelope that was never uploaded".to_vec();
    let cid = rr_storage::MemoryBlobStore::new()
        .put_bytes(ciphertext.clone().into())
        .await
        .unwrap();
    let salt = [23; 16];
    let rid = RecordId::derive(&w.alice.account(), &salt);
    let (_, record_key) = rr_pre::Umbral.record_key(&w.alice.master(), &rid);
    let (capsule, _) = rr_pre::Umbral.encapsulate(&mut OsRng, &record_key).unwrap();
    let register = |size: u64| {
        Call::RegisterRecord(RegisterRecord {
            salt,
            cid,
            size,
            scheme: SchemeId::UMBRAL,
            record_key: record_key.to_bytes(),
            capsule: capsule.to_bytes(),
            media_type: "text/plain".into(),
            encrypted_metadata: None,
        })
    };
    let size = ciphertext.len() as u64;
    let st = status(&w.node);
    let tx = w.alice.sign(register(size));
    let err = w.node.submit(tx.clone()).await.unwrap_err();
    assert!(
        matches!(err, NodeError::BlobNotHeld { cid: c } if c == cid),
        "{err:?}"
    );
    assert!(err.to_string().contains("upload the ciphertext"), "{err}");
    assert_eq!(
        status(&w.node),
        st,
        "a call naming a missing blob was ordered"
    );

    // Uploaded, but registered with another size.
    let stored = w
        .node
        .put_blob(
            rr_core::byte_stream_of(ciphertext.clone()),
            w.alice.upload_auth(&w.node),
        )
        .await
        .unwrap();
    assert_eq!(stored, cid);
    let err = w
        .node
        .submit(w.alice.sign(register(size + 1)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NodeError::BlobSizeMismatch { declared, stored, .. }
                if declared == size + 1 && stored == size
        ),
        "{err:?}"
    );
    assert_eq!(status(&w.node), st, "a call of the wrong size was ordered");
    assert!(matches!(
        w.node.record(&rid),
        Err(NodeError::UnknownRecord(_))
    ));

    // The first call was never ordered, so its nonce is unspent: it now
    // registers the record.
    let r = submit(&w.node, tx).await;
    assert_eq!(output(&r), CallOutput::Registered { record: rid });
    assert_eq!(w.node.record(&rid).unwrap().size, size);
}
