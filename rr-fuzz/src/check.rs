//! Round-trip checks shared by the targets, and the re-signing that lets
//! fuzzed certificates and messages reach the checks behind their signatures.

use std::fmt::Debug;

use rr_consensus::pbft::{Payload, SignedMessage};
use rr_core::cert::Certificate;
use rr_core::{codec, SignedTransaction};
use serde::{de::DeserializeOwned, Serialize};

use crate::fixture::{account, fixture};

/// A value decoded from postcard bytes: re-encoding it and decoding the
/// result gives it back, and re-encoding that gives the same bytes again
/// (stable, whether or not the fuzzed bytes were canonical).
pub(crate) fn postcard_stable<T>(value: &T, decode: impl Fn(&[u8]) -> Option<T>, what: &str)
where
    T: Serialize + PartialEq + Debug,
{
    let once = codec::encode(value);
    let back = decode(&once)
        .unwrap_or_else(|| panic!("{what}: its own canonical encoding does not decode"));
    assert_eq!(&back, value, "{what}: decode(encode(v)) != v");
    assert_eq!(
        codec::encode(&back),
        once,
        "{what}: the canonical encoding is not stable"
    );
}

/// A value decoded from JSON: its JSON decodes back to it.
pub(crate) fn json_stable<T>(value: &T, what: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let json = serde_json::to_vec(value)
        .unwrap_or_else(|e| panic!("{what}: a decoded value does not encode to JSON: {e}"));
    let back: T = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "{what}: its own JSON does not decode: {e}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(&back, value, "{what}: from_json(to_json(v)) != v");
}

/// Bytes that decoded must be the canonical encoding of what they decoded
/// to: the decoders promise canonical bytes (`rr_core::codec`).
pub(crate) fn canonical<T: Serialize>(bytes: &[u8], value: &T, what: &str) {
    let again = codec::encode(value);
    assert!(
        again == bytes,
        "{what}: accepted non-canonical bytes\n  input:      {}\n  re-encoded: {}",
        hex::encode(bytes),
        hex::encode(&again)
    );
}

/// `cert` with every signature of a replica of the fixed set replaced by a
/// valid one, if its header names the fixed set; `None` otherwise.
pub(crate) fn resign_certificate(cert: &Certificate) -> Option<Certificate> {
    let fx = fixture();
    if cert.header.replica_set != fx.set_info.digest() {
        return None;
    }
    let mut out = cert.clone();
    for s in &mut out.signatures {
        if let Some(k) = fx.replica_keys.get(usize::from(s.replica.0)) {
            s.signature = out.header.sign(k).to_vec();
        }
    }
    Some(out)
}

/// What [`Certificate::verify`] must say of a certificate whose signatures
/// of replicas of the fixed set are all valid: whether its signers are
/// distinct replicas of the set, at least a quorum of them.
pub(crate) fn resigned_should_verify(cert: &Certificate) -> bool {
    let set = &fixture().set_info;
    let mut seen = std::collections::BTreeSet::new();
    cert.signatures
        .iter()
        .all(|s| usize::from(s.replica.0) < set.n() && seen.insert(s.replica))
        && seen.len() >= set.quorum()
}

/// Re-signs the client transactions of the fixed client (Alice).
pub(crate) fn resign_txs(txs: &mut [SignedTransaction]) {
    let fx = fixture();
    let alice = account(&fx.alice);
    for tx in txs {
        if tx.body.signer == alice {
            *tx = tx.body.clone().sign(&fx.alice);
        }
    }
}

/// Re-signs `m` and the messages inside it, innermost first, for every
/// sender in the fixed set, down to `depth` levels (messages nest at most
/// three levels in the protocol; deeper ones are left as they are).
pub(crate) fn resign_message(m: &mut SignedMessage, depth: usize) {
    if depth == 0 {
        return;
    }
    match &mut m.payload {
        Payload::PrePrepare(pp) => resign_txs(&mut pp.batch.txs),
        Payload::Forward(txs) => resign_txs(txs),
        Payload::ViewChange(vc) => {
            if let Some(c) = &mut vc.checkpoint {
                for v in &mut c.votes {
                    resign_message(v, depth - 1);
                }
            }
            for pc in &mut vc.prepared {
                resign_message(&mut pc.pre_prepare, depth - 1);
                for p in &mut pc.prepares {
                    resign_message(p, depth - 1);
                }
            }
        }
        Payload::NewView(nv) => {
            for v in nv.view_changes.iter_mut().chain(&mut nv.pre_prepares) {
                resign_message(v, depth - 1);
            }
        }
        Payload::Blocks(reply) => {
            let votes = match &mut reply.proof {
                rr_consensus::pbft::message::Proof::Checkpoint(c) => &mut c.votes,
                rr_consensus::pbft::message::Proof::Commit(c) => &mut c.commits,
            };
            for v in votes {
                resign_message(v, depth - 1);
            }
        }
        _ => {}
    }
    if let Some(key) = fixture().replica_key(m.from) {
        let payload = std::mem::replace(
            &mut m.payload,
            Payload::Fetch { from: 0 }, // replaced right away
        );
        *m = SignedMessage::sign(&key, payload);
    }
}
