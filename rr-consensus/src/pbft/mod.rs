//! The pipelined PBFT engine (the ResilientDB model), n = 3f + 1 replicas.
//!
//! - [`message`]: the signed replica messages, their canonical encoding, and
//!   the checks that turn a [`SignedMessage`] into a [`VerifiedMessage`].
//! - [`Replica`]: the ordering core, a pure state machine (normal case with
//!   watermarks, checkpoints, view change, state transfer requests).
//! - [`Pbft`]: the engine, the core in a pipeline of tokio tasks, implementing
//!   [`rr_core::ConsensusEngine`].
//! - [`Wal`]: the write-ahead log that makes a restart safe.
//!
//! A batch proposed at sequence number `s` *is* the block at height `s`: the
//! batch digest is the block hash, so it binds height, parent, block time and
//! transactions, and every replica commits the identical block.

mod certify;
mod config;
mod crypto;
mod engine;
mod error;
pub mod message;
mod replica;
mod verdicts;
mod wal;

pub use config::PbftConfig;
pub use crypto::{ReplicaKey, ReplicaSet};
pub use engine::{Pbft, PbftParts};
pub use error::{ConfigError, MessageError};
pub use message::{
    plan_new_view, Batch, HeaderVote, NewViewPlan, Payload, SignedMessage, VerifiedMessage,
    MAX_MESSAGE_BYTES,
};
pub use replica::{Action, ExecuteBlock, Input, Now, Recovered, Replica, WalRecord};
pub use wal::{Wal, WalError};
