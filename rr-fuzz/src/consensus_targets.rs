//! Targets of rr-consensus's decoders: the PBFT replica messages (and the
//! write-ahead log records made of them), and the TCP transport's framing
//! and handshake.

use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use futures::FutureExt;
use rr_consensus::pbft::message::{decode_and_verify, CheckpointCert, PreparedCert};
use rr_consensus::pbft::{SignedMessage, MAX_MESSAGE_BYTES};
use rr_consensus::transport::link::{self, SecureCodec};
use rr_consensus::transport::{Listener, Network, TcpConfig, TcpNetwork};
use rr_core::{codec, ReplicaId};
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

/// Opens the link to replica 0 as replica 1, with the transport's own
/// dialer (`rr_consensus::transport::link::dial`): a valid handshake.
async fn authenticate(s: &mut DuplexStream) -> SecureCodec {
    let fx = fixture();
    let key = fx.replica_key(ReplicaId(1)).expect("replica 1");
    match link::dial(&mut *s, &key, &fx.set, ReplicaId(0), MAX_MESSAGE_BYTES).await {
        Ok(l) => l.into_parts().codec,
        Err(e) => panic!("replica 0 refused a valid handshake: {e}"),
    }
}

/// The handshake's own decoders, on what an unauthenticated peer sent:
/// its framing (`link::handshake_codec`, at most `MAX_HANDSHAKE_BYTES` a
/// frame) and, in each frame, the hello (after the 32-byte ephemeral key of
/// the first Noise message, where the acceptor reads it) and the proof.
fn handshake_decoders(data: &[u8]) {
    for frame in link::handshake_frames(data) {
        assert!(frame.len() <= link::MAX_HANDSHAKE_BYTES);
        if let Some(payload) = frame.get(32..) {
            if let Ok(h) = link::decode_hello(payload) {
                assert_eq!(codec::encode(&h), payload, "a hello re-encodes differently");
            }
        }
        if let Ok(a) = link::decode_auth(&frame) {
            assert_eq!(
                codec::encode(&a),
                &frame[..],
                "a proof re-encodes differently"
            );
        }
    }
}

/// The replica transport (`rr_consensus::transport::tcp` and `link`): a
/// connection to replica 0 of the fixed set, through `TcpNetwork` itself
/// over an in-memory stream.
///
/// The first byte picks the mode: even, the rest is what an unauthenticated
/// peer sends (frames, handshake messages, garbage), also fed to the
/// handshake's decoders directly; odd, the target first completes the
/// handshake as replica 1 (with the transport's own dialer) and the rest is
/// the frame stream an authenticated peer sends (lengths and bodies),
/// encrypted into the link's records: frames the network hands to the
/// engine, which are decoded and verified as replica messages.
pub fn handshake(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let node = node().lock().unwrap_or_else(|e| e.into_inner());
    let fx = fixture();
    node.rt.block_on(async {
        let (mut ours, theirs) = tokio::io::duplex(1 << 16);
        node.connect.send(theirs).expect("the listener is alive");
        let bytes = if mode & 1 == 1 {
            authenticate(&mut ours)
                .await
                .seal_stream(rest)
                .expect("records seal")
        } else {
            handshake_decoders(rest);
            rest.to_vec()
        };
        let (mut r, mut w) = tokio::io::split(ours);
        let io = async {
            let write = async {
                let _ = w.write_all(&bytes).await;
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
