//! Errors of the PBFT engine.

use rr_core::{DecodeError, ReplicaId};

/// A configuration the engine cannot run with, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid PBFT configuration: {0}")]
pub struct ConfigError(pub String);

/// Why a replica message was refused. Refused messages are dropped: a correct
/// replica never sends one, so each is evidence of a fault on the link or at
/// the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The bytes do not decode, or break a size limit.
    #[error("malformed replica message: {0}")]
    Malformed(#[from] DecodeError),
    /// The claimed sender is not in the replica set.
    #[error("message from {0}, which is not in the replica set")]
    UnknownSender(ReplicaId),
    /// A signature (the sender's, or one inside a certificate) does not verify.
    #[error("a replica signature on a message from {from} does not verify")]
    BadSignature {
        /// The claimed sender of the outer message.
        from: ReplicaId,
    },
    /// A client transaction inside the message does not verify.
    #[error("message from {from} carries a transaction that does not verify: {reason}")]
    BadTransaction {
        /// The sender.
        from: ReplicaId,
        /// Why.
        reason: String,
    },
    /// The message is well signed but breaks a protocol rule.
    #[error("message from {from} breaks a protocol rule: {reason}")]
    Invalid {
        /// The sender.
        from: ReplicaId,
        /// The rule.
        reason: String,
    },
}
