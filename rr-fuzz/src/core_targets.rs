//! Targets of rr-core's decoders: transactions, calls, blocks, ledger
//! values, certificates and the answers clients check.

use rr_core::cert::{CertCache, CertCheck, Certificate, LedgerHeader, ReplicaSetInfo};
use rr_core::proof::{CertifiedReceipt, SignedFragment, StateAnswer};
use rr_core::state::keys;
use rr_core::{
    codec, AccountId, AuditEntry, Block, BlockHeader, Call, CountKind, GrantId, GrantInfo, Receipt,
    RecordId, RecordInfo, ReplicaId, SignedTransaction, Table, TxBody, MAX_TX_BYTES,
};

use crate::check::{json_stable, postcard_stable, resign_certificate, resigned_should_verify};
use crate::fixture::fixture;

/// What a node does with a transaction it decoded: its id, and the
/// signature checked singly and in batches, which must agree.
fn transaction_next(tx: &SignedTransaction) {
    let fx = fixture();
    let id = tx.id();
    let single = tx.clone().verify();
    let alone = SignedTransaction::verify_batch(vec![tx.clone()]);
    let mixed = SignedTransaction::verify_batch(vec![fx.good_tx.clone(), tx.clone()]);
    assert_eq!(alone.len(), 1);
    assert_eq!(mixed.len(), 2);
    assert!(mixed[0].is_ok(), "a valid transaction refused in a batch");
    assert_eq!(
        single.is_ok(),
        alone[0].is_ok(),
        "single and batch verification disagree: {single:?} / {:?}",
        alone[0]
    );
    assert_eq!(
        single.is_ok(),
        mixed[1].is_ok(),
        "single and mixed-batch verification disagree: {single:?} / {:?}",
        mixed[1]
    );
    if let Ok(v) = single {
        assert_eq!(v.id(), id);
        assert_eq!(v.signer(), tx.body.signer);
    }
}

/// Transactions, as the HTTP API takes them (postcard or JSON) and as they
/// travel between replicas: `SignedTransaction::from_bytes` and its JSON.
pub fn transaction(data: &[u8]) {
    if let Ok(tx) = SignedTransaction::from_bytes(data) {
        postcard_stable(
            &tx,
            |b| SignedTransaction::from_bytes(b).ok(),
            "transaction",
        );
        json_stable(&tx, "transaction");
        transaction_next(&tx);
    }
    if let Ok(tx) = serde_json::from_slice::<SignedTransaction>(data) {
        json_stable(&tx, "transaction (JSON)");
        transaction_next(&tx);
    }
}

/// Calls and transaction bodies alone (postcard, with the transaction size
/// limit, and JSON): what a signer signs.
pub fn call(data: &[u8]) {
    if let Ok(call) = codec::decode::<Call>("call", data, MAX_TX_BYTES) {
        postcard_stable(
            &call,
            |b| codec::decode::<Call>("call", b, MAX_TX_BYTES).ok(),
            "call",
        );
        json_stable(&call, "call");
        let _ = call.name();
    }
    if let Ok(body) = codec::decode::<TxBody>("body", data, MAX_TX_BYTES) {
        postcard_stable(
            &body,
            |b| codec::decode::<TxBody>("body", b, MAX_TX_BYTES).ok(),
            "transaction body",
        );
        json_stable(&body, "transaction body");
        let signed = body.clone().sign(&fixture().alice);
        assert_eq!(signed.body.signing_bytes(), body.signing_bytes());
    }
    if let Ok(call) = serde_json::from_slice::<Call>(data) {
        json_stable(&call, "call (JSON)");
    }
}

/// Blocks (`Block::from_bytes`: ledger files, state transfer): the
/// transaction digest is checked, so a decoded block's header must match.
pub fn block(data: &[u8]) {
    let Ok(block) = Block::from_bytes(data) else {
        return;
    };
    postcard_stable(&block, |b| Block::from_bytes(b).ok(), "block");
    assert_eq!(Block::digest_txs(&block.txs), block.header.txs_digest);
    let rebuilt = Block::new(block.header.context, block.header.parent, block.txs.clone());
    assert_eq!(rebuilt, block, "Block::new disagrees with a decoded block");
    let _ = block.header.hash();
    let verdicts = SignedTransaction::verify_batch(block.txs.clone());
    for (tx, batch) in block.txs.iter().zip(&verdicts) {
        assert_eq!(tx.clone().verify().is_ok(), batch.is_ok());
    }
    if let Ok(header) = codec::decode::<BlockHeader>("header", data, 1024) {
        let _ = header.hash();
    }
}

/// The values of the ledger's tables and receipts (`Receipt`, `RecordInfo`,
/// `GrantInfo`, `AuditEntry` `from_bytes`), read from disk and proven to
/// clients. Each must also survive the JSON of receipt files.
pub fn ledger_values(data: &[u8]) {
    if let Ok(r) = Receipt::from_bytes(data) {
        postcard_stable(&r, |b| Receipt::from_bytes(b).ok(), "receipt");
        json_stable(&r, "receipt");
        let _ = r.clone().into_result();
        let _ = rr_core::merkle::leaf_hash(&r.to_bytes());
    }
    if let Ok(r) = RecordInfo::from_bytes(data) {
        postcard_stable(&r, |b| RecordInfo::from_bytes(b).ok(), "record");
        json_stable(&r, "record");
        let _ = r.cid.to_string();
        let _ = rr_core::ContentId::from_bytes(&r.cid.to_bytes()).expect("a content id's bytes");
    }
    if let Ok(g) = GrantInfo::from_bytes(data) {
        postcard_stable(&g, |b| GrantInfo::from_bytes(b).ok(), "grant");
        json_stable(&g, "grant");
        let _ = g.is_usable_at(g.granted.time);
    }
    if let Ok(a) = AuditEntry::from_bytes(data) {
        postcard_stable(&a, |b| AuditEntry::from_bytes(b).ok(), "audit entry");
        json_stable(&a, "audit entry");
        let _ = a.action.as_str();
    }
}

/// Checks a certificate against the fixed set, directly and through a
/// cache; then, re-signed by the fixed keys, it must verify exactly when
/// its signers are a quorum of distinct replicas of the set.
fn certificate_next(cert: &Certificate) {
    let fx = fixture();
    let direct = cert.verify(&fx.set_info);
    let cache = CertCache::new(fx.set_info.clone());
    let cached = cache.check(cert);
    assert_eq!(direct, cached, "a cache and the set disagree");
    if let Some(resigned) = resign_certificate(cert) {
        let verdict = resigned.verify(&fx.set_info);
        assert_eq!(
            verdict.is_ok(),
            resigned_should_verify(&resigned),
            "a re-signed certificate: {verdict:?}"
        );
        if let Ok(h) = verdict {
            assert_eq!(h.header(), &resigned.header);
            // Certified once, the cache answers from memory; it must agree.
            assert_eq!(cache.check(&resigned), Ok(h.clone()));
            assert_eq!(cache.check(&resigned), Ok(h));
        }
    }
}

/// Certificates and ledger headers (`Certificate::from_bytes`,
/// `LedgerHeader::from_bytes`, their JSON as `/v1/head` serves it) and
/// replica sets (the JSON of cluster and receipt files).
pub fn certificate(data: &[u8]) {
    if let Ok(c) = Certificate::from_bytes(data) {
        postcard_stable(&c, |b| Certificate::from_bytes(b).ok(), "certificate");
        json_stable(&c, "certificate");
        certificate_next(&c);
    }
    if let Ok(h) = LedgerHeader::from_bytes(data) {
        postcard_stable(&h, |b| LedgerHeader::from_bytes(b).ok(), "ledger header");
        let _ = h.hash();
    }
    if let Ok(c) = serde_json::from_slice::<Certificate>(data) {
        json_stable(&c, "certificate (JSON)");
        certificate_next(&c);
    }
    if let Ok(set) = serde_json::from_slice::<ReplicaSetInfo>(data) {
        json_stable(&set, "replica set");
        assert!(set.n() >= 1 && set.quorum() <= set.n());
        assert_eq!(ReplicaSetInfo::new(set.keys().to_vec()).as_ref(), Ok(&set));
    }
}

/// What a client reads out of a verified state answer: every getter, over
/// every key the answer names.
pub(crate) fn state_getters(verified: &rr_core::proof::VerifiedState, answer: &StateAnswer) {
    for e in &answer.entries {
        let id32: Option<[u8; 32]> = e.key.get(..32).and_then(|k| k.try_into().ok());
        match (e.table, id32) {
            (Table::Records, Some(id)) => {
                let record = RecordId(id);
                let _ = verified.record(&record);
                let _ = verified.audit_trail(&record, 0, u64::MAX);
                let _ = verified.grants_of(&record);
            }
            (Table::Grants, Some(id)) => {
                let _ = verified.grant(&GrantId(id));
            }
            (Table::Audit, Some(id)) if e.key.len() == 40 => {
                let seq = u64::from_be_bytes(e.key[32..].try_into().expect("8 bytes"));
                let _ = verified.audit_entry(&RecordId(id), seq);
            }
            (Table::Counts, _) if e.key.len() == 33 => {
                let id: [u8; 32] = e.key[1..].try_into().expect("32 bytes");
                let _ = verified.records_of(&AccountId(id));
                let _ = verified.grants_held_by(&AccountId(id));
                let _ = verified.grants_of(&RecordId(id));
                for kind in [
                    CountKind::OwnerRecords,
                    CountKind::GranteeGrants,
                    CountKind::RecordGrants,
                ] {
                    let _ = verified.count(kind, &id);
                    let _ = keys::count(kind, &id);
                }
            }
            _ => {}
        }
        let _ = verified.value(e.table, &e.key);
    }
}

/// Checks a state answer against the fixed set, as is and re-signed, and
/// reads it as a client would.
pub(crate) fn state_answer_next(answer: &StateAnswer) {
    let fx = fixture();
    if let Ok(v) = answer.verify(&fx.set_info) {
        state_getters(&v, answer);
    }
    if let Some(certificate) = resign_certificate(&answer.certificate) {
        let resigned = StateAnswer {
            certificate,
            entries: answer.entries.clone(),
        };
        if let Ok(v) = resigned.verify(&fx.set_info) {
            assert_eq!(v.height(), resigned.height());
            state_getters(&v, &resigned);
        }
    }
}

/// State answers (`/v1/records/..`, `/v1/grants/..`, listings; JSON): the
/// certificate and every sparse Merkle proof, then the typed getters.
pub fn state_answer(data: &[u8]) {
    let Ok(answer) = serde_json::from_slice::<StateAnswer>(data) else {
        return;
    };
    json_stable(&answer, "state answer");
    state_answer_next(&answer);
}

/// Checks a certified receipt against the fixed set, as is and re-signed.
pub(crate) fn certified_receipt_next(r: &CertifiedReceipt) {
    let fx = fixture();
    let direct = r.verify(&fx.set_info);
    assert_eq!(
        direct.is_ok(),
        r.verify_for(&fx.set_info, &r.receipt.tx).is_ok()
    );
    if let Some(certificate) = resign_certificate(&r.certificate) {
        let resigned = CertifiedReceipt {
            certificate,
            ..r.clone()
        };
        if let Ok(h) = resigned.verify(&fx.set_info) {
            assert_eq!(h.height(), r.receipt.context.height);
            assert!(resigned.verify_for(&fx.set_info, &r.receipt.tx).is_ok());
            let mut other = r.receipt.tx;
            other.0[0] ^= 1;
            assert!(
                resigned.verify_for(&fx.set_info, &other).is_err(),
                "a receipt verified for another transaction"
            );
        }
    }
}

/// Certified receipts (`/v1/tx`, receipt files; JSON): the certificate,
/// then the receipt's Merkle proof against the certified receipts root.
pub fn certified_receipt(data: &[u8]) {
    let Ok(r) = serde_json::from_slice::<CertifiedReceipt>(data) else {
        return;
    };
    json_stable(&r, "certified receipt");
    certified_receipt_next(&r);
}

/// Checks a signed fragment as a client does: the signature of the replica
/// it names, then the fragment as a capsule fragment of the fixed records.
pub(crate) fn signed_fragment_next(f: &SignedFragment) {
    let fx = fixture();
    for i in 0..fx.set_info.n() as u16 {
        let key = fx.set_info.key(ReplicaId(i)).expect("in the set");
        let ok = f.verify(key, &fx.retrieve_tx, &fx.grant, ReplicaId(i));
        if ok {
            assert_eq!(f.replica, ReplicaId(i));
        }
    }
    crate::pre_targets::capsule_frag_next(&fx.umbral, &f.fragment);
    crate::pre_targets::capsule_frag_next(&fx.recrypt, &f.fragment);
}

/// Signed capsule fragments (in retrieval answers; JSON): the replica's
/// signature, then the fragment under both schemes.
pub fn signed_fragment(data: &[u8]) {
    let Ok(f) = serde_json::from_slice::<SignedFragment>(data) else {
        return;
    };
    json_stable(&f, "signed fragment");
    signed_fragment_next(&f);
}

/// Every postcard decoder of bytes that are hashed, signed or proven,
/// refusing bytes that are not the canonical encoding of what they decode
/// to: each says it decodes canonical bytes ("two replicas that hold equal
/// values hold equal bytes", `rr_core::codec`). Calls are decoded only
/// inside transactions.
pub fn canonical_encoding(data: &[u8]) {
    use crate::check::canonical;
    if let Ok(v) = SignedTransaction::from_bytes(data) {
        canonical(data, &v, "transaction");
    }
    if let Ok(v) = Block::from_bytes(data) {
        canonical(data, &v, "block");
    }
    if let Ok(v) = Receipt::from_bytes(data) {
        canonical(data, &v, "receipt");
    }
    if let Ok(v) = RecordInfo::from_bytes(data) {
        canonical(data, &v, "record");
    }
    if let Ok(v) = GrantInfo::from_bytes(data) {
        canonical(data, &v, "grant");
    }
    if let Ok(v) = AuditEntry::from_bytes(data) {
        canonical(data, &v, "audit entry");
    }
    if let Ok(v) = LedgerHeader::from_bytes(data) {
        canonical(data, &v, "ledger header");
    }
    if let Ok(v) = Certificate::from_bytes(data) {
        canonical(data, &v, "certificate");
    }
    if let Ok(v) = rr_consensus::pbft::SignedMessage::from_bytes(data) {
        canonical(data, &v, "replica message");
    }
}
