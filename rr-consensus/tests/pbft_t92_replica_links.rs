//! The TCP replica links under attack from the network: unauthenticated
//! connections that try to exhaust memory or handshake slots, and a relay
//! between two replicas that reads, or flips a byte of, what passes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use rr_consensus::harness::harness_key;
use rr_consensus::transport::{Network, TcpConfig, TcpNetwork};
use rr_consensus::{ReplicaKey, ReplicaSet};
use rr_core::{AccountId, Call, GrantId, ReplicaId, Revoke, TxBody};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn set() -> ReplicaSet {
    ReplicaSet::new((0..4).map(|i| harness_key(i).verifying_key()).collect()).unwrap()
}

fn replica_key(i: usize) -> ReplicaKey {
    ReplicaKey::new(ReplicaId(i as u16), harness_key(i))
}

/// A port nobody listens on.
fn nowhere() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

/// Replica `i` on `listener`, reaching replica 0 at `zero` (and nobody
/// else), with `tweak` applied to its settings.
fn replica(
    i: usize,
    listener: TcpListener,
    zero: SocketAddr,
    tweak: impl FnOnce(&mut TcpConfig),
) -> TcpNetwork {
    let mut peers = vec![nowhere(); 4];
    peers[0] = zero;
    peers[i] = listener.local_addr().unwrap();
    let mut cfg = TcpConfig::new(peers);
    tweak(&mut cfg);
    TcpNetwork::start(replica_key(i), set(), listener, cfg).unwrap()
}

/// Waits (at most `within`) for the peer to close `s`: true if it did.
async fn closed_by_peer(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Sends `message(k)` from `from` to replica 0 every 50 ms, k = 0, 1, ...,
/// until replica 0 takes one; returns what it took then.
async fn send_until_received(
    from: &TcpNetwork,
    to: &TcpNetwork,
    message: impl Fn(u32) -> Bytes,
) -> (ReplicaId, Bytes) {
    let mut k = 0;
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            from.send(ReplicaId(0), message(k)).await;
            k += 1;
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(50), to.recv()).await {
                return m;
            }
        }
    })
    .await
    .expect("a message got through")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_length_header_before_authentication_closes_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // A handshake timeout far beyond the test's wait: a close can only be
    // the refusal of the length header.
    let _zero = replica(0, listener, addr, |c| {
        c.handshake_timeout = Duration::from_secs(600)
    });
    let mut s = TcpStream::connect(addr).await.unwrap();
    // A frame of 32,505,856 bytes announced (finding 8 of rr-fuzz): it used
    // to make the acceptor reserve that much before reading any of it.
    s.write_all(&[0x01, 0xf0, 0x00, 0x00]).await.unwrap();
    assert!(
        closed_by_peer(&mut s, Duration::from_secs(20)).await,
        "the connection stays open after a length header over the handshake limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_handshakes_are_closed_and_a_replica_still_connects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let zero = replica(0, listener, addr, |c| {
        c.max_pending_handshakes = 2;
        c.handshake_timeout = Duration::from_millis(500);
    });
    // Two connections that never say anything hold both places...
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // ... so a third is closed as it arrives, without waiting for any
    // timeout (it is accepted after the first two: one accept loop).
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_by_peer(&mut third, Duration::from_secs(20)).await,
        "a connection over max_pending_handshakes stays open"
    );
    // The idle ones time out and free their places: replica 1 connects.
    let one = replica(
        1,
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        addr,
        |_| {},
    );
    let (from, _) = send_until_received(&one, &zero, |_| Bytes::from_static(b"hello")).await;
    assert_eq!(from, ReplicaId(1));
    for mut s in idle {
        assert!(closed_by_peer(&mut s, Duration::from_secs(20)).await);
    }
}

/// A TCP relay in front of `target`: copies both ways; counts connections;
/// records what the dialer sent; flips the byte at offset `flip` of the
/// dialer's bytes on the first connection.
async fn relay(
    target: SocketAddr,
    flip: Option<usize>,
) -> (SocketAddr, Arc<Mutex<Vec<u8>>>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let (seen2, connections2) = (seen.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let (inbound, _) = listener.accept().await.unwrap();
            let Ok(outbound) = TcpStream::connect(target).await else {
                continue;
            };
            let n = connections2.fetch_add(1, Ordering::SeqCst);
            let flip = flip.filter(|_| n == 0);
            let (mut ir, mut iw) = inbound.into_split();
            let (mut or, mut ow) = outbound.into_split();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                let mut offset = 0;
                loop {
                    let n = match ir.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if let Some(f) = flip {
                        if (offset..offset + n).contains(&f) {
                            buf[f - offset] ^= 0x01;
                        }
                    }
                    offset += n;
                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                    if ow.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut or, &mut iw).await;
            });
        }
    });
    (addr, seen, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_between_two_replicas_sees_no_plaintext() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let zero = replica(0, listener, addr, |_| {});
    let (via, seen, _) = relay(addr, None).await;
    let one = replica(
        1,
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        via,
        |_| {},
    );
    // A client's transaction, as a forward or a batch carries it.
    let marker = *b"confidential-marker-0123456789ab";
    let client = SigningKey::from_bytes(&[7; 32]);
    let tx = TxBody {
        signer: AccountId::from_verifying_key(&client.verifying_key()),
        nonce: 1,
        call: Call::Revoke(Revoke {
            grant: GrantId(marker),
        }),
    }
    .sign(&client);
    let bytes = Bytes::from(tx.to_bytes());
    assert!(bytes.windows(marker.len()).any(|w| w == marker));
    let (from, got) = send_until_received(&one, &zero, |_| bytes.clone()).await;
    assert_eq!((from, &got[..]), (ReplicaId(1), &bytes[..]));
    let seen = seen.lock().unwrap();
    assert!(seen.len() > bytes.len(), "the relay carried the link");
    assert!(
        !seen.windows(marker.len()).any(|w| w == marker),
        "the relay read the transaction in clear"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_closes_the_link_and_it_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let zero = replica(0, listener, addr, |_| {});
    // Offset 400 of what the dialer sends: past its handshake (about 130
    // bytes), inside the first record of data (a 1 KiB message).
    let (via, _, connections) = relay(addr, Some(400)).await;
    let one = replica(
        1,
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        via,
        |c| {
            c.backoff_max = Duration::from_millis(200);
        },
    );
    let message = |k: u32| {
        let mut m = vec![0xa5u8; 1024];
        m[..4].copy_from_slice(&k.to_be_bytes());
        Bytes::from(m)
    };
    let (from, got) = send_until_received(&one, &zero, message).await;
    assert_eq!(from, ReplicaId(1));
    let k = u32::from_be_bytes(got[..4].try_into().unwrap());
    // The damaged message (the first) never arrives, nor does anything else
    // on its link: what arrives came on a new link, intact.
    assert!(k > 0, "the message whose byte was flipped was delivered");
    assert_eq!(got, message(k), "a damaged message was delivered");
    assert!(
        connections.load(Ordering::SeqCst) >= 2,
        "the link was not dialed again"
    );
}
