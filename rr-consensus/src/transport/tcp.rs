//! The replica network over TCP: encrypted, mutually authenticated links
//! (a Noise handshake bound to the replicas' ed25519 keys, see
//! [`super::link`]) carrying frames with a size limit, and reconnection with
//! exponential backoff.
//!
//! Each replica dials every other one and sends on that connection; it
//! receives on the connections the others dialed. Before a link is
//! authenticated its frames are limited to
//! [`MAX_HANDSHAKE_BYTES`](super::link::MAX_HANDSHAKE_BYTES), the handshake
//! has [`TcpConfig::handshake_timeout`] to finish, and at most
//! [`TcpConfig::max_pending_handshakes`] connections may be in that state
//! at once (more are closed as they arrive).
//!
//! The byte streams come from a [`Listener`]: [`tokio::net::TcpListener`] on a
//! node; a simulated network (turmoil's) in the deterministic simulation tests.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rr_core::ReplicaId;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::link::{self, SecureLink};
use super::Network;
use crate::pbft::{ReplicaKey, ReplicaSet, MAX_MESSAGE_BYTES};

const TARGET: &str = "rr_consensus::tcp";

/// Settings of the TCP transport. Start from [`TcpConfig::new`] and set the
/// fields that differ.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TcpConfig {
    /// Every replica's address, in replica order (this replica's own entry is
    /// not dialed).
    pub peers: Vec<SocketAddr>,
    /// Largest frame sent or accepted. Default: the largest replica message.
    pub max_frame: usize,
    /// Messages queued per peer while it is slow or unreachable; more are
    /// dropped (the protocol retransmits). Default 8192.
    pub queue: usize,
    /// Bytes held per peer, each way: sent and not yet written to its link
    /// (more are dropped, as above), and received and not yet taken by the
    /// engine (reading from the peer waits until the engine catches up).
    /// Counting messages alone is no bound on memory: 8,192 queued
    /// pre-prepares can be gigabytes. At least `max_frame`. Default 64 MiB.
    pub queue_bytes: usize,
    /// First reconnect delay. Default 50 ms.
    pub backoff_min: Duration,
    /// Longest reconnect delay. Default 2 s.
    pub backoff_max: Duration,
    /// Time allowed for connecting and for the handshake. Default 5 s.
    pub handshake_timeout: Duration,
    /// Inbound connections that may be in their handshake at once (not yet
    /// authenticated). One more is closed as soon as it is accepted, so
    /// connections nobody authenticates cannot pile up; each frees its place
    /// when it authenticates, fails or runs out of `handshake_timeout`.
    /// Default 64 (a replica set of n has n - 1 peers that dial).
    pub max_pending_handshakes: usize,
    /// How long a write to a peer may block before the link is taken for dead
    /// and dialed again (a peer that stopped reading, or a connection that
    /// silently lost its way). Default 10 s.
    pub write_timeout: Duration,
    /// How long data sent on a link may stay unacknowledged by the peer's
    /// kernel before the link is taken for dead and dialed again (TCP's
    /// `TCP_USER_TIMEOUT`, on Linux). Default 3 s.
    ///
    /// Without it a link across a silent partition (a cable pulled, a
    /// firewall dropping packets) stays open: small writes fit in the socket
    /// buffer, so `write_timeout` never fires, and TCP's retransmissions back
    /// off exponentially, so once the partition heals nothing crosses until
    /// the next one, tens of seconds (up to two minutes) later. Replicas
    /// send status messages twice a second, so a dead link always has
    /// unacknowledged data and is replaced within this timeout; the new one
    /// gets through as soon as the network does.
    pub unacked_timeout: Duration,
}

impl TcpConfig {
    /// Settings for a replica set at `peers`.
    pub fn new(peers: Vec<SocketAddr>) -> Self {
        Self {
            peers,
            max_frame: MAX_MESSAGE_BYTES,
            queue: 8192,
            queue_bytes: 64 * 1024 * 1024,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(5),
            max_pending_handshakes: 64,
            write_timeout: Duration::from_secs(10),
            unacked_timeout: Duration::from_secs(3),
        }
    }
}

/// Where a [`TcpNetwork`] gets its connections: it accepts the other replicas'
/// links on a listener and dials theirs with [`Listener::connect`].
///
/// Implemented for [`tokio::net::TcpListener`]; tests implement it over a
/// simulated network.
///
/// # Correctness
/// Streams are reliable and ordered while they work (TCP's guarantees); one
/// that stalls or breaks is dropped by the transport and dialed again.
pub trait Listener: Send + 'static {
    /// A connection.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// The next inbound connection and the address it came from.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// Opens a connection to the listener at `addr`.
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Makes `stream` fail once data sent on it has gone unacknowledged for
    /// `timeout` (see [`TcpConfig::unacked_timeout`]), where the platform
    /// can. The default does nothing.
    fn fail_when_unacked(_stream: &Self::Stream, _timeout: Duration) {}
}

impl Listener for TcpListener {
    type Stream = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = TcpListener::accept(self).await?;
        // Votes are small and latency-bound.
        let _ = stream.set_nodelay(true);
        Ok((stream, addr))
    }

    async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    fn fail_when_unacked(stream: &TcpStream, timeout: Duration) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Err(e) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout)) {
            debug!(target: TARGET, error = %e, "cannot set TCP_USER_TIMEOUT");
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = (stream, timeout);
    }
}

/// Dialer side: connects to `peer` and opens the link.
async fn dial<L: Listener>(
    key: &ReplicaKey,
    set: &ReplicaSet,
    peer: ReplicaId,
    addr: SocketAddr,
    cfg: &TcpConfig,
) -> Result<SecureLink<L::Stream>, String> {
    let stream = L::connect(addr).await.map_err(|e| e.to_string())?;
    L::fail_when_unacked(&stream, cfg.unacked_timeout);
    link::dial(stream, key, set, peer, cfg.max_frame)
        .await
        .map_err(|e| e.to_string())
}

/// The TCP replica network of one replica.
pub struct TcpNetwork {
    me: ReplicaId,
    /// Per peer: its send queue and the bytes in it.
    out: Vec<Option<(mpsc::Sender<Bytes>, Arc<AtomicUsize>)>>,
    queue_bytes: usize,
    /// What arrived, each message with its share of its sender's
    /// [`TcpConfig::queue_bytes`], given back when the engine takes it.
    inbox: tokio::sync::Mutex<mpsc::Receiver<(ReplicaId, Bytes, OwnedSemaphorePermit)>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for TcpNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpNetwork")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl TcpNetwork {
    /// Starts accepting on `listener` and dialing every peer. Must be called
    /// inside a tokio runtime.
    pub fn start<L: Listener>(
        key: ReplicaKey,
        set: ReplicaSet,
        mut listener: L,
        cfg: TcpConfig,
    ) -> Result<Self, crate::pbft::ConfigError> {
        if cfg.peers.len() != set.n() {
            return Err(crate::pbft::ConfigError(format!(
                "{} peer addresses for {} replicas",
                cfg.peers.len(),
                set.n()
            )));
        }
        if cfg.max_pending_handshakes == 0 {
            return Err(crate::pbft::ConfigError(
                "max_pending_handshakes must be at least 1".into(),
            ));
        }
        if cfg.queue_bytes < cfg.max_frame || u32::try_from(cfg.queue_bytes).is_err() {
            return Err(crate::pbft::ConfigError(format!(
                "queue_bytes ({}) must be at least max_frame ({}) and below 4 GiB",
                cfg.queue_bytes, cfg.max_frame
            )));
        }
        let me = key.id();
        let key = Arc::new(key);
        let cfg = Arc::new(cfg);
        let (inbox_tx, inbox_rx) = mpsc::channel(cfg.queue);
        // Each peer's budget of received bytes the engine has not taken yet.
        let budgets: Arc<Vec<Arc<Semaphore>>> = Arc::new(
            (0..set.n())
                .map(|_| Arc::new(Semaphore::new(cfg.queue_bytes)))
                .collect(),
        );
        // The live inbound link of each peer: a peer dials again when its
        // link stalls or breaks, and its newest authenticated link replaces
        // the older one (which may never see the peer's close).
        let inbound: Arc<Mutex<Vec<Option<CancellationToken>>>> =
            Arc::new(Mutex::new(vec![None; set.n()]));
        let mut tasks = Vec::new();
        {
            let (key, set, cfg) = (key.clone(), set.clone(), cfg.clone());
            let pending = Arc::new(Semaphore::new(cfg.max_pending_handshakes));
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((stream, addr)) = listener.accept().await else {
                        // Out of file descriptors, say: do not spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let Ok(handshaking) = pending.clone().try_acquire_owned() else {
                        // Dropping the stream closes it.
                        debug!(target: TARGET, %addr, "too many connections in their handshake; closed one");
                        continue;
                    };
                    let (key, set, cfg, inbox, inbound, budgets) = (
                        key.clone(),
                        set.clone(),
                        cfg.clone(),
                        inbox_tx.clone(),
                        inbound.clone(),
                        budgets.clone(),
                    );
                    tokio::spawn(async move {
                        let hs = tokio::time::timeout(
                            cfg.handshake_timeout,
                            link::accept(stream, &key, &set, cfg.max_frame),
                        )
                        .await;
                        drop(handshaking);
                        let (peer, mut link) = match hs {
                            Ok(Ok(x)) => x,
                            Ok(Err(e)) => {
                                warn!(target: TARGET, %addr, error = %e, "refused a replica connection");
                                return;
                            }
                            Err(_) => {
                                warn!(target: TARGET, %addr, "replica handshake timed out");
                                return;
                            }
                        };
                        debug!(target: TARGET, %peer, "inbound link up");
                        let superseded = CancellationToken::new();
                        if let Some(old) = inbound.lock().expect("inbound lock")[peer.0 as usize]
                            .replace(superseded.clone())
                        {
                            old.cancel();
                        }
                        loop {
                            let frame = tokio::select! {
                                biased;
                                _ = superseded.cancelled() => {
                                    debug!(target: TARGET, %peer, "inbound link replaced by a newer one");
                                    return;
                                }
                                frame = link.next() => frame,
                            };
                            match frame {
                                Some(Ok(b)) => {
                                    // Frames are at most max_frame <= queue_bytes < 4 GiB.
                                    let size = u32::try_from(b.len()).unwrap_or(u32::MAX);
                                    let Ok(permit) = budgets[peer.0 as usize]
                                        .clone()
                                        .acquire_many_owned(size)
                                        .await
                                    else {
                                        return;
                                    };
                                    if inbox.send((peer, b.freeze(), permit)).await.is_err() {
                                        return;
                                    }
                                }
                                Some(Err(e)) => {
                                    debug!(target: TARGET, %peer, error = %e, "inbound link closed");
                                    return;
                                }
                                None => return,
                            }
                        }
                    });
                }
            }));
        }
        let mut out = Vec::with_capacity(set.n());
        for (i, addr) in cfg.peers.iter().copied().enumerate() {
            let peer = ReplicaId(i as u16);
            if peer == me {
                out.push(None);
                continue;
            }
            let (tx, mut rx) = mpsc::channel::<Bytes>(cfg.queue);
            let queued = Arc::new(AtomicUsize::new(0));
            out.push(Some((tx, queued.clone())));
            let (key, set, cfg) = (key.clone(), set.clone(), cfg.clone());
            tasks.push(tokio::spawn(async move {
                let mut backoff = cfg.backoff_min;
                loop {
                    let link = tokio::time::timeout(
                        cfg.handshake_timeout,
                        dial::<L>(&key, &set, peer, addr, &cfg),
                    )
                    .await;
                    match link {
                        Ok(Ok(mut link)) => {
                            info!(target: TARGET, %peer, "link up");
                            backoff = cfg.backoff_min;
                            loop {
                                let Some(first) = rx.recv().await else {
                                    return;
                                };
                                // Write what is queued, then flush once.
                                let write = async {
                                    queued.fetch_sub(first.len(), Ordering::AcqRel);
                                    link.feed(first).await?;
                                    while let Ok(b) = rx.try_recv() {
                                        queued.fetch_sub(b.len(), Ordering::AcqRel);
                                        link.feed(b).await?;
                                    }
                                    SinkExt::<Bytes>::flush(&mut link).await
                                };
                                match tokio::time::timeout(cfg.write_timeout, write).await {
                                    Ok(Ok(())) => {}
                                    Ok(Err(e)) => {
                                        debug!(target: TARGET, %peer, error = %e, "link down");
                                        break;
                                    }
                                    Err(_) => {
                                        debug!(target: TARGET, %peer, "link stalled; dialing again");
                                        break;
                                    }
                                }
                            }
                        }
                        Ok(Err(e)) => debug!(target: TARGET, %peer, error = %e, "dial failed"),
                        Err(_) => debug!(target: TARGET, %peer, "dial timed out"),
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(cfg.backoff_max);
                }
            }));
        }
        Ok(Self {
            me,
            out,
            queue_bytes: cfg.queue_bytes,
            inbox: tokio::sync::Mutex::new(inbox_rx),
            tasks,
        })
    }
}

impl Drop for TcpNetwork {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[async_trait::async_trait]
impl Network for TcpNetwork {
    async fn send(&self, to: ReplicaId, message: Bytes) {
        if let Some(Some((q, queued))) = self.out.get(to.0 as usize) {
            // Full, in messages or bytes: the peer is slow or away; the
            // protocol retransmits.
            let size = message.len();
            if queued.fetch_add(size, Ordering::AcqRel) + size > self.queue_bytes {
                queued.fetch_sub(size, Ordering::AcqRel);
                return;
            }
            if q.try_send(message).is_err() {
                queued.fetch_sub(size, Ordering::AcqRel);
            }
        }
    }

    async fn recv(&self) -> Option<(ReplicaId, Bytes)> {
        // The permit goes back to the sender's budget here.
        let (from, bytes, _permit) = self.inbox.lock().await.recv().await?;
        Some((from, bytes))
    }
}

#[cfg(test)]
impl TcpNetwork {
    /// Bytes waiting in the send queue to `peer`.
    fn queued_bytes(&self, peer: ReplicaId) -> usize {
        self.out
            .get(peer.0 as usize)
            .and_then(|o| o.as_ref())
            .map_or(0, |(_, q)| q.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbft::{ReplicaKey, ReplicaSet};
    use ed25519_dalek::SigningKey;

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i + 1; 32])
    }

    /// Addresses of `n` replicas: this one's listener, then ports nobody
    /// listens on any more (peers that are away).
    async fn me_and_absent_peers(n: usize) -> (TcpListener, Vec<SocketAddr>) {
        let me = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peers = vec![me.local_addr().unwrap()];
        for _ in 1..n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            peers.push(l.local_addr().unwrap());
        }
        (me, peers)
    }

    /// Replica 0 of 4, the others away, frames up to 4 KiB and `queue_bytes`.
    async fn start_with_budget(queue_bytes: usize) -> Result<TcpNetwork, crate::pbft::ConfigError> {
        let set = ReplicaSet::new((0..4).map(|i| key(i).verifying_key()).collect()).unwrap();
        let (me, peers) = me_and_absent_peers(4).await;
        let mut cfg = TcpConfig::new(peers);
        cfg.max_frame = 4096;
        cfg.queue_bytes = queue_bytes;
        TcpNetwork::start(ReplicaKey::new(ReplicaId(0), key(0)), set, me, cfg)
    }

    #[tokio::test]
    async fn a_peer_that_is_away_holds_at_most_queue_bytes_of_messages() {
        let net = start_with_budget(10 * 1024).await.unwrap();
        // 100 KiB for a peer that never answers: far fewer messages than the
        // count limit (8,192), ten times the byte budget.
        for _ in 0..100 {
            net.send(ReplicaId(1), Bytes::from(vec![7u8; 1024])).await;
        }
        let held = net.queued_bytes(ReplicaId(1));
        assert_eq!(
            held,
            10 * 1024,
            "the queue keeps what fits and drops the rest"
        );
        // Another peer's budget is its own.
        net.send(ReplicaId(2), Bytes::from(vec![7u8; 1024])).await;
        assert_eq!(net.queued_bytes(ReplicaId(2)), 1024);
    }

    #[tokio::test]
    async fn a_byte_budget_below_the_largest_frame_is_refused() {
        let err = start_with_budget(4095).await.unwrap_err().to_string();
        assert!(err.contains("queue_bytes"), "{err}");
    }
}
