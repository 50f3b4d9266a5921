//! Offline receipts: a self-contained proof a patient can hand to an
//! insurer or a court, checked with no network.
//!
//! A receipt file holds the replica set's public keys and one proof:
//!
//! - `transaction`: a call's certified receipt (what happened to it, at
//!   which height);
//! - `grant`: a grant's certified state (to whom, for what, until when,
//!   whether and when it was revoked, which replicas confirmed erasing
//!   their key fragment);
//! - `record`: a record's certified state and its whole audit trail (every
//!   access, refused ones included: every disclosure).
//!
//! Each is a certificate (a quorum of the replicas' signatures over a
//! ledger header) and Merkle proofs against it, exactly as the replicas
//! served them. [`ReceiptFile::verify`] checks them against the replica set
//! the verifier trusts (a cluster's `cluster.json`, or a dev node's key) or,
//! failing that, the one the file names, and says what the proof shows.
//!
//! The file is JSON:
//!
//! ```json
//! {
//!   "format": "resilient-records receipt v1",
//!   "replica_set": { "keys": ["<hex>", "..."] },
//!   "exported_at": 1764900000000,
//!   "proof": { "kind": "grant", "grant": "<hex>", "state": { "certificate": {...}, "entries": [...] } }
//! }
//! ```

use serde::{Deserialize, Serialize};

use rr_core::cert::{CertifiedHeader, ReplicaSetInfo};
use rr_core::proof::{CertifiedReceipt, StateAnswer, VerifyError};
use rr_core::{
    AuditEntry, CallOutput, GrantId, GrantInfo, GrantStatus, Outcome, RecordId, RecordInfo,
    Timestamp, TxId,
};

/// The format marker of receipt files.
pub const FORMAT: &str = "resilient-records receipt v1";

/// The largest receipt file read (an audit trail of many thousand entries).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// A receipt file. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptFile {
    /// [`FORMAT`].
    pub format: String,
    /// The replica set that certified the proof, as the exporter trusted it.
    pub replica_set: ReplicaSetInfo,
    /// When it was exported (the exporter's clock, unix ms; not proven).
    pub exported_at: Timestamp,
    /// The proof.
    pub proof: Proof,
}

/// What a receipt file proves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Proof {
    /// A transaction's outcome.
    Transaction {
        /// The transaction.
        tx: TxId,
        /// Its certified receipt.
        receipt: CertifiedReceipt,
    },
    /// A grant's state.
    Grant {
        /// The grant.
        grant: GrantId,
        /// Its certified state.
        state: StateAnswer,
    },
    /// A record and its whole audit trail.
    Record {
        /// The record.
        record: RecordId,
        /// Its certified state and trail.
        state: StateAnswer,
    },
}

/// Why a receipt file proves nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Not a receipt file (or another version).
    #[error("not a receipt file: {0}")]
    Format(String),
    /// The file's replica set is not the one the verifier trusts.
    #[error("the receipt names replica set {found}, not the trusted one ({expected}): it was certified by other replicas, or the file was changed")]
    OtherReplicaSet {
        /// The trusted set's digest.
        expected: rr_core::Digest,
        /// The file's.
        found: rr_core::Digest,
    },
    /// A certificate or proof does not hold.
    #[error("the proof does not hold: {0}")]
    Invalid(#[from] VerifyError),
}

/// What a receipt file was checked to prove.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// One line saying what is proven.
    pub summary: String,
    /// The details, one fact a line.
    pub details: Vec<String>,
    /// The certified height.
    pub height: u64,
    /// The certified block time.
    pub time: Timestamp,
    /// The replicas whose signatures certify it.
    pub certified_by: Vec<u16>,
    /// Whether the replica set was the verifier's own trusted one (`false`:
    /// the one the file names, which proves only that those keys signed).
    pub trusted_set: bool,
}

impl ReceiptFile {
    /// A receipt file of `proof`, certified by `replica_set`.
    pub fn new(replica_set: ReplicaSetInfo, proof: Proof) -> Self {
        Self {
            format: FORMAT.into(),
            replica_set,
            exported_at: Timestamp::from_system_time(std::time::SystemTime::now()),
            proof,
        }
    }

    /// Parses a file's bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let file: Self =
            serde_json::from_slice(bytes).map_err(|e| ReceiptError::Format(e.to_string()))?;
        if file.format != FORMAT {
            return Err(ReceiptError::Format(format!(
                "format {:?}, this build reads {FORMAT:?}",
                file.format
            )));
        }
        Ok(file)
    }

    /// The file's JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a receipt file serializes");
        v.push(b'\n');
        v
    }

    /// Checks every certificate and proof against `trusted` (or, if `None`,
    /// the replica set the file names) and says what they prove.
    pub fn verify(&self, trusted: Option<&ReplicaSetInfo>) -> Result<Statement, ReceiptError> {
        if self.format != FORMAT {
            return Err(ReceiptError::Format(format!(
                "format {:?}, this build reads {FORMAT:?}",
                self.format
            )));
        }
        let set = match trusted {
            Some(t) if t.digest() != self.replica_set.digest() => {
                return Err(ReceiptError::OtherReplicaSet {
                    expected: t.digest(),
                    found: self.replica_set.digest(),
                })
            }
            Some(t) => t,
            None => &self.replica_set,
        };
        let (summary, details, header) = match &self.proof {
            Proof::Transaction { tx, receipt } => {
                let header = receipt.verify_for(set, tx)?;
                let (summary, details) = describe_receipt(tx, &receipt.receipt);
                (summary, details, header)
            }
            Proof::Grant { grant, state } => {
                let verified = state.verify(set)?;
                let header = verified.header().clone();
                let (summary, details) = match verified.grant(grant)? {
                    Some(g) => describe_grant(&g, &header),
                    None => (
                        format!(
                            "there is no grant {grant} on the ledger at height {}",
                            header.height()
                        ),
                        Vec::new(),
                    ),
                };
                (summary, details, header)
            }
            Proof::Record { record, state } => {
                let verified = state.verify(set)?;
                let header = verified.header().clone();
                let (summary, details) = match verified.record(record)? {
                    Some(r) => {
                        let trail = verified.audit_trail(record, 0, u64::MAX)?;
                        describe_record(&r, &trail, &header)
                    }
                    None => (
                        format!(
                            "there is no record {record} on the ledger at height {}",
                            header.height()
                        ),
                        Vec::new(),
                    ),
                };
                (summary, details, header)
            }
        };
        Ok(Statement {
            summary,
            details,
            height: header.height(),
            time: header.time(),
            certified_by: header.signers().iter().map(|r| r.0).collect(),
            trusted_set: trusted.is_some(),
        })
    }
}

fn short<T: std::fmt::Display>(id: T) -> String {
    id.to_string().chars().take(12).collect()
}

fn describe_receipt(tx: &TxId, receipt: &rr_core::Receipt) -> (String, Vec<String>) {
    let at = format!(
        "at height {} ({})",
        receipt.context.height, receipt.context.time
    );
    let summary = match &receipt.outcome {
        Outcome::Refused(r) => format!("transaction {} was refused {at}: {}", short(tx), r),
        Outcome::Ok(out) => {
            let what = match out {
                CallOutput::Registered { record } => format!("registered record {record}"),
                CallOutput::Granted { grant } => format!("made grant {grant}"),
                CallOutput::Retrieved { record, grant } => {
                    format!("retrieved record {record} through grant {grant}")
                }
                CallOutput::Revoked { grant } => format!("revoked grant {grant}"),
                CallOutput::ErasureConfirmed { grant, replica } => {
                    format!("confirmed {replica}'s erasure of its key fragment of grant {grant}")
                }
                other => format!("{other:?}"),
            };
            format!("transaction {} {what} {at}", short(tx))
        }
    };
    (
        summary,
        vec![
            format!("transaction: {tx}"),
            format!("position in its block: {}", receipt.index),
        ],
    )
}

fn describe_grant(g: &GrantInfo, header: &CertifiedHeader) -> (String, Vec<String>) {
    let status = match g.status {
        GrantStatus::Revoked { at } => {
            format!("was revoked at height {} ({})", at.height, at.time)
        }
        GrantStatus::Active if g.expires_at.is_some_and(|e| header.time() >= e) => {
            format!("expired at {}", g.expires_at.expect("checked"))
        }
        GrantStatus::Active => format!("is active at height {}", header.height()),
    };
    let summary = format!(
        "grant {} of record {} to {} {status}",
        short(g.id),
        short(g.record),
        short(g.grantee)
    );
    let mut details = vec![
        format!("grant: {}", g.id),
        format!("record: {}", g.record),
        format!("owner: {}", g.owner),
        format!("grantee: {}", g.grantee),
        format!("purpose: {}", g.purpose),
        format!(
            "granted at height {} ({})",
            g.granted.height, g.granted.time
        ),
        format!("threshold: {}", g.threshold),
        format!(
            "expires: {}",
            g.expires_at.map_or("never".to_string(), |e| e.to_string())
        ),
    ];
    if !g.erased_by.is_empty() {
        details.push(format!(
            "replicas that confirmed erasing their key fragment: {}",
            g.erased_by
                .iter()
                .map(|r| r.0.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    (summary, details)
}

fn describe_record(
    r: &RecordInfo,
    trail: &[AuditEntry],
    header: &CertifiedHeader,
) -> (String, Vec<String>) {
    let retrievals = trail
        .iter()
        .filter(|e| e.action == rr_core::AuditAction::Retrieve && e.refused.is_none())
        .count();
    let summary = format!(
        "record {} of {} has {} audit entries at height {}, {retrievals} of them allowed retrievals: this is its whole trail",
        short(r.id),
        short(r.owner),
        trail.len(),
        header.height()
    );
    let mut details = vec![
        format!("record: {}", r.id),
        format!("owner: {}", r.owner),
        format!(
            "registered at height {} ({})",
            r.registered.height, r.registered.time
        ),
    ];
    for e in trail {
        details.push(format!(
            "#{} height {} ({}) {} {} grant {} purpose {} {}",
            e.seq,
            e.at.height,
            e.at.time,
            e.actor,
            e.action.as_str(),
            e.grant.map_or("-".to_string(), |g| g.to_string()),
            e.purpose
                .as_ref()
                .map_or("-".to_string(), |p| p.to_string()),
            match e.refused {
                None => "ok".to_string(),
                Some(code) => format!("REFUSED ({code})"),
            }
        ));
    }
    (summary, details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{collect, Client, DevConfig, GrantOptions, Identity, Node};
    use rr_core::{byte_stream_of, Purpose};
    use rr_pre::Umbral;
    use serde_json::Value;

    /// Flips the last hex digit of the string at `path` (a JSON pointer).
    fn flip(v: &Value, path: &str) -> Value {
        let mut v = v.clone();
        let s = v.pointer_mut(path).unwrap_or_else(|| panic!("no {path}"));
        let text = s.as_str().expect("a hex string").to_string();
        let last = text.chars().last().unwrap();
        let other = if last == '0' { '1' } else { '0' };
        *s = Value::String(format!("{}{other}", &text[..text.len() - 1]));
        v
    }

    fn refused(v: &Value, trusted: Option<&ReplicaSetInfo>) -> bool {
        match serde_json::from_value::<ReceiptFile>(v.clone()) {
            Err(_) => true,
            Ok(f) => f.verify(trusted).is_err(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exported_receipts_verify_offline_and_every_tampered_field_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::open_dev(DevConfig::new(dir.path())).await.unwrap();
        let alice = Client::in_process(&node, Identity::generate(&Umbral));
        let bob = Client::in_process(&node, Identity::generate(&Umbral));
        let put = alice
            .put(byte_stream_of(b"scan".to_vec()), "text/plain")
            .await
            .unwrap();
        let treatment = Purpose::new("treatment").unwrap();
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
            .unwrap();
        collect(bob.retrieve(grant, treatment).await.unwrap())
            .await
            .unwrap();
        let revoke = alice
            .identity()
            .sign(rr_core::Call::Revoke(rr_core::Revoke { grant }));
        let revoked = alice.replicas().submit(revoke.clone()).await.unwrap();
        let set = node.replica_set().clone();

        // Exported while the node runs; checked once it is gone.
        let grant_file = ReceiptFile::new(
            set.clone(),
            Proof::Grant {
                grant,
                state: alice
                    .replicas()
                    .grant(
                        grant,
                        alice.authorization(crate::Authorization::grant_scope(&grant)),
                    )
                    .await
                    .unwrap()
                    .answer,
            },
        );
        let record_file = ReceiptFile::new(
            set.clone(),
            Proof::Record {
                record: put.record_id,
                state: alice.audit_certified(put.record_id).await.unwrap().answer,
            },
        );
        let tx_file = ReceiptFile::new(
            set.clone(),
            Proof::Transaction {
                tx: revoke.id(),
                receipt: revoked.certified.clone(),
            },
        );
        node.shutdown().await.unwrap();
        drop((node, alice, bob));

        let s = grant_file.verify(Some(&set)).unwrap();
        assert!(s.summary.contains("was revoked at height"), "{}", s.summary);
        assert!(s.trusted_set);
        assert_eq!(s.certified_by, vec![0]);
        let s = record_file.verify(Some(&set)).unwrap();
        assert!(s.summary.contains("4 audit entries"), "{}", s.summary);
        assert!(
            s.details.iter().any(|d| d.contains("revoke")),
            "{:?}",
            s.details
        );
        let s = tx_file.verify(None).unwrap();
        assert!(s.summary.contains("revoked grant"), "{}", s.summary);
        assert!(!s.trusted_set);
        // JSON round trip.
        let back = ReceiptFile::from_json(&grant_file.to_json()).unwrap();
        assert_eq!(back, grant_file);

        // Another node's key: refused as another replica set.
        let stranger = ReplicaSetInfo::new(vec![rr_core::AccountId::from_verifying_key(
            &ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key(),
        )])
        .unwrap();
        assert!(matches!(
            grant_file.verify(Some(&stranger)),
            Err(ReceiptError::OtherReplicaSet { .. })
        ));

        // Every field that carries meaning, tampered: refused.
        let g = serde_json::to_value(&grant_file).unwrap();
        for path in [
            "/proof/state/certificate/header/state_root",
            "/proof/state/certificate/header/block",
            "/proof/state/certificate/header/parent",
            "/proof/state/certificate/signatures/0/signature",
            "/proof/state/entries/0/value",
            "/proof/state/entries/0/key",
            "/proof/grant",
            "/replica_set/keys/0",
        ] {
            assert!(!refused(&g, Some(&set)), "the untampered file is refused");
            let t = flip(&g, path);
            assert!(refused(&t, Some(&set)), "{path} tampered was accepted");
        }
        let mut t = g.clone();
        *t.pointer_mut("/proof/state/certificate/header/height")
            .unwrap() = Value::from(1);
        assert!(refused(&t, Some(&set)));
        let mut t = g.clone();
        t.pointer_mut("/proof/state/certificate/signatures")
            .unwrap()
            .as_array_mut()
            .unwrap()
            .clear();
        assert!(refused(&t, Some(&set)));
        let t = flip(&g, "/proof/state/entries/0/proof/siblings/0");
        if g.pointer("/proof/state/entries/0/proof/siblings/0")
            .is_some()
        {
            assert!(refused(&t, Some(&set)));
        }

        let r = serde_json::to_value(&record_file).unwrap();
        let last = r["proof"]["state"]["entries"].as_array().unwrap().len() - 1;
        for path in [
            format!("/proof/state/entries/{last}/value"),
            "/proof/record".to_string(),
        ] {
            assert!(refused(&flip(&r, &path), Some(&set)), "{path}");
        }
        // An audit entry dropped: the trail no longer proves complete.
        let mut t = r.clone();
        t["proof"]["state"]["entries"].as_array_mut().unwrap().pop();
        assert!(refused(&t, Some(&set)));

        let x = serde_json::to_value(&tx_file).unwrap();
        for path in [
            "/proof/tx",
            "/proof/receipt/receipt/tx",
            "/proof/receipt/certificate/header/receipts_root",
        ] {
            assert!(refused(&flip(&x, path), Some(&set)), "{path}");
        }
        let mut t = x.clone();
        t["proof"]["receipt"]["receipt"]["outcome"] =
            serde_json::json!({"Refused": {"code": "grant_revoked", "message": "forged"}});
        assert!(refused(&t, Some(&set)));
        let mut t = x;
        t["format"] = Value::String("something else".into());
        assert!(refused(&t, Some(&set)));
    }
}
