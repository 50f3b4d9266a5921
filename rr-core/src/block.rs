//! Blocks, receipts and the ledger's view of records, grants and audit entries.

use serde::{Deserialize, Serialize};

use crate::call::{Purpose, SchemeId, Threshold};
use crate::codec;
use crate::error::DecodeError;
use crate::ids::{AccountId, BlockHash, ContentId, Digest, GrantId, RecordId, Timestamp, TxId};
use crate::tx::SignedTransaction;

/// The largest encoded block accepted (64 MiB).
pub const MAX_BLOCK_BYTES: usize = 64 * 1024 * 1024;

/// Height and time of the block being executed: with the state and the
/// ordered batch, everything execution may depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockContext {
    /// Height (the first block is 1).
    pub height: u64,
    /// Block time, set by the engine (the primary, in PBFT).
    pub time: Timestamp,
}

/// A block header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// Height and time.
    pub context: BlockContext,
    /// Hash of the previous block's header (zero for the first block).
    pub parent: BlockHash,
    /// Hash of the ordered transactions.
    pub txs_digest: Digest,
}

impl BlockHeader {
    /// The block hash.
    pub fn hash(&self) -> BlockHash {
        BlockHash(Digest::of("resilient-records 2026 block header", &codec::encode(self)).0)
    }
}

/// An ordered batch of transactions with its header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Header.
    pub header: BlockHeader,
    /// Transactions, in execution order.
    pub txs: Vec<SignedTransaction>,
}

impl Block {
    /// Builds the block at `context` after `parent` over `txs`.
    pub fn new(context: BlockContext, parent: BlockHash, txs: Vec<SignedTransaction>) -> Self {
        let txs_digest = Self::digest_txs(&txs);
        Self {
            header: BlockHeader {
                context,
                parent,
                txs_digest,
            },
            txs,
        }
    }

    /// Digest of an ordered list of transactions.
    pub fn digest_txs(txs: &[SignedTransaction]) -> Digest {
        Digest::of("resilient-records 2026 block txs", &codec::encode(txs))
    }

    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes canonical bytes and checks the transaction digest.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let block: Block = codec::decode("block", bytes, MAX_BLOCK_BYTES)?;
        if Self::digest_txs(&block.txs) != block.header.txs_digest {
            return Err(DecodeError::Invalid {
                what: "block",
                reason: "transactions do not match the header's digest".into(),
            });
        }
        Ok(block)
    }
}

/// Why a call was refused. The strings of [`ErrorCode::as_str`] are stable:
/// clients may branch on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The nonce was used before by this signer: a replay.
    ReplayedNonce,
    /// The call is malformed (bad threshold, bad key bytes, ...).
    InvalidCall,
    /// No record with this id.
    UnknownRecord,
    /// No grant with this id.
    UnknownGrant,
    /// A record with this id exists already.
    RecordExists,
    /// Only the record's owner may do this.
    NotOwner,
    /// Only the grant's grantee may do this.
    NotGrantee,
    /// The grant was revoked.
    GrantRevoked,
    /// The grant expired.
    GrantExpired,
    /// The retrieval's purpose differs from the grant's.
    PurposeMismatch,
    /// The record's scheme is not one this node serves.
    SchemeMismatch,
    /// Only a replica of this ledger may do this (for itself).
    NotReplica,
    /// A grant's threshold m is below f + 1: f Byzantine replicas could
    /// re-encrypt for it on their own.
    ThresholdTooLow,
    /// A grant of a single-proxy scheme (recrypt: any one replica holds the
    /// whole re-encryption key) on a cluster that tolerates Byzantine
    /// replicas, which its operator has not allowed.
    SingleProxyRefused,
}

impl ErrorCode {
    /// The stable string form, such as `grant_revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ReplayedNonce => "replayed_nonce",
            ErrorCode::InvalidCall => "invalid_call",
            ErrorCode::UnknownRecord => "unknown_record",
            ErrorCode::UnknownGrant => "unknown_grant",
            ErrorCode::RecordExists => "record_exists",
            ErrorCode::NotOwner => "not_owner",
            ErrorCode::NotGrantee => "not_grantee",
            ErrorCode::GrantRevoked => "grant_revoked",
            ErrorCode::GrantExpired => "grant_expired",
            ErrorCode::PurposeMismatch => "purpose_mismatch",
            ErrorCode::SchemeMismatch => "scheme_mismatch",
            ErrorCode::NotReplica => "not_replica",
            ErrorCode::ThresholdTooLow => "threshold_too_low",
            ErrorCode::SingleProxyRefused => "single_proxy_refused",
        }
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const ALL: [ErrorCode; 14] = [
            ErrorCode::ReplayedNonce,
            ErrorCode::InvalidCall,
            ErrorCode::UnknownRecord,
            ErrorCode::UnknownGrant,
            ErrorCode::RecordExists,
            ErrorCode::NotOwner,
            ErrorCode::NotGrantee,
            ErrorCode::GrantRevoked,
            ErrorCode::GrantExpired,
            ErrorCode::PurposeMismatch,
            ErrorCode::SchemeMismatch,
            ErrorCode::NotReplica,
            ErrorCode::ThresholdTooLow,
            ErrorCode::SingleProxyRefused,
        ];
        ALL.into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| DecodeError::Invalid {
                what: "error code",
                reason: format!("unknown code {s:?}"),
            })
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused call: a stable code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Stable code.
    pub code: ErrorCode,
    /// What went wrong, with the ids and times involved.
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for Refusal {}

/// What a successful call produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CallOutput {
    /// A record was registered.
    Registered {
        /// Its id.
        record: RecordId,
    },
    /// A grant was made.
    Granted {
        /// Its id.
        grant: GrantId,
    },
    /// A retrieval was allowed: replicas now answer with capsule fragments.
    Retrieved {
        /// The record.
        record: RecordId,
        /// The grant used.
        grant: GrantId,
    },
    /// A grant was revoked.
    Revoked {
        /// The grant.
        grant: GrantId,
    },
    /// A replica confirmed it erased its key fragment of a revoked grant.
    ErasureConfirmed {
        /// The grant.
        grant: GrantId,
        /// The replica.
        replica: crate::ReplicaId,
    },
}

/// The outcome of one call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It took effect.
    Ok(CallOutput),
    /// It was refused and changed nothing but the audit trail.
    Refused(Refusal),
}

/// The receipt of one executed transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The transaction.
    pub tx: TxId,
    /// Block it was executed in.
    pub context: BlockContext,
    /// Its index in the block.
    pub index: u32,
    /// What happened.
    pub outcome: Outcome,
}

impl Receipt {
    /// The output, or the refusal as an error.
    pub fn into_result(self) -> Result<CallOutput, Refusal> {
        match self.outcome {
            Outcome::Ok(out) => Ok(out),
            Outcome::Refused(r) => Err(r),
        }
    }
}

/// A registered record as the ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordInfo {
    /// Id.
    pub id: RecordId,
    /// Owner.
    pub owner: AccountId,
    /// Content id of the ciphertext envelope.
    pub cid: ContentId,
    /// Envelope size in bytes.
    pub size: u64,
    /// PRE scheme.
    pub scheme: SchemeId,
    /// The record's own PRE public key.
    #[serde(with = "crate::codec::hex_bytes")]
    pub record_key: Vec<u8>,
    /// The encapsulated data key.
    #[serde(with = "crate::codec::hex_bytes")]
    pub capsule: Vec<u8>,
    /// Media type of the plaintext.
    pub media_type: String,
    /// Owner-encrypted metadata.
    #[serde(with = "crate::codec::hex_bytes_opt", default)]
    pub encrypted_metadata: Option<Vec<u8>>,
    /// Block it was registered in.
    pub registered: BlockContext,
    /// Number of audit entries on this record so far.
    pub audit_len: u64,
}

/// Status of a grant as stored. Expiry is not stored: it follows from
/// `expires_at` and the block time of each call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantStatus {
    /// In force (unless expired).
    Active,
    /// Revoked at this block.
    Revoked {
        /// The block of the revocation.
        at: BlockContext,
    },
}

/// A grant as the ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantInfo {
    /// Id.
    pub id: GrantId,
    /// The record.
    pub record: RecordId,
    /// The record's owner (who granted).
    pub owner: AccountId,
    /// The grantee.
    pub grantee: AccountId,
    /// The grantee's PRE public key.
    #[serde(with = "crate::codec::hex_bytes")]
    pub grantee_key: Vec<u8>,
    /// m of n.
    pub threshold: Threshold,
    /// Commitment to each replica's key fragment, in replica order.
    pub fragment_commitments: Vec<Digest>,
    /// Purpose of use.
    pub purpose: Purpose,
    /// Expiry (block time).
    pub expires_at: Option<Timestamp>,
    /// Block it was granted in.
    pub granted: BlockContext,
    /// Status.
    pub status: GrantStatus,
    /// Replicas that confirmed, through consensus, that they erased their
    /// key fragment after the revocation or the expiry (sorted).
    pub erased_by: Vec<crate::ReplicaId>,
    /// The record's scheme is single-proxy (recrypt): any one replica
    /// holding its key fragment can re-encrypt for the grantee on its own,
    /// whatever the threshold says. Allowed on a cluster only where its
    /// operator opted in.
    #[serde(default)]
    pub single_proxy: bool,
}

impl GrantInfo {
    /// Whether the grant works at block time `now`.
    pub fn is_usable_at(&self, now: Timestamp) -> bool {
        matches!(self.status, GrantStatus::Active) && self.expires_at.is_none_or(|e| now < e)
    }
}

/// What an audited call tried to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditAction {
    /// Register.
    Register,
    /// Grant.
    Grant,
    /// Retrieve.
    Retrieve,
    /// Revoke.
    Revoke,
    /// A replica confirmed it erased its key fragment.
    ConfirmErasure,
}

impl AuditAction {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Register => "register",
            AuditAction::Grant => "grant",
            AuditAction::Retrieve => "retrieve",
            AuditAction::Revoke => "revoke",
            AuditAction::ConfirmErasure => "erasure",
        }
    }
}

/// One entry of a record's append-only audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The record.
    pub record: RecordId,
    /// Position in the record's trail, from 0.
    pub seq: u64,
    /// Block (height and time).
    pub at: BlockContext,
    /// Transaction.
    pub tx: TxId,
    /// Who called.
    pub actor: AccountId,
    /// What they tried.
    pub action: AuditAction,
    /// The grant involved, if any.
    pub grant: Option<GrantId>,
    /// Purpose of use stated, if any.
    pub purpose: Option<Purpose>,
    /// `None` if it took effect, else why it was refused.
    pub refused: Option<ErrorCode>,
}

macro_rules! canonical_bytes {
    ($($t:ty => $what:literal, $limit:expr;)*) => {$(
        impl $t {
            /// Canonical bytes.
            pub fn to_bytes(&self) -> Vec<u8> {
                codec::encode(self)
            }
            /// Decodes canonical bytes.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
                codec::decode($what, bytes, $limit)
            }
        }
    )*};
}

canonical_bytes! {
    Receipt => "receipt", 64 * 1024;
    RecordInfo => "record", 128 * 1024;
    GrantInfo => "grant", 128 * 1024;
    AuditEntry => "audit entry", 4 * 1024;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_by_every_decoder() {
        let garbage: [&[u8]; 4] = [&[], &[0xff; 3], &[0x80; 40], b"definitely not postcard"];
        for g in garbage {
            assert!(Block::from_bytes(g).is_err());
            assert!(Receipt::from_bytes(g).is_err());
            assert!(RecordInfo::from_bytes(g).is_err());
            assert!(GrantInfo::from_bytes(g).is_err());
            assert!(AuditEntry::from_bytes(g).is_err());
        }
    }

    #[test]
    fn block_checks_its_digest() {
        let ctx = BlockContext {
            height: 1,
            time: Timestamp(5),
        };
        let block = Block::new(ctx, BlockHash([0; 32]), vec![]);
        assert_eq!(Block::from_bytes(&block.to_bytes()).unwrap(), block);
        let mut forged = block.clone();
        forged.header.txs_digest = Digest([1; 32]);
        let err = Block::from_bytes(&forged.to_bytes()).unwrap_err();
        assert!(err.to_string().contains("digest"), "{err}");
    }
}
