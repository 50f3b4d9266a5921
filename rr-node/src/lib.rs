//! # rr-node: the Resilient Records node and client
//!
//! - [`contracts`]: the native contracts ([`NativeContracts`]), a
//!   deterministic [`rr_core::ContractExecutor`]: register, grant, retrieve,
//!   revoke, with purpose of use, expiry and an audit trail.
//! - [`node`]: [`Node`], generic over [`NodeTypes`] (engine, PRE scheme,
//!   executor, blob store), and [`DevNode`], the embedded default: one replica,
//!   Umbral (or another scheme: `DevNode<Recrypt>`) as the scheme of new
//!   records, a filesystem blob store and redb, in one data directory.
//! - [`client`]: [`RootIdentity`] (one person's keys for every scheme),
//!   [`Identity`], [`PublicCard`] and [`Client`], which run the flows with
//!   all plaintext and secret keys in the caller's process.
//! - [`fragments`]: the replica's own key fragment store, never replicated.
//!
//! Linking umbral-pre (GPL-3.0-only) makes this crate AGPL-3.0-only.
//!
//! ## The whole flow
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use rr_core::{ErrorCode, Purpose, byte_stream_of};
//! use rr_node::{collect, Client, DevConfig, GrantOptions, Identity, Node};
//!
//! let dir = tempfile::tempdir()?;
//! let node = Node::open_dev(DevConfig::new(dir.path())).await?;
//! let alice = Client::in_process(&node, Identity::generate(node.pre().as_ref()));
//! let bob = Client::in_process(&node, Identity::generate(node.pre().as_ref()));
//!
//! // Alice encrypts on her side and registers the record.
//! let record = b"2026-11-23 blood panel: all normal".to_vec();
//! let put = alice.put(byte_stream_of(record.clone()), "text/plain").await?;
//!
//! // She grants Bob access for treatment.
//! let treatment = Purpose::new("treatment")?;
//! let grant = alice
//!     .grant(put.record_id, &bob.card(), GrantOptions {
//!         purpose: treatment.clone(),
//!         expires_at: None,
//!         threshold: None,
//!     })
//!     .await?;
//!
//! // Bob retrieves and decrypts; the node re-encrypted but never saw the key.
//! let plain = collect(bob.retrieve(grant, treatment.clone()).await?).await?;
//! assert_eq!(plain, record);
//!
//! // Alice revokes; Bob's next attempt is refused, and says why.
//! alice.revoke(grant).await?;
//! let err = bob.retrieve(grant, treatment).await.err().unwrap();
//! assert!(err.to_string().contains("revoked"));
//!
//! // Every step is in the audit trail.
//! let trail = alice.audit(put.record_id).await?;
//! assert_eq!(trail.len(), 5); // register, grant, retrieve, revoke, refused retrieve
//! assert_eq!(trail[4].refused, Some(ErrorCode::GrantRevoked));
//! node.shutdown().await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod client;
pub mod cluster;
pub mod contracts;
pub mod fragments;
pub mod http;
pub mod keystore;
pub mod node;
pub mod node_key;
pub mod receipt;
pub mod replicas;
pub mod sealing;

pub use api::{skip_prefix, Authorization, FragmentDelivery, NodeApi, OffsetPastEnd};
pub use client::{
    collect, write_stream_to_file, Client, ClientError, GrantOptions, GrantReport, Identity,
    PendingFragment, PublicCard, PutOutcome, RetrieveReport, RevokeReport, RootIdentity,
    CLIENT_SCHEMES, ERASURE_WAIT,
};
pub use cluster::{ClusterConfig, ClusterFile, ClusterNode};
pub use contracts::{ContractLimits, ContractsConfig, NativeContracts};
pub use node::{
    DevConfig, DevNode, Node, NodeError, NodeInfo, NodeParts, NodeTypes, Retrieval, SkippedReplica,
};
pub use replicas::{Replicas, RetrieveAnswers, Submitted, Verified};
