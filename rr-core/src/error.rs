//! Errors of the core types and of the four backend traits.
//!
//! One enum per operation family, each `#[non_exhaustive]`, so a caller can
//! branch on what it can act on and a backend can add detail later.

use crate::ids::{AccountId, ContentId};

/// Bytes or text that do not decode to the type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// An id string is not 64 hex digits.
    #[error("{input:?} is not a valid {kind} id: expected 64 hex digits")]
    BadId {
        /// Which kind of id was expected.
        kind: &'static str,
        /// The (truncated) input.
        input: String,
    },
    /// A content id is malformed or not CIDv1 raw sha2-256.
    #[error("bad content id: {0}")]
    BadContentId(String),
    /// Canonical bytes that do not decode.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// Input larger than the limit for its type.
    #[error("{what} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// What was being decoded.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Valid bytes followed by more bytes: every encoding here is canonical,
    /// so trailing bytes are refused rather than ignored.
    #[error("malformed {what}: {extra} trailing bytes after a complete value")]
    TrailingBytes {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },
    /// A value that decodes but breaks a rule of its type.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being decoded.
        what: &'static str,
        /// The rule it breaks.
        reason: String,
    },
}

/// A transaction signature that does not verify. Deliberately carries nothing
/// but the claimed signer, so it leaks nothing about why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the signature on this call does not verify for account {signer}; it was not signed by that account's key, or it was changed after signing")]
pub struct SignatureError {
    /// The account the transaction claims as its signer.
    pub signer: AccountId,
}

/// Why a transaction was not accepted for ordering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// It does not decode, or breaks a size limit.
    #[error("malformed transaction: {0}")]
    Malformed(#[from] DecodeError),
    /// Its signature does not verify.
    #[error(transparent)]
    BadSignature(#[from] SignatureError),
}

/// A failure of the state store underneath the executor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The storage backend failed (I/O, corruption, ...).
    #[error("state storage failed: {0}")]
    Storage(String),
    /// A stored value does not decode: the store is corrupt or was written by
    /// an incompatible version.
    #[error("stored state is corrupt: {0}")]
    Corrupt(#[from] DecodeError),
}

/// A failure to execute a block. Refused calls are not errors (they are
/// receipts); this is only for failures that stop the node from executing at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecutionError {
    /// Reading state failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// A failure of the consensus engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsensusError {
    /// The engine has shut down (or is shutting down) and accepts nothing.
    #[error("the consensus engine has stopped; restart the node")]
    Stopped,
    /// The engine stopped before this transaction was decided, after it
    /// had left the replica: it may still commit. Unlike [`Stopped`], which
    /// promises the call was never ordered, this says nothing either way:
    /// submit the same signed transaction again to learn its outcome (a
    /// replay of it is refused, so it cannot act twice); never sign a new
    /// one for the same act.
    ///
    /// [`Stopped`]: ConsensusError::Stopped
    #[error("the engine stopped before transaction {0} was decided: it may still commit; resubmit the same signed transaction to learn its outcome, do not sign a new one")]
    OutcomeUnknown(crate::TxId),
    /// The engine's queue is full; try again later.
    #[error("the node is overloaded ({0} calls queued); retry shortly")]
    Overloaded(usize),
    /// The ledger could not be written or read.
    #[error("ledger storage failed: {0}")]
    Storage(String),
    /// The executor failed.
    #[error(transparent)]
    Execution(#[from] ExecutionError),
}

/// A failure of a blob store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// No blob with this content id.
    #[error("no blob with content id {0} in this store")]
    NotFound(ContentId),
    /// The stored bytes do not hash to their content id: the copy is damaged or
    /// was tampered with.
    #[error("blob {cid} failed its integrity check: the stored bytes hash to {actual}; the copy is damaged or was tampered with")]
    Integrity {
        /// The content id asked for.
        cid: ContentId,
        /// The content id of what was actually read.
        actual: ContentId,
    },
    /// The blob is larger than the store accepts.
    #[error("blob is over the store's limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The stream being stored failed.
    #[error("reading the blob to store failed: {0}")]
    Source(std::io::Error),
    /// The backend failed (I/O, network, ...).
    #[error("blob store failed: {0}")]
    Backend(#[from] std::io::Error),
}

impl BlobError {
    /// Wraps a blob error as an `io::Error` for use inside byte streams, keeping
    /// the blob error reachable with [`BlobError::from_io`].
    pub fn into_io(self) -> std::io::Error {
        let kind = match &self {
            BlobError::NotFound(_) => std::io::ErrorKind::NotFound,
            BlobError::Integrity { .. } => std::io::ErrorKind::InvalidData,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, self)
    }

    /// Recovers a blob error that [`BlobError::into_io`] wrapped, if it is one.
    pub fn from_io(err: &std::io::Error) -> Option<&BlobError> {
        err.get_ref().and_then(|e| e.downcast_ref::<BlobError>())
    }
}

/// A failure of a proxy re-encryption operation. Opaque on purpose: a crypto
/// failure says which step failed, never why in terms of secret values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PreError {
    /// Bytes that do not decode to a key, capsule or fragment of this scheme.
    #[error("malformed {what} for scheme {scheme}")]
    Malformed {
        /// The scheme.
        scheme: &'static str,
        /// What was being decoded.
        what: &'static str,
    },
    /// A key fragment that fails verification: wrong keys, or tampered.
    #[error("key fragment does not verify against the record key and grantee key (wrong keys, or tampered)")]
    InvalidKeyFrag,
    /// A capsule fragment that fails verification: wrong capsule or keys, or tampered.
    #[error("capsule fragment does not verify against the capsule, record key and grantee key (wrong record, or tampered)")]
    InvalidCapsuleFrag,
    /// Fewer verified fragments than the threshold.
    #[error("need {need} verified capsule fragments to open the record, have {have}")]
    NotEnoughFragments {
        /// Fragments available.
        have: usize,
        /// The threshold.
        need: usize,
    },
    /// The threshold m of n is not valid for this scheme.
    #[error("invalid threshold {m} of {n}: {reason}")]
    BadThreshold {
        /// m.
        m: u16,
        /// n.
        n: u16,
        /// Why.
        reason: &'static str,
    },
    /// Decapsulation failed: the key does not open this capsule, or the
    /// fragments do not belong together.
    #[error("cannot open the capsule with this key (wrong key, or fragments of another record)")]
    OpenFailed,
}
