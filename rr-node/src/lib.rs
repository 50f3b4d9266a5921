//! # rr-node: the Resilient Records node and client
//!
//! The server side (feature `server`):
//!
//! - [`node`]: [`Node`], generic over [`NodeTypes`] (engine, PRE scheme, blob
//!   store), assembled from parts that are checked to agree; [`DevNode`], the
//!   embedded default: one replica, Umbral (or another scheme:
//!   `DevTypes<Recrypt>`) as the scheme of new records, a filesystem blob
//!   store (or yours: [`Node::open_dev_with_blobs`]) and redb, in one data
//!   directory.
//! - [`cluster`]: [`ClusterReplica`], one replica of a PBFT cluster, over TCP
//!   or any [`rr_consensus::Network`]; [`local_cluster`]: [`LocalCluster`], a
//!   whole cluster in one process.
//! - [`contracts`]: the native contracts ([`NativeContracts`]), a
//!   deterministic [`rr_core::ContractExecutor`]: register, grant, retrieve,
//!   revoke, with purpose of use, expiry and an audit trail; [`Policy`]: your
//!   own rules in front of them.
//! - [`fragments`]: the replica's own key fragment store, never replicated.
//!
//! The client side (feature `client`, which needs neither axum, redb nor
//! clap):
//!
//! - [`client`]: [`RootIdentity`] (one person's keys for every scheme),
//!   [`Identity`], [`PublicCard`], [`Client`] (one scheme) and [`AnyClient`]
//!   (every scheme, dispatching on the record's), which run the flows with
//!   all plaintext and secret keys in the caller's process.
//! - [`replicas`]: [`Replicas`], a replica set whose every answer is checked
//!   against the keys the client trusts; [`http`]: the HTTP API's client
//!   (and, with `server`, its server); [`receipt`]: offline receipts.
//!
//! Shared: [`api`] (the [`NodeApi`] both sides speak and its types),
//! [`peers`] (`cluster.json`), [`sealing`] (key fragments sealed to one
//! replica). Feature `keystore` adds the encrypted keystore, `cli` the
//! binaries, `recrypt` the recrypt scheme, `testing` the conformance suite
//! `testing::ExecutorSuite` (see the README for what each pulls in).
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
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod api;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
pub mod http;
pub mod peers;
pub mod sealing;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;

#[cfg(feature = "keystore")]
#[doc(inline)]
pub use client::keystore;
#[cfg(feature = "client")]
#[doc(inline)]
pub use client::{receipt, replicas};
#[cfg(feature = "testing")]
#[doc(inline)]
pub use server::testing;
#[cfg(feature = "server")]
#[doc(inline)]
pub use server::{cluster, contracts, fragments, local_cluster, node, node_key, uploads};

pub use api::{
    skip_prefix, Authorization, FragmentDelivery, NodeApi, NodeError, NodeInfo, OffsetPastEnd,
    Peer, Retrieval, SchemeInfo, SkippedReplica,
};
#[cfg(feature = "client")]
pub use client::{
    collect, write_stream_to_file, AnyClient, Client, ClientError, GrantOptions, GrantReport,
    Identity, PendingFragment, PublicCard, PutOutcome, RetrieveReport, RevokeReport, RootIdentity,
    CLIENT_SCHEMES, ERASURE_WAIT,
};
#[cfg(feature = "server")]
pub use cluster::{ClusterConfig, ClusterReplica, ClusterTypes};
#[cfg(feature = "server")]
pub use contracts::{
    refuse_call, ContractLimits, ContractsConfig, NativeContracts, Policies, Policy, PolicyCall,
    Verdict,
};
#[cfg(feature = "server")]
pub use local_cluster::{LocalCluster, LocalClusterBuilder};
#[cfg(feature = "server")]
pub use node::{BlobPeers, DevConfig, DevNode, DevTypes, Node, NodeParts, NodeTypes};
pub use peers::{ClusterFile, ClusterMember};
#[cfg(feature = "client")]
pub use replicas::{Replicas, RetrieveAnswers, Submitted, Verified};
// One async style per trait family (see each trait's docs): the traits a
// node is assembled from use `impl Future` (static dispatch), the ones a
// client holds as `Arc<dyn _>` (`NodeApi`, `BlobStore`) use `async_trait`,
// re-exported so an implementation needs no dependency of its own.
pub use async_trait::async_trait;
