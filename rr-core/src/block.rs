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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
        let block: Block = codec::decode_canonical("block", bytes, MAX_BLOCK_BYTES)?;
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
///
/// The native codes are fixed; [`ErrorCode::Policy`] carries a code of an
/// integrator's own contract policy (see `rr_node::contracts::Policy`), which
/// travels the same way: in receipts, over HTTP and through the SDK.
///
/// In JSON (and every human-readable format) a code is its string; in the
/// binary (postcard) encoding receipts are hashed in, it is an enum whose
/// variant indexes never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(rename_all = "snake_case")
)]
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
    /// Refused by a contract policy the operator installed, with the
    /// policy's own code.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    Policy(PolicyCode),
}

impl ErrorCode {
    /// The stable string form, such as `grant_revoked`.
    pub fn as_str(&self) -> &str {
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
            ErrorCode::Policy(code) => code.prefixed(),
        }
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(native) = ErrorCode::NATIVE.into_iter().find(|c| c.as_str() == s) {
            return Ok(native);
        }
        let unknown = |reason: String| DecodeError::Invalid {
            what: "error code",
            reason: format!("unknown code {s:?}{reason}"),
        };
        match s.strip_prefix(PolicyCode::PREFIX) {
            Some(code) => PolicyCode::new(code)
                .map(ErrorCode::Policy)
                .map_err(|e| unknown(format!(": {e}"))),
            None => Err(unknown(String::new())),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorCode {
    /// Every native code (all but policy codes), in variant order.
    pub const NATIVE: [ErrorCode; 14] = [
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
}

/// The code of a refusal by an integrator's contract policy: 1 to 32
/// characters of `[a-z0-9_]`, starting with a letter. As an [`ErrorCode`]
/// its string is prefixed with `policy.` (`policy.purpose_not_allowed`), so
/// it can never be taken for a native code or a node's own error code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyCode {
    /// Length of the code after the prefix.
    len: u8,
    /// `policy.` and the code, zero-padded.
    bytes: [u8; PolicyCode::PREFIX.len() + PolicyCode::MAX_LEN],
}

impl PolicyCode {
    /// Longest code, in bytes (without the prefix).
    pub const MAX_LEN: usize = 32;
    /// What a policy code's [`ErrorCode`] string starts with.
    pub const PREFIX: &'static str = "policy.";

    /// Checks and wraps `code`.
    pub fn new(code: &str) -> Result<Self, DecodeError> {
        let invalid = |reason: String| DecodeError::Invalid {
            what: "policy code",
            reason,
        };
        let b = code.as_bytes();
        if b.is_empty() || b.len() > Self::MAX_LEN {
            return Err(invalid(format!(
                "{code:?}: a policy code is 1 to {} characters long",
                Self::MAX_LEN
            )));
        }
        if !b[0].is_ascii_lowercase()
            || !b
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        {
            return Err(invalid(format!(
                "{code:?}: a policy code is made of a-z, 0-9 and _, and starts with a letter"
            )));
        }
        let mut bytes = [0u8; Self::PREFIX.len() + Self::MAX_LEN];
        bytes[..Self::PREFIX.len()].copy_from_slice(Self::PREFIX.as_bytes());
        bytes[Self::PREFIX.len()..Self::PREFIX.len() + b.len()].copy_from_slice(b);
        Ok(Self {
            len: b.len() as u8,
            bytes,
        })
    }

    /// The code, as the policy named it (`purpose_not_allowed`).
    pub fn as_str(&self) -> &str {
        &self.prefixed()[Self::PREFIX.len()..]
    }

    /// The code with its prefix (`policy.purpose_not_allowed`): its
    /// [`ErrorCode`] string.
    pub fn prefixed(&self) -> &str {
        // Only ASCII is ever stored (checked in `new`).
        std::str::from_utf8(&self.bytes[..Self::PREFIX.len() + usize::from(self.len)])
            .unwrap_or(Self::PREFIX)
    }
}

impl std::fmt::Debug for PolicyCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PolicyCode({:?})", self.as_str())
    }
}

impl std::fmt::Display for PolicyCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PolicyCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PolicyCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        PolicyCode::new(&s).map_err(serde::de::Error::custom)
    }
}

/// The binary form of [`ErrorCode`]: variant indexes are part of the
/// ledger's hashed bytes, so variants are only ever added at the end.
#[derive(Serialize, Deserialize)]
enum WireCode {
    ReplayedNonce,
    InvalidCall,
    UnknownRecord,
    UnknownGrant,
    RecordExists,
    NotOwner,
    NotGrantee,
    GrantRevoked,
    GrantExpired,
    PurposeMismatch,
    SchemeMismatch,
    NotReplica,
    ThresholdTooLow,
    SingleProxyRefused,
    Policy(PolicyCode),
}

impl From<ErrorCode> for WireCode {
    fn from(c: ErrorCode) -> Self {
        match c {
            ErrorCode::ReplayedNonce => WireCode::ReplayedNonce,
            ErrorCode::InvalidCall => WireCode::InvalidCall,
            ErrorCode::UnknownRecord => WireCode::UnknownRecord,
            ErrorCode::UnknownGrant => WireCode::UnknownGrant,
            ErrorCode::RecordExists => WireCode::RecordExists,
            ErrorCode::NotOwner => WireCode::NotOwner,
            ErrorCode::NotGrantee => WireCode::NotGrantee,
            ErrorCode::GrantRevoked => WireCode::GrantRevoked,
            ErrorCode::GrantExpired => WireCode::GrantExpired,
            ErrorCode::PurposeMismatch => WireCode::PurposeMismatch,
            ErrorCode::SchemeMismatch => WireCode::SchemeMismatch,
            ErrorCode::NotReplica => WireCode::NotReplica,
            ErrorCode::ThresholdTooLow => WireCode::ThresholdTooLow,
            ErrorCode::SingleProxyRefused => WireCode::SingleProxyRefused,
            ErrorCode::Policy(p) => WireCode::Policy(p),
        }
    }
}

impl From<WireCode> for ErrorCode {
    fn from(c: WireCode) -> Self {
        match c {
            WireCode::ReplayedNonce => ErrorCode::ReplayedNonce,
            WireCode::InvalidCall => ErrorCode::InvalidCall,
            WireCode::UnknownRecord => ErrorCode::UnknownRecord,
            WireCode::UnknownGrant => ErrorCode::UnknownGrant,
            WireCode::RecordExists => ErrorCode::RecordExists,
            WireCode::NotOwner => ErrorCode::NotOwner,
            WireCode::NotGrantee => ErrorCode::NotGrantee,
            WireCode::GrantRevoked => ErrorCode::GrantRevoked,
            WireCode::GrantExpired => ErrorCode::GrantExpired,
            WireCode::PurposeMismatch => ErrorCode::PurposeMismatch,
            WireCode::SchemeMismatch => ErrorCode::SchemeMismatch,
            WireCode::NotReplica => ErrorCode::NotReplica,
            WireCode::ThresholdTooLow => ErrorCode::ThresholdTooLow,
            WireCode::SingleProxyRefused => ErrorCode::SingleProxyRefused,
            WireCode::Policy(p) => ErrorCode::Policy(p),
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(self.as_str())
        } else {
            WireCode::from(*self).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            WireCode::deserialize(d).map(ErrorCode::from)
        }
    }
}

/// A refused call: a stable code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Outcome {
    /// It took effect.
    Ok(CallOutput),
    /// It was refused and changed nothing but the audit trail.
    Refused(Refusal),
}

/// The receipt of one executed transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^([0-9a-f]{2})*$"))]
    pub record_key: Vec<u8>,
    /// The encapsulated data key.
    #[serde(with = "crate::codec::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^([0-9a-f]{2})*$"))]
    pub capsule: Vec<u8>,
    /// Media type of the plaintext.
    pub media_type: String,
    /// Owner-encrypted metadata.
    #[serde(with = "crate::codec::hex_bytes_opt", default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^([0-9a-f]{2})*$"))]
    pub encrypted_metadata: Option<Vec<u8>>,
    /// Block it was registered in.
    pub registered: BlockContext,
    /// Number of audit entries on this record so far.
    pub audit_len: u64,
}

/// Status of a grant as stored. Expiry is not stored: it follows from
/// `expires_at` and the block time of each call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^([0-9a-f]{2})*$"))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
            AuditAction::ConfirmErasure => "confirm_erasure",
        }
    }
}

/// One entry of a record's append-only audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
                codec::decode_canonical($what, bytes, $limit)
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
    fn error_codes_keep_their_binary_and_text_forms() {
        // The binary form is hashed into receipts: the variant index of each
        // native code is what it was before policy codes existed.
        for (i, code) in ErrorCode::NATIVE.iter().enumerate() {
            assert_eq!(
                postcard::to_allocvec(code).unwrap(),
                vec![i as u8],
                "{code}"
            );
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), *code);
            assert_eq!(code.as_str().parse::<ErrorCode>().unwrap(), *code);
        }
        let policy = ErrorCode::Policy(PolicyCode::new("purpose_not_allowed").unwrap());
        assert_eq!(policy.as_str(), "policy.purpose_not_allowed");
        let bin = postcard::to_allocvec(&policy).unwrap();
        assert_eq!(bin[0], ErrorCode::NATIVE.len() as u8);
        assert_eq!(postcard::from_bytes::<ErrorCode>(&bin).unwrap(), policy);
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(json, "\"policy.purpose_not_allowed\"");
        assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), policy);
        assert_eq!(
            "policy.purpose_not_allowed".parse::<ErrorCode>().unwrap(),
            policy
        );
    }

    #[test]
    fn bad_policy_codes_are_refused_with_the_rule() {
        for bad in [
            "",
            "Upper",
            "9lives",
            "has-dash",
            "has space",
            &"x".repeat(33),
        ] {
            let err = PolicyCode::new(bad).unwrap_err().to_string();
            assert!(err.contains("policy code"), "{bad:?}: {err}");
            assert!(format!("policy.{bad}").parse::<ErrorCode>().is_err());
        }
        // Not a native code and not prefixed: unknown, whatever it looks like.
        for unknown in ["unauthorized", "made_up", "policy", "policy."] {
            assert!(unknown.parse::<ErrorCode>().is_err(), "{unknown}");
        }
        // A policy may reuse a native code's word: the prefix tells them apart.
        let own = ErrorCode::Policy(PolicyCode::new("not_owner").unwrap());
        assert_ne!(own, ErrorCode::NotOwner);
        assert_eq!(own.as_str().parse::<ErrorCode>().unwrap(), own);
        // A forged binary code that breaks the rule does not decode.
        let mut bin = vec![ErrorCode::NATIVE.len() as u8, 3];
        bin.extend_from_slice(b"A-B");
        assert!(postcard::from_bytes::<ErrorCode>(&bin).is_err());
    }

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
