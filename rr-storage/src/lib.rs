//! # rr-storage: where Resilient Records keeps its bytes
//!
//! - [`blob`]: content-addressed [`rr_core::BlobStore`] backends for the
//!   ciphertext envelopes: [`MemoryBlobStore`] and [`FsBlobStore`] (the embedded
//!   default, a content-addressed directory whose ids are IPFS CIDv1).
//! - [`ledger`]: the [`Ledger`], a redb database holding the blocks, receipts
//!   and replicated state (records, grants, audit trail, nonces), committed
//!   atomically one block at a time, with each block's certified header: the
//!   state root of a sparse Merkle tree over the whole state (kept in memory
//!   as a [`StateTree`]), so every value read can be proven
//!   ([`StateReader`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod blob;
pub mod ledger;
pub mod state_tree;

pub use blob::{verified, FsBlobStore, FsBlobStoreConfig, MemoryBlobStore};
pub use ledger::{
    migrate_v1, Committed, Head, HeaderSigner, Ledger, LedgerError, MigrationReport, Snapshot,
    StateReader,
};
pub use state_tree::StateTree;
