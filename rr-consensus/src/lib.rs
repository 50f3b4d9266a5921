//! # rr-consensus: the engines that order Resilient Records' calls
//!
//! An engine implements [`rr_core::ConsensusEngine`]: it orders verified
//! transactions into blocks, executes each block with the node's
//! [`rr_core::ContractExecutor`], and commits the block with its effects to
//! the [`rr_storage::Ledger`] before it answers.
//!
//! - [`Solo`]: one replica. Batches whatever is queued into one block per
//!   durable commit, so the cost of the fsync is shared by the batch.
//!
//! Block time comes from a [`Clock`]; tests drive it with [`ManualClock`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clock;
mod solo;

pub use clock::{Clock, ManualClock, SystemClock};
pub use solo::{Solo, SoloConfig};
