//! Targets of rr-consensus's decoders: the PBFT replica messages (and the
//! write-ahead log records made of them), and the TCP transport's framing
//! and handshake.

use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use futures::FutureExt;
use rr_consensus::pbft::message::{decode_and_verify, CheckpointCert, PreparedCert};
use rr_consensus::pbft::{SignedMessage, MAX_MESSAGE_BYTES};
use rr_consensus::transport::{Listener, Network, TcpConfig, TcpNetwork};
use rr_core::{codec, ReplicaId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

use crate::check::{postcard_stable, resign_message};
use crate::fixture::fixture;

/// What a replica does with a message it decoded and verified: nothing the
/// target can see, beyond reading it.
fn verified_next(m: &rr_consensus::pbft::VerifiedMessage) {
    let _ = (m.from(), m.payload().kind(), m.signed().to_bytes().len());
}

/// PBFT replica messages as they arrive from a peer
/// (`SignedMessage::from_bytes`, then `decode_and_verify` against the fixed
/// replica set, as the engine does), also re-signed by the fixed replica
/// keys so the checks behind the signatures are reached; and the prepared
/// and checkpoint certificates of the write-ahead log (`rr_core::codec`
/// with the message limit, as `Wal::recover` reads them).
pub fn replica_message(data: &[u8]) {
    let fx = fixture();
    if let Ok(m) = SignedMessage::from_bytes(data) {
        postcard_stable(&m, |b| SignedMessage::from_bytes(b).ok(), "replica message");
        if let Ok(v) = decode_and_verify(data, &fx.set) {
            verified_next(&v);
        }
        let mut resigned = m.clone();
        resign_message(&mut resigned, 4);
        if resigned != m {
            if let Ok(v) = resigned.verify(&fx.set) {
                verified_next(&v);
            }
        }
    }
    if let Ok(c) = codec::decode::<PreparedCert>("prepared certificate", data, MAX_MESSAGE_BYTES) {
        postcard_stable(
            &c,
            |b| codec::decode::<PreparedCert>("", b, MAX_MESSAGE_BYTES).ok(),
            "prepared certificate",
        );
        let _ = c.pre_prepare();
    }
    if let Ok(c) =
        codec::decode::<CheckpointCert>("checkpoint certificate", data, MAX_MESSAGE_BYTES)
    {
        postcard_stable(
            &c,
            |b| codec::decode::<CheckpointCert>("", b, MAX_MESSAGE_BYTES).ok(),
            "checkpoint certificate",
        );
        let _ = c.head();
    }
}

/// The transport's handshake messages, in the same shape (and so the same
/// postcard encoding) as `rr_consensus::transport::tcp`'s private ones:
/// what a dialer in another language would write.
#[derive(Serialize, Deserialize)]
enum Handshake {
    Hello {
        from: ReplicaId,
        to: ReplicaId,
        nonce: [u8; 32],
    },
    Challenge {
        nonce: [u8; 32],
        signature: Vec<u8>,
    },
    Proof {
        signature: Vec<u8>,
    },
}

const HANDSHAKE_DOMAIN: &[u8] = b"resilient-records/pbft-handshake/v1\0";

fn transcript(role: &[u8], nonce: &[u8; 32], signer: ReplicaId, peer: ReplicaId) -> Vec<u8> {
    let mut b = HANDSHAKE_DOMAIN.to_vec();
    b.extend_from_slice(role);
    b.extend_from_slice(nonce);
    b.extend_from_slice(&signer.0.to_be_bytes());
    b.extend_from_slice(&peer.0.to_be_bytes());
    b
}

/// Connections handed to the network under test, one per input.
struct Inbound(mpsc::UnboundedReceiver<DuplexStream>);

impl Listener for Inbound {
    type Stream = DuplexStream;

    async fn accept(&mut self) -> io::Result<(DuplexStream, SocketAddr)> {
        match self.0.recv().await {
            Some(s) => Ok((s, SocketAddr::from(([127, 0, 0, 2], 1)))),
            None => std::future::pending().await,
        }
    }

    async fn connect(_addr: SocketAddr) -> io::Result<DuplexStream> {
        Err(io::Error::other("the fuzzer dials nobody"))
    }
}

/// Replica 0's network, accepting the fuzzer's connections.
struct Node {
    rt: tokio::runtime::Runtime,
    connect: mpsc::UnboundedSender<DuplexStream>,
    net: TcpNetwork,
}

fn node() -> &'static Mutex<Node> {
    static NODE: OnceLock<Mutex<Node>> = OnceLock::new();
    NODE.get_or_init(|| {
        let fx = fixture();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (connect, accepted) = mpsc::unbounded_channel();
        let peers = (1..=fx.set.n() as u16)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        let net = {
            let _in_rt = rt.enter();
            TcpNetwork::start(
                fx.replica_key(ReplicaId(0)).expect("replica 0"),
                fx.set.clone(),
                Inbound(accepted),
                TcpConfig::new(peers),
            )
            .expect("the transport starts")
        };
        Mutex::new(Node { rt, connect, net })
    })
}

async fn send_frame(s: &mut DuplexStream, m: &Handshake) -> io::Result<()> {
    let body = codec::encode(m);
    s.write_all(&(body.len() as u32).to_be_bytes()).await?;
    s.write_all(&body).await
}

/// Completes the handshake as replica 1; `false` if replica 0 did not
/// answer as the protocol says (a bug in the acceptor, reported by the
/// caller's assertions).
async fn authenticate(s: &mut DuplexStream) -> io::Result<()> {
    let fx = fixture();
    let (me, peer) = (ReplicaId(1), ReplicaId(0));
    let nonce = [0x5a; 32];
    send_frame(
        s,
        &Handshake::Hello {
            from: me,
            to: peer,
            nonce,
        },
    )
    .await?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await?;
    let Ok(Handshake::Challenge {
        nonce: theirs,
        signature,
    }) = codec::decode("challenge", &body, 1024)
    else {
        panic!("replica 0 answered a valid hello with something not a challenge");
    };
    assert!(
        rr_core::sig::verify(
            fx.set_info.key(peer).expect("replica 0").as_bytes(),
            &signature,
            &transcript(b"acceptor", &nonce, peer, me),
        ),
        "replica 0's challenge signature does not verify"
    );
    use ed25519_dalek::Signer;
    let proof = fx.replica_keys[1].sign(&transcript(b"dialer", &theirs, me, peer));
    send_frame(
        s,
        &Handshake::Proof {
            signature: proof.to_bytes().to_vec(),
        },
    )
    .await
}

/// The replica transport (`rr_consensus::transport::tcp`): a connection to
/// replica 0 of the fixed set, through `TcpNetwork` itself over an
/// in-memory stream. Its handshake parser is private, so it is reached the
/// way a peer reaches it.
///
/// The first byte picks the mode: even, the rest is what an unauthenticated
/// peer sends (frames, handshake messages, garbage); odd, the target first
/// completes the handshake as replica 1 and the rest is what an
/// authenticated peer sends: frames the network hands to the engine, which
/// are decoded and verified as replica messages.
pub fn handshake(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let node = node().lock().unwrap_or_else(|e| e.into_inner());
    let fx = fixture();
    node.rt.block_on(async {
        let (mut ours, theirs) = tokio::io::duplex(1 << 16);
        node.connect.send(theirs).expect("the listener is alive");
        if mode & 1 == 1 && authenticate(&mut ours).await.is_err() {
            panic!("replica 0 closed a link during a valid handshake");
        }
        let (mut r, mut w) = tokio::io::split(ours);
        let io = async {
            let write = async {
                let _ = w.write_all(rest).await;
                let _ = w.shutdown().await;
            };
            // Replica 0 closes the link once it is done with it.
            let read = async {
                let mut sink = Vec::new();
                let _ = r.read_to_end(&mut sink).await;
            };
            tokio::join!(write, read);
        };
        tokio::pin!(io);
        let mut taken = Vec::new();
        loop {
            tokio::select! {
                biased;
                m = node.net.recv() => taken.extend(m),
                () = &mut io => break,
            }
        }
        while let Some(Some(m)) = node.net.recv().now_or_never() {
            taken.push(m);
        }
        if mode & 1 == 0 {
            assert!(
                taken.is_empty(),
                "a message arrived on an unauthenticated link"
            );
        }
        for (from, bytes) in taken {
            assert_eq!(from, ReplicaId(1), "a message from the wrong peer");
            if let Ok(v) = decode_and_verify(&bytes, &fx.set) {
                verified_next(&v);
            }
        }
    });
}
