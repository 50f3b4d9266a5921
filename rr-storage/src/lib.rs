//! # rr-storage: where Resilient Records keeps its bytes
//!
//! - [`blob`]: content-addressed [`rr_core::BlobStore`] backends for the
//!   ciphertext envelopes: [`MemoryBlobStore`] and [`FsBlobStore`] (the embedded
//!   default, a content-addressed directory whose ids are IPFS CIDv1).
//! - [`ledger`]: the [`Ledger`], a redb database holding the blocks, receipts
//!   and replicated state (records, grants, audit trail, nonces), committed
//!   atomically one block at a time.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod blob;
pub mod ledger;

pub use blob::{verified, FsBlobStore, FsBlobStoreConfig, MemoryBlobStore};
pub use ledger::{Head, Ledger, LedgerError};
