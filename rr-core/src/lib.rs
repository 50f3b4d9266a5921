//! # rr-core: the types and traits of Resilient Records
//!
//! Resilient Records lets a patient (the *owner*) keep medical records
//! encrypted under their own keys, grant a provider (the *grantee*) access to
//! one record, and revoke it. A permissioned cluster of *replicas* orders the
//! calls, executes the native contracts, keeps an audit trail, and acts as the
//! proxy in proxy re-encryption: no replica can read a record.
//!
//! This crate holds no engine and no runtime: the ids, calls, transactions,
//! blocks and receipts, their canonical encoding, and the four traits every
//! backend implements:
//!
//! | trait | does | backends |
//! |---|---|---|
//! | [`ConsensusEngine`] | orders transactions into blocks | `rr-consensus`: `Solo`, PBFT |
//! | [`ContractExecutor`] | executes blocks deterministically | `rr-node`: native contracts |
//! | [`PreScheme`] | encapsulates, delegates, re-encrypts | `rr-pre`: Umbral |
//! | [`BlobStore`] | stores ciphertext by content id | `rr-storage`: memory, filesystem |
//!
//! A call is signed by its account and only becomes a [`VerifiedTransaction`]
//! by checking that signature, under rules ([`sig`]: ZIP-215 plus refusals of
//! weak keys and non-canonical encodings) that give every replica the same
//! verdict whether it checks signatures one by one or in batches:
//!
//! ```
//! use ed25519_dalek::SigningKey;
//! use rr_core::{AccountId, Call, GrantId, Revoke, SignedTransaction, TxBody};
//!
//! let alice = SigningKey::from_bytes(&[1; 32]);
//! let body = TxBody {
//!     signer: AccountId::from_verifying_key(&alice.verifying_key()),
//!     nonce: 1,
//!     call: Call::Revoke(Revoke { grant: GrantId([7; 32]) }),
//! };
//! let wire = body.sign(&alice).to_bytes();
//!
//! // On the node: decode, then verify. Only a verified transaction can be submitted.
//! let verified = SignedTransaction::from_bytes(&wire)?.verify()?;
//! assert_eq!(verified.signer(), AccountId::from_verifying_key(&alice.verifying_key()));
//!
//! // A transaction signed by someone else for Alice's account is refused.
//! let mallory = SigningKey::from_bytes(&[2; 32]);
//! let mut forged = SignedTransaction::from_bytes(&wire)?;
//! forged.signature = body_sig(&forged, &mallory);
//! assert!(forged.verify().is_err());
//! # fn body_sig(tx: &SignedTransaction, k: &SigningKey) -> Vec<u8> {
//! #     tx.body.clone().sign(k).signature
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The whole flow (encrypt, register, grant, retrieve, revoke) is walked
//! through in the `rr-node` crate docs and `examples/alice_bob.rs`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod block;
pub mod call;
pub mod cert;
pub mod codec;
pub mod error;
pub mod ids;
pub mod merkle;
pub mod proof;
pub mod sig;
pub mod smt;
pub mod state;
pub mod traits;
pub mod tx;

pub use block::{
    AuditAction, AuditEntry, Block, BlockContext, BlockHeader, CallOutput, ErrorCode, GrantInfo,
    GrantStatus, Outcome, PolicyCode, Receipt, RecordInfo, Refusal,
};
pub use call::{
    Call, ConfirmErasure, Grant, Purpose, RegisterRecord, Retrieve, Revoke, SchemeId, Threshold,
};
pub use error::{
    BlobError, ConsensusError, DecodeError, ExecutionError, PreError, SignatureError, StateError,
    TxError,
};
pub use ids::{
    AccountId, BlockHash, ContentId, Digest, GrantId, RecordId, ReplicaId, Timestamp, TxId,
};
pub use state::{CountKind, MemoryState, Overlay, StateRead, Table, WriteSet};
pub use traits::{
    byte_stream_of, BlobStore, ByteStream, ConsensusEngine, ContractExecutor, DataKey,
    EngineStatus, Execution, KeyKind, PreScheme, WireEncoding,
};
pub use tx::{SignedTransaction, TxBody, VerifiedTransaction, MAX_TX_BYTES};

/// Re-exported so integrators use the same versions.
pub use ed25519_dalek;
pub use rand_core;
