//! The in-process cluster harness (feature `harness`): a router that connects
//! N replicas and can drop, delay, duplicate, reorder, partition and heal, and
//! a [`Cluster`] that runs N [`crate::Pbft`] replicas on it, each with its own
//! ledger and write-ahead log in a directory.
//!
//! For tests and simulations only; a node uses [`crate::transport`].

mod cluster;
mod nonce;
mod router;

pub use cluster::{harness_key, Cluster, ClusterNode};
pub use nonce::NonceExecutor;
pub use router::{Faults, Interceptor, Router, RouterEndpoint};
