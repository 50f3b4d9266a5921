//! How replicas reach each other: the [`Network`] the PBFT engine talks
//! through, and its TCP implementation.

pub mod link;
pub mod tcp;

use bytes::Bytes;
use rr_core::ReplicaId;

/// The replica network as one replica sees it.
///
/// Object-safe (`async-trait`): the node picks the transport (TCP, or the
/// in-process router of the test harness) at run time.
///
/// # Correctness
/// - Best effort: a message may be lost, delayed, duplicated or reordered; the
///   protocol retransmits. `send` must not wait long (drop rather than block
///   when a peer is slow or unreachable).
/// - `recv` returns each message with the replica the link is authenticated
///   as; the engine drops a message that claims another sender.
/// - Messages are opaque bytes of at most
///   [`crate::pbft::MAX_MESSAGE_BYTES`]; the engine decodes and verifies them.
#[async_trait::async_trait]
pub trait Network: Send + Sync + 'static {
    /// Sends `message` to replica `to`.
    async fn send(&self, to: ReplicaId, message: Bytes);
    /// The next message for this replica and the replica it came from;
    /// `None` once the network is closed.
    async fn recv(&self) -> Option<(ReplicaId, Bytes)>;
}

pub use tcp::{Listener, TcpConfig, TcpNetwork};
