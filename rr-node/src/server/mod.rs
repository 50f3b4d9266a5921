//! The replica side: a [`node::Node`] and what it is assembled from.
//!
//! - [`node`]: the node, its assembly checks, the dev node;
//! - [`cluster`]: one replica of a PBFT cluster; [`local_cluster`]: a whole
//!   cluster in one process;
//! - [`contracts`]: the native contracts and contract policies;
//! - [`fragments`]: the replica's key fragment store; [`uploads`]: its
//!   index of uploads no record names yet; [`node_key`]: the dev node's
//!   signing key file.
//!
//! Nothing here is needed by a client: the `client` feature builds without
//! it. Everything is re-exported at the crate root (`rr_node::node`, ...).

pub mod cluster;
pub mod contracts;
pub mod fragments;
pub mod local_cluster;
pub mod node;
pub mod node_key;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod uploads;
