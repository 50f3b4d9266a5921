//! Replica link throughput over loopback TCP, plain length-delimited framing
//! (what the links carried before they were encrypted) next to the
//! encrypted link (`transport::link`: Noise records, ChaCha20-Poly1305), in
//! one run, for 1 KiB frames (votes, small batches) and 1 MiB frames (big
//! batches, state transfer). Each iteration writes one frame on one end and
//! reads it whole on the other.
//!
//! `cargo bench -p rr-consensus --bench links`; compare the two lines of
//! each size (absolute times on a shared machine are noise).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ed25519_dalek::SigningKey;
use futures::{SinkExt, StreamExt};
use rr_consensus::transport::link;
use rr_consensus::{ReplicaKey, ReplicaSet};
use rr_core::ReplicaId;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

const MAX: usize = 4 << 20;

async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
    let (a, b) = (a.unwrap(), b.unwrap().0);
    a.set_nodelay(true).unwrap();
    b.set_nodelay(true).unwrap();
    (a, b)
}

fn key(i: u16) -> ReplicaKey {
    ReplicaKey::new(ReplicaId(i), SigningKey::from_bytes(&[i as u8 + 1; 32]))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let set = ReplicaSet::new((0..4).map(|i| key(i).verifying_key()).collect()).unwrap();
    let (mut plain_tx, mut plain_rx) = rt.block_on(async {
        let (a, b) = pair().await;
        let codec = || {
            LengthDelimitedCodec::builder()
                .max_frame_length(MAX)
                .new_codec()
        };
        (Framed::new(a, codec()), Framed::new(b, codec()))
    });
    let (mut secure_tx, mut secure_rx) = rt.block_on(async {
        let (a, b) = pair().await;
        let (one, zero) = (key(1), key(0));
        let (dialed, accepted) = tokio::join!(
            link::dial(a, &one, &set, ReplicaId(0), MAX),
            link::accept(b, &zero, &set, MAX)
        );
        (dialed.unwrap(), accepted.unwrap().1)
    });

    let mut g = c.benchmark_group("replica_link");
    for (name, size) in [("1KiB", 1024usize), ("1MiB", 1 << 20)] {
        let frame = Bytes::from(vec![0x5a; size]);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("plain/{name}"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let (sent, got) = tokio::join!(plain_tx.send(frame.clone()), plain_rx.next());
                    sent.unwrap();
                    black_box(got.unwrap().unwrap());
                })
            })
        });
        g.bench_function(format!("encrypted/{name}"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let (sent, got) = tokio::join!(secure_tx.send(frame.clone()), secure_rx.next());
                    sent.unwrap();
                    black_box(got.unwrap().unwrap());
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
