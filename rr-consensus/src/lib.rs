//! # rr-consensus: the engines that order Resilient Records' calls
//!
//! An engine implements [`rr_core::ConsensusEngine`]: it orders verified
//! transactions into blocks, executes each block with the node's
//! [`rr_core::ContractExecutor`], and commits the block with its effects to
//! the [`rr_storage::Ledger`] before it answers.
//!
//! - [`Solo`]: one replica. Batches whatever is queued into one block per
//!   durable commit, so the cost of the fsync is shared by the batch.
//! - [`Pbft`]: n = 3f + 1 replicas running pipelined PBFT (see [`pbft`]),
//!   talking through a [`Network`]: TCP ([`transport::TcpNetwork`]) or, for tests,
//!   the in-process router of the `harness` feature.
//!
//! Block time comes from a [`Clock`]; tests drive it with [`ManualClock`].
//!
//! Client signatures are verified under ZIP-215 rules ([`rr_core::sig`]), so a
//! replica may verify them singly or in batches and reach the same verdict as
//! every other replica. The PBFT engine verifies the transactions of each
//! pre-prepare as one batch; [`TxVerifier`] batches calls submitted by clients.
//!
//! Features:
//! - `harness`: an in-process cluster of PBFT replicas on a fault-injecting
//!   router, for tests and simulations.
//! - `testing`: `conformance`, the suite every [`rr_core::ConsensusEngine`]
//!   should pass (run against [`Solo`] and [`Pbft`] in this crate's tests).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clock;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod conformance;
#[cfg(feature = "harness")]
#[cfg_attr(docsrs, doc(cfg(feature = "harness")))]
pub mod harness;
pub mod pbft;
mod solo;
pub mod transport;
mod verifier;

pub use clock::{Clock, ManualClock, SystemClock};
pub use pbft::{Pbft, PbftConfig, PbftParts, ReplicaKey, ReplicaSet, Wal};
pub use solo::{Solo, SoloConfig};
pub use transport::Network;
pub use verifier::TxVerifier;
