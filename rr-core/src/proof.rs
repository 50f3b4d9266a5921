//! Answers a client can check without trusting the replica that sent them.
//!
//! - A [`StateAnswer`] is a certificate of the ledger at some height and
//!   state entries, each with a sparse Merkle proof ([`crate::smt`]) against
//!   the certified state root: a value, or the proof that there is none.
//!   [`StateAnswer::verify`] checks all of it against the replica set the
//!   client trusts and gives a [`VerifiedState`], whose typed getters
//!   ([`VerifiedState::record`], [`VerifiedState::grant`], ...) decode the
//!   values and refuse a key the answer did not prove.
//! - A [`CertifiedReceipt`] is a transaction's receipt with a Merkle proof
//!   ([`crate::merkle`]) against the receipts root of its block's certified
//!   header.
//!
//! Both are self-contained: with the replica set's public keys anyone can
//! check them offline, long after they were served.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::block::{AuditEntry, GrantInfo, Receipt, RecordInfo};
use crate::cert::{CertCheck, CertError, Certificate, CertifiedHeader};
use crate::error::DecodeError;
use crate::ids::{AccountId, GrantId, RecordId, TxId};
use crate::merkle::MerkleProof;
use crate::smt::{self, SmtProof};
use crate::state::{keys, CountKind, Table};

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The certificate does not certify its header for the trusted set.
    #[error("its certificate does not hold: {0}")]
    Certificate(#[from] CertError),
    /// A state entry's proof does not lead to the certified state root.
    #[error("its proof of {table:?} entry {key} does not hold against the certified state root: {reason}")]
    StateProof {
        /// The table.
        table: Table,
        /// The key, hex.
        key: String,
        /// Why.
        reason: String,
    },
    /// The answer does not prove an entry the caller needs.
    #[error("it does not prove {table:?} entry {key}")]
    Missing {
        /// The table.
        table: Table,
        /// The key, hex.
        key: String,
    },
    /// A proven value does not decode, or contradicts its key.
    #[error("a proven value is malformed: {0}")]
    Decode(#[from] DecodeError),
    /// A receipt's proof does not lead to its block's certified receipts root.
    #[error("its receipt proof does not hold: {0}")]
    ReceiptProof(String),
    /// A receipt for another transaction, or another block, than claimed.
    #[error("{0}")]
    WrongReceipt(String),
}

/// One state entry and its proof: `value` is what `table` holds under
/// `key` (`None`: nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvenEntry {
    /// The table.
    pub table: Table,
    /// The key.
    #[serde(with = "crate::codec::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^([0-9a-f]{2})*$"))]
    pub key: Vec<u8>,
    /// The value, or `None` if the table holds nothing under the key.
    #[serde(with = "crate::codec::hex_bytes_opt", default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^([0-9a-f]{2})*$"))]
    pub value: Option<Vec<u8>>,
    /// Inclusion (or exclusion) proof against the state root.
    pub proof: SmtProof,
}

impl ProvenEntry {
    /// Checks the proof against `root`.
    pub fn verify(&self, root: &crate::ids::Digest) -> Result<(), VerifyError> {
        let key = smt::key_hash(self.table.id(), &self.key);
        let value = self.value.as_deref().map(smt::value_hash);
        self.proof
            .verify(root, &key, value.as_ref())
            .map_err(|e| VerifyError::StateProof {
                table: self.table,
                key: hex::encode(&self.key),
                reason: e.to_string(),
            })
    }
}

/// A certified header and state entries proven against its state root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateAnswer {
    /// The certificate of the header the entries are proven against.
    pub certificate: Certificate,
    /// The entries.
    pub entries: Vec<ProvenEntry>,
}

impl StateAnswer {
    /// Checks the certificate against the trusted replica set (`by`: the
    /// set itself, or a [`crate::cert::CertCache`] of it) and every entry's
    /// proof against its state root.
    pub fn verify(&self, by: &(impl CertCheck + ?Sized)) -> Result<VerifiedState, VerifyError> {
        let header = by.check(&self.certificate)?;
        let root = header.header().state_root;
        let mut entries = BTreeMap::new();
        for e in &self.entries {
            e.verify(&root)?;
            entries.insert((e.table, e.key.clone()), e.value.clone());
        }
        Ok(VerifiedState { header, entries })
    }

    /// The height the entries are proven at.
    pub fn height(&self) -> u64 {
        self.certificate.header.height
    }
}

/// State entries whose proofs held against a certified header: made only by
/// [`StateAnswer::verify`]. Its getters refuse a key the answer did not
/// prove ([`VerifyError::Missing`]), so "not in the answer" is never taken
/// for "not on the ledger".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedState {
    header: CertifiedHeader,
    entries: BTreeMap<(Table, Vec<u8>), Option<Vec<u8>>>,
}

fn missing(table: Table, key: &[u8]) -> VerifyError {
    VerifyError::Missing {
        table,
        key: hex::encode(key),
    }
}

fn contradicts(what: &'static str, reason: String) -> VerifyError {
    VerifyError::Decode(DecodeError::Invalid { what, reason })
}

impl VerifiedState {
    /// The certified header.
    pub fn header(&self) -> &CertifiedHeader {
        &self.header
    }

    /// Height of the certified header.
    pub fn height(&self) -> u64 {
        self.header.height()
    }

    /// The proven value under `key` (`None`: proven absent).
    pub fn value(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>, VerifyError> {
        self.entries
            .get(&(table, key.to_vec()))
            .map(|v| v.as_deref())
            .ok_or_else(|| missing(table, key))
    }

    /// A record, or `None` if the ledger holds none with this id.
    pub fn record(&self, id: &RecordId) -> Result<Option<RecordInfo>, VerifyError> {
        let Some(bytes) = self.value(Table::Records, &keys::record(id))? else {
            return Ok(None);
        };
        let record = RecordInfo::from_bytes(bytes)?;
        if record.id != *id {
            return Err(contradicts(
                "record",
                format!("stored under {id} but names itself {}", record.id),
            ));
        }
        Ok(Some(record))
    }

    /// A grant, or `None`.
    pub fn grant(&self, id: &GrantId) -> Result<Option<GrantInfo>, VerifyError> {
        let Some(bytes) = self.value(Table::Grants, &keys::grant(id))? else {
            return Ok(None);
        };
        let grant = GrantInfo::from_bytes(bytes)?;
        if grant.id != *id {
            return Err(contradicts(
                "grant",
                format!("stored under {id} but names itself {}", grant.id),
            ));
        }
        Ok(Some(grant))
    }

    /// The count of the listing `kind` of `id`.
    pub fn count(&self, kind: CountKind, id: &[u8; 32]) -> Result<u64, VerifyError> {
        Ok(keys::decode_count(
            self.value(Table::Counts, &keys::count(kind, id))?,
        )?)
    }

    /// Entry `seq` of a record's audit trail.
    pub fn audit_entry(
        &self,
        record: &RecordId,
        seq: u64,
    ) -> Result<Option<AuditEntry>, VerifyError> {
        let Some(bytes) = self.value(Table::Audit, &keys::audit(record, seq))? else {
            return Ok(None);
        };
        let entry = AuditEntry::from_bytes(bytes)?;
        if entry.record != *record || entry.seq != seq {
            return Err(contradicts(
                "audit entry",
                format!(
                    "stored as {record} #{seq} but names itself {} #{}",
                    entry.record, entry.seq
                ),
            ));
        }
        Ok(Some(entry))
    }

    /// A record's audit trail from `from`, `limit` entries at most (fewer at
    /// its end): every entry below the record's `audit_len` must be proven.
    pub fn audit_trail(
        &self,
        record: &RecordId,
        from: u64,
        limit: u64,
    ) -> Result<Vec<AuditEntry>, VerifyError> {
        let info = self
            .record(record)?
            .ok_or_else(|| missing(Table::Records, &keys::record(record)))?;
        let end = info.audit_len.min(from.saturating_add(limit));
        (from..end)
            .map(|seq| {
                self.audit_entry(record, seq)?
                    .ok_or_else(|| missing(Table::Audit, &keys::audit(record, seq)))
            })
            .collect()
    }

    /// Every member of a counted listing: the count, then each index entry
    /// (a 32-byte id) below it.
    fn listing(
        &self,
        kind: CountKind,
        id: &[u8; 32],
        table: Table,
        entry_key: impl Fn(u64) -> Vec<u8>,
    ) -> Result<Vec<[u8; 32]>, VerifyError> {
        let n = self.count(kind, id)?;
        (0..n)
            .map(|i| {
                let key = entry_key(i);
                let v = self
                    .value(table, &key)?
                    .ok_or_else(|| missing(table, &key))?;
                v.try_into().map_err(|_| {
                    contradicts(
                        "listing entry",
                        format!("{} bytes, not a 32-byte id", v.len()),
                    )
                })
            })
            .collect()
    }

    /// The records `owner` registered, in registration order, complete.
    pub fn records_of(&self, owner: &AccountId) -> Result<Vec<RecordInfo>, VerifyError> {
        self.listing(
            CountKind::OwnerRecords,
            &owner.0,
            Table::OwnerRecords,
            |i| keys::owner_record(owner, i),
        )?
        .into_iter()
        .map(|id| {
            let id = RecordId(id);
            self.record(&id)?
                .ok_or_else(|| missing(Table::Records, &keys::record(&id)))
        })
        .collect()
    }

    /// The grants of `record`, in the order they were made, complete.
    pub fn grants_of(&self, record: &RecordId) -> Result<Vec<GrantInfo>, VerifyError> {
        self.grants(self.listing(
            CountKind::RecordGrants,
            &record.0,
            Table::RecordGrants,
            |i| keys::record_grant(record, i),
        )?)
    }

    /// The grants made to `grantee`, in order, complete.
    pub fn grants_held_by(&self, grantee: &AccountId) -> Result<Vec<GrantInfo>, VerifyError> {
        self.grants(self.listing(
            CountKind::GranteeGrants,
            &grantee.0,
            Table::GranteeGrants,
            |i| keys::grantee_grant(grantee, i),
        )?)
    }

    fn grants(&self, ids: Vec<[u8; 32]>) -> Result<Vec<GrantInfo>, VerifyError> {
        ids.into_iter()
            .map(|id| {
                let id = GrantId(id);
                self.grant(&id)?
                    .ok_or_else(|| missing(Table::Grants, &keys::grant(&id)))
            })
            .collect()
    }
}

/// A receipt and the proof that it is the `index`-th receipt of the block
/// its certificate's header certifies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertifiedReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// Its Merkle proof against the header's receipts root.
    pub proof: MerkleProof,
    /// The certificate of the header of the receipt's block.
    pub certificate: Certificate,
}

impl CertifiedReceipt {
    /// Checks that the certificate holds for the trusted replica set (`by`:
    /// the set itself, or a [`crate::cert::CertCache`] of it), that it is the
    /// header of the receipt's block, and that the receipt is in that block's
    /// receipts at its index.
    pub fn verify(&self, by: &(impl CertCheck + ?Sized)) -> Result<CertifiedHeader, VerifyError> {
        let header = by.check(&self.certificate)?;
        let h = header.header();
        let r = &self.receipt;
        if r.context.height != h.height || r.context.time != h.time {
            return Err(VerifyError::WrongReceipt(format!(
                "the receipt is of height {} but its certificate of height {}",
                r.context.height, h.height
            )));
        }
        if self.proof.index != u64::from(r.index) || self.proof.size != u64::from(h.receipts) {
            return Err(VerifyError::WrongReceipt(format!(
                "the receipt's proof is for position {} of {}, the receipt is #{} of a block of {}",
                self.proof.index, self.proof.size, r.index, h.receipts
            )));
        }
        self.proof
            .verify(&h.receipts_root, &crate::merkle::leaf_hash(&r.to_bytes()))
            .map_err(|e| VerifyError::ReceiptProof(e.to_string()))?;
        Ok(header)
    }

    /// Checks it ([`CertifiedReceipt::verify`]) and that it is the receipt
    /// of transaction `tx`.
    pub fn verify_for(
        &self,
        by: &(impl CertCheck + ?Sized),
        tx: &TxId,
    ) -> Result<CertifiedHeader, VerifyError> {
        if self.receipt.tx != *tx {
            return Err(VerifyError::WrongReceipt(format!(
                "the receipt is for transaction {}, not {tx}",
                self.receipt.tx
            )));
        }
        self.verify(by)
    }
}

/// Domain separator of capsule fragment signatures.
pub const FRAGMENT_DOMAIN: &[u8] = b"resilient-records/capsule-fragment/v1\0";

/// Replica `replica`'s capsule fragment for one retrieval, signed with its
/// replica key over the retrieve transaction, the grant, its index and the
/// fragment. A client takes fragment `i` only from a signature of replica
/// `i`'s key: a replica cannot pass its fragments off as another's, nor
/// replay one served for another call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedFragment {
    /// The replica that re-encrypted.
    pub replica: crate::ReplicaId,
    /// The capsule fragment, encoded by the record's scheme.
    #[serde(with = "crate::codec::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^([0-9a-f]{2})*$"))]
    pub fragment: Vec<u8>,
    /// ed25519 over [`SignedFragment::signing_bytes`] (64 bytes).
    #[serde(with = "crate::codec::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9a-f]{128}$"))]
    pub signature: Vec<u8>,
}

impl SignedFragment {
    /// What the replica signs: [`FRAGMENT_DOMAIN`], then the canonical
    /// encoding of (retrieve transaction id, grant id, replica, fragment).
    pub fn signing_bytes(
        tx: &TxId,
        grant: &GrantId,
        replica: crate::ReplicaId,
        fragment: &[u8],
    ) -> Vec<u8> {
        let mut m = FRAGMENT_DOMAIN.to_vec();
        m.extend_from_slice(&crate::codec::encode(&(tx, grant, replica, fragment)));
        m
    }

    /// Replica `replica` signs `fragment` for retrieval `tx` through `grant`.
    pub fn sign(
        key: &ed25519_dalek::SigningKey,
        tx: &TxId,
        grant: &GrantId,
        replica: crate::ReplicaId,
        fragment: Vec<u8>,
    ) -> Self {
        use ed25519_dalek::Signer;
        let signature = key
            .sign(&Self::signing_bytes(tx, grant, replica, &fragment))
            .to_bytes()
            .to_vec();
        Self {
            replica,
            fragment,
            signature,
        }
    }

    /// Whether this is replica `replica`'s signature (`key` being its key)
    /// over this fragment for `tx` and `grant`.
    pub fn verify(
        &self,
        key: &AccountId,
        tx: &TxId,
        grant: &GrantId,
        replica: crate::ReplicaId,
    ) -> bool {
        self.replica == replica
            && crate::sig::verify(
                &key.0,
                &self.signature,
                &Self::signing_bytes(tx, grant, replica, &self.fragment),
            )
    }
}
